"""The CLI <-> playbook contract (src/homeport/contract.py) checked against the other side: each extravar the CLI
passes is declared by the role that reads it (meta/argument_specs.yml) or read by its playbook or task file, the
playbooks are exactly the contract's, they start with the preflight role, the set_stats key the CLI reads is the one
the status tasks publish; and the CLI modules spell none of these names themselves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from homeport import contract, roledocs

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
ROLES = ROOT / "roles"


def _reads(text: str, name: str) -> bool:
    """The Jinja or YAML text uses the variable ``name`` (as a whole word)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text) is not None


@pytest.mark.parametrize("var", contract.EXTRAVARS, ids=lambda v: v.name)
def test_every_extravar_has_a_reader(var: contract.ExtraVar):
    assert sum(x is not None for x in (var.role, var.playbook, var.tasks)) == 1, var
    if var.role:
        options = roledocs.role_options(ROLES / var.role)
        assert var.name in options, f"{var.name}: not in roles/{var.role}/meta/argument_specs.yml"
    elif var.playbook:
        assert _reads((PLAYBOOKS / var.playbook).read_text(), var.name), f"{var.name}: playbooks/{var.playbook}"
    else:
        role, file = str(var.tasks).split("/", 1)
        assert _reads((ROLES / role / "tasks" / file).read_text(), var.name), f"{var.name}: roles/{role}/tasks/{file}"


def test_backup_actions_are_the_backup_roles_choices():
    """Each `homeport backup ACTION` is a value the backup role accepts; backup.yml hands the extravar over."""
    choices = roledocs.role_options(ROLES / "backup")["backup_action"]["choices"]
    assert set(contract.BACKUP_ACTIONS) <= set(choices)
    play = yaml.safe_load((PLAYBOOKS / contract.BACKUP.file).read_text())[0]
    assert contract.BACKUP_ACTION.name in play["vars"]["backup_action"]


def test_stack_action_is_set_by_deploy_and_rollback_within_the_roles_choices():
    choices = roledocs.role_options(ROLES / "stack")[contract.STACK_ACTION]["choices"]
    for playbook, action in contract.STACK_ACTIONS.items():
        assert action in choices
        text = (PLAYBOOKS / playbook).read_text()
        assert re.search(rf"{contract.STACK_ACTION}: {action}\b", text), f"{playbook} must set stack_action {action}"


def test_the_playbooks_are_the_contracts_and_each_starts_with_the_preflight():
    """No playbook without a verb (restore.yml, bootstrap.yml, preflight.yml were not wired and are gone)."""
    files = {p.name for p in PLAYBOOKS.glob("*.yml")}
    assert files == {p.file for p in contract.PLAYBOOKS}
    for playbook in contract.PLAYBOOKS:
        text = (PLAYBOOKS / playbook.file).read_text()
        plays = yaml.safe_load(text)
        if "import_playbook" in str(plays[0]) or "ansible.builtin.import_playbook" in plays[0]:
            continue  # drift.yml = site.yml
        for play in plays:
            assert play["hosts"] == "{{ " + contract.TARGET_HOSTS + " | default('homeport') }}", playbook.file
            first = play["roles"][0]
            assert first["role"] == contract.PREFLIGHT_ROLE, f"{playbook.file}: the preflight must come first"


def test_roles_of_the_contract_exist_and_the_preflight_depends_on_homeport():
    for role in (contract.HOMEPORT_ROLE, contract.PREFLIGHT_ROLE):
        assert (ROLES / role / "meta" / "argument_specs.yml").is_file(), role
    meta = yaml.safe_load((ROLES / contract.PREFLIGHT_ROLE / "meta" / "main.yml").read_text())
    assert [d["role"] for d in meta["dependencies"]] == [contract.HOMEPORT_ROLE]
    assert {contract.HOMEPORT_ROLE, contract.PREFLIGHT_ROLE} == contract.VALIDATION_ROLES


def _set_stats_keys(tasks: object) -> set[str]:
    found: set[str] = set()
    stack = [tasks]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack += item
        elif isinstance(item, dict):
            stats = item.get("ansible.builtin.set_stats")
            if isinstance(stats, dict):
                found |= set(stats.get("data") or {})
            stack += [v for v in item.values() if isinstance(v, list | dict)]
    return found


def test_the_status_stat_is_published_by_the_status_tasks():
    keys = set()
    for tasks in (ROLES / contract.HOMEPORT_ROLE / "tasks").glob("*.yml"):
        keys |= _set_stats_keys(yaml.safe_load(tasks.read_text()))
    assert contract.STATUS_STAT in keys


# the modules that talk to the playbooks take every contract name from homeport.contract
CLI_MODULES = ["cli.py", "runner.py", "status.py", "drift.py", "events.py"]


def _contract_names() -> set[str]:
    names = {v.name for v in contract.EXTRAVARS} | {contract.STATUS_STAT, contract.STACK_ACTION}
    names |= {p.file for p in contract.PLAYBOOKS} | {contract.PREFLIGHT_ROLE}
    return names


@pytest.mark.parametrize("module", CLI_MODULES)
def test_cli_modules_spell_no_contract_name(module: str):
    """A string literal (not a docstring) equal to a contract name in these modules is a second copy of it."""
    tree = ast.parse((ROOT / "src" / "homeport" / module).read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    names = _contract_names()
    spelled = sorted(
        {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and id(node) not in docstrings and node.value in names
        }
    )
    assert not spelled, f"src/homeport/{module} spells {spelled}: use homeport.contract"


def test_backup_vars_refuse_an_unknown_action():
    with pytest.raises(ValueError, match="backup action 'nap'"):
        contract.backup_vars("nap")
    assert contract.backup_vars("restore", snapshot="latest", target="/r") == {
        contract.BACKUP_ACTION.name: "restore",
        contract.BACKUP_RESTORE_SNAPSHOT.name: "latest",
        contract.BACKUP_RESTORE_TARGET.name: "/r",
    }


def test_pre_commit_runs_exactly_the_lint_targets_of_make_lint():
    """The other contract of the tree: a commit hook and `make lint` cannot drift apart (a check added to one only)."""
    makefile = (ROOT / "Makefile").read_text()
    (prereqs,) = re.findall(r"^lint: (.+)$", makefile, flags=re.M)
    targets = [t for t in prereqs.split() if t != "setup"]
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"Makefile has no target {target}"
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    assert sorted(h["entry"] for h in hooks) == sorted(f"make {t}" for t in targets)
    assert all(h["language"] == "system" and h["pass_filenames"] is False for h in hooks)
