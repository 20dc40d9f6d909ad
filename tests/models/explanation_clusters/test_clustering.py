from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from models.explanation_clusters.clustering import (ClusteringSettings, ami_with_layer, cluster_explanations,
                               dbscan_labels, hdbscan_labels, kmeans_labels, method_labels,
                               null_layer_counts, percentile_filter, random_labels, reassign_noise,
                               unique_rows)
from models.explanation_clusters.dbscan import dbscan_exact


def test_percentile_filter_keeps_scores_at_or_above_the_layer_percentile():
    scores = pl.DataFrame({"layer": [0] * 5 + [1] * 5, "neuron": list(range(5)) * 2,
                           "score": [0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 2.0, 3.0, 4.0, None]})
    # layer 0: median 0.3 -> keep 0.3, 0.4, 0.5; layer 1 (null dropped): 50th pct of 1..4 = 2.5.
    kept = percentile_filter(scores, 50)
    assert kept.filter(pl.col("layer") == 0)["neuron"].to_list() == [2, 3, 4]
    assert kept.filter(pl.col("layer") == 1)["neuron"].to_list() == [2, 3]
    # 90th percentile of 0.1..0.5 is 0.46 -> only 0.5.
    assert percentile_filter(scores, 90).filter(pl.col("layer") == 0)["neuron"].to_list() == [4]
    assert percentile_filter(scores, 0).height == 10


def test_kmeans_recovers_separated_groups_and_is_seeded():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 10
    x = np.concatenate([c + rng.normal(size=(20, 3)) for c in centres])
    labels = kmeans_labels(x, 3, seed=0)
    for g in range(3):
        assert len(set(labels[g * 20:(g + 1) * 20])) == 1
    assert len(set(labels)) == 3
    np.testing.assert_array_equal(labels, kmeans_labels(x, 3, seed=0))


def test_random_baseline_is_uniform_and_seeded():
    labels = random_labels(40000, 4, seed=1)
    counts = np.bincount(labels, minlength=4)
    assert np.all(np.abs(counts / 40000 - 0.25) < 0.01)
    np.testing.assert_array_equal(labels, random_labels(40000, 4, seed=1))


def test_cluster_explanations_tables():
    neurons = pl.DataFrame({"layer": [0, 0, 1, 1], "neuron": [0, 1, 0, 1],
                            "score": [0.1, 0.9, 0.2, 0.8]})
    emb = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], dtype=np.float32)
    clusterings, assignments = cluster_explanations(
        neurons, emb, ClusteringSettings(["kmeans", "random"], [0, 50], None, seed=0))
    assert clusterings.filter(pl.col("filter_percentile") == 0)["n_clusters"].to_list() == [2, 2]
    assert clusterings.filter(pl.col("filter_percentile") == 50)["n_neurons"].to_list() == [2, 2]
    km = assignments.filter((pl.col("method") == "kmeans") & (pl.col("filter_percentile") == 0))
    assert km["cluster_id"][0] == km["cluster_id"][1] != km["cluster_id"][2] == km["cluster_id"][3]


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown methods \\['spectral'\\]"):
        ClusteringSettings(["spectral"])


def test_cluster_ids_stay_below_n_clusters_when_a_filter_keeps_fewer_neurons_than_k():
    neurons = pl.DataFrame({"layer": [0, 0, 0], "neuron": [0, 1, 2], "score": [0.1, 0.5, 0.9]})
    emb = np.eye(3, dtype=np.float32)
    clusterings, assignments = cluster_explanations(
        neurons, emb, ClusteringSettings(["kmeans", "random"], [90], k=5, seed=0))
    assert clusterings["n_clusters"].to_list() == [1, 1]
    assert assignments["cluster_id"].to_list() == [0, 0]


