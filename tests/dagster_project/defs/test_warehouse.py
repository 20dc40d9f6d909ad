"""The dbt resource the warehouse asset runs with."""

import os
import subprocess

from dagster_dbt import DbtCliResource

from dagster_project.definitions import resources
from dagster_project.defs.warehouse import DBT_EXECUTABLE, WarehouseDbt, prune_build_targets


def test_only_the_newest_build_folders_are_kept(tmp_path):
    for age, name in enumerate(["e", "d", "c", "b", "a"]):  # "a" the oldest, "e" the newest
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (1_000_000 - age, 1_000_000 - age))
    prune_build_targets(tmp_path, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "d", "e"]


def test_the_dbt_version_handed_to_dagster_dbt_is_the_executables():
    """WarehouseDbt replaces dagster-dbt's `dbt --version` subprocess (which also asks PyPI for
    the latest release) by the installed dbt-core's version: it must be the version dbt itself
    reports, from the interpreter next to the executable, and must still override the attribute
    dagster-dbt reads (a rename there would silently bring the subprocess back)."""
    assert "_cli_version" in vars(DbtCliResource)
    dbt = resources("/nonexistent-home")["dbt"]
    assert isinstance(dbt, WarehouseDbt)
    python = DBT_EXECUTABLE.removesuffix("dbt") + "python"
    reported = subprocess.run([python, "-c", "import dbt.version; print(dbt.version.__version__)"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert str(dbt._cli_version) == reported
