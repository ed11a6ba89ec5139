"""The real-Mac CI job (.github/workflows/macos.yml): valid YAML with the structure the runtime roles rely on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "macos.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def test_yamllint_passes():
    r = subprocess.run(
        [sys.executable, "-m", "yamllint", "-s", "-c", str(ROOT / ".yamllint"), str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_triggers_and_permissions():
    wf = load()
    on = wf.get("on", wf.get(True))  # PyYAML 1.1 reads the key `on` as True
    assert {"push", "pull_request", "workflow_dispatch"} <= set(on)
    assert wf["permissions"] == {"contents": "read"}


def test_job_runs_on_apple_silicon_macos():
    job = load()["jobs"]["runtime"]
    assert job["runs-on"] == "macos-14"
    assert 10 <= job["timeout-minutes"] <= 120


def _steps() -> list[dict]:
    return load()["jobs"]["runtime"]["steps"]


def test_installs_the_package_and_writes_a_local_inventory():
    runs = "\n".join(s.get("run", "") for s in _steps())
    assert "pip install ." in runs
    assert "ansible_connection: local" in runs
    assert "homeport_roles: [runtime]" in runs
    uses = [s.get("uses", "") for s in _steps()]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)


def test_runs_the_bootstrap_twice_and_requires_changed_0():
    runs = [s.get("run", "") for s in _steps()]
    playbook_runs = [r for r in runs if re.search(r"ansible-playbook .*playbooks/site\.yml", r.replace("\\\n", " "))]
    assert len(playbook_runs) == 2, "first run + second run"
    second = playbook_runs[1]
    assert "changed=0" in second and "exit 1" in second
    assert "pipefail" in second, "a failing ansible-playbook must fail the step despite tee"


def test_checks_launchd_plist_and_docker_on_the_mac():
    runs = "\n".join(s.get("run", "") for s in _steps())
    assert "plutil -lint /Library/LaunchDaemons/com.homeport.colima.plist" in runs
    assert "launchctl print system/com.homeport.colima" in runs
    assert "docker compose version" in runs
