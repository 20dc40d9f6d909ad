"""Exact DBSCAN: neighbourhoods decided in float64 whichever precision the products use."""

import numpy as np
import pytest
import torch
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from models.explanation_clusters.dbscan import (band, band_keys, dbscan_exact, neighbour_counts,
                                                unit_rows)

DTYPES = ["float32", "bfloat16"]


def _crowded(n: int = 300, dim: int = 6, seed: int = 4) -> np.ndarray:
    """Unit rows of few dimensions: pair similarities spread over [-1, 1], many of them close
    to any threshold."""
    return unit_rows(np.random.default_rng(seed).normal(size=(n, dim)))


def _bfloat16_bits(value: float) -> float:
    """The value of an int16 bfloat16 bit pattern."""
    return float(torch.tensor([value], dtype=torch.int16).view(torch.bfloat16).float())


@pytest.mark.parametrize("threshold", [0.3, 0.7, 0.95])
def test_band_keys_bound_the_threshold_by_the_band_as_tightly_as_the_format_allows(threshold):
    lo, hi = band_keys(threshold, "bfloat16", 384)
    half = band("bfloat16", 384)
    assert half == pytest.approx(2 * (2 ** -7 + 2 ** -16 + 384 * 2 ** -24 + 2 ** -7))  # ~2^-5
    assert _bfloat16_bits(lo) <= threshold - half < _bfloat16_bits(lo + 1)
    assert _bfloat16_bits(hi - 1) <= threshold + half <= _bfloat16_bits(hi)
    assert band("float32", 384) == pytest.approx(384 * 2 ** -23)
    assert band_keys(threshold, "float32", 384) == (np.float32(threshold - band("float32", 384)),
                                                    np.float32(threshold + band("float32", 384)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", [7, 64, 1024])
def test_neighbour_counts_and_lists_equal_a_float64_brute_force(dtype, block):
    """Counts from the half-products and the neighbour lists equal the full float64 similarity
    matrix's, with pairs in the bfloat16 band that bfloat16 alone decides wrongly."""
    xu = _crowded()
    sims = xu.astype(np.float64) @ xu.T.astype(np.float64)
    threshold, min_samples = 0.7, 12
    near = sims >= threshold
    if dtype == "bfloat16":  # the float64 recheck has work to do: bfloat16 alone errs
        rounded = (torch.from_numpy(xu).bfloat16() @ torch.from_numpy(xu).bfloat16().T).double()
        assert ((rounded.numpy() >= threshold) != near).sum() > 0
    counts, neighbours, listed = neighbour_counts(xu, threshold, min_samples, block=block,
                                                  dtype=dtype)
    np.testing.assert_array_equal(counts, near.sum(axis=1))
    np.testing.assert_array_equal(listed, np.minimum(counts, min_samples))
    assert (counts < min_samples).any() and (counts >= min_samples).any()
    for i in range(len(xu)):
        got = neighbours[i, :listed[i]]
        assert len(set(got)) == len(got) and near[i, got].all()
        if counts[i] < min_samples:  # a non-core point's whole neighbourhood
            assert set(got) == set(np.flatnonzero(near[i]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps, min_samples", [(0.05, 5), (0.2, 3), (0.5, 10)])
def test_exact_dbscan_equals_scikit_learns(dtype, eps, min_samples):
    """The blocked DBSCAN (the reference for the sampled one at scale) gives scikit-learn's
    clusters and noise, numbered alike, in blocks far smaller than the data."""
    rng = np.random.default_rng(2)
    x = np.concatenate([np.eye(12)[b] + 0.08 * rng.normal(size=(50, 12)) for b in range(4)]
                       + [rng.normal(size=(20, 12))])
    ours = dbscan_exact(x, eps, min_samples, block=17, dtype=dtype)
    theirs = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit(x).labels_
    assert ((ours == -1) == (theirs == -1)).all()
    clustered = theirs >= 0
    assert adjusted_rand_score(theirs[clustered], ours[clustered]) == pytest.approx(1.0)


def test_both_product_precisions_give_the_same_labels_with_many_pairs_near_eps():
    x = _crowded(600, dim=4, seed=7)
    labels = dbscan_exact(x, 0.04, 5, block=50, dtype="float32")
    assert labels.max() >= 10 and (labels == -1).sum() >= 100
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    assert (np.abs(sims - 0.96) < band("bfloat16", 4)).sum() > 1000
    np.testing.assert_array_equal(labels, dbscan_exact(x, 0.04, 5, block=50, dtype="bfloat16"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_border_point_joins_its_most_similar_core(dtype):
    """Points on the unit circle (cosine distance 1 - cos of the angle between them), worked by
    hand with eps = 1 - cos(0.249), min_samples 5. Group A at angles 0-0.004 and group B at
    0.5-0.504 (5 points each, 0.001 apart) are cores. P at 0.2525 lies within 0.249 of A's
    last point (0.2485) and of B's first two (0.2475, 0.2485): 3 neighbours besides itself, so
    a border point, and its most similar core is B's first. Scikit-learn gives it to A instead,
    the first cluster its expansion reaches."""
    eps = 1 - np.cos(0.249)
    a, b = [0.0, 0.001, 0.002, 0.003, 0.004], [0.5, 0.501, 0.502, 0.503, 0.504]

    def circle(p):
        angles = np.array(a + [p] + b)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)

    assert list(dbscan_exact(circle(0.2525), eps, 5, dtype=dtype)) == [0] * 5 + [1] + [1] * 5
    assert DBSCAN(eps=eps, min_samples=5, metric="cosine").fit(circle(0.2525)).labels_[5] == 0
    # P at 0.9, within eps of no core: noise
    assert list(dbscan_exact(circle(0.9), eps, 5, dtype=dtype)) == [0] * 5 + [-1] + [1] * 5
