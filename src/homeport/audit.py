"""`homeport audit`: checks of each host by tools homeport did not write.

- ``ssh-audit`` (PyPI ``ssh-audit`` >= 3.3, run on the controller) against the host's sshd, reached the way Ansible
  reaches it: ``ansible_host:ansible_port``, through the host's ProxyCommand/ProxyJump when it has one (a local relay
  runs that command per connection, as ssh does), or the container's address for a docker connection. Every
  algorithm ssh-audit grades ``fail`` or ``warn`` is a finding.
- ``nmap`` (controller) against the host's LAN-facing address: every open TCP port must be one the user allowed (SSH
  and the ``hardening_firewall_allowed_ports`` the firewall opens). ``--scan-from-container`` runs the scan inside
  another container's network namespace (a second machine on the same network, for tests).
- ``lan`` (Debian): what a LAN neighbour reaches around the firewall (issue 27). The host lists its TCP ports bound
  to loopback or to its tailnet address (``ss``) and the ports its engine publishes there (``docker ps``); the
  controller (or ``--scan-from-container``'s namespace) then sends hand-made SYNs to the host's MAC with those
  destination addresses (homeport.lanprobe). Any answer fails: Docker before 28 DNATs such frames to the container
  (moby issue 45610). The probe needs Linux, root and the host on the same Ethernet segment; from anywhere else the
  check warns and says where to run it.
- Debian: ``lynis audit system`` from a tree copied into a temporary directory on the host and removed afterwards
  (Lynis is never installed there): the hardening index and the warnings. ``debsecan`` runs on the controller
  against the host's dpkg status file: every package with a known vulnerability that has a fix is a finding.
- macOS: firewall, stealth mode, FileVault, automatic security updates and SIP, read from the system's own tools.

Each check ends ``pass``, ``fail``, ``warn`` (reported, not failing: FileVault is the owner's choice), ``error`` (the
check could not run: counts as a failure) or ``skipped`` (the user left it out). The parsers are pure functions over
the tools' documented output and are unit-tested with recorded outputs (tests/unit/fixtures/audit/).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHECKS_DEBIAN = ("ssh", "ports", "lan", "lynis", "debsecan")
CHECKS_DARWIN = ("ssh", "ports", "macos")
ALL_CHECKS = ("ssh", "ports", "lan", "lynis", "debsecan", "macos")
SSH_AUDIT_MIN = (3, 3)
LYNIS_TIMEOUT = 600
SCAN_TIMEOUT = 600
# Lynis's own layout in the Debian package (the tree is reassembled as an untarred upstream release)
LYNIS_DEBIAN = {
    "lynis": Path("/usr/sbin/lynis"),
    "include": Path("/usr/share/lynis/include"),
    "db": Path("/usr/share/lynis/db"),
    "plugins": Path("/etc/lynis/plugins"),
    "default.prf": Path("/etc/lynis/default.prf"),
}
# the tree goes to a fresh temporary directory and is removed however the run ends (trap on EXIT)
LYNIS_REMOTE = (
    'd=$(mktemp -d /tmp/homeport-lynis.XXXXXX) && trap \'rm -rf "$d"\' EXIT && tar -C "$d" -xzf - && cd "$d" && '
    '{ ./lynis audit system --quick --no-colors --logfile "$d/lynis.log" --report-file "$d/report.dat" '
    '>/dev/null 2>"$d/stderr" || true; } && if [ -s "$d/report.dat" ]; then cat "$d/report.dat"; '
    'else tail -5 "$d/stderr" >&2; exit 1; fi'
)
MACOS_COMMANDS = {
    "firewall": "/usr/libexec/ApplicationFirewall/socketfilterfw --getglobalstate",
    "stealth": "/usr/libexec/ApplicationFirewall/socketfilterfw --getstealthmode",
    "filevault": "fdesetup status",
    "updates": "defaults read /Library/Preferences/com.apple.SoftwareUpdate",
    "sip": "csrutil status",
}
# automatic security updates: the keys the hardening role sets (System Settings > Software Update > Automatic updates)
MACOS_UPDATE_KEYS = ("AutomaticCheckEnabled", "AutomaticDownload", "CriticalUpdateInstall", "ConfigDataInstall")


class AuditError(Exception):
    """An input the audit refuses (exit 3) before touching any host."""


@dataclass
class CheckResult:
    check: str
    status: str  # pass | fail | warn | error | skipped
    detail: str = ""
    findings: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Target:
    """One host as the audit reaches it (from the inventory)."""

    name: str
    os_family: str = "Debian"  # Debian | Darwin
    connection: str = "ssh"  # ssh | docker | local
    address: str = ""
    port: int = 22
    user: str | None = None
    key: str | None = None
    common_args: str = ""
    become: bool = True
    lan_address: str | None = None  # the address scanned; default: address
    allowed_tcp: set[int] = field(default_factory=set)


# ---- pass/fail logic over recorded outputs (pure functions) -----------------------------------------------------
def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def grade_ssh_audit(report: dict) -> CheckResult:
    """ssh-audit's JSON (``ssh-audit -j``): every kex/host key/cipher/MAC graded fail or warn is a finding.

    CVEs ssh-audit lists are matched on the upstream version in the banner; Debian backports fixes without changing
    that version, so they are reported in the data but decided by debsecan, which knows the Debian package version."""
    findings = []
    for category in ("kex", "key", "enc", "mac"):
        for alg in report.get(category) or []:
            notes = alg.get("notes") or {}
            for level in ("fail", "warn"):
                for note in notes.get(level) or []:
                    findings.append(f"{category} {alg.get('algorithm')}: {level}: {note}")
    banner = (report.get("banner") or {}).get("raw", "")
    data = {
        "banner": banner,
        "cves": [c.get("name") for c in report.get("cves") or []],
        "algorithms": {c: [a.get("algorithm") for a in report.get(c) or []] for c in ("kex", "key", "enc", "mac")},
    }
    if findings:
        return CheckResult("ssh", "fail", f"{len(findings)} algorithm grade(s) fail/warn ({banner})", findings, data)
    return CheckResult("ssh", "pass", f"no algorithm graded fail or warn ({banner})", [], data)


def parse_nmap_xml(text: str) -> dict[str, list[int]]:
    """nmap's XML (``-oX``): TCP ports by state (open, closed, filtered, ...), ports nmap summarised as extraports
    are not listed (they are all in the reported state, never open)."""
    root = ET.fromstring(text)  # noqa: S314 - nmap's own output, written on this machine
    states: dict[str, list[int]] = {}
    for port in root.iter("port"):
        if port.get("protocol") != "tcp":
            continue
        state = port.find("state")
        name = (state.get("state") if state is not None else None) or "unknown"
        states.setdefault(name, []).append(int(port.get("portid") or 0))
    hosts_up = [
        h for h in root.iter("host") if (status := h.find("status")) is not None and status.get("state") == "up"
    ]
    states["_hosts_up"] = [len(hosts_up)]
    return states


def grade_ports(states: dict[str, list[int]], allowed: set[int], address: str, scanner: str) -> CheckResult:
    if not states.get("_hosts_up", [0])[0]:
        return CheckResult("ports", "error", f"nmap saw no host at {address} (from {scanner})")
    open_ports = sorted(states.get("open", []))
    unexpected = [p for p in open_ports if p not in allowed]
    data = {"address": address, "scanner": scanner, "open": open_ports, "allowed": sorted(allowed)}
    if unexpected:
        return CheckResult(
            "ports",
            "fail",
            f"{address} from {scanner}: open {open_ports}, allowed {sorted(allowed)}",
            [f"tcp/{p} is open and not allowed" for p in unexpected],
            data,
        )
    return CheckResult("ports", "pass", f"{address} from {scanner}: open {open_ports or 'none'} (allowed)", [], data)


def parse_lynis_report(text: str) -> dict:
    """Lynis's report file (key=value lines; ``key[]=`` repeats; warnings and suggestions are
    ``TEST-ID|text|details|solution|``)."""
    out: dict = {"warnings": [], "suggestions": []}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key in ("warning[]", "suggestion[]"):
            parts = value.split("|")
            item = {"id": parts[0], "text": parts[1] if len(parts) > 1 else "", "details": (parts[2:3] or [""])[0]}
            out["warnings" if key == "warning[]" else "suggestions"].append(item)
        elif key in ("hardening_index", "lynis_version", "tests_executed", "os_name", "os_version"):
            out[key] = value
    if "hardening_index" in out:
        out["hardening_index"] = int(out["hardening_index"])
    if "tests_executed" in out:
        out["tests_executed"] = len([t for t in out["tests_executed"].split("|") if t])
    return out


def grade_lynis(report: dict, min_index: int, accepted: dict[str, str]) -> CheckResult:
    index = report.get("hardening_index")
    if index is None:
        return CheckResult("lynis", "error", "Lynis wrote no hardening index")
    findings = []
    if index < min_index:
        findings.append(f"hardening index {index} is below the held minimum {min_index}")
    for w in report["warnings"]:
        if w["id"] not in accepted:
            findings.append(f"warning {w['id']}: {w['text']}")
    data = {
        "hardening_index": index,
        "min_index": min_index,
        "lynis_version": report.get("lynis_version"),
        "tests_executed": report.get("tests_executed"),
        "warnings": report["warnings"],
        "accepted_warnings": {w["id"]: accepted[w["id"]] for w in report["warnings"] if w["id"] in accepted},
        "suggestions": [
            f"{s['id']}: {s['text']}" + (f" ({s['details']})" if s["details"] not in ("", "-") else "")
            for s in report["suggestions"]
        ],
    }
    detail = f"hardening index {index} (held minimum {min_index}), {len(report['warnings'])} warning(s)"
    return CheckResult("lynis", "fail" if findings else "pass", detail, findings, data)


def parse_debsecan(text: str) -> list[dict]:
    """debsecan ``--format summary``: ``CVE-ID PACKAGE (fixed, remotely exploitable, high urgency)``."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"^(\S+)\s+(\S+)(?:\s+\((.*)\))?\s*$", line.strip())
        if m:
            notes = [n.strip() for n in (m.group(3) or "").split(",") if n.strip()]
            rows.append({"id": m.group(1), "package": m.group(2), "notes": notes})
    return rows


