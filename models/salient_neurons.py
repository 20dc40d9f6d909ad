"""Linguistic Correlation Analysis (Durrani, Dalvi, Sajjad: *Discovering Salient Neurons*).

Algorithms of the paper, on a feature matrix X (words x neurons) and integer labels y:

* Alg. 1, :func:`train_probes`: linear softmax probe, loss = mean cross-entropy
  + lambda1 ||W||_1 + lambda2 ||W||_2^2 (Sec. 2.1; the bias is not penalised), Adam (lr 1e-3),
  shuffled mini-batches of 512, 10 epochs. Several probes (a lambda grid, feature masks) are
  trained as one batched tensor: Adam is element-wise and every probe sees the same mini-batch
  order, so this equals training them one by one, only faster.
* Alg. 3, :func:`neuron_ranking`: per label, neurons sorted by |weight|; at mass threshold p the
  label's salient neurons are the shortest prefix holding p of its weight mass; p grows by
  `step` percent and newly salient neurons are appended to the ordering.
* Alg. 2, :func:`grid_search`: S = alpha (A_top - A_bottom) - beta (A_noreg - A_current) with
  top/bottom M = 20 % of the ranking, alpha = beta = 0.5; the first best cell wins (strict >).
* Alg. 4, :func:`minimal_subset`: retrain on the top N % (N = 1, 2, ...) until the accuracy is
  within delta of the oracle. The paper's loop condition ``until N < length(rankedNeurons)``
  would stop after one step; we stop when the accuracy condition holds or all neurons are used.
* Sec. 2.5, :func:`control_task_labels`: each word type gets a label drawn from the task's
  empirical label distribution (Hewitt and Liang); selectivity = task - control accuracy.

Choices where the paper is silent (documented in the README and tested): the lambda grid and the
minimal subset are selected on the dev split and every reported accuracy is on the test split;
ties within one ranking step are ordered by the neuron's best rank within a label, then by index;
the weight-magnitude baseline ranks neurons by their total |weight| over all labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

# searchList of Alg. 2, in its order: with the strict ">" the first best cell wins, so the order
# decides ties (lambda = 0 comes last).
PAPER_LAMBDAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.0)


@dataclass(frozen=True)
class TrainSettings:
    """Alg. 1 hyper-parameters (the paper's defaults)."""

    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 1e-3
    seed: int = 0


@dataclass
class Probes:
    """G linear probes: logits_g = x @ weight[g] + bias[g]."""

    weight: torch.Tensor  # (G, D, T)
    bias: torch.Tensor  # (G, T)

    def single(self, g: int) -> Probes:
        return Probes(self.weight[g: g + 1], self.bias[g: g + 1])

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor | None = None,
                 chunk: int = 4096) -> np.ndarray:
        """Accuracy of each probe on (x, y). `keep` (G, D) bool zeroes every other feature of
        probe g (the paper's ablation: activations of the other neurons set to zero)."""
        w = self.weight if keep is None else \
            self.weight * keep[:, :, None].to(self.weight.device, self.weight.dtype)
        g, d, t = w.shape
        flat = w.permute(1, 0, 2).reshape(d, g * t)
        correct = torch.zeros(g, dtype=torch.long, device=w.device)
        for start in range(0, x.shape[0], chunk):
            xb = x[start: start + chunk].float()
            pred = ((xb @ flat).view(-1, g, t) + self.bias).argmax(-1)  # (B, G)
            correct += (pred == y[start: start + chunk, None]).sum(0)
        return (correct.double() / max(1, x.shape[0])).cpu().numpy()


