"""Materialize a study's asset graph for one checkpoint partition (used by `nwh run` and `nwh demo`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from dagster_project.defs.activations import SHARD_KEYS
from dagster_project.defs.shared import lake_key
from dagster_project.defs.sources import record_versions
from dagster_project.definitions import extraction_shards_job_def, resources
from dagster_project.partitions import (VERSION_TAG, checkpoints_partitions, partition_key,
                                        run_version)
from dagster_project.stale import to_materialize
from dagster_project.study import StudyConfig
from dagster_project.studies import all_assets, all_checks, selection_for
from extract.checkpoints import checkpoint_fingerprint, find_checkpoints


@dataclass
class RunOutcome:
    partition_key: str
    warehouse: Path
    success: bool
    checks: dict[str, bool]  # asset check name -> passed
    version: str  # the run's VERSION_TAG: checkpoint files and study config
    materialized: list[str] = field(default_factory=list)  # asset keys this run materialized
    skipped: list[str] = field(default_factory=list)  # asset keys that were up to date


INSTANCE_SETTINGS = {
    # One run at a time: each run uses both cores, and runs queue behind each other.
    "run_queue": {"max_concurrent_runs": 1},
    # A run interrupted by its worker's end (`nwh ui` stopped mid-run: "execution was interrupted
    # unexpectedly") is re-executed from the step that failed when the daemon is back; a step
    # that failed on its own is not (it would fail again).
    "run_retries": {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False},
    # Runs stuck starting or cancelling are failed (and so retried) by the daemon.
    "run_monitoring": {"enabled": True, "start_timeout_seconds": 300,
                       "cancel_timeout_seconds": 300, "poll_interval_seconds": 30},
}


def instance_for(home: Path) -> dg.DagsterInstance:
    """The persistent Dagster instance under ``<home>/dagster`` (shared with `nwh ui`); its
    ``dagster.yaml`` gets each of :data:`INSTANCE_SETTINGS` that it does not set already."""
    dagster_home = Path(home) / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    settings = (yaml.safe_load(config.read_text()) if config.exists() else None) or {}
    missing = {key: value for key, value in INSTANCE_SETTINGS.items() if key not in settings}
    if missing:
        config.write_text(yaml.safe_dump({**settings, **missing}, sort_keys=False))
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dg.DagsterInstance.get()


def checkpoint_to_run(study: StudyConfig, checkpoint: str | None) -> str:
    """The checkpoint to materialize: the one named, else the newest; `checkpoint_name` when the
    study runs no model."""
    if not study.needs_model:
        return checkpoint or study.checkpoint_name
    names = [name for name, _ in find_checkpoints(study.checkpoints)]
    if checkpoint is None:
        return names[-1]
    if checkpoint not in names:
        raise ValueError(f"checkpoint {checkpoint!r} is not among {names} in {study.checkpoints!r}")
    return checkpoint


def extract_in_parallel(home: Path, study_file: str, key: str, instance: dg.DagsterInstance,
                        *, workers: int, torch_threads: int | None = None) -> None:
    """Materialize the corpus and the extraction shards of partition `key` with the multiprocess
    executor, `workers` shards at a time, each process with `torch_threads` torch threads
    (default cores // workers)."""
    nwh = resources(str(home), study_file)["nwh"]
    run_config = {
        "execution": {"config": {"max_concurrent": workers}},
        # the step processes fork from a server started once per process: pass what they need
        "resources": {"nwh": {"config": {
            "home": nwh.home, "study_file": nwh.study_file, "lake_url": nwh.lake_url,
            "torch_threads": torch_threads or max(1, (os.cpu_count() or 1) // workers)}}}}
    with dg.execute_job(dg.reconstructable(extraction_shards_job_def), instance,
                        run_config=run_config, tags={"dagster/partition": key}) as result:
        if not result.success:
            failed = [e.message for e in result.all_events if e.is_failure]
            raise RuntimeError(f"parallel extraction of {key} failed: {failed[:3]}")


def run_study(home: Path, study_file: str = "", checkpoint: str | None = None, *,
              instance: dg.DagsterInstance | None = None, workers: int = 1,
              everything: bool = False, say: Callable[[str], None] = lambda _: None
              ) -> RunOutcome:
    """Materialize the graph of the study in `study_file` ('' = the demo study) for one
    checkpoint, then build and publish the warehouse: first record the versions of the config
    sections and the checkpoint's files, then materialize only what is stale or missing and what depends on it
    (everything when `everything`), telling `say` what it skips. The file is parsed once, by the
    resource the assets get. With `workers` > 1 the corpus and the extraction shards run first
    in parallel processes."""
    run_resources = resources(str(home), study_file)
    study = run_resources["nwh"].study()
    study.compute.settings().torch_device()  # an unavailable device stops it before it starts
    name = checkpoint_to_run(study, checkpoint)
    key = partition_key(study.model, name)
    instance = instance or instance_for(home)
    instance.add_dynamic_partitions(checkpoints_partitions.name, [key])
    folder = dict(find_checkpoints(study.checkpoints))[name] if study.needs_model else None
    version = run_version(study.model_dump_json(),
                          checkpoint_fingerprint(folder) if folder else "no checkpoint")
    record_versions(instance, study, key)
    selectable = selection_for(study).resolve(all_assets)
    selected, stale = to_materialize(instance, selectable, key, everything=everything)
    skipped = sorted(k.to_user_string() for k in selectable - selected)
    for asset, why in sorted(stale.items()):
        say(f"{asset.to_user_string()}: {why}")
    if skipped:
        say(f"up to date, not run ({len(skipped)}): {', '.join(skipped)}")
    if not selected:
        return RunOutcome(key, Path(home) / "warehouse.duckdb", True, {}, version, [], skipped)
    if workers > 1 and selected & set(SHARD_KEYS):
        extract_in_parallel(home, study_file, key, instance, workers=workers)
        selected -= {*SHARD_KEYS, lake_key("corpus"), lake_key("checkpoint_fidelity")}
    result = dg.materialize([*all_assets, *all_checks], selection=dg.AssetSelection.assets(*selected),
                            partition_key=key, resources=run_resources, instance=instance,
                            tags={VERSION_TAG: version},
                            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
                            raise_on_error=True)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    materialized = sorted({e.asset_key.to_user_string() for e in result.get_asset_materialization_events()})
    return RunOutcome(key, Path(home) / "warehouse.duckdb", result.success, checks, version,
                      materialized, skipped)
