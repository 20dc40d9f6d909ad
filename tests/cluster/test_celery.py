"""The study on a real distributed engine (run by `make cluster-test`, not `make test`): a
PostgreSQL server holds the Dagster instance, a Redis server is the Celery broker, and two Celery
workers (separate processes, reaching both over TCP) run the extraction steps. The marts equal
the in-process run's, also when a worker's process is killed in the middle of a step."""

from __future__ import annotations

import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import psutil
import pytest

from dagster_project.cluster import start_cluster, stop
from dagster_project.runner import instance_for, run_study
from tests.conftest import write_study
from tests.dagster_project.test_incremental import _marts

WORKERS = ("worker1", "worker2")
SHARD_STEPS = {"shards__activation_shard_0", "shards__activation_shard_1"}


@pytest.fixture(scope="module")
def cluster():
    running = start_cluster()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_checkpoints):
    """The tiny study, and the marts of its in-process run (the reference)."""
    folder = tmp_path_factory.mktemp("study")
    study_file = write_study(folder, tiny_checkpoints)
    local = folder / "local"
    assert run_study(local, str(study_file), instance=dg.DagsterInstance.ephemeral()).success
    return study_file, _marts(local)


@pytest.fixture
def on_cluster(cluster, tmp_path, monkeypatch):
    """A fresh home, its instance in a new database, served by the two workers; this process
    pointed at the cluster."""
    home = tmp_path / "home"
    cluster.use_database(f"test_{uuid.uuid4().hex[:12]}")
    for name in WORKERS:
        cluster.add_worker(name, home)
    cluster.wait_for_workers()
    for name, value in cluster.env.items():
        monkeypatch.setenv(name, value)
    yield home
    for name in WORKERS:
        stop(cluster.workers.pop(name), group=True)


def _celery_steps(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """step key -> the Celery worker that executed it, from the run's engine events."""
    steps = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data
        if data and "Celery worker" in data.metadata:
            steps[entry.step_key] = data.metadata["Celery worker"].value.split("@")[0]
    return steps


def _extraction_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return sorted(instance.get_runs(dg.RunsFilter(job_name="extraction_shards_celery_job")),
                  key=lambda run: instance.get_run_record_by_id(run.run_id).create_timestamp)


def test_two_celery_workers_give_the_in_process_marts(study, on_cluster):
    study_file, reference = study
    outcome = run_study(on_cluster, str(study_file), executor="celery")
    assert outcome.success
    instance = instance_for(on_cluster)
    assert "postgres" in type(instance.run_storage).__module__  # the instance is on PostgreSQL
    [run] = _extraction_runs(instance)
    steps = _celery_steps(instance, run.run_id)
    assert SHARD_STEPS <= set(steps)  # every shard ran as a Celery task
    assert {steps[s] for s in SHARD_STEPS} == set(WORKERS)  # one on each worker
    assert _marts(on_cluster) == reference


def _running_shard(instance: dg.DagsterInstance, run_id: str) -> tuple[str, int] | None:
    """(step key, pid of the process executing it) of a shard step started and not yet ended:
    the STEP_START event carries the pid of the Celery pool process that runs the step."""
    started, ended = {}, set()
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_START,
                                                    dg.DagsterEventType.STEP_SUCCESS,
                                                    dg.DagsterEventType.STEP_FAILURE}):
        if entry.step_key in SHARD_STEPS:
            if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                started[entry.step_key] = entry.dagster_event.pid
            else:
                ended.add(entry.step_key)
    running = sorted(set(started) - ended)
    return (running[0], started[running[0]]) if running else None


def _kill_during_a_shard(instance_home, cluster) -> tuple[str, str, int] | None:
    """Wait until a worker's pool process executes a shard step, then SIGKILL that process;
    (step, worker, pid) of the kill."""
    deadline = time.time() + 300
    while time.time() < deadline:
        instance = instance_for(instance_home)
        for run in _extraction_runs(instance):
            running = _running_shard(instance, run.run_id)
            if running is None:
                continue
            step, pid = running
            workers = [name for name, worker in cluster.workers.items()
                       if pid in {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}]
            assert workers, f"{step} runs in pid {pid}, which is no worker's process"
            os.kill(pid, signal.SIGKILL)
            return step, workers[0], pid
        time.sleep(0.2)
    return None


def test_a_worker_killed_during_a_step_is_recovered_by_a_retry(study, cluster, on_cluster):
    study_file, reference = study
    instance_for(on_cluster)  # the instance's tables exist before the watcher reads them
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(_kill_during_a_shard, on_cluster, cluster)
        outcome = run_study(on_cluster, str(study_file), executor="celery")
        killed = watching.result()
    assert killed, "no shard step was caught running"
    assert outcome.success
    instance = instance_for(on_cluster)
    first, retry = _extraction_runs(instance)
    assert first.status == dg.DagsterRunStatus.FAILURE
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    assert retry.parent_run_id == first.run_id
    assert killed[0] in _celery_steps(instance, retry.run_id)  # the lost step ran again
    assert _marts(on_cluster) == reference  # no row lost, none twice
