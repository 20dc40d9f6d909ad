"""Checkpoint folders: validation and discovery (Hugging Face Trainer's ``checkpoint-<step>/``)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

_STEP = re.compile(r"^checkpoint-(\d+)$")

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin",)
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model")


class CheckpointError(ValueError):
    """A checkpoint folder is missing or is not a loadable Hugging Face checkpoint."""


def check_checkpoint_folder(path: str | Path) -> Path:
    """Return `path` if it holds a Hugging Face config and weights (safetensors, or pickle
    ``pytorch_model.bin``, which only :func:`check_loadable` may accept); else raise."""
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"checkpoint folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {str(folder)!r} is a file, not a checkpoint folder")
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"{str(folder)!r} is not a checkpoint: it has no config.json "
            "(expected a Hugging Face model folder saved with save_pretrained)")
    if not any((folder / w).is_file() for w in (*WEIGHT_FILES, *PICKLE_FILES)):
        raise CheckpointError(
            f"{str(folder)!r} is not a checkpoint: it has no model.safetensors weights")
    return folder


def check_loadable(path: str | Path, trust_pickle: bool = False) -> tuple[Path, bool]:
    """Check a checkpoint folder before any weights are loaded; return (folder, uses_pickle).

    Refuses, naming the folder: a config that is not JSON or names no architecture transformers
    supports; safetensors weights that are truncated or corrupt; pickle weights
    (``pytorch_model.bin``, which can run code when unpickled) unless `trust_pickle`, and then
    they are loaded with ``torch.load(weights_only=True)``; a missing tokenizer.
    """
    folder = check_checkpoint_folder(path)
    _check_config(folder)
    safetensors = [folder / w for w in WEIGHT_FILES if (folder / w).is_file()]
    uses_pickle = not safetensors
    if uses_pickle and not trust_pickle:
        raise CheckpointError(
            f"{str(folder)!r} holds only pickle weights (pytorch_model.bin), which can run code "
            "when loaded; convert them to safetensors, or set extraction.trust_pickle_checkpoints: "
            "true to load them with torch.load(weights_only=True)")
    if folder.joinpath("model.safetensors").is_file():
        _check_safetensors(folder / "model.safetensors")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise CheckpointError(f"{str(folder)!r} has no tokenizer (expected one of "
                              f"{list(TOKENIZER_FILES)}); save the tokenizer with the model")
    return folder, uses_pickle


def _check_config(folder: Path) -> None:
    from transformers import CONFIG_MAPPING

    try:
        config = json.loads((folder / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{str(folder / 'config.json')!r} is not valid JSON: {e}") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in CONFIG_MAPPING:
        raise CheckpointError(
            f"{str(folder / 'config.json')!r}: model_type {model_type!r} is not an architecture "
            "this transformers version supports (remote code is never trusted)")


def _check_safetensors(file: Path) -> None:
    """The safetensors layout: an 8-byte header length, a JSON header, then exactly the bytes
    the header's data offsets describe."""
    size = file.stat().st_size
    try:
        with file.open("rb") as fh:
            header_len = struct.unpack("<Q", fh.read(8))[0]
            if header_len > size:
                raise ValueError(f"header length {header_len} exceeds the file size")
            header = json.loads(fh.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
                  default=0)
    except (struct.error, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{str(file)!r} is truncated or corrupt: {e}") from None
    if 8 + header_len + end != size:
        raise CheckpointError(f"{str(file)!r} is truncated or corrupt: the header describes "
                              f"{8 + header_len + end} bytes but the file has {size}")


def is_checkpoint_folder(path: Path) -> bool:
    try:
        check_checkpoint_folder(path)
    except CheckpointError:
        return False
    return True


def checkpoint_name(folder: Path) -> str:
    """The checkpoint key of a folder: its name when it is ``checkpoint-<step>``, else ``final``."""
    return folder.name if _STEP.match(folder.name) else "final"


def find_checkpoints(path: str | Path) -> list[tuple[str, Path]]:
    """(name, folder) of the checkpoint at `path`, or of the ``checkpoint-<step>`` folders in it,
    oldest step first. Raises CheckpointError naming the path when there is none."""
    root = Path(path)
    if not root.exists():
        raise CheckpointError(f"checkpoint folder {str(root)!r} does not exist")
    if is_checkpoint_folder(root):
        return [(checkpoint_name(root), root)]
    found = sorted(((int(m.group(1)), p) for p in root.iterdir()
                    if (m := _STEP.match(p.name)) and is_checkpoint_folder(p)))
    if not found:
        check_checkpoint_folder(root)  # raises the precise reason for the folder itself
    return [(p.name, p) for _, p in found]


COMPLETION_MARKERS = ("trainer_state.json",)


def checkpoint_fingerprint(folder: Path) -> str:
    """Size and modification time (ns) of the folder's config and weight files, as one string.

    Two equal fingerprints on consecutive looks mean nothing was written in between; a checkpoint
    rewritten in place gets a new fingerprint.
    """
    parts = []
    for name in ("config.json", *WEIGHT_FILES):
        f = folder / name
        if f.is_file():
            st = f.stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def ready_checkpoints(root: str | Path, previous: dict[str, str]) -> tuple[list[tuple[str, Path, str]],
                                                                           dict[str, str]]:
    """Checkpoints under `root` that are complete, with their fingerprints.

    A checkpoint is complete when it holds a completion marker the trainer writes last
    (``trainer_state.json``), or when its fingerprint is the same as on the previous look
    (`previous`, name -> fingerprint). Returns (ready (name, folder, fingerprint) triples,
    the fingerprints seen now, to pass as `previous` next time). A missing root yields nothing.
    """
    try:
        found = find_checkpoints(root)
    except CheckpointError:
        return [], {}
    seen, ready = {}, []
    for name, folder in found:
        fingerprint = checkpoint_fingerprint(folder)
        seen[name] = fingerprint
        marked = any((folder / m).is_file() for m in COMPLETION_MARKERS)
        if marked or previous.get(name) == fingerprint:
            ready.append((name, folder, fingerprint))
    return ready, seen
