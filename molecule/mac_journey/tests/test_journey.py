"""The Mac Mini journey, after converge (bootstrap over SSH as admin, twice; deploy): the engine only behind
Colima's socket, the stack healthy in the VM, ports on the Mac's loopback only, the laptop's `homeport connect`
and `homeport tunnel` from another network namespace, each bootstrap that changed the Mac recorded there as a manual
intervention (over the run's SSH, through sudo -n), the status page (role proxy: Homebrew's caddy as a LaunchDaemon,
basic auth from the vault), a power cut and a boot with no login, and a backup through the Colima socket. The tests
run in file order: the power cut comes after the laptop checks, the backup last."""

from __future__ import annotations

import getpass
import json
import os
import plistlib
import shutil
import signal
import socket
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
VAULT_PASSWORD = "mj-vault-Pass-4c7e19"  # prepare.yml encrypted the inventory's vault with it
# the status page (role proxy): Homebrew's prefix on Apple Silicon, the password prepare.yml put in the vault
STATUS_PASSWORD = "mj-Status-Page-Secret-8d3f"
PREFIX = "/opt/homebrew"
CADDY_LABEL, PAGE_LABEL = "com.homeport.proxy.caddy", "com.homeport.proxy.status-page"
PAGE = "http://127.0.0.1:8088/"


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
        "HOMEPORT_VAULT_PASSWORD": VAULT_PASSWORD,
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


# ---- issue 30: the manual interventions record, written by the CLI over the run's SSH master through sudo -n ----


def test_each_bootstrap_that_changed_the_mac_is_recorded_there_as_root(host):
    """converge ran `homeport bootstrap --tags runtime` then the whole bootstrap (both changed the Mac), molecule's
    idempotence step both again (nothing changed: nothing recorded). The CLI wrote each over SSH as admin, through
    sudo -n (root owns the file), in the state dir of a Mac (homeport_os_family: Darwin; the roles' own)."""
    f = host.file("/usr/local/var/homeport/interventions.json")
    assert f.exists, "no interventions record in the Darwin state dir"
    assert (f.user, f.group, f.mode) == ("root", "root", 0o644)
    doc = json.loads(f.content_string)
    entries = doc["interventions"]
    assert [e["verb"] for e in entries] == ["bootstrap", "bootstrap"], entries
    by = f"{getpass.getuser()}@{socket.gethostname()}"
    assert all(e["by"] == by and e["result"] == "ok" and e["changed"] > 0 for e in entries), entries
    # the first begins the record: the host's setup, not a repair
    assert entries[0].get("setup") is True and "setup" not in entries[1]
    assert doc["since"] == entries[0]["time"]
    assert not host.file("/var/lib/homeport/interventions.json").exists  # not Debian's state dir


# ---- issue 30: the status page on the Mac (role proxy: Homebrew's caddy run by a LaunchDaemon) ------------------


def _get(url: str = PAGE, user: str | None = None, password: str | None = None) -> tuple[int, dict, str]:
    """An HTTP GET on the Mac (status, headers, body); the password is passed on stdin, never on a command line."""
    code = (
        "import base64, json, sys, urllib.error, urllib.request\n"
        "args = json.loads(sys.stdin.read())\n"
        "req = urllib.request.Request(args['url'])\n"
        "if args['user'] is not None:\n"
        "    token = base64.b64encode(f\"{args['user']}:{args['password']}\".encode()).decode()\n"
        "    req.add_header('Authorization', 'Basic ' + token)\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=10)\n"
        "except urllib.error.HTTPError as e:\n"
        "    r = e\n"
        "print(json.dumps([r.status, dict(r.headers), r.read().decode()]))\n"
    )
    r = subprocess.run(["docker", "exec", "-i", MAC, "python3", "-c", code], capture_output=True, text=True,
                       input=json.dumps({"url": url, "user": user, "password": password}), check=True)  # fmt: skip
    status, headers, body = json.loads(r.stdout)
    return status, headers, body


def test_status_page_refuses_no_password_and_a_wrong_one():
    for user, password in ((None, None), ("homeport", "wrong-password-123"), ("admin", STATUS_PASSWORD)):
        status, headers, body = _get(user=user, password=password)
        assert status == 401, (user, status)
        assert headers.get("Www-Authenticate", "").startswith("Basic"), headers
        assert "homeport status" not in body


def test_status_page_serves_the_rows_with_the_vaults_password():
    status, headers, body = _get(user="homeport", password=STATUS_PASSWORD)
    assert status == 200
    assert "<title>homeport status</title>" in body
    for row in ("Availability", "Memory peak", "Deploy time", "Backups", "Unattended operation",
                "Manual interventions"):  # fmt: skip
        assert row in body, row
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<script" not in body and "http://" not in body and "https://" not in body  # nothing from elsewhere


