"""The checkpoint sensor and the daily refresh. Both launch a run only for what is stale or
missing in Dagster's own terms (code versions, the config sections' and the checkpoint's data
versions, upstream data versions), so a partition that `nwh run`, the UI or an earlier sensor run
materialized for the current files, config and code is not run again, whoever ran it."""

import json

import dagster as dg

from dagster_project.defs.sources import record_versions
from dagster_project.jobs import main_job
from dagster_project.partitions import (VERSION_TAG, checkpoints_partitions, partition_key,
                                        run_version)
from dagster_project.resources import NwhResource
from dagster_project.stale import to_materialize
from dagster_project.studies import all_assets, selection_for
from dagster_project.study import StudyConfig
from extract.checkpoints import checkpoint_fingerprint, find_checkpoints, ready_checkpoints


def stale_run_request(instance: dg.DagsterInstance, study: StudyConfig, key: str, lake_root: str,
                      run_key: str | None, tags: dict[str, str], log) -> dg.RunRequest | None:
    """A run of partition `key` that materializes its stale and missing assets and what depends
    on them (after recording the sources' current versions); None when everything is up to date."""
    instance.add_dynamic_partitions(checkpoints_partitions.name, [key])
    record_versions(instance, study, key)
    selected, stale = to_materialize(instance, selection_for(study).resolve(all_assets), key,
                                     lake_root)
    if not selected:
        log.info(f"{key} is up to date for its files, the study config and the code")
        return None
    log.info(f"{key}: {len(stale)} stale or missing, {len(selected)} to materialize")
    return dg.RunRequest(run_key=run_key, partition_key=key, asset_selection=sorted(selected),
                         tags=tags)


@dg.sensor(job=main_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches the study's checkpoint folder; each complete new or rewritten "
                       "checkpoint, and each checkpoint after a change of the study config, "
                       "becomes a run of what is stale or missing in its partition, and no run "
                       "when `nwh run`, the UI or an earlier run materialized it already.")
def checkpoint_sensor(context: dg.SensorEvaluationContext, nwh: NwhResource):
    study = nwh.study()
    if not study.needs_model or not study.checkpoints:
        return dg.SkipReason(f"study {study.model!r} reads explanations from a table; no checkpoints to watch")
    previous = json.loads(context.cursor) if context.cursor else {}
    ready, seen = ready_checkpoints(study.checkpoints, previous.get("seen", {}))
    done = previous.get("done", {})  # checkpoint name -> the version of files and config last looked at
    requests = []
    study_json = study.model_dump_json()
    for name, _, fingerprint in ready:
        version = run_version(study_json, fingerprint)
        if done.get(name) == version:
            continue
        done[name] = version
        key = partition_key(study.model, name)
        request = stale_run_request(context.instance, study, key, nwh.lake, f"{key}@{version}",
                                    {VERSION_TAG: version}, context.log)
        requests += [request] if request else []
    waiting = sorted(set(seen) - {name for name, _, _ in ready})
    if waiting:
        context.log.info(f"waiting for checkpoints to finish writing: {waiting}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"seen": seen, "done": done}),
                           skip_reason=None if requests else "nothing new or stale")


@dg.schedule(job=main_job, cron_schedule="0 3 * * *", execution_timezone="UTC",
             description="Daily refresh: every known checkpoint partition of the study's model "
                         "that has stale or missing assets (after a code change, say), rebuilt "
                         "from what is stale.")
def daily_refresh(context: dg.ScheduleEvaluationContext, nwh: NwhResource):
    study = nwh.study()
    known = set(context.instance.get_dynamic_partitions(checkpoints_partitions.name))
    requests = []
    for name, folder in find_checkpoints(study.checkpoints) if study.needs_model else []:
        key = partition_key(study.model, name)
        if key in known:
            version = run_version(study.model_dump_json(), checkpoint_fingerprint(folder))
            request = stale_run_request(context.instance, study, key, nwh.lake, None,
                                        {VERSION_TAG: version}, context.log)
            requests += [request] if request else []
    return requests or dg.SkipReason("every checkpoint partition is up to date")
