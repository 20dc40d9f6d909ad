import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from extract.activations import (ActivationAggregates, ActivationBatch, encode,
                                 extract_aggregates, load_bridge)
from extract.checkpoints import CheckpointError, find_checkpoints
from extract.corpus import sentences


def _random_batches(seed=0, n_batches=4, n_neurons=6, vocab=5):
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_batches):
        m = int(rng.integers(3, 9))
        out.append(ActivationBatch(
            acts=torch.tensor(rng.normal(size=(m, n_neurons)), dtype=torch.float32),
            token_ids=torch.tensor(rng.integers(0, vocab, m)),
            sentence_ids=torch.full((m,), b), positions=torch.arange(m)))
    return out


def test_streaming_aggregates_equal_whole_corpus_statistics():
    batches = _random_batches()
    agg = ActivationAggregates(n_neurons=6, vocab_size=5, top_k=3)
    for b in batches:
        agg.update(b)
    x = torch.cat([b.acts for b in batches]).double().numpy()
    tokens = torch.cat([b.token_ids for b in batches]).numpy()
    moments = agg.moments_frame(n_layers=2).sort(["layer", "neuron"])
    np.testing.assert_allclose(moments["mean"], x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(moments["std"], x.std(0), rtol=1e-5)
    centred = x - x.mean(0)  # skew and (non-excess) kurtosis of the whole stream at once
    np.testing.assert_allclose(moments["skew"], (centred**3).mean(0) / x.std(0) ** 3, rtol=1e-6)
    np.testing.assert_allclose(moments["kurtosis"], (centred**4).mean(0) / x.var(0) ** 2, rtol=1e-6)
    np.testing.assert_allclose(moments["max"], x.max(0), rtol=1e-6)
    np.testing.assert_allclose(moments["frac_positive"], (x > 0).mean(0))
    assert moments["layer"].to_list() == [0, 0, 0, 1, 1, 1]
    strings = [f"t{i}" for i in range(5)]
    means = agg.token_means_frame(2, strings, min_count=1)
    for row in means.iter_rows(named=True):
        j = row["layer"] * 3 + row["neuron"]
        expected = x[tokens == row["token_id"], j].mean()
        assert row["mean_activation"] == pytest.approx(expected, rel=1e-6)
        assert row["token_count"] == (tokens == row["token_id"]).sum()
    top = np.sort(x, axis=0)[::-1][:3]
    np.testing.assert_allclose(agg.top_values.double().numpy(), top, rtol=1e-6)


def test_frequency_threshold_drops_rare_tokens():
    agg = ActivationAggregates(n_neurons=2, vocab_size=4, top_k=1)
    agg.update(ActivationBatch(torch.ones(4, 2), torch.tensor([0, 0, 0, 1]),
                               torch.zeros(4, dtype=torch.long), torch.arange(4)))
    means = agg.token_means_frame(1, ["a", "b", "c", "d"], min_count=2)
    assert set(means["token"]) == {"a"}


def test_bridge_activations_match_huggingface_mlp_outputs(tiny_checkpoints, tiny_corpus):
    """Token means through TransformerLens equal those from hooks on the HF model's GELU."""
    name, folder = find_checkpoints(tiny_checkpoints)[-1]
    assert name == "checkpoint-120"
    sents = sentences(tiny_corpus, "train")[:40]
    result = extract_aggregates(load_bridge(folder), sents, batch_size=16, min_token_count=1)

    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    captured = []
    for block in model.transformer.h:
        block.mlp.act.register_forward_hook(lambda m, i, o: captured.append(o[0]))
    sums, counts = {}, {}
    special = set(tok.all_special_ids)
    for _, text in sents:
        ids = encode(tok, text)
        captured.clear()
        with torch.no_grad():
            model(torch.tensor([ids]))
        acts = torch.cat(captured, dim=-1)
        for pos, t in enumerate(ids):
            if t in special:
                continue
            sums[t] = sums.get(t, 0) + acts[pos].double()
            counts[t] = counts.get(t, 0) + 1
    d = model.config.n_inner
    for row in result.token_means.sample(50, seed=0).iter_rows(named=True):
        t, j = row["token_id"], row["layer"] * d + row["neuron"]
        assert row["token_count"] == counts[t]
        assert row["mean_activation"] == pytest.approx(float(sums[t][j] / counts[t]), abs=1e-4)
    total = sum(counts.values())
    assert set(result.moments["n_tokens"]) == {total}
    assert result.moments.height == 2 * d
    contexts = result.top_contexts
    assert contexts["context"].str.contains(r"\[\[").all()


def test_missing_checkpoint_folder_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as err:
        load_bridge(tmp_path / "nowhere")
    assert "nowhere" in str(err.value)


def test_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_bridge(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        find_checkpoints(tmp_path)
