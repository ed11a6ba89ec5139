"""Checks of a bootstrapped sandbox host, shared by the two tests that bootstrap one: test_demo (the main unit run,
newest versions, on the demo's sandbox) and test_sandbox::test_sandbox_bootstrap_is_idempotent (the compat lane,
tests/compat.sh, on the oldest versions pyproject.toml allows). The main unit run deselects the latter (Makefile:
unit): the demo's sandbox already holds a fresh and a no-change bootstrap, so a second sandbox would repeat them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from homeport import runner as homeport_runner

# the tasks a no-change bootstrap skips because one read-only call per role found the units as they should be
SKIPPED_SYSTEMD_CALLS = {
    "Keep sshd enabled and running",
    "Enable fail2ban",
    "Enable and start the timers",
    "Enable and start Docker",
}
ASKED_ONCE = {
    "Ask systemd whether the hardening units are enabled and running (one call, read-only)",
    "Ask systemd whether the timers are enabled and running (one call, read-only)",
}
# what each tag's drift check must find after EDITS
DRIFT_BY_TAG = (("backup", "Write the job configuration"), ("hardening", "Write the sshd drop-in"))
EDITS = "echo ' ' >> /etc/homeport/backup/config.json; echo '# edit' >> /etc/ssh/sshd_config.d/100-homeport.conf"


def assert_strict_ssh_and_one_master(sandbox_dir: Path) -> None:
    """Host key checking on (the sandbox's own known_hosts), and the runs left an SSH master behind
    (ControlPersist=600s) at the socket ansible-core's ssh plugin would use: the next run within ten minutes skips
    the handshake, with or without Mitogen."""
    inventory = (sandbox_dir / "inventory.yml").read_text()
    assert "StrictHostKeyChecking=yes" in inventory and "UserKnownHostsFile=" in inventory
    assert (sandbox_dir / "known_hosts").read_text().startswith("[127.0.0.1]:")
    host = yaml.safe_load(inventory)["homeport"]["hosts"]["sandbox"]
    socket = homeport_runner.control_path(host["ansible_host"], host["ansible_port"], host["ansible_user"])
    check = subprocess.run(["ssh", "-O", "check", "-o", f"ControlPath={socket}", "sandbox"], capture_output=True)
    assert check.returncode == 0, check.stderr


def last_run_of(artifacts: Path, playbook: str) -> list[dict]:
    """The job events of the newest run of ``playbook`` in homeport's artifacts directory."""
    for run in sorted(artifacts.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        events = [json.loads(p.read_text()) for p in (run / "job_events").glob("*.json")]
        starts = [str(e["event_data"].get("playbook", "")) for e in events if e["event"] == "playbook_on_start"]
        if any(name.endswith(playbook) for name in starts):
            return events
    raise AssertionError(f"no run of {playbook} in {artifacts}")


def assert_systemd_asked_once(artifacts: Path) -> None:
    """The newest bootstrap changed nothing, asked systemd once per role and skipped every systemd_service call."""
    events = last_run_of(artifacts, "site.yml")
    changed = [
        e["event_data"].get("task")
        for e in events
        if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")
    ]
    assert not changed, changed
    skipped = {e["event_data"].get("task") for e in events if e["event"] == "runner_on_skipped"}
    asked = {e["event_data"].get("task") for e in events if e["event"] == "runner_on_ok"}
    assert skipped >= SKIPPED_SYSTEMD_CALLS, skipped
    assert asked >= ASKED_ONCE, asked


def assert_drift_by_tag(container: str, drift: Callable[[str], tuple[int, str]]) -> None:
    """site.yml includes each enabled role with its tags applied, so `--tags backup` checks the backup role (and the
    preflight) and nothing else, although the hardening drop-in drifted too. ``drift(tag)`` runs
    `homeport drift --sandbox --tags TAG --json` and returns its exit code and output. Leaves the drift behind."""
    subprocess.run(["docker", "exec", container, "sh", "-c", EDITS], check=True)
    for tag, expected in DRIFT_BY_TAG:
        code, output = drift(tag)
        assert code == 2, output[-3000:]
        roles = json.loads(output)["hosts"]["sandbox"]["roles"]
        assert set(roles) == {tag}, roles
        assert any(expected in c["task"] for c in roles[tag]), roles
