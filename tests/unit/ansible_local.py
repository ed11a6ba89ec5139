"""Run a playbook against localhost (local connection) with the checkout's roles and collection link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
# ansible-core's linear strategy with the plugin caches warmed before each worker forks (homeport.ansible_warm; about
# 10 % of the controller's CPU per task, bench/task_overhead.py): what a task does is unchanged
WARM_STRATEGY = {
    "ANSIBLE_STRATEGY_PLUGINS": str(ROOT / "src" / "homeport" / "ansible_plugins" / "strategy"),
    "ANSIBLE_STRATEGY": "homeport_warm",
}


def run_local_playbook(
    workdir: Path, text: str, variables: dict, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Write ``text`` as a playbook in ``workdir`` and run it with ``variables`` as extra vars (JSON) and
    ``extra_args`` (e.g. ``--check``, ``-vvv``); ``env`` adds to or overrides its environment (e.g. a callback)."""
    pb = workdir / "local-playbook.yml"
    pb.write_text(text, encoding="utf-8")
    run_env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_FORCE_COLOR": "0",
        **WARM_STRATEGY,
        **(env or {}),
    }
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", str(pb), "-e", json.dumps(variables), *extra_args],
        capture_output=True,
        text=True,
        env=run_env,
        cwd=workdir,
        check=False,
    )


def run_role_locally(
    workdir: Path, role: str, variables: dict, *, tasks_from: str | None = None, check: bool = True, timeout: int = 300
) -> tuple[subprocess.CompletedProcess, str]:
    """Run the whole role ``role`` (or its ``tasks_from`` file) on a local-connection host with ``variables`` as
    play vars, with -vv and, unless told otherwise, in check mode (a second safety net of the validation tests).
    Returns the process and its stdout + stderr."""
    collections = ROOT / ".cache" / "collections"
    (collections / "ansible_collections" / "homeport").mkdir(parents=True, exist_ok=True)
    link = collections / "ansible_collections" / "homeport" / "homeport"
    if not link.exists():
        link.symlink_to(ROOT)
    include = {"name": role} if tasks_from is None else {"name": role, "tasks_from": tasks_from}
    play = [
        {
            "name": f"{role} validation",
            "hosts": "local",
            "gather_facts": False,
            "vars": variables,
            "tasks": [{"name": "Run the role", "ansible.builtin.include_role": include}],
        }
    ]
    (workdir / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    inventory = {
        "all": {"hosts": {"local": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
    }
    (workdir / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_CONFIG": str(workdir / "none.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        **WARM_STRATEGY,
    }
    argv = [ANSIBLE_PLAYBOOK, "-i", str(workdir / "hosts.yml"), str(workdir / "play.yml"), "-vv"]
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=workdir, check=False)
    return proc, proc.stdout + proc.stderr


SSHD_DROPIN_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {root}/roles/hardening/defaults/main.yml
    - {root}/roles/hardening/vars/main.yml
  tasks:
    - ansible.builtin.template:
        src: {root}/roles/hardening/templates/100-homeport.conf.j2
        dest: "{{{{ out }}}}"
        mode: "0644"
"""


def render_sshd_dropin(workdir: Path, **variables) -> str:
    """The hardening role's sshd drop-in (100-homeport.conf.j2) as its template task renders it, for the admin user
    ``admin`` unless ``variables`` say otherwise; written to ``workdir``/100-homeport.conf and returned."""
    out = workdir / "100-homeport.conf"
    base = {"hardening_ssh_allow_users": ["admin"], "homeport_admin_user": "admin"}
    r = run_local_playbook(workdir, SSHD_DROPIN_PLAY.format(root=ROOT), {"out": str(out), **base, **variables})
    assert r.returncode == 0, r.stdout + r.stderr
    return out.read_text(encoding="utf-8")


def validation_task_names(role: str) -> set[str]:
    """The names of the tasks that validate ``role``: every task of its tasks/validate.yml (blocks included) and
    main.yml's task that includes that file (a task itself: it is skipped in one step when the preflight ran it).
    A run stopped in validation shows no other task of the role."""
    tasks = ROOT / "roles" / role / "tasks"

    def names(items: list[dict]) -> set[str]:
        found = set()
        for task in items or []:
            found.add(task["name"])
            found |= names(task.get("block", []))
        return found

    main = yaml.safe_load((tasks / "main.yml").read_text(encoding="utf-8"))
    includes = {t["name"] for t in main if t.get("ansible.builtin.include_tasks") == "validate.yml"}
    return names(yaml.safe_load((tasks / "validate.yml").read_text(encoding="utf-8"))) | includes
