"""Materialize the whole graph on the tiny model and corpus, then query every mart."""

import hashlib

import duckdb
import numpy as np
import polars as pl
import pytest

from extract import lake
from tests.conftest import run_tiny_study as _run
from tests.conftest import write_study

MARTS = ["fct_layer_gini", "fct_cluster_layer_variance", "fct_cluster_variance_summary",
         "fct_cluster_sizes", "fct_min_variance_clusters", "dim_neurons", "fct_probe_accuracy", "fct_probe_selectivity",
         "fct_probe_minimal_subset", "fct_probe_layer_distribution", "fct_probe_label_neurons",
         "fct_activation_cluster_distances", "fct_ablation_summary", "fct_ablation_by_configuration",
         "fct_cluster_concept_purity", "fct_concept_purity_summary", "fct_neuron_universality",
         "fct_universal_neurons_by_layer", "fct_training_dynamics", "fct_enmeshment",
         "fct_cluster_class_effect", "fct_effective_circuit_size", "dim_neuron_profile",
         "fct_study_agreement"]


def _query(home, sql):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).pl()


def _gini(counts):
    """Mean absolute difference / (2 mean): sum_ij |x_i - x_j| / (2 n^2 mean)."""
    x = np.asarray(counts, dtype=float)
    return np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())


