"""Explanation clusters (Ben Yaakov, Zafar, Shechter): explanations and their embeddings,
clusterings per method and score filter, the permutation null, topics, and the figures."""

import dagster as dg
import numpy as np
import polars as pl

from dagster_project.defs.shared import (Opened, empty, lake_checks, lake_specs, open_partition,
                                         partitioned_asset, partitioned_multi_asset, preview,
                                         report_asset, write_tables)
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from expectations.runner import row_count_equals
from extract.corpus import sentences
from extract.embeddings import embed_texts, load_embedder
from extract.explainer import explain_and_score
from extract.explanation_sources import read_explanation_table
from extract.openai_explanations import read_openai_explanations
from models.explanation_clusters.clustering import cluster_explanations, null_layer_counts
from models.explanation_clusters.topics import cluster_topics
from reports.plots import plot_cluster_variance, plot_layer_gini, plot_min_variance_histogram

STUDY = "explanation_clusters"


def runs(study: StudyConfig) -> bool:
    """Every study has explanations: local, from a table or from the OpenAI layout."""
    return True


_EXPLANATIONS = {
    "explanations": "One explanation and score per neuron. source: local explains each neuron "
                    "by its top tokens and scores it by the pooled Pearson correlation of true "
                    "and simulated activations on the held-out split; source: table reads a "
                    "CSV/Parquet file; source: openai reads the public dataset's "
                    "{layer}/{neuron}.jsonl layout.",
    "explanation_rejects": "What the OpenAI-layout reader could not use, one row per file or "
                           "neuron: malformed files (bad JSON, missing fields, wrong types, a "
                           "layer out of range, a duplicated neuron) with their paths, neurons "
                           "missing from the grid, and null scores (kept). Empty for the other "
                           "sources.",
}


def _problem_counts(rejects: pl.DataFrame) -> str:
    counts = rejects.group_by("problem").len().sort("problem")
    return ", ".join(f"{n} {p}" for p, n in counts.iter_rows()) or "no problems"


