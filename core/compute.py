"""Where the model-running steps run: the study's ``compute: {device, dtype}`` setting.

The model's forward pass (extraction, ablation, probing's feature extraction, correlation's
paired activations, the modularity gradients), the probes' training and the explanation
embeddings run on the device; the model's weights are held in the dtype (the embedding model's
stay float32 and its forward runs under autocast: :func:`extract.embeddings.embed_texts`).
What is aggregated (moments, token means, top contexts, correlation sums) is moved to the host
as float32 and accumulated in float64 there, as on a CPU-only machine, so a GPU changes where
the work runs, not how results are computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ComputeError(ValueError):
    """The configured device cannot be used on this machine."""


def _available(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_available()
    if device == "mps":
        return torch.backends.mps.is_available()
    return device == "cpu"


@dataclass(frozen=True)
class Compute:
    """``device``: auto (cuda when available, else cpu) | cpu | cuda | mps; ``dtype`` of the
    model's weights and forward: float32 (default) | bfloat16 | float16."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    def torch_device(self) -> torch.device:
        """The device to run on; :class:`ComputeError` naming ``compute.device`` when the one
        asked for is not available here."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if not _available(self.device):
            raise ComputeError(
                f"compute.device: {self.device!r} is not available on this machine (torch "
                f"{torch.__version__}, cuda available: {torch.cuda.is_available()}); "
                f"set compute.device to 'auto' or 'cpu'")
        return torch.device(self.device)

    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def device_of(module: torch.nn.Module) -> torch.device:
    """The device a model's parameters are on."""
    return next(module.parameters()).device


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` on the CPU as float32 (what the host-side aggregates take); no copy when it is
    already there in float32."""
    return tensor.to(device="cpu", dtype=torch.float32)