def grade_debsecan(rows: list[dict], suite: str) -> CheckResult:
    fixed = [r for r in rows if "fixed" in r["notes"]]
    packages = sorted({r["package"] for r in fixed})
    data = {"suite": suite, "fixed": len(fixed), "packages": packages}
    if fixed:
        return CheckResult(
            "debsecan",
            "fail",
            f"{len(fixed)} vulnerabilit(ies) with a fix available in {len(packages)} package(s) ({suite})",
            [f"{r['id']} {r['package']} ({', '.join(r['notes'])})" for r in fixed],
            data,
        )
    return CheckResult("debsecan", "pass", f"no package with a fixed vulnerability ({suite})", [], data)


def parse_defaults_plist(text: str) -> dict[str, str]:
    """``defaults read DOMAIN`` prints an old-style plist: ``{ Key = value; ... }``."""
    return {
        m.group(1).strip('"'): m.group(2).strip('"')
        for m in re.finditer(r'^\s*("?[\w.]+"?)\s*=\s*(.*?);\s*$', text, re.M)
    }


def grade_macos(outputs: dict[str, tuple[int, str]]) -> list[CheckResult]:
    """Outputs of MACOS_COMMANDS as (exit code, stdout+stderr). Formats (Apple's man pages and tools):
    socketfilterfw "Firewall is enabled. (State = 1)" / "Firewall is disabled. (State = 0)", stealth
    "Firewall stealth mode is on" (older releases: "Stealth mode enabled"), fdesetup "FileVault is On." / "Off.",
    csrutil "System Integrity Protection status: enabled.", defaults read: the plist of the domain."""
    results = []

    def out(name):
        return outputs.get(name, (127, ""))

    rc, text = out("firewall")
    m = re.search(r"State = (\d)", text)
    if rc != 0 or not m:
        results.append(CheckResult("macos-firewall", "error", f"socketfilterfw: {text.strip()[:120]}"))
    else:
        on = m.group(1) in ("1", "2")
        results.append(CheckResult("macos-firewall", "pass" if on else "fail", text.strip()))
    rc, text = out("stealth")
    low = text.lower()
    if rc != 0 or ("stealth" not in low):
        results.append(CheckResult("macos-stealth", "error", f"socketfilterfw: {text.strip()[:120]}"))
    else:
        on = bool(re.search(r"stealth mode (is on|enabled)", low))
        results.append(CheckResult("macos-stealth", "pass" if on else "fail", text.strip()))
    rc, text = out("filevault")
    if "FileVault is On" in text:
        results.append(CheckResult("macos-filevault", "pass", text.strip().splitlines()[0]))
    elif "FileVault is Off" in text:
        results.append(
            CheckResult(
                "macos-filevault",
                "warn",
                "FileVault is Off: the disk is readable by whoever takes the Mac; the owner's choice for unattended "
                "restarts (docs/security.md)",
            )
        )
    else:
        results.append(CheckResult("macos-filevault", "error", f"fdesetup: {text.strip()[:120]}"))
    rc, text = out("updates")
    values = parse_defaults_plist(text) if rc == 0 else {}
    off = [k for k in MACOS_UPDATE_KEYS if values.get(k) != "1"]
    if rc != 0:
        results.append(CheckResult("macos-updates", "fail", "automatic updates are not configured (no preferences)"))
    else:
        results.append(
            CheckResult(
                "macos-updates",
                "fail" if off else "pass",
                f"not on: {', '.join(off)}" if off else "automatic check, download and security updates on",
                [f"{k} is not 1" for k in off],
            )
        )
    rc, text = out("sip")
    m = re.search(r"System Integrity Protection status: (\w+)", text)
    if not m:
        results.append(CheckResult("macos-sip", "error", f"csrutil: {text.strip()[:120]}"))
    else:
        results.append(CheckResult("macos-sip", "pass" if m.group(1) == "enabled" else "fail", text.strip()))
    return results