def train_probes(x: torch.Tensor, y: torch.Tensor, n_labels: int, lambda1: Sequence[float],
                 *, lambda2: Sequence[float], masks: torch.Tensor | None = None,
                 settings: TrainSettings = TrainSettings()) -> Probes:
    """Alg. 1 for G = len(lambda1) probes at once; `masks` (G, D) keeps only those features.

    Every probe starts from the same seeded initialisation (uniform +-1/sqrt(D), as
    ``torch.nn.Linear``) and sees the same seeded mini-batch order, so this equals training the
    probes one by one. Without masks the G weight matrices are stored side by side (D, G * T)
    and a mini-batch costs one matrix product for all probes; with masks each probe holds only
    the weights of its own features and multiplies only their columns (:class:`_KeptFeatures`).
    The gradient of the loss is written out rather than taken through autograd: the mean
    cross-entropy's (softmax - one-hot) / B through the product, plus the penalty's
    lambda1 sign(w) + 2 lambda2 w (Sec. 2.1), into buffers reused by every mini-batch.
    Features may be stored in float16; each mini-batch is computed in float32, on the device
    `x` is on (the initialisation and the batch order are drawn on the CPU, so they are the
    same on every device).
    """
    if len(lambda1) != len(lambda2):
        raise ValueError("train_probes: lambda1 and lambda2 must have the same length")
    if x.shape[0] == 0:
        raise ValueError("train_probes: no training examples")
    g, (n, d) = len(lambda1), x.shape
    gen = torch.Generator().manual_seed(settings.seed)
    bound = 1.0 / math.sqrt(d)
    w0 = (torch.rand(d, n_labels, generator=gen) * 2 - 1) * bound
    b0 = (torch.rand(n_labels, generator=gen) * 2 - 1) * bound
    device = x.device
    product = _AllFeatures(x, w0, g) if masks is None else _KeptFeatures(x, w0, masks)
    w, b = product.weight, b0.expand(g, n_labels).to(device).clone()
    w.grad, b.grad, sign = torch.zeros_like(w), torch.zeros_like(b), torch.empty_like(w)
    l1 = torch.tensor(lambda1, dtype=torch.float32, device=device).view(product.penalty_shape)
    l2_twice = 2 * torch.tensor(lambda2, dtype=torch.float32, device=device).view(
        product.penalty_shape)
    opt = torch.optim.Adam([w, b], lr=settings.learning_rate,
                           fused=device.type in ("cpu", "cuda"))
    for _ in range(settings.epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, settings.batch_size):
            idx = perm[start: start + settings.batch_size]
            logits = product.logits(idx, w)  # (G, B, T)
            logits += b[:, None, :]
            grad = torch.softmax(logits, -1)  # d mean-CE / d logits = (softmax - one-hot) / B
            grad[:, torch.arange(len(idx), device=device), y[idx]] -= 1.0
            grad /= len(idx)
            torch.sum(grad, 1, out=b.grad)
            product.weight_gradient(grad, out=w.grad)
            w.grad.addcmul_(torch.sign(w, out=sign), l1).addcmul_(w, l2_twice)
            opt.step()
    return Probes(product.full_weight(w), b)


