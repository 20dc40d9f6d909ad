"""The activation-clusters study end to end on the tiny GPT-2 and the tiny BERT: marts, an
ablation recomputed independently with Hugging Face weights, and the masked-LM path."""

import duckdb
import numpy as np
import polars as pl
import torch
import yaml
from transformers import AutoTokenizer, GPT2LMHeadModel

from extract import lake
from extract.activations import encode
from extract.checkpoints import find_checkpoints
from extract.corpus import sentences
from tests.conftest import run_tiny_study, write_study


def _query(home, sql):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).pl()


def test_table_3_has_every_configuration_and_baselines_with_five_draws(built):
    home, _, _ = built
    table3 = _query(home, "select * from fct_ablation_by_configuration")
    # 2 sites x 3 representations x K in (4, 8) x refined in (false, true)
    assert table3.height == 24
    assert set(table3["site"]) == {"mlp", "resid"}
    assert (table3["n_clusters_ablated"] <= 3).all()
    summary = _query(home, "select * from fct_ablation_summary")
    assert set(summary["n_repeats"]) == {5}
    assert summary["random_drop_sd"].is_not_null().all()
    assert summary["random_p_value"].is_between(0, 1).all()
    # BH never lowers a p-value (up to the rounding of p m / m)
    assert (summary["random_q_value"] >= summary["random_p_value"] - 1e-12).all()


def test_agglomerative_clusters_are_tighter_than_random_clusters_of_the_same_sizes(built):
    home, _, _ = built
    d = _query(home, """select a.avg_mean_distance a, r.avg_mean_distance r, a.n_neurons an,
                               r.n_neurons rn
                        from fct_activation_cluster_distances a
                        join fct_activation_cluster_distances r using (model, checkpoint, site,
                             representation, k, refined)
                        where a.method = 'agglomerative' and r.method = 'random' and not refined""")
    assert d.height == 12
    assert (d["an"] == d["rn"]).all()
    assert (d["a"] < d["r"]).all()


def test_refinement_brings_every_member_within_the_threshold(built):
    home, _, _ = built
    sizes = _query(home, """select refined, sum(n_neurons) n from fct_activation_cluster_distances
                            where method = 'agglomerative' group by refined order by refined""")
    assert sizes["n"][1] < sizes["n"][0]


def _checkpoints(study_file):
    return yaml.safe_load(study_file.read_text())["checkpoints"]


def test_a_cluster_ablation_equals_moving_its_output_weights_into_the_bias_in_hugging_face(built):
    """Setting MLP neuron j's post-activation to its train mean m_j replaces row j of c_proj's
    contribution by the constant m_j c_proj[j], so the mart's loss drop is recomputed here from
    the HF model with those rows set to zero and m_j c_proj[j] added to c_proj's bias."""
    home, study_file, _ = built
    row = _query(home, """select * from fct_ablation_summary where site = 'mlp'
                          order by representation, k, refined, cluster_id limit 1""").row(0, named=True)
    keys = {k: row[k] for k in ("site", "representation", "k", "refined", "cluster_id")}
    where = " and ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}"
                         for k, v in keys.items())
    members = _query(home, f"select layer, neuron from stg_activation_clusters "
                           f"where method = 'agglomerative' and {where}")
    tokens = set(_query(home, f"select token_id from stg_activation_cluster_tokens "
                              f"where method = 'agglomerative' and {where}")["token_id"])
    folder = dict(find_checkpoints(_checkpoints(study_file)))["checkpoint-120"]
    tok = AutoTokenizer.from_pretrained(folder)
    corpus = lake.read_table(home / "lake", "corpus", "tiny")
    chosen = [s for s in (encode(tok, t) for _, t in sentences(corpus, "heldout"))
              if any(t in tokens for t in s[1:])][:8]
    assert len(chosen) == row["n_sentences"]

    def loss(model):
        total, n = 0.0, 0
        for seq in chosen:
            with torch.no_grad():
                logp = model(torch.tensor([seq])).logits[0].log_softmax(-1)
            hits = [i for i in range(1, len(seq)) if seq[i] in tokens]
            total -= sum(float(logp[i - 1, seq[i]]) for i in hits)
            n += len(hits)
        return total / n

    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    base = loss(model)
    moments = lake.read_table(home / "lake", "neuron_moments", "tiny", "checkpoint-120")
    mean = {(r["layer"], r["neuron"]): r["mean"]
            for r in moments.filter(pl.col("site") == "mlp").iter_rows(named=True)}
    assert row["ablation"] == "mean"
    with torch.no_grad():
        for layer, neuron in members.iter_rows():
            proj = model.transformer.h[layer].mlp.c_proj
            proj.bias += mean[(layer, neuron)] * proj.weight[neuron]
            proj.weight[neuron] = 0
    drop = 100 * (loss(model) - base) / base
    assert np.isclose(row["loss_base"], base, rtol=1e-4)
    assert np.isclose(row["cluster_drop_pct"], drop, rtol=1e-3, atol=1e-4)


def test_concept_purity_is_reported_against_random_clusters(built):
    home, _, _ = built
    summary = _query(home, "select * from fct_concept_purity_summary")
    assert summary.height == 24
    purity = _query(home, "select * from fct_cluster_concept_purity")
    assert set(purity["method"]) == {"agglomerative", "random"}
    assert purity["purity"].is_between(0, 1).all()


def test_the_study_runs_on_a_masked_language_model(tmp_path, tiny_bert):
    """A BertForMaskedLM checkpoint folder goes through extraction (both sites), clustering,
    masked-LM ablation and the marts."""
    study = write_study(tmp_path, tiny_bert, probing={"enabled": False})
    home = tmp_path / "home"
    outcome = run_tiny_study(home, study)
    assert outcome.success and all(outcome.checks.values())
    shapes = _query(home, "select site, count(distinct layer) l, count(*) n from dim_neurons "
                          "group by site order by site")
    assert shapes.rows() == [("mlp", 2, 128), ("resid", 3, 96)]
    table3 = _query(home, "select * from fct_ablation_by_configuration")
    assert table3.height == 24 and table3["cluster_drop_pct"].is_not_null().all()
    ablations = lake.read_table(home / "lake", "activation_ablations", "tiny", "checkpoint-1")
    # a random BERT predicts masked tokens at about chance: the loss is near ln(vocabulary)
    vocab = len(AutoTokenizer.from_pretrained(tiny_bert / "checkpoint-1"))
    assert abs(ablations["loss_base"].mean() - np.log(vocab)) < 1.0
    assert pl.Series(ablations["n_targets"]).min() >= 1
