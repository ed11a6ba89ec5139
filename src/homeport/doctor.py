"""`homeport doctor`: local prerequisites, then every inventory host over SSH (reachability with host key checking,
python3, measured round-trip time over a ControlMaster connection)."""

from __future__ import annotations

import importlib.metadata
import shlex
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultSecret
from ansible.release import __version__ as ansible_core_version
from ansible.vars.manager import VariableManager
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from homeport import vault
from homeport.runner import SSH_ARGS, control_path_dir

MIN_ANSIBLE_CORE = (2, 17)
RTT_SAMPLES = 5
RTT_WARN_MS = 150
SSH_TIMEOUT = 15


@dataclass
class Check:
    check: str
    status: str  # ok | warn | fail
    detail: str = ""
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def local_checks() -> list[Check]:
    rows: list[Check] = []
    ok = _version_tuple(ansible_core_version) >= MIN_ANSIBLE_CORE
    rows.append(
        Check(
            "ansible-core", "ok" if ok else "fail", ansible_core_version, "" if ok else "pip install -U 'ansible>=11'"
        )
    )
    try:
        rows.append(Check("ansible-runner", "ok", importlib.metadata.version("ansible-runner")))
    except importlib.metadata.PackageNotFoundError:
        rows.append(Check("ansible-runner", "fail", "not installed", "pip install ansible-runner"))
    ssh = shutil.which("ssh")
    if ssh:
        r = subprocess.run([ssh, "-V"], capture_output=True, text=True, check=False)
        rows.append(Check("ssh client", "ok", (r.stderr or r.stdout).strip()))
    else:
        rows.append(Check("ssh client", "fail", "ssh not found", "install OpenSSH (apt-get install openssh-client)"))
    keys = [p.name for p in sorted((Path.home() / ".ssh").glob("id_*")) if p.suffix != ".pub"]
    rows.append(
        Check("SSH key in ~/.ssh", "ok", ", ".join(keys))
        if keys
        else Check("SSH key in ~/.ssh", "warn", "no id_* key", "ssh-keygen -t ed25519, then ssh-copy-id to the host")
    )
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0:
        rows.append(Check("Docker (tests, sandbox)", "ok", "engine reachable"))
    else:
        rows.append(
            Check(
                "Docker (tests, sandbox)",
                "warn",
                "not reachable" if docker else "docker not installed",
                "only needed for `homeport sandbox` and the tests: start Docker",
            )
        )
    rows.append(
        Check("debootstrap (sandbox image)", "ok", shutil.which("debootstrap") or "")
        if shutil.which("debootstrap")
        else Check(
            "debootstrap (sandbox image)",
            "warn",
            "not installed",
            "only needed to build the sandbox image: apt-get install debootstrap",
        )
    )
    return rows


@dataclass
class Target:
    name: str
    address: str
    user: str | None
    port: int | None
    key: str | None
    common_args: str


def inventory_vars(inventory: Path) -> list[tuple[Target, dict, DataLoader]]:
    """Hosts of the group homeport (all hosts when it is empty): connection settings, all variables, the loader."""
    loader = DataLoader()
    password = vault.resolve_password()
    if password:
        loader.set_vault_secrets([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password.encode()))])
    manager = InventoryManager(loader=loader, sources=[str(inventory)])
    variables = VariableManager(loader=loader, inventory=manager)
    hosts = manager.get_hosts("homeport") or manager.get_hosts("all")
    out = []
    for host in hosts:
        hv = variables.get_vars(host=host)

        def get(name: str, hv=hv):
            value = hv.get(name)
            return str(value) if value not in (None, "") else None

        port = get("ansible_port")
        target = Target(
            name=host.name,
            address=get("ansible_host") or host.name,
            user=get("ansible_user"),
            port=int(port) if port else None,
            key=get("ansible_ssh_private_key_file"),
            common_args=" ".join(filter(None, [get("ansible_ssh_common_args"), get("ansible_ssh_extra_args")])),
        )
        out.append((target, hv, loader))
    return out


def inventory_targets(inventory: Path) -> list[Target]:
    """Hosts of the group homeport (all hosts when it is empty) with their connection settings."""
    return [target for target, _hv, _loader in inventory_vars(inventory)]


