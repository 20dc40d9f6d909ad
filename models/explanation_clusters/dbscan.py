"""Exact DBSCAN (Ester et al. 1996) with cosine distance at any size, in memory O(block x n).

The cost is the n x n similarity matrix, computed a block of rows at a time and never stored.
Two passes over it:

1. :func:`neighbour_counts`: each row's number of rows within eps (itself included) and, up to
   ``min_samples`` of them, which. Similarity is symmetric, so a block of rows is multiplied
   with itself and the rows after it only (half the products); a pair outside the diagonal
   block counts for both of its rows. Core points have at least ``min_samples`` neighbours;
   every other point therefore has its whole neighbourhood listed.
2. The connected components of the cores: union-find over the same half-products of the
   cores with each other (:func:`_union_near`); each root is its component's first core.

A non-core point takes the cluster of its most similar core within eps (DBSCAN's border
points), found among its listed neighbours, else it is noise (-1).

**The products in bfloat16, the decisions in float64.** On a CPU with AVX-512 BF16 or AMX the
matrix products run in bfloat16 (torch's oneDNN kernels; 2.5-3x float32's rate), else in
float32. Either way a pair is decided from the product only when it lies outside a band that
bounds the product's error around the threshold; inside the band the similarity is recomputed
in float64 from the float32 unit vectors. Error bound of a bfloat16 product of unit vectors
of d dimensions (unit roundoff u = 2^-8): rounding the inputs 2u + u^2, the float32
accumulation d 2^-24, rounding the bfloat16 output at most 2u; a float32 product's is the
accumulation alone. The band is twice the bound (:func:`band`; at d = 384: +-0.0313 and
+-4.6e-5). The neighbourhoods are therefore those of the float64 similarities in both modes
(tested against a float64 brute force and scikit-learn). On generated explanations the
bfloat16 band holds 2.6e-5 of all pairs, so the float64 work is negligible.
"""

from __future__ import annotations

from collections.abc import Iterator

import numba
import numpy as np
import torch

NOISE = -1
TASK_ROWS = 2048  # rows of a product block per parallel task


def unit_rows(x: np.ndarray) -> np.ndarray:
    """The rows of `x` scaled to unit length (zero rows stay zero), C-contiguous float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms == 0, 1, norms), dtype=np.float32)


def fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX-512 BF16 or AMX): without it
    torch emulates them, slower than float32."""
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def band(dtype: str, dim: int) -> float:
    """Half-width of the band around the threshold outside which a product of two unit vectors
    of `dim` dimensions is on the right side of it: twice its error bound (module docstring)."""
    accumulation = dim * 2.0 ** -24
    if dtype == "float32":
        return 2 * accumulation
    u = 2.0 ** -8
    return 2 * (2 * u + u * u + accumulation + 2 * u)


def product_dtype(threshold: float, dim: int) -> str:
    """'bfloat16' where the CPU supports it and the band stays above zero (the bit-pattern
    comparison of :func:`band_keys` needs positive bounds), else 'float32'."""
    ok = fast_bfloat16() and threshold - band("bfloat16", dim) > 0
    return "bfloat16" if ok else "float32"


def band_keys(threshold: float, dtype: str, dim: int) -> tuple:
    """(lo, hi) in the products' representation: a product below lo is certainly below the
    threshold, one at or above hi certainly at or above it. For bfloat16 the keys are int16 bit
    patterns (positive bfloat16 values order like their patterns): lo rounds threshold - band
    down, hi rounds threshold + band up."""
    lo, hi = threshold - band(dtype, dim), threshold + band(dtype, dim)
    if dtype == "float32":
        return np.float32(lo), np.float32(hi)
    bits = np.array([lo, hi], dtype=np.float32).view(np.int32) >> 16
    return np.int16(bits[0]), np.int16(bits[1] + 1)


def similarity_blocks(xu: np.ndarray, rows: int, dtype: str) -> Iterator[tuple[int, np.ndarray]]:
    """(start, products) for start = 0, rows, 2 rows, ...: the similarities of rows start..n-1
    of `xu` with rows start..start+rows-1, shape (n - start, block); bfloat16 as int16 bit
    patterns, or float32."""
    if dtype == "float32":
        for start in range(0, len(xu), rows):
            yield start, xu[start:] @ xu[start:start + rows].T
        return
    xt = torch.from_numpy(xu).bfloat16()
    for start in range(0, len(xu), rows):
        yield start, (xt[start:] @ xt[start:start + rows].T).view(torch.int16).numpy()


@numba.njit(inline="always")
def _similarity64(xu, i, j) -> float:
    """The similarity of rows i and j of `xu`, summed in float64."""
    dot = 0.0
    for d in range(xu.shape[1]):
        dot += np.float64(xu[i, d]) * np.float64(xu[j, d])
    return dot


@numba.njit(inline="always")
def _near(value, lo, hi, xu, i, j, threshold) -> bool:
    """Whether rows i and j of `xu` have similarity >= threshold, given their product `value`:
    decided by the band keys outside the band, in float64 inside it."""
    if value < lo:
        return False
    if value >= hi:
        return True
    return _similarity64(xu, i, j) >= threshold


