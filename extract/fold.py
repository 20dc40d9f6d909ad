"""One pass over a batch of activations for every per-neuron aggregate (a numba kernel).

Folding a batch of M token rows x N neurons into :class:`extract.activations.ActivationAggregates`
with tensor operations reads and writes the M x N block about twenty times (centring, powers,
sums, maxima, a float64 copy for the token sums, the top-k comparisons), which at GPT-2-small
width cost as much as the forward pass. :func:`fold_batch` reads it twice, a block of columns
at a time while it sits in cache, and the two cores take alternate blocks.
"""

import numba
import numpy as np

COLUMN_BLOCK = 512  # columns per parallel task: M x 512 float32 rows stay in the L2 cache


@numba.njit(inline="always")
def _ranks_before(value, sentence, position, other_value, other_sentence, other_position):
    """The top-k's total order: value descending, then (sentence, position) ascending."""
    if value != other_value:
        return value > other_value
    if sentence != other_sentence:
        return sentence < other_sentence
    return position < other_position


@numba.njit(inline="always")
def _insert_top(top_values, top_sentence, top_position, j, value, sentence, position):
    """Insert (value, sentence, position) into column j of a full top-k (sorted by
    :func:`_ranks_before`), dropping its last entry, if it ranks before that entry."""
    k = top_values.shape[0]
    slot = k
    while slot > 0 and _ranks_before(value, sentence, position, top_values[slot - 1, j],
                                     top_sentence[slot - 1, j], top_position[slot - 1, j]):
        slot -= 1
    if slot == k:
        return
    for r in range(k - 1, slot, -1):
        top_values[r, j] = top_values[r - 1, j]
        top_sentence[r, j] = top_sentence[r - 1, j]
        top_position[r, j] = top_position[r - 1, j]
    top_values[slot, j] = value
    top_sentence[slot, j] = sentence
    top_position[slot, j] = position


@numba.njit(parallel=True, cache=True)
def fold_batch(acts, token_rows, token_sums, sentence, position,
               top_values, top_sentence, top_position, update_top):
    """Fold a batch `acts` (M x N float32, C-contiguous) into the aggregates, in place:

    * ``token_sums[token_rows[i], j] += acts[i, j]`` (float64; Eq. 1's numerators);
    * if `update_top`, each entry is inserted into its column of the full, sorted top-k
      (`top_values`, `top_sentence`, `top_position`, each k x N) when it ranks before the k-th
      (value descending, then sentence and position ascending: the order of
      :func:`extract.activations.top_rows`, so the result is the same top-k);

    and return the batch's own per-neuron statistics for Pebay's update: its mean and central
    sums M2, M3, M4 (float64, about the exact batch mean), its maxima and its counts of
    activations > 0.
    """
    m, n = acts.shape
    mean = np.empty(n)
    m2 = np.empty(n)
    m3 = np.empty(n)
    m4 = np.empty(n)
    batch_max = np.empty(n, np.float32)
    n_positive = np.empty(n, np.int64)
    for block in numba.prange((n + COLUMN_BLOCK - 1) // COLUMN_BLOCK):
        lo = block * COLUMN_BLOCK
        hi = min(n, lo + COLUMN_BLOCK)
        total = np.zeros(hi - lo)
        best = np.full(hi - lo, -np.inf, np.float32)
        positive = np.zeros(hi - lo, np.int64)
        for i in range(m):
            row = token_rows[i]
            for j in range(lo, hi):
                v = acts[i, j]
                total[j - lo] += v
                best[j - lo] = max(best[j - lo], v)
                positive[j - lo] += v > 0
                token_sums[row, j] += v
                if update_top and v >= top_values[-1, j]:
                    _insert_top(top_values, top_sentence, top_position, j, v, sentence[i],
                                position[i])
        centre = total / m
        s2 = np.zeros(hi - lo)
        s3 = np.zeros(hi - lo)
        s4 = np.zeros(hi - lo)
        for i in range(m):
            for j in range(lo, hi):
                d = acts[i, j] - centre[j - lo]
                d2 = d * d
                s2[j - lo] += d2
                s3[j - lo] += d2 * d
                s4[j - lo] += d2 * d2
        mean[lo:hi] = centre
        m2[lo:hi] = s2
        m3[lo:hi] = s3
        m4[lo:hi] = s4
        batch_max[lo:hi] = best
        n_positive[lo:hi] = positive
    return mean, m2, m3, m4, batch_max, n_positive
