"""Where the data lives by default: light enough for `nwh query` to import (no Dagster)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    """``NWH_HOME`` if set, else ``warehouse/`` in the repository."""
    return Path(os.environ.get("NWH_HOME") or REPO_ROOT / "warehouse").resolve()


def default_lake() -> str:
    """``NWH_LAKE_URL`` if set (a path or any fsspec URL, e.g. ``s3://bucket/lake``), else ''
    (the lake is then ``<home>/lake``)."""
    return os.environ.get("NWH_LAKE_URL", "")
