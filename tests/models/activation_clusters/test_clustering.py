"""Representations, complete linkage, refinement and distances of the activation-clusters study
against hand-computed cases and independent implementations."""

import tracemalloc

import numpy as np
import polars as pl
import pytest
from scipy.cluster.hierarchy import cut_tree, linkage
from scipy.spatial.distance import pdist
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.metrics import adjusted_rand_score

from models.activation_clusters.clustering import (ActivationClusterSettings, agglomerative, cluster_site,
                                        complete_linkage, cosine_distances_condensed,
                                        random_clusters, refine, smooth, tfidf, token_matrix,
                                        unit_rows, within_cluster_distances)


def test_tfidf_by_hand_and_against_scikit_learn():
    r = np.array([[1.0, 0.0], [2.0, -1.0], [0.0, 3.0]])
    # tf = max(R, 0); df = (2, 1) neurons with a positive value; idf = ln((1+3)/(1+df)) + 1
    idf = np.array([np.log(4 / 3) + 1, np.log(4 / 2) + 1])
    expected = np.array([[1 * idf[0], 0], [2 * idf[0], 0], [0, 3 * idf[1]]])
    np.testing.assert_allclose(tfidf(r), expected)
    rng = np.random.default_rng(0)
    big = rng.normal(size=(40, 25))
    sk = TfidfTransformer(norm=None).fit_transform(np.maximum(big, 0)).toarray()
    np.testing.assert_allclose(tfidf(big), sk, rtol=1e-12)


def test_semantic_smoothing_equation_2_by_hand():
    # cos(t0, t1) = 0.6, cos(t0, t2) = 0, cos(t1, t2) = 0.8; one neighbour each:
    # t0 -> t1 (0.6), t1 -> t2 (0.8), t2 -> t1 (0.8)
    emb = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]])
    r = np.array([[1.0, 2.0, 3.0]])
    out = smooth(r, emb, lam=0.5, n_neighbours=1)
    np.testing.assert_allclose(out, [[1 + 0.5 * 0.6 * 2, 2 + 0.5 * 0.8 * 3, 3 + 0.5 * 0.8 * 2]])
    # two neighbours: lambda / 2 times the similarity-weighted sum of both
    out2 = smooth(r, emb, lam=0.5, n_neighbours=2)
    np.testing.assert_allclose(out2[0, 0], 1 + 0.25 * (0.6 * 2 + 0.0 * 3))


def _angles(degrees):
    a = np.radians(degrees)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def test_complete_linkage_on_cosine_distance_by_hand():
    # angles 0, 30, 65, 85, 180: CD (20) then AB (30) merge first; at K = 2 the far point is alone
    x = _angles([0, 30, 65, 85, 180])
    assert agglomerative(x, 3).tolist() == agglomerative(x, 3)[[0, 0, 2, 2, 4]].tolist()
    assert len(set(agglomerative(x, 3))) == 3
    k2 = agglomerative(x, 2)
    assert k2[0] == k2[1] == k2[2] == k2[3] != k2[4]


def test_complete_linkage_matches_scikit_learn():
    rng = np.random.default_rng(1)
    x = unit_rows(rng.normal(size=(60, 8)))
    ours = agglomerative(x, 7)
    theirs = AgglomerativeClustering(n_clusters=7, linkage="complete",
                                     metric="cosine").fit_predict(x)
    assert adjusted_rand_score(ours, theirs) == 1.0


def test_condensed_cosine_distances_equal_scipys_pdist():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(53, 9))
    # blocks of 2 to 53 rows, including one that does not divide the row count
    for entries in (100, 53 * 7, 1 << 20):
        np.testing.assert_allclose(cosine_distances_condensed(x, block_entries=entries),
                                   pdist(x, "cosine"), rtol=0, atol=1e-14)


def test_complete_linkage_tree_equals_scipys_with_tied_distances():
    # sparse non-negative rows, as TF-IDF gives, and 40 rows on 3 axes: many pairs at exactly
    # distance 1 (orthogonal) or 0 (identical), the ties a tree must break as scipy does
    rng = np.random.default_rng(7)
    x = rng.gamma(0.3, size=(400, 30)) * (rng.random((400, 30)) < 0.15)
    x[:40] = np.eye(30)[rng.integers(0, 3, 40)]
    x = unit_rows(x[np.linalg.norm(x, axis=1) > 0])
    ours = complete_linkage(x)
    theirs = linkage(pdist(x, "cosine"), method="complete")
    np.testing.assert_array_equal(ours[:, [0, 1, 3]], theirs[:, [0, 1, 3]])
    np.testing.assert_allclose(ours[:, 2], theirs[:, 2], rtol=0, atol=1e-12)
    for k in (5, 50):
        assert agglomerative(x, k).tolist() == cut_tree(theirs, n_clusters=k).ravel().tolist()


