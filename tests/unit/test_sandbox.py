"""The sandbox host end to end: up, bootstrap over real SSH (host key checking on), rerun changes nothing, down."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess

import pytest
import sandbox_checks
from conftest import missing
from typer.testing import CliRunner

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _docker_reachable() -> bool:
    return bool(shutil.which("docker")) and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture
def sandbox_cli(project, monkeypatch):
    if not _docker_reachable():
        missing("a reachable Docker engine", ".ci/run starts one")
    # a name of the test's own (tests/compat.sh runs this test beside the main unit run under another name)
    name = os.environ.get("HOMEPORT_TEST_SANDBOX_NAME", "homeport-sandbox-unittest")
    monkeypatch.setenv("HOMEPORT_SANDBOX_NAME", name)
    from homeport import cli, sandbox

    importlib.reload(sandbox)  # picks up the container name
    monkeypatch.setattr(cli, "sandbox_host", sandbox)
    runner = CliRunner()
    yield runner, sandbox
    runner.invoke(cli.app, ["sandbox", "down"])
    assert subprocess.run(["docker", "inspect", sandbox.CONTAINER], capture_output=True).returncode != 0
    monkeypatch.delenv("HOMEPORT_SANDBOX_NAME")
    importlib.reload(sandbox)


def test_sandbox_bootstrap_is_idempotent(sandbox_cli, project):
    from homeport.cli import app

    runner, _ = sandbox_cli
    up = runner.invoke(app, ["sandbox", "up", "--release", "13"])
    assert up.exit_code == 0, up.output
    first = runner.invoke(app, ["bootstrap", "--sandbox"])
    assert first.exit_code == 0, first.output[-5000:]

    second = runner.invoke(app, ["bootstrap", "--sandbox", "--json"])
    assert second.exit_code == 0, second.output[-5000:]
    result = json.loads(second.stdout)
    assert result["recap"]["sandbox"]["changed"] == 0, result["changes"]
    assert result["recap"]["sandbox"]["failed"] == 0

    ssh = runner.invoke(app, ["sandbox", "ssh", "--", "sudo", "-n", "true"])
    assert ssh.exit_code == 0
    sandbox_checks.assert_strict_ssh_and_one_master(project / ".homeport" / "sandbox")
    sandbox_checks.assert_systemd_asked_once(project / ".homeport" / "artifacts")

    def drift(tag: str) -> tuple[int, str]:
        r = runner.invoke(app, ["drift", "--sandbox", "--tags", tag, "--json"])
        return r.exit_code, r.stdout

    sandbox_checks.assert_drift_by_tag(sandbox_cli[1].CONTAINER, drift)


# ---- where the base image comes from (src/homeport/images/build.sh: base_method, build_base_registry) ------------

BUILD_SH = __import__("pathlib").Path(__file__).resolve().parents[2] / "src" / "homeport" / "images" / "build.sh"
FAKE_DOCKER = """#!/bin/sh
# stand-in docker: `info` answers; `image inspect` knows nothing; `pull` answers as $PULL says (ok | fail | hang);
# `build` keeps the Dockerfile it reads from stdin; `import` records its call
echo "$*" >>"$STATE/calls"
case "$1" in
  info) exit 0;;
  image) exit 1;;
  pull) case "$PULL" in ok) exit 0;; hang) exec sleep 60;; *) echo "dial tcp: no such host" >&2; exit 1;; esac;;
  build) cat >"$STATE/Dockerfile"; exit 0;;
  import) exit 0;;