def _float_rows(x: torch.Tensor, idx: torch.Tensor,
                buffers: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """x[idx] in float32, written into the buffers of the previous mini-batch of this size
    (a fresh tensor per mini-batch costs more in page faults than the copy itself)."""
    if len(idx) not in buffers:
        buffers[len(idx)] = (x.new_empty((len(idx), x.shape[1])),
                             torch.empty(len(idx), x.shape[1], device=x.device))
    raw, rows = buffers[len(idx)]
    torch.index_select(x, 0, idx, out=raw)
    return raw if x.dtype == torch.float32 else rows.copy_(raw)


class _AllFeatures:
    """Every probe sees every feature: weights (D, G, T), one (B, D) @ (D, G T) product."""

    def __init__(self, x: torch.Tensor, w0: torch.Tensor, g: int):
        d, t = w0.shape
        self.x, self.weight = x, w0[:, None, :].expand(d, g, t).to(x.device).clone()
        self.penalty_shape = (1, g, 1)
        self._buffers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._rows = torch.empty(0)

    def logits(self, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        self._rows = _float_rows(self.x, idx, self._buffers)
        d, g, t = w.shape
        return (self._rows @ w.view(d, g * t)).view(-1, g, t).transpose(0, 1).contiguous()

    def weight_gradient(self, grad: torch.Tensor, out: torch.Tensor) -> None:
        d, g, t = out.shape
        torch.mm(self._rows.t(), grad.transpose(0, 1).reshape(-1, g * t), out=out.view(d, g * t))

    def full_weight(self, w: torch.Tensor) -> torch.Tensor:
        return w.permute(1, 0, 2).contiguous()


class _KeptFeatures:
    """Probe g sees only the features of masks[g] (G, D): weights (G, T, m) for m = the most
    features a probe keeps, and per mini-batch one batched product of each probe's weights with
    its gathered columns (m, B), a fifth of the full product for 20 % of the features. The
    batch is gathered transposed, so each kept column is one contiguous row; shorter lists are
    padded with an all-zero row D, whose weight never receives a gradient."""

    def __init__(self, x: torch.Tensor, w0: torch.Tensor, masks: torch.Tensor):
        (d, t), g, m = w0.shape, masks.shape[0], int(masks.sum(1).max())
        self.x, self.penalty_shape = x, (g, 1, 1)
        self.columns = torch.full((g, m), d, dtype=torch.long)
        for p, mask in enumerate(masks):
            kept = torch.nonzero(mask).ravel()
            self.columns[p, : len(kept)] = kept
        padded = torch.cat([w0, torch.zeros(1, t)])
        self.weight = padded[self.columns].transpose(1, 2).contiguous().to(x.device)
        self.columns = self.columns.to(x.device)
        self._buffers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._transposed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._gathered = torch.empty(0)

    def logits(self, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        g, _, m = w.shape
        if len(idx) not in self._transposed:  # (D + 1, B) transposed batch, (G m, B) gathered
            transposed = torch.zeros(self.x.shape[1] + 1, len(idx), device=self.x.device)
            self._transposed[len(idx)] = transposed, torch.empty(g * m, len(idx),
                                                                 device=self.x.device)
        transposed, gathered = self._transposed[len(idx)]
        transposed[:-1].copy_(_float_rows(self.x, idx, self._buffers).t())
        torch.index_select(transposed, 0, self.columns.view(-1), out=gathered)
        self._gathered = gathered.view(g, m, -1)
        return torch.bmm(w, self._gathered).transpose(1, 2)

    def weight_gradient(self, grad: torch.Tensor, out: torch.Tensor) -> None:
        torch.bmm(grad.transpose(1, 2).contiguous(), self._gathered.transpose(1, 2), out=out)

    def full_weight(self, w: torch.Tensor) -> torch.Tensor:
        (g, t, m), d = w.shape, self.x.shape[1]
        full = torch.zeros(g, d + 1, t, device=w.device)
        return full.scatter_(1, self.columns[:, :, None].expand(g, m, t),
                             w.transpose(1, 2))[:, :d].contiguous()


def label_rankings(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label t (columns of `weight`, D x T): neurons by decreasing |weight| (ties by index).

    Returns (order (T, D), share (T, D), mass_before (T, D)): order[t, i] is the neuron at rank
    i of label t, share its fraction of the label's total |weight| mass, mass_before the mass
    fraction of the neurons ranked above it. A label with no mass gets mass_before = inf.
    """
    mass = np.abs(np.asarray(weight, dtype=np.float64)).T  # (T, D)
    order = np.argsort(-mass, axis=1, kind="stable")
    sorted_mass = np.take_along_axis(mass, order, axis=1)
    cum = np.cumsum(sorted_mass, axis=1)
    total = cum[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, sorted_mass / total, 0.0)
        cum_frac = np.where(total > 0, cum / total, np.inf)
    mass_before = np.concatenate([np.where(total > 0, 0.0, np.inf), cum_frac[:, :-1]], axis=1)
    return order, share, mass_before


def mass_thresholds(step: float) -> np.ndarray:
    """The mass thresholds p = step, 2 step, ..., 100 % of Alg. 3, as fractions; the last is 1."""
    if not 0 < step <= 100:
        raise ValueError(f"ranking step must be in (0, 100] percent, got {step}")
    n = math.ceil(100 / step)
    p = np.arange(1, n + 1) * step / 100
    p[-1] = 1.0
    return p


@dataclass(frozen=True)
class Ranking:
    order: np.ndarray  # (D,) neuron indices, most salient first
    entry_threshold: np.ndarray  # (D,) per neuron: mass threshold p at which it became salient (nan: never)


def neuron_ranking(weight: np.ndarray, step: float = 1.0) -> Ranking:
    """Alg. 3: the task ordering of the D neurons from probe weights (D x T).

    A neuron becomes salient for label t at the first threshold p with mass_before < p (it is
    in the shortest prefix holding p of the label's mass); it enters the ordering at the first
    threshold where it is salient for some label. Neurons with no weight in any label come last.
    """
    order_t, _, before = label_rankings(weight)
    n_labels, d = order_t.shape
    p = mass_thresholds(step)
    entry_t = np.full((n_labels, d), len(p), dtype=np.int64)  # per (label, neuron): step index
    rank_t = np.empty((n_labels, d), dtype=np.int64)
    rows = np.arange(n_labels)[:, None]
    entry_t[rows, order_t] = np.searchsorted(p, before, side="right")
    rank_t[rows, order_t] = np.arange(d)[None, :]
    entry = entry_t.min(0) if n_labels else np.full(d, len(p))
    best_rank = np.where(entry_t == entry[None, :], rank_t, d).min(0) if n_labels else np.zeros(d)
    best_rank = np.where(entry < len(p), best_rank, 0)
    order = np.lexsort((np.arange(d), best_rank, entry))
    threshold = np.where(entry < len(p), p[np.minimum(entry, len(p) - 1)], np.nan)
    return Ranking(order=order, entry_threshold=threshold)


def weight_magnitude_order(weight: np.ndarray) -> np.ndarray:
    """Baseline ranking of Table 2: neurons by total |weight| over all labels, ties by index."""
    total = np.abs(np.asarray(weight, dtype=np.float64)).sum(1)
    return np.lexsort((np.arange(len(total)), -total))


def n_of_percent(percent: float, d: int) -> int:
    """Number of neurons in the top `percent` % of `d` (at least one)."""
    return max(1, min(d, math.ceil(percent * d / 100 - 1e-9)))


def keep_mask(indices: np.ndarray, d: int) -> torch.Tensor:
    mask = torch.zeros(d, dtype=torch.bool)
    mask[torch.as_tensor(np.asarray(indices, dtype=np.int64))] = True
    return mask


@dataclass
class ProbeData:
    """Train / dev / test features (words x neurons) and label ids of one task."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_dev: torch.Tensor
    y_dev: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_labels: int

    @property
    def n_neurons(self) -> int:
        return self.x_train.shape[1]

    def columns(self, keep: np.ndarray) -> ProbeData:
        """The same data restricted to the neurons `keep` (for retraining on a subset)."""
        k = torch.as_tensor(np.asarray(keep, dtype=np.int64), device=self.x_train.device)
        return ProbeData(self.x_train[:, k], self.y_train, self.x_dev[:, k], self.y_dev,
                         self.x_test[:, k], self.y_test, self.n_labels)

    def with_labels(self, y_train, y_dev, y_test) -> ProbeData:
        return ProbeData(self.x_train, y_train, self.x_dev, y_dev, self.x_test, y_test,
                         self.n_labels)


@dataclass
class GridResult:
    table: pl.DataFrame  # one row per (lambda1, lambda2): accuracies and score S
    best: int  # row of the selected cell
    oracle: Probes  # the probe trained with the selected lambdas on all neurons
    ranking: Ranking  # its Alg. 3 ranking

    @property
    def lambdas(self) -> tuple[float, float]:
        row = self.table.row(self.best, named=True)
        return row["lambda1"], row["lambda2"]


def grid_search(data: ProbeData, lambdas: Sequence[float] = PAPER_LAMBDAS,
                top_percent: float = 20.0, alpha: float = 0.5, *, beta: float = 0.5,
                ranking_step: float = 1.0, settings: TrainSettings = TrainSettings()
                ) -> GridResult:
    """Alg. 2 over every (lambda1, lambda2) in lambdas x lambdas, accuracies on the dev split.

    A_top / A_bottom come from probes retrained with the same lambdas on only the top / bottom
    `top_percent` % of the cell's ranking (the other features zeroed); A_noreg from the probe
    with lambda1 = lambda2 = 0 on all neurons.
    """
    pairs = [(l1, l2) for l1 in lambdas for l2 in lambdas]
    l1s, l2s = [p[0] for p in pairs], [p[1] for p in pairs]
    d, m = data.n_neurons, n_of_percent(top_percent, data.n_neurons)
    probes = train_probes(data.x_train, data.y_train, data.n_labels, l1s, lambda2=l2s,
                          settings=settings)
    current = probes.accuracy(data.x_dev, data.y_dev)
    rankings = [neuron_ranking(probes.weight[g].cpu().numpy(), ranking_step) for g in range(len(pairs))]
    acc_top, acc_bottom = (
        train_probes(data.x_train, data.y_train, data.n_labels, l1s, lambda2=l2s,
                     masks=torch.stack([keep_mask(part, d) for part in parts]),
                     settings=settings).accuracy(data.x_dev, data.y_dev)
        for parts in ([r.order[:m] for r in rankings], [r.order[d - m:] for r in rankings]))
    if (0.0, 0.0) in pairs:
        noreg = float(current[pairs.index((0.0, 0.0))])
    else:
        noreg = float(train_probes(data.x_train, data.y_train, data.n_labels, [0.0], lambda2=[0.0],
                                   settings=settings).accuracy(data.x_dev, data.y_dev)[0])
    score = alpha * (acc_top - acc_bottom) - beta * (noreg - current)
    best = 0
    for g in range(1, len(pairs)):  # strict '>' as in Alg. 2: the first best cell wins
        if score[g] > score[best]:
            best = g
    table = pl.DataFrame({
        "lambda1": l1s, "lambda2": l2s, "top_percent": float(top_percent), "alpha": alpha,
        "beta": beta, "accuracy_top": acc_top, "accuracy_bottom": acc_bottom,
        "accuracy_noreg": noreg, "accuracy_current": current, "score": score,
        "selected": [g == best for g in range(len(pairs))]})
    return GridResult(table, best, probes.single(best), rankings[best])


@dataclass(frozen=True)
class MinimalSubset:
    percent: float  # 100 n / D: the share of neurons actually kept (N % rounded up to whole neurons)
    n_neurons: int
    dev_accuracy: float
    probe: Probes  # retrained on the selected neurons (in ranking order)


def minimal_subset(data: ProbeData, order: np.ndarray, oracle_dev_accuracy: float,
                   lambdas: tuple[float, float], *, delta: float = 0.01, step_percent: float = 1.0,
                   settings: TrainSettings = TrainSettings(),
                   progress: Callable[[float, float], None] | None = None) -> MinimalSubset:
    """Alg. 4: the smallest top N % (N = step, 2 step, ...) of `order` whose retrained probe is
    within `delta` (accuracy fraction; the paper's 1 point = 0.01) of the oracle on dev."""
    d, last_n, percent = data.n_neurons, 0, 0.0
    while True:
        percent = min(100.0, percent + step_percent)
        n = n_of_percent(percent, d)
        if n == last_n and percent < 100:
            continue
        last_n = n
        sub = data.columns(order[:n])
        probe = train_probes(sub.x_train, sub.y_train, data.n_labels, [lambdas[0]],
                             lambda2=[lambdas[1]], settings=settings)
        acc = float(probe.accuracy(sub.x_dev, sub.y_dev)[0])
        if progress:
            progress(percent, acc)
        if oracle_dev_accuracy - acc < delta or n == d:
            return MinimalSubset(100 * n / d, n, acc, probe)


def control_task_labels(words: Sequence[str], labels: np.ndarray, n_labels: int,
                        seed: int) -> np.ndarray:
    """Hewitt and Liang's control task: every word type gets one label drawn (seeded) from the
    empirical distribution of the task's labels over `words`; returns a label per word."""
    labels = np.asarray(labels)
    p = np.bincount(labels, minlength=n_labels) / len(labels)
    types = sorted(set(words))
    drawn = np.random.default_rng(seed).choice(n_labels, size=len(types), p=p)
    of_type = dict(zip(types, drawn))
    return np.array([of_type[w] for w in words], dtype=np.int64)


def majority_accuracy(y_train: torch.Tensor, y_test: torch.Tensor) -> float:
    """Accuracy on test of always predicting the most frequent train label."""
    majority = int(torch.bincount(y_train).argmax())
    return float((y_test == majority).double().mean())


@dataclass(frozen=True)
class LcaSettings:
    """Parameters of one LCA analysis (paper defaults)."""

    lambdas: tuple[float, ...] = PAPER_LAMBDAS
    top_percent: float = 20.0  # M of Alg. 2 and of the ablation study (Table 2)
    alpha: float = 0.5
    beta: float = 0.5
    ranking_step: float = 1.0  # percent of weight mass per step of Alg. 3
    delta: float = 0.01  # Alg. 4 tolerance, as an accuracy fraction
    minimal_step: float = 1.0  # percent of neurons per step of Alg. 4
    n_random: int = 3  # random selections per percentage (the paper averages 3 runs)
    train: TrainSettings = TrainSettings()


def _retrained_accuracy(data: ProbeData, keep: np.ndarray, lambdas: tuple[float, float],
                        settings: TrainSettings) -> float:
    sub = data.columns(keep)
    probe = train_probes(sub.x_train, sub.y_train, data.n_labels, [lambdas[0]],
                         lambda2=[lambdas[1]], settings=settings)
    return float(probe.accuracy(sub.x_test, sub.y_test)[0])


def analyse_task(task: str, data: ProbeData, control: tuple[torch.Tensor, ...],
                 label_names: Sequence[str], *, settings: LcaSettings = LcaSettings(),
                 log: Callable[[str], None] = lambda _: None) -> dict[str, pl.DataFrame]:
    """Every LCA algorithm and evaluation for one task.

    `control` holds the control-task labels of the train, dev and test words. Returns frames
    keyed by lake table (without model, checkpoint, site): ``probe_tasks``, ``probe_grid``,
    ``probe_accuracy`` (test accuracies of Tables 2, 3 and 5), ``probe_neuron_ranking`` (feature
    index = position in the concatenated layers) and ``probe_label_ranking``.
    """
    d, s = data.n_neurons, settings
    log(f"{task}: grid search over {len(s.lambdas) ** 2} (lambda1, lambda2) pairs, "
        f"{d} neurons, {len(data.y_train)} train words")
    grid = grid_search(data, s.lambdas, s.top_percent, s.alpha, beta=s.beta,
                       ranking_step=s.ranking_step, settings=s.train)
    lambdas, oracle, order = grid.lambdas, grid.oracle, grid.ranking.order
    oracle_dev = float(oracle.accuracy(data.x_dev, data.y_dev)[0])
    oracle_test = float(oracle.accuracy(data.x_test, data.y_test)[0])
    log(f"{task}: lambda1={lambdas[0]:g} lambda2={lambdas[1]:g}; oracle accuracy dev "
        f"{oracle_dev:.4f}, test {oracle_test:.4f}; searching the minimal subset")
    minimal = minimal_subset(data, order, oracle_dev, lambdas, delta=s.delta,
                             step_percent=s.minimal_step, settings=s.train,
                             progress=lambda p, a: log(f"{task}: top {p:g}% -> dev {a:.4f}"))
    n_min = minimal.n_neurons
    rng = np.random.default_rng(s.train.seed)
    randoms = [np.sort(rng.permutation(d)[:n]) for n in (n_of_percent(s.top_percent, d), n_min)
               for _ in range(s.n_random)]
    rows = []

    def row(labels, selection, mode, percent, *, n, accuracy, seed=s.train.seed):
        rows.append((labels, selection, mode, float(percent), int(n), int(seed), float(accuracy)))

    row("task", "all", "retrained", 100, n=d, accuracy=oracle_test)
    row("task", "all", "masked", 100, n=d, accuracy=oracle_test)
    m = n_of_percent(s.top_percent, d)
    m_percent = 100 * m / d
    masked = {"top": order[:m], "bottom": order[d - m:],
              "weight_magnitude": weight_magnitude_order(oracle.weight[0].cpu().numpy())[:m]}
    for selection, keep in masked.items():
        acc = oracle.accuracy(data.x_test, data.y_test, keep_mask(keep, d)[None])[0]
        row("task", selection, "masked", m_percent, n=m, accuracy=acc)
    for r, keep in enumerate(randoms[: s.n_random]):
        acc = oracle.accuracy(data.x_test, data.y_test, keep_mask(keep, d)[None])[0]
        row("task", "random", "masked", m_percent, n=m, accuracy=acc, seed=s.train.seed + r)
    top_test = float(minimal.probe.accuracy(data.columns(order[:n_min]).x_test, data.y_test)[0])
    row("task", "top", "retrained", minimal.percent, n=n_min, accuracy=top_test)
    row("task", "bottom", "retrained", minimal.percent, n=n_min,
        accuracy=_retrained_accuracy(data, order[d - n_min:], lambdas, s.train))
    for r, keep in enumerate(randoms[s.n_random:]):
        row("task", "random", "retrained", minimal.percent, n=n_min,
            accuracy=_retrained_accuracy(data, keep, lambdas, s.train), seed=s.train.seed + r)
    control_data = data.with_labels(*control)
    control_all = train_probes(control_data.x_train, control_data.y_train, data.n_labels,
                               [lambdas[0]], lambda2=[lambdas[1]], settings=s.train)
    row("control", "all", "retrained", 100, n=d,
        accuracy=control_all.accuracy(control_data.x_test, control_data.y_test)[0])
    row("control", "top", "retrained", minimal.percent, n=n_min,
        accuracy=_retrained_accuracy(control_data, order[:n_min], lambdas, s.train))
    accuracy = pl.DataFrame(rows, orient="row", schema=[
        "labels", "selection", "mode", "percent", "n_neurons", "seed", "accuracy"])

    threshold = grid.ranking.entry_threshold
    weight = oracle.weight[0].cpu().numpy()
    neuron_ranking_df = pl.DataFrame({
        "feature": order, "rank": np.arange(1, d + 1),
        "mass_threshold": threshold[order],
        "weight_mass": np.abs(weight).sum(1)[order].astype(np.float64)})
    label_order, share, before = label_rankings(weight)
    n_labels = label_order.shape[0]
    label_ranking_df = pl.DataFrame({
        "label": np.repeat(np.asarray(label_names, dtype=object), d),
        "feature": label_order.flatten(), "label_rank": np.tile(np.arange(1, d + 1), n_labels),
        "weight": np.abs(weight.T)[np.arange(n_labels)[:, None], label_order].flatten()
                  .astype(np.float64),
        "mass_share": share.flatten(),
        "mass_before": pl.Series(np.where(np.isinf(before), np.nan, before).flatten()
                                 ).fill_nan(None)})
    last = order[n_min - 1]
    tasks = pl.DataFrame([{
        "n_labels": data.n_labels, "n_neurons": d, "n_train": len(data.y_train),
        "n_dev": len(data.y_dev), "n_test": len(data.y_test),
        "majority_accuracy": majority_accuracy(data.y_train, data.y_test),
        "lambda1": lambdas[0], "lambda2": lambdas[1], "oracle_dev_accuracy": oracle_dev,
        "delta": s.delta, "top_percent": s.top_percent, "minimal_percent": minimal.percent,
        "minimal_n_neurons": n_min, "minimal_dev_accuracy": minimal.dev_accuracy,
        "minimal_mass_threshold": float(threshold[last]) if not np.isnan(threshold[last])
        else 1.0}])
    frames = {"probe_tasks": tasks, "probe_grid": grid.table, "probe_accuracy": accuracy,
              "probe_neuron_ranking": neuron_ranking_df, "probe_label_ranking": label_ranking_df}
    return {k: v.with_columns(pl.lit(task).alias("task")) for k, v in frames.items()}


# The fixed (labels, selection, mode) runs of one task in ``probe_accuracy``; each random
# selection adds `n_random` masked and `n_random` retrained runs (:func:`analyse_task`).
FIXED_ACCURACY_RUNS = (("task", "all", "retrained"), ("task", "all", "masked"),
                       ("task", "top", "masked"), ("task", "bottom", "masked"),
                       ("task", "weight_magnitude", "masked"), ("task", "top", "retrained"),
                       ("task", "bottom", "retrained"), ("control", "all", "retrained"),
                       ("control", "top", "retrained"))


def accuracy_rows_per_task(n_random: int) -> int:
    """Rows of ``probe_accuracy`` that :func:`analyse_task` writes for one task."""
    return len(FIXED_ACCURACY_RUNS) + 2 * n_random


def run_lca(labels: pl.DataFrame, keys: pl.DataFrame, features: torch.Tensor, d_per_layer: int,
            *, settings: LcaSettings = LcaSettings(), device: str | torch.device = "cpu",
            log: Callable[[str], None] = lambda _: None) -> dict[str, pl.DataFrame]:
    """:func:`analyse_task` for every task of `labels` (the ``probe_labels`` table: sentence_id,
    word_index, word, split, task, label) on `features`, whose rows are `keys` (sentence_id,
    word_index) and whose columns are the neurons of all layers, `d_per_layer` per layer. The
    probes train on `device` (each split's features and labels are moved there).

    Label ids follow the sorted label names, so they never change between runs. Returns the
    concatenated frames with the feature index turned into (layer, neuron).
    """
    indexed = keys.with_row_index("row")
    out: dict[str, list[pl.DataFrame]] = {}
    for (task,), rows in labels.sort("task").group_by("task", maintain_order=True):
        rows = rows.join(indexed, on=["sentence_id", "word_index"], how="inner")
        names = sorted(rows["label"].unique().to_list())
        ids = rows["label"].replace_strict({n: i for i, n in enumerate(names)},
                                           return_dtype=pl.Int64).to_numpy()
        control = control_task_labels(rows["word"].to_list(), ids, len(names), settings.train.seed)
        parts = {}
        for split in ("train", "dev", "test"):
            sel = (rows["split"] == split).to_numpy()
            if not sel.any():
                raise ValueError(f"probing task {task!r}: the {split} split has no words")
            row = torch.from_numpy(rows["row"].to_numpy().astype(np.int64)[sel])
            parts[split] = tuple(t.to(device) for t in (features[row], torch.from_numpy(ids[sel]),
                                                        torch.from_numpy(control[sel])))
        data = ProbeData(*parts["train"][:2], *parts["dev"][:2], *parts["test"][:2], len(names))
        frames = analyse_task(task, data, tuple(parts[s][2] for s in ("train", "dev", "test")),
                              names, settings=settings, log=log)
        for table, df in frames.items():
            if "feature" in df.columns:
                df = df.with_columns((pl.col("feature") // d_per_layer).alias("layer"),
                                     (pl.col("feature") % d_per_layer).alias("neuron")
                                     ).drop("feature")
            out.setdefault(table, []).append(df)
    return {table: pl.concat(dfs, how="diagonal_relaxed") for table, dfs in out.items()}
