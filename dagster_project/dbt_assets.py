"""The dbt project as Dagster assets; its lake sources map to the Python assets' keys (lake/<table>).

dbt builds a fresh DuckDB file next to the warehouse and, only when the whole build (models and
tests) succeeds, it is renamed over ``warehouse.duckdb``: a failed build leaves the previous
warehouse in place, and a reader never sees a half-built file.
"""


import os
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from dagster_project.resources import REPO_ROOT, NwhResource
from extract.lake import ensure_placeholders

DBT_DIR = REPO_ROOT / "dbt"
dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)


def ensure_manifest() -> Path:
    """Parse the dbt project once if its manifest is missing (fresh clone) or in dev mode."""
    if not dbt_project.manifest_path.exists():
        dbt_project.preparer.prepare(dbt_project)
    else:
        dbt_project.prepare_if_dev()
    return dbt_project.manifest_path


def dbt_env(lake: Path, duckdb_path: Path) -> dict[str, str]:
    return {"NWH_LAKE": str(lake), "NWH_DUCKDB_PATH": str(duckdb_path)}


@dbt_assets(manifest=ensure_manifest(), project=dbt_project)
def warehouse_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, nwh: NwhResource):
    """Build and test every dbt model into a fresh DuckDB file, then publish it atomically."""
    target = nwh.warehouse_path
    building = target.with_name(f".{target.name}.building")
    building.unlink(missing_ok=True)
    ensure_placeholders(nwh.lake)
    os.environ.update(dbt_env(nwh.lake, building))
    yield from dbt.cli(["build"], context=context).stream()
    os.replace(building, target)
    context.log.info(f"published the warehouse at {target}")
