"""`homeport doctor`: local prerequisites, then every inventory host over SSH (reachability with host key checking,
python3, measured round-trip time over a ControlMaster connection)."""

from __future__ import annotations

import importlib.metadata
import platform
import shlex
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultSecret
from ansible.release import __version__ as ansible_core_version
from ansible.vars.manager import VariableManager
from rich.console import Console
from rich.table import Table

from homeport import inventory_check, vault
from homeport.runner import SSH_ARGS, control_path_dir
from homeport.safe_text import markup

MIN_ANSIBLE_CORE = (2, 17)
BECOME_PASSWORD_VARS = ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass")
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


def laptop_os() -> str:
    """Darwin on a Mac laptop, Linux elsewhere (the install commands differ)."""
    return platform.system()


# The laptop's prerequisites, each with the command that installs it: Homebrew on macOS, apt on Debian/Ubuntu.
INSTALL = {
    "Darwin": {
        "ssh": "macOS ships OpenSSH: check that /usr/bin/ssh exists (xcode-select --install restores the tools)",
        "docker": "brew install colima docker && colima start (or install Docker Desktop)",
        "tailscale": "brew install --cask tailscale (or the Mac App Store app), then sign in",
        "python": "brew install python@3.12",
    },
    "Linux": {
        "ssh": "sudo apt-get install openssh-client",
        "docker": "sudo apt-get install docker.io (then: sudo usermod -aG docker $USER, and log in again)",
        "debootstrap": "sudo apt-get install debootstrap",
        "tailscale": "curl -fsSL https://tailscale.com/install.sh | sh, then sudo tailscale up",
        "python": "sudo apt-get install python3 python3-venv",
    },
}


def install_hint(tool: str, os_name: str | None = None) -> str:
    hints = INSTALL.get(os_name or laptop_os(), INSTALL["Linux"])
    return hints.get(tool, "")


