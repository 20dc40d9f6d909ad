"""Streaming Pearson correlation of every neuron of model A with every neuron of model B
(Gurnee et al., *Universal Neurons in GPT2*, Sec. 4.1), in memory bounded by a budget.

Over the same tokens, the sums of x, x^2, y, y^2 and x y are accumulated in float64 (never in a
lower precision). The x y sums of all pairs would need n_A n_B float64 (10.9 GB for two
GPT-2-small-shaped models), so the neurons of A are taken in row blocks sized to the budget, one
pass over the token stream per block; only each row's best correlation is kept. `batches` is
therefore a function that returns a fresh iterator of aligned (x, y) activation batches: rows are
tokens (padding and BOS already excluded by the caller), columns neurons.

Baseline: the correlations with B's neuron basis rotated by a random orthogonal matrix per layer
(Haar-distributed, from the QR decomposition of a Gaussian matrix with the signs of R's diagonal
folded in), so no neuron-aligned structure survives. The public code uses Gaussian rows that are
not orthogonal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def random_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random n x n orthogonal matrix: Q of a Gaussian matrix's QR, columns multiplied by
    the signs of R's diagonal (Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def rotate_layers(y: torch.Tensor, rotations: list[torch.Tensor]) -> torch.Tensor:
    """`y` (tokens x layers * d) with each layer's d columns multiplied by its rotation."""
    d = rotations[0].shape[0]
    return torch.cat([y[:, i * d:(i + 1) * d] @ r for i, r in enumerate(rotations)], dim=1)


def cached(batches: Batches, max_bytes: int, chunk_tokens: int = 2048) -> Batches:
    """`batches` held in memory after the first pass when both sides fit in `max_bytes`
    (float32), re-served in chunks of `chunk_tokens` tokens: later passes then cost no model
    runs, and long chunks make each x^T y product compute-bound instead of memory-bound. When
    they do not fit, every pass re-runs `batches`."""
    store: dict = {}

    def load() -> bool:
        xs, ys, size = [], [], 0
        for x, y in batches():
            size += (x.numel() + y.numel()) * 4
            if size > max_bytes:
                return False
            xs.append(x.float())
            ys.append(y.float())
        store["x"], store["y"] = torch.cat(xs), torch.cat(ys)
        return True

    def serve():
        if "fits" not in store:
            store["fits"] = load()
        if not store["fits"]:
            yield from batches()
            return
        x, y = store["x"], store["y"]
        for i in range(0, x.shape[0], chunk_tokens):
            yield x[i:i + chunk_tokens], y[i:i + chunk_tokens]
    return serve


def correlation_block(batches: Batches, rows: slice, n_b: int) -> tuple[np.ndarray, int]:
    """Pearson correlations of the neurons `rows` of A with every neuron of B, from one pass
    over `batches`; NaN where either neuron is constant. Returns (block, number of tokens)."""
    n = 0
    sx = sxx = sy = syy = sxy = None
    for x, y in batches():
        x = x[:, rows].double()
        y = y.double()
        if sxy is None:
            sx, sxx = torch.zeros(x.shape[1], dtype=torch.float64), torch.zeros(x.shape[1], dtype=torch.float64)
            sy, syy = torch.zeros(n_b, dtype=torch.float64), torch.zeros(n_b, dtype=torch.float64)
            sxy = torch.zeros((x.shape[1], n_b), dtype=torch.float64)
        n += x.shape[0]
        sx += x.sum(0)
        sxx += (x * x).sum(0)
        sy += y.sum(0)
        syy += (y * y).sum(0)
        sxy.addmm_(x.T, y)
    if not n:
        raise ValueError("no tokens to correlate: the activation stream is empty")
    var_x = sxx - sx * sx / n
    var_y = syy - sy * sy / n
    r = sxy.addr_(sx, sy, alpha=-1 / n)  # the covariance sums, in place
    r.div_(var_x.clamp(min=0).sqrt_()[:, None]).div_(var_y.clamp(min=0).sqrt_()[None, :])
    r[var_x <= 1e-12 * n] = torch.nan
    r[:, var_y <= 1e-12 * n] = torch.nan
    return r.numpy(), n


