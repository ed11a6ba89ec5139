"""Issue 14: molecule/stack/fault.py, the SIGKILL driver of the stack scenario's fault tests, kills the whole process
tree of a run at its marker (children that left the process group included) and reports a run that ended before it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

FAULT = Path(__file__).resolve().parents[2] / "molecule" / "stack" / "fault.py"


def _fault(*args: str, timeout: float = 60) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, str(FAULT), *args], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, json.loads(proc.stdout)


def test_kills_every_process_of_the_tree_at_the_marker(tmp_path):
    seconds = str(4000 + os.getpid() % 600)  # unique: no other process sleeps this long
    # a child in a session of its own (as Mitogen's multiplexer), a double-forked one (reparented to init), the marker
    script = (
        f"setsid sleep {seconds} & (sleep {seconds} &); sleep 0.3; echo 'TASK [stack : Marker] ***'; sleep {seconds}"
    )
    code, report = _fault("--marker", r"TASK \[stack : Marker", "--poll", "true", "--", "sh", "-c", script)
    assert code == 0, report
    assert report["marker"].startswith("TASK [stack : Marker]")
    assert report["survivors"] == []
    assert len(report["killed"]) >= 3
    time.sleep(0.3)
    ps = subprocess.run(["ps", "-eo", "args", "ww"], capture_output=True, text=True, check=True).stdout
    # every sleep of this run is gone: the setsid child (below the run), the double-forked one (in its session)
    assert f"sleep {seconds}" not in ps


def test_a_run_that_ends_before_the_marker_fails():
    code, report = _fault("--marker", "never", "--", "sh", "-c", "echo done")
    assert code == 1
    assert report["marker"] is None
    assert report["tail"] == ["done"]
