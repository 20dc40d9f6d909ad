"""The checkpoint sensor and the daily full refresh."""

import json

import dagster as dg

from dagster_project.jobs import main_job
from dagster_project.partitions import (VERSION_TAG, checkpoints_partitions, partition_key,
                                        run_version)
from dagster_project.resources import NwhResource
from extract.checkpoints import ready_checkpoints


@dg.sensor(job=main_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches the study's checkpoint folder; each complete new or rewritten "
                       "checkpoint becomes a partition and a run of the whole graph, exactly once "
                       "per version of its files and of the study config, and not at all when "
                       "`nwh run` already materialized that version.")
def checkpoint_sensor(context: dg.SensorEvaluationContext, nwh: NwhResource):
    study = nwh.study()
    if not study.needs_model or not study.checkpoints:
        return dg.SkipReason(f"study {study.model!r} reads explanations from a table; no checkpoints to watch")
    previous = json.loads(context.cursor) if context.cursor else {}
    ready, seen = ready_checkpoints(study.checkpoints, previous.get("seen", {}))
    done = previous.get("done", {})
    requests, new_keys = [], []
    study_json = study.model_dump_json()
    for name, _, fingerprint in ready:
        version = run_version(study_json, fingerprint)
        if done.get(name) == version:
            continue
        done[name] = version
        key = partition_key(study.model, name)
        if _succeeded(context.instance, version):  # e.g. by `nwh run` on the same home
            context.log.info(f"{key} is already materialized for these files and this config")
            continue
        requests.append(dg.RunRequest(run_key=f"{key}@{version}", partition_key=key,
                                      tags={VERSION_TAG: version}))
        new_keys.append(key)
    waiting = sorted(set(seen) - {name for name, _, _ in ready})
    if waiting:
        context.log.info(f"waiting for checkpoints to finish writing: {waiting}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[checkpoints_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps({"seen": seen, "done": done}),
        skip_reason=None if requests else "no new complete checkpoint")


def _succeeded(instance: dg.DagsterInstance, version: str) -> bool:
    """Whether a run of this checkpoint version ended in success."""
    return bool(instance.get_run_records(
        dg.RunsFilter(tags={VERSION_TAG: version}, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=1))


@dg.schedule(job=main_job, cron_schedule="0 3 * * *", execution_timezone="UTC",
             description="Daily full refresh: every known checkpoint partition, rebuilt.")
def daily_refresh(context: dg.ScheduleEvaluationContext):
    keys = context.instance.get_dynamic_partitions(checkpoints_partitions.name)
    return [dg.RunRequest(partition_key=key) for key in keys]
