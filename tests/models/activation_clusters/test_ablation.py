"""Ablation of neuron sets: the baselines' shapes, the loss against Hugging Face's own loss, a
planted neuron whose ablation hurts its token class more than random ablation, mean ablation of
a constant neuron, and the test of a cluster against its baselines."""

import numpy as np
import polars as pl
import pytest
import torch
from scipy import stats
from transformers import AutoModelForMaskedLM, GPT2LMHeadModel

from extract.activations import SITE_MLP, SITE_RESID, encode, load_bridge, loss_inputs
from extract.checkpoints import find_checkpoints
from extract.corpus import SEMANTIC_CLASSES, sentences
from models.activation_clusters.ablation import (AblationSettings, ablate_cluster, ablate_clusters,
                                                ablation_tests,
                                                baseline_neurons, prediction_p_value)
from models.lm_loss import NO_NEURONS as EMPTY
from models.lm_loss import LossSetup, NeuronSet, eval_set, target_losses


def test_baselines_match_the_cluster_size_layers_and_positions():
    cluster = NeuronSet(np.array([0, 0, 0, 1, 2, 2, 2]), np.array([1, 5, 9, 3, 0, 2, 4]))
    rng = np.random.default_rng(0)
    for _ in range(20):
        r = baseline_neurons("random", cluster, 3, 10, rng=rng)
        assert len(set(zip(r.layers, r.neurons))) == 7
        rl = baseline_neurons("random_layer", cluster, 3, 10, rng=rng)
        assert sorted(rl.layers) == sorted(cluster.layers)
        assert len(set(zip(rl.layers, rl.neurons))) == 7
        rp = baseline_neurons("random_position", cluster, 3, 10, rng=rng)
        # 7 neurons over 3 layers: 2 positions in every layer, one more in 1 layer
        assert len(rp) == 7
        counts = np.bincount(rp.neurons, minlength=10)
        assert sorted(counts[counts > 0]) == [1, 3, 3]
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_neurons("nearby", cluster, 3, 10, rng=rng)


def _gpt(tiny_checkpoints):
    return find_checkpoints(tiny_checkpoints)[-1][1]


def test_causal_loss_equals_huggingface_loss_on_the_target_tokens(tiny_checkpoints, tiny_corpus):
    folder = _gpt(tiny_checkpoints)
    bridge = load_bridge(folder)
    tok = bridge.tokenizer
    seqs = [encode(tok, t) for _, t in sentences(tiny_corpus, "heldout")[:30]]
    targets = {seqs[0][3], seqs[1][4]}
    data = eval_set(seqs, targets, tok.pad_token_id, 8, causal=True)
    [loss] = target_losses(LossSetup(**loss_inputs(bridge, SITE_MLP)), data, [EMPTY])
    hf = GPT2LMHeadModel.from_pretrained(folder).eval()
    chosen = [s for s in seqs if any(t in targets for t in s[1:])][:8]
    assert data.ids.shape[0] == len(chosen)
    expected_n = sum(sum(1 for i, t in enumerate(s) if t in targets and i > 0) for s in chosen)
    assert data.n_targets == expected_n
    total = 0.0
    for seq in chosen:
        with torch.no_grad():
            logp = hf(torch.tensor([seq])).logits[0].log_softmax(-1)
        total -= sum(float(logp[i - 1, t]) for i, t in enumerate(seq) if t in targets and i > 0)
    assert loss == pytest.approx(total / expected_n, rel=1e-4)


def test_masked_lm_loss_equals_huggingface_loss(tiny_bert, tiny_corpus):
    folder = find_checkpoints(tiny_bert)[-1][1]
    bridge = load_bridge(folder)
    tok = bridge.tokenizer
    seqs = [encode(tok, t) for _, t in sentences(tiny_corpus, "heldout")[:20]]
    assert seqs[0][0] == tok.cls_token_id and seqs[0][-1] == tok.sep_token_id
    targets = {seqs[0][2]}
    data = eval_set(seqs, targets, tok.pad_token_id, 4, causal=False)
    lm = LossSetup(**loss_inputs(bridge, SITE_RESID))
    assert lm.masked and lm.width == 32 and len(lm.hook_names) == 3  # embeddings + 2 layers
    base, ablated = target_losses(lm, data,
                                  [EMPTY, NeuronSet(np.array([0, 1]), np.array([3, 7]))])
    hf = AutoModelForMaskedLM.from_pretrained(folder).eval()
    ids = data.ids.masked_fill(data.targets, tok.mask_token_id)
    labels = data.ids.masked_fill(~data.targets, -100)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=data.real.long(), labels=labels).loss
    assert base == pytest.approx(float(expected), rel=1e-4)
    assert ablated != pytest.approx(base, rel=1e-6)


