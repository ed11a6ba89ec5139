"""Issues 29/34: the validation of the hardening, colima, homebrew and preflight roles is a few
homeport.homeport.rules tasks (the settings first, then what the reads of the host show). Each rules task of these
validate.yml files refuses here on the local host, with the message the assert task it replaced printed, and the run
stops there (no later task of the play runs). The monitoring role's single rules task is proven by
test_monitoring_validation.py; the rows of test_preflight_rules.py's docker test prove the same rules against a Debian
container with sshd and the macOS-sim doubles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from ansible_local import ROOT, run_local_playbook, run_role_locally

NO_USER = "no-such-user-homeport"
DOUBLES = ROOT / "tests" / "doubles" / "bin"

# a local play: the facts the lookups read (ansible_facts['python']), the role's validate.yml, then a marker
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  gather_subset: [min]
  tasks:
    - ansible.builtin.include_role:
        name: {role}
        tasks_from: validate
    - ansible.builtin.copy:
        dest: "{{{{ marker }}}}"
        content: "validated\\n"
        mode: "0644"
      check_mode: false  # the marker shows the play went past the validation, in check mode too
"""

PREFLIGHT_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  roles:
    - role: preflight
  tasks:
    - ansible.builtin.copy:
        dest: "{{ marker }}"
        content: "validated\\n"
        mode: "0644"
      check_mode: false  # the marker shows the play went past the validation, in check mode too
"""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _validate(tmp_path: Path, role: str, variables: dict) -> tuple[int, str, bool]:
    """Run ``role``'s validate.yml on the local host in check mode; return the exit code, the output on one line and
    whether the play went past the validation."""
    marker = tmp_path / "marker"
    r = run_local_playbook(tmp_path, PLAY.format(role=role), {"marker": str(marker), **variables}, ("--check",))
    return r.returncode, _one_line(r.stdout + r.stderr), marker.exists()


@pytest.fixture
def mac_doubles(monkeypatch, tmp_path):
    """The macOS-sim doubles of tests/doubles (sysctl, sw_vers: a Mac mini M4 with 10 CPUs and macOS 15) first on
    PATH, with their state in the test's directory."""
    state = tmp_path / "sim-state"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{DOUBLES}:{os.environ['PATH']}")
    monkeypatch.setenv("HOMEPORT_SIM_STATE", str(state))
    return state


MAC = {"homeport_os_family": "Darwin", "homeport_apple_silicon": True}


# homebrew: the settings (first rules task), then the user the lookup did not find (second rules task); colima: the
# settings, the user, then the settings against this Mac (the sim's sysctl says 10 CPUs: the macOS-sim doubles)
NO_USER_MSG = "the user " + NO_USER + " does not exist on localhost"
MAC_ROWS = {
    # id: (role, variables (the Mac's facts below them), the macOS-sim doubles first on PATH, the message)
    "homebrew-on-debian": ("homebrew", {"homeport_os_family": "Debian"}, False,
                           "homebrew: the role is for macOS; this host is Debian"),
    "homebrew-unknown-user": ("homebrew", {"homebrew_user": NO_USER}, False, f"homebrew_user: {NO_USER_MSG}"),
    "colima-small-disk": ("colima", {"colima_user": "nobody", "colima_disk": 5}, False,
                          "colima_disk must be >= 10 GiB (got 5)"),
    "colima-unknown-user": ("colima", {"colima_user": NO_USER}, False, f"colima_user: {NO_USER_MSG}"),
    "colima-cpus": ("colima", {"colima_user": "nobody", "colima_cpu": 64}, True,
                    "colima_cpu: 64 must not exceed the Mac's 10 CPUs"),
}  # fmt: skip


