"""Resources: where the data lives (the home folder) and which study is configured."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from dagster_project.study import StudyConfig, demo_study, load_study

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    """``NWH_HOME`` if set, else ``warehouse/`` in the repository."""
    return Path(os.environ.get("NWH_HOME") or REPO_ROOT / "warehouse").resolve()


class NwhResource(dg.ConfigurableResource):
    """The Neuron Warehouse home folder and the study configuration file ('' = the demo study)."""

    home: str
    study_file: str = ""

    @property
    def home_dir(self) -> Path:
        return Path(self.home)

    @property
    def lake(self) -> Path:
        return self.home_dir / "lake"

    @property
    def warehouse_path(self) -> Path:
        return self.home_dir / "warehouse.duckdb"

    def study(self) -> StudyConfig:
        return load_study(self.study_file) if self.study_file else demo_study(self.home_dir)
