"""Modularity of MLP layers (Golechha, Cope, Schoots: *Training Neural Networks for Modularity
Aids Interpretability*).

* :func:`bipartite_spectral_clusters`: Algorithm 1 (BSGC). Similarity A = |W|, or the
  accumulated gradients (:func:`gradient_similarity`), normalised D_U^-1/2 A D_V^-1/2, truncated SVD to k, then KMeans. The
  paper runs KMeans on U and on V separately, which numbers the two sides' clusters
  independently, while E (below) needs input cluster u to face output cluster u; here KMeans runs
  once on the stacked, degree-scaled singular vectors of both sides (Dhillon 2001's
  co-clustering, as scikit-learn's SpectralCoclustering does), so the labels match.
* :func:`enmeshment`: E, the share of squared weight mass inside matched clusters (Sec. 2); 1
  for a block-diagonal matrix whose blocks are the clusters. Higher = more modular.
* :func:`enmeshment_loss`: 1 - E as a differentiable function of W for fixed clusters, added
  as lambda * L_E to the language-model loss after a warm-up (Sec. 3).
* :func:`effective_circuit_size`: per-class pruning of one weight matrix in the order of the
  class's attribution |W dL/dW|, bisected to the smallest share kept whose loss stays within a
  tolerance (Sec. 3.2, where the paper prunes each label's circuit with ACDC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from sklearn.cluster import KMeans
from threadpoolctl import ThreadpoolController

from core.seeds import item_seed
from models.lm_loss import (NO_NEURONS, EvalSet, LossSetup, NeuronSet, eval_set,
                            target_cross_entropy, target_losses)


_THREADPOOLS = ThreadpoolController()  # inspects the loaded libraries once


def bipartite_spectral_clusters(similarity: np.ndarray, k: int, seed: int = 0
                                ) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 1: cluster labels (0..k-1) of the rows (inputs) and columns (outputs) of a
    non-negative m x n similarity matrix, matched so that row cluster u pairs with column
    cluster u."""
    a = np.abs(np.asarray(similarity, dtype=np.float64))
    if k < 2 or k > min(a.shape):
        raise ValueError(f"k = {k} clusters need 2 <= k <= min{a.shape}")
    d_u = a.sum(axis=1)
    d_v = a.sum(axis=0)
    inv_u = 1 / np.sqrt(np.where(d_u > 0, d_u, 1))
    inv_v = 1 / np.sqrt(np.where(d_v > 0, d_v, 1))
    normalised = inv_u[:, None] * a * inv_v[None, :]
    u, _, vt = np.linalg.svd(normalised, full_matrices=False)
    z = np.vstack([inv_u[:, None] * u[:, :k], inv_v[:, None] * vt[:k].T])
    # One OpenMP thread: the (m + n) x k points are too few for threads to pay (3-4x faster
    # at the demo's 640 points, no slower at GPT-2 small's 3,840; the same labels)
    with _THREADPOOLS.limit(limits=1, user_api="openmp"):
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z)
    return labels[: a.shape[0]], labels[a.shape[0]:]


def gradient_similarity(weights: torch.nn.Parameter,
                        losses: Iterable[Callable[[], torch.Tensor]]) -> np.ndarray:
    """The gradient-based similarity of BSGC: the mean over batches of |dL/dW_ij|, the weights
    that are updated together most strongly being the most connected. (The paper's "average
    cosine similarity of the gradients of each parameter" does not define a per-weight
    quantity; the accumulated gradient magnitude is the choice made here.) Each element of
    `losses` computes one batch's loss through the model that holds `weights`."""
    total = torch.zeros_like(weights, dtype=torch.float64)
    n = 0
    requires = weights.requires_grad
    weights.requires_grad_(True)
    try:
        for loss in losses:
            weights.grad = None
            loss().backward()
            total += weights.grad.abs().double()
            n += 1
    finally:
        weights.grad = None
        weights.requires_grad_(requires)
    if not n:
        raise ValueError("no batch to accumulate gradients over")
    return (total / n).cpu().numpy()


