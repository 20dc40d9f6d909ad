"""The test suite's wall time (run by `make bench`, never by `make test`).

Issue 19 asks for `make test` within 6 minutes on 2 cores. This runs exactly what `make test`
runs (``pytest -q tests``, offline) in a fresh process, once (a whole suite is one measurement of
many minutes), and records its wall time, its outcome and its slowest tests (pytest's
``--durations``) in tests/benchmarks/RESULTS.md.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.benchmarks.results import at_most_verdict, write_section

REPO = Path(__file__).resolve().parents[2]
GOAL_MINUTES = 6
SLOWEST = 10


def suite_outcome(output: str) -> str:
    """pytest's closing summary ("394 passed, 1 skipped"), without its timing."""
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    if not lines:
        raise ValueError(f"no pytest summary line in the suite's output:\n{output[-2000:]}")
    return re.sub(r"\s+in [\d.]+s.*$", "", lines[-1].strip("= "))


def slowest_tests(output: str, n: int) -> list[tuple[float, str]]:
    """The `n` longest (seconds, phase and test id) entries of pytest's ``--durations`` list."""
    entries = [(float(m.group(1)), f"{m.group(2)} {m.group(3).strip()}")
               for m in re.finditer(r"^([\d.]+)s (\w+)\s+(.+)$", output, re.M)]
    return sorted(entries, reverse=True)[:n]


def test_make_test_wall_time():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests", "-p", "no:cacheprovider",
                           f"--durations={SLOWEST}"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    minutes = (time.perf_counter() - start) / 60
    outcome = suite_outcome(done.stdout)
    verdict = at_most_verdict(minutes, GOAL_MINUTES, "min", digits=1)
    slow = "\n".join(f"| {seconds:.1f} s | `{test}` |"
                     for seconds, test in slowest_tests(done.stdout, SLOWEST))
    text = write_section(
        "The test suite (tests/benchmarks/test_bench_suite.py)",
        "`pytest -q tests` offline, what `make test` runs, in a fresh process (1 run).\n\n"
        "| figure | value | goal (issue 19) |\n|---|---|---|\n"
        f"| `make test` wall time | {minutes:.1f} min ({outcome}) | <= {GOAL_MINUTES} min: "
        f"{verdict} |\n\n"
        f"Its {SLOWEST} slowest test phases:\n\n| time | test |\n|---|---|\n{slow}\n")
    print(text)
    assert done.returncode == 0, f"the suite failed:\n{done.stdout[-5000:]}"
