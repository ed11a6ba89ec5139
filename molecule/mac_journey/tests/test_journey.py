"""The Mac Mini journey, after converge (bootstrap over SSH as admin, twice; deploy): the engine only behind
Colima's socket, the stack healthy in the VM, ports on the Mac's loopback only, the laptop's `homeport connect`
and `homeport tunnel` from another network namespace, a power cut and a boot with no login, and a backup through
the Colima socket. The tests run in file order: the power cut comes after the laptop checks, the backup last."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

testinfra_hosts = ["mac_journey-mac"]

EPH = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INV = EPH / "homeport" / "hosts.yml"
HOMEPORT = str(Path(sys.executable).with_name("homeport"))
MAC, LAPTOP = "mac_journey-mac", "mac_journey-laptop"
SOCK = "/Users/admin/.colima/default/docker.sock"
CTX = "mac-journey"


def mac(cmd: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["docker", "exec", MAC] + (["sudo", "-n", "-H", "-u", user] if user else []) + ["sh", "-c", cmd]
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd}: {r.stdout}{r.stderr}")
    return r


def vm_docker(args: str, check: bool = True) -> subprocess.CompletedProcess:
    return mac(f"/opt/homebrew/bin/docker --host unix://{SOCK} {args}", user="admin", check=check)


def mac_address() -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", MAC], capture_output=True, text=True, check=True
    ).stdout.strip()


def laptop_env() -> dict:
    """The laptop's environment: its own docker config, and an ssh wrapper with the laptop's SSH settings (the docker
    CLI runs plain ssh, which reads the passwd entry's ~/.ssh, not $HOME: this is the user's ~/.ssh/config)."""
    bindir = EPH / "laptop-bin"
    bindir.mkdir(exist_ok=True)
    config = EPH / "laptop-ssh_config"
    config.write_text(
        f"Host *\n  IdentityFile {EPH}/id_ed25519\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {EPH}/homeport/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
        encoding="utf-8",
    )
    wrapper = bindir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "DOCKER_CONFIG": str(EPH / "laptop-docker"),
        "HOMEPORT_HOME": str(EPH / "homeport" / "state"),
        "HOMEPORT_VAULT_PASSWORD": "unused-no-vault-in-this-inventory",
    }


def in_laptop(argv: list[str]) -> list[str]:
    """Run argv in the laptop container's network namespace (its own addresses; the Mac's loopback is not there)."""
    pid = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Pid}}", LAPTOP], capture_output=True, text=True, check=True
    ).stdout.strip()
    return ["nsenter", "-t", pid, "-n", *argv]


def healthy() -> dict[str, str]:
    r = vm_docker("ps --format '{{json .}}'", check=False)
    out = {}
    for line in r.stdout.splitlines():
        row = json.loads(line)
        out[row["Names"]] = row["Status"]
    return out


def test_the_engine_is_only_behind_colimas_socket(host):
    sock = host.file(SOCK)
    assert sock.is_socket and sock.user == "admin"
    assert not host.file("/var/run/docker.sock").exists
    assert "masked" in host.run("systemctl is-enabled docker.service").stdout
    # the VM is its own network: Lima's guest address, not the Mac's
    assert "192.168.5.15" in host.run("ip netns exec colima-default ip -4 addr show eth0").stdout


def test_the_stack_is_healthy_inside_the_vm():
    status = healthy()
    assert "(healthy)" in status.get("teststack-db-1", ""), status
    assert "(healthy)" in status.get("teststack-api-1", ""), status


def test_the_project_dir_belongs_to_the_admin(host):
    d = host.file("/Users/admin/Library/homeport/stack")
    assert d.is_directory and d.user == "admin"
    assert host.file("/Users/admin/Library/homeport/stack/compose.yaml").exists
    assert not host.file("/usr/local/var/homeport/stack").exists


def test_ports_are_on_the_macs_loopback_only(host):
    listening = host.run("ss -ltnH").stdout
    assert "127.0.0.1:18080" in listening and "127.0.0.1:15432" in listening
    assert "0.0.0.0:18080" not in listening and "*:18080" not in listening
    # from the laptop's network (a LAN neighbour): nothing answers on the Mac's address
    probe = (
        "import socket, sys; s = socket.socket(); s.settimeout(3); "
        f"sys.exit(0 if s.connect_ex(({mac_address()!r}, 18080)) == 0 else 1)"
    )
    assert subprocess.run(["docker", "exec", LAPTOP, "python3", "-c", probe], check=False).returncode == 1


def test_ssh_commands_on_the_mac_find_docker():
    """docker/cli#3045: the drop-in's SetEnv PATH makes `ssh mac docker system dial-stdio` possible."""
    env = laptop_env()
    r = subprocess.run(
        ["ssh", f"admin@{mac_address()}", "echo $PATH; command -v docker"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    path, docker = r.stdout.split()
    assert path.startswith("/opt/homebrew/bin:") and docker == "/opt/homebrew/bin/docker"


def test_connect_makes_a_docker_context_that_lists_the_containers():
    # a laptop without the context yet (the ephemeral dir outlives a scenario's containers)
    shutil.rmtree(EPH / "laptop-docker", ignore_errors=True)
    env = laptop_env()
    r = subprocess.run(in_laptop([HOMEPORT, "connect", "-i", str(INV), "--name", CTX]), env=env,
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "created" in r.stdout or "already set up" in r.stdout
    again = subprocess.run(in_laptop([HOMEPORT, "connect", "-i", str(INV), "--name", CTX]), env=env,
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert again.returncode == 0 and "already set up" in again.stdout
    ps = subprocess.run(in_laptop(["docker", "--context", CTX, "ps", "--format", "{{.Names}}"]), env=env,
                        capture_output=True, text=True, check=False)  # fmt: skip
    assert ps.returncode == 0, ps.stderr
    assert {"teststack-db-1", "teststack-api-1"} <= set(ps.stdout.split())


def test_the_api_answers_on_the_laptop_through_homeport_tunnel():
    env = laptop_env()
    proc = subprocess.Popen(in_laptop([HOMEPORT, "tunnel", "api", "-i", str(INV)]), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "tunnel open" in line:
                break
        assert "api: localhost:18080 -> mini 127.0.0.1:18080" in "".join(seen), seen
        fetch = (
            "import time, urllib.request\n"
            "for _ in range(40):\n"
            "    try:\n"
            "        print(urllib.request.urlopen('http://127.0.0.1:18080/health', timeout=3).read().decode()); break\n"
            "    except OSError:\n"
            "        time.sleep(0.25)\n"
        )
        r = subprocess.run(
            ["docker", "exec", LAPTOP, "python3", "-c", fetch], capture_output=True, text=True, check=False
        )
        assert r.stdout.strip(), r.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_power_cut_then_boot_without_login_brings_the_stack_back():
    before = {c: vm_docker(f"inspect -f '{{{{.State.StartedAt}}}}' {c}").stdout.strip()
              for c in ("teststack-db-1", "teststack-api-1")}  # fmt: skip
    # power cut: every process of the VM, the forwarder and the LaunchDaemons dies at once, nothing stops cleanly
    mac("/usr/local/bin/launchd power-cut && /usr/local/bin/colima-vm power-cut")
    listed = mac("/opt/homebrew/bin/colima list --json", user="admin").stdout
    assert json.loads(listed.splitlines()[0])["status"] == "Broken"
    assert vm_docker("ps", check=False).returncode != 0
    # boot: launchd loads /Library/LaunchDaemons and starts the RunAtLoad jobs as their UserName; nobody logs in
    t0 = time.time()
    mac("/usr/local/bin/launchd boot")
    deadline = t0 + 240
    while time.time() < deadline:
        status = healthy()
        if all("(healthy)" in status.get(c, "") for c in ("teststack-db-1", "teststack-api-1")):
            break
        time.sleep(2)
    elapsed = time.time() - t0
    print(f"\nstack healthy again {elapsed:.1f} s after the simulated boot")
    (EPH / "boot-recovery-seconds").write_text(f"{elapsed:.1f}\n", encoding="utf-8")
    assert all("(healthy)" in healthy().get(c, "") for c in ("teststack-db-1", "teststack-api-1")), healthy()
    # the wrapper recovered the Broken VM by itself, and logged it
    log = mac("cat /Users/admin/Library/Logs/homeport/colima.err.log").stdout
    assert "the VM is Broken" in log and "colima stop --force default" in log
    # the containers really restarted (restart: unless-stopped), they were not left from before
    after = {c: vm_docker(f"inspect -f '{{{{.State.StartedAt}}}}' {c}").stdout.strip() for c in before}
    assert all(after[c] != before[c] for c in before)
    assert mac("ls /Users/admin/Library/LaunchAgents 2>/dev/null | wc -l").stdout.strip() == "0"


def test_backup_run_dumps_the_database_through_the_colima_socket():
    env = laptop_env()
    r = subprocess.run(
        [HOMEPORT, "backup", "run", "-i", str(INV)], env=env, capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr
    ls = mac(
        "RESTIC_PASSWORD_FILE=/etc/homeport/backup/restic-password restic -r /Users/Shared/homeport-backup "
        "ls latest --json",
        user=None,
    )
    assert "brain" in ls.stdout
    assert "mj-Restic-Secret-91c2" not in r.stdout + r.stderr


def _deploy_with_api_port(port: str, name: str) -> tuple[subprocess.CompletedProcess, str, dict]:
    doc = yaml.safe_load(INV.read_text(encoding="utf-8"))
    doc["homeport"]["vars"]["stack_services"]["api"]["ports"] = [port]
    inv = EPH / "homeport" / f"{name}.yml"
    inv.write_text(yaml.safe_dump(doc), encoding="utf-8")
    compose = "/Users/admin/Library/homeport/stack/compose.yaml"
    before = mac(f"sha256sum {compose}").stdout
    started = vm_docker("inspect -f '{{.State.StartedAt}}' teststack-api-1").stdout
    # --json: the messages unwrapped (the console output wraps long lines)
    r = subprocess.run(
        [HOMEPORT, "deploy", "-i", str(inv), "--json"], env=laptop_env(), capture_output=True, text=True, check=False
    )
    after = {"compose": mac(f"sha256sum {compose}").stdout == before,
             "api": vm_docker("inspect -f '{{.State.StartedAt}}' teststack-api-1").stdout == started}  # fmt: skip
    try:
        messages = " ".join(f["message"] for f in json.loads(r.stdout)["failures"])
    except (ValueError, KeyError, TypeError):
        messages = r.stdout + r.stderr
    return r, messages, after


def test_a_port_on_the_lan_is_refused_and_nothing_changes():
    r, out, unchanged = _deploy_with_api_port("0.0.0.0:18080:8080", "lan")
    assert r.returncode == 3, out[-3000:]
    assert "service api publishes port 18080 on 0.0.0.0 inside the Colima VM" in out
    assert unchanged == {"compose": True, "api": True}


def test_an_address_absent_from_the_vm_is_refused_and_nothing_changes():
    r, out, unchanged = _deploy_with_api_port("100.101.102.103:18080:8080", "tailnet-ip")
    assert r.returncode == 3, out[-3000:]
    assert "binds port 18080 to 100.101.102.103, an address that does not exist inside the Colima VM" in out
    assert unchanged == {"compose": True, "api": True}
