"""Language-model loss through a TransformerLens bridge with neurons ablated: the one loss setup
shared by the activation-cluster ablation (Zhang et al. Sec. 5.5) and the modularity ON/OFF and
circuit-size experiments (Golechha et al. Sec. 3).

The loss is measured on chosen target tokens of held-out sequences: the next-token loss of a
causal model (predicting the token from the position before it), or the masked-LM loss of a masked
model with those tokens replaced by the mask token. Several ablation runs of one evaluation set go
through the model together: the batch is repeated once per run and each copy gets its own mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.batching import pad_sequences
from core.compute import device_of


@dataclass(frozen=True)
class LossSetup:
    """How to measure a language-model loss through a bridge: the hooks of the ablated site (one
    per layer) and its width, causal or masked, the tokenizer's ids, and what an ablated neuron
    is set to: `fill[layer, neuron]` (e.g. its mean activation), or zero when `fill` is None."""

    bridge: object
    hook_names: list[str]
    width: int
    masked: bool
    pad_id: int
    mask_id: int | None
    special_ids: set[int]
    fill: torch.Tensor | None = None  # (layers, width)


@dataclass(frozen=True)
class NeuronSet:
    """Neurons of one site, as parallel arrays of layer and index."""

    layers: np.ndarray
    neurons: np.ndarray

    def __len__(self) -> int:
        return len(self.layers)


NO_NEURONS = NeuronSet(np.array([], int), np.array([], int))


@dataclass
class EvalSet:
    """Held-out sequences and the positions whose tokens the loss is measured on."""

    ids: torch.Tensor  # (B, T) long, right-padded
    real: torch.Tensor  # (B, T) bool
    targets: torch.Tensor  # (B, T) bool, positions of the target tokens

    @property
    def n_targets(self) -> int:
        return int(self.targets.sum())


def eval_set(sequences: Sequence[Sequence[int]], tokens: set[int], pad_id: int,
             max_sentences: int, *, causal: bool) -> EvalSet | None:
    """The first `max_sentences` sequences that contain one of `tokens` (at a position > 0 for
    a causal model, which has nothing to predict the first token from); None if there is none."""
    chosen, hits = [], []
    for seq in sequences:
        hit = [i for i, t in enumerate(seq) if t in tokens and (i > 0 or not causal)]
        if hit:
            chosen.append(seq)
            hits.append(hit)
            if len(chosen) == max_sentences:
                break
    if not chosen:
        return None
    ids, real = pad_sequences(chosen, pad_id)
    targets = torch.zeros_like(real)
    for i, hit in enumerate(hits):
        targets[i, hit] = True
    return EvalSet(ids, real, targets)


def _mask_hook(keep: torch.Tensor, copies: int, fill: torch.Tensor | None):
    """Copy r of the batch keeps the layer's activations where keep[r] is 1 and takes `fill`
    (zero when None) where it is 0."""
    def hook(act, hook):
        b = act.shape[0] // copies
        k = keep.repeat_interleave(b, dim=0)[:, None, :].to(act.dtype)
        return act * k if fill is None else act * k + (1 - k) * fill.to(act.device, act.dtype)
    return hook


def target_losses(lm: LossSetup, data: EvalSet, runs: Sequence[NeuronSet],
                  max_rows: int = 256) -> list[float]:
    """Mean cross-entropy on `data`'s target tokens with each neuron set of `runs` ablated (set
    to `lm.fill`, or zero; an empty set = the unablated model), in nats. Runs are stacked along
    the batch, at most
    `max_rows` sequences per forward pass."""
    ids, rows, predict_at, labels = _loss_inputs(data, lm.masked, lm.mask_id,
                                                 device_of(lm.bridge))
    per_pass = max(1, max_rows // ids.shape[0])
    losses: list[float] = []
    for start in range(0, len(runs), per_pass):
        group = runs[start: start + per_pass]
        keep = torch.ones((len(lm.hook_names), len(group), lm.width), device=ids.device)
        for r, run in enumerate(group):
            keep[torch.as_tensor(run.layers, dtype=torch.long), r,
                 torch.as_tensor(run.neurons, dtype=torch.long)] = 0
        hooks = [(name, _mask_hook(keep[layer], len(group),
                                   None if lm.fill is None else lm.fill[layer]))
                 for layer, name in enumerate(lm.hook_names) if (keep[layer] == 0).any()]
        b = ids.shape[0]
        with torch.no_grad():
            logits = target_logits(
                lm.bridge, ids.repeat(len(group), 1), data.real.long().to(ids.device)
                .repeat(len(group), 1), torch.cat([r * b + rows for r in range(len(group))]),
                predict_at.repeat(len(group)), hooks)
        for picked in logits.float().split(len(rows)):
            losses.append(float(torch.nn.functional.cross_entropy(picked, labels)))
    return losses


class _Unembedding(Exception):
    """Raised by the hook on the unembedding's input, to end the forward pass there."""


def target_logits(bridge, ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor,
                  positions: torch.Tensor, hooks: Sequence = ()) -> torch.Tensor:
    """The logits at (rows, positions) of `ids` (with `hooks` on), one row per pair: the forward
    stops at the unembedding's input, and the unembedding runs on those positions alone. A loss
    on a few target tokens never forms the vocabulary-wide logits of every position (at GPT-2's
    50,257 types, 256 sequences of 64 tokens would be 3.3 GB of them, and their product 31 % of
    GPT-2 small's forward FLOPs)."""
    picked = []

    def capture(act, hook):
        picked.append(act[rows, positions])
        raise _Unembedding

    try:
        bridge.run_with_hooks(ids, fwd_hooks=[*hooks, ("unembed.hook_in", capture)],
                              attention_mask=attention_mask)
    except _Unembedding:
        pass
    return bridge.unembed(picked[0])


def _loss_inputs(data: EvalSet, masked_lm: bool, mask_id: int | None, device: torch.device):
    """(input ids, target rows, positions whose logits predict the targets, target labels), on
    `device`."""
    ids = data.ids
    if masked_lm:
        if mask_id is None:
            raise ValueError("a masked language model needs the tokenizer's mask token")
        ids = ids.masked_fill(data.targets, mask_id)
    rows, cols = torch.nonzero(data.targets, as_tuple=True)
    return (ids.to(device), rows.to(device), (cols if masked_lm else cols - 1).to(device),
            data.ids[rows, cols].to(device))


def target_cross_entropy(lm: LossSetup, data: EvalSet) -> torch.Tensor:
    """The loss of :func:`target_losses` without ablation, as a differentiable tensor."""
    ids, rows, predict_at, labels = _loss_inputs(data, lm.masked, lm.mask_id,
                                                 device_of(lm.bridge))
    logits = target_logits(lm.bridge, ids, data.real.long().to(ids.device), rows, predict_at)
    return torch.nn.functional.cross_entropy(logits.float(), labels)
