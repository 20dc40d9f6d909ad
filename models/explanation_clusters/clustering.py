"""Clustering of neuron explanation embeddings (explanation-clusters study, Ben Yaakov et al.).

Pipeline per (method, filter percentile): keep the neurons whose explanation score is at least
their layer's p-th percentile (Sec. 2.2 of the paper), then cluster the kept embeddings
(Sec. 2.3.2). Methods:

- ``kmeans``: K = number of layers unless configured; identical embeddings are clustered once
  with their multiplicity as sample weight (the same objective, far fewer rows at scale).
- ``dbscan``: cosine metric; noise points reassigned to the nearest cluster centre (the paper's
  choice, Sec. 2.3.2) or kept as noise (cluster_id -1): ``dbscan_noise``.
- ``hdbscan``: the BERTopic pipeline (Grootendorst 2022) the paper uses: embeddings reduced by
  UMAP to 5 dimensions (BERTopic's settings: 15 neighbours, min_dist 0, cosine; seeded), then
  the ``hdbscan`` package; its noise stays noise (cluster_id -1, as in the paper and its code):
  ``hdbscan_noise: keep``. ``hdbscan_reduction: pca`` is the option.
- ``random``: the uniform baseline, each neuron in one of K clusters with equal probability.

DBSCAN is exact at any size by default (:func:`models.explanation_clusters.dbscan.dbscan_exact`:
two blocked passes over the similarity matrix); ``dbscan_fit: sampled`` and HDBSCAN fit at most
``max_fit_neurons`` neurons (a seeded sample) and extend the others to the fitted clusters
(DBSCAN: the label of the nearest core point within eps; HDBSCAN: ``approximate_predict``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.cluster import DBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_mutual_info_score

from core.schema import SCHEMAS
from models.explanation_clusters.dbscan import NOISE, dbscan_exact, unit_rows

METHODS = ("kmeans", "dbscan", "hdbscan", "random")
NOISE_CHOICES = ("reassign", "keep")
REDUCTIONS = ("umap", "pca")
DBSCAN_FITS = ("exact", "sampled")


@dataclass(frozen=True)
class ClusteringSettings:
    """Parameters of every method; defaults are the paper's where it gives them."""

    methods: Sequence[str] = METHODS
    filter_percentiles: Sequence[int] = (0, 50, 90)
    k: int | None = None  # KMeans and random: None = number of layers
    seed: int = 0
    kmeans_n_init: int = 10  # the paper's: its code ran KMeans with scikit-learn 1.3's default
    dbscan_eps: float = 0.3  # cosine distance
    dbscan_min_samples: int = 10
    hdbscan_min_cluster_size: int = 10
    hdbscan_dims: int = 5  # BERTopic's UMAP n_components
    hdbscan_reduction: str = "umap"  # umap (BERTopic's) | pca
    dbscan_fit: str = "exact"  # exact (blocked, any size) | sampled (max_fit_neurons, faster)
    dbscan_noise: str = "reassign"  # reassign (the paper's) | keep
    hdbscan_noise: str = "keep"  # keep (the paper's: noise stays -1) | reassign
    max_fit_neurons: int = 20_000  # density methods: fit on a sample above this size
    null_shuffles: int = 999  # permutation null of the layer Gini: p-values down to 1/1000

    def __post_init__(self):
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"clustering: unknown methods {unknown}; known methods: {list(METHODS)}")
        for name, value, choices in (("dbscan_noise", self.dbscan_noise, NOISE_CHOICES),
                                     ("hdbscan_noise", self.hdbscan_noise, NOISE_CHOICES),
                                     ("hdbscan_reduction", self.hdbscan_reduction, REDUCTIONS),
                                     ("dbscan_fit", self.dbscan_fit, DBSCAN_FITS)):
            if value not in choices:
                raise ValueError(f"clustering.{name} must be one of {list(choices)}, "
                                 f"got {value!r}")


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


def unique_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct rows, index of each row's distinct row, multiplicity of each distinct row)."""
    x = np.ascontiguousarray(x)
    keys = x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True,
                                          return_counts=True)
    return x[first], inverse.ravel(), counts


