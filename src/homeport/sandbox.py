"""`homeport sandbox up|down|ssh`: a throwaway local Debian host in Docker, reached over real SSH.

The container ``homeport-sandbox`` runs systemd as PID 1 with the explicit capabilities of a docker-in-docker
host (never --privileged), so the runtime role can run an engine inside. User ``homeport`` (passwordless sudo)
logs in with a fresh ed25519 key kept in ``.homeport/sandbox/``; sshd is published on 127.0.0.1:<free port> and
its host key is pinned in ``.homeport/sandbox/known_hosts`` (host key checking stays on).
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rich.console import Console

from homeport import paths

CONTAINER = os.environ.get("HOMEPORT_SANDBOX_NAME", "homeport-sandbox")  # the tests use their own name
LABEL = "io.homeport.sandbox=1"
RELEASES = (12, 13)
USER = "homeport"
# Roles that make sense inside a container (no tailnet, no stack images to pull).
SANDBOX_ROLES = ["runtime", "hardening", "backup"]
SANDBOX_BACKUP_REPOSITORY = "/var/backups/homeport-restic"
RUN_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE", "--cap-add", "MKNOD",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp:exec",  # noqa: S108 - a tmpfs inside the container
    "--tmpfs", "/var/lib/docker:exec",
]  # fmt: skip
BOOT_TIMEOUT = 90
SSH_TIMEOUT = 60


class SandboxError(Exception):
    pass


def image(release: int) -> str:
    return f"homeport/debian:{release}"


def key_path() -> Path:
    return paths.sandbox_dir() / "id_ed25519"


def known_hosts_path() -> Path:
    return paths.sandbox_dir() / "known_hosts"


def _docker(*args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, input=input_text, check=False)
    if check and r.returncode != 0:
        raise SandboxError(f"docker {' '.join(args[:2])} failed: {(r.stderr or r.stdout).strip()}")
    return r


def _exec(script: str, input_text: str | None = None) -> str:
    return _docker("exec", "-i", CONTAINER, "sh", "-euc", script, input_text=input_text).stdout


def _require_docker() -> None:
    if (
        not shutil.which("docker")
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0
    ):
        raise SandboxError("Docker is not reachable: start the Docker engine (`homeport doctor` checks it)")


def _ensure_image(release: int, console: Console) -> None:
    if _docker("image", "inspect", image(release), check=False).returncode == 0:
        return
    if not shutil.which("debootstrap"):
        raise SandboxError(f"image {image(release)} is missing and debootstrap is not installed to build it")
    console.print(f"building {image(release)} with debootstrap (a minute or two)")
    build = Path(__file__).resolve().parent / "images" / "build.sh"
    r = subprocess.run(["bash", str(build), "base"], check=False)
    if r.returncode != 0:
        raise SandboxError(f"{build} base failed (exit {r.returncode})")


def _state() -> str | None:
    r = _docker("inspect", "-f", "{{.State.Status}}", CONTAINER, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def _ssh_port() -> int:
    out = _docker("port", CONTAINER, "22/tcp").stdout.strip().splitlines()
    for line in out:
        host, _, port = line.rpartition(":")
        if host in ("127.0.0.1", "0.0.0.0"):  # noqa: S104 - parsing docker's output, not binding
            return int(port)
    raise SandboxError(f"sshd of {CONTAINER} is not published: {out}")


def _wait_for_systemd() -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        r = _docker("exec", CONTAINER, "systemctl", "is-system-running", check=False)
        if r.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(1)
    raise SandboxError(f"systemd in {CONTAINER} did not finish booting within {BOOT_TIMEOUT}s")


def _ensure_key() -> str:
    key = key_path()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "homeport-sandbox", "-f", str(key)],
            check=True,
        )
    return key.with_suffix(".pub").read_text(encoding="utf-8").strip()


def _provision(pubkey: str) -> None:
    _exec(
        f"""
