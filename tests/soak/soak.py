"""Soak test of the live refresh (run by `make soak`, never by `make test`).

Starts `nwh ui` (Dagster webserver + daemon) on a fresh home, trains the demo model writing a
checkpoint every few seconds, and queries the published warehouse read-only every second
throughout. Passes when every checkpoint was processed by exactly one successful run and no
query ever failed once the warehouse existed. Prints a report for the README.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import duckdb

BIN = Path(sys.executable).parent


def _wait_for_ui(port: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
            return
        except OSError:
            time.sleep(2)
    raise TimeoutError(f"the Dagster UI did not answer on port {port} within {timeout:.0f} s")


def _query(warehouse: Path) -> set[str] | None:
    if not warehouse.exists():
        return None
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {r[0] for r in con.execute("select distinct checkpoint from fct_layer_gini").fetchall()}


def _runs_per_partition(home: Path) -> dict[str, list[str]]:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    with dg.DagsterInstance.get() as instance:
        runs: dict[str, list[str]] = {}
        for run in instance.get_runs():
            key = run.tags.get("dagster/partition")
            if key:
                runs.setdefault(key, []).append(run.status.value)
        return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--save-every", type=int, default=60)
    parser.add_argument("--port", type=int, default=3310)
    parser.add_argument("--timeout", type=float, default=1500)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="nwh-soak-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    expected = {f"checkpoint-{s}" for s in range(args.save_every, args.steps, args.save_every)}
    expected.add(f"checkpoint-{args.steps}")
    started = time.time()
    ui = subprocess.Popen([str(BIN / "nwh"), "--home", str(home), "ui", "--port", str(args.port)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    queries = failures = 0
    try:
        _wait_for_ui(args.port, 180)
        trainer = subprocess.Popen([str(BIN / "nwh"), "--home", str(home), "train", "--steps",
                                    str(args.steps), "--save-every", str(args.save_every)],
                                   env=env, stdout=subprocess.DEVNULL)
        seen: set[str] = set()
        while time.time() - started < args.timeout:
            try:
                result = _query(home / "warehouse.duckdb")
                if result is not None:
                    queries += 1
                    seen = result
            except duckdb.Error as e:
                failures += 1
                print(f"query failed: {e}", flush=True)
            if seen >= expected and trainer.poll() is not None:
                break
            time.sleep(1)
        trainer.wait(timeout=60)
        deadline = time.time() + 180  # let the last run finish its report step
        while time.time() < deadline and any(
                status in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
                for statuses in _runs_per_partition(home).values() for status in statuses):
            time.sleep(3)
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
    runs = _runs_per_partition(home)
    elapsed = time.time() - started
    print(f"soak: {elapsed:.0f} s, checkpoints expected {sorted(expected)}")
    print(f"  in the warehouse: {sorted(seen)}")
    print(f"  runs per partition: {runs}")
    print(f"  read-only queries during the soak: {queries}, failed: {failures}")
    ok = (seen >= expected and failures == 0
          and all(runs.get(f"demo/{c}") == ["SUCCESS"] for c in expected))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
