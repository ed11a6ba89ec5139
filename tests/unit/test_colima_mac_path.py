"""The Darwin (Mac Mini + Colima) path of the roles, one test per defect of issue 15, run with the real role files
through ansible-playbook (local connection):

- the docker endpoint comes from one shared fact, homeport_docker_host (roles/homeport/tasks/facts.yml): Colima's
  ~/.colima/<profile>/docker.sock on macOS (there is no /var/run/docker.sock there), the engine's socket on Linux;
  the stack's compose calls, its docker commands, `homeport status` and the backup job use it;
- the stack project dir on macOS belongs to the admin (under the home Colima mounts, not root's /usr/local);
- ports on the Mac bind 127.0.0.1 in the VM (never a cached tailnet address that does not exist in the VM) and a
  deploy that would publish a port on the LAN, or bind an address absent from the VM, is refused by validate.yml,
  naming the service and the port;
- the Homebrew prefix is detected once (/opt/homebrew on Apple Silicon, /usr/local on Intel);
- the hardening sshd drop-in gives SSH commands on the Mac a PATH with Homebrew's bin (docker/cli#3045).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_local import render_sshd_dropin, run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
ME = getpass.getuser()
HOME = os.path.expanduser(f"~{ME}")

FACTS_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: homeport
        tasks_from: facts
    - ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0644"
        content: >-
          {{ {'host': homeport_docker_host, 'cli': homeport_docker_cli, 'prefix': homeport_brew_prefix,
              'arm': homeport_apple_silicon, 'home': homeport_admin_home} | to_json }}
"""


def fake_sysctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arm64: str | None) -> None:
    """`sysctl -n hw.optional.arm64` as on an Apple Silicon (1) or Intel Mac (the key does not exist: exit 1)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    body = f"echo {arm64}" if arm64 is not None else "echo \"sysctl: unknown oid 'hw.optional.arm64'\" >&2; exit 1"
    (bindir / "sysctl").write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    (bindir / "sysctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")


def facts(tmp_path: Path, **variables) -> dict:
    out = tmp_path / "facts.json"
    r = run_local_playbook(tmp_path, FACTS_PLAY, {"out": str(out), "homeport_admin_user": ME, **variables})
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def test_docker_endpoint_on_apple_silicon_is_colimas_socket(tmp_path, monkeypatch):
    fake_sysctl(tmp_path, monkeypatch, "1")
    f = facts(tmp_path, homeport_os_family="Darwin")
    assert f["host"] == f"unix://{HOME}/.colima/default/docker.sock"
    assert f["prefix"] == "/opt/homebrew" and f["arm"] is True
    assert f["cli"] == "/opt/homebrew/bin/docker"
    assert f["home"] == HOME


def test_docker_endpoint_follows_the_colima_profile_and_intel_prefix(tmp_path, monkeypatch):
    fake_sysctl(tmp_path, monkeypatch, None)
    f = facts(tmp_path, homeport_os_family="Darwin", colima_profile="work")
    assert f["host"] == f"unix://{HOME}/.colima/work/docker.sock"
    assert f["prefix"] == "/usr/local" and f["arm"] is False
    assert f["cli"] == "/usr/local/bin/docker"


def test_docker_endpoint_on_debian_is_the_engines_socket(tmp_path):
    f = facts(tmp_path, homeport_os_family="Debian")
    assert f == {"host": "unix:///var/run/docker.sock", "cli": "docker", "prefix": "", "arm": False, "home": ""}


def test_preflight_sets_the_facts_before_it_validates():
    """The preflight depends on the homeport role, whose main.yml sets the facts: a dependency runs first."""
    main = yaml.safe_load((ROOT / "roles/homeport/tasks/main.yml").read_text())
    names = [t.get("ansible.builtin.import_tasks") or t.get("ansible.builtin.include_tasks") for t in main]
    assert "facts.yml" in names
    meta = yaml.safe_load((ROOT / "roles/preflight/meta/main.yml").read_text())
    assert [d["role"] for d in meta["dependencies"]] == ["homeport"]


def _tasks(path: Path) -> list[dict]:
    out = []
    for t in yaml.safe_load(path.read_text()) or []:
        out.append(t)
        for key in ("block", "rescue", "always"):
            out.extend(t.get(key) or [])
    return out


@pytest.mark.parametrize("name", ["service.yml", "restore.yml"])
def test_stack_compose_calls_use_the_shared_docker_endpoint(name):
    calls = [t for t in _tasks(ROOT / "roles/stack/tasks" / name) if "community.docker.docker_compose_v2" in t]
    assert calls
    for t in calls:
        # without docker_host the module passes --host unix:///var/run/docker.sock, which Colima does not have
        assert t["community.docker.docker_compose_v2"].get("docker_host") == "{{ _stack_docker_env.DOCKER_HOST }}"
    stack_vars = yaml.safe_load((ROOT / "roles/stack/vars/main.yml").read_text())
    assert "homeport_docker_host" in stack_vars["_stack_docker_env"]["DOCKER_HOST"]


@pytest.mark.parametrize("name", ["stage.yml", "restore.yml"])
def test_stack_docker_commands_use_the_shared_docker_endpoint(name):
    docker = [
        t
        for t in _tasks(ROOT / "roles/stack/tasks" / name)
        if ("ansible.builtin.command" in t or "ansible.builtin.shell" in t) and "_stack_docker_cli" in json.dumps(t)
    ]
    assert docker
    assert all(t.get("environment") == "{{ _stack_docker_env }}" for t in docker), [t["name"] for t in docker]


def test_status_and_backup_use_the_shared_docker_endpoint():
    status = yaml.safe_load((ROOT / "roles/homeport/tasks/status.yml").read_text())[0]
    assert status["environment"]["DOCKER_HOST"] == "{{ homeport_docker_host }}"
    backup = yaml.safe_load((ROOT / "roles/backup/defaults/main.yml").read_text())
    assert "homeport_docker_host" in backup["backup_docker_host"]


VARS_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {root}/roles/homeport/defaults/main.yml
    - {root}/roles/stack/defaults/main.yml
    - {root}/roles/stack/vars/main.yml
    - {root}/roles/backup/defaults/main.yml
  tasks:
    - ansible.builtin.copy:
        dest: "{{{{ out }}}}"
        mode: "0644"
        content: >-
          {{{{ {{'project_dir': stack_project_dir, 'bind': _stack_bind_address, 'allowed': _stack_allowed_addresses,
              'cli': _stack_docker_cli, 'backup_docker_host': backup_docker_host}} | to_json }}}}
"""


