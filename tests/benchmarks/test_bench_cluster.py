"""The extraction on Celery workers (run by `make bench`): the corpus, the fidelity gate and the
two extraction shards of the GPT-2-small-shaped model, in one process (what `nwh run` does
without --workers), then on 1 and on 2 Celery workers (`nwh run --executor celery`), with the
Dagster instance on PostgreSQL and a Redis broker, all real servers on this machine. Median of
NWH_BENCH_RUNS fresh runs each. Results go to tests/benchmarks/RESULTS.md."""

import os

from dagster_project.cluster import start_cluster, stop
from tests.benchmarks.results import write_section
from tests.benchmarks.test_bench_scale import (ENV, RUNS, SCALE_SENTENCES, SHARDS, _median_run,
                                               _study, models)  # noqa: F401 - the fixture

CORES = os.cpu_count() or 1


def test_extraction_on_1_and_2_celery_workers(models, tmp_path):  # noqa: F811
    _, big, _ = models
    study = _study(tmp_path, big, SCALE_SENTENCES)
    args = lambda home, workers, threads, executor: [  # noqa: E731
        SHARDS, str(home), str(study), str(big), str(workers), str(threads), executor]
    results = {"in one process": _median_run(args(tmp_path / "local", 1, CORES, "in_process"),
                                             RUNS)}
    cluster = start_cluster()
    try:
        for n_workers in (1, 2):
            samples = []
            for run in range(RUNS):
                home = tmp_path / f"celery-{n_workers}-{run}"
                names = [f"worker{i}" for i in range(1, n_workers + 1)]
                for name in names:
                    cluster.add_worker(name, home)
                cluster.wait_for_workers()
                samples.append(_median_run(
                    args(home, n_workers, max(1, CORES // n_workers), "celery"), 1,
                    env={**ENV, **cluster.env}))
                for name in names:
                    stop(cluster.workers.pop(name), group=True)
            results[f"{n_workers} Celery worker{'s' if n_workers > 1 else ''}"] = {
                k: sorted(s[k] for s in samples)[len(samples) // 2] for k in samples[0]}
    finally:
        cluster.stop()
    base = results["in one process"]
    rows = [f"| {name} | {r['run_s']:.1f} s | {base['run_s'] / r['run_s']:.2f}x | "
            f"{r['shards_s']:.1f} s | {r['steps_s']:.1f} s |" for name, r in results.items()]
    print(write_section("Extraction on Celery workers (tests/benchmarks/test_bench_cluster.py)", (
        "The extraction job of one checkpoint (corpus, fidelity gate and their checks, "
        f"{SCALE_SENTENCES * 4 // 5:,} train sentences in 2 shards, GPT-2-small-shaped model): in "
        "one process, then on 1 and 2 Celery workers (`nwh run --executor celery`; PostgreSQL "
        "instance, Redis broker, each worker a separate process with one pool process and "
        f"cores / workers torch threads; all on this one {CORES}-core machine, so 2 workers share "
        "its cores). Whole job = first to last event of the run; shard phase = first shard "
        "start to last shard end; shard steps = the shards' step times added. Median of "
        f"{RUNS} runs each, every Celery run on a fresh home and freshly started workers.\n\n"
        "| where | whole job | speed-up | shard phase | shard steps |\n|---|---|---|---|---|\n"
        + "\n".join(rows))))
    assert all(r["run_s"] > 0 for r in results.values())
