#!/usr/bin/env python3
"""Fault driver of the `stack` scenario (issue 14): run a real `homeport` command on the controller and, when a
marker appears, kill -9 its whole process tree (homeport, ansible-runner's ansible-playbook, its forks, Mitogen's
multiplexer and the `docker exec` connections; the run is started in a session of its own, and a process of that
session that left the tree is killed too), as a laptop losing power would. Or, with `--run CMD`, make a fault
happen on the host at that point instead (a full disk) and let the run go on to its end.

    fault.py --marker REGEX [--poll CMD] [--run CMD] [--log FILE] [--timeout S] -- homeport deploy -v -i INVENTORY

The marker is a regular expression matched against the run's event output (`-v` prints ansible's task banners,
`TASK [stack : ...]`), so the kill point is a task of the run, never a sleep. `--poll CMD` then waits (polling, 0.1 s)
until CMD exits 0, e.g. until `docker compose up` really runs on the target. The tree is frozen first (SIGSTOP to
every process, so none can react or start another), then each process gets SIGKILL. Prints one JSON object:
the marker line, the pids killed, the survivors (must be none) and the last lines of the run's output; exit 0 when
the run was killed at the marker with nothing left alive, 1 otherwise (the run ended before the marker, the marker
never came, or a process survived).

`--run CMD` (no kill): at the marker the tree is frozen the same way and, once every process of it has really
stopped (state T), CMD runs (a shell command, e.g. one that fills the host's disk); then the tree is thawed (SIGCONT)
and the run goes on. The frozen run cannot take a step before CMD is done, so the fault lands between the marker's
task and the next one. The report adds CMD's exit code and output (`ran`); exit 0 when the marker came, the run
stopped, CMD exited 0 and the run then ended by itself (whatever its exit code, in `rc`), 1 otherwise.
`--log FILE` writes the run's whole output there.
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


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def freeze(root: int) -> list[int]:
    """SIGSTOP every process of the run; returns the pids frozen."""
    pids = run_processes(root)
    signal_all(pids, signal.SIGSTOP)
    # whatever was started between listing and freezing is frozen too by a second pass
    more = [p for p in run_processes(root) if p not in pids]
    signal_all(more, signal.SIGSTOP)
    return pids + more


def kill_tree(root: int) -> list[int]:
    """SIGSTOP then SIGKILL every process of the run; returns the pids signalled."""
    pids = freeze(root)
    signal_all(pids, signal.SIGKILL)
    return pids


def state(pid: int) -> str | None:
    """The process state letter of /proc/PID/stat (R, S, D, T, Z...), None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return None


def wait_stopped(pids: list[int], timeout: float = 5) -> list[int]:
    """Wait until every process has really stopped (a process in a system call, state D, stops when it returns);
    returns the ones that did not (empty when all did)."""
    deadline = time.monotonic() + timeout
    while True:
        running = [p for p in pids if state(p) not in (None, "T", "t", "Z", "X")]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.01)


def run_frozen(root: int, cmd: str, timeout: float) -> dict:
    """Run ``cmd`` while every process of the run is stopped, then let them go on."""
    pids = freeze(root)
    not_stopped = wait_stopped(pids)
    try:
        done = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout, check=False)
        ran = {"cmd": cmd, "rc": done.returncode, "output": (done.stdout + done.stderr)[-4000:]}
    except subprocess.TimeoutExpired:
        ran = {"cmd": cmd, "rc": None, "output": f"timed out after {timeout} s"}
    finally:
        signal_all(pids, signal.SIGCONT)
    ran["frozen"] = len(pids)
    ran["not_stopped"] = not_stopped
    return ran


def wait_for(cmd: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if subprocess.run(cmd, shell=True, capture_output=True, check=False).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def run(marker: str, poll: str | None, timeout: float, argv: list[str], action: str | None = None) -> dict:
    pattern = re.compile(marker)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250"}  # lines as they come, banners unwrapped
    # a session of its own: its id names every process of the run, also one that left the tree
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    tail: deque[str] = deque(maxlen=40)
    result: dict = {"argv": argv, "marker": None, "killed": [], "survivors": [], "output": []}
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    ended = False

    def read_lines(stop_at_marker: bool) -> None:
        nonlocal buffer, ended
        while time.monotonic() < deadline and not (stop_at_marker and result["marker"] is not None):
            if not sel.select(timeout=0.5):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                ended = True  # the run closed its output: it ended (before the marker, when still looking for it)
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                tail.append(line)
                result["output"].append(line)
                if stop_at_marker and result["marker"] is None and pattern.search(line):
                    result["marker"] = line

    try:
        read_lines(stop_at_marker=True)
        if result["marker"] is not None:
            result["polled"] = wait_for(poll, deadline) if poll else None
            if action is not None:
                result["ran"] = run_frozen(proc.pid, action, max(1.0, deadline - time.monotonic()))
                read_lines(stop_at_marker=False)  # the rest of the run, to its end
                result["ended"] = ended
                proc.wait(timeout=30 if ended else 1)
            else:
                result["killed"] = kill_tree(proc.pid)
                proc.wait(timeout=30)
                time.sleep(0.2)  # orphans of the tree are reaped by init
                result["survivors"] = [p for p in result["killed"] if alive(p)]
    except subprocess.TimeoutExpired:
        pass  # reported below: the run is killed and rc is not an exit of its own
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait(timeout=30)
    result["rc"] = proc.returncode
    result["tail"] = list(tail)
    return result


def succeeded(result: dict, action: str | None) -> bool:
    if result["marker"] is None or result.get("polled") is False:
        return False
    if action is not None:
        ran = result["ran"]
        return (
            ran["rc"] == 0
            and not ran["not_stopped"]
            and result["ended"]
            and result["rc"] is not None
            and result["rc"] >= 0
        )
    return not result["survivors"] and result["rc"] == -signal.SIGKILL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--marker", required=True)
    parser.add_argument("--poll")
    parser.add_argument("--run", help="a shell command to run at the marker, the run frozen, instead of the kill")
    parser.add_argument("--log", type=Path, help="write the run's whole output to this file")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    result = run(args.marker, args.poll, args.timeout, argv, action=args.run)
    output = result.pop("output")
    if args.log:
        args.log.write_text("\n".join(output) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if succeeded(result, args.run) else 1


if __name__ == "__main__":
    sys.exit(main())
