"""homeport.homeport.copy/template: the builtin's behaviour with one remote call fewer for a file that is right.

The pure decision (plugin_utils/unchanged_file.unchanged_result) case by case, then the actions for real on
localhost: the second run changes nothing and makes no `file` call, drift in mode is reported by the drift check
and repaired, and what the shortcut cannot judge (a symbolic mode) still goes to the file module.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ansible_local import ROOT, run_local_playbook

sys.path.insert(0, str(ROOT / "plugins" / "plugin_utils"))
from unchanged_file import unchanged_result, wanted_mode

STAT = {
    "exists": True,
    "isreg": True,
    "islnk": False,
    "path": "/etc/x.conf",
    "mode": "0640",
    "uid": 0,
    "gid": 4,
    "pw_name": "root",
    "gr_name": "adm",
    "size": 12,
}
ARGS = {"dest": "/etc/x.conf", "_original_basename": "x.conf", "recurse": False, "state": "file"}


@pytest.mark.parametrize(
    ("mode", "bits"),
    [("0640", 0o640), ("640", 0o640), ("2755", 0o2755), (0o640, 0o640), ("u=rw,g=r", None), ("preserve", None),
     (True, None), ("0999", None)],
)  # fmt: skip
def test_wanted_mode(mode, bits):
    assert wanted_mode(mode) == bits


@pytest.mark.parametrize(
    "extra",
    [{}, {"mode": "0640"}, {"mode": 0o640}, {"owner": "root", "group": "adm"}, {"owner": "0", "group": "4"},
     {"owner": "root", "group": "adm", "mode": "640", "unsafe_writes": False, "force": True}, {"seuser": None}],
)  # fmt: skip
def test_nothing_to_do_is_answered_from_the_stat(extra):
    result = unchanged_result({**ARGS, **extra}, STAT)
    assert result is not None
    assert result["changed"] is False
    assert (result["path"], result["owner"], result["group"], result["mode"]) == ("/etc/x.conf", "root", "adm", "0640")


@pytest.mark.parametrize(
    ("extra", "stat_change"),
    [
        ({"mode": "0600"}, {}),  # wrong mode
        ({"owner": "bench"}, {}),  # wrong owner
        ({"group": "root"}, {}),  # wrong group
        ({"mode": "u=rw,g=r"}, {}),  # symbolic: the module decides
        ({"setype": "etc_t"}, {}),  # SELinux context asked for
        ({"attributes": "+i"}, {}),  # file attributes asked for
        ({"follow": True}, {}),  # the module would follow a link
        ({"state": "touch"}, {}),
        ({}, {"exists": False}),
        ({}, {"isreg": False}),  # a directory
        ({}, {"islnk": True}),
        ({"mode": "0640"}, {"mode": "weird"}),
    ],
)
def test_anything_else_goes_to_the_file_module(extra, stat_change):
    assert unchanged_result({**ARGS, **extra}, {**STAT, **stat_change}) is None


def test_no_stat_goes_to_the_file_module():
    assert unchanged_result(ARGS, None) is None


PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Template
      homeport.homeport.template:
        src: "{{ src }}"
        dest: "{{ dir }}/a.conf"
        owner: "{{ me }}"
        group: "{{ my_group }}"
        mode: "0640"
    - name: Copy
      homeport.homeport.copy:
        content: "x = 1\\n"
        dest: "{{ dir }}/b.conf"
        mode: "0600"
    - name: Copy with a symbolic mode
      homeport.homeport.copy:
        content: "y = 2\\n"
        dest: "{{ dir }}/c.conf"
        mode: "u=rw,go=r"
"""


def _recap(out: str) -> dict[str, int]:
    m = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out)
    assert m, out
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()), strict=True))


def _modules_run(out: str) -> dict[str, list[str]]:
    """Per task, the modules executed (from -vvv: each AnsiballZ_<module>.py run)."""
    runs: dict[str, list[str]] = {}
    task = None
    for line in out.splitlines():
        if m := re.match(r"TASK \[(.+?)\]", line):
            task = m.group(1)
            runs[task] = []
        elif task and (m := re.search(r"EXEC .*python\S*\s+\S*AnsiballZ_(\w+)\.py", line)):
            runs[task].append(m.group(1))
    return runs


def test_actions_for_real(tmp_path):
    src = tmp_path / "a.conf.j2"
    src.write_text("{{ ansible_managed | comment }}\nname = {{ name }}\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    variables = {
        "src": str(src),
        "dir": str(out_dir),
        "name": "first",
        "me": pwd.getpwuid(os.getuid()).pw_name,
        "my_group": grp.getgrgid(os.getgid()).gr_name,
    }

    first = run_local_playbook(tmp_path, PLAYBOOK, variables)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _recap(first.stdout)["changed"] == 3
    assert (out_dir / "a.conf").read_text().endswith("name = first\n")
    assert oct((out_dir / "a.conf").stat().st_mode & 0o7777) == "0o640"

    # nothing to do: no file call where the stat says all is right; the symbolic mode still asks the module
    again = run_local_playbook(tmp_path, PLAYBOOK, variables, ("-vvv",))
    assert again.returncode == 0, again.stdout + again.stderr
    assert _recap(again.stdout)["changed"] == 0
    modules = _modules_run(again.stdout)
    assert modules["Template"] == ["stat"]
    assert modules["Copy"] == ["stat"]
    assert modules["Copy with a symbolic mode"] == ["stat", "file"]

    # drift in mode: the drift check reports it with a diff, the rerun repairs it, then all is quiet again
    (out_dir / "a.conf").chmod(0o644)
    check = run_local_playbook(tmp_path, PLAYBOOK, variables, ("--check", "--diff"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert _recap(check.stdout)["changed"] == 1
    assert '-    "mode": "0644"' in check.stdout and '+    "mode": "0640"' in check.stdout
    assert oct((out_dir / "a.conf").stat().st_mode & 0o7777) == "0o644"  # check mode changed nothing
    fix = run_local_playbook(tmp_path, PLAYBOOK, variables)
    assert _recap(fix.stdout)["changed"] == 1
    assert oct((out_dir / "a.conf").stat().st_mode & 0o7777) == "0o640"

    # drift in content: rewritten, as the builtin does
    variables["name"] = "second"
    changed = run_local_playbook(tmp_path, PLAYBOOK, variables)
    assert _recap(changed.stdout)["changed"] == 1
    assert (out_dir / "a.conf").read_text().endswith("name = second\n")
    assert _recap(run_local_playbook(tmp_path, PLAYBOOK, variables).stdout)["changed"] == 0
