"""The checkpoint sensor and the daily full refresh."""

import hashlib
import json

import dagster as dg

from dagster_project.jobs import main_job
from dagster_project.partitions import checkpoints_partitions, partition_key
from dagster_project.resources import NwhResource
from extract.checkpoints import ready_checkpoints


@dg.sensor(job=main_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches the study's checkpoint folder; each complete new or rewritten "
                       "checkpoint becomes a partition and a run of the whole graph, exactly once.")
def checkpoint_sensor(context: dg.SensorEvaluationContext, nwh: NwhResource):
    study = nwh.study()
    if not study.needs_model or not study.checkpoints:
        return dg.SkipReason(f"study {study.model!r} reads explanations from a table; no checkpoints to watch")
    previous = json.loads(context.cursor) if context.cursor else {}
    ready, seen = ready_checkpoints(study.checkpoints, previous.get("seen", {}))
    done = previous.get("done", {})
    requests, new_keys = [], []
    for name, _, fingerprint in ready:
        if done.get(name) == fingerprint:
            continue
        key = partition_key(study.model, name)
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        requests.append(dg.RunRequest(run_key=f"{key}@{digest}", partition_key=key))
        new_keys.append(key)
        done[name] = fingerprint
    waiting = sorted(set(seen) - {name for name, _, _ in ready})
    if waiting:
        context.log.info(f"waiting for checkpoints to finish writing: {waiting}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[checkpoints_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps({"seen": seen, "done": done}),
        skip_reason=None if requests else "no new complete checkpoint")


@dg.schedule(job=main_job, cron_schedule="0 3 * * *", execution_timezone="UTC",
             description="Daily full refresh: every known checkpoint partition, rebuilt.")
def daily_refresh(context: dg.ScheduleEvaluationContext):
    keys = context.instance.get_dynamic_partitions(checkpoints_partitions.name)
    return [dg.RunRequest(partition_key=key) for key in keys]
