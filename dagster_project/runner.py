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
from dagster_project.cluster import CELERY_CONFIG
from dagster_project.definitions import (extraction_shards_celery_job_def,
                                         extraction_shards_job_def, resources)
from dagster_project.home import write_instance_config
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


def instance_for(home: Path) -> dg.DagsterInstance:
    """The persistent Dagster instance under ``<home>/dagster`` (shared with `nwh ui` and the
    Celery workers), its ``dagster.yaml`` completed by :func:`write_instance_config` (on
    PostgreSQL when ``NWH_POSTGRES_URL`` is set)."""
    dagster_home = write_instance_config(home, postgres=bool(os.environ.get("NWH_POSTGRES_URL")))
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


EXECUTORS = ("multiprocess", "celery")


def _celery_execution() -> dict:
    """The Celery executor's config: deploy/celery.yaml, the file the workers start on."""
    missing = [v for v in ("NWH_POSTGRES_URL", "NWH_CELERY_BROKER", "NWH_CELERY_BACKEND")
               if not os.environ.get(v)]
    if missing:
        raise RuntimeError(f"--executor celery needs {', '.join(missing)} set (the Dagster "
                           "instance's PostgreSQL and the Celery broker the workers share); "
                           "docs/cluster.md says how to start them")
    return yaml.safe_load(CELERY_CONFIG.read_text())["execution"]


def _interrupted(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether a failed run lost a step without the step failing (a worker process killed):
    such a run is worth re-executing, a step that raised is not."""
    return not instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE,
                                            limit=1).records


def extract_in_parallel(home: Path, study_file: str, key: str, instance: dg.DagsterInstance,
                        *, workers: int, torch_threads: int | None = None,
                        executor: str = "multiprocess", retries: int = 2) -> None:
    """Materialize the corpus and the extraction shards of partition `key` in parallel: with
    the multiprocess executor `workers` shards at a time, each process with `torch_threads`
    torch threads (default cores // workers); with the Celery executor on whatever workers
    serve the broker. A run that lost a step (its process killed) is re-executed from the
    steps that did not finish, at most `retries` times, as the daemon's run retries do."""
    nwh = resources(str(home), study_file)["nwh"]
    celery = executor == "celery"
    threads = torch_threads or (0 if celery else max(1, (os.cpu_count() or 1) // workers))
    run_config = {
        "execution": _celery_execution() if celery else {"config": {"max_concurrent": workers}},
        # the step processes are started elsewhere: pass what they need
        "resources": {"nwh": {"config": {
            "home": nwh.home, "study_file": nwh.study_file, "lake_url": nwh.lake_url,
            "torch_threads": threads}}}}
    job = dg.reconstructable(extraction_shards_celery_job_def if celery
                             else extraction_shards_job_def)
    options = {"run_config": run_config, "tags": {"dagster/partition": key}}
    for attempt in range(retries + 1):
        with dg.execute_job(job, instance, **options) as result:
            if result.success:
                return
            run_id, failed = result.run_id, [e.message for e in result.all_events if e.is_failure]
        if attempt == retries or not _interrupted(instance, run_id):
            raise RuntimeError(f"parallel extraction of {key} failed: {failed[:3]}")
        options["reexecution_options"] = dg.ReexecutionOptions.from_failure(run_id, instance)


def run_study(home: Path, study_file: str = "", checkpoint: str | None = None, *,
              instance: dg.DagsterInstance | None = None, workers: int = 1,
              executor: str = "multiprocess", everything: bool = False,
              say: Callable[[str], None] = lambda _: None
              ) -> RunOutcome:
    """Materialize the graph of the study in `study_file` ('' = the demo study) for one
    checkpoint, then build and publish the warehouse: first record the versions of the config
    sections and the checkpoint's files, then materialize only what is stale or missing and what depends on it
    (everything when `everything`), telling `say` what it skips. The file is parsed once, by the
    resource the assets get. With `workers` > 1 the corpus and the extraction shards run first
    in parallel processes; with `executor` 'celery' they run first on the Celery workers."""
    run_resources = resources(str(home), study_file)
    study = run_resources["nwh"].study()
    study.compute.settings().torch_device()  # an unavailable device stops it before it starts
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of {EXECUTORS}")
    if executor == "celery":
        _celery_execution()  # so do missing servers
    name = checkpoint_to_run(study, checkpoint)
    key = partition_key(study.model, name)
    instance = instance or instance_for(home)
    instance.add_dynamic_partitions(checkpoints_partitions.name, [key])
    folder = dict(find_checkpoints(study.checkpoints))[name] if study.needs_model else None
    version = run_version(study.model_dump_json(),
                          checkpoint_fingerprint(folder) if folder else "no checkpoint")
    record_versions(instance, study, key)
    selectable = selection_for(study).resolve(all_assets)
    selected, stale = to_materialize(instance, selectable, key, run_resources["nwh"].lake,
                                     everything=everything)
    skipped = sorted(k.to_user_string() for k in selectable - selected)
    for asset, why in sorted(stale.items()):
        say(f"{asset.to_user_string()}: {why}")
    if skipped:
        say(f"up to date, not run ({len(skipped)}): {', '.join(skipped)}")
    if not selected:
        return RunOutcome(key, Path(home) / "warehouse.duckdb", True, {}, version, [], skipped)
    if (workers > 1 or executor == "celery") and selected & set(SHARD_KEYS):
        extract_in_parallel(home, study_file, key, instance, workers=workers, executor=executor)
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