def _blobs(n_per: int, n_blobs: int = 3, dim: int = 8, spread: float = 0.03, seed: int = 0):
    """Unit vectors around `n_blobs` orthogonal directions; labels = blob index."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.eye(dim)[b] + spread * rng.normal(size=(n_per, dim))
                        for b in range(n_blobs)])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), \
        np.repeat(np.arange(n_blobs), n_per)


def test_unique_rows_round_trips_and_counts():
    x = np.array([[1, 2], [3, 4], [1, 2], [1, 2]], dtype=np.float32)
    distinct, inverse, counts = unique_rows(x)
    np.testing.assert_array_equal(distinct[inverse], x)
    assert sorted(counts.tolist()) == [1, 3]


def test_kmeans_on_duplicated_rows_equals_kmeans_on_the_weighted_distinct_rows():
    x, truth = _blobs(50)
    doubled = np.concatenate([x, x])
    labels = kmeans_labels(doubled, 3, seed=0)
    np.testing.assert_array_equal(labels[:150], labels[150:])
    assert adjusted_mutual_info_score(truth, labels[:150]) == pytest.approx(1.0)


def test_dbscan_exact_recovers_blobs_and_marks_an_outlier_as_noise():
    x, truth = _blobs(40)
    outlier = np.full((1, 8), -1 / np.sqrt(8), dtype=np.float32)
    labels = dbscan_labels(np.concatenate([x, outlier]), eps=0.05, min_samples=5,
                           max_fit=10_000, seed=0)
    assert labels[-1] == -1
    assert adjusted_mutual_info_score(truth, labels[:-1]) == pytest.approx(1.0)


def test_dbscan_fitted_on_a_sample_labels_the_rest_like_the_exact_run():
    x, truth = _blobs(300)
    sampled = dbscan_labels(x, eps=0.05, min_samples=10, max_fit=200, seed=0)
    assert (sampled >= 0).all()
    assert adjusted_mutual_info_score(truth, sampled) == pytest.approx(1.0)


def test_hdbscan_finds_the_blobs_with_and_without_a_fit_sample():
    x, truth = _blobs(150)
    for max_fit in (10_000, 200):
        labels = hdbscan_labels(x, min_cluster_size=10, dims=3, max_fit=max_fit, seed=0)
        mask = labels >= 0
        assert mask.mean() > 0.9
        assert adjusted_mutual_info_score(truth[mask], labels[mask]) == pytest.approx(1.0)


def test_noise_goes_to_the_nearest_cluster_centre_by_cosine():
    x = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [0.9, 0.2], [0.2, 0.9]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, -1, -1])
    assert reassign_noise(x, labels).tolist() == [0, 0, 1, 1, 0, 1]
    assert reassign_noise(x, np.full(6, -1)).tolist() == [-1] * 6  # no cluster to join


def test_noise_keep_leaves_minus_one_and_reassign_leaves_none():
    x, _ = _blobs(40)
    x = np.concatenate([x, np.full((2, 8), -1 / np.sqrt(8), dtype=np.float32)])
    keep = ClusteringSettings(["dbscan"], dbscan_eps=0.05, dbscan_min_samples=5,
                              dbscan_noise="keep")
    assert (method_labels("dbscan", x, 3, keep) == -1).sum() == 2
    reassign = ClusteringSettings(["dbscan"], dbscan_eps=0.05, dbscan_min_samples=5)
    labels = method_labels("dbscan", x, 3, reassign)
    assert (labels >= 0).all() and sorted(set(labels.tolist())) == [0, 1, 2]


def test_ami_ignores_noise_and_is_one_when_clusters_are_the_layers():
    layers = np.array([0, 0, 1, 1, 2, 2, 2])
    assert ami_with_layer(layers, np.array([5, 5, 7, 7, 9, 9, -1])) == pytest.approx(1.0)
    assert ami_with_layer(layers, np.full(7, -1)) is None


def test_null_counts_are_each_layers_histogram_of_the_shuffled_cell_counts():
    """Against an independent count: the same seeded permutations, the (layer, cluster) cells
    counted by polars group-bys, then each layer's counts tallied."""
    rng = np.random.default_rng(0)
    n = 600
    assignments = pl.DataFrame({"method": "kmeans", "filter_percentile": 0, "seed": 0,
                                "layer": rng.integers(0, 4, n), "neuron": np.arange(n),
                                "cluster_id": rng.integers(-1, 5, n)})
    null = null_layer_counts(assignments, n_shuffles=20, seed=3)
    clustered = assignments.filter(pl.col("cluster_id") >= 0)
    expected = []
    for s in range(20):
        shuffled = np.random.default_rng([3, s]).permutation(clustered["layer"].to_numpy())
        cells = clustered.with_columns(layer=pl.Series(shuffled)).group_by(
            "layer", "cluster_id").len("n_neurons")
        expected.append(cells.group_by("layer", "n_neurons").len("n_clusters_holding")
                        .with_columns(shuffle=pl.lit(s)))
    order = ["shuffle", "layer", "n_neurons"]
    expected = pl.concat(expected).select(*order, "n_clusters_holding").cast(pl.Int64).sort(order)
    assert null.select(*order, "n_clusters_holding").sort(order).equals(expected)
    assert null["n_clusters_holding"].min() >= 1 and null["n_neurons"].min() >= 1
    # each shuffle keeps every layer's size, and no layer fills more than the 5 clusters
    for _, one in null.group_by("shuffle"):
        by_layer = one.group_by("layer").agg(
            (pl.col("n_neurons") * pl.col("n_clusters_holding")).sum().alias("size"),
            pl.col("n_clusters_holding").sum().alias("clusters")).sort("layer")
        assert by_layer["size"].to_list() == \
            clustered.group_by("layer").len().sort("layer")["len"].to_list()
        assert by_layer["clusters"].max() <= 5
    assert null.equals(null_layer_counts(assignments, 20, seed=3))  # seeded
    assert not null.equals(null_layer_counts(assignments, 20, seed=4))


