"""Tailnet checks of the controller (the developer's laptop) for `homeport doctor`.

`controller_status(peers)` answers two questions: does this machine run Tailscale and is it logged in
(`tailscale status --json`), and how far is each peer (`tailscale ping --c 1 --timeout 3s PEER`, parsing
"pong from NAME (IP) via DERP(sin) in 187ms")? It returns `Row(name, ok, detail, fix)` tuples that the doctor
command renders. The parsing functions are pure and tested with recorded outputs (tests/unit/test_tailnet.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

# Above this round trip the far link is usable but slow (the plan's target is < 100 ms).
LATENCY_WARN_MS = 100.0

_PONG_RE = re.compile(
    r"^pong from (?P<name>\S+) \((?P<ip>[^,)\s]+)(?:,[^)]*)?\)(?: via (?P<via>.+?))? in "
    r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ns|µs|us|ms|s)\s*$",
    re.MULTILINE,
)
_UNIT_MS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}


class Row(NamedTuple):
    """One line of `homeport doctor`: what was checked, whether it is fine, what was seen, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str


@dataclass(frozen=True)
class TailscaleStatus:
    """What `tailscale status --json` says about this machine."""

    running: bool
    backend_state: str
    online: bool
    hostname: str
    dns_name: str
    ipv4: str
    ipv6: str
    tailnet: str
    version: str
    health: tuple[str, ...]


@dataclass(frozen=True)
class PingResult:
    """The outcome of one `tailscale ping`."""

    ok: bool
    latency_ms: float | None
    via: str  # "DERP(sin)" (relayed) or "ip:port" (direct); "" when unknown
    peer_name: str
    peer_ip: str
    error: str

    @property
    def direct(self) -> bool:
        return bool(self.via) and not self.via.startswith("DERP(")


def parse_status(text: str) -> TailscaleStatus:
    """Parse `tailscale status --json` (ipnstate.Status). Raises ValueError when it is not that JSON."""
    data = json.loads(text)
    if not isinstance(data, dict) or "BackendState" not in data:
        raise ValueError("not the JSON of `tailscale status --json` (no BackendState)")
    me = data.get("Self") or {}
    ips = me.get("TailscaleIPs") or data.get("TailscaleIPs") or []
    state = data.get("BackendState") or "NoState"
    return TailscaleStatus(
        running=state == "Running",
        backend_state=state,
        online=bool(me.get("Online")),
        hostname=me.get("HostName") or "",
        dns_name=(me.get("DNSName") or "").rstrip("."),
        ipv4=next((ip for ip in ips if ":" not in ip), ""),
        ipv6=next((ip for ip in ips if ":" in ip), ""),
        tailnet=(data.get("CurrentTailnet") or {}).get("Name") or "",
        version=(data.get("Version") or "").split("-", 1)[0],
        health=tuple(data.get("Health") or ()),
    )


def parse_ping(output: str) -> PingResult:
    """Parse the combined output of `tailscale ping --c 1 PEER`.

    A pong counts as success whatever the exit code: with a relayed (DERP) answer tailscale still exits 1 with
    "direct connection not established". No pong: the last non-empty line is the error
    ("no reply", 'ping "x" timed out', "error looking up IP of ...").
    """
    m = _PONG_RE.search(output or "")
    if m:
        latency = float(m.group("value")) * _UNIT_MS[m.group("unit")]
        return PingResult(True, round(latency, 3), m.group("via") or "", m.group("name"), m.group("ip"), "")
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    error = lines[-1] if lines else "no output from tailscale ping"
    if any("timed out" in line for line in lines) and error == "no reply":
        error = next(line for line in lines if "timed out" in line)
    return PingResult(False, None, "", "", "", error)


def status_row(status_text: str | None, rc: int, stderr: str = "") -> Row:
    """The doctor row for the local node, from the output of `tailscale status --json`."""
    name = "tailscale on this machine"
    if rc != 0 or not status_text:
        err = (stderr or status_text or "").strip().splitlines()
        msg = err[-1] if err else f"tailscale status exited {rc}"
        if "doesn't appear to be running" in msg or "failed to connect" in msg:
            return Row(name, False, "tailscaled is not running", "start the Tailscale app (or `sudo tailscaled`)")
        return Row(name, False, msg, "run `tailscale status` and fix what it reports")
    try:
        st = parse_status(status_text)
    except ValueError as exc:
        return Row(name, False, f"unreadable status: {exc}", "update Tailscale (`tailscale version`)")
    if st.backend_state in {"NeedsLogin", "NoState", "NeedsMachineAuth"}:
        fix = (
            "approve this machine in the Tailscale admin console"
            if st.backend_state == "NeedsMachineAuth"
            else "log in: `tailscale up` (or the Tailscale app)"
        )
        return Row(name, False, f"not logged in ({st.backend_state})", fix)
    if st.backend_state == "Stopped":
        return Row(name, False, "Tailscale is stopped", "`tailscale up` (or connect in the Tailscale app)")
    if not st.running or not st.online:
        return Row(name, False, f"{st.backend_state}, not online", "check the network; `tailscale netcheck`")
    where = st.dns_name or st.hostname
    return Row(name, True, f"{where} {st.ipv4} (tailnet {st.tailnet or '?'}, {st.version})".strip(), "")


def ping_row(peer: str, output: str) -> Row:
    """The doctor row for one peer, from the output of `tailscale ping`."""
    name = f"tailnet path to {peer}"
    res = parse_ping(output)
    if not res.ok:
        return Row(
            name,
            False,
            res.error,
            f"check that {peer} is online in the tailnet (`tailscale status`) and that the name/IP is right",
        )
    path = "direct" if res.direct else f"relayed via {res.via or 'DERP'}"
    detail = f"{res.latency_ms:g} ms, {path}"
    if res.latency_ms is not None and res.latency_ms > LATENCY_WARN_MS:
        return Row(name, False, f"{detail} (over {LATENCY_WARN_MS:g} ms)", _relay_fix(res))
    return Row(name, True, detail, "" if res.direct else _relay_fix(res))


def _relay_fix(res: PingResult) -> str:
    if res.direct:
        return "the route itself is slow: test from another network, or move the host closer"
    return "relayed through DERP: allow UDP 41641 out on both ends so a direct path can form (`tailscale netcheck`)"


Runner = Callable[..., subprocess.CompletedProcess]


def controller_status(
    peers: Iterable[str] = (),
    *,
    tailscale: str | None = None,
    run: Runner = subprocess.run,
    timeout: float = 15.0,
) -> list[Row]:
    """Doctor rows: the local Tailscale node, then one latency row per peer (name or Tailscale IP)."""
    exe = tailscale or shutil.which("tailscale")
    if not exe:
        return [
            Row(
                "tailscale on this machine",
                False,
                "the tailscale command is not installed",
                "install Tailscale (`brew install --cask tailscale` on macOS) and log in",
            )
        ]
    try:
        proc = run([exe, "status", "--json"], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Row("tailscale on this machine", False, f"tailscale status failed: {exc}", "restart Tailscale")]
    rows = [status_row(proc.stdout, proc.returncode, proc.stderr)]
    if not rows[0].ok:
        rows += [Row(f"tailnet path to {p}", False, "skipped: this machine is not on the tailnet", "") for p in peers]
        return rows
    for peer in peers:
        try:
            ping = run(
                [exe, "ping", "--c", "1", "--timeout", "3s", peer],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            output = (ping.stdout or "") + (ping.stderr or "")
        except (OSError, subprocess.TimeoutExpired) as exc:
            output = f"tailscale ping failed: {exc}"
        rows.append(ping_row(peer, output))
    return rows
