"""Static checks every role must pass: argument_specs and defaults in sync, naming, templates, docs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from homeport import roledocs

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir()) if (ROOT / "roles").is_dir() else []
ROLE_IDS = [p.name for p in ROLES]


def _yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def test_there_are_roles():
    assert {"homeport", "homebrew", "colima", "docker_engine", "tailscale", "hardening", "stack", "backup"} <= set(
        ROLE_IDS
    )


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_defaults_match_argument_specs(role: Path):
    defaults = set(_yaml(role / "defaults" / "main.yml")) if (role / "defaults" / "main.yml").exists() else set()
    specs = roledocs.role_options(role)
    assert (role / "meta" / "argument_specs.yml").exists(), f"{role.name}: meta/argument_specs.yml missing"
    only_defaults = sorted(defaults - set(specs))
    only_specs = sorted(k for k in set(specs) - defaults if not (specs[k] or {}).get("required"))
    assert not only_defaults, f"{role.name}: in defaults/main.yml but not in argument_specs: {only_defaults}"
    assert not only_specs, f"{role.name}: in argument_specs (not required) but not in defaults: {only_specs}"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_public_variables_are_prefixed(role: Path):
    prefix = f"{role.name}_"
    for name, spec in roledocs.role_options(role).items():
        assert name.startswith(prefix), f"{role.name}: public variable {name} must start with {prefix}"
        assert (spec or {}).get("description"), f"{role.name}: {name} has no description in argument_specs"
        assert (spec or {}).get("type"), f"{role.name}: {name} has no type in argument_specs"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_internal_vars_are_underscored(role: Path):
    vars_file = role / "vars" / "main.yml"
    if not vars_file.exists():
        pytest.skip("no vars/main.yml")
    for name in _yaml(vars_file):
        assert name.startswith(f"_{role.name}_"), f"{role.name}: internal variable {name} must start with _{role.name}_"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_templates_start_with_ansible_managed(role: Path):
    for tpl in sorted((role / "templates").rglob("*.j2")) if (role / "templates").is_dir() else []:
        head = tpl.read_text(encoding="utf-8")[:400]
        if tpl.name.endswith(".json.j2"):
            continue  # JSON cannot hold a comment
        assert "ansible_managed" in head, f"{tpl.relative_to(ROOT)} must start with the ansible_managed comment"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_main_only_dispatches(role: Path):
    main = role / "tasks" / "main.yml"
    assert main.exists()
    for task in _yaml(main) if isinstance(_yaml(main), list) else []:
        keys = {k for k in task if k not in {"name", "when", "tags", "vars", "no_log", "become", "block", "rescue"}}
        allowed = {
            "ansible.builtin.include_tasks",
            "ansible.builtin.import_tasks",
            "ansible.builtin.include_role",
            "ansible.builtin.meta",
        }
        if "block" in task:
            continue
        assert keys & allowed, f"{role.name}: tasks/main.yml should only dispatch, found {sorted(keys)}"


def test_role_readmes_are_generated_from_argument_specs():
    assert roledocs.main(["--roles", str(ROOT / "roles"), "--check"]) == 0, "run `make role-docs`"


def _tasks(node):
    """Every task of a task file, blocks/rescue/always included."""
    for task in node or []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from _tasks(task.get(key))


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_package_downloads_retry(role: Path):
    """Every apt task that downloads (installs a package or refreshes the lists) retries: a mirror that fails
    for a moment - a sync, a dropped connection on a home uplink - must not fail a whole bootstrap."""
    for path in sorted((role / "tasks").glob("*.yml")):
        for task in _tasks(_yaml(path)):
            args = task.get("ansible.builtin.apt")
            if not isinstance(args, dict) or args.get("state", "present") == "absent":
                continue
            if "name" not in args and not args.get("update_cache"):
                continue
            where = f"{path.relative_to(ROOT)}: {task.get('name')}"
            assert task.get("retries", 0) >= 3 and task.get("delay", 0) >= 5, f"{where} does not retry"
            assert task.get("until") == f"{task.get('register')} is succeeded", f"{where}: until must test its result"