def local_checks() -> list[Check]:
    rows: list[Check] = []
    os_name = laptop_os()
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
        rows.append(Check("ssh client", "fail", "ssh not found", install_hint("ssh", os_name)))
    keys = [p.name for p in sorted((Path.home() / ".ssh").glob("id_*")) if p.suffix != ".pub"]
    rows.append(
        Check("SSH key in ~/.ssh", "ok", ", ".join(keys))
        if keys
        else Check("SSH key in ~/.ssh", "warn", "no id_* key", "ssh-keygen -t ed25519, then ssh-copy-id to the host")
    )
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0:
        rows.append(Check("Docker (demo, sandbox, tests)", "ok", "engine reachable"))
    else:
        start = "colima start" if os_name == "Darwin" else "sudo systemctl start docker"
        rows.append(
            Check(
                "Docker (demo, sandbox, tests)",
                "warn",
                "installed but the engine does not answer" if docker else "docker not installed",
                f"only for `make demo`, the sandbox and the tests: {start}"
                if docker
                else f"only for `make demo`, the sandbox and the tests: {install_hint('docker', os_name)}",
            )
        )
    if os_name != "Darwin":
        # the sandbox image comes from Debian's official image when a registry answers; debootstrap otherwise
        rows.append(
            Check("debootstrap (sandbox image without a registry)", "ok", shutil.which("debootstrap") or "")
            if shutil.which("debootstrap")
            else Check(
                "debootstrap (sandbox image without a registry)",
                "warn",
                "not installed",
                "needed only when Docker reaches no registry: " + install_hint("debootstrap", os_name),
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
    become_password_set: bool = False  # ansible_become_password given (e.g. from the vault); its value is never read


class InventoryError(Exception):
    """The inventory does not load (invalid YAML, a tag Ansible does not know, a vault it cannot open): the verbs
    that load it themselves (ps, logs, exec, restart, connect, tunnel, audit) exit 3 with this message."""


def check_inventory(inventory: Path) -> None:
    """Raise InventoryError naming file:line:column when the inventory's YAML does not load (ansible itself names
    neither for a group_vars file, and skips a broken inventory file with a warning)."""
    problems = inventory_check.yaml_problems(inventory) if inventory.exists() else []
    if problems:
        raise InventoryError("; ".join(str(p) for p in problems))


def inventory_vars(inventory: Path) -> list[tuple[Target, dict, DataLoader]]:
    """Hosts of the group homeport (all hosts when it is empty): connection settings, all variables, the loader.
    An inventory that does not load raises InventoryError (never ansible's traceback)."""
    check_inventory(inventory)
    try:
        return _inventory_vars(inventory)
    except AnsibleError as exc:
        raise InventoryError(f"{inventory}: {' '.join(str(exc).split())}") from None


def _inventory_vars(inventory: Path) -> list[tuple[Target, dict, DataLoader]]:
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
            become_password_set=any(hv.get(k) not in (None, "") for k in BECOME_PASSWORD_VARS),
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


# One remote call: the OS, whether sudo works without a password, and on a Mac FileVault and the macOS-update
# policy. `fdesetup status` prints "FileVault is On." / "FileVault is Off." (fdesetup(8)); the automatic macOS
# update install is the key AutomaticallyInstallMacOSUpdates of /Library/Preferences/com.apple.SoftwareUpdate
# (Apple's SoftwareUpdate payload: https://developer.apple.com/documentation/devicemanagement/softwareupdate;
# unset means the macOS default, on), which the hardening role sets (hardening_macos_softwareupdate_*).
HOST_FACTS_SCRIPT = (
    'echo "os=$(uname -s)"; if sudo -n true 2>/dev/null; then echo sudo=ok; else echo sudo=password; fi; '
    'if [ "$(uname -s)" = Darwin ]; then '
    'echo "filevault=$(fdesetup status 2>/dev/null | head -n 1)"; '
    'echo "macos_updates=$(defaults read /Library/Preferences/com.apple.SoftwareUpdate '
    'AutomaticallyInstallMacOSUpdates 2>/dev/null || echo unset)"; fi'
)


def parse_host_facts(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def host_fact_checks(name: str, facts: dict[str, str], become_password_set: bool) -> list[Check]:
    """sudo (every homeport run changes the system through it), and on a Mac FileVault and automatic updates."""
    rows = []
    if facts.get("sudo") == "ok":
        rows.append(Check(f"{name}: sudo", "ok", "passwordless sudo works (every run uses it)"))
    elif become_password_set:
        rows.append(Check(f"{name}: sudo", "ok", "sudo asks a password: the inventory's become password is used"))
    else:
        rows.append(
            Check(
                f"{name}: sudo",
                "fail",
                "sudo asks a password and the inventory gives none",
                'every homeport run uses sudo: keep a NOPASSWD rule (on the host: echo "$USER ALL=(ALL) NOPASSWD: '
                'ALL" | sudo tee /etc/sudoers.d/homeport), or put vault_become_password in vault.yml and '
                'ansible_become_password: "{{ vault_become_password }}" in group_vars/homeport/main.yml',
            )
        )
    if facts.get("os") != "Darwin":
        return rows
    filevault = facts.get("filevault", "")
    if "FileVault is Off" in filevault:
        rows.append(Check(f"{name}: FileVault", "ok", "off: the Mac boots unattended after a power cut"))
    else:
        rows.append(
            Check(
                f"{name}: FileVault",
                "warn",
                filevault or "fdesetup status gave no answer",
                "with FileVault on, a restart waits at the unlock screen (no SSH, Tailscale, Docker) until someone "
                "types the password: run `sudo fdesetup authrestart` before planned restarts, or turn FileVault off",
            )
        )
    updates = facts.get("macos_updates", "unset")
    if updates in ("0", "false"):
        rows.append(
            Check(f"{name}: automatic macOS updates", "ok", "not installed by themselves (no surprise restart)")
        )
    else:
        rows.append(
            Check(
                f"{name}: automatic macOS updates",
                "warn",
                "installed by themselves, restarting the Mac"
                + (" (not set: the macOS default)" if updates == "unset" else ""),
                "homeport bootstrap turns it off (hardening_macos_softwareupdate_install_macos_updates: false); "
                "install macOS updates when you can reach the Mac",
            )
        )
    return rows


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
    facts = _ssh(target, HOST_FACTS_SCRIPT)
    rows += host_fact_checks(name, parse_host_facts(facts.stdout), target.become_password_set)
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
        # details quote the host (ssh's stderr, its answers): shown escaped, never markup (homeport.safe_text)
        table.add_row(markup(r.check), f"[{style.get(r.status, '')}]{r.status}[/]", markup(r.detail), markup(r.fix))
    console.print(table)
