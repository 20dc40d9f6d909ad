"""Resources: where the data lives (the home folder) and which study is configured."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dagster_project.study import StudyConfig, demo_study, load_study


class NwhResource(dg.ConfigurableResource):
    """The Neuron Warehouse home folder (the DuckDB file, reports, Dagster's instance), the lake
    location ('' = ``<home>/lake``; else a path or fsspec URL) and the study configuration file
    ('' = the demo study); `torch_threads` > 0 sets torch's intra-op threads in extraction steps
    (parallel extraction gives each of N processes cores // N)."""

    home: str
    study_file: str = ""
    lake_url: str = ""
    torch_threads: int = 0

    @property
    def home_dir(self) -> Path:
        return Path(self.home)

    @property
    def lake(self) -> str:
        return self.lake_url.rstrip("/") or str(self.home_dir / "lake")

    @property
    def warehouse_path(self) -> Path:
        return self.home_dir / "warehouse.duckdb"

    def study(self) -> StudyConfig:
        return load_study(self.study_file) if self.study_file else demo_study(self.home_dir)