def test_complete_linkage_holds_one_condensed_matrix():
    # the distance vector is the memory of the study at scale (5.1 GiB at 36,864 neurons):
    # numpy reports its buffers to tracemalloc, so a second copy would show as a 2x peak (the
    # distances' row blocks add at most 64 MiB, a quarter of the vector here)
    x = unit_rows(np.random.default_rng(3).random((8000, 20)))
    condensed = 8000 * 7999 // 2 * 8
    tracemalloc.start()
    complete_linkage(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert condensed < peak < 1.5 * condensed


def test_complete_linkage_of_one_row_is_an_empty_tree():
    assert complete_linkage(np.ones((1, 3))).shape == (0, 4)


def test_refinement_drops_the_farthest_member_until_under_threshold():
    x = np.array([[0.0, 0], [0.2, 0], [0.4, 0], [3.0, 0]])
    # mean 0.9: distances 0.9, 0.7, 0.5, 2.1 -> drop 3.0; mean 0.2: max 0.2 < 0.6
    assert refine(x, np.arange(4), 0.6).tolist() == [0, 1, 2]
    # threshold 0.15: 0.2 is not below it -> drop the first farthest (index 0); then 0.1
    assert refine(x, np.arange(4), 0.15).tolist() == [1, 2]
    assert refine(x, np.array([3]), 0.01).tolist() == [3]


def _refine_naive(x, members, threshold):
    kept = np.asarray(members)
    while len(kept) > 1:
        dist = np.linalg.norm(x[kept] - x[kept].mean(axis=0), axis=1)
        if dist.max() < threshold:
            break
        kept = np.delete(kept, int(np.argmax(dist)))
    return kept


def test_incremental_refinement_and_distances_equal_the_direct_computation():
    rng = np.random.default_rng(3)
    x = unit_rows(rng.normal(size=(300, 20)) + np.r_[np.ones(10), np.zeros(10)])
    members = rng.choice(300, size=120, replace=False)
    for threshold in (0.5, 0.8, 1.0):
        assert refine(x, members, threshold).tolist() == _refine_naive(x, members, threshold).tolist()
    d = pdist(x[members], "cosine")
    assert within_cluster_distances(x, members, block=7) == pytest.approx((d.max(), d.mean()))


def test_within_cluster_distances():
    x = _angles([0, 90, 180])
    # pairs: 1 - cos 90 = 1, 1 - cos 180 = 2, 1 - cos 90 = 1
    assert within_cluster_distances(x, np.arange(3)) == pytest.approx((2.0, 4 / 3))
    assert within_cluster_distances(x, np.array([1])) is None


def test_random_clusters_keep_sizes_and_are_disjoint():
    out = random_clusters([3, 1, 4], 10, np.random.default_rng(0))
    assert [len(c) for c in out] == [3, 1, 4]
    assert len(set(np.concatenate(out))) == 8


def _token_means(r: np.ndarray, counts) -> pl.DataFrame:
    n, v = r.shape
    return pl.DataFrame({"layer": np.repeat(np.arange(n) // 2, v), "neuron": np.repeat(np.arange(n) % 2, v),
                         "token_id": np.tile(np.arange(v), n), "token": [f"t{t}" for t in np.tile(np.arange(v), n)],
                         "token_count": np.tile(counts, n), "mean_activation": r.ravel()})


def test_token_matrix_applies_the_frequency_threshold():
    r = np.arange(12, dtype=float).reshape(4, 3)
    m = token_matrix(_token_means(r, [5, 1, 9]), min_token_count=5)
    assert m.tokens["token"].to_list() == ["t0", "t2"]
    np.testing.assert_array_equal(m.values, r[:, [0, 2]])
    with pytest.raises(ValueError, match="min_token_count"):
        token_matrix(_token_means(r, [1, 1, 1]), min_token_count=5)


def test_planted_token_groups_are_recovered_with_their_top_tokens():
    """Neurons 0-3 fire on tokens 0-2, neurons 4-7 on tokens 3-5: K = 2 finds the two groups and
    each cluster's top tokens are its group's; its random twin has the same size."""
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.05, size=(8, 6))
    r[:4, :3] += 1.0
    r[4:, 3:] += 1.0
    settings = ActivationClusterSettings(representations=("filter", "tfidf", "smoothed"), ks=(2,),
                                         min_token_count=1, top_tokens=3, smoothing_neighbours=2)
    emb = rng.normal(size=(6, 4))
    out = cluster_site(_token_means(r, [10] * 6), emb, settings)
    members = out["activation_clusters"].filter(pl.col("method") == "agglomerative",
                                                 ~pl.col("refined"))
    for _, group in members.group_by("representation", "cluster_id"):
        rows = set((group["layer"] * 2 + group["neuron"]).to_list())
        assert rows in ({0, 1, 2, 3}, {4, 5, 6, 7})
    tokens = out["activation_cluster_tokens"].filter(pl.col("method") == "agglomerative",
                                                     pl.col("representation") == "filter",
                                                     ~pl.col("refined"))
    for _, group in tokens.group_by("cluster_id"):
        assert set(group["token_id"]) in ({0, 1, 2}, {3, 4, 5})
    sizes = out["activation_cluster_distances"].group_by("representation", "refined", "method").agg(
        pl.col("n_neurons").sort())
    by_method = {(r["representation"], r["refined"], r["method"]): r["n_neurons"]
                 for r in sizes.iter_rows(named=True)}
    for (rep, refined, method), n in by_method.items():
        assert n == by_method[(rep, refined, "agglomerative")]


def test_tied_distances_still_give_exactly_k_clusters():
    # six mutually orthogonal vectors: every pair at distance 1, all merges at the same height
    labels = agglomerative(np.eye(6), 4)
    assert len(np.unique(labels)) == 4  # maxclust would give one cluster here


def test_a_configurations_rows_do_not_depend_on_the_other_configurations():
    """Random twins are drawn from a stream seeded by their own representation, K and refined
    flag: dropping K = 2 and the tfidf representation leaves the K = 3 filter rows identical."""
    rng = np.random.default_rng(1)
    r = rng.normal(size=(12, 8))
    both = cluster_site(_token_means(r, [10] * 8), None, ActivationClusterSettings(
        representations=("filter", "tfidf"), ks=(2, 3), min_token_count=1))
    alone = cluster_site(_token_means(r, [10] * 8), None, ActivationClusterSettings(
        representations=("filter",), ks=(3,), min_token_count=1))
    for table, rows in alone.items():
        kept = both[table].filter(pl.col("representation") == "filter", pl.col("k") == 3)
        assert kept.sort(rows.columns).equals(rows.sort(rows.columns)), table