def test_caddy_listens_on_the_macs_loopback_only(host):
    listening = [line.split()[3] for line in host.run("ss -ltnH").stdout.splitlines()]
    # no tailnet in this journey (no tailscale role): the role chooses 127.0.0.1 alone
    assert "127.0.0.1:8088" in listening and "127.0.0.1:2019" in listening  # the page, Caddy's admin API
    assert not [a for a in listening if a.rsplit(":", 1)[1] in ("8088", "2019") and not a.startswith("127.0.0.1:")]
    caddyfile = host.file(f"{PREFIX}/etc/homeport-proxy/Caddyfile").content_string
    assert "\tbind 127.0.0.1\n" in caddyfile and "admin 127.0.0.1:2019" in caddyfile
    # from the laptop's network (a LAN neighbour): nothing answers on the Mac's address
    probe = (
        "import socket, sys; s = socket.socket(); s.settimeout(3); "
        f"sys.exit(0 if s.connect_ex(({mac_address()!r}, 8088)) == 0 else 1)"
    )
    assert subprocess.run(["docker", "exec", LAPTOP, "python3", "-c", probe], check=False).returncode == 1


def test_caddy_is_homebrews_formula_run_by_its_launchdaemon_as_admin(host):
    state = json.loads(host.file("/var/lib/homeport-sim/brew/state.json").content_string)
    assert state["formulae"].get("caddy") == "2.7.6"  # homebrew/core Formula/c/caddy.rb
    assert host.file(f"{PREFIX}/bin/caddy").is_symlink
    assert host.run(f"{PREFIX}/bin/caddy version").stdout.startswith("2.6.2")  # Debian's real caddy behind it
    plist = host.file(f"/Library/LaunchDaemons/{CADDY_LABEL}.plist")
    assert (plist.user, plist.group, plist.mode) == ("root", "root", 0o644)  # root:wheel (gid 0) on a Mac
    data = plistlib.loads(plist.content)
    assert data["ProgramArguments"] == [f"{PREFIX}/bin/caddy", "run", "--config",
                                        f"{PREFIX}/etc/homeport-proxy/Caddyfile", "--adapter", "caddyfile"]  # fmt: skip
    assert data["UserName"] == "admin" and data["KeepAlive"] is True and data["RunAtLoad"] is True
    out = host.run(f"launchctl print system/{CADDY_LABEL}").stdout
    assert "state = running" in out and "username = admin" in out, out
    # the process launchd started: Debian's caddy, as admin, with the role's Caddyfile
    procs = [ln.split(None, 1) for ln in host.run("ps -eo user:20,args").stdout.splitlines()]
    caddy = [(user, args) for user, args in procs if args.startswith("/usr/bin/caddy run")]
    assert caddy and all(user == "admin" for user, _ in caddy), procs
    page = plistlib.loads(host.file(f"/Library/LaunchDaemons/{PAGE_LABEL}.plist").content)
    assert page["StartInterval"] == 60 and "UserName" not in page  # the page's job as root, every minute


def test_the_status_pages_files_are_owned_as_the_role_says(host):
    def owned(path: str) -> tuple[str, str, int]:
        f = host.file(path)
        assert f.exists, path
        return f.user, f.group, f.mode

    assert owned(f"{PREFIX}/etc/homeport-proxy/Caddyfile") == ("root", "wheel", 0o644)
    # the basic auth's bcrypt hash: Caddy's user only (the password itself is nowhere on the Mac)
    assert owned(f"{PREFIX}/etc/homeport-proxy/homeport") == ("admin", "staff", 0o700)
    assert owned(f"{PREFIX}/etc/homeport-proxy/homeport/status-auth.caddy") == ("admin", "staff", 0o600)
    assert owned(f"{PREFIX}/var/homeport-proxy/caddy") == ("admin", "staff", 0o700)  # XDG config and data
    assert owned(f"{PREFIX}/var/homeport-proxy/status") == ("root", "wheel", 0o755)
    assert owned(f"{PREFIX}/var/homeport-proxy/status/index.html")[0::2] == ("root", 0o644)
    assert owned("/etc/homeport/proxy") == ("root", "wheel", 0o700)  # the password's PBKDF2
    assert owned("/usr/local/libexec/homeport-status-page") == ("root", "wheel", 0o755)
    found = host.run(f"grep -rl {STATUS_PASSWORD} /etc/homeport {PREFIX}/etc {PREFIX}/var /var/log 2>/dev/null")
    assert found.stdout == "", found.stdout


def test_the_page_job_reads_the_interventions_record(host):
    """The page's job (root, launchd) reads what the CLI recorded over SSH: kickstarted, its page names the last
    bootstrap (the page that converge's bootstrap wrote came before that bootstrap's own record)."""
    index = f"{PREFIX}/var/homeport-proxy/status/index.html"
    before = host.file(index).mtime
    assert host.run(f"launchctl kickstart -k system/{PAGE_LABEL}").rc == 0
    by = f"last: bootstrap by {getpass.getuser()}@{socket.gethostname()}"
    out = ""
    for _ in range(60):  # the job runs detached under the launchd double
        out = host.run(f"launchctl print system/{PAGE_LABEL}").stdout
        if "last exit code = 0" in out and host.file(index).mtime > before:
            break
        time.sleep(0.5)
    assert "last exit code = 0" in out and host.file(index).mtime > before, out
    assert by in host.file(index).content_string


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


def test_the_status_page_is_back_after_the_boot():
    """Caddy's LaunchDaemon (RunAtLoad, KeepAlive) came back with the boot, with no login and no homeport run."""
    for _ in range(40):
        status, _headers, body = _get(user="homeport", password=STATUS_PASSWORD)
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200 and "<title>homeport status</title>" in body


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
