"""The colima role's real templates rendered by Ansible's template module (ansible-playbook, local connection)
with the role's own defaults and vars: the LaunchDaemon plist parsed with plistlib, colima.yaml with YAML."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest
import yaml
from ansible_local import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "colima"

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - ansible.builtin.template:
        src: {role}/templates/colima.plist.j2
        dest: "{{{{ out }}}}/colima.plist"
        mode: "0644"
    - ansible.builtin.template:
        src: {role}/templates/colima.yaml.j2
        dest: "{{{{ out }}}}/colima.yaml"
        mode: "0644"
"""


def render(tmp_path: Path, **extra) -> tuple[dict, dict, str]:
    variables = {
        "out": str(tmp_path),
        "homeport_os_family": "Darwin",
        "colima_user": "admin",
        "_colima_user_info": {"home": "/Users/admin", "uid": 501, "group": "staff"},
        "_colima_prefix": "/opt/homebrew",
        "_colima_arch": "aarch64",
        **extra,
    }
    r = run_local_playbook(tmp_path, PLAYBOOK.format(role=ROLE), variables)
    assert r.returncode == 0, r.stdout + r.stderr
    raw_plist = (tmp_path / "colima.plist").read_bytes()
    return plistlib.loads(raw_plist), yaml.safe_load((tmp_path / "colima.yaml").read_text()), raw_plist.decode()


def test_launchdaemon_plist_apple_silicon(tmp_path):
    plist, _, raw = render(tmp_path)
    assert raw.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist')
    assert "Ansible managed" in raw.split("<plist", 1)[0]
    assert plist["Label"] == "com.homeport.colima"
    # the LaunchDaemon runs the recovering wrapper (files/colima-launchd), not a bare colima start
    assert plist["ProgramArguments"] == [
        "/bin/sh",
        "/usr/local/libexec/homeport/colima-launchd",
        "default",
        "/opt/homebrew/bin/colima",
    ]
    assert plist["UserName"] == "admin"
    assert plist["GroupName"] == "staff"
    assert plist["RunAtLoad"] is True
    # restarted when the wrapper fails, not after it gave up loudly (exit 0) or the VM was stopped on purpose
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["WorkingDirectory"] == "/Users/admin"
    env = plist["EnvironmentVariables"]
    assert env["HOME"] == "/Users/admin"
    assert env["PATH"].split(":")[:2] == ["/opt/homebrew/bin", "/opt/homebrew/sbin"]
    assert {"/usr/bin", "/bin", "/usr/sbin", "/sbin"} <= set(env["PATH"].split(":"))
    assert env["COLIMA_SAVE_CONFIG"] == "0"
    assert plist["StandardOutPath"] == "/Users/admin/Library/Logs/homeport/colima.out.log"
    assert plist["StandardErrorPath"] == "/Users/admin/Library/Logs/homeport/colima.err.log"
    assert plist["ExitTimeOut"] >= 60, "give colima time to stop the VM cleanly"


def test_launchdaemon_plist_intel_profile_and_escaping(tmp_path):
    plist, _, _ = render(
        tmp_path,
        _colima_prefix="/usr/local",
        colima_profile="work",
        colima_launchd_label="org.example.colima-work",
        colima_log_dir="/var/log/R&D <colima>",
    )
    assert plist["Label"] == "org.example.colima-work"
    assert plist["ProgramArguments"][2:] == ["work", "/usr/local/bin/colima"]
    assert plist["EnvironmentVariables"]["PATH"].startswith("/usr/local/bin:")
    assert plist["StandardErrorPath"] == "/var/log/R&D <colima>/colima.err.log"


def test_colima_yaml_follows_the_schema(tmp_path):
    _, conf, _ = render(tmp_path, colima_cpu=6, colima_memory=12, colima_disk=120, colima_docker_extra={"debug": True})
    assert conf["cpu"] == 6 and conf["memory"] == 12 and conf["disk"] == 120
    assert conf["arch"] == "aarch64" and conf["runtime"] == "docker"
    assert conf["vmType"] == "vz" and conf["mountType"] == "virtiofs" and conf["rosetta"] is True
    assert conf["autoActivate"] is True
    assert conf["kubernetes"] == {"enabled": False}
    assert conf["docker"] == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "live-restore": True,
        "debug": True,
    }
    for key in ("network", "forwardAgent", "nestedVirtualization", "mountInotify", "provision", "mounts", "env"):
        assert key in conf


@pytest.mark.parametrize("memory", [14, 13.5])
def test_colima_yaml_memory_values(tmp_path, memory):
    _, conf, _ = render(tmp_path, colima_memory=memory)
    assert conf["memory"] == memory
