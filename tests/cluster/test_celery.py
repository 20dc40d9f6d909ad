"""The study on a real distributed engine (run by `make cluster-test`, not `make test`): a
PostgreSQL server holds the Dagster instance, a Redis server is the Celery broker, and two Celery
workers (separate processes, reaching both over TCP) run the extraction steps. The marts equal
the in-process run's, also when a worker's process is killed in the middle of a step."""

from __future__ import annotations

import os
import signal
import threading
import time

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
    """A fresh home served by the two workers, this process pointed at the cluster."""
    home = tmp_path / "home"
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


def _kill_during_a_shard(instance_home, cluster, killed: list) -> None:
    """Wait until a worker executes a shard step, then SIGKILL that worker's pool process."""
    deadline = time.time() + 300
    while time.time() < deadline and not killed:
        instance = instance_for(instance_home)
        for run in _extraction_runs(instance):
            for step, worker in _celery_steps(instance, run.run_id).items():
                if step in SHARD_STEPS:
                    started = cluster.workers[worker].pid  # dagster-celery > celery > pool
                    pool = [p for p in psutil.Process(started).children(recursive=True)
                            if p.ppid() != started]
                    for process in pool:
                        os.kill(process.pid, signal.SIGKILL)
                    killed.append((step, worker, [p.pid for p in pool]))
                    return
        time.sleep(0.2)


def test_a_worker_killed_during_a_step_is_recovered_by_a_retry(study, cluster, on_cluster):
    study_file, reference = study
    instance_for(on_cluster)  # the instance's tables exist before the watcher reads them
    killed: list = []
    watcher = threading.Thread(target=_kill_during_a_shard, args=(on_cluster, cluster, killed))
    watcher.start()
    outcome = run_study(on_cluster, str(study_file), executor="celery")
    watcher.join()
    assert killed and killed[0][2], "no shard step was caught running"
    assert outcome.success
    instance = instance_for(on_cluster)
    first, retry = _extraction_runs(instance)
    assert first.status == dg.DagsterRunStatus.FAILURE
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    assert retry.parent_run_id == first.run_id
    assert killed[0][0] in _celery_steps(instance, retry.run_id)  # the lost step ran again
    assert _marts(on_cluster) == reference  # no row lost, none twice