def _plant_class_neuron(folder, out, tokens, layer=1, neuron=7, strength=4.0):
    """Make MLP neuron (layer, neuron) fire at a constant 10 everywhere and write, into the
    residual stream, the mean unembedding direction of `tokens`: the neuron carries the class."""
    model = GPT2LMHeadModel.from_pretrained(folder)
    mlp = model.transformer.h[layer].mlp
    direction = model.lm_head.weight[sorted(tokens)].mean(0)
    with torch.no_grad():
        mlp.c_fc.weight[:, neuron] = 0
        mlp.c_fc.bias[neuron] = 10.0
        mlp.c_proj.weight[neuron] = strength * direction / direction.norm()
    model.save_pretrained(out)
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out


def test_ablating_a_planted_class_neuron_hurts_that_class_more_than_random(
        tiny_checkpoints, tiny_corpus, tmp_path):
    folder = _gpt(tiny_checkpoints)
    tok = load_bridge(folder).tokenizer
    months = {encode(tok, " " + w)[1] for w in SEMANTIC_CLASSES["month"][1]}
    bridge = load_bridge(_plant_class_neuron(folder, tmp_path / "planted", months))
    seqs = [encode(tok, t) for _, t in sentences(tiny_corpus, "heldout")]
    data = eval_set(seqs, months, tok.pad_token_id, 32, causal=True)
    assert data is not None and data.n_targets >= 10
    rows = ablate_cluster(LossSetup(**loss_inputs(bridge, SITE_MLP)),
                          NeuronSet(np.array([1]), np.array([7])), data,
                          AblationSettings(repeats=5), rng=np.random.default_rng(0))
    change = {(r["baseline"], r["repeat"]): r["loss_ablated"] / r["loss_base"] - 1 for r in rows}
    planted = change[("cluster", 0)]
    assert planted > 0.05
    assert len(change) == 1 + 3 * 5
    assert all(planted > 3 * abs(v) for k, v in change.items() if k[0] != "cluster")


def test_mean_ablation_of_a_constant_neuron_changes_nothing(tiny_checkpoints, tiny_corpus,
                                                            tmp_path):
    """A neuron that fires at the same value on every token carries nothing: set to its mean it
    leaves every loss as it was, while zeroing it does not."""
    folder = _gpt(tiny_checkpoints)
    tok = load_bridge(folder).tokenizer
    months = {encode(tok, " " + w)[1] for w in SEMANTIC_CLASSES["month"][1]}
    bridge = load_bridge(_plant_class_neuron(folder, tmp_path / "planted", months))
    seqs = [encode(tok, t) for _, t in sentences(tiny_corpus, "heldout")]
    data = eval_set(seqs, months, tok.pad_token_id, 16, causal=True)
    with torch.no_grad():
        _, cache = bridge.run_with_cache(data.ids, attention_mask=data.real.long(),
                                         names_filter="blocks.1.mlp.hook_post")
    constant = cache["blocks.1.mlp.hook_post"][..., 7][data.real]
    assert torch.allclose(constant, constant[0])  # the planted neuron is constant
    fill = torch.zeros(2, 64)
    fill[1, 7] = constant[0]
    planted = [EMPTY, NeuronSet(np.array([1]), np.array([7]))]
    base, mean_ablated = target_losses(LossSetup(**loss_inputs(bridge, SITE_MLP), fill=fill),
                                       data, planted)
    _, zero_ablated = target_losses(LossSetup(**loss_inputs(bridge, SITE_MLP)), data, planted)
    assert mean_ablated == pytest.approx(base, rel=1e-6)
    assert zero_ablated > base * 1.05


