"""Salient neurons (Durrani, Dalvi, Sajjad; LCA): labels, probe features, the elastic-net probes
with grid search, ranking, ablation, minimal subset and control task, and the figure."""

from collections.abc import Callable

import dagster as dg
import polars as pl
import torch

from dagster_project.defs.shared import (Opened, empty, lake_checks, lake_key, lake_specs,
                                         open_model, open_partition, partitioned_asset,
                                         study_code_version, upstream,
                                         partitioned_multi_asset, report_asset, write_tables)
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from expectations.runner import row_count_equals
from extract.probe_data import labelled_words, read_conll, word_features
from models.salient_neurons import accuracy_rows_per_task, run_lca
from reports.plots import plot_probe_layer_distribution

STUDY = "salient_neurons"


def runs(study: StudyConfig) -> bool:
    return study.runs_probing


def _sentence_label(study: StudyConfig) -> Callable[[int], str]:
    if study.probing.labels == "conll":
        return lambda sid: f"labels file {study.probing.path!r}, sentence {sid + 1}"
    return lambda sid: f"corpus sentence_id {sid}"


@dg.asset(key=lake_key("probe_labels"), deps=upstream(STUDY, ["corpus"]), group_name=STUDY,
          code_version=study_code_version(STUDY),
          kinds={"python", "parquet"},
          description="Words of the probing tasks with their label and their train / dev / test "
                      "split (seeded, by sentence): the synthetic corpus's labels or a CoNLL-style "
                      "file (word<TAB>label per line), one row per (task, word).")
def probe_labels(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    opened = open_model(context, nwh)
    cfg = opened.study.probing
    if not runs(opened.study):
        opened.log("probing skipped: it is disabled, the study runs no model, or the corpus has "
                   "no labels (set probing.labels: conll and probing.path)")
        df = empty("probe_labels")
    else:
        words = read_conll(cfg.path, cfg.tasks) if cfg.labels == "conll" else opened.read("corpus")
        df = labelled_words(words, cfg.tasks, cfg.seed, cfg.dev_fraction,
                            test_fraction=cfg.test_fraction, max_sentences=cfg.max_sentences)
    counts = df.group_by("task", "split").len().sort("task", "split")
    return next(write_tables(opened, {"probe_labels": df}, {"probe_labels": {
        "n_sentences": df["sentence_id"].n_unique(),
        "words_per_split": dg.MetadataValue.md(counts.to_pandas().to_markdown(index=False))}},
        multi=False))


@partitioned_asset("probe_features", STUDY, ["probe_labels", "checkpoint_fidelity"],
                   "Activations of every neuron of the probed site (probing.site: resid, the "
                   "layer outputs with the embedding output, as the paper; or mlp), all layers "
                   "concatenated layer by layer, at each labelled word, represented by its last "
                   "(or first / mean) subword token: the probes' input features.")
def probe_features(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    opened = open_partition(context, nwh)
    words = (opened.read("probe_labels").unique(["sentence_id", "word_index"])
             .select("sentence_id", "word_index", "word"))
    if words.is_empty():
        opened.log("probing skipped: probe_labels is empty")
        df, n_features = empty("probe_features"), 0
    else:
        cfg = opened.study.probing
        keys, features = word_features(opened.bridge(), words, cfg.representative,
                                       opened.study.extraction.batch_size, site=cfg.site,
                                       sentence_label=_sentence_label(opened.study),
                                       progress=opened.progress("probe features"))
        df = keys.with_columns(pl.lit(cfg.site).alias("site"),
                               pl.Series("activations", features.numpy()))
        n_features = int(features.shape[1])
    return next(write_tables(opened, {"probe_features": df}, {"probe_features": {
        "n_features": n_features, "site": opened.study.probing.site,
        "representative": opened.study.probing.representative}}, multi=False))


_LCA = {
    "probe_tasks": "Per probing task: sizes, majority-class baseline, the lambdas chosen by the "
                   "grid search (Alg. 2), the oracle's dev accuracy and the minimal subset (Alg. 4).",
    "probe_grid": "Every (lambda1, lambda2) of the grid search with A_top, A_bottom, A_noreg, "
                  "A_current on dev and the score S = alpha (A_top - A_bottom) - beta (A_noreg - A_current).",
    "probe_accuracy": "Test accuracy per task, labels (task or control), selection (all, top, "
                      "random, bottom, weight_magnitude), mode (masked or retrained), percent of "
                      "neurons and seed: the ablation, retraining and control-task runs.",
    "probe_neuron_ranking": "The task's neuron ordering (Alg. 3): rank, the weight-mass threshold "
                            "at which each neuron became salient, and its total |weight|.",
    "probe_label_ranking": "Per label: neurons by |weight|, their share of the label's weight "
                           "mass and the mass ranked above them (the per-label rankings).",
}


@partitioned_multi_asset(lake_specs(STUDY, _LCA, ["probe_features", "probe_labels",
                                                  "neuron_moments"]))
def salient_neurons(context: dg.AssetExecutionContext, nwh: NwhResource):
    """Linguistic Correlation Analysis (Durrani et al.): grid search, ranking, ablation, minimal
    subset and selectivity for every probing task."""
    opened = open_partition(context, nwh)
    site = opened.study.probing.site
    feats = opened.read("probe_features")
    if feats.is_empty():
        opened.log("probing skipped: probe_features is empty")
        frames = {t: empty(t) for t in _LCA}
    else:
        n_features = feats["activations"].list.len().max()
        matrix = torch.from_numpy(feats["activations"].list.to_array(n_features).to_numpy())
        width = opened.read("neuron_moments").filter(
            (pl.col("site") == site) & (pl.col("layer") == 0)).height
        frames = run_lca(opened.read("probe_labels"), feats.select("sentence_id", "word_index"),
                         matrix, width, settings=opened.study.probing.lca_settings(),
                         device=opened.study.compute.settings().torch_device(), log=opened.log)
    yield from write_tables(opened, {t: frames[t].with_columns(pl.lit(site).alias("site"))
                                     for t in _LCA})


def expected_rows(opened: Opened, table: str) -> list[dict]:
    """Empty when the study does not probe, else sized by the inputs."""
    if not runs(opened.study):
        return [row_count_equals(0)]
    if table == "probe_labels":
        return [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]
    labels = opened.read("probe_labels")
    if table == "probe_features":
        n_features = opened.read("neuron_moments").filter(
            pl.col("site") == opened.study.probing.site).height
        return [row_count_equals(labels.unique(["sentence_id", "word_index"]).height),
                {"type": "expect_column_values_to_be_between",  # every activation finite
                 "kwargs": {"column": "activations", "min_value": n_features,
                            "max_value": n_features}}]
    n_tasks = labels["task"].n_unique()
    tasks = opened.read("probe_tasks")
    p = opened.study.probing
    expected = {
        "probe_tasks": n_tasks,
        "probe_grid": n_tasks * len(p.lambdas) ** 2,
        "probe_accuracy": n_tasks * accuracy_rows_per_task(p.n_random),
        "probe_neuron_ranking": int(tasks["n_neurons"].sum()),
        "probe_label_ranking": int((tasks["n_neurons"] * tasks["n_labels"]).sum()),
    }
    return [row_count_equals(expected[table])]


assets = [probe_labels, probe_features, salient_neurons,
          report_asset("probe_layer_distribution", STUDY, ["fct_probe_layer_distribution"],
                       "Plot of fct_probe_layer_distribution: neurons of each task's minimal "
                       "subset per layer (Fig. 3 of Durrani et al.).",
                       draw=plot_probe_layer_distribution)]
checks = lake_checks(STUDY, expected_rows)
