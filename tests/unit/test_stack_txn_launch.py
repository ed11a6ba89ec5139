"""Issue 28: how the release transaction's host process is started (plugins/module_utils/stack_txn.launch).

A transient systemd unit needs the system manager, which refuses an unprivileged caller ("Failed to start transient
service unit: Access denied", what the Mac journey's admin user got on the Mac sim, whose PID 1 is systemd); macOS has
launchd and no systemd. So: the role names the launcher by OS family (Darwin: detached), and `auto` uses systemd only
as root where systemd is PID 1. The detached path is run for real here with a stand-in program."""

from __future__ import annotations

import json
import os
import sys

import pytest
from ansible_local import ROOT

sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible_collections.homeport.homeport.plugins.module_utils import stack_txn


@pytest.mark.parametrize(
    ("launcher", "euid", "systemd_runs", "expected"),
    [
        ("detached", 0, True, False),  # the role's choice on macOS, whatever PID 1 is
        ("systemd", 1000, False, True),
        ("auto", 0, True, True),
        ("auto", 501, True, False),  # unprivileged: the system manager would refuse
        ("auto", 0, False, False),  # no systemd (macOS, a container without it)
    ],
)
def test_the_launcher(monkeypatch, launcher, euid, systemd_runs, expected):
    monkeypatch.setattr(stack_txn.os, "geteuid", lambda: euid)
    monkeypatch.setattr(stack_txn.os.path, "isdir", lambda p: systemd_runs if p == "/run/systemd/system" else False)
    monkeypatch.setattr(stack_txn.shutil, "which", lambda name: "/usr/bin/systemd-run" if systemd_runs else None)
    assert stack_txn.use_systemd(launcher) is expected


# the stand-in for homeport-stack-txn: what the real program does first (its pid into the journal, seq + 1)
STAND_IN = """\
import json, os, sys, time
path = os.path.join(sys.argv[2], ".transaction.json")
doc = json.load(open(path))
doc["seq"] += 1
doc["pid"] = os.getpid()
doc["sid_is_own"] = os.getsid(0) == os.getpid()
json.dump(doc, open(path, "w"))
time.sleep(30)
"""


def test_a_detached_launch_runs_in_a_session_of_its_own(tmp_path):
    program = tmp_path / "homeport-stack-txn"  # the name is_alive looks for in /proc/PID/cmdline
    program.write_text(STAND_IN, encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    state = {"id": "t1", "seq": 0, "status": "running", "params": {"project_name": "p", "launcher": "detached"}}
    stack_txn.write_state(str(project), state)
    now = stack_txn.launch(str(project), stack_txn.read_state(str(project)), str(program), sys.executable, wait=10)
    try:
        assert now["how"].startswith("a detached process"), now
        doc = json.loads((project / ".transaction.json").read_text())
        assert doc["sid_is_own"] and doc["pid"] == now["pid"], doc  # setsid: not in this session's process group
        assert stack_txn.is_alive(doc)
    finally:
        os.kill(now["pid"], 9)
        os.waitpid(now["pid"], 0)  # started from this process: reap it
