"""The real-Mac CI job (.github/workflows/macos.yml) against the tree it runs on: what it watches exists, the playbook
it runs is a verb's, the inventory it writes passes homeport's own checks, its idempotence gate really fails a second
run that changed something, and what it inspects on the Mac is what the colima role installs. Each of these breaks
when the tree moves under the workflow (a renamed role, playbook or variable), which a run on a Mac would only show
after a push."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from homeport import contract, inventory_check, roledocs

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "macos.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _steps() -> list[dict]:
    return load()["jobs"]["runtime"]["steps"]


def _step(name_start: str) -> str:
    (run,) = [s["run"] for s in _steps() if s.get("name", "").startswith(name_start)]
    return run


def test_yamllint_passes():
    r = subprocess.run(
        [sys.executable, "-m", "yamllint", "-s", "-c", str(ROOT / ".yamllint"), str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_paths_it_watches_exist():
    """A path filter naming a renamed directory would silently stop the job from running."""
    on = load().get("on") or load().get(True)  # PyYAML 1.1 reads the key `on` as True
    for trigger in ("push", "pull_request"):
        for pattern in on[trigger]["paths"]:
            base = pattern.split("*")[0].rstrip("/")
            assert (ROOT / base).exists(), f"{trigger}: {pattern} matches nothing in the tree"


def test_the_playbooks_it_runs_are_verbs_playbooks():
    runs = "\n".join(s.get("run", "") for s in _steps())
    used = set(re.findall(r"playbooks/([\w-]+\.yml)", runs))
    assert used, "the job runs no playbook"
    assert used <= {p.file for p in contract.PLAYBOOKS}, used


def _written_inventory(tmp_path: Path) -> Path:
    """The hosts.yml the job writes (its heredoc, with this machine's values for the shell substitutions)."""
    run = _step("Write an inventory")
    body = textwrap.dedent(run.split("<<EOF\n", 1)[1].split("\nEOF", 1)[0])
    body = body.replace("$PWD", str(tmp_path)).replace("$(id -un)", "runner")
    path = tmp_path / "hosts.yml"
    path.write_text(body + "\n", encoding="utf-8")
    return path


def test_the_inventory_it_writes_passes_homeports_checks(tmp_path):
    """No unknown (misspelled or removed) variable, and every role setting has the type its argument spec wants."""
    inventory = _written_inventory(tmp_path)
    assert inventory_check.check(inventory) == []
    host = yaml.safe_load(inventory.read_text())["homeport"]["hosts"]["localhost"]
    types = {"int": int, "float": (int, float), "str": str, "list": list, "bool": bool}
    for name, value in host.items():
        role = next((r for r in ("colima", "homebrew", "homeport") if name.startswith(f"{r}_")), None)
        if role is None:
            continue
        spec = roledocs.role_options(ROOT / "roles" / role)[name]
        assert isinstance(value, types[spec["type"]]), f"{name}: {value!r} is not a {spec['type']}"
        if spec.get("choices") and isinstance(value, list):
            assert set(value) <= set(spec["choices"]), name


@pytest.mark.parametrize(("changed", "code"), [(0, 0), (1, 1)])
def test_the_idempotence_gate_fails_a_second_run_that_changed_something(tmp_path, changed, code):
    """The step's own shell, with ansible-playbook replaced by one that prints a recap: changed=1 fails the job."""
    fake = tmp_path / ".venv" / "bin" / "ansible-playbook"
    fake.parent.mkdir(parents=True)
    recap = f"localhost                  : ok=30   changed={changed}    unreachable=0    failed=0    skipped=4"
    fake.write_text(f"#!/bin/sh\necho 'PLAY RECAP'\necho '{recap}'\n")
    fake.chmod(0o755)
    r = subprocess.run(
        ["bash", "-e", "-c", _step("Second run")], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert r.returncode == code, r.stdout + r.stderr
    if code:
        assert "not idempotent" in r.stdout


def test_what_it_inspects_on_the_mac_is_what_the_colima_role_installs():
    """The LaunchDaemon it lints and prints carries the role's label; the logs it keeps are in the role's log dir."""
    checks = _step("Check the result")
    defaults = roledocs.role_defaults(ROOT / "roles" / "colima")
    label = defaults["colima_launchd_label"]
    assert f"/Library/LaunchDaemons/{label}.plist" in checks
    assert f"system/{label}" in checks
    logs = next(s for s in _steps() if s.get("name") == "Keep the logs")["with"]["path"]
    role_vars = (ROOT / "roles" / "colima" / "vars" / "main.yml").read_text()
    (log_dir,) = re.findall(r"_colima_home ~ '(/Library/Logs/[^']+)'", role_vars)
    assert f"~{log_dir}/" in logs
