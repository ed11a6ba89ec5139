"""Issue 14: the inventory is read by homeport before anything runs: YAML errors with file:line:column, and
variables with a homeport prefix that no role declares (a typo) refused with a suggestion, exit 3."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PLAYBOOKS, write_local_inventory
from rich.console import Console
from typer.testing import CliRunner

from homeport import cli, events, inventory_check

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    write(tmp_path / "inv" / "hosts.yml", "homeport:\n  hosts:\n    mini:\n      ansible_host: mini.tail\n")
    return tmp_path / "inv" / "hosts.yml"


def test_the_example_inventory_is_clean():
    assert inventory_check.check(ROOT / "inventory" / "example" / "hosts.yml") == []


def test_a_misspelled_stack_services_is_refused_with_a_suggestion(inv):
    write(inv.parent / "group_vars" / "homeport" / "main.yml", "homeport_memory_budget: 12g\nstack_service: {}\n")
    (problem,) = inventory_check.check(inv)
    assert problem.error
    assert str(problem).endswith(
        "main.yml:2: stack_service is not a variable of any homeport role; did you mean stack_services?"
        " (set homeport_unknown_variables: warn to allow it)"
    )


def test_a_misspelled_host_variable_names_the_inventory_line(inv):
    write(inv, "homeport:\n  hosts:\n    mini:\n      ansible_host: mini.tail\n      hardening_fail2ban_maxretri: 3\n")
    (problem,) = inventory_check.check(inv)
    assert problem.where == f"{inv}:5"
    assert "did you mean hardening_fail2ban_maxretry?" in problem.message


def test_names_the_configuration_refers_to_are_known(inv):
    # a vault variable of the user's own service, named under secrets, and non-homeport variables
    write(
        inv.parent / "group_vars" / "all.yml",
        "stack_services_extra:\n  app:\n    secrets: {APP_TOKEN: stack_app_token}\n"
        "stack_app_token: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3030\nmy_var: 1\nansible_user: admin\n",
    )
    assert inventory_check.check(inv) == []


def test_a_vault_encrypted_file_is_skipped(inv):
    write(inv.parent / "group_vars" / "homeport" / "vault.yml", "$ANSIBLE_VAULT;1.1;AES256\n61626364\n")
    assert inventory_check.check(inv) == []


def test_yaml_errors_name_file_line_and_column(inv):
    bad = write(inv.parent / "group_vars" / "homeport" / "main.yml", "backup_keep_daily: 7\nstack_services: [1,\n")
    (problem,) = inventory_check.check(inv)
    assert problem.where == f"{bad}:3:1"
    assert "invalid YAML" in problem.message


@pytest.mark.parametrize("how", ["inventory", "env"])
def test_the_switch_makes_it_a_warning(inv, monkeypatch, how):
    text = "stack_service: {}\n"
    if how == "inventory":
        text += "homeport_unknown_variables: warn\n"
    else:
        monkeypatch.setenv(inventory_check.SWITCH_ENV, "warn")
    write(inv.parent / "group_vars" / "homeport.yml", text)
    (problem,) = inventory_check.check(inv)
    assert not problem.error


def test_a_refused_inventory_runs_nothing_and_exits_3(project, monkeypatch):
    marker = project / "marker"
    inventory = write_local_inventory(project, {"marker_path": str(marker), "stack_servics": {}})
    console = Console(record=True, width=200, force_terminal=False)
    monkeypatch.setattr(cli, "console", console)
    with pytest.raises(cli.typer.Exit) as exc:
        cli.execute(str(PLAYBOOKS / "preflight_marker.yml"), inventory, False)
    assert exc.value.exit_code == events.EXIT_INVALID
    assert not marker.exists()
    assert "stack_servics is not a variable of any homeport role; did you mean stack_services?" in console.export_text()


@pytest.mark.parametrize("verb", [["drift"], ["bootstrap"]])
def test_drift_and_bootstrap_report_a_misspelled_variable(project, verb):
    inventory = write_local_inventory(project, {"hardening_ssh_port": 22, "stack_keep_release": 3})
    r = CliRunner().invoke(cli.app, [*verb, "--inventory", str(inventory)])
    assert r.exit_code == events.EXIT_INVALID, r.output
    text = " ".join(r.output.replace("\n", "").split())  # the console wraps long lines
    assert "stack_keep_release is not a variable of any homeport role; did you mean stack_keep_releases?" in text


def test_every_role_is_covered_the_preflight_included(inv):
    """The known names and prefixes come from every role's argument_specs: the global homeport_* settings (role
    homeport) are known, a preflight_* variable is a typo (the preflight role has no variables of its own), and so is
    homeport_action, which the status gatherer no longer reads (playbooks/status.yml uses tasks_from: status)."""
    known, prefixes = inventory_check.declared_variables(ROOT / "roles")
    roles = {p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file()}
    assert {f"{r}_" for r in roles} <= prefixes and "preflight" in roles
    assert {"homeport_memory_budget", "homeport_roles", "homeport_unknown_variables"} <= known
    write(inv.parent / "group_vars" / "homeport.yml", "preflight_roles: [stack]\nhomeport_action: status\n")
    problems = inventory_check.check(inv)
    assert [p.message.split(" is not")[0] for p in problems] == ["preflight_roles", "homeport_action"]
    assert all(p.error for p in problems)
