"""Soak test of run retries (run by `make soak`, never by `make test`): a sensor run interrupted by
stopping `nwh ui` is retried from the step that failed when `nwh ui` is back.

On a fresh home: train a small demo checkpoint, start `nwh ui`, wait until the sensor's run has
materialized its first assets, stop `nwh ui` (SIGTERM to its process group, as Ctrl-C does),
start it again, and wait for the daemon's retry. Passes when the interrupted run is FAILURE, its
retry (tagged with it as parent) is SUCCESS, the retry did not materialize again what the
interrupted run had finished, and the warehouse holds the checkpoint.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from tests.soak.soak import BIN, _wait_for_ui

RETRY_PARENT_TAG = "dagster/parent_run_id"


def _instance(home: Path):
    from dagster_project.runner import instance_for  # the instance `nwh ui` uses, with retries

    return instance_for(home)


def _materialized(instance, run_id: str) -> set[str]:
    import dagster as dg

    return {r.event_log_entry.dagster_event.asset_key.to_user_string()
            for r in instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000).records}


def _start_ui(home: Path, port: int, env: dict) -> subprocess.Popen:
    ui = subprocess.Popen([str(BIN / "nwh"), "--home", str(home), "ui", "--port", str(port)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    _wait_for_ui(port, 180)
    return ui


def _stop(ui: subprocess.Popen) -> None:
    os.killpg(ui.pid, signal.SIGTERM)
    try:
        ui.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(ui.pid, signal.SIGKILL)
        ui.wait()


def _wait(what: str, condition, timeout: float):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(2)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port", type=int, default=3311)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="nwh-retry-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.time()
    subprocess.run([str(BIN / "nwh"), "--home", str(home), "train", "--steps", "120",
                    "--save-every", "120"], env=env, stdout=subprocess.DEVNULL, check=True)
    instance = _instance(home)
    ui = _start_ui(home, args.port, env)
    try:
        first = _wait("the sensor's run materializing its first assets", lambda: next(
            (r for r in instance.get_runs() if _materialized(instance, r.run_id)), None), 600)
        _stop(ui)
        interrupted = instance.get_run_by_id(first.run_id)
        done_before = _materialized(instance, first.run_id)
        print(f"stopped nwh ui during run {first.run_id[:8]}: {interrupted.status.value}, "
              f"{len(done_before)} assets materialized before", flush=True)
        ui = _start_ui(home, args.port, env)
        retry = _wait("the retry of the interrupted run", lambda: next(
            (r for r in instance.get_runs() if r.tags.get(RETRY_PARENT_TAG) == first.run_id
             and r.status.value in ("SUCCESS", "FAILURE", "CANCELED")), None), 900)
    finally:
        _stop(ui)
    # read again: the run is STARTED until the daemon's run monitoring, back with `nwh ui`, finds
    # its worker gone and marks it FAILURE (then retries it)
    interrupted = instance.get_run_by_id(first.run_id)
    redone = done_before & _materialized(instance, retry.run_id)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        checkpoints = {r[0] for r in con.execute("select distinct checkpoint from dim_neurons").fetchall()}
    print(f"retry {retry.run_id[:8]}: {retry.status.value}, "
          f"{len(_materialized(instance, retry.run_id))} assets materialized, {len(redone)} of them "
          f"already done by the interrupted run; warehouse checkpoints {sorted(checkpoints)}; "
          f"{time.time() - started:.0f} s in all")
    ok = (interrupted.status.value == "FAILURE" and retry.status.value == "SUCCESS"
          and not redone and checkpoints == {"checkpoint-120"})
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
