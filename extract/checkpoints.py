"""Checkpoint folders: validation and discovery (Hugging Face Trainer's ``checkpoint-<step>/``)."""

from __future__ import annotations

import re
from pathlib import Path

_STEP = re.compile(r"^checkpoint-(\d+)$")

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


class CheckpointError(ValueError):
    """A checkpoint folder is missing or is not a loadable Hugging Face checkpoint."""


def check_checkpoint_folder(path: str | Path) -> Path:
    """Return `path` if it holds a Hugging Face config and safetensors weights; else raise."""
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"checkpoint folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {str(folder)!r} is a file, not a checkpoint folder")
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"{str(folder)!r} is not a checkpoint: it has no config.json "
            "(expected a Hugging Face model folder saved with save_pretrained)")
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise CheckpointError(
            f"{str(folder)!r} is not a checkpoint: it has no model.safetensors weights")
    return folder


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
