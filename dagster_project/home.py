"""Where the data lives by default: light enough for `nwh query` to import (no Dagster)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    """``NWH_HOME`` if set, else ``warehouse/`` in the repository."""
    return Path(os.environ.get("NWH_HOME") or REPO_ROOT / "warehouse").resolve()


def default_lake() -> str:
    """``NWH_LAKE_URL`` if set (a path or any fsspec URL, e.g. ``s3://bucket/lake``), else ''
    (the lake is then ``<home>/lake``)."""
    return os.environ.get("NWH_LAKE_URL", "")


@contextmanager
def run_lock(home: Path, *, wait: bool = True, say=print) -> Iterator[None]:
    """One `nwh run` per home at a time: an exclusive lock on ``<home>/run.lock`` (flock, released
    by the kernel if the holder dies). A second run waits for the first, saying so, or with
    `wait` False stops with an error naming the holder."""
    path = Path(home) / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise RuntimeError(f"another nwh run is working on {home} ({holder}); wait for "
                                   "it to finish or drop --no-wait") from None
            say(f"another nwh run is working on {home} ({holder}); waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