def rows_per_block(n_b: int, memory_budget_bytes: int) -> int:
    """Rows of A per pass: the x y sums (turned into the correlations in place), one temporary
    of the same size while they are, and the masked copy taken of each finished block make at
    most four float64 matrices of rows x n_B."""
    return max(1, memory_budget_bytes // (4 * 8 * n_b))


@dataclass
class BestCorrelations:
    """Per neuron of A: its highest correlation with any neuron of B, and which one."""

    max_corr: np.ndarray  # (n_A,) float64, NaN for a constant neuron of A
    argmax: np.ndarray  # (n_A,) int64 column of B, -1 when undefined
    same_index: np.ndarray  # (n_A,) correlation with B's neuron of the same index (NaN if none)
    n_tokens: int
    passes: int


def best_correlations(batches: Batches, n_a: int, n_b: int, memory_budget_bytes: int,
                      *, progress: Callable[[int, int], None] | None = None) -> BestCorrelations:
    """The best correlation of every neuron of A over all neurons of B, in blocks of rows of A
    whose float64 working set stays within `memory_budget_bytes`."""
    step = rows_per_block(n_b, memory_budget_bytes)
    passes = math.ceil(n_a / step)
    best = np.full(n_a, np.nan)
    same = np.full(n_a, np.nan)
    arg = np.full(n_a, -1, dtype=np.int64)
    n_tokens = 0
    for p, start in enumerate(range(0, n_a, step)):
        block, n_tokens = correlation_block(batches, slice(start, min(n_a, start + step)), n_b)
        rows = np.arange(start, start + block.shape[0])
        paired = rows[rows < n_b]
        same[paired] = block[paired - start, paired]
        top, top_at = torch.from_numpy(block).nan_to_num_(nan=-np.inf).max(dim=1)  # in place
        defined = (top > -np.inf).numpy()
        arg[rows[defined]] = top_at.numpy()[defined]
        best[rows[defined]] = top.numpy()[defined]
        if progress:
            progress(p + 1, passes)
    return BestCorrelations(best, arg, same, n_tokens, passes)


def rotated(batches: Batches, n_layers: int, width: int, seed: int) -> Batches:
    """`batches` with B's activations rotated by one seeded random orthogonal matrix per layer."""
    rng = np.random.default_rng(seed)
    rotations = [torch.from_numpy(random_rotation(width, rng)).float() for _ in range(n_layers)]

    def rotated_batches():
        for x, y in batches():
            yield x, rotate_layers(y, rotations)
    return rotated_batches


def neuron_universality(batches: Batches, n_layers: int, width: int, memory_budget_bytes: int,
                        *, seed: int = 0, progress: Callable[[int, int], None] | None = None
                        ) -> pl.DataFrame:
    """Per neuron of A (n_layers x width, the same shape as B): its best correlation with any
    neuron of B (and which), and its best correlation with B's rotated basis (the baseline)."""
    best = best_correlations(batches, n_layers * width, n_layers * width, memory_budget_bytes,
                             progress=progress)
    base = best_correlations(rotated(batches, n_layers, width, seed), n_layers * width,
                             n_layers * width, memory_budget_bytes, progress=progress)
    j = np.arange(n_layers * width)
    defined = pl.col("best_corr").is_not_null()
    return pl.DataFrame({
        "layer": j // width, "neuron": j % width, "n_tokens": best.n_tokens,
        "best_corr": best.max_corr, "best_layer": best.argmax // width,
        "best_neuron": best.argmax % width, "baseline_corr": base.max_corr,
    }).with_columns(pl.col("best_corr", "baseline_corr").fill_nan(None)).with_columns(
        pl.when(defined).then(pl.col("best_layer")).alias("best_layer"),
        pl.when(defined).then(pl.col("best_neuron")).alias("best_neuron"))


def neuron_stability(batches: Batches, n_layers: int, width: int, memory_budget_bytes: int,
                     *, progress: Callable[[int, int], None] | None = None) -> pl.DataFrame:
    """Per neuron of a checkpoint (A) against the previous checkpoint of the same run (B): the
    correlation with its own earlier self (same layer and index) and with its best match."""
    best = best_correlations(batches, n_layers * width, n_layers * width, memory_budget_bytes,
                             progress=progress)
    j = np.arange(n_layers * width)
    return pl.DataFrame({"layer": j // width, "neuron": j % width, "n_tokens": best.n_tokens,
                         "self_corr": best.same_index, "best_corr": best.max_corr}
                        ).with_columns(pl.col("self_corr", "best_corr").fill_nan(None))
