"""docker_engine: daemon.json rendered by the role's real template and vars (ansible-playbook, local connection),
and the validation that stops bad values before anything changes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ansible_local import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "docker_engine"

RENDER = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - ansible.builtin.template:
        src: {role}/templates/daemon.json.j2
        dest: "{{{{ out }}}}/daemon.json"
        mode: "0644"
"""

VALIDATE = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: docker_engine
        tasks_from: validate
"""


def playbook(tmp_path: Path, text: str, extra: dict) -> subprocess.CompletedProcess:
    return run_local_playbook(tmp_path, text.format(role=ROLE), extra)


def test_daemon_json_defaults_and_extra_merge(tmp_path):
    r = playbook(
        tmp_path,
        RENDER,
        {
            "out": str(tmp_path),
            "docker_engine_log_max_file": 5,
            "docker_engine_daemon_extra": {
                "log-opts": {"compress": "true"},
                "default-address-pools": [{"base": "10.201.0.0/16", "size": 24}],
            },
        },
    )
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = json.loads((tmp_path / "daemon.json").read_text())
    assert cfg == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "5", "compress": "true"},
        "live-restore": True,
        "default-address-pools": [{"base": "10.201.0.0/16", "size": 24}],
    }


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"docker_engine_log_max_size": "ten"}, "docker_engine_log_max_size must look like 10m/1g (got ten)"),
        ({"docker_engine_log_max_file": 0}, "docker_engine_log_max_file must be >= 1 (got 0)"),
        ({"homeport_os_family": "Darwin"}, "this host is Darwin"),
        ({"docker_engine_users": ["no-such-user-homeport"]}, "do not exist on localhost: no-such-user-homeport"),
    ],
)
def test_validation_names_the_variable(tmp_path, extra, needle):
    r = playbook(tmp_path, VALIDATE, {"homeport_os_family": "Debian", "docker_engine_users": [], **extra})
    assert r.returncode != 0
    assert needle in r.stdout, r.stdout


def test_validation_accepts_defaults(tmp_path):
    r = playbook(tmp_path, VALIDATE, {"homeport_os_family": "Debian", "docker_engine_users": ["root"]})
    assert r.returncode == 0, r.stdout
