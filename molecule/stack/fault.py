#!/usr/bin/env python3
"""Fault driver of the `stack` scenario (issue 14): run a real `homeport` command on the controller and, when a
marker appears, kill -9 its whole process tree (homeport, ansible-runner's ansible-playbook, its forks, Mitogen's
multiplexer and the `docker exec` connections; the run is started in a session of its own, and a process of that
session that left the tree is killed too), as a laptop losing power would.

    fault.py --marker REGEX [--poll CMD] [--timeout S] -- homeport deploy -v -i INVENTORY

The marker is a regular expression matched against the run's event output (`-v` prints ansible's task banners,
`TASK [stack : ...]`), so the kill point is a task of the run, never a sleep. `--poll CMD` then waits (polling, 0.1 s)
until CMD exits 0, e.g. until `docker compose up` really runs on the target. The tree is frozen first (SIGSTOP to
every process, so none can react or start another), then each process gets SIGKILL. Prints one JSON object:
the marker line, the pids killed, the survivors (must be none) and the last lines of the run's output; exit 0 when
the run was killed at the marker with nothing left alive, 1 otherwise (the run ended before the marker, the marker
never came, or a process survived).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from homeport.runner import descendants


def alive(pid: int) -> bool:
    """A process that still exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def session(sid: int) -> list[int]:
    """The processes of session ``sid``: a run's process that detached from the tree (a double fork, reparented to
    init) is still in the session the run was started in."""
    out = subprocess.run(["ps", "-A", "-o", "pid=,sid="], capture_output=True, text=True, check=False).stdout
    return [int(f[0]) for f in (line.split() for line in out.splitlines()) if len(f) == 2 and f[1] == str(sid)]


def run_processes(root: int) -> list[int]:
    """``root`` (a session leader), every process below it and every other process of its session."""
    return list(dict.fromkeys([root, *descendants(root), *session(root)]))


def kill_tree(root: int) -> list[int]:
    """SIGSTOP then SIGKILL every process of the run; returns the pids signalled."""
    pids = run_processes(root)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        if sig == signal.SIGSTOP:
            # whatever was started between listing and freezing is frozen too by a second pass
            pids += [p for p in run_processes(root) if p not in pids]
    return pids


def wait_for(cmd: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if subprocess.run(cmd, shell=True, capture_output=True, check=False).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def run(marker: str, poll: str | None, timeout: float, argv: list[str]) -> dict:
    pattern = re.compile(marker)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250"}  # lines as they come, banners unwrapped
    # a session of its own: its id names every process of the run, also one that left the tree
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    tail: deque[str] = deque(maxlen=40)
    result: dict = {"argv": argv, "marker": None, "killed": [], "survivors": []}
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    try:
        while time.monotonic() < deadline and result["marker"] is None:
            if not sel.select(timeout=0.5):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break  # the run ended before the marker
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                tail.append(line)
                if pattern.search(line):
                    result["marker"] = line
                    break
        if result["marker"] is not None:
            result["polled"] = wait_for(poll, deadline) if poll else None
            result["killed"] = kill_tree(proc.pid)
            proc.wait(timeout=30)
            time.sleep(0.2)  # orphans of the tree are reaped by init
            result["survivors"] = [p for p in result["killed"] if alive(p)]
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait(timeout=30)
    result["rc"] = proc.returncode
    result["tail"] = list(tail)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--marker", required=True)
    parser.add_argument("--poll")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    result = run(args.marker, args.poll, args.timeout, argv)
    print(json.dumps(result, indent=2))
    ok = result["marker"] is not None and result["polled"] is not False and not result["survivors"]
    return 0 if ok and result["rc"] == -signal.SIGKILL else 1


if __name__ == "__main__":
    sys.exit(main())