def allowed_tcp_ports(hostvars: dict, ssh_port: int) -> set[int]:
    """TCP ports the user allowed on the LAN-facing address: SSH when a LAN range may reach it, the extra ports the
    firewall opens (public ones always, restricted ones when a LAN range is allowed)."""
    lan = bool(hostvars.get("hardening_ssh_allowed_networks") or [])
    ports = {ssh_port} if lan else set()
    for p in hostvars.get("hardening_firewall_allowed_ports", [{"port": 41641, "proto": "udp", "public": True}]):
        if str(p.get("proto", "tcp")) != "tcp":
            continue
        if p.get("public") or lan:
            ports.add(int(p["port"]))
    return ports


# what the host says it listens on, for the lan check: sockets (ss), the engine's published ports, its addresses
LAN_LISTING = (
    "ss -Hltn 2>/dev/null; echo '--- docker'; docker ps --format '{{.Names}} {{.Ports}}' 2>/dev/null; "
    "echo '--- addresses'; ip -o -4 addr show 2>/dev/null"
)
TAILNET_V4 = ipaddress.ip_network("100.64.0.0/10")


def lan_destinations(listing: str, tailnet_interface: str = "tailscale0") -> dict[tuple[str, int], str]:
    """(address, port) -> what listens there, for every TCP port bound to a loopback address or to one of the host's
    tailnet addresses (on tailnet_interface, or in 100.64.0.0/10), from LAN_LISTING's output. Wildcard bindings are
    the ports check's business (the user published them on purpose, or nmap finds them)."""
    sockets, _, rest = listing.partition("--- docker")
    published, _, addresses = rest.partition("--- addresses")
    tailnet = set()
    for line in addresses.splitlines():
        m = re.match(r"\d+:\s+(\S+)\s+inet\s+([\d.]+)/", line)
        if m and (m.group(1) == tailnet_interface or ipaddress.ip_address(m.group(2)) in TAILNET_V4):
            tailnet.add(m.group(2))

    def wanted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return ip.version == 4 and (ip.is_loopback or address in tailnet)

    found: dict[tuple[str, int], str] = {}
    for line in published.splitlines():
        name, _, ports = line.strip().partition(" ")
        for m in re.finditer(r"([\d.]+):(\d+)->(\d+)/tcp", ports):
            if wanted(m.group(1)):
                found[(m.group(1), int(m.group(2)))] = f"container {name} (published {m.group(0)})"
    for line in sockets.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[0] == "LISTEN":
            address, _, port = cols[3].rpartition(":")
            address = address.split("%")[0]
            if wanted(address) and port.isdigit():
                found.setdefault((address, int(port)), "a listening socket")
    return found


