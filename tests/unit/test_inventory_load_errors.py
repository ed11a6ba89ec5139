"""Issue 27, finding 8c: an inventory that does not load (here: a YAML tag Ansible does not know, ``foo: !bogus x``)
makes every verb that loads the inventory itself (ps, logs, exec, restart, connect, tunnel, audit) exit 3 with a
message naming the file, line and problem, never a traceback; the playbook verbs refuse it the same way before
ansible-playbook starts (homeport.inventory_check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from homeport import inventory_check, quick
from homeport.cli import app

HOSTS = "homeport:\n  hosts:\n    mini:\n      ansible_host: 10.0.0.5\n"


def _inventory(tmp_path: Path, where: str) -> Path:
    inv = tmp_path / "inventory"
    (inv / "group_vars" / "homeport").mkdir(parents=True)
    if where == "group_vars":
        (inv / "hosts.yml").write_text(HOSTS)
        (inv / "group_vars" / "homeport" / "main.yml").write_text("stack_project_name: demo\nfoo: !bogus x\n")
    else:
        (inv / "hosts.yml").write_text(HOSTS + "      foo: !bogus x\n")
    return inv


VERBS = [
    ["ps"],
    ["ps", "--json"],
    ["logs", "api"],
    ["exec", "api", "--", "true"],
    ["restart", "api"],
    ["connect", "--no-check"],
    ["tunnel"],
    ["audit", "--only", "ssh"],
]


@pytest.mark.parametrize("where", ["group_vars", "hosts"])
@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_a_verb_that_loads_the_inventory_exits_3_on_an_unknown_tag(verb, where, project, tmp_path, monkeypatch):
    def no_ssh(*args, **kwargs):
        raise AssertionError(f"nothing may run on a host: {args}")

    monkeypatch.setattr(subprocess, "run", no_ssh)
    monkeypatch.setattr(subprocess, "Popen", no_ssh)
    inv = _inventory(tmp_path, where)
    r = CliRunner().invoke(app, [verb[0], "-i", str(inv), *verb[1:]])
    assert r.exit_code == 3, (r.output, r.exception)
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    flat = "".join(r.output.split())  # the console wraps long paths anywhere
    assert "Traceback" not in flat
    assert "!bogus" in flat and ("main.yml:2:" in flat if where == "group_vars" else "hosts.yml:5:" in flat), flat


def test_the_real_command_prints_no_traceback(project, tmp_path):
    """The installed console script in a real process (what the user runs)."""
    inv = _inventory(tmp_path, "group_vars")
    env = {**os.environ, "HOMEPORT_HOME": str(project / ".homeport")}
    r = subprocess.run(
        [sys.executable, "-m", "homeport", "ps", "-i", str(inv)], capture_output=True, text=True, env=env, check=False
    )
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert "!bogus" in r.stderr and "main.yml:2" in r.stderr


def test_load_hosts_raises_the_quick_error_of_exit_3(project, tmp_path):
    with pytest.raises(quick.QuickError) as exc:
        quick.load_hosts(_inventory(tmp_path, "group_vars"))
    assert exc.value.code == 3 and "!bogus" in str(exc.value)


def test_the_playbook_verbs_refuse_an_unknown_tag_and_accept_ansibles_own(tmp_path):
    inv = _inventory(tmp_path, "group_vars")
    problems = inventory_check.check(inv)
    assert [p.error for p in problems] == [True]
    assert "main.yml:2:" in problems[0].where and "!bogus" in problems[0].message
    (inv / "group_vars" / "homeport" / "main.yml").write_text(
        "stack_project_name: demo\nfoo: !unsafe '{{ x }}'\nbar: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3030\n"
    )
    assert not [p for p in inventory_check.check(inv) if p.error]