def kmeans_labels(embeddings: np.ndarray, k: int, seed: int, n_init: int = 10) -> np.ndarray:
    """KMeans (k-means++ init, `n_init` restarts, seeded) cluster label of each embedding row;
    identical rows are fitted once, weighted by their multiplicity."""
    distinct, inverse, counts = unique_rows(embeddings)
    k = min(k, len(distinct))
    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return model.fit_predict(distinct, sample_weight=counts.astype(np.float64))[inverse]


def random_labels(n: int, k: int, seed: int) -> np.ndarray:
    """Uniform random baseline: each of `n` neurons drawn into one of `k` clusters."""
    return np.random.default_rng(seed).integers(0, k, size=n)


def nearest_rows(x: np.ndarray, targets: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(index of the most cosine-similar row of `targets`, its cosine distance) for each row of
    `x`, computed in chunks of rows so memory stays at chunk x len(targets)."""
    xu, tu = unit_rows(x), unit_rows(targets)
    best = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), chunk):
        sims = xu[start:start + chunk] @ tu.T
        best[start:start + chunk] = sims.argmax(axis=1)
        dist[start:start + chunk] = 1.0 - sims.max(axis=1)
    return best, dist


def reassign_noise(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Give every noise point (-1) the label of the nearest cluster centre by cosine similarity
    (the paper's handling of DBSCAN's unclustered points). No cluster: labels unchanged."""
    clusters = np.unique(labels[labels != NOISE])
    noise = labels == NOISE
    if len(clusters) == 0 or not noise.any():
        return labels
    centres = np.stack([unit_rows(x[labels == c]).mean(axis=0) for c in clusters])
    nearest, _ = nearest_rows(x[noise], centres)
    out = labels.copy()
    out[noise] = clusters[nearest]
    return out


def _fit_sample(n: int, max_fit: int, seed: int) -> np.ndarray:
    """Sorted indices of the neurons a density method is fitted on: all, or a seeded sample."""
    if n <= max_fit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_fit, replace=False))


def dbscan_labels(x: np.ndarray, eps: float, min_samples: int, max_fit: int,
                  *, seed: int) -> np.ndarray:
    """DBSCAN (Ester et al. 1996) with cosine distance; -1 = noise.

    Exact when len(x) <= max_fit. Above, DBSCAN runs on a seeded sample of max_fit neurons with
    min_samples scaled by the sample fraction (the same density), and every other neuron takes
    the label of its nearest core point when that is within eps, else noise.
    """
    fit = _fit_sample(len(x), max_fit, seed)
    scaled_min = max(2, round(min_samples * len(fit) / len(x)))
    distinct, inverse, counts = unique_rows(x[fit])
    model = DBSCAN(eps=eps, min_samples=scaled_min, metric="cosine", algorithm="brute",
                   n_jobs=-1).fit(distinct, sample_weight=counts)
    labels = np.full(len(x), NOISE, dtype=np.int64)
    labels[fit] = model.labels_[inverse]
    rest = np.setdiff1d(np.arange(len(x)), fit)
    cores = model.core_sample_indices_
    if len(rest) and len(cores):
        nearest, dist = nearest_rows(x[rest], distinct[cores])
        labels[rest] = np.where(dist <= eps, model.labels_[cores][nearest], NOISE)
    return labels


def umap_with_cached_kernels():
    """The ``umap`` module, with every numba kernel of umap and pynndescent cached on disk.

    252 of their kernels are compiled without ``cache=True``, so every process that fitted a
    UMAP compiled them again: 25 s of a 37 s first fit of 20,000 neurons here (11 s in a second
    fit in the same process). Caching them (``Dispatcher.enable_caching``, what ``cache=True``
    does) lets later processes load the machine code instead: that first fit then takes 20 s.
    The code, and so the embedding, is the same."""
    import umap
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("umap", "pynndescent"):
            for kernel in list(vars(module).values()):
                if isinstance(kernel, Dispatcher) and isinstance(kernel._cache, NullCache):
                    kernel.enable_caching()
    return umap