def grade_lan(answers: list[dict], destinations: dict[tuple[str, int], str], prober: str) -> CheckResult:
    """Fail for every destination that answered the neighbour's SYN with a SYN-ACK."""
    opened = [a for a in answers if a.get("state") == "open"]
    findings = [
        f"{a['address']}:{a['port']} ({destinations.get((a['address'], a['port']), '?')}) answered a LAN neighbour's "
        f"frame to the host's MAC (SYN-ACK from {a.get('source') or '?'})"
        for a in opened
    ]
    detail = f"{len(answers)} loopback/tailnet port(s) probed from {prober}: " + (
        f"{len(opened)} answered" if opened else "none answered"
    )
    return CheckResult("lan", "fail" if opened else "pass", detail, findings, {"answers": answers})


def summarise(results: dict[str, list[CheckResult]]) -> dict:
    hosts = {}
    for name, checks in results.items():
        lynis = next((c for c in checks if c.check == "lynis" and "hardening_index" in c.data), None)
        hosts[name] = {
            "passed": not any(c.status in ("fail", "error") for c in checks),
            "lynis_index": lynis.data["hardening_index"] if lynis else None,
            "checks": [c.as_dict() for c in checks],
        }
    return {"passed": all(h["passed"] for h in hosts.values()) and bool(hosts), "hosts": hosts}