def test_every_method_runs_through_cluster_explanations_with_ami_and_noise_columns():
    x, truth = _blobs(60)
    neurons = pl.DataFrame({"layer": truth, "neuron": np.arange(len(truth)),
                            "score": np.linspace(0, 1, len(truth))})
    settings = ClusteringSettings(["kmeans", "dbscan", "hdbscan", "random"], [0], k=3,
                                  dbscan_eps=0.05, dbscan_min_samples=5,
                                  hdbscan_min_cluster_size=10, hdbscan_dims=3,
                                  hdbscan_noise="reassign")
    clusterings, assignments = cluster_explanations(neurons, x, settings)
    ami = dict(zip(clusterings["method"], clusterings["ami_layer"]))
    assert ami["kmeans"] == ami["dbscan"] == ami["hdbscan"] == pytest.approx(1.0)
    assert abs(ami["random"]) < 0.05
    assert clusterings["n_noise"].to_list() == [0, 0, 0, 0]
    assert assignments.height == 4 * len(truth)


def test_density_methods_on_fewer_neurons_than_a_cluster_leave_everything_noise():
    x, _ = _blobs(2)
    assert hdbscan_labels(x, min_cluster_size=10, dims=5, max_fit=100, seed=0).tolist() == [-1] * 6
    settings = ClusteringSettings(["dbscan", "hdbscan"], [0])
    clusterings, _ = cluster_explanations(
        pl.DataFrame({"layer": [0, 0, 1, 1, 2, 2], "neuron": [0, 1] * 3, "score": [0.5] * 6}),
        x, settings)
    assert clusterings["n_clusters"].to_list() == [0, 0]
    assert clusterings["n_noise"].to_list() == [6, 6]


def test_hdbscan_keeps_its_noise_by_default():
    """The paper's HDBSCAN noise stays noise: explanations in no dense region (a diffuse
    background around three dense topics) are -1 (counted in n_noise, left out of every metric)
    unless hdbscan_noise: reassign. (PCA here: UMAP pulls so small a background into clusters.)"""
    x, truth = _blobs(60, dim=16)
    background = np.random.default_rng(5).normal(size=(60, x.shape[1]))
    x = np.concatenate([x, background / np.linalg.norm(background, axis=1, keepdims=True)])
    settings = ClusteringSettings(["hdbscan"], [0], hdbscan_min_cluster_size=15, hdbscan_dims=3,
                                  hdbscan_reduction="pca")
    labels = method_labels("hdbscan", x, 3, settings)
    assert (labels[180:] == -1).sum() >= 10
    clustered = labels[:180] >= 0
    assert adjusted_rand_score(truth[clustered], labels[:180][clustered]) > 0.9
    reassigned = replace(settings, hdbscan_noise="reassign")
    assert (method_labels("hdbscan", x, 3, reassigned) >= 0).all()


def test_hdbscan_on_umap_recovers_topics_and_is_seeded():
    """BERTopic's reduction, UMAP to a few dimensions (seeded), then HDBSCAN."""
    x, truth = _blobs(60, dim=16)
    settings = ClusteringSettings(["hdbscan"], [0], hdbscan_min_cluster_size=15, hdbscan_dims=3)
    assert settings.hdbscan_reduction == "umap"
    labels = method_labels("hdbscan", x, 3, settings)
    clustered = labels >= 0
    assert clustered.mean() > 0.9 and adjusted_rand_score(truth[clustered], labels[clustered]) > 0.9
    assert (method_labels("hdbscan", x, 3, settings) == labels).all()


def test_dbscan_is_exact_by_default_and_sampled_on_request():
    x, truth = _blobs(40, n_blobs=3, dim=10, spread=0.05)
    exact = ClusteringSettings(["dbscan"], dbscan_eps=0.05, dbscan_min_samples=5,
                               dbscan_noise="keep")
    sampled = replace(exact, dbscan_fit="sampled", max_fit_neurons=60)
    assert exact.dbscan_fit == "exact"
    labels = method_labels("dbscan", x, 3, exact)
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
    np.testing.assert_array_equal(labels, dbscan_exact(x, 0.05, 5))
    # fitted on 60 of 120 with min_samples scaled to 2: still the three blobs here
    assert adjusted_rand_score(truth, method_labels("dbscan", x, 3, sampled)) > 0.9
    with pytest.raises(ValueError, match="dbscan_fit"):
        ClusteringSettings(dbscan_fit="approximate")


def test_umaps_kernels_are_cached_on_disk_for_the_next_process(tmp_path):
    """After `umap_with_cached_kernels`, a UMAP kernel that umap compiles without numba's cache
    writes its machine code to the cache directory, where the next process finds it."""
    import os
    import subprocess
    import sys

    script = """
import numpy as np
from models.explanation_clusters.clustering import umap_with_cached_kernels
umap_with_cached_kernels()
from umap.utils import fast_knn_indices  # one of umap's kernels compiled without cache=True
print(fast_knn_indices(np.arange(12.0).reshape(4, 3), 2).shape)
print(sum(fast_knn_indices.stats.cache_hits.values()))
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    assert runs[0] == ["(4,", "2)", "0"]  # compiled, then saved
    assert any(tmp_path.rglob("*fast_knn_indices*.nbi"))
    assert runs[1] == ["(4,", "2)", "1"]  # loaded by the second process
