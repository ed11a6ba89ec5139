"""The firewall lockout guard's source address (plugins/modules/hardening_ssh_client.py): sshd's SSH_CONNECTION from
the module's environment, else from the nearest parent process that has it (a run under sudo, whose env_reset drops
it), read from a fake /proc; and the module once through ansible on localhost. The CLI row of docs/validation.md
(tests/unit/test_preflight_rules.py::HOST_RULES "hardening-firewall-source") proves the guard over a real SSH
connection with the inventory's ansible_become: true, where the old `printenv` under sudo found nothing and the
guard was skipped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ansible_local import ROOT, run_local_playbook

sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible_collections.homeport.homeport.plugins.modules import hardening_ssh_client as m

SESSION = "192.168.1.20 51234 192.168.1.5 22"


def fake_proc(root: Path, table: dict[int, tuple[int, str, dict[str, str] | None]]) -> str:
    """table: pid -> (ppid, command, environ or None for an unreadable environ, as without CAP_SYS_PTRACE)."""
    for pid, (ppid, comm, env) in table.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        # the command may hold spaces and parentheses: the parser must take the fields after the LAST ')'
        (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0\n")
        if env is not None:
            (d / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))
    return str(root)


def test_the_modules_own_environment_comes_first(tmp_path):
    assert m.ssh_connection({"SSH_CONNECTION": SESSION}, 99, str(tmp_path)) == (SESSION, "environment")


def test_under_sudo_the_session_is_found_in_a_parent(tmp_path):
    proc = fake_proc(
        tmp_path,
        {
            300: (200, "python3", {"PATH": "/usr/bin", "SUDO_USER": "admin"}),  # the module, after sudo's env_reset
            200: (150, "sudo", {"SSH_CONNECTION": SESSION, "USER": "admin"}),  # sudo kept the session's environment
            150: (1, "sshd-session: admin@notty", None),
        },
    )
    assert m.ssh_connection({"SUDO_USER": "admin"}, 300, proc) == (SESSION, "pid 200")


def test_an_odd_command_name_does_not_break_the_parent_lookup(tmp_path):
    proc = fake_proc(
        tmp_path,
        {
            300: (250, "py (worker) 2", {}),
            250: (200, "sh", {}),
            200: (1, "sudo", {"SSH_CONNECTION": SESSION}),
        },
    )
    assert m.ssh_connection({}, 300, proc) == (SESSION, "pid 200")


def test_not_over_ssh_or_unreadable_parents_find_nothing(tmp_path):
    proc = fake_proc(tmp_path, {300: (200, "python3", {}), 200: (1, "sudo", None)})
    assert m.ssh_connection({"SSH_CONNECTION": "  "}, 300, proc) == ("", "none")
    assert m.ssh_connection({}, 4242, str(tmp_path / "no-proc")) == ("", "none")


def test_a_loop_in_the_process_table_ends(tmp_path):
    proc = fake_proc(tmp_path, {300: (200, "a", {}), 200: (300, "b", {})})
    assert m.ssh_connection({}, 300, proc) == ("", "none")


def test_the_module_through_ansible(tmp_path):
    proc = fake_proc(tmp_path / "proc", {})
    play = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Read where this SSH connection comes from
      homeport.homeport.hardening_ssh_client:
        proc_root: "{{ proc }}"
      environment:
        SSH_CONNECTION: "{{ session }}"
      register: r
      check_mode: true
    - name: Show it
      ansible.builtin.debug:
        msg: "RESULT {{ r | to_json }}"
"""
    res = run_local_playbook(tmp_path, play, {"proc": proc, "session": SESSION})
    assert res.returncode == 0, res.stdout + res.stderr
    line = next(x for x in res.stdout.splitlines() if "RESULT " in x)
    out = json.loads(line.split("RESULT ", 1)[1].rstrip('"').replace('\\"', '"'))
    assert (out["found"], out["client"], out["source"], out["changed"]) == (True, "192.168.1.20", "environment", False)


def test_every_module_documents_itself_in_valid_yaml():
    """ansible-doc and ansible-lint read DOCUMENTATION / RETURN as YAML: a `key: value` inside a plain description
    line (this module's first version had one) makes the whole block unreadable."""
    import ast

    import yaml

    for path in sorted((ROOT / "plugins" / "modules").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        blocks = {
            t.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for t in node.targets
            if isinstance(t, ast.Name) and t.id in ("DOCUMENTATION", "RETURN")
        }
        assert set(blocks) == {"DOCUMENTATION", "RETURN"}, f"{path.name}: {sorted(blocks)}"
        for name, text in blocks.items():
            assert isinstance(yaml.safe_load(text), dict), f"{path.name}: {name} is not a YAML mapping"
        assert yaml.safe_load(blocks["DOCUMENTATION"])["module"] == path.stem, path.name