# ---- reaching the host ------------------------------------------------------------------------------------------
class Relay:
    """A local TCP listener that runs ``command`` per connection and pipes the socket through its stdin/stdout -
    what ssh does with a ProxyCommand, for tools (ssh-audit) that only take host:port."""

    def __init__(self, command: list[str]):
        self.command = command
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, conn: socket.socket) -> None:
        proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        stdin, stdout = proc.stdin, proc.stdout
        if stdin is None or stdout is None:  # both are pipes (subprocess.PIPE): never None
            return

        def upstream():
            with contextlib.suppress(OSError):
                while data := conn.recv(65536):
                    stdin.write(data)
                    stdin.flush()
            with contextlib.suppress(OSError):
                stdin.close()

        threading.Thread(target=upstream, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := stdout.read1(65536):  # type: ignore[attr-defined]  # a BufferedReader (bufsize=-1)
                conn.sendall(data)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)  # wakes the upstream thread's recv (close alone would not)
        conn.close()
        proc.terminate()
        proc.wait()

    def close(self) -> None:
        self.server.close()


def proxy_command(target: Target) -> list[str] | None:
    """The ProxyCommand ssh would use for this host (ProxyJump J is ``ssh -W [%h]:%p J``, ssh_config(5))."""
    args = shlex.split(target.common_args)
    opts: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-o" and i + 1 < len(args):
            k, _, v = args[i + 1].replace("=", " ", 1).partition(" ")
            opts[k.lower()] = v.strip()
            i += 2
            continue
        if a == "-J" and i + 1 < len(args):
            opts["proxyjump"] = args[i + 1]
            i += 2
            continue
        i += 1
    if opts.get("proxycommand") and opts["proxycommand"].lower() != "none":
        cmd = opts["proxycommand"].replace("%h", target.address).replace("%p", str(target.port))
        cmd = cmd.replace("%r", target.user or "")
        return ["sh", "-c", cmd]
    if opts.get("proxyjump") and opts["proxyjump"].lower() != "none":
        return ["ssh", "-W", f"[{target.address}]:{target.port}", opts["proxyjump"]]
    return None


def host_command(target: Target, script: str) -> list[str]:
    """argv that runs a shell script on the host as root (sudo -n over SSH unless the login is root)."""
    if target.connection == "docker":
        return ["docker", "exec", "-i", target.address, "sh", "-c", script]
    if target.connection == "local":
        return ["sh", "-c", script]
    from homeport.doctor import Target as SshTarget  # noqa: PLC0415 - loads ansible only for SSH hosts
    from homeport.doctor import ssh_command  # noqa: PLC0415

    remote = f"sudo -n sh -c {shlex.quote(script)}" if target.become and target.user != "root" else script
    ssh_target = SshTarget(target.name, target.address, target.user, target.port, target.key, target.common_args)
    return ssh_command(ssh_target, remote)


def run_on_host(target: Target, script: str, stdin: bytes | None = None, timeout: int = 120):
    return subprocess.run(host_command(target, script), input=stdin, capture_output=True, timeout=timeout, check=False)


def docker_address(container: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container],
        capture_output=True,
        text=True,
        check=False,
    )
    addrs = out.stdout.split()
    if out.returncode != 0 or not addrs:
        raise AuditError(f"container {container}: no address ({out.stderr.strip() or 'not on a network'})")
    return addrs[0]


# ---- the checks -------------------------------------------------------------------------------------------------
def ssh_audit_command() -> list[str]:
    """The ssh-audit next to this Python (pip's, current) before the one on PATH (Debian 12's is 2.5: too old)."""
    beside = Path(sys.executable).with_name("ssh-audit")
    return [str(beside) if beside.exists() else (shutil.which("ssh-audit") or "ssh-audit")]


