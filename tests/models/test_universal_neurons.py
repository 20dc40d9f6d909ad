"""Streaming blocked correlation: identity on itself, blocked = unblocked = numpy, rotation."""

import numpy as np
import pytest
import torch

from models.universal_neurons import (best_correlations, cached, correlation_block, random_rotation,
                                rotate_layers, rows_per_block)


def _stream(x: np.ndarray, y: np.ndarray, batch: int = 37):
    def batches():
        for i in range(0, len(x), batch):
            yield torch.from_numpy(x[i:i + batch]).float(), torch.from_numpy(y[i:i + batch]).float()
    return batches


def _data(seed=0, n=500, a=12, b=9):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, a)).astype(np.float32)
    y = (0.5 * x[:, :b] + rng.normal(size=(n, b))).astype(np.float32)
    return x, y


def test_a_model_correlated_with_itself_is_one_on_the_diagonal():
    x, _ = _data()
    block, n = correlation_block(_stream(x, x), slice(0, 12), 12)
    assert n == 500
    np.testing.assert_allclose(np.diag(block), 1.0, atol=1e-12)
    best = best_correlations(_stream(x, x), 12, 12, memory_budget_bytes=10**6)
    np.testing.assert_array_equal(best.argmax, np.arange(12))


def test_blocked_equals_unblocked_equals_numpy():
    x, y = _data()
    full, _ = correlation_block(_stream(x, y), slice(0, 12), 9)
    expected = np.corrcoef(x.astype(np.float64), y.astype(np.float64), rowvar=False)[:12, 12:]
    np.testing.assert_allclose(full, expected, atol=1e-10)
    # a budget of 3 rows per block: 4 passes over the stream
    budget = 4 * 8 * 9 * 3
    assert rows_per_block(9, budget) == 3
    blocked = best_correlations(_stream(x, y), 12, 9, budget)
    assert blocked.passes == 4
    np.testing.assert_allclose(blocked.max_corr, full.max(axis=1), atol=1e-6)
    np.testing.assert_array_equal(blocked.argmax, full.argmax(axis=1))
    np.testing.assert_allclose(blocked.same_index[:9], np.diag(full), atol=1e-6)
    assert np.isnan(blocked.same_index[9:]).all()  # A has 12 neurons, B only 9


def test_a_constant_neuron_has_no_correlation():
    x, y = _data()
    x[:, 3] = 2.0
    best = best_correlations(_stream(x, y), 12, 9, 10**6)
    assert np.isnan(best.max_corr[3]) and best.argmax[3] == -1
    assert not np.isnan(np.delete(best.max_corr, 3)).any()


def test_the_rotation_baseline_is_orthogonal_and_preserves_the_layer_subspace():
    rng = np.random.default_rng(0)
    q = random_rotation(50, rng)
    np.testing.assert_allclose(q.T @ q, np.eye(50), atol=1e-12)
    assert abs(abs(np.linalg.det(q)) - 1) < 1e-9
    y = torch.randn(20, 6, dtype=torch.float64)
    rots = [torch.from_numpy(random_rotation(3, rng)) for _ in range(2)]
    out = rotate_layers(y, rots)
    # each layer's vectors keep their norms and are rotated only within the layer
    np.testing.assert_allclose(out[:, :3].norm(dim=1), y[:, :3].norm(dim=1))
    np.testing.assert_allclose(out[:, 3:] @ rots[1].T, y[:, 3:], atol=1e-12)


def test_rotation_destroys_neuron_alignment():
    """Two copies of a sparse code: each neuron's best match is exact, but not after rotation."""
    rng = np.random.default_rng(1)
    x = (rng.random((4000, 16)) < 0.05) * rng.exponential(size=(4000, 16))
    rot = torch.from_numpy(random_rotation(16, rng))
    stream = _stream(x, rotate_layers(torch.from_numpy(x), [rot]).numpy())
    assert best_correlations(_stream(x, x), 16, 16, 10**6).max_corr.min() == pytest.approx(1.0)
    assert best_correlations(stream, 16, 16, 10**6).max_corr.max() < 0.9


def test_cached_stream_gives_the_same_correlations_and_runs_the_source_once():
    x, y = _data()
    calls = {"n": 0}
    source = _stream(x, y)

    def counted():
        calls["n"] += 1
        yield from source()

    stream = cached(counted, max_bytes=10**7, chunk_tokens=128)
    blocked = best_correlations(stream, 12, 9, 4 * 8 * 9 * 3)  # 4 passes
    assert calls["n"] == 1
    full, _ = correlation_block(_stream(x, y), slice(0, 12), 9)
    np.testing.assert_allclose(blocked.max_corr, full.max(axis=1), atol=1e-6)
    too_small = cached(counted, max_bytes=100)
    best_correlations(too_small, 12, 9, 4 * 8 * 9 * 3)
    assert calls["n"] == 1 + 1 + 4  # the failed caching pass, then one run per block