def test_every_mart_has_rows_for_the_newest_checkpoint(built):
    home, _, outcome = built
    assert outcome.success and outcome.partition_key == "tiny/checkpoint-120"
    gx_checks = {k for k in outcome.checks if k.endswith("_expectations")}
    assert gx_checks == {f"{t}_expectations" for t in lake.SCHEMAS}
    assert all(outcome.checks.values())  # the GX suites and every dbt test
    for mart in MARTS:
        df = _query(home, f"select * from {mart}")
        assert df.height > 0, mart
        assert set(df["checkpoint"]) == {"checkpoint-120"}, mart
    # 2 MLP layers x 64 and 3 residual layers (embedding output + 2 blocks) x 32
    assert _query(home, "select count(*) n from dim_neurons")["n"][0] == 2 * 64 + 3 * 32
    for plot in ("layer_gini.png", "probe_layer_distribution.png", "cluster_variance.png",
                 "min_variance_cluster.png", "cluster_positions.png", "cluster_drops.png",
                 "universality_by_layer.png", "enmeshment.png"):
        assert (home / "reports" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Notable neurons" in (home / "reports" / "neurons" / "index.html").read_text()


def test_probe_marts_hold_the_paper_tables(built):
    home, _, _ = built
    minimal = _query(home, "select * from fct_probe_minimal_subset order by task")
    assert minimal["task"].to_list() == ["pos", "semantic_class"]  # Tables 3 and 5: one row per task
    for row in minimal.iter_rows(named=True):
        assert row["accuracy_all"] > row["majority_accuracy"] + 0.1
        assert None not in (row["accuracy_top"], row["accuracy_random"], row["accuracy_bottom"],
                            row["selectivity_all"], row["selectivity_top"])
    table2 = _query(home, "select task, selection from fct_probe_accuracy "
                          "where mode = 'masked' and labels = 'task' order by all")
    assert table2.group_by("task").len()["len"].to_list() == [5, 5]
    layers = _query(home, "select task, sum(n_neurons) n, count(*) layers "
                          "from fct_probe_layer_distribution group by task order by task")
    assert layers["n"].to_list() == minimal["minimal_n_neurons"].to_list()
    # the paper's site by default: the layer outputs, embedding output included (3 on 2 layers)
    assert layers["layers"].to_list() == [3, 3]
    sites = _query(home, "select distinct site from fct_probe_minimal_subset")["site"].to_list()
    assert sites == ["resid"]
    labels = _query(home, "select task, count(distinct label) n from stg_probe_labels "
                          "group by task order by task")
    per_label = _query(home, "select task, count(*) n from fct_probe_label_neurons "
                             "group by task order by task")
    assert per_label["n"].to_list() == labels["n"].to_list()


def test_selectivity_mart_equals_task_minus_control_from_the_lake(built):
    home, _, _ = built
    raw = pl.read_parquet(home / "lake" / "probe_accuracy" / "model=tiny"
                          / "checkpoint=checkpoint-120" / "data.parquet")
    sel = _query(home, "select * from fct_probe_selectivity")
    assert sel.height == 4
    for row in sel.iter_rows(named=True):
        runs = raw.filter((pl.col("task") == row["task"]) & (pl.col("selection") == row["selection"])
                          & (pl.col("mode") == "retrained"))
        acc = {r["labels"]: r["accuracy"] for r in runs.iter_rows(named=True)}
        assert row["selectivity"] == pytest.approx(acc["task"] - acc["control"], abs=1e-12)


def test_gini_mart_equals_an_independent_numpy_gini(built):
    home, _, _ = built
    lake_clusters = pl.read_parquet(home / "lake" / "explanation_clusters" / "model=tiny"
                                    / "checkpoint=checkpoint-120" / "data.parquet")
    gini = _query(home, "select * from fct_layer_gini")
    assert gini.height == 2 * 2 * 3  # methods x percentiles x layers
    for row in gini.iter_rows(named=True):
        sel = lake_clusters.filter((pl.col("method") == row["method"])
                                   & (pl.col("filter_percentile") == row["filter_percentile"])
                                   & (pl.col("layer") == row["layer"]))
        counts = np.bincount(sel["cluster_id"].to_numpy(), minlength=4)
        assert row["n_clusters"] == 4
        assert row["gini"] == pytest.approx(_gini(counts), abs=1e-12)


def test_variance_summary_matches_numpy(built):
    home, _, _ = built
    clusters = _query(home, "select * from stg_explanation_clusters "
                            "where method = 'kmeans' and filter_percentile = 0")
    groups = [g["layer"].to_numpy() for _, g in clusters.group_by("cluster_id")]
    # the sample variance (ddof 1, the paper's code); a cluster of one neuron has none
    variances = [np.var(g, ddof=1) for g in groups if len(g) > 1]
    sizes = [len(g) for g in groups if len(g) > 1]
    summary = _query(home, "select * from fct_cluster_variance_summary "
                           "where method = 'kmeans' and filter_percentile = 0")
    assert summary["mean_variance"][0] == pytest.approx(np.mean(variances))
    assert summary["wavg_variance"][0] == pytest.approx(np.average(variances, weights=sizes))
    assert summary["uniform_variance"][0] == pytest.approx((2**2 - 1) / 12)
    shares = _query(home, "select sum(share) s from fct_cluster_sizes group by method, "
                          "filter_percentile")
    np.testing.assert_allclose(shares["s"], 1.0)


def _digest(home):
    return hashlib.sha256(str(_query(home, """
        select 'g', method, filter_percentile, layer, gini from fct_layer_gini
        union all select 's', method, filter_percentile, size_rank, share from fct_cluster_sizes
        union all select 'n', cast(layer as varchar), neuron, 0, score from dim_neurons
        order by all""").rows()).encode()).hexdigest()


def test_rerun_gives_the_same_tables_and_a_failed_run_keeps_the_warehouse(built, tmp_path):
    home, study_file, _ = built
    before = _digest(home)
    _run(home, study_file)
    assert _digest(home) == before
    old_bytes = (home / "warehouse.duckdb").read_bytes()
    broken = write_study(tmp_path, tmp_path / "no-such-checkpoints")
    with pytest.raises(Exception, match="does not exist"):
        _run(home, broken)
    assert (home / "warehouse.duckdb").read_bytes() == old_bytes


def test_explanation_only_study_from_a_table_file(tmp_path):
    rng = np.random.default_rng(0)
    words = ["months", "cities", "colours", "numbers", "animals", "foods"]
    table = pl.DataFrame({"layer": np.repeat(np.arange(3), 12), "neuron": np.tile(np.arange(12), 3),
                          "explanation": [f"the word is one of the {words[i % 6]}" for i in range(36)],
                          "score": rng.uniform(-0.2, 0.9, 36)})
    table.write_csv(tmp_path / "explanations.csv")
    study_file = write_study(tmp_path, None, model="gpt2-xl",
                             explanations={"source": "table", "path": "explanations.csv"})
    home = tmp_path / "home"
    outcome = _run(home, study_file)
    assert outcome.partition_key == "gpt2-xl/final"
    gini = _query(home, "select * from fct_layer_gini where model = 'gpt2-xl'")
    assert gini.height == 2 * 3 * 3
    assert _query(home, "select count(*) n from stg_explanations")["n"][0] == 36
    best = _query(home, "select layer, neuron, score, n_tokens from dim_neurons "
                        "order by score desc limit 1")  # the README's best-explained query
    top = table.sort("score", descending=True).row(0, named=True)
    assert (best["layer"][0], best["neuron"][0]) == (top["layer"], top["neuron"])
    assert best["n_tokens"][0] is None
    assert {k: v for k, v in outcome.checks.items() if k.endswith("_expectations")} == {
                              "explanations_expectations": True,
                              "explanation_embeddings_expectations": True,
                              "explanation_rejects_expectations": True,
                              "clusterings_expectations": True,
                              "explanation_clusters_expectations": True,
                              "explanation_cluster_null_counts_expectations": True,
                              "cluster_topics_expectations": True,
                              "study_agreement_expectations": True}  # empty: one study ran


def test_a_failing_expectation_blocks_downstream_and_keeps_the_warehouse(tmp_path):
    table = pl.DataFrame({"layer": [0, 0, 1, 1], "neuron": [0, 1, 0, 1],
                          "explanation": ["months", "cities", "months", "colours"],
                          "score": [0.5, 0.2, 0.9, 0.4]})
    table.write_csv(tmp_path / "good.csv")
    home = tmp_path / "home"
    _run(home, write_study(tmp_path, None, model="m", clustering={"k": 2},
                           explanations={"source": "table", "path": "good.csv"}))
    before = (home / "warehouse.duckdb").read_bytes()
    embeddings = home / "lake" / "explanation_embeddings" / "model=m" / "checkpoint=final" / "data.parquet"
    embeddings_before = embeddings.read_bytes()
    table.with_columns(pl.Series("score", [0.5, 2.0, 0.9, 0.4])).write_csv(tmp_path / "bad.csv")
    with pytest.raises(Exception, match="explanations_expectations"):
        _run(home, write_study(tmp_path, None, model="m", clustering={"k": 2},
                               explanations={"source": "table", "path": "bad.csv"}))
    assert embeddings.read_bytes() == embeddings_before  # downstream did not run
    assert (home / "warehouse.duckdb").read_bytes() == before


def test_a_conll_labels_file_is_probed(tmp_path, tiny_checkpoints, tiny_corpus):
    """A user's CoNLL file (word<TAB>label) replaces the corpus labels; its words need not be
    in the corpus or the tokenizer's vocabulary."""
    lines = []
    for (sid,), rows in tiny_corpus.head(900).group_by("sentence_id", maintain_order=True):
        lines += [f"{w}\t{p}" for w, p in zip(rows["word"], rows["pos"])]
        if sid % 7 == 0:
            lines.append("Reykjavik\tNNP")
        lines.append("")
    (tmp_path / "pos.conll").write_text("\n".join(lines))
    study_file = write_study(tmp_path, tiny_checkpoints, probing={
        "labels": "conll", "path": "pos.conll", "tasks": ["pos"], "lambdas": [0.0, 0.001],
        "n_random": 1})
    home = tmp_path / "home"
    outcome = _run(home, study_file)
    assert all(outcome.checks.values())
    minimal = _query(home, "select * from fct_probe_minimal_subset")
    assert minimal["task"].to_list() == ["pos"]
    assert minimal["accuracy_all"][0] > minimal["majority_accuracy"][0]
    n_words = _query(home, "select count(*) n from stg_probe_labels")["n"][0]
    assert n_words == sum(1 for line in lines if line)
