"""The dbt unit tests of the metric SQL (fixed input rows, expected output rows, in the models'
YAML). The pipeline's build leaves them out (`BUILD_EXCLUDES`, as dbt recommends for production
runs: they do not depend on the lake), so they run here, once."""

import json
import os
import subprocess

from dagster_project.defs.warehouse import DBT_DIR, DBT_EXECUTABLE, dbt_env
from extract import lake


def _dbt_build(tmp_path, *args: str) -> dict[str, str]:
    """`dbt build --empty` (every model with its columns and no rows) on an empty lake; the
    status of every unit test it ran, by unique id."""
    lake_dir, target = tmp_path / "lake", tmp_path / "target"
    lake.ensure_placeholders(lake_dir)
    env = {**os.environ, **dbt_env(lake_dir, tmp_path / "w.duckdb")}
    done = subprocess.run([DBT_EXECUTABLE, "build", "--empty", *args,
                           "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
                           "--target-path", str(target)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}


def test_every_dbt_unit_test_passes(tmp_path):
    unit = _dbt_build(tmp_path, "--exclude-resource-type", "test")  # models and unit tests
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert len(manifest["unit_tests"]) >= 14
    assert unit == {name: "pass" for name in manifest["unit_tests"]}