def reduce_dimensions(x: np.ndarray, fit: np.ndarray, dims: int, method: str, seed: int
                      ) -> np.ndarray:
    """`x` reduced to `dims` dimensions by a reduction fitted on rows `fit`: UMAP with BERTopic's
    settings (15 neighbours, min_dist 0, cosine metric, seeded) or PCA."""
    dims = min(dims, x.shape[1], len(fit) - 2)
    if method == "pca":
        return PCA(n_components=dims, random_state=seed).fit(x[fit]).transform(x)
    umap = umap_with_cached_kernels()
    reducer = umap.UMAP(n_components=dims, n_neighbors=min(15, len(fit) - 1), min_dist=0.0,
                        metric="cosine", random_state=seed).fit(x[fit])
    if len(fit) == len(x):
        return reducer.embedding_
    out = np.empty((len(x), dims), dtype=np.float64)
    out[fit] = reducer.embedding_
    rest = np.setdiff1d(np.arange(len(x)), fit)
    out[rest] = reducer.transform(x[rest])
    return out


def hdbscan_labels(x: np.ndarray, min_cluster_size: int, dims: int, max_fit: int,
                   *, seed: int, reduction: str = "umap") -> np.ndarray:
    """HDBSCAN (``hdbscan`` package) on reduced unit embeddings, as BERTopic clusters documents
    (:func:`reduce_dimensions`); -1 = noise. Fitted on at most max_fit neurons (seeded sample),
    the rest labelled by ``approximate_predict``."""
    import hdbscan

    labels = np.full(len(x), NOISE, dtype=np.int64)
    if len(x) <= max(min_cluster_size, dims + 2):  # too few neurons for one cluster: all noise
        return labels
    fit = _fit_sample(len(x), max_fit, seed)
    reduced = reduce_dimensions(x, fit, dims, reduction, seed).astype(np.float64)
    model = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, prediction_data=True,
                            core_dist_n_jobs=1).fit(reduced[fit])
    labels[fit] = model.labels_
    rest = np.setdiff1d(np.arange(len(x)), fit)
    if len(rest) and model.labels_.max() >= 0:
        labels[rest], _ = hdbscan.approximate_predict(model, reduced[rest])
    return labels


def _dense_ids(labels: np.ndarray) -> np.ndarray:
    """Relabel the clusters 0..n-1 in the order of their ids (some may have emptied); -1 stays."""
    clusters = np.unique(labels[labels != NOISE])
    out = np.full(len(labels), NOISE, dtype=np.int64)
    mask = labels != NOISE
    out[mask] = np.searchsorted(clusters, labels[mask])
    return out


def method_labels(method: str, x: np.ndarray, n_layers: int, s: ClusteringSettings) -> np.ndarray:
    """Cluster label (0..n-1, or -1 for kept noise) of each row of `x` under `method`."""
    k = min(s.k or n_layers, len(x))
    if method == "kmeans":
        return kmeans_labels(x, k, s.seed, s.kmeans_n_init)
    if method == "random":
        return random_labels(len(x), k, s.seed)
    if method == "dbscan":
        labels = (dbscan_exact(x, s.dbscan_eps, s.dbscan_min_samples) if s.dbscan_fit == "exact"
                  else dbscan_labels(x, s.dbscan_eps, s.dbscan_min_samples, s.max_fit_neurons,
                                     seed=s.seed))
        noise = s.dbscan_noise
    else:
        labels = hdbscan_labels(x, s.hdbscan_min_cluster_size, s.hdbscan_dims,
                                s.max_fit_neurons, seed=s.seed, reduction=s.hdbscan_reduction)
        noise = s.hdbscan_noise
    if noise == "reassign":
        labels = reassign_noise(x, labels)
    return _dense_ids(labels)


def ami_with_layer(layers: np.ndarray, labels: np.ndarray) -> float | None:
    """Adjusted mutual information (arithmetic normalisation) between cluster and layer over the
    clustered (non-noise) neurons; None (null in SQL) when fewer than two are clustered."""
    mask = labels != NOISE
    if mask.sum() < 2:
        return None
    return float(adjusted_mutual_info_score(layers[mask], labels[mask]))