def check_ssh(target: Target) -> CheckResult:
    exe = ssh_audit_command()
    ver = subprocess.run([*exe, "-h"], capture_output=True, text=True, check=False) if Path(exe[0]).exists() else None
    found = re.search(r"ssh-audit v(\d+\.\d+(\.\d+)?)", (ver.stdout + ver.stderr) if ver else "")
    if not found:
        return CheckResult("ssh", "error", "ssh-audit not found: pip install 'ssh-audit>=3.3'")
    if _version(found.group(1)) < SSH_AUDIT_MIN:
        return CheckResult(
            "ssh",
            "error",
            f"ssh-audit {found.group(1)} is too old (it grades current OpenSSH algorithms as unknown): "
            "pip install 'ssh-audit>=3.3'",
        )
    relay = None
    host, port = target.address, target.port
    if target.connection == "docker":
        host = docker_address(target.address)
    elif target.connection == "ssh" and (cmd := proxy_command(target)):
        relay = Relay(cmd)
        host, port = "127.0.0.1", relay.port
    try:
        r = subprocess.run(
            [*exe, "-j", "-t", "15", "-p", str(port), host], capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        if relay:
            relay.close()
    try:
        report = json.loads(r.stdout)
    except ValueError:
        msg = (r.stdout + r.stderr).strip().splitlines()
        return CheckResult("ssh", "error", f"ssh-audit {host}:{port}: {msg[-1] if msg else 'no output'}")
    result = grade_ssh_audit(report)
    result.data["version"] = found.group(1)
    return result


def lan_facing_address(target: Target) -> str:
    """The address the LAN checks aim at: --lan-address, else the container's or the inventory's address."""
    return target.lan_address or (docker_address(target.address) if target.connection == "docker" else target.address)


def scan_namespace(scan_from: str | None) -> tuple[list[str], str] | str:
    """(argv prefix, who scans) for running a scan on this machine or in --scan-from-container's network namespace;
    an error message when that container is not running."""
    if not scan_from:
        return [], "this machine"
    pid = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Pid}}", scan_from], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not pid or pid == "0":
        return f"--scan-from-container {scan_from}: not running"
    return ["nsenter", "-t", pid, "-n"], f"container {scan_from} ({docker_address(scan_from)})"


def check_ports(target: Target, scan_from: str | None, ports: str) -> CheckResult:
    if not shutil.which("nmap"):
        return CheckResult("ports", "error", "nmap not found on this machine: apt-get install nmap / brew install nmap")
    address = lan_facing_address(target)
    where = scan_namespace(scan_from)
    if isinstance(where, str):
        return CheckResult("ports", "error", where)
    prefix, scanner = where
    # a SYN scan when root may send raw packets (no connection is completed: faster), else a connect scan; a LAN
    # address answers fast, so one retry and at least 2000 probes a second (65535 ports in about half a minute)
    scan = "-sS" if os.geteuid() == 0 else "-sT"
    cmd = [*prefix, "nmap", "-Pn", "-n", scan, "-T4", "--max-retries", "1", "--min-rate", "2000", "-p", ports]
    cmd += ["-oX", "-", address]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=SCAN_TIMEOUT, check=False)
    if r.returncode != 0 or "<nmaprun" not in r.stdout:
        return CheckResult("ports", "error", f"nmap: {(r.stderr or r.stdout).strip()[:200]}")
    return grade_ports(parse_nmap_xml(r.stdout), target.allowed_tcp, address, scanner)


def check_lan(target: Target, scan_from: str | None) -> CheckResult:
    r = run_on_host(target, LAN_LISTING, timeout=60)
    if r.returncode != 0 and not r.stdout:
        return CheckResult("lan", "error", f"listing the host's ports: {r.stderr.decode(errors='replace')[-200:]}")
    destinations = lan_destinations(r.stdout.decode(errors="replace"))
    if not destinations:
        return CheckResult("lan", "pass", "nothing is bound to loopback or the tailnet address: nothing to probe")
    address = lan_facing_address(target)
    where = scan_namespace(scan_from)
    if isinstance(where, str):
        return CheckResult("lan", "error", where)
    prefix, prober = where
    dests = [f"{a}:{p}" for a, p in sorted(destinations)]
    cmd = [*prefix, sys.executable, "-m", "homeport.lanprobe", address, *dests]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    try:
        answers = json.loads(out.stdout)
    except json.JSONDecodeError:
        return CheckResult("lan", "error", f"the LAN probe: {(out.stderr or out.stdout).strip()[-200:]}")
    if isinstance(answers, dict):  # {"error": ...}: the probe cannot run from here
        return CheckResult(
            "lan",
            "warn",
            f"not probed: {answers.get('error')}. Run `homeport audit --only lan --lan-address ADDRESS` as root on a "
            "Linux machine on the host's LAN",
        )
    return grade_lan(answers, destinations, prober)


