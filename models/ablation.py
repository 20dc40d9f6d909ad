"""Causal test of neuron clusters by zero-ablation (Zhang et al. Sec. 5.5, Table 3).

A cluster's neurons are set to zero with forward hooks and the loss is measured on held-out
sequences that contain the cluster's top-activating tokens, on those tokens only: the next-token
loss of a causal model (predicting the token from the position before it), or the masked-LM loss
of a masked model with those tokens replaced by the mask token. The paper replaces an ablated
BERT activation by its layer's mean; the issue asks for zero-ablation, used here.

Baselines ablate as many neurons as the cluster (Table 3's columns):

* ``random``: anywhere in the site;
* ``random_layer``: the cluster's count in each layer, drawn within that layer;
* ``random_position``: random index positions ablated in every layer; with n neurons over L
  layers, n // L positions in all layers and, for the remainder, one more position in n % L
  random layers, so exactly n neurons are ablated.

All runs of one cluster (no ablation, the cluster, every baseline draw) go through the model
together: the evaluation batch is repeated once per run and each copy gets its own mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

BASELINES = ("random", "random_layer", "random_position")


@dataclass(frozen=True)
class NeuronSet:
    """Neurons of one site, as parallel arrays of layer and index."""

    layers: np.ndarray
    neurons: np.ndarray

    def __len__(self) -> int:
        return len(self.layers)


def baseline_neurons(kind: str, cluster: NeuronSet, n_layers: int, width: int,
                     rng: np.random.Generator) -> NeuronSet:
    """One random draw of a baseline with the cluster's size (module docstring)."""
    n = len(cluster)
    if kind == "random":
        flat = rng.choice(n_layers * width, size=n, replace=False)
        return NeuronSet(flat // width, flat % width)
    if kind == "random_layer":
        layers, counts = np.unique(cluster.layers, return_counts=True)
        picks = [(np.full(c, layer), rng.choice(width, size=c, replace=False))
                 for layer, c in zip(layers, counts)]
        return NeuronSet(np.concatenate([p[0] for p in picks]),
                         np.concatenate([p[1] for p in picks]))
    if kind == "random_position":
        full, extra = divmod(n, n_layers)
        positions = rng.choice(width, size=full + (extra > 0), replace=False)
        layers = np.repeat(np.arange(n_layers), full)
        neurons = np.tile(positions[:full], n_layers)
        if extra:
            layers = np.concatenate([layers, np.sort(rng.choice(n_layers, extra, replace=False))])
            neurons = np.concatenate([neurons, np.full(extra, positions[full])])
        return NeuronSet(layers, neurons)
    raise ValueError(f"unknown baseline {kind!r}; choose from {list(BASELINES)}")


@dataclass
class EvalSet:
    """Held-out sequences and the positions whose tokens the loss is measured on."""

    ids: torch.Tensor  # (B, T) long, right-padded
    real: torch.Tensor  # (B, T) bool
    targets: torch.Tensor  # (B, T) bool, positions of the cluster's tokens

    @property
    def n_targets(self) -> int:
        return int(self.targets.sum())


def eval_set(sequences: Sequence[Sequence[int]], tokens: set[int], pad_id: int,
             max_sentences: int, causal: bool) -> EvalSet | None:
    """The first `max_sentences` sequences that contain one of `tokens` (at a position > 0 for
    a causal model, which has nothing to predict the first token from); None if there is none."""
    chosen, masks = [], []
    for seq in sequences:
        hit = [i for i, t in enumerate(seq) if t in tokens and (i > 0 or not causal)]
        if hit:
            chosen.append(seq)
            masks.append(hit)
            if len(chosen) == max_sentences:
                break
    if not chosen:
        return None
    width = max(len(s) for s in chosen)
    ids = torch.full((len(chosen), width), pad_id, dtype=torch.long)
    real = torch.zeros((len(chosen), width), dtype=torch.bool)
    targets = torch.zeros_like(real)
    for i, (seq, hit) in enumerate(zip(chosen, masks)):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        real[i, : len(seq)] = True
        targets[i, hit] = True
    return EvalSet(ids, real, targets)


def _mask_hook(keep: torch.Tensor, copies: int):
    """Multiply the layer's activations of copy r of the batch by keep[r] (0 = ablated)."""
    def hook(act, hook):
        b = act.shape[0] // copies
        return act * keep.repeat_interleave(b, dim=0)[:, None, :].to(act.dtype)
    return hook


def target_losses(bridge, hook_names: Sequence[str], width: int, data: EvalSet,
                  runs: Sequence[NeuronSet], masked_lm: bool, mask_id: int | None = None,
                  max_rows: int = 64) -> list[float]:
    """Mean cross-entropy on `data`'s target tokens with each neuron set of `runs` zero-ablated
    (an empty set = the unablated model), in nats.

    Causal model: the loss of predicting each target token from the position before it. Masked
    model: the targets are replaced by `mask_id` and predicted at their own positions. Runs are
    stacked along the batch, at most `max_rows` sequences per forward pass.
    """
    ids, rows, predict_at, labels = _loss_inputs(data, masked_lm, mask_id)
    per_pass = max(1, max_rows // ids.shape[0])
    losses: list[float] = []
    for start in range(0, len(runs), per_pass):
        group = runs[start: start + per_pass]
        keep = torch.ones((len(hook_names), len(group), width))
        for r, run in enumerate(group):
            keep[torch.as_tensor(run.layers, dtype=torch.long), r,
                 torch.as_tensor(run.neurons, dtype=torch.long)] = 0
        hooks = [(name, _mask_hook(keep[layer], len(group)))
                 for layer, name in enumerate(hook_names) if (keep[layer] == 0).any()]
        with torch.no_grad():
            logits = bridge.run_with_hooks(ids.repeat(len(group), 1), fwd_hooks=hooks,
                                           attention_mask=data.real.long().repeat(len(group), 1))
        b = ids.shape[0]
        for r in range(len(group)):
            picked = logits[r * b + rows, predict_at].float()
            losses.append(float(torch.nn.functional.cross_entropy(picked, labels)))
    return losses


def _loss_inputs(data: EvalSet, masked_lm: bool, mask_id: int | None):
    """(input ids, target rows, positions whose logits predict the targets, target labels)."""
    ids = data.ids
    if masked_lm:
        if mask_id is None:
            raise ValueError("a masked language model needs the tokenizer's mask token")
        ids = ids.masked_fill(data.targets, mask_id)
    rows, cols = torch.nonzero(data.targets, as_tuple=True)
    return ids, rows, (cols if masked_lm else cols - 1), data.ids[rows, cols]


def target_cross_entropy(bridge, data: EvalSet, masked_lm: bool,
                         mask_id: int | None = None) -> torch.Tensor:
    """The loss of :func:`target_losses` without ablation, as a differentiable tensor."""
    ids, rows, predict_at, labels = _loss_inputs(data, masked_lm, mask_id)
    logits = bridge(ids, attention_mask=data.real.long())
    return torch.nn.functional.cross_entropy(logits[rows, predict_at].float(), labels)


@dataclass(frozen=True)
class AblationSettings:
    n_repeats: int = 5  # draws of each baseline
    max_sentences: int = 32  # held-out sequences per cluster
    max_rows: int = 64  # sequences per forward pass
    seed: int = 0


def ablate_cluster(bridge, hook_names: Sequence[str], width: int, cluster: NeuronSet,
                   data: EvalSet, masked_lm: bool, mask_id: int | None,
                   settings: AblationSettings, rng: np.random.Generator) -> list[dict]:
    """Rows (baseline, repeat, n_neurons, loss_base, loss_ablated) for the cluster and
    `settings.n_repeats` draws of every baseline, all on the same evaluation set."""
    runs = [("none", 0, NeuronSet(np.array([], int), np.array([], int))), ("cluster", 0, cluster)]
    runs += [(kind, r, baseline_neurons(kind, cluster, len(hook_names), width, rng))
             for kind in BASELINES for r in range(settings.n_repeats)]
    losses = target_losses(bridge, hook_names, width, data, [run for _, _, run in runs],
                           masked_lm, mask_id, settings.max_rows)
    return [{"baseline": kind, "repeat": r, "n_neurons": len(run), "loss_base": losses[0],
             "loss_ablated": loss}
            for (kind, r, run), loss in zip(runs[1:], losses[1:])]


def ablate_clusters(bridge, hook_names: Sequence[str], width: int,
                    clusters: Sequence[tuple[dict, NeuronSet, set[int]]],
                    sequences: Sequence[Sequence[int]], pad_id: int, masked_lm: bool,
                    mask_id: int | None, settings: AblationSettings,
                    progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Ablate each (keys, neurons, top tokens) cluster and its baselines on the held-out
    `sequences` that contain its tokens; a cluster none of whose tokens occur is skipped."""
    rng = np.random.default_rng(settings.seed)
    rows: list[dict] = []
    for i, (keys, neurons, tokens) in enumerate(clusters):
        data = eval_set(sequences, tokens, pad_id, settings.max_sentences, causal=not masked_lm)
        if data is not None:
            for row in ablate_cluster(bridge, hook_names, width, neurons, data, masked_lm,
                                      mask_id, settings, rng):
                rows.append({**keys, **row, "n_sentences": data.ids.shape[0],
                             "n_targets": data.n_targets})
        if progress:
            progress(i + 1, len(clusters))
    return rows


def choose_clusters(cluster_ids: Sequence[int], max_clusters: int | None, seed: int) -> list[int]:
    """All cluster ids, or a seeded sample of `max_clusters` of them, in increasing order."""
    ids = sorted(set(cluster_ids))
    if max_clusters is None or len(ids) <= max_clusters:
        return ids
    return sorted(np.random.default_rng(seed).choice(ids, size=max_clusters, replace=False).tolist())
