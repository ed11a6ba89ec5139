"""The sandbox host end to end: up, bootstrap over real SSH (host key checking on), rerun changes nothing, down."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess

import pytest
import yaml
from typer.testing import CliRunner

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _docker_reachable() -> bool:
    return bool(shutil.which("docker")) and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture
def sandbox_cli(project, monkeypatch):
    if not _docker_reachable():
        pytest.skip("Docker is not reachable")
    monkeypatch.setenv("HOMEPORT_SANDBOX_NAME", "homeport-sandbox-unittest")
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
    inventory = (project / ".homeport" / "sandbox" / "inventory.yml").read_text()
    assert "StrictHostKeyChecking=yes" in inventory and "UserKnownHostsFile=" in inventory
    assert (project / ".homeport" / "sandbox" / "known_hosts").read_text().startswith("[127.0.0.1]:")

    first = runner.invoke(app, ["bootstrap", "--sandbox"])
    assert first.exit_code == 0, first.output[-5000:]

    second = runner.invoke(app, ["bootstrap", "--sandbox", "--json"])
    assert second.exit_code == 0, second.output[-5000:]
    result = json.loads(second.stdout)
    assert result["recap"]["sandbox"]["changed"] == 0, result["changes"]
    assert result["recap"]["sandbox"]["failed"] == 0

    ssh = runner.invoke(app, ["sandbox", "ssh", "--", "sudo", "-n", "true"])
    assert ssh.exit_code == 0

    # the runs left an SSH master behind (ControlPersist=600s), at the socket ansible-core's ssh plugin would use:
    # the next run within ten minutes skips the handshake, with or without Mitogen
    from ansible.plugins.connection.ssh import Connection

    from homeport import runner as homeport_runner

    host = yaml.safe_load(inventory)["homeport"]["hosts"]["sandbox"]
    socket = Connection._create_control_path(host["ansible_host"], host["ansible_port"], host["ansible_user"]) % {
        "directory": str(homeport_runner.control_path_dir())
    }
    check = subprocess.run(["ssh", "-O", "check", "-o", f"ControlPath={socket}", "sandbox"], capture_output=True)
    assert check.returncode == 0, check.stderr

    # the no-change rerun asked systemd once per role and skipped every systemd_service call (real systemd output)
    runs = sorted((project / ".homeport" / "artifacts").iterdir(), key=lambda p: p.stat().st_mtime)
    events = [json.loads(p.read_text()) for p in (runs[-1] / "job_events").glob("*.json")]
    skipped = {e["event_data"].get("task") for e in events if e["event"] == "runner_on_skipped"}
    asked = {e["event_data"].get("task") for e in events if e["event"] == "runner_on_ok"}
    assert {
        "Keep sshd enabled and running",
        "Enable fail2ban",
        "Enable and start the timers",
        "Enable and start Docker",
    } <= skipped, skipped
    assert "Ask systemd whether the hardening units are enabled and running (one call, read-only)" in asked
    assert "Ask systemd whether the timers are enabled and running (one call, read-only)" in asked

    # drift by tag: site.yml includes each enabled role with its tags applied, so `--tags backup` checks the
    # backup role (and the preflight) and nothing else, although the hardening drop-in drifted too
    sandbox = sandbox_cli[1]
    edits = "echo ' ' >> /etc/homeport/backup/config.json; echo '# edit' >> /etc/ssh/sshd_config.d/100-homeport.conf"
    subprocess.run(["docker", "exec", sandbox.CONTAINER, "sh", "-c", edits], check=True)
    for tag, expected in (("backup", "Write the job configuration"), ("hardening", "Write the sshd drop-in")):
        drift = runner.invoke(app, ["drift", "--sandbox", "--tags", tag, "--json"])
        assert drift.exit_code == 2, drift.output[-3000:]
        roles = json.loads(drift.stdout)["hosts"]["sandbox"]["roles"]
        assert set(roles) == {tag}, roles
        assert any(expected in c["task"] for c in roles[tag]), roles
