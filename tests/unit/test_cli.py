"""The CLI surface: verbs, help, exit codes, inventory resolution; `homeport status` for real on this machine."""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pytest
from conftest import write_local_inventory
from typer.testing import CliRunner

from homeport import cli, contract, events
from homeport.cli import app

VERBS = ["init", "doctor", "bootstrap", "drift", "deploy", "rollback", "backup", "status", "sandbox"]
VERBS += ["ps", "logs", "exec", "restart"]  # the quick verbs (issue 18)
VERBS += ["audit"]  # independent security checks (issue 21)
VERBS += ["connect", "tunnel"]  # the laptop side of the Mac journey (issue 15)
VERBS += ["report"]  # the plan's targets, measured (issue 30)


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_help_lists_all_nine_verbs_and_exit_codes():
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0
    out = _plain(r.output)
    listed = re.findall(r"^\s{2}(\w+)\s", out.split("Commands:")[1], flags=re.M)
    assert sorted(listed) == sorted(VERBS)
    for code in ("0 ok", "1 failure", "2 drift", "3 invalid input", "4 a host was unreachable"):
        assert code in " ".join(out.split())


def test_subcommands():
    out = _plain(CliRunner().invoke(app, ["backup", "--help"]).output)
    for sub in ("run", "list", "check", "restore", "verify"):
        assert re.search(rf"^\s+{sub}\s", out, flags=re.M), sub
    out = _plain(CliRunner().invoke(app, ["sandbox", "--help"]).output)
    for sub in ("up", "down", "ssh"):
        assert re.search(rf"^\s+{sub}\s", out, flags=re.M), sub


def test_usage_error_exits_3():
    assert CliRunner().invoke(app, ["bootstrap", "--no-such-option"]).exit_code == 3
    assert CliRunner().invoke(app, ["no-such-verb"]).exit_code == 3
    assert CliRunner().invoke(app, ["sandbox", "up", "--release", "11"]).exit_code == 3


def test_missing_inventory_tells_what_to_do(project):
    r = CliRunner().invoke(app, ["bootstrap"])
    assert r.exit_code == 3
    assert "homeport init" in _plain(r.output) and "--sandbox" in _plain(r.output)
    r = CliRunner().invoke(app, ["status", "--sandbox"])
    assert r.exit_code == 3 and "sandbox up" in _plain(r.output)
    r = CliRunner().invoke(app, ["deploy", "-i", "nowhere.yml"])
    assert r.exit_code == 3


def test_status_json_for_real(project):
    write_local_inventory(project)
    r = CliRunner().invoke(app, ["status", "-i", "hosts.yml", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    status = doc["stats"]["homeport_status"]["local"]
    assert status["memory"]["budget_mb"] == 14 * 1024
    assert status["memory"]["total_mb"] > 0
    assert 0 <= status["disk"]["use_percent"] <= 100
    assert doc["recap"]["local"]["failed"] == 0 and doc["recap"]["local"]["changed"] == 0


def test_status_table(project):
    write_local_inventory(project)
    r = CliRunner().invoke(app, ["status", "-i", "hosts.yml"])
    assert r.exit_code == 0, r.output
    out = _plain(r.output)
    assert "Recap" in out and "Status" in out and "14336" in out, out


def test_doctor_json_reports_local_checks(project, monkeypatch):
    r = CliRunner().invoke(app, ["doctor", "--json"])
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["ansible-core"]["status"] == "ok"
    assert checks["ansible-runner"]["status"] == "ok"
    assert checks["inventory"]["status"] == "warn"
    assert r.exit_code == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)


def test_doctor_reports_unreachable_host(project):
    (project / "inventory").mkdir()
    (project / "inventory" / "hosts.yml").write_text(
        "homeport:\n  hosts:\n    gone:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n"
    )
    r = CliRunner().invoke(app, ["doctor", "--json"])
    assert r.exit_code == 1
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["gone: SSH"]["status"] == "fail"
    assert checks["gone: SSH"]["fix"]


# -- every verb that runs a playbook goes through cli.execute (issue 20) ------------------------------------------
# drift: the playbook is `--deep` (plain `homeport drift` reads the host-state record over one SSH call, issue 29)
VERB_ARGS = {
    "deploy": ["deploy", "api"],
    "backup restore": ["backup", "restore", "--target", "/srv/r"],
    "drift": ["drift", "--deep"],
}


@pytest.mark.parametrize(("playbook", "verb"), [(p.file, v) for p in contract.PLAYBOOKS for v in p.verbs], ids=str)
def test_every_playbook_verb_goes_through_execute(monkeypatch, tmp_path, playbook, verb):
    """The verb runs its contract playbook through execute() (one path: inventory check, progress, report, exit
    code); a verb that called run_playbook itself would bypass it and fail here."""
    seen: list[tuple[str, dict]] = []

    def fake_execute(pb, inventory, sandbox, **kwargs):
        seen.append((pb, kwargs))
        return events.RunRecord(status="successful")

    def bypass(*_args, **_kwargs):
        raise AssertionError(f"{verb} called run_playbook without execute()")

    monkeypatch.setattr(cli, "execute", fake_execute)
    monkeypatch.setattr(cli, "run_playbook", bypass)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("homeport:\n  hosts: {}\n")
    args = VERB_ARGS.get(verb, verb.split())
    r = CliRunner().invoke(app, [*args, "-i", str(inventory)])
    assert r.exit_code == 0, r.output
    assert [pb for pb, _ in seen] == [playbook]
    extravars = seen[0][1].get("extravars") or {}
    if verb == "deploy":
        assert extravars == {contract.STACK_SERVICES_SELECTED.name: ["api"]}
    if verb.startswith("backup "):
        assert extravars[contract.BACKUP_ACTION.name] == verb.split()[1]
    if verb == "backup restore":
        assert extravars[contract.BACKUP_RESTORE_TARGET.name] == "/srv/r"
        assert extravars[contract.BACKUP_RESTORE_SNAPSHOT.name] == "latest"


def test_execute_has_one_report_per_verb_and_no_drift_switch():
    """The second drift renderer is gone: execute() takes the verb's report, events.render_result only the recap."""
    assert "drift" not in inspect.signature(cli.execute).parameters
    assert "drift" not in inspect.signature(events.render_result).parameters
    assert "drift" not in inspect.signature(events.print_json).parameters


def test_each_option_is_declared_once():
    """Shared options (--inventory, --limit, --json, --release, ...) are Annotated aliases used by every verb: an
    option spelled again inline could drift from the others (another help text, another short flag)."""
    tree = ast.parse(Path(cli.__file__).read_text(encoding="utf-8"))
    flags = [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "Option"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]
    assert "--inventory" in flags
    assert sorted(f for f in set(flags) if flags.count(f) > 1) == []
