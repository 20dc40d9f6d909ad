"""Foundation benchmarks (run by `make bench`, never by `make test`).

* `nwh demo` wall time from an empty home (trains the demo model, materializes everything,
  builds the warehouse); goal: under 5 minutes on 2 cores (asserted), 3 minutes by issue 19.
  Run twice, into two empty homes, with numba's and Matplotlib's caches in new, empty folders:
  the first run pays what a first demo in a new environment pays (compiling our and UMAP's numba
  kernels, Matplotlib's font list), the second reuses them, as every later run does.
* Peak memory (max RSS of a fresh process) of activation extraction on the demo model for two
  corpus sizes 4x apart, median of several runs; goal: within 10% of each other.
Results are written to tests/benchmarks/RESULTS.md.
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.benchmarks.results import at_most_verdict, write_section

NWH = str(Path(sys.executable).parent / "nwh")
RUNS = int(os.environ.get("NWH_BENCH_RUNS", "3"))
DEMO_GOAL_SECONDS = 180

EXTRACT = """
import sys, time
from tests.benchmarks.results import peak_rss_mib
from extract.activations import extract_aggregates, load_bridge
from extract.checkpoints import find_checkpoints
from extract.corpus import sentences, synthetic_corpus
bridge = load_bridge(find_checkpoints(sys.argv[1])[-1][1])
corpus = sentences(synthetic_corpus(int(sys.argv[2]), seed=1), "train")
start = time.perf_counter()
result = extract_aggregates(bridge, corpus, batch_size=32)
elapsed = time.perf_counter() - start
n_tokens = int(result.moments["n_tokens"][0])
print(peak_rss_mib(), n_tokens / elapsed)
"""


def test_demo_wall_time_and_extraction_memory(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "MPLCONFIGDIR": str(tmp_path / "matplotlib")}
    demo_seconds = []
    for run in (1, 2):
        home = tmp_path / f"home{run}"
        start = time.perf_counter()
        subprocess.run([NWH, "--home", str(home), "demo"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        demo_seconds.append(time.perf_counter() - start)

    sizes = (2000, 8000)
    peaks, rates = {}, {}
    for n in sizes:
        samples = []
        for _ in range(RUNS):
            out = subprocess.run([sys.executable, "-c", EXTRACT, str(home / "checkpoints" / "demo"),
                                  str(n)], check=True, env=env, capture_output=True, text=True)
            samples.append([float(v) for v in out.stdout.split()[-2:]])
        peaks[n] = statistics.median(s[0] for s in samples)
        rates[n] = statistics.median(s[1] for s in samples)
    growth = peaks[sizes[1]] / peaks[sizes[0]] - 1
    verdicts = [at_most_verdict(seconds, DEMO_GOAL_SECONDS, "s") for seconds in demo_seconds]

    text = write_section(
        "Foundation (tests/benchmarks/test_bench_foundation.py)",
        "| figure | value | goal |\n|---|---|---|\n"
        f"| `nwh demo` wall time from an empty home (includes training), first run (empty "
        f"numba and Matplotlib caches) | "
        f"{demo_seconds[0]:.0f} s | < 300 s; issue 19: <= {DEMO_GOAL_SECONDS} s, {verdicts[0]} |\n"
        f"| the same, second run (another empty home; the first run's compiled caches) | "
        f"{demo_seconds[1]:.0f} s | issue 19: <= {DEMO_GOAL_SECONDS} s, {verdicts[1]} |\n"
        f"| extraction peak RSS, {sizes[0]} sentences (median of {RUNS}) | {peaks[sizes[0]]:.0f} MiB | |\n"
        f"| extraction peak RSS, {sizes[1]} sentences (median of {RUNS}) | {peaks[sizes[1]]:.0f} MiB | |\n"
        f"| peak RSS growth for 4x the corpus | {100 * growth:+.1f} % | within 10 % |\n"
        f"| extraction throughput, {sizes[1]} sentences (median of {RUNS}) | "
        f"{rates[sizes[1]]:,.0f} tokens/s | |\n")
    print(text)
    assert demo_seconds[0] < 300
    assert abs(growth) < 0.10
