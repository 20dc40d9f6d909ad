"""Two `nwh run` on one home: the second waits for the first, or stops with a message naming it;
a holder killed with SIGKILL frees the home."""

import os
import signal
import subprocess
import sys
import time

import pytest

from dagster_project.home import run_lock

HOLD = """
import sys, time
from pathlib import Path
from dagster_project.home import run_lock
home = Path(sys.argv[1])
with run_lock(home):
    (home / "held").write_text("1")
    time.sleep(float(sys.argv[2]))
    (home / "releasing").write_text(repr(time.time()))
"""


def _holder(home, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(home), str(seconds)])
    deadline = time.time() + 60
    while not (home / "held").exists():
        assert time.time() < deadline and proc.poll() is None, "the holder never took the lock"
        time.sleep(0.05)
    return proc


def test_a_second_run_waits_for_the_first_or_stops_naming_it(tmp_path):
    holder = _holder(tmp_path, 1.5)
    with pytest.raises(RuntimeError, match=f"another nwh run is working on .* \\(pid {holder.pid}\\)"):
        with run_lock(tmp_path, wait=False):
            pass
    said = []
    with run_lock(tmp_path, say=said.append):
        acquired = time.time()
    assert holder.wait(30) == 0
    assert acquired >= float((tmp_path / "releasing").read_text())  # only after the first let go
    assert said and f"pid {holder.pid}" in said[0]


def test_a_killed_holder_frees_the_home(tmp_path):
    holder = _holder(tmp_path, 600)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(30)
    with run_lock(tmp_path, wait=False):  # the kernel dropped the dead process's lock
        pass