@pytest.mark.parametrize("row", list(MAC_ROWS))
def test_the_mac_roles_refuse(tmp_path, request, row):
    role, variables, doubles, message = MAC_ROWS[row]
    if doubles:
        request.getfixturevalue("mac_doubles")
    brew = "" if variables.get("homeport_os_family") == "Debian" else str(tmp_path / "brew")
    code, text, passed = _validate(tmp_path, role, {**MAC, "homeport_brew_prefix": brew, **variables})
    assert code != 0 and not passed, text
    assert message in text


# hardening: the settings (first rules task), then the admin user and the lockout guard after sshd -T and the key count
HARDENING = {"homeport_os_family": "Debian", "hardening_admin_user": "root", "hardening_ssh_allow_users": ["root"]}


def _hardening(tmp_path: Path, variables: dict) -> tuple[int, str]:
    proc, out = run_role_locally(tmp_path, "hardening", {**HARDENING, **variables}, tasks_from="validate")
    return proc.returncode, _one_line(out)


def test_hardening_refuses_too_many_auth_tries(tmp_path):
    code, text = _hardening(tmp_path, {"hardening_ssh_max_auth_tries": 99})
    assert code != 0, text
    assert "hardening: invalid SSH settings." in text and "hardening_ssh_max_auth_tries must be 1-10" in text
    assert "Read the sshd settings in effect" not in text  # refused before the role read the host


def test_hardening_refuses_an_unknown_admin_user(tmp_path):
    code, text = _hardening(tmp_path, {"hardening_admin_user": NO_USER, "hardening_ssh_allow_users": [NO_USER]})
    assert code != 0, text
    assert f"hardening: the admin user '{NO_USER}' (hardening_admin_user) does not exist on this host." in text


@pytest.mark.skipif(not Path("/etc/ssh/sshd_config").exists(), reason="needs sshd's configuration (sshd -T)")
def test_hardening_lockout_guard_refuses_an_admin_without_a_key(tmp_path):
    code, text = _hardening(tmp_path, {"hardening_admin_user": "nobody", "hardening_ssh_allow_users": ["nobody"]})
    assert code != 0, text
    assert "hardening: lockout guard - the admin user 'nobody' has no valid public key in /nonexistent/.ssh/" in text


# the preflight's own checks: one rules task after the admin user's lookup
@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"homeport_memory_budget": "lots"}, 'homeport_memory_budget: "lots" is not a size'),
        ({"homeport_admin_user": NO_USER}, f"homeport_admin_user: no user named '{NO_USER}' exists on localhost."),
    ],
    ids=["budget-not-a-size", "admin-user-missing"],
)
def test_preflight_refuses(tmp_path, broken, message):
    marker = tmp_path / "marker"
    variables = {"homeport_roles": [], "homeport_admin_user": "root", "marker": str(marker), **broken}
    r = run_local_playbook(tmp_path, PREFLIGHT_PLAY, variables, ("--check",))
    text = _one_line(r.stdout + r.stderr)
    assert r.returncode != 0 and not marker.exists(), text
    assert message in text


def test_preflight_passes_a_valid_configuration(tmp_path):
    marker = tmp_path / "marker"
    variables = {"homeport_roles": [], "homeport_admin_user": "root", "marker": str(marker)}
    r = run_local_playbook(tmp_path, PREFLIGHT_PLAY, variables)
    assert r.returncode == 0 and marker.exists(), r.stdout + r.stderr


def test_each_rules_task_is_one_task_per_group_of_checks():
    """No assert or fail task is left in any role's validate*.yml: their checks are homeport.homeport.rules tasks."""
    files = sorted((ROOT / "roles").glob("*/tasks/validate*.yml"))
    assert len(files) >= 13
    for path in files:
        role = path.relative_to(ROOT).as_posix()
        tasks = yaml.safe_load(path.read_text(encoding="utf-8"))
        actions = [next(k for k in t if "." in k) for t in tasks]
        assert not {"ansible.builtin.assert", "ansible.builtin.fail"} & set(actions), role
        assert "homeport.homeport.rules" in actions, role