def _inside(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.asarray(rows)[:, None] == np.asarray(cols)[None, :]


def enmeshment(weights: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """E (Sec. 2): sum of |W_ij|^2 over i in C_U(u), j in C_V(u), over the total."""
    w2 = np.asarray(weights, dtype=np.float64) ** 2
    return float(w2[_inside(rows, cols)].sum() / w2.sum())


def enmeshment_loss(weights: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """1 - E, differentiable in `weights` for fixed clusters: the share of squared weight mass
    between clusters."""
    inside = torch.from_numpy(_inside(rows, cols)).to(weights.device)
    w2 = weights.pow(2)
    return 1 - w2[inside].sum() / w2.sum()


def effective_circuit_size(weights: torch.Tensor, loss: Callable[[], float], *,
                           scores: torch.Tensor, tolerance: float = 0.1,
                           resolution: float = 0.001) -> tuple[float, float, float]:
    """Prune `weights` (modified in place and restored) in increasing order of `scores` (a
    class's attribution |W * dL/dW|, so each class prunes in its own order, as the paper's
    per-label automated pruning does) and find the smallest share of weights kept whose
    `loss()` stays within (1 + tolerance) times the unpruned loss: bisection over the number of
    weights kept, to `resolution` of the matrix (or one weight), assuming the loss does not fall
    as more is removed. Returns (fraction kept, unpruned loss, loss at that fraction)."""
    original = weights.detach().clone()
    order = scores.flatten().argsort(descending=True)  # most important first
    n = order.numel()

    def pruned_loss(n_kept: int) -> float:
        keep = torch.zeros(n, dtype=torch.bool, device=weights.device)
        keep[order[:n_kept]] = True
        with torch.no_grad():
            weights.copy_(original * keep.view_as(original))
        return loss()

    try:
        base = loss()
        limit = (1 + tolerance) * base
        lo, hi, at_hi = 0, n, base  # loss(hi) within the limit; lo kept: not known to be
        step = max(1, int(resolution * n))
        while hi - lo > step:
            mid = (lo + hi) // 2
            value = pruned_loss(mid)
            if value <= limit:
                hi, at_hi = mid, value
            else:
                lo = mid
    finally:
        with torch.no_grad():
            weights.copy_(original)
    return hi / n, base, at_hi


def gradient_losses(lm: LossSetup, sequences: list[list[int]], batch: int, seed: int,
                    *, n_batches: int = 4) -> list[Callable[[], torch.Tensor]]:
    """Loss functions of up to `n_batches` batches of held-out `sequences`, on every non-special
    token (causal) or on a seeded 15 % of them masked (masked LM), for :func:`gradient_similarity`."""
    vocab = set(range(lm.bridge.cfg.d_vocab)) - lm.special_ids
    rng = torch.Generator().manual_seed(seed)
    losses = []
    for start in range(0, min(len(sequences), n_batches * batch), batch):
        chunk = sequences[start: start + batch]
        data = eval_set(chunk, vocab, lm.pad_id, len(chunk), causal=not lm.masked)
        if data is None:
            continue
        if lm.masked:  # predict a random 15 % of the real tokens, as in BERT's pre-training
            pick = data.targets & (torch.rand(data.targets.shape, generator=rng) < 0.15)
            data = EvalSet(data.ids, data.real, pick if pick.any() else data.targets)
        losses.append(lambda data=data: target_cross_entropy(lm, data))
    return losses


def class_effects(lm: LossSetup, layer: int, weights: torch.nn.Parameter, transposed: bool, *,
                  classes: dict[str, set[int]], sequences: list[list[int]], k: int,
                  max_sentences: int, tolerance: float, resolution: float, seed: int,
                  log: Callable[[str], None] = lambda _: None) -> tuple[list[dict], list[dict]]:
    """Cluster ON/OFF (Sec. 3.1) and effective circuit size (Sec. 3.2) for each class's tokens:
    the layer's MLP neurons in `k` BSGC clusters of `weights` (its input matrix, stored
    d_mlp x d_model when `transposed`); OFF ablates a cluster, ON every other cluster; then
    the class's circuit in `weights` (:func:`effective_circuit_size`, pruned in the order of
    the class's own attribution) within `tolerance`.
    Returns the rows of ``cluster_class_effect`` and ``effective_circuit_size``."""
    w = weights.detach().double().cpu().numpy()
    _, cols = bipartite_spectral_clusters(np.abs(w.T if transposed else w), k, seed)
    runs = [NO_NEURONS]
    for c in range(k):
        inside, outside = np.flatnonzero(cols == c), np.flatnonzero(cols != c)
        runs += [NeuronSet(np.full(len(inside), layer), inside),
                 NeuronSet(np.full(len(outside), layer), outside)]
    effects, circuits = [], []
    for i, (cls, tokens) in enumerate(sorted(classes.items())):
        data = eval_set(sequences, tokens, lm.pad_id, max_sentences, causal=not lm.masked)
        if data is None:
            continue
        losses = target_losses(lm, data, runs)
        effects += [{"layer": layer, "k": k, "cluster_id": c, "semantic_class": cls,
                     "n_neurons": int((cols == c).sum()), "n_sentences": data.ids.shape[0],
                     "n_targets": data.n_targets, "loss_base": losses[0],
                     "loss_off": losses[1 + 2 * c], "loss_on": losses[2 + 2 * c]}
                    for c in range(k)]
        attribution = weights.detach().abs() * torch.from_numpy(gradient_similarity(
            weights, [lambda: target_cross_entropy(lm, data)])).to(weights.device, weights.dtype)
        fraction, base, pruned = effective_circuit_size(
            weights, lambda: target_losses(lm, data, [NO_NEURONS])[0],
            scores=attribution, tolerance=tolerance,
            resolution=resolution)
        circuits.append({"layer": layer, "semantic_class": cls, "n_weights": weights.numel(),
                         "fraction_left": fraction, "loss_base": base, "loss_pruned": pruned,
                         "tolerance": tolerance})
        log(f"class {cls} ({i + 1}/{len(classes)}): circuit {fraction:.1%} of layer {layer}'s "
            "MLP input weights")
    return effects, circuits


def shuffled_enmeshment(weights: np.ndarray, k: int, *, draws: int,
                        seed: list[int]) -> tuple[float, float]:
    """The unstructured baseline of E: mean and sample sd of E over `draws` copies of `weights`
    with its entries shuffled (the same weight distribution, no structure), each split by BSGC on
    its own |W| (draw d seeded by `seed` + [d])."""
    w = np.asarray(weights, dtype=np.float64)
    values = []
    for d in range(draws):
        rng = np.random.default_rng([*seed, d])
        shuffled = rng.permutation(w.ravel()).reshape(w.shape)
        u, v = bipartite_spectral_clusters(np.abs(shuffled), k, int(rng.integers(2**31)))
        values.append(enmeshment(shuffled, u, v))
    return float(np.mean(values)), float(np.std(values, ddof=1)) if draws > 1 else float("nan")


def enmeshment_table(matrices: Iterable[tuple[dict, np.ndarray, np.ndarray | None, int]],
                     ks: Iterable[int], seed: int, *, baseline_draws: int = 5
                     ) -> tuple[list[dict], list[dict]]:
    """The enmeshment sweep: for each (keys, W, similarity, neuron_axis) and each k, BSGC
    (Algorithm 1) on the similarity (None = |W|, the weight similarity), E of W for those clusters,
    and E's shuffled-weight baseline (:func:`shuffled_enmeshment`, seeded by the matrix's keys
    without the similarity, so both similarities of a matrix share it). Returns the E rows and the
    module rows: each neuron's cluster (the labels of W's axis `neuron_axis`: 1 for a d_model x
    d_mlp input matrix, 0 for an output matrix). `matrices` may be a generator, so a layer's
    gradient similarity is computed only when its turn comes."""
    rows, modules, baselines = [], [], {}
    ks = list(ks)
    for keys, w, similarity, neuron_axis in matrices:
        for k in ks:
            u, v = bipartite_spectral_clusters(np.abs(w) if similarity is None else similarity,
                                               k, seed)
            matrix_keys = {key: value for key, value in keys.items() if key != "similarity"}
            baseline_seed = item_seed(seed, matrix_keys, k)  # also the matrix and k's cache key
            if tuple(baseline_seed) not in baselines:
                baselines[tuple(baseline_seed)] = shuffled_enmeshment(
                    w, k, draws=baseline_draws, seed=baseline_seed)
            mean, sd = baselines[tuple(baseline_seed)]
            rows.append({**keys, "k": k, "enmeshment": enmeshment(w, u, v),
                         "baseline_enmeshment": mean, "baseline_sd": sd,
                         "baseline_draws": baseline_draws})
            modules.extend({**keys, "k": k, "neuron": neuron, "module": int(module)}
                           for neuron, module in enumerate(v if neuron_axis == 1 else u))
    return rows, modules