def stack_vars(tmp_path: Path, **variables) -> dict:
    out = tmp_path / "vars.json"
    r = run_local_playbook(tmp_path, VARS_PLAY.format(root=ROOT), {"out": str(out), **variables})
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(out.read_text(encoding="utf-8"))


MAC = {
    "homeport_os_family": "Darwin",
    "homeport_admin_home": "/Users/admin",
    "homeport_docker_host": "unix:///Users/admin/.colima/default/docker.sock",
    "homeport_docker_cli": "/usr/local/bin/docker",
}


def test_mac_project_dir_belongs_to_the_admin_not_root_usr_local(tmp_path):
    v = stack_vars(tmp_path, **MAC)
    assert v["project_dir"] == "/Users/admin/Library/homeport/stack"
    assert v["cli"] == "/usr/local/bin/docker"  # the Intel prefix from the shared fact, not /opt/homebrew
    assert v["backup_docker_host"] == "unix:///Users/admin/.colima/default/docker.sock"


def test_debian_project_dir_is_unchanged(tmp_path):
    v = stack_vars(tmp_path, homeport_os_family="Debian", homeport_docker_host="unix:///var/run/docker.sock")
    assert v["project_dir"] == "/var/lib/homeport/stack"
    assert v["cli"] == "docker"


def test_mac_ports_bind_loopback_in_the_vm_even_with_a_cached_tailnet_address(tmp_path):
    v = stack_vars(tmp_path, tailscale_ipv4="100.101.102.103", **MAC)
    assert v["bind"] == "127.0.0.1"
    # the staged-config check allows only loopback on the Mac (a user's compose file cannot sneak a tailnet IP in)
    assert v["allowed"] == ["127.0.0.1", "::1"]


