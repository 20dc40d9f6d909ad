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


INSTANCE_SETTINGS = {
    # One run at a time: each run uses both cores, and runs queue behind each other.
    "run_queue": {"max_concurrent_runs": 1},
    # A run interrupted by its worker's end (`nwh ui` stopped mid-run: "execution was interrupted
    # unexpectedly") is re-executed from the step that failed when the daemon is back; a step
    # that failed on its own is not (it would fail again).
    "run_retries": {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False},
    # Runs stuck starting or cancelling are failed (and so retried) by the daemon.
    "run_monitoring": {"enabled": True, "start_timeout_seconds": 300,
                       "cancel_timeout_seconds": 300, "poll_interval_seconds": 30},
}
# The instance's runs, events and schedules in PostgreSQL (dagster-postgres), for Celery workers
# and other hosts; the URL is read from the environment by every process that opens the instance.
POSTGRES_STORAGE = {"postgres": {"postgres_url": {"env": "NWH_POSTGRES_URL"}}}


def write_instance_config(home: Path, *, postgres: bool = False) -> Path:
    """The Dagster instance folder ``<home>/dagster``, its ``dagster.yaml`` given each of
    :data:`INSTANCE_SETTINGS` it does not set already (and the PostgreSQL storage with
    `postgres`, where it names no storage)."""
    import yaml

    dagster_home = Path(home) / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    settings = (yaml.safe_load(config.read_text()) if config.exists() else None) or {}
    wanted = {**INSTANCE_SETTINGS, **({"storage": POSTGRES_STORAGE} if postgres else {})}
    missing = {key: value for key, value in wanted.items() if key not in settings}
    if missing:
        config.write_text(yaml.safe_dump({**settings, **missing}, sort_keys=False))
    return dagster_home


def run_lock(home: Path, *, wait: bool = True, say=print):
    """One `nwh run` per home at a time (``<home>/run.lock``, :func:`home_lock`)."""
    return home_lock(home, "run.lock", "nwh run", wait=wait, say=say)


@contextmanager
def home_lock(home: Path, name: str, holder_kind: str, *, wait: bool = True,
              say=print) -> Iterator[None]:
    """An exclusive lock on ``<home>/<name>`` (flock, released by the kernel if the holder
    dies), held by one `holder_kind` at a time. A second waits for the first, saying so, or with
    `wait` False stops with an error naming the holder."""
    path = Path(home) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise RuntimeError(f"another {holder_kind} is working on {home} ({holder}); "
                                   "wait for it to finish or drop --no-wait") from None
            say(f"another {holder_kind} is working on {home} ({holder}); waiting for it to "
                "finish")
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