def cluster_explanations(
    neurons: pl.DataFrame, embeddings: np.ndarray, settings: ClusteringSettings,
    log=lambda msg: None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cluster explanation embeddings for every method and filter percentile.

    `neurons` has columns layer, neuron, score, aligned row by row with `embeddings`.
    Returns (clusterings, assignments): one row per clustering with its n_clusters (K; for the
    density methods the number found), n_layers, n_neurons, n_noise and the adjusted mutual
    information of cluster and layer; and one row per (clustering, neuron) with its cluster_id
    (-1 = noise: HDBSCAN's by default, DBSCAN's with dbscan_noise: keep).
    """
    if len(neurons) != len(embeddings):
        raise ValueError(f"clustering: {len(neurons)} neurons but {len(embeddings)} embeddings")
    n_layers = neurons["layer"].n_unique()
    indexed = neurons.with_row_index("row")
    clusterings, assignments = [], []
    for p in settings.filter_percentiles:
        kept = percentile_filter(indexed, p)
        x = embeddings[kept["row"].to_numpy()]
        layers = kept["layer"].to_numpy()
        for method in settings.methods:
            log(f"clustering: {method}, filter {p}%, {len(x)} neurons")
            labels = method_labels(method, x, n_layers, settings) if len(x) else np.zeros(0, int)
            clusterings.append({
                "method": method, "filter_percentile": p, "seed": settings.seed,
                "n_clusters": int(labels.max(initial=NOISE) + 1), "n_layers": n_layers,
                "n_neurons": len(x), "n_noise": int((labels == NOISE).sum()),
                "ami_layer": ami_with_layer(layers, labels)})
            assignments.append(kept.select("layer", "neuron").with_columns(
                pl.lit(method).alias("method"), pl.lit(p).alias("filter_percentile"),
                pl.lit(settings.seed).alias("seed"),
                pl.Series("cluster_id", labels, dtype=pl.Int64)))
    return pl.DataFrame(clusterings), pl.concat(assignments)


def null_layer_counts(assignments: pl.DataFrame, n_shuffles: int, seed: int) -> pl.DataFrame:
    """Permutation null of the layer x cluster contingency table of every clustering, as each
    layer's histogram of counts.

    For each shuffle s = 0..n_shuffles-1, the layer labels of the clustered (non-noise) neurons
    are permuted (seeded by seed and s) against the same cluster assignment and the neurons of
    each (layer, cluster) counted. The Gini of a layer depends on its counts only through their
    histogram (macro ``gini_over_clusters``: equal counts are interchangeable), so a row says
    that `n_clusters_holding` clusters hold exactly `n_neurons` (>= 1) of the layer's neurons
    under that shuffle; the clusters holding none follow from the clustering's n_clusters. At
    307,200 neurons and 999 shuffles: 11.2 M rows instead of 95.3 M non-zero cells.
    """
    schema = SCHEMAS["explanation_cluster_null_counts"]
    if n_shuffles == 0:
        return pl.DataFrame(schema=schema)
    out = []
    keys = ["method", "filter_percentile", "seed"]
    for key, rows in assignments.filter(pl.col("cluster_id") != NOISE).group_by(
            keys, maintain_order=True):
        layers = rows["layer"].to_numpy()
        clusters = rows["cluster_id"].to_numpy()
        n_layers, n_clusters = int(layers.max()) + 1, int(clusters.max()) + 1
        # no (layer, cluster) cell holds more than its layer or its cluster
        width = min(np.bincount(layers).max(), np.bincount(clusters).max()) + 1
        layer_offset = np.repeat(np.arange(n_layers) * width, n_clusters)  # of each cell
        shuffles, cells, held = [], [], []
        for s in range(n_shuffles):
            rng = np.random.default_rng([seed, s])
            count = np.bincount(rng.permutation(layers) * n_clusters + clusters,
                                minlength=n_layers * n_clusters)
            histogram = np.bincount(layer_offset + count, minlength=n_layers * width)
            histogram[::width] = 0  # the empty clusters: implied by n_clusters
            nz = np.flatnonzero(histogram)
            shuffles.append(np.full(len(nz), s))
            cells.append(nz)
            held.append(histogram[nz])
        cell = np.concatenate(cells)
        out.append(pl.DataFrame({
            "method": key[0], "filter_percentile": key[1], "seed": key[2],
            "shuffle": np.concatenate(shuffles), "layer": cell // width,
            "n_neurons": cell % width, "n_clusters_holding": np.concatenate(held)}))
    if not out:
        return pl.DataFrame(schema=schema)
    return pl.concat([df.cast(schema) for df in out])