def test_debian_ports_still_bind_the_tailnet_address(tmp_path):
    v = stack_vars(tmp_path, homeport_os_family="Debian", tailscale_ipv4="100.101.102.103")
    assert v["bind"] == "100.101.102.103"


VALIDATE_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: stack
        tasks_from: validate
    - ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0644"
        content: "validated\\n"
"""


def validate(tmp_path: Path, ports: list, **variables) -> tuple[subprocess.CompletedProcess, bool]:
    out = tmp_path / "validated"
    services = {
        "web": {"image": "busybox:1", "memory": "64m", "ports": ports, "healthcheck": {"test": ["CMD", "true"]}}
    }
    r = run_local_playbook(tmp_path, VALIDATE_PLAY, {"out": str(out), "stack_services": services, **MAC, **variables})
    return r, out.exists()


def test_mac_refuses_a_port_on_the_lan(tmp_path):
    r, passed = validate(tmp_path, ["0.0.0.0:8080:80"])
    assert r.returncode != 0 and not passed
    assert "service web publishes port 8080 on 0.0.0.0 inside the Colima VM" in r.stdout
    assert "reachable from the LAN" in r.stdout


def test_mac_refuses_an_address_absent_from_the_vm(tmp_path):
    r, passed = validate(tmp_path, [{"target": 80, "published": 8443, "host_ip": "100.101.102.103"}])
    assert r.returncode != 0 and not passed
    assert "service web binds port 8443 to 100.101.102.103, an address that does not exist inside the Colima VM" in (
        r.stdout
    )


def test_mac_refuses_a_tailnet_bind_address(tmp_path):
    r, passed = validate(tmp_path, ["8000:8000"], stack_bind_address="100.101.102.103")
    assert r.returncode != 0 and not passed
    assert "service web binds port 8000 to 100.101.102.103" in r.stdout


def test_mac_accepts_loopback_and_an_explicit_public_opt_in(tmp_path):
    r, passed = validate(tmp_path, ["8000:8000", "127.0.0.1:9000:9000"])
    assert r.returncode == 0 and passed, r.stdout
    opt_in = tmp_path / "opt-in"
    opt_in.mkdir()
    r, passed = validate(opt_in, ["0.0.0.0:8080:80"], stack_allow_public_ports=True)
    assert r.returncode == 0 and passed, r.stdout


def test_homebrew_prefix_is_not_hard_coded_outside_the_shared_facts():
    offenders = []
    for role in ("stack", "colima", "homebrew", "homeport"):
        for f in (ROOT / "roles" / role).rglob("*"):
            if f.suffix not in {".yml", ".j2"} or f.name == "facts.yml" or "meta" in f.parts:
                continue
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if "/opt/homebrew" in line and not line.lstrip().startswith("#"):
                    offenders.append(f"{f.relative_to(ROOT)}:{n}")
    assert offenders == []
    status = (ROOT / "roles/homeport/tasks/status.yml").read_text()
    assert "/opt/homebrew" not in status


def test_mac_sshd_gives_ssh_commands_homebrews_path(tmp_path):
    text = render_sshd_dropin(tmp_path, homeport_os_family="Darwin", homeport_brew_prefix="/opt/homebrew")
    assert "SetEnv PATH=/opt/homebrew/bin:/usr/bin:/bin:/usr/sbin:/sbin" in text.splitlines()
    text = render_sshd_dropin(tmp_path, homeport_os_family="Darwin", homeport_brew_prefix="/usr/local")
    assert "SetEnv PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" in text.splitlines()


def test_debian_sshd_dropin_has_no_setenv(tmp_path):
    assert "SetEnv" not in render_sshd_dropin(tmp_path, homeport_os_family="Debian")


@pytest.mark.needs_tool("sshd", "ssh-keygen")
def test_mac_sshd_dropin_is_valid_sshd_config(tmp_path):
    text = render_sshd_dropin(tmp_path, homeport_os_family="Darwin", homeport_brew_prefix="/opt/homebrew")
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    conf = tmp_path / "sshd_config"
    conf.write_text(text + f"\nHostKey {key}\n", encoding="utf-8")
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    r = subprocess.run([sshd, "-t", "-f", str(conf)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^SetEnv PATH=", text, re.M)
