"""The dbt project as Dagster assets; its lake sources map to the Python assets' keys (lake/<table>).

dbt builds a fresh DuckDB file next to the warehouse and, only when the whole build (models and
tests) succeeds, it is renamed over ``warehouse.duckdb``: a failed build leaves the previous
warehouse in place, and a reader never sees a half-built file.
"""


import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from dagster_project.home import REPO_ROOT, default_home
from dagster_project.resources import NwhResource
from extract.lake import ensure_placeholders

DBT_DIR = REPO_ROOT / "dbt"
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)


def ensure_manifest() -> Path:
    """Run `dbt parse` when the manifest is missing (a fresh clone) or older than a dbt file."""
    manifest = dbt_project.manifest_path
    sources = [p for p in DBT_DIR.rglob("*") if p.suffix in (".sql", ".yml")
               and "target" not in p.parts]
    if manifest.exists() and manifest.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return manifest
    env = {**os.environ, **dbt_env(default_home() / "lake", Path(":memory:"))}
    parsed = subprocess.run([DBT_EXECUTABLE, "parse", "--project-dir", str(DBT_DIR),
                             "--profiles-dir", str(DBT_DIR)], env=env, capture_output=True,
                            text=True)
    if parsed.returncode != 0:
        raise RuntimeError(f"dbt parse of {DBT_DIR} failed:\n{parsed.stdout}{parsed.stderr}")
    return manifest


def dbt_env(lake: str | Path, duckdb_path: Path) -> dict[str, str]:
    return {"NWH_LAKE": str(lake), "NWH_DUCKDB_PATH": str(duckdb_path)}


@dbt_assets(manifest=ensure_manifest(), project=dbt_project)
def warehouse_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, nwh: NwhResource):
    """Build and test every dbt model into a fresh DuckDB file, then publish it atomically."""
    target = nwh.warehouse_path
    building = target.with_name(f".{target.name}.{context.run.run_id}.building")
    target.parent.mkdir(parents=True, exist_ok=True)  # the home may hold nothing else (remote lake)
    ensure_placeholders(nwh.lake)
    os.environ.update(dbt_env(nwh.lake, building))
    try:
        yield from dbt.cli(["build"], context=context).stream()
        os.replace(building, target)
        context.log.info(f"published the warehouse at {target}")
    finally:
        building.unlink(missing_ok=True)
