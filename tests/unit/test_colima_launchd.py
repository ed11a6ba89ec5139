"""roles/colima/files/colima-launchd, the program the Colima LaunchDaemon runs: it recovers a VM left Broken by a
power cut (colima stop --force, then start; colima issues #1170 and #381), logs each step, and gives up loudly
after repeated failures. Run with /bin/sh against a fake colima that keeps the VM state in a file and behaves like
the real one in the states that matter: a Broken VM cannot start until `stop --force`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "roles" / "colima" / "files" / "colima-launchd"

FAKE_COLIMA = r"""#!/usr/bin/env python3
import json, os, sys
state_file = os.environ["FAKE_COLIMA_STATE"]
state = json.load(open(state_file))
args = sys.argv[1:]
state.setdefault("calls", []).append(args)
def save():
    json.dump(state, open(state_file, "w"))
if args[:2] == ["list", "--json"]:
    if state["status"] != "absent":
        print(json.dumps({"name": "default", "status": state["status"], "arch": "aarch64", "cpus": 2}))
    save(); sys.exit(0)
if args[0] == "stop":
    if state["status"] == "Broken" and "--force" not in args:
        save(); sys.exit(1)
    state["status"] = "Stopped"; save(); sys.exit(0)
if args[0] == "start":
    if state["status"] == "Broken" or state.get("fail_starts", 0) > 0:
        state["fail_starts"] = max(state.get("fail_starts", 0) - 1, 0)
        sys.stderr.write('level=fatal msg="error starting vm: error at \'starting\': exit status 1"\n')
        save(); sys.exit(1)
    state["status"] = "Running"; save(); sys.exit(0)
save(); sys.exit(2)
"""


@pytest.fixture
def colima(tmp_path: Path):
    fake = tmp_path / "colima"
    fake.write_text(FAKE_COLIMA, encoding="utf-8")
    fake.chmod(0o755)
    state = tmp_path / "state.json"

    def run(status: str, fail_starts: int = 0, attempts: int = 3) -> tuple[subprocess.CompletedProcess, dict]:
        state.write_text(json.dumps({"status": status, "fail_starts": fail_starts}), encoding="utf-8")
        env = {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",  # the LaunchDaemon's PATH without Homebrew's bin
            "HOME": str(tmp_path / "home"),
            "FAKE_COLIMA_STATE": str(state),
            "HOMEPORT_COLIMA_ATTEMPTS": str(attempts),
            "HOMEPORT_COLIMA_RETRY_DELAY": "0",
        }
        r = subprocess.run(
            ["/bin/sh", str(WRAPPER), "default", str(fake)], env=env, capture_output=True, text=True, timeout=60
        )
        return r, json.loads(state.read_text(encoding="utf-8"))

    return run


def _marker(tmp_path: Path) -> Path:
    return tmp_path / "home" / ".colima" / "default" / "homeport-gave-up"


def test_broken_vm_is_force_stopped_then_started(colima, tmp_path):
    r, state = colima("Broken")
    assert r.returncode == 0, r.stderr
    assert state["status"] == "Running"
    # stop --force comes before the first start: no failed start against a Broken VM
    calls = [c for c in state["calls"] if c[0] != "list"]
    assert calls == [["stop", "--force", "default"], ["start", "default", "--foreground"]]
    assert "the VM is Broken" in r.stderr and "colima stop --force default" in r.stderr
    assert not _marker(tmp_path).exists()


def test_a_healthy_stopped_vm_is_just_started(colima):
    r, state = colima("Stopped")
    assert r.returncode == 0
    assert [c for c in state["calls"] if c[0] != "list"] == [["start", "default", "--foreground"]]


def test_a_failed_start_is_retried_after_a_forced_stop(colima):
    r, state = colima("Stopped", fail_starts=1)
    assert r.returncode == 0, r.stderr
    assert state["status"] == "Running"
    assert [c for c in state["calls"] if c[0] != "list"] == [
        ["start", "default", "--foreground"],
        ["stop", "--force", "default"],
        ["start", "default", "--foreground"],
    ]
    assert "colima start failed (exit 1)" in r.stderr


def test_gives_up_loudly_after_repeated_failures(colima, tmp_path):
    r, state = colima("Stopped", fail_starts=99, attempts=3)
    # exit 0: the plist's KeepAlive {SuccessfulExit: false} must not restart a job that gave up
    assert r.returncode == 0
    assert len([c for c in state["calls"] if c[0] == "start"]) == 3
    assert "GIVING UP after 3 failed starts" in r.stderr
    assert "homeport bootstrap" in r.stderr
    assert "gave up after 3 failed starts of colima profile default" in _marker(tmp_path).read_text()


def test_every_line_is_time_stamped(colima):
    r, _ = colima("Broken")
    lines = [ln for ln in r.stderr.splitlines() if "homeport-colima[" in ln]
    assert lines and all(ln[:4].isdigit() and ln[10] == "T" and ln[19] == "Z" for ln in lines)


def test_a_later_success_removes_the_marker(colima, tmp_path):
    colima("Stopped", fail_starts=99)
    assert _marker(tmp_path).exists()
    r, _ = colima("Broken")
    assert r.returncode == 0 and not _marker(tmp_path).exists()


def test_posix_sh_syntax():
    for sh in ("/bin/sh", "/bin/dash", "/bin/bash"):
        if os.path.exists(sh):
            assert subprocess.run([sh, "-n", str(WRAPPER)], check=False).returncode == 0, sh
