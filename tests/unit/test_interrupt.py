"""Issue 14: Ctrl-C / SIGTERM stops the whole run (ansible-playbook and every child), says "interrupted" and
exits 130; nothing is left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import PLAYBOOKS, write_local_inventory

from homeport import events

DRIVER = """
import sys
from pathlib import Path
import typer
from homeport import cli
try:
    cli.execute(sys.argv[1], Path(sys.argv[2]), False)
except typer.Exit as exc:
    sys.exit(exc.exit_code)
"""


def _alive(needle: str) -> list[str]:
    # ww: the whole command line (ps cuts it at 80 columns when its output is not a terminal)
    out = subprocess.run(["ps", "-eo", "pid,args", "ww"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if needle in line and "ps -eo" not in line]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_whole_run(project, sig):
    started = project / "started"
    seconds = str(3000 + os.getpid() % 600 + sig)  # unique: no other process sleeps this long
    inventory = write_local_inventory(project, {"started_path": str(started), "sleep_seconds": seconds})
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(PLAYBOOKS / "long_run.yml"), str(inventory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=project,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 120
        while not (started.exists() and _alive(f"sleep {seconds}")):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the run never reached its sleep"
            time.sleep(0.2)
        sent = time.monotonic()
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == events.EXIT_INTERRUPTED, output
    assert "interrupted" in output
    assert took < 15, f"stopping took {took:.1f}s"
    time.sleep(0.5)
    assert _alive(f"sleep {seconds}") == [], "the playbook's command outlived the run"
    assert [p for p in _alive("ansible-playbook") if str(PLAYBOOKS / "long_run.yml") in p] == []
