"""`dbt build` of the project in a subprocess, as the pipeline runs it, for the dbt tests."""

import os
import subprocess
from pathlib import Path

from dagster_project.defs.warehouse import DBT_DIR, DBT_EXECUTABLE, dbt_env
from extract import lake


def dbt_build(lake_dir: Path, duckdb_path: Path, *args: str) -> None:
    """`dbt build` with `args` on the lake at `lake_dir` (empty placeholders for the tables it
    lacks) into the DuckDB file `duckdb_path`; fails the test with dbt's output if dbt fails."""
    lake.ensure_placeholders(lake_dir)
    env = {**os.environ, **dbt_env(lake_dir, duckdb_path)}
    done = subprocess.run([DBT_EXECUTABLE, "build", *args, "--project-dir", str(DBT_DIR),
                           "--profiles-dir", str(DBT_DIR)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
