"""Token batches: right-padding of token-id sequences, shared by extraction, losses and training."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_sequences(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad `seqs` into (ids, real) tensors: ids (B, T) long filled with `pad`, and `real`
    (B, T) bool, True on the sequences' own tokens."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    real = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        real[i, : len(s)] = True
    return ids, real
