import numpy as np
import polars as pl
import pytest

from models.clustering import (cluster_explanations, kmeans_labels, percentile_filter,
                               random_labels)


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
    clusterings, assignments = cluster_explanations(neurons, emb, ["kmeans", "random"],
                                                    [0, 50], None, seed=0)
    assert clusterings.filter(pl.col("filter_percentile") == 0)["n_clusters"].to_list() == [2, 2]
    assert clusterings.filter(pl.col("filter_percentile") == 50)["n_neurons"].to_list() == [2, 2]
    km = assignments.filter((pl.col("method") == "kmeans") & (pl.col("filter_percentile") == 0))
    assert km["cluster_id"][0] == km["cluster_id"][1] != km["cluster_id"][2] == km["cluster_id"][3]


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown methods \\['spectral'\\]"):
        cluster_explanations(pl.DataFrame({"layer": [0], "neuron": [0], "score": [1.0]}),
                             np.zeros((1, 2)), ["spectral"], [0], None, 0)


def test_cluster_ids_stay_below_n_clusters_when_a_filter_keeps_fewer_neurons_than_k():
    neurons = pl.DataFrame({"layer": [0, 0, 0], "neuron": [0, 1, 2], "score": [0.1, 0.5, 0.9]})
    emb = np.eye(3, dtype=np.float32)
    clusterings, assignments = cluster_explanations(neurons, emb, ["kmeans", "random"], [90],
                                                    k=5, seed=0)
    assert clusterings["n_clusters"].to_list() == [1, 1]
    assert assignments["cluster_id"].to_list() == [0, 0]