esac
exit 0
"""


def _build_sh(tmp_path, *args, pull="fail", debootstrap=False, timeout="15", no_timeout_tool=False):
    import os

    bindir = tmp_path / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    path = f"{bindir}:/usr/bin:/bin"
    if no_timeout_tool:  # like macOS: no timeout(1); only the tools build.sh needs, linked one by one
        for tool in ("bash", "sh", "dirname", "mkdir", "sleep", "cat", "tail"):
            (bindir / tool).symlink_to(shutil.which(tool))
        path = str(bindir)
    (bindir / "docker").write_text(FAKE_DOCKER)
    (bindir / "docker").chmod(0o755)
    if debootstrap:
        (bindir / "debootstrap").write_text('#!/bin/sh\necho debootstrap "$@" >>"$STATE/calls"\nexit 1\n')
        (bindir / "debootstrap").chmod(0o755)
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    # no /usr/sbin on PATH: this machine's real debootstrap lives there
    env = {
        "PATH": path,
        "STATE": str(state),
        "PULL": pull,
        "HOME": str(tmp_path),
        "HOMEPORT_IMAGE_CACHE": str(tmp_path / "cache"),
        "HOMEPORT_REGISTRY_TIMEOUT": timeout,
    }
    assert not os.path.exists(bindir / "timeout")
    bash = str(bindir / "bash") if no_timeout_tool else "bash"
    r = subprocess.run([bash, str(BUILD_SH), *args], capture_output=True, text=True, env=env, timeout=120)
    calls = (state / "calls").read_text() if (state / "calls").exists() else ""
    return r, calls, state


def test_base_image_from_the_registry_when_one_answers(tmp_path):
    r, calls, _ = _build_sh(tmp_path, "method", "13", pull="ok", debootstrap=True)
    assert (r.returncode, r.stdout.strip()) == (0, "registry"), r.stderr
    assert "pull -q debian:trixie" in calls

    r, calls, state = _build_sh(tmp_path, "base13", pull="ok", debootstrap=True)
    assert r.returncode == 0, r.stderr
    dockerfile = (state / "Dockerfile").read_text()
    assert dockerfile.startswith("FROM debian:trixie\n")
    assert "openssh-server" in dockerfile and "systemd-sysv" in dockerfile and "python3-apt" in dockerfile
    assert "ln -sf /dev/null /etc/systemd/system/$u" in dockerfile
    assert 'CMD ["/lib/systemd/systemd"]' in dockerfile
    assert "build -q -t homeport/debian:13 -" in calls
    assert "debootstrap" not in calls and "bookworm" not in calls  # only the release asked for


def test_base_image_by_debootstrap_when_no_registry_answers(tmp_path):
    r, _calls, _ = _build_sh(tmp_path, "method", "12", pull="fail", debootstrap=True)
    assert (r.returncode, r.stdout.strip()) == (0, "debootstrap"), r.stderr

    r, calls, _ = _build_sh(tmp_path, "base12", pull="fail", debootstrap=True)
    assert r.returncode == 1  # the stand-in debootstrap fails: what matters is that it was the one called
    assert "debootstrap --variant=minbase" in calls and " bookworm " in calls
    assert "trixie" not in calls and "build -q" not in calls


def test_a_registry_that_hangs_is_given_up_quickly(tmp_path):
    import time

    start = time.monotonic()
    r, _calls, _ = _build_sh(tmp_path, "method", "13", pull="hang", debootstrap=True, timeout="2")
    assert r.stdout.strip() == "debootstrap", r.stderr
    assert time.monotonic() - start < 15

    start = time.monotonic()
    r, _calls, _ = _build_sh(tmp_path / "mac", "method", "13", pull="hang", timeout="2", no_timeout_tool=True)
    assert r.stdout.strip() == "none", r.stderr  # the watchdog ended the pull; no debootstrap on that PATH
    assert time.monotonic() - start < 15


def test_neither_registry_nor_debootstrap_says_what_to_install(tmp_path):
    r, _calls, _ = _build_sh(tmp_path, "method", "13", pull="fail")
    assert r.stdout.strip() == "none"
    r, _calls, _ = _build_sh(tmp_path, "base13", pull="fail")
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "cannot build homeport/debian:13" in lines[0] and "apt-get install debootstrap" in lines[0]
    assert "Docker Desktop, Colima" in lines[0]


def test_sandbox_up_reports_the_build_message(monkeypatch):
    from homeport import sandbox

    monkeypatch.setattr(sandbox, "_missing", list)

    class Result:
        returncode = 1
        stderr = "[images] something\ncannot build homeport/debian:13: ... Install debootstrap ...\n"

    seen = {}

    def fake_run(argv, **kw):
        seen["argv"] = argv
        return Result()

    monkeypatch.setattr(sandbox.subprocess, "run", fake_run)
    with pytest.raises(sandbox.SandboxError, match=r"^cannot build homeport/debian:13"):
        sandbox._ensure_image(13, __import__("rich.console").console.Console(quiet=True))
    assert seen["argv"][-1] == "base13"  # only the release the sandbox needs