def _read_explanations(opened: Opened) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(explanations, rejects) from the configured source."""
    cfg, study = opened.study.explanations, opened.study
    if cfg.source == "table":
        return read_explanation_table(cfg.path), empty("explanation_rejects")
    if cfg.source == "openai":
        read = read_openai_explanations(cfg.path, cfg.n_layers, cfg.neurons_per_layer,
                                        progress=opened.progress("reading", "layer folders", 8))
        opened.log(f"read {read.n_files} explanation files: {read.explanations.height} neurons "
                   f"kept; {_problem_counts(read.rejects)}")
        if read.explanations.is_empty():
            raise dg.Failure(f"no valid explanation file in {cfg.path!r}: "
                             f"{_problem_counts(read.rejects)}")
        return read.explanations, read.rejects
    heldout = sentences(opened.read("corpus"), "heldout")
    if not heldout:
        raise dg.Failure("the corpus has no held-out sentences to score explanations on; "
                         "raise corpus.heldout_fraction or use a larger corpus")
    df = explain_and_score(opened.bridge(), opened.read("neuron_token_means"), heldout,
                           max_tokens=cfg.max_tokens, batch_size=study.extraction.batch_size,
                           progress=opened.progress("scoring"))
    return df, empty("explanation_rejects")


@partitioned_multi_asset(lake_specs(STUDY, _EXPLANATIONS, ["neuron_token_means", "corpus"],
                                    sections=["explanations", "compute"]))
def explanations(context: dg.AssetExecutionContext, nwh: NwhResource):
    opened = open_partition(context, nwh)
    df, rejects = _read_explanations(opened)
    scores = df["score"].to_numpy()
    yield from write_tables(opened, {"explanations": df, "explanation_rejects": rejects}, {
        "explanations": {
            "mean_score": float(np.nanmean(scores)) if len(df) else float("nan"),
            "null_scores": int(df["score"].is_null().sum() + df["score"].is_nan().sum()),
            "preview": preview(df.sort("score", descending=True, nulls_last=True))},
        "explanation_rejects": {
            "problems": _problem_counts(rejects),
            "rejected_files": preview(rejects.filter(~pl.col("problem").is_in(
                ["missing", "null_score"])), 50)}})


@partitioned_asset("explanation_embeddings", STUDY, ["explanations"],
                   "Unit-length sentence embedding of each neuron's explanation (embedded "
                   "all-MiniLM-L6-v2 by default); identical texts are embedded once.",
                   sections=["embedding", "compute"])
def explanation_embeddings(context: dg.AssetExecutionContext,
                           nwh: NwhResource) -> dg.MaterializeResult:
    opened = open_partition(context, nwh)
    df = opened.read("explanations")
    texts = df["explanation"].to_list()
    opened.log(f"embedding {len(texts)} explanations ({len(set(texts))} distinct)")
    cfg = opened.study.embedding
    compute = opened.study.compute.settings()
    vectors = embed_texts(load_embedder(cfg.model, compute.torch_device()), texts, cfg.batch_size,
                          dtype=compute.torch_dtype())
    out = df.select("layer", "neuron").with_columns(pl.Series("embedding", list(vectors)))
    return next(write_tables(opened, {"explanation_embeddings": out}, {"explanation_embeddings": {
        "dimensions": int(vectors.shape[1]), "distinct_texts": len(set(texts))}}, multi=False))


_CLUSTERING = {
    "clusterings": "One row per clustering (method, filter percentile, seed): its number of "
                   "clusters (K, or the number found by DBSCAN / HDBSCAN), layers, clustered "
                   "neurons, noise neurons and the adjusted mutual information of cluster and layer.",
    "explanation_clusters": "Cluster id of each neuron kept by the per-layer score percentile "
                            "filter, per clustering (-1 = noise: HDBSCAN's, and DBSCAN's "
                            "with clustering.dbscan_noise: keep).",
    "explanation_cluster_null_counts": "Permutation null: after each shuffle of the layer "
                                       "labels against the same clusters, each layer's "
                                       "histogram of neurons per cluster (how many clusters "
                                       "hold exactly n of its neurons; dbt computes gini_null).",
    "cluster_topics": "Topic words (class-based TF-IDF, BERTopic) and three representative "
                      "explanations of every cluster of every clustering.",
}


@partitioned_multi_asset(lake_specs(STUDY, _CLUSTERING,
                                    ["explanation_embeddings", "explanations"],
                                    sections=["clustering"]))
def explanation_clustering(context: dg.AssetExecutionContext, nwh: NwhResource):
    """KMeans, DBSCAN, HDBSCAN and the random baseline on the explanation embeddings, per score
    filter; the permutation null of the layer Gini; topic words per cluster."""
    opened = open_partition(context, nwh)
    settings = opened.study.clustering.settings()
    scores = opened.read("explanations")
    emb = opened.read("explanation_embeddings")
    joined = scores.join(emb, on=["layer", "neuron"], how="inner").sort(["layer", "neuron"])
    vectors = joined["embedding"].list.to_array(emb["embedding"].list.len().max()).to_numpy()
    clusterings, assignments = cluster_explanations(
        joined.select("layer", "neuron", "score"), vectors.astype(np.float32), settings,
        log=opened.log)
    opened.log(f"permutation null: {settings.null_shuffles} shuffles per clustering")
    yield from write_tables(opened, {
        "clusterings": clusterings, "explanation_clusters": assignments,
        "explanation_cluster_null_counts": null_layer_counts(assignments, settings.null_shuffles,
                                                             settings.seed),
        "cluster_topics": cluster_topics(assignments, scores, seed=settings.seed)})


def expected_rows(opened: Opened, table: str) -> list[dict]:
    """Row counts implied by the inputs."""
    if table == "explanations" and opened.study.needs_model:  # one per MLP neuron
        return [row_count_equals(opened.read("neuron_moments")
                                 .filter(pl.col("site") == "mlp").height)]
    if table == "explanation_embeddings":
        return [row_count_equals(opened.read("explanations").height)]
    if table == "explanation_clusters":
        return [row_count_equals(int(opened.read("clusterings")["n_neurons"].sum()))]
    if table == "cluster_topics":  # one row per non-empty cluster
        clustered = opened.read("explanation_clusters").filter(pl.col("cluster_id") >= 0)
        return [row_count_equals(clustered.select(
            "method", "filter_percentile", "seed", "cluster_id").unique().height)]
    return []


assets = [
    explanations, explanation_embeddings, explanation_clustering,
    report_asset("layer_gini", STUDY, ["fct_layer_gini"],
                 "Plot of fct_layer_gini: Gini per layer for each method, one line per filter "
                 "percentile with its permutation null as a band (Fig. 2 of Ben Yaakov et al.).",
                 draw=plot_layer_gini),
    report_asset("cluster_variance", STUDY,
                 ["fct_cluster_layer_variance", "fct_cluster_variance_summary"],
                 "Box plots of the clusters' layer variance per method with mean and WAVG "
                 "marked (Fig. 3 of Ben Yaakov et al.).", draw=plot_cluster_variance),
    report_asset("min_variance_cluster", STUDY, ["fct_min_variance_clusters"],
                 "Layer histogram of each method's minimal-variance cluster at filter 0, with "
                 "its topic words (Figs. 5-6 of Ben Yaakov et al.).",
                 draw=plot_min_variance_histogram),
]
checks = lake_checks(STUDY, expected_rows)