id -u {USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {USER}
printf '%s\\n' '{USER} ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/{USER}
chmod 0440 /etc/sudoers.d/{USER}
install -d -m 0700 -o {USER} -g {USER} /home/{USER}/.ssh
cat >/home/{USER}/.ssh/authorized_keys
chown {USER}:{USER} /home/{USER}/.ssh/authorized_keys
chmod 0600 /home/{USER}/.ssh/authorized_keys
ssh-keygen -A >/dev/null
systemctl enable --now ssh >/dev/null 2>&1 || systemctl enable --now sshd >/dev/null
""",
        input_text=pubkey + "\n",
    )


def ssh_base(port: int) -> list[str]:
    return [
        "ssh", "-i", str(key_path()), "-p", str(port),
        "-o", f"UserKnownHostsFile={known_hosts_path()}", "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        f"{USER}@127.0.0.1",
    ]  # fmt: skip


def _write_state(port: int) -> Path:
    hostkey = _exec("cat /etc/ssh/ssh_host_ed25519_key.pub").split()
    known_hosts_path().write_text(f"[127.0.0.1]:{port} {hostkey[0]} {hostkey[1]}\n", encoding="utf-8")
    common = (
        f"-o UserKnownHostsFile={shlex.quote(str(known_hosts_path()))} -o StrictHostKeyChecking=yes "
        "-o IdentitiesOnly=yes"
    )
    doc = {
        "homeport": {
            "hosts": {
                "sandbox": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": port,
                    "ansible_user": USER,
                    "ansible_become": True,
                    "ansible_ssh_private_key_file": str(key_path()),
                    "ansible_ssh_common_args": common,
                    "ansible_python_interpreter": "/usr/bin/python3",
                }
            },
            "vars": {
                "homeport_roles": SANDBOX_ROLES,
                # backups go to a local restic repository inside the container
                "backup_repository": SANDBOX_BACKUP_REPOSITORY,
                "backup_paths": [f"/home/{USER}"],
                # the published SSH port reaches the container from the Docker bridge gateway: let the
                # hardening firewall (tailnet-only by default) accept SSH from there
                "hardening_ssh_allowed_networks": [f"{_gateway()}/32"],
                "backup_restic_password": _sandbox_secret("restic-password"),
            },
        }
    }
    inv = paths.sandbox_inventory()
    inv.touch(mode=0o600)
    inv.chmod(0o600)  # holds the sandbox's throwaway restic password
    inv.write_text(
        f"---\n# Written by `homeport sandbox up` for container {CONTAINER}; rewritten on every `up`.\n"
        + yaml.safe_dump(doc, sort_keys=False),
        encoding="utf-8",
    )
    return inv


def _gateway() -> str:
    gateway = _docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.Gateway}} {{end}}", CONTAINER).stdout
    if not gateway.split():
        raise SandboxError(f"{CONTAINER} has no network gateway")
    return gateway.split()[0]


def _sandbox_secret(name: str) -> str:
    """A secret of the sandbox, generated once and kept (0600) in .homeport/sandbox/ so reruns reuse it."""
    path = paths.sandbox_dir() / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip()


def _wait_for_ssh(port: int) -> None:
    deadline = time.monotonic() + SSH_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        r = subprocess.run([*ssh_base(port), "true"], capture_output=True, text=True, check=False)
        if r.returncode == 0:
            return
        last = r.stderr.strip()
        time.sleep(1)
    raise SandboxError(f"SSH to the sandbox on 127.0.0.1:{port} failed: {last}")


def up(release: int, console: Console) -> Path:
    """Start (or reuse) the sandbox and return its inventory."""
    _require_docker()
    state = _state()
    if state is None:
        _ensure_image(release, console)
        console.print(f"starting {CONTAINER} from {image(release)}")
        _docker(
            "run", "-d", "--name", CONTAINER, "--hostname", CONTAINER, "--label", LABEL,
            *RUN_FLAGS, "-p", "127.0.0.1::22", image(release), "/lib/systemd/systemd",
        )  # fmt: skip
    elif state != "running":
        _docker("start", CONTAINER)
    _wait_for_systemd()
    _provision(_ensure_key())
    port = _ssh_port()
    inv = _write_state(port)
    _wait_for_ssh(port)
    return inv


def down() -> bool:
    """Remove the sandbox container (only a container carrying the sandbox label). True when one was removed."""
    r = _docker("ps", "-aq", "--filter", f"name=^{CONTAINER}$", "--filter", f"label={LABEL}", check=False)
    if not r.stdout.strip():
        return False
    _docker("rm", "-f", "-v", CONTAINER)
    return True


def ssh(command: list[str]) -> int:
    if _state() != "running":
        raise SandboxError("no sandbox running: run `homeport sandbox up` first")
    base = ssh_base(_ssh_port())
    if not command and sys.stdin.isatty():
        base.insert(1, "-t")
    return subprocess.run([*base, *command], check=False).returncode
