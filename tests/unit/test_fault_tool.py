"""Issue 14: molecule/stack/fault.py's `--run` mode (the full disk after `docker compose up` of the stack scenario):
at the marker the run is frozen while the command runs, then goes on to its own end; `--log` keeps the whole output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FAULT = Path(__file__).resolve().parents[2] / "molecule" / "stack" / "fault.py"


def _fault(*args: str, timeout: float = 60) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, str(FAULT), *args], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, json.loads(proc.stdout)


def test_run_mode_freezes_the_run_for_the_command_then_lets_it_end(tmp_path):
    pid, state, log = tmp_path / "pid", tmp_path / "state", tmp_path / "run.log"
    # the run writes its pid, prints the marker and then looks for the command's file: it sees it only if it was
    # frozen until the command was done (the command records the run's process state, T = stopped). Its 3 s after
    # the marker are the time fault.py has to stop it: 0.2 s failed on a loaded machine (load average 15) without a
    # fault in the tool; a run that was not stopped is still caught, its state then reads S, not T
    script = (
        f"echo $$ > {pid}; echo 'TASK [stack : Marker] ***'; sleep 3; "
        f"if [ -e {state} ]; then echo 'saw the fault'; fi; exit 3"
    )
    command = f"sleep 0.5; cut -d')' -f2 /proc/$(cat {pid})/stat | cut -d' ' -f2 > {state}; echo filled"
    code, report = _fault(
        "--marker", r"TASK \[stack : Marker", "--run", command, "--log", str(log), "--", "sh", "-c", script
    )
    assert code == 0, report
    assert report["ran"]["rc"] == 0
    assert report["ran"]["output"].strip() == "filled"
    assert state.read_text().strip() == "T"  # the run was stopped while the command ran
    assert report["ended"] is True
    assert report["rc"] == 3  # the run's own exit, not a kill
    assert report["killed"] == []
    assert report["tail"][-1] == "saw the fault"
    assert log.read_text().splitlines() == ["TASK [stack : Marker] ***", "saw the fault"]


def test_run_mode_fails_when_the_command_fails():
    code, report = _fault("--marker", "MARK", "--run", "exit 7", "--", "sh", "-c", "echo MARK; exit 0")
    assert code == 1
    assert report["ran"]["rc"] == 7
    assert report["rc"] == 0


def test_run_mode_fails_when_the_marker_never_comes(tmp_path):
    flag = tmp_path / "ran"
    code, report = _fault("--marker", "never", "--run", f"touch {flag}", "--", "sh", "-c", "echo done")
    assert code == 1
    assert report["marker"] is None
    assert not flag.exists()
