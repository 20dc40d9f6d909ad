"""Resources: where the data lives (the home folder) and which study is configured."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from dagster_project.demo import demo_study
from dagster_project.study import StudyConfig, load_study


class NwhResource(dg.ConfigurableResource):
    """The Neuron Warehouse home folder (the DuckDB file, reports, Dagster's instance), the lake
    location ('' = ``<home>/lake``; else a path or fsspec URL) and the study configuration file
    ('' = the demo study); `torch_threads` > 0 sets torch's intra-op threads in extraction steps
    (parallel extraction gives each of N processes cores // N).

    The study file is parsed once into a typed :class:`StudyConfig` and kept, until the file
    changes (its size or modification time), so every asset and check of a run sees one parse."""

    home: str
    study_file: str = ""
    lake_url: str = ""
    torch_threads: int = 0
    _parsed: tuple[tuple, StudyConfig] | None = PrivateAttr(default=None)

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
        """The parsed study (re-parsed only when its file has changed)."""
        stamp = self._file_stamp()
        if self._parsed is None or self._parsed[0] != stamp:
            study = load_study(self.study_file) if self.study_file else demo_study(self.home_dir)
            self._parsed = (stamp, study)
        return self._parsed[1]

    def _file_stamp(self) -> tuple:
        if not self.study_file:
            return ("demo", self.home)
        try:
            info = Path(self.study_file).stat()
        except OSError:
            return (self.study_file, None)  # load_study raises the clear error
        return (self.study_file, info.st_size, info.st_mtime_ns)
