"""The dbt project as Dagster assets; its lake sources map to the Python assets' keys (lake/<table>).

Each dbt model sits in the Dagster group of its study: marts and intermediate models by their
folder (``marts/<study>/``), staging views by the lake table they stage. dbt builds a fresh
DuckDB file next to the warehouse and, only when the whole build (models and tests) succeeds,
it is renamed over ``warehouse.duckdb``: a failed build leaves the previous warehouse in place,
and a reader never sees a half-built file.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging.version import Version

from dagster_project.home import REPO_ROOT, default_home, home_lock
from dagster_project.resources import NwhResource
from extract.lake import STUDY_OF, LakeError, ensure_placeholders, outdated_partitions

DBT_DIR = REPO_ROOT / "dbt"
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
BUILD_EXCLUDES = ("--exclude-resource-type", "unit_test")  # the pipeline's build: data tests only
KEPT_BUILD_TARGETS = 3  # dbt target folders (compiled SQL, run_results.json, dbt.log) kept per home


def dbt_env(lake: str | Path, duckdb_path: Path) -> dict[str, str]:
    return {"NWH_LAKE": str(lake), "NWH_DUCKDB_PATH": str(duckdb_path)}


def prune_build_targets(folder: Path, keep: int = KEPT_BUILD_TARGETS) -> None:
    """Delete all but the `keep` newest build folders under `folder` (each build writes ~13 MB
    of compiled SQL, artifacts and logs; left alone, every run added a folder for good)."""
    builds = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in builds[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def reuse_partial_parse(builds: Path, build: Path) -> None:
    """Start `build` (a folder under `builds`) from the newest earlier build's
    ``partial_parse.msgpack``, so that dbt parses only the files changed since: ~1 s instead of
    a ~3 s full parse of this project. dbt keeps a saved parse only while the profile is the
    same, the building file's path included, which is why every build of a home writes the same
    file; it parses in full whenever the saved state does not match (changed files, env vars or
    dbt version). Without this, dagster-dbt copies the parse in the repository's dbt/target,
    made with another path, which dbt always discards."""
    earlier = [p for p in builds.glob("*/partial_parse.msgpack") if p.parent != build]
    if earlier:
        build.mkdir(parents=True, exist_ok=True)
        shutil.copy(max(earlier, key=lambda p: p.stat().st_mtime), build / "partial_parse.msgpack")


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


class WarehouseDbt(DbtCliResource):
    """dagster-dbt's CLI resource, told the dbt version instead of asking: dagster-dbt starts
    ``dbt --version`` in every run to learn it (1.5 s of imports on 2 cores, each build), and the
    executable here is this environment's own dbt, whose version is the installed dbt-core's."""

    @cached_property
    def _cli_version(self) -> Version:
        return Version(installed_version("dbt-core"))


class StudyGroups(DagsterDbtTranslator):
    """Puts every dbt model in its study's Dagster group."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        if len(fqn) >= 4 and fqn[1] in ("marts", "intermediate"):
            return fqn[2]
        name = dbt_resource_props.get("name", "")
        if name.startswith("stg_") and name[4:] in STUDY_OF:
            return STUDY_OF[name[4:]]
        return super().get_group_name(dbt_resource_props)


@dbt_assets(manifest=ensure_manifest(), project=dbt_project, dagster_dbt_translator=StudyGroups())
def warehouse_dbt(context: dg.AssetExecutionContext, dbt: WarehouseDbt, nwh: NwhResource):
    """Build every dbt model and run its data tests into a fresh DuckDB file, then publish it
    atomically. Lake partitions written before their table's columns changed stop it first,
    named with what to re-run. One build per home at a time (``<home>/build.lock``: the runs of
    `nwh run`, the UI and the sensor alike), into ``<home>/.warehouse.duckdb.building``, the same
    path every time, so dbt can re-parse only what changed since the home's previous build
    (:func:`reuse_partial_parse`). dbt's artifacts, compiled SQL and log of the build go to
    ``<home>/dbt-target/<run id>`` (the newest three kept). The unit tests (fixed fixtures,
    independent of the lake) are excluded here, as dbt recommends for production builds;
    `make test` runs them (tests/dbt/test_unit_tests.py)."""
    target = nwh.warehouse_path
    target.parent.mkdir(parents=True, exist_ok=True)  # the home may hold nothing else (remote lake)
    ensure_placeholders(nwh.lake)
    outdated = outdated_partitions(nwh.lake)
    if outdated:
        raise LakeError(
            f"the lake holds {len(outdated)} partition(s) written before their table's columns "
            "changed, and dbt reads all of a table's partitions together: the warehouse was not "
            "rebuilt (the published one is unchanged). Re-run each with `nwh run --config "
            "<its study> --checkpoint <checkpoint>`, which redoes what is out of date (or delete "
            f"the partition's folder under {nwh.lake} if its checkpoint is gone):\n"
            + "\n".join(outdated[:20]) + ("\n..." if len(outdated) > 20 else ""))
    builds = nwh.home_dir / "dbt-target"
    builds.mkdir(exist_ok=True)
    build = builds / context.run.run_id
    with home_lock(nwh.home_dir, "build.lock", "warehouse build", say=context.log.info):
        building = target.with_name(f".{target.name}.building")
        leftovers = (building, building.with_name(f"{building.name}.wal"))
        for path in leftovers:  # a killed build's file and DuckDB log: start afresh
            path.unlink(missing_ok=True)
        os.environ.update(dbt_env(nwh.lake, building))
        reuse_partial_parse(builds, build)
        try:
            yield from dbt.cli(["build", *BUILD_EXCLUDES], context=context,
                               target_path=build).stream()
            os.replace(building, target)
            context.log.info(f"published the warehouse at {target}")
        finally:
            for path in leftovers:
                path.unlink(missing_ok=True)
            prune_build_targets(builds)


assets = [warehouse_dbt]