@numba.njit(parallel=True, cache=True)
def _count_block(products, start, lo, hi, xu, threshold, counts, neighbours, listed):
    """Fold one block of :func:`similarity_blocks` (rows start.. x the block's rows) into
    `counts` and the neighbour lists (`neighbours`, n x cap, the first `listed` entries valid).
    Tasks take disjoint chunks of rows; the block's own rows are tallied per task and merged."""
    n_rows, width = products.shape
    cap = neighbours.shape[1]
    n_tasks = (n_rows + TASK_ROWS - 1) // TASK_ROWS
    block_counts = np.zeros((n_tasks, width), np.int64)
    block_lists = np.empty((n_tasks, width, cap), np.int64)
    block_listed = np.zeros((n_tasks, width), np.int64)
    for task in numba.prange(n_tasks):
        for r in range(task * TASK_ROWS, min(n_rows, (task + 1) * TASK_ROWS)):
            i = start + r
            for c in range(width):
                j = start + c
                if not _near(products[r, c], lo, hi, xu, i, j, threshold):
                    continue
                if block_listed[task, c] < cap:
                    block_lists[task, c, block_listed[task, c]] = i
                    block_listed[task, c] += 1
                block_counts[task, c] += 1
                if r >= width:  # below the diagonal block: the pair counts for row i too
                    counts[i] += 1
                    if listed[i] < cap:
                        neighbours[i, listed[i]] = j
                        listed[i] += 1
    for c in range(width):
        j = start + c
        for task in range(n_tasks):
            counts[j] += block_counts[task, c]
            for q in range(block_listed[task, c]):
                if listed[j] < cap:
                    neighbours[j, listed[j]] = block_lists[task, c, q]
                    listed[j] += 1


def neighbour_counts(xu: np.ndarray, threshold: float, min_samples: int, *, block: int = 1024,
                     dtype: str = "float32") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts, neighbours, listed) of the unit rows `xu`: how many rows have cosine similarity
    >= `threshold` with each row (itself included), and the first min(count, min_samples) of
    them, `neighbours[i, :listed[i]]`; pass 1 of the module docstring."""
    n = len(xu)
    counts = np.zeros(n, np.int64)
    neighbours = np.empty((n, min_samples), np.int64)
    listed = np.zeros(n, np.int64)
    lo, hi = band_keys(threshold, dtype, xu.shape[1])
    for start, products in similarity_blocks(xu, block, dtype):
        _count_block(products, start, lo, hi, xu, threshold, counts, neighbours, listed)
    return counts, neighbours, listed


@numba.njit(inline="always")
def _root(parent, i):
    """Root of i in the union-find forest `parent`, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True)
def _union_near(parent, products, start, lo, hi, xc, threshold):
    """Union every pair of cores (start + r, start + c) that are within eps, given a block of
    :func:`similarity_blocks` of the cores; the smaller index becomes the root."""
    for r in range(products.shape[0]):
        a = _root(parent, start + r)
        for c in range(products.shape[1]):
            if not _near(products[r, c], lo, hi, xc, start + r, start + c, threshold):
                continue
            b = _root(parent, start + c)
            if b > a:
                parent[b] = a
            elif b < a:
                parent[a] = b
                a = b


@numba.njit(cache=True)
def _border_labels(labels, neighbours, listed, is_core, xu):
    """Give each non-core point with a core among its (complete) neighbour list the label of the
    most similar such core (float64 similarity; ties to the smaller index)."""
    for i in range(len(labels)):
        if is_core[i]:
            continue
        best, best_sim = -1, -np.inf
        for q in range(listed[i]):
            j = neighbours[i, q]
            if not is_core[j]:
                continue
            sim = _similarity64(xu, i, j)
            if sim > best_sim or (sim == best_sim and j < best):
                best, best_sim = j, sim
        if best >= 0:
            labels[i] = labels[best]


def dbscan_exact(x: np.ndarray, eps: float, min_samples: int, *, block: int = 1024,
                 dtype: str | None = None) -> np.ndarray:
    """DBSCAN labels (clusters numbered by their first core, -1 = noise) of the rows of `x`
    under cosine distance: core points have at least `min_samples` rows (themselves included)
    within `eps`. `dtype` of the products: None = :func:`product_dtype`; the labels are the same
    in either (module docstring)."""
    xu = unit_rows(x)
    threshold = 1.0 - eps
    dtype = dtype or product_dtype(threshold, xu.shape[1])
    counts, neighbours, listed = neighbour_counts(xu, threshold, min_samples, block=block,
                                                  dtype=dtype)
    is_core = counts >= min_samples
    cores = np.flatnonzero(is_core)
    labels = np.full(len(xu), NOISE, dtype=np.int64)
    if not len(cores):
        return labels
    xc = np.ascontiguousarray(xu[cores])
    parent = np.arange(len(cores))
    lo, hi = band_keys(threshold, dtype, xu.shape[1])
    for start, products in similarity_blocks(xc, block, dtype):
        _union_near(parent, products, start, lo, hi, xc, threshold)
    while True:  # pointer jumping: every core points at its root
        jumped = parent[parent]
        if (jumped == parent).all():
            break
        parent = jumped
    labels[cores] = np.searchsorted(np.unique(parent), parent)
    _border_labels(labels, neighbours, listed, is_core, xu)
    return labels
