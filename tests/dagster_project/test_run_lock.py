"""Two `nwh run` on one home: the second waits for the first, or stops with a message naming it;
a holder killed with SIGKILL frees the home."""

import os
import signal
import time

import pytest

from dagster_project.home import run_lock
from tests.conftest import lock_holder


def test_a_second_run_waits_for_the_first_or_stops_naming_it(tmp_path):
    proc = lock_holder(tmp_path)
    with pytest.raises(RuntimeError, match=f"another nwh run is working on .* \\(pid {proc.pid}\\)"):
        with run_lock(tmp_path, wait=False):
            pass
    said = []
    with run_lock(tmp_path, say=said.append):
        acquired = time.time()
    assert proc.wait(30) == 0
    assert acquired >= float((tmp_path / "releasing").read_text())  # only after the first let go
    assert said and f"pid {proc.pid}" in said[0]


def test_a_killed_holder_frees_the_home(tmp_path):
    proc = lock_holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    with run_lock(tmp_path, wait=False):  # the kernel dropped the dead process's lock
        pass