def ssh_command(target: Target, *remote: str) -> list[str]:
    cmd = ["ssh", *shlex.split(SSH_ARGS)]
    cmd += ["-o", f"ControlPath={control_path_dir()}/doctor-%C", "-o", "BatchMode=yes"]
    cmd += ["-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={SSH_TIMEOUT}"]
    cmd += shlex.split(target.common_args)
    if target.port:
        cmd += ["-p", str(target.port)]
    if target.key:
        cmd += ["-i", str(Path(target.key).expanduser())]
    cmd.append(f"{target.user}@{target.address}" if target.user else target.address)
    return cmd + list(remote)


def _ssh(target: Target, *remote: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ssh_command(target, *remote), capture_output=True, text=True, timeout=SSH_TIMEOUT * 2, check=False
    )


def host_checks(target: Target) -> list[Check]:
    name = target.name
    control_path_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        r = _ssh(target, "true")
    except subprocess.TimeoutExpired:
        return [Check(f"{name}: SSH", "fail", "timed out", f"check that {target.address} is up and reachable")]
    if r.returncode != 0:
        msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"ssh exited {r.returncode}"
        if "Host key verification failed" in r.stderr or "No ED25519 host key is known" in r.stderr:
            fix = f"connect once with `ssh {target.address}` and check the fingerprint, or add it to known_hosts"
        elif "Permission denied" in r.stderr:
            fix = f"install your public key: ssh-copy-id {target.user or ''}@{target.address}".replace(" @", " ")
        else:
            fix = f"check the address {target.address} and that sshd runs (macOS: System Settings > Remote Login)"
        return [Check(f"{name}: SSH", "fail", msg, fix)]
    rows = [Check(f"{name}: SSH", "ok", f"{target.user or ''}@{target.address} (host key verified)".lstrip("@"))]
    py = _ssh(target, "python3 -c 'import sys; print(sys.version.split()[0])'")
    rows.append(
        Check(f"{name}: python3", "ok", py.stdout.strip())
        if py.returncode == 0
        else Check(
            f"{name}: python3",
            "fail",
            "python3 not found",
            "macOS: xcode-select --install; Debian: apt-get install python3",
        )
    )
    samples = []
    for _ in range(RTT_SAMPLES):
        start = time.monotonic()
        if _ssh(target, "true").returncode == 0:
            samples.append((time.monotonic() - start) * 1000)
    if samples:
        median = statistics.median(samples)
        rows.append(
            Check(
                f"{name}: round trip",
                "ok" if median <= RTT_WARN_MS else "warn",
                f"median {median:.0f} ms over {len(samples)} SSH commands (ControlMaster)",
                "" if median <= RTT_WARN_MS else "a far link: prefer Tailscale direct connections over DERP relays",
            )
        )
    return rows


def tailnet_checks(peers: list[str]) -> list[Check]:
    """Tailscale on this laptop and the tailnet latency to each host (warnings: the LAN works too)."""
    try:
        from homeport import tailnet  # noqa: PLC0415 - imported only when the doctor runs
    except ImportError:
        return []
    return [
        Check(row.name, "ok" if row.ok else "warn", row.detail, row.fix) for row in tailnet.controller_status(peers)
    ]


def run_checks(inventory: Path | None) -> list[Check]:
    rows = local_checks()
    if inventory is None:
        rows += tailnet_checks([])
        rows.append(Check("inventory", "warn", "no ./inventory", "homeport init --host ADDR --user NAME"))
        return rows
    try:
        targets = inventory_targets(inventory)
    except Exception as exc:  # an inventory that does not load is a failed check, not a crash
        return [*rows, Check("inventory", "fail", str(exc).splitlines()[0], f"fix {inventory}")]
    if not targets:
        return [*rows, Check("inventory", "fail", f"no hosts in {inventory}", "add the host to the group homeport")]
    rows += tailnet_checks([t.address for t in targets if t.address not in {"localhost", "127.0.0.1"}])
    rows.append(Check("inventory", "ok", f"{inventory}: {', '.join(t.name for t in targets)}"))
    for target in targets:
        rows += host_checks(target)
    return rows


def render(console: Console, rows: list[Check]) -> None:
    table = Table(title="homeport doctor", title_justify="left")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    table.add_column("what to fix")
    style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for r in rows:
        table.add_row(escape(r.check), f"[{style.get(r.status, '')}]{r.status}[/]", escape(r.detail), escape(r.fix))
    console.print(table)
