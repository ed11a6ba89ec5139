"""The drift check's record (the last play of playbooks/drift.yml -> roles/monitoring/tasks/drift_record.yml ->
homeport.homeport.drift_changes): run for real by ansible-playbook after a play whose tasks would change, in check
mode (what `homeport drift` runs) and for real (--fix); the record's figures, and that the record itself reports no
change, so a clean host's check stays changed=0."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from ansible_local import ROOT, run_local_playbook
from conftest import missing


def drift_playbook(workdir: Path, changes: int) -> str:
    """A first play with ``changes`` tasks that change (write files) and one that does not, then the record play of
    playbooks/drift.yml as it is (on localhost)."""
    plays = yaml.safe_load((ROOT / "playbooks" / "drift.yml").read_text())
    record = next(p for p in plays if "tasks" in p)
    record["hosts"] = "all"
    tasks = [
        {
            "name": f"change {i}",
            "ansible.builtin.copy": {"content": "x\n", "dest": str(workdir / f"f{i}"), "mode": "0600"},
        }
        for i in range(changes)
    ]
    tasks.append({"name": "no change", "ansible.builtin.command": "true", "changed_when": False})
    first = {"name": "the site", "hosts": "all", "gather_facts": False, "tasks": tasks}
    return yaml.safe_dump([first, record], sort_keys=False)


def variables(state: Path) -> dict:
    import os
    import pwd

    return {
        "homeport_os_family": "Debian",
        "homeport_roles": ["monitoring"],
        "homeport_state_dir": str(state),
        "_monitoring_paths": {"owner": pwd.getpwuid(os.getuid()).pw_name},
        "ansible_become": False,
        "ansible_connection": "local",
    }


def recap_changed(stdout: str) -> int:
    return int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", stdout).group(1))


@pytest.mark.parametrize("strategy", ["linear", "homeport"])
def test_check_records_the_drifted_tasks_and_is_not_drift_itself(tmp_path, monkeypatch, strategy):
    """``homeport``: the strategy the homeport runner uses (Mitogen through homeport_linear), as `homeport drift`."""
    if strategy == "homeport":
        from homeport.runner import mitogen_env

        env = mitogen_env()
        if not env:
            missing("Mitogen", "the runner would use ansible-core's linear strategy; make setup installs it")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    changes = 2
    state = tmp_path / "state"
    (state / "monitoring").mkdir(parents=True)
    proc = run_local_playbook(tmp_path, drift_playbook(tmp_path, changes), variables(state), ("--check", "--diff"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    record = json.loads((state / "monitoring" / "drift.json").read_text())
    assert record["changes"] == changes and record["mode"] == "check" and record["fixed"] == 0
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", record["last_check"])
    assert recap_changed(proc.stdout) == changes  # the record added no change of its own
    assert not list(tmp_path.glob("f*"))  # check mode: nothing else was written


def test_fix_records_a_clean_host(tmp_path):
    state = tmp_path / "state"
    (state / "monitoring").mkdir(parents=True)
    proc = run_local_playbook(tmp_path, drift_playbook(tmp_path, 3), variables(state))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    record = json.loads((state / "monitoring" / "drift.json").read_text())
    assert record["changes"] == 0 and record["fixed"] == 3 and record["mode"] == "fix"


def test_nothing_recorded_before_monitoring_is_set_up(tmp_path):
    state = tmp_path / "state"  # no monitoring state dir: the role has not run on this host yet
    proc = run_local_playbook(tmp_path, drift_playbook(tmp_path, 1), variables(state), ("--check",))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not state.exists()


def test_a_tag_limited_check_is_not_recorded(tmp_path):
    state = tmp_path / "state"
    (state / "monitoring").mkdir(parents=True)
    proc = run_local_playbook(tmp_path, drift_playbook(tmp_path, 1), variables(state), ("--check", "--tags", "x"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not (state / "monitoring" / "drift.json").exists()