def test_prediction_p_value_by_hand():
    # draws 1, 2, 3: mean 2, sd 1; x = 2 + sqrt(4/3) gives t = 1 on 2 degrees of freedom,
    # whose upper tail is 1/2 - 1/(2 sqrt(3)) (the t_2 CDF is 1/2 + t / (2 sqrt(2 + t^2)))
    assert prediction_p_value(2 + np.sqrt(4 / 3), [1, 2, 3]) == pytest.approx(
        0.5 - 0.5 / np.sqrt(3))
    assert prediction_p_value(2, [1, 2, 3]) == pytest.approx(0.5)
    assert prediction_p_value(1, [0, 0, 0, 0]) == pytest.approx(1 / 5)  # no spread: rank p-value


def test_random_clusters_are_called_significant_at_most_five_percent_of_the_time():
    """When the 'clusters' are themselves draws of the baseline, the prediction test's p-values
    are uniform and Benjamini-Hochberg across a configuration's 50 clusters (scipy's, an
    independent implementation of what dbt computes) calls at most 5 % of configurations
    anything significant (all nulls true: FDR = family-wise error)."""
    rng = np.random.default_rng(0)
    n_configurations, n_clusters = 400, 50
    p_values = np.array([[prediction_p_value(rng.normal(), rng.normal(size=5))
                          for _ in range(n_clusters)] for _ in range(n_configurations)])
    assert abs(p_values.mean() - 0.5) < 0.01  # uniform under H0
    assert (p_values < 0.05).mean() == pytest.approx(0.05, abs=0.005)
    q = stats.false_discovery_control(p_values, axis=1)
    assert (q <= 0.05).mean() <= 0.05  # the share of clusters called significant
    # the chance that a configuration calls anything: at most 5 % (+ 2.5 binomial sds of 400)
    assert (q <= 0.05).any(axis=1).mean() <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / n_configurations)


def test_ablation_tests_compare_each_cluster_with_each_baseline_on_the_loss():
    runs = pl.DataFrame({"site": "mlp", "representation": "filter", "k": 50, "refined": False,
                         "cluster_id": 0, "ablation": "mean",
                         "baseline": ["cluster", *["random"] * 3, *["random_layer"] * 3,
                                      *["random_position"] * 3],
                         "repeat": [0, 0, 1, 2, 0, 1, 2, 0, 1, 2], "n_neurons": 4,
                         "n_sentences": 3, "n_targets": 5, "loss_base": 2.0,
                         "loss_ablated": [3.0, 1.0, 2.0, 3.0, 2.9, 3.0, 3.1, 1.0, 1.0, 1.0]})
    tests = ablation_tests(runs).sort("baseline")
    assert tests["baseline"].to_list() == ["random", "random_layer", "random_position"]
    assert tests["n_draws"].to_list() == [3, 3, 3]
    expected = [prediction_p_value(3.0, [1.0, 2.0, 3.0]), prediction_p_value(3.0, [2.9, 3.0, 3.1]),
                1 / 4]
    assert tests["p_value"].to_list() == pytest.approx(expected)


def test_a_clusters_baseline_draws_do_not_depend_on_the_other_clusters(tiny_checkpoints,
                                                                       tiny_corpus):
    bridge = load_bridge(_gpt(tiny_checkpoints))
    tok = bridge.tokenizer
    seqs = [encode(tok, t) for _, t in sentences(tiny_corpus, "heldout")[:40]]
    tokens = {seqs[0][2], seqs[1][3]}
    a = ({"cluster_id": 0}, NeuronSet(np.array([0, 1]), np.array([3, 5])), tokens)
    b = ({"cluster_id": 1}, NeuronSet(np.array([1, 1, 0]), np.array([2, 9, 4])), tokens)
    lm = LossSetup(**loss_inputs(bridge, SITE_MLP))
    settings = AblationSettings(repeats=5, max_sentences=8)
    both = ablate_clusters(lm, [a, b], seqs, settings)
    alone = ablate_clusters(lm, [b], seqs, settings)
    assert [r for r in both if r["cluster_id"] == 1] == alone
