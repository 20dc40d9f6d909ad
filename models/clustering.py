"""Clustering of neuron explanation embeddings (explanation-clusters study, Ben Yaakov et al.).

Pipeline per (method, filter percentile): keep the neurons whose explanation score is at least
their layer's p-th percentile (Sec. 2.2 of the paper), then cluster the kept embeddings.
Methods: ``kmeans`` (K = number of layers unless configured) and ``random``, the uniform random
baseline that assigns each neuron to one of K clusters independently with equal probability.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from sklearn.cluster import KMeans

METHODS = ("kmeans", "random")


def percentile_filter(scores: pl.DataFrame, percentile: int) -> pl.DataFrame:
    """Rows of `scores` (layer, neuron, score) whose score is >= their layer's p-th percentile.

    The percentile is numpy's default (linear interpolation) over the layer's non-null scores.
    A null or NaN score never passes a filter above 0; at 0 every neuron is kept.
    """
    if not 0 <= percentile < 100:
        raise ValueError(f"filter_percentile must be in [0, 100), got {percentile}")
    if percentile == 0:
        return scores
    valid = scores.filter(pl.col("score").is_not_null() & pl.col("score").is_not_nan())
    thresholds = valid.group_by("layer").agg(
        pl.col("score").quantile(percentile / 100, interpolation="linear").alias("threshold"))
    return (valid.join(thresholds, on="layer")
                 .filter(pl.col("score") >= pl.col("threshold"))
                 .drop("threshold")
                 .sort(["layer", "neuron"]))


def kmeans_labels(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    """KMeans (k-means++ init, 10 restarts, seeded) cluster label of each embedding row."""
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(embeddings)


def random_labels(n: int, k: int, seed: int) -> np.ndarray:
    """Uniform random baseline: each of `n` neurons drawn into one of `k` clusters."""
    return np.random.default_rng(seed).integers(0, k, size=n)


def cluster_explanations(
    neurons: pl.DataFrame,
    embeddings: np.ndarray,
    methods: Sequence[str],
    filter_percentiles: Sequence[int],
    k: int | None,
    seed: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cluster explanation embeddings for every method and filter percentile.

    `neurons` has columns layer, neuron, score, aligned row by row with `embeddings`.
    Returns (clusterings, assignments): one row per clustering with its n_clusters, n_layers
    and n_neurons, and one row per (clustering, neuron) with its cluster_id.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"clustering: unknown methods {unknown}; known methods: {list(METHODS)}")
    if len(neurons) != len(embeddings):
        raise ValueError(f"clustering: {len(neurons)} neurons but {len(embeddings)} embeddings")
    n_layers = neurons["layer"].n_unique()
    k = k or n_layers
    indexed = neurons.with_row_index("row")
    clusterings, assignments = [], []
    for p in filter_percentiles:
        kept = percentile_filter(indexed, p)
        x = embeddings[kept["row"].to_numpy()]
        n_clusters = min(k, len(x))  # never more clusters than neurons, for every method
        for method in methods:
            labels = (kmeans_labels(x, n_clusters, seed) if method == "kmeans"
                      else random_labels(len(x), n_clusters, seed))
            clusterings.append({"method": method, "filter_percentile": p, "seed": seed,
                                "n_clusters": n_clusters, "n_layers": n_layers,
                                "n_neurons": len(x)})
            assignments.append(kept.select("layer", "neuron").with_columns(
                pl.lit(method).alias("method"), pl.lit(p).alias("filter_percentile"),
                pl.lit(seed).alias("seed"), pl.Series("cluster_id", labels, dtype=pl.Int64)))
    return pl.DataFrame(clusterings), pl.concat(assignments)