def lynis_tree(source: Path | None = None) -> bytes:
    """A gzipped tar of Lynis laid out as its untarred upstream release (lynis, include/, db/, plugins/,
    default.prf), every member owned by root and not group/world-writable (Lynis refuses its files otherwise)."""
    parts = {k: (source / k if source else v) for k, v in LYNIS_DEBIAN.items()}
    missing = [str(p) for p in parts.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"Lynis not found ({', '.join(missing)}): apt-get install lynis on this machine, or pass --lynis-dir "
            "with the untarred release from cisofy.com"
        )

    def owner_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode &= 0o755
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, path in parts.items():
            tar.add(str(path), arcname=name, filter=owner_root)
    return buf.getvalue()


def check_lynis(target: Target, tree: bytes | None, min_index: int, accepted: dict[str, str]) -> CheckResult:
    r = run_on_host(target, LYNIS_REMOTE, stdin=tree, timeout=LYNIS_TIMEOUT)
    if r.returncode != 0:
        return CheckResult("lynis", "error", f"lynis did not run: {r.stderr.decode(errors='replace').strip()[-200:]}")
    return grade_lynis(parse_lynis_report(r.stdout.decode(errors="replace")), min_index, accepted)


def check_debsecan(target: Target) -> CheckResult:
    exe = shutil.which("debsecan")
    if not exe:
        return CheckResult("debsecan", "error", "debsecan not found on this machine: apt-get install debsecan")
    r = run_on_host(target, '. /etc/os-release && echo "$VERSION_CODENAME" && cat /var/lib/dpkg/status')
    if r.returncode != 0:
        return CheckResult("debsecan", "error", f"could not read the dpkg status: {r.stderr.decode().strip()[:200]}")
    suite, _, status = r.stdout.decode(errors="replace").partition("\n")
    with tempfile.NamedTemporaryFile("w", suffix=".status") as f:
        f.write(status)
        f.flush()
        d = subprocess.run(
            [exe, "--suite", suite.strip(), "--status", f.name, "--only-fixed", "--format", "summary"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if d.returncode != 0:
        msg = " ".join(d.stderr.strip().splitlines()[-2:])
        return CheckResult("debsecan", "error", f"debsecan could not get the vulnerability data: {msg[:240]}")
    return grade_debsecan(parse_debsecan(d.stdout), suite.strip())


def check_macos(target: Target) -> list[CheckResult]:
    outputs = {}
    for name, cmd in MACOS_COMMANDS.items():
        r = run_on_host(target, f"{cmd} 2>&1")
        outputs[name] = (r.returncode, r.stdout.decode(errors="replace"))
    return grade_macos(outputs)


@dataclass
class Options:
    checks: tuple[str, ...] = ALL_CHECKS
    scan_from: str | None = None
    scan_ports: str = "1-65535"
    lynis_min: int = 0
    lynis_accept: dict[str, str] = field(default_factory=dict)
    lynis_dir: Path | None = None


def audit_host(target: Target, opts: Options, tree: bytes | None) -> list[CheckResult]:
    applicable = CHECKS_DARWIN if target.os_family == "Darwin" else CHECKS_DEBIAN
    results = []
    for check in applicable:
        if check not in opts.checks:
            results.append(CheckResult(check, "skipped", "left out (--only/--skip)"))
            continue
        try:
            if check == "ssh":
                results.append(check_ssh(target))
            elif check == "ports":
                results.append(check_ports(target, opts.scan_from, opts.scan_ports))
            elif check == "lan":
                results.append(check_lan(target, opts.scan_from))
            elif check == "lynis":
                results.append(check_lynis(target, tree, opts.lynis_min, opts.lynis_accept))
            elif check == "debsecan":
                results.append(check_debsecan(target))
            elif check == "macos":
                results.extend(check_macos(target))
        except (subprocess.TimeoutExpired, OSError, AuditError) as exc:
            results.append(CheckResult(check, "error", str(exc).splitlines()[0][:240]))
    return results


def run_audit(targets: list[Target], opts: Options) -> dict:
    """Every target in parallel (Lynis takes a minute per host); returns summarise()'s dict."""
    unknown = [c for c in opts.checks if c not in ALL_CHECKS]
    if unknown:
        raise AuditError(f"unknown check(s) {', '.join(unknown)}: choose from {', '.join(ALL_CHECKS)}")
    if not targets:
        raise AuditError("no hosts to audit (check --inventory and --limit)")
    tree = None
    if "lynis" in opts.checks and any(t.os_family != "Darwin" for t in targets):
        try:
            tree = lynis_tree(opts.lynis_dir)
        except FileNotFoundError as exc:
            raise AuditError(str(exc)) from None
    with ThreadPoolExecutor(max_workers=min(4, len(targets))) as pool:
        futures = {t.name: pool.submit(audit_host, t, opts, tree) for t in targets}
    return summarise({name: f.result() for name, f in futures.items()})


# ---- inventory --------------------------------------------------------------------------------------------------
def targets_from_inventory(inventory: Path, limit: str | None = None, lan_address: str | None = None) -> list[Target]:
    """Hosts of the group homeport (all hosts when it is empty), with the connection Ansible uses and the ports the
    hardening settings allow."""
    from ansible.constants import DEFAULT_VAULT_ID_MATCH  # noqa: PLC0415 - ansible loads in ~0.8 s
    from ansible.inventory.manager import InventoryManager  # noqa: PLC0415
    from ansible.parsing.dataloader import DataLoader  # noqa: PLC0415
    from ansible.parsing.vault import VaultSecret  # noqa: PLC0415
    from ansible.template import Templar  # noqa: PLC0415
    from ansible.vars.manager import VariableManager  # noqa: PLC0415

    from homeport import vault  # noqa: PLC0415

    loader = DataLoader()
    password = vault.resolve_password()
    if password:
        loader.set_vault_secrets([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password.encode()))])
    manager = InventoryManager(loader=loader, sources=[str(inventory)])
    if limit:
        manager.subset(limit)
    variables = VariableManager(loader=loader, inventory=manager)
    hosts = (manager.get_hosts("homeport") if "homeport" in manager.groups else []) or manager.get_hosts("all")
    targets = []
    for host in hosts:
        hv = variables.get_vars(host=host)
        keys = (
            "ansible_host",
            "ansible_port",
            "ansible_user",
            "ansible_connection",
            "ansible_ssh_private_key_file",
            "ansible_ssh_common_args",
            "ansible_ssh_extra_args",
            "ansible_become",
            "homeport_os_family",
            "hardening_ssh_allowed_networks",
            "hardening_firewall_allowed_ports",
        )
        templar = Templar(loader=loader, variables=hv)
        v = {k: templar.template(hv[k]) for k in keys if k in hv}
        connection = str(v.get("ansible_connection", "ssh")).rsplit(".", 1)[-1]
        connection = {"community.docker.docker": "docker", "docker_api": "docker"}.get(connection, connection)
        if connection not in ("ssh", "docker", "local", "smart", "paramiko_ssh"):
            raise AuditError(f"{host.name}: ansible_connection {connection} is not one the audit can follow")
        port = int(v.get("ansible_port") or 22)
        args = " ".join(filter(None, [v.get("ansible_ssh_common_args"), v.get("ansible_ssh_extra_args")]))
        target = Target(
            name=host.name,
            os_family="Darwin" if v.get("homeport_os_family") == "Darwin" else "Debian",
            connection="ssh" if connection in ("smart", "paramiko_ssh") else connection,
            address=str(v.get("ansible_host") or host.name),
            port=22 if connection == "docker" else port,
            user=v.get("ansible_user"),
            key=v.get("ansible_ssh_private_key_file"),
            common_args=args,
            become=bool(v.get("ansible_become", True)),
            lan_address=lan_address,
        )
        target.allowed_tcp = allowed_tcp_ports(v, target.port)
        targets.append(target)
    return targets


# ---- output -----------------------------------------------------------------------------------------------------
def render(console, summary: dict) -> None:
    from rich.table import Table  # noqa: PLC0415

    from homeport.safe_text import markup as escape  # noqa: PLC0415 - host text: controls and rich markup escaped

    style = {"pass": "green", "fail": "bold red", "error": "bold red", "warn": "yellow", "skipped": "dim"}
    for name, host in summary["hosts"].items():
        table = Table(title=f"homeport audit: {escape(name)}", title_justify="left")
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail")
        for c in host["checks"]:
            detail = escape(c["detail"])
            if c["findings"]:
                detail += "".join(f"\n  - {escape(f)}" for f in c["findings"][:12])
                if len(c["findings"]) > 12:
                    detail += f"\n  ... {len(c['findings']) - 12} more (--json)"
            table.add_row(c["check"], f"[{style.get(c['status'], '')}]{c['status']}[/]", detail)
        console.print(table)
        if host["lynis_index"] is not None:
            console.print(f"{name}: Lynis hardening index {host['lynis_index']}")
    console.print("audit passed" if summary["passed"] else "[bold red]audit failed[/]")
