"""`homeport status`: one screen per host, from the status document the homeport role publishes.

The status play (playbooks/status.yml: the preflight's global checks, then role homeport ``tasks_from: status``)
gathers everything on each host in one remote call and publishes it with set_stats under ``homeport_status``
(``contract.STATUS_STAT``, a mapping host ->
document, see roles/homeport/tasks/status.yml). This module turns those documents into a summary (pure
functions: :func:`summarise_host`, :func:`summarise`) and renders it (:func:`render`). It adds the latency from
here to each host, taken from the run's own SSH exchange, with no probe of its own (:func:`latency_ms`, issue 29):
over Tailscale that is the tailnet latency the user feels.

JSON (``homeport status --json``), one document on stdout: the run record every verb prints (``status``,
``exit_code``, ``recap``, ``failures``, ``stats.homeport_status`` = the raw documents, ...) plus ``summary``,
host -> the summary below::

    "summary": {
      "mini": {
        "os": "MacOSX 15.1", "arch": "arm64", "uptime_seconds": 86400, "docker": true,
        "memory": {"budget_mb": 14336, "vm_mb": 14336, "host_mb": 16384, "limits_mb": 11776,
                   "usage_mb": 6210.5, "unlimited": ["watcher"]},
        "containers": [{"name": "stack-postgres-1", "service": "postgres", "project": "stack", "image": "...",
                        "state": "running", "health": "healthy", "restarts": 0,
                        "memory_limit_mb": 2048.0, "memory_usage_mb": 312.4}],
        "backup": {"last_success": "2026-11-23T03:00:12+00:00", "last_failure": null, "last_snapshot": "4f1c...",
                   "error": null, "age_hours": 9.9, "ok": true},
        "disk": {"path": "/usr/local/var/homeport", "use_percent": 41.0, "available_gb": 120.3},
        "tailnet": {"latency_ms": 182.0, "backend_state": "Running", "dns_name": "mini.tail1234.ts.net",
                    "ips": ["100.64.0.7"], "peers": [{"name": "...", "direct": true, "relay": "fra", "active": true}]},
        "warnings": ["no memory limit: watcher"],
        "errors": []
      }
    }

``vm_mb`` is the Colima VM's memory on macOS and the host's RAM on Debian; ``limits_mb``/``usage_mb`` are the
sums over the containers (``docker inspect`` HostConfig.Memory / ``docker stats``); ``latency_ms`` is the round
trip from this machine over the status run's own SSH connection: the kernel's smoothed RTT of the SSH master's TCP
connection where ``ss`` shows it (Linux), else the run's fastest task on the host (one exchange: an upper bound).
``null`` means "not known" (no Docker, no backup yet, no Tailscale, latency not measurable).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from typing import Any

from rich.console import Console, Group, JustifyMethod
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from homeport.safe_text import clean_tree

MIB = 1024 * 1024
BACKUP_MAX_AGE_HOURS = 26  # a daily backup plus slack
DRILL_MAX_AGE_DAYS = 8  # the weekly restore drill plus slack (issue 17)
DISK_WARN_PERCENT = 85
MEMORY_WARN_FRACTION = 0.9
LOCAL_CONNECTIONS = {"local", "docker", "community.docker.docker", "ansible.builtin.local"}
DEFAULT_SERVICE_MB = 2048  # the plan's agent size (2 GB in the allocation table)
# `homeport status` exits with this code when the host's Prometheus has an alert firing (issue 16), so cron/launchd
# on the laptop can act on it; a failed run keeps its own code (1, 3, 4, ...)
EXIT_ALERTS = 5


def headroom(budget_mb: float | None, limits_mb: float, vm_mb: float | None, service_mb: float) -> dict | None:
    """Memory left for more services after the stack's limits, and how many more of ``service_mb`` fit.

    The ceiling is the budget, or the runtime's memory (Colima VM, Debian host) when that is smaller; the stack's
    limits are what the deploy guard adds up, so a service fits only when its limit fits in what is left."""
    if not budget_mb or service_mb <= 0:
        return None
    ceiling = min(budget_mb, vm_mb) if vm_mb else budget_mb
    left = max(round(ceiling - limits_mb, 1), 0.0)
    return {"ceiling_mb": ceiling, "left_mb": left, "service_mb": service_mb, "fits": int(left // service_mb)}


def parse_service_size(text: str) -> float | None:
    """``--service-size`` (2g, 512m, 1.5GiB) in MiB with the collection's own size parser; None when invalid."""
    from homeport import paths  # noqa: PLC0415

    sizes = paths.sizes()  # stdlib only (the filter needs ansible)
    try:
        mib = sizes.ram_bytes(text, "--service-size") / MIB
    except ValueError:  # SizeError: not a size
        return None
    return mib if mib > 0 else None


def headroom_text(room: dict) -> str:
    size = room["service_mb"]
    size_txt = f"{size / 1024:g} GiB" if size >= 1024 else f"{size:g} MiB"
    n = room["fits"]
    more = "no room for another" if n == 0 else f"room for {n} more"
    plural = "s" if n > 1 else ""
    return f"{room['left_mb']:.0f} MiB left of {room['ceiling_mb']:.0f} MiB: {more} {size_txt} service{plural}"


def _mb(value: Any) -> float | None:
    if value in (None, "", 0):
        return None
    try:
        return round(int(value) / MIB, 1)
    except (TypeError, ValueError):
        return None


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def _master_pid(address: str, port: int | None, user: str | None) -> int | None:
    """The pid of the SSH master the runs keep for this host (ControlPersist), asked over its control socket: ``ssh
    -O check`` talks to the local master only, never to the host."""
    from homeport import runner  # noqa: PLC0415 - ansible's control path name, only for an ssh host

    if not shutil.which("ssh"):
        return None
    target = f"{user}@{address}" if user else address
    argv = ["ssh", "-o", f"ControlPath={runner.control_path(address, port, user)}", "-O", "check"]
    argv += ["-p", str(port or 22), target]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"Master running \(pid=(\d+)\)", r.stderr + r.stdout)
    return int(found.group(1)) if r.returncode == 0 and found else None


def master_rtt_ms(address: str, port: int | None, user: str | None) -> float | None:
    """The kernel's smoothed round-trip time of the SSH master's TCP connection to the host (``ss -tinp``, Linux):
    measured by TCP on the run's own traffic, nothing sent for it. None where the system does not show it."""
    if not shutil.which("ss"):
        return None
    pid = _master_pid(address, port, user)
    if pid is None:
        return None
    try:
        r = subprocess.run(["ss", "-Htinp", "state", "established"], capture_output=True, text=True, timeout=5,
                           check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    entries: list[str] = []
    for line in r.stdout.splitlines():
        if line[:1].isspace() and entries:
            entries[-1] += " " + line.strip()
        elif line.strip():
            entries.append(line.strip())
    for entry in entries:
        rtt = re.search(r"\brtt:([\d.]+)/", entry)
        if f"pid={pid}," in entry and rtt:
            return round(float(rtt.group(1)), 1)
    return None


def latency_ms(doc: dict, call_seconds: float | None) -> float | None:
    """From here to the host over the status run's own SSH connection, with no probe (issue 29): the kernel's RTT
    of the SSH master's connection when the system shows it, else the run's fastest task on the host (one exchange
    over that connection: an upper bound). None for a local connection or when neither is known."""
    if not doc.get("address") or doc.get("connection", "ssh") in LOCAL_CONNECTIONS:
        return None
    port = int(doc.get("port") or 22)
    user = doc.get("user") or None
    kernel = master_rtt_ms(str(doc["address"]), port, str(user) if user else None)
    if kernel is not None:
        return kernel
    return round(call_seconds * 1000, 1) if call_seconds else None


def _drill_summary(raw: Any, now: dt.datetime, warnings: list[str]) -> dict | None:
    """The last restore drill (homeport-backup verify, weekly timer): result, duration (the recovery time), age."""
    if not isinstance(raw, dict):
        return None
    last_success = _parse_time(raw.get("last_success"))
    age_days = round((now - last_success).total_seconds() / 86400, 1) if last_success else None
    drill = {
        "last_run": raw.get("last_run"),
        "last_success": raw.get("last_success"),
        "ok": bool(raw.get("ok")),
        "duration_seconds": raw.get("duration_seconds"),
        "snapshot_id": raw.get("snapshot_id"),
        "error": raw.get("error"),
        "age_days": age_days,
    }
    if not drill["ok"]:
        warnings.append(f"the last restore drill failed: {raw.get('error') or 'no message'}")
    elif age_days is not None and age_days > DRILL_MAX_AGE_DAYS:
        warnings.append(f"the last successful restore drill is {age_days:.0f} days old")
    return drill


def summarise_monitoring(doc: dict[str, Any] | None) -> tuple[dict[str, Any] | None, list[str]]:
    """The monitoring part of a status document (roles/homeport/tasks/status.yml asks the host's Prometheus):
    availability percent per service over 1d/7d/30d, probe latency, restarts in a day, stack memory peak and
    sustained over a day, the alerts firing now; a warning per firing alert."""
    if not doc:
        return None, []
    mem = doc.get("memory") or {}
    alerts = [
        {
            "name": a.get("name"),
            "severity": a.get("severity"),
            "service": a.get("service"),
            "since": a.get("since"),
            "summary": a.get("summary"),
        }
        for a in doc.get("alerts") or []
    ]
    summary = {
        "availability": {
            svc: {p: periods.get(p) for p in ("1d", "7d", "30d")}
            for svc, periods in sorted((doc.get("availability") or {}).items())
        },
        "latency_ms": dict(sorted((doc.get("latency_ms") or {}).items())),
        "restarts_1d": dict(sorted((doc.get("restarts_1d") or {}).items())),
        "memory": {"peak_1d_mb": _mb(mem.get("peak_1d_bytes")), "sustained_1d_mb": _mb(mem.get("sustained_1d_bytes"))},
        "alerts": alerts,
        "error": doc.get("error"),
    }
    warnings = [f"alert {a['name']} firing: {a['summary'] or a['service'] or ''}".rstrip(": ") for a in alerts]
    if doc.get("error"):
        warnings.append(f"monitoring: {doc['error']}")
    return summary, warnings


def alerts_firing(summary: dict[str, Any]) -> int:
    """How many alerts fire over every host of a :func:`summarise` result."""
    return sum(len((s.get("monitoring") or {}).get("alerts") or []) for s in summary.get("hosts", {}).values())


def summarise_swarm(doc: dict[str, Any] | None) -> tuple[dict[str, Any] | None, list[str]]:
    """The swarm part of a status document (roles/swarm; gathered on a manager): nodes with state, availability,
    manager reachability and engine version, services with replicas running/desired, and warnings."""
    if not doc:
        return None, []
    warnings = []
    nodes = [
        {
            "hostname": n.get("hostname"),
            "state": n.get("state"),
            "availability": n.get("availability"),
            "manager_status": n.get("manager_status") or "",
            "engine": n.get("engine"),
        }
        for n in doc.get("nodes") or []
    ]
    for n in nodes:
        if str(n["state"]).lower() != "ready":
            warnings.append(f"swarm node {n['hostname']} is {n['state']}")
        if n["manager_status"].lower() == "unreachable":
            warnings.append(f"swarm manager {n['hostname']} is unreachable")
    services = [
        {"name": sv.get("name"), "image": sv.get("image"), "running": sv.get("running"), "desired": sv.get("desired")}
        for sv in doc.get("services") or []
    ]
    for sv in services:
        if sv["running"] is not None and sv["desired"] is not None and sv["running"] < sv["desired"]:
            warnings.append(f"swarm service {sv['name']} runs {sv['running']} of {sv['desired']} replicas")
    return {"manager": bool(doc.get("manager")), "nodes": nodes, "services": services}, warnings


def summarise_host(
    doc: dict[str, Any],
    now: dt.datetime | None = None,
    latency_ms: float | None = None,
    service_mb: float = DEFAULT_SERVICE_MB,
) -> dict:
    """The status of one host, with warnings, from its status document."""
    now = now or dt.datetime.now(dt.UTC)
    warnings: list[str] = []
    memory = doc.get("memory") or {}
    budget_mb = memory.get("budget_mb")
    vm = doc.get("vm") or None
    host_total = (doc.get("host_memory") or {}).get("total_bytes")
    host_mb = _mb(host_total) or memory.get("total_mb")
    vm_mb = _mb(vm.get("memory_bytes")) if vm else host_mb

    containers = []
    for c in doc.get("containers") or []:
        entry = {
            "name": c.get("name"),
            "service": c.get("service"),
            "project": c.get("project"),
            "image": c.get("image"),
            "state": c.get("state"),
            "health": c.get("health"),
            "restarts": int(c.get("restarts") or 0),
            "memory_limit_mb": _mb(c.get("memory_limit_bytes")),
            "memory_usage_mb": _mb(c.get("memory_usage_bytes")),
        }
        containers.append(entry)
        if entry["state"] != "running":
            warnings.append(f"container {entry['name']} is {entry['state']}")
        elif entry["health"] not in (None, "healthy"):
            warnings.append(f"container {entry['name']} is {entry['health']}")
        if entry["restarts"]:
            warnings.append(f"container {entry['name']} restarted {entry['restarts']} time(s)")
    limits_mb = round(sum(c["memory_limit_mb"] or 0 for c in containers), 1)
    usage_mb = round(sum(c["memory_usage_mb"] or 0 for c in containers), 1)
    unlimited = [c["name"] for c in containers if c["state"] == "running" and not c["memory_limit_mb"]]
    if unlimited:
        warnings.append(f"no memory limit: {', '.join(unlimited)}")
    if budget_mb:
        if limits_mb > budget_mb:
            warnings.append(f"container memory limits ({limits_mb:.0f} MiB) exceed the budget ({budget_mb} MiB)")
        if usage_mb > MEMORY_WARN_FRACTION * budget_mb:
            warnings.append(f"containers use {usage_mb:.0f} MiB, over 90% of the budget ({budget_mb} MiB)")
        if vm and vm_mb and vm_mb < budget_mb:
            warnings.append(f"the Colima VM has {vm_mb:.0f} MiB, less than the budget ({budget_mb} MiB)")

    backup = None
    raw_backup = doc.get("backup")
    if raw_backup is None:
        warnings.append("no backup has run yet" if "backup" in (doc.get("roles") or []) else "")
    else:
        success, failure = _parse_time(raw_backup.get("last_success")), _parse_time(raw_backup.get("last_failure"))
        age = round((now - success).total_seconds() / 3600, 1) if success else None
        ok = success is not None and (failure is None or failure < success)
        ok = ok and age is not None and age <= BACKUP_MAX_AGE_HOURS
        backup = {
            "last_success": raw_backup.get("last_success"),
            "last_failure": raw_backup.get("last_failure"),
            "last_snapshot": raw_backup.get("last_snapshot"),
            "error": raw_backup.get("error"),
            "age_hours": age,
            "ok": ok,
        }
        if failure and (success is None or failure > success):
            warnings.append(f"the last backup failed: {raw_backup.get('error') or 'no message'}")
        elif success is None:
            warnings.append("no backup has succeeded yet")
        elif age is not None and age > BACKUP_MAX_AGE_HOURS:
            warnings.append(f"the last successful backup is {age:.0f} h old")
        if raw_backup.get("drill") is not None:  # the last restore drill (issue 17)
            backup["drill"] = _drill_summary(raw_backup.get("drill"), now, warnings)

    disk_doc = doc.get("disk") or {}
    disk = {
        "path": disk_doc.get("path") or disk_doc.get("mount"),
        "use_percent": disk_doc.get("use_percent"),
        "available_gb": round(disk_doc["available_bytes"] / 1024**3, 1) if disk_doc.get("available_bytes") else None,
    }
    if isinstance(disk["use_percent"], int | float) and disk["use_percent"] >= DISK_WARN_PERCENT:
        warnings.append(f"disk {disk['path']} is {disk['use_percent']}% full")

    ts = doc.get("tailscale") or {}
    tailnet = {
        "latency_ms": latency_ms,
        "backend_state": ts.get("backend_state"),
        "dns_name": ts.get("dns_name"),
        "ips": ts.get("ips") or ([doc["tailnet_address"]] if doc.get("tailnet_address") else []),
        "peers": ts.get("peers") or [],
    }
    if ts and ts.get("backend_state") != "Running":
        warnings.append(f"tailscale is {ts.get('backend_state') or 'not running'}")
    swarm, swarm_warnings = summarise_swarm(doc.get("swarm"))
    warnings.extend(swarm_warnings)

    monitoring, monitoring_warnings = summarise_monitoring(doc.get("monitoring"))
    warnings.extend(monitoring_warnings)

    return {
        "os": doc.get("os"),
        "arch": doc.get("arch"),
        "uptime_seconds": doc.get("uptime_seconds"),
        "docker": doc.get("docker"),
        "memory": {
            "budget_mb": budget_mb,
            "vm_mb": vm_mb,
            "host_mb": host_mb,
            "limits_mb": limits_mb,
            "usage_mb": usage_mb,
            "unlimited": unlimited,
            "headroom": headroom(budget_mb, limits_mb, vm_mb, service_mb),
        },
        "containers": containers,
        "backup": backup,
        "disk": disk,
        "tailnet": tailnet,
        "swarm": swarm,
        "monitoring": monitoring,
        "warnings": [w for w in warnings if w],
        "errors": list(doc.get("errors") or []),
    }


def summarise(
    status_doc: dict[str, dict],
    now: dt.datetime | None = None,
    measure: bool = True,
    service_mb: float = DEFAULT_SERVICE_MB,
    calls: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Every host's summary; with ``measure``, the latency from here to each host over the run's own SSH connection
    (:func:`latency_ms`; ``calls``: host -> seconds of the run's fastest task on it, RunRecord.host_calls)."""
    hosts = {}
    for host, doc in sorted(status_doc.items()):
        latency = latency_ms(doc, (calls or {}).get(host)) if measure else None
        hosts[host] = summarise_host(doc, now=now, latency_ms=latency, service_mb=service_mb)
    return {"hosts": hosts}


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True, default=str)


def _fmt_mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MiB"


def _host_panel(host: str, s: dict[str, Any]) -> Panel:
    mem = s["memory"]
    lines = [
        Text.assemble(
            ("system   ", "bold"), f"{s['os'] or '?'} ({s['arch'] or '?'}), up {human_duration(s['uptime_seconds'])}"
        ),
        Text.assemble(
            ("memory   ", "bold"),
            f"limits {_fmt_mb(mem['limits_mb'])} / budget {_fmt_mb(mem['budget_mb'])} / "
            f"{'VM' if mem['vm_mb'] != mem['host_mb'] else 'host'} {_fmt_mb(mem['vm_mb'])}; "
            f"in use {_fmt_mb(mem['usage_mb'])}",
        ),
    ]
    if mem.get("headroom"):
        lines.append(Text.assemble(("headroom ", "bold"), headroom_text(mem["headroom"])))
    disk = s["disk"]
    lines.append(
        Text.assemble(
            ("disk     ", "bold"),
            f"{disk['use_percent'] if disk['use_percent'] is not None else '?'}% used on {disk['path'] or '?'}"
            + (f", {disk['available_gb']} GiB free" if disk["available_gb"] is not None else ""),
        )
    )
    b = s["backup"]
    if b is None:
        lines.append(Text.assemble(("backup   ", "bold"), ("none recorded", "yellow")))
    else:
        when = f"last success {b['last_success'] or 'never'}" + (
            f" ({b['age_hours']:.0f} h ago)" if b["age_hours"] is not None else ""
        )
        tail = f", last failure {b['last_failure']}: {b['error']}" if b["last_failure"] and not b["ok"] else ""
        lines.append(Text.assemble(("backup   ", "bold"), (when + tail, "green" if b["ok"] else "red")))
    t = s["tailnet"]
    parts = []
    if t["latency_ms"] is not None:
        parts.append(f"{t['latency_ms']:.0f} ms from here")
    if t["backend_state"]:
        parts.append(f"tailscale {t['backend_state']}")
    if t["dns_name"]:
        parts.append(t["dns_name"])
    relayed = [p["name"] for p in t["peers"] if p.get("active") and not p.get("direct")]
    if relayed:
        parts.append(f"relayed (DERP) to {', '.join(relayed)}")
    lines.append(Text.assemble(("network  ", "bold"), ", ".join(parts) or "no tailnet information"))

    body: list = list(lines)
    if s["containers"]:
        table = Table(box=None, pad_edge=False, show_edge=False)
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("container", "left"),
            ("state", "left"),
            ("health", "left"),
            ("restarts", "right"),
            ("memory", "right"),
            ("limit", "right"),
        )
        for col, justify in columns:
            table.add_column(col, justify=justify)
        for c in s["containers"]:
            healthy = c["state"] == "running" and c["health"] in (None, "healthy")
            table.add_row(
                Text(c["name"]),
                Text(c["state"] or "?", style="green" if c["state"] == "running" else "red"),
                Text(c["health"] or "-", style="green" if healthy else "red"),
                Text(str(c["restarts"]), style="yellow" if c["restarts"] else ""),
                _fmt_mb(c["memory_usage_mb"]),
                _fmt_mb(c["memory_limit_mb"]),
            )
        body += [Text(""), table]
    elif s["docker"] is False:
        body.append(Text("containers: Docker is not reachable on this host", style="yellow"))
    else:
        body.append(Text("containers: none"))
    body += _monitoring_lines(s.get("monitoring"))
    body += _swarm_lines(s.get("swarm"))
    for w in s["warnings"]:
        body.append(Text(f"! {w}", style="yellow"))
    for e in s["errors"]:
        body.append(Text(f"! {e}", style="red"))
    style = "red" if s["errors"] else ("yellow" if s["warnings"] else "green")
    return Panel(Group(*body), title=Text(host, style="bold"), title_align="left", border_style=style)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _monitoring_lines(mon: dict[str, Any] | None) -> list:
    """Availability per service over 1/7/30 days, probe latency and restarts, stack memory peak/sustained."""
    if not mon:
        return []
    lines: list = []
    if mon["availability"]:
        table = Table(box=None, pad_edge=False, show_edge=False)
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("service", "left"), ("1 day", "right"), ("7 days", "right"), ("30 days", "right"), ("probe", "right"),
            ("restarts 1d", "right"))  # fmt: skip
        for col, justify in columns:
            table.add_column(col, justify=justify)
        for svc, periods in mon["availability"].items():
            latency = mon["latency_ms"].get(svc)
            table.add_row(
                Text(svc),
                *(Text(_pct(periods[p]), style="green" if (periods[p] or 0) >= 99.9 else "red") for p in periods),
                "-" if latency is None else f"{latency:.0f} ms",
                str(mon["restarts_1d"].get(svc, 0)),
            )
        lines += [Text(""), table]
    mem = mon["memory"]
    if mem.get("peak_1d_mb") is not None:
        lines.append(
            Text.assemble(
                ("stack    ", "bold"),
                f"memory over a day: peak {_fmt_mb(mem['peak_1d_mb'])}, sustained {_fmt_mb(mem['sustained_1d_mb'])}",
            )
        )
    return lines


def _swarm_lines(sw: dict[str, Any] | None) -> list:
    """The swarm's nodes and services (shown for the manager the status was gathered on)."""
    if not sw or not sw["manager"]:
        return []
    nodes = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("swarm node", "state", "availability", "manager", "engine"):
        nodes.add_column(col)
    for n in sw["nodes"]:
        nodes.add_row(
            Text(n["hostname"] or "?"),
            Text(n["state"] or "?", style="green" if str(n["state"]).lower() == "ready" else "red"),
            Text(n["availability"] or "?", style="green" if n["availability"] == "active" else "yellow"),
            Text(n["manager_status"] or "-", style="red" if n["manager_status"].lower() == "unreachable" else ""),
            Text(n["engine"] or "?"),
        )
    services = Table(box=None, pad_edge=False, show_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("swarm service", "left"),
        ("replicas", "right"),
        ("image", "left"),
    )
    for col, justify in columns:
        services.add_column(col, justify=justify)
    for sv in sw["services"]:
        full = sv["running"] is not None and sv["running"] == sv["desired"]
        services.add_row(
            Text(sv["name"] or "?"),
            Text(f"{sv['running']}/{sv['desired']}", style="green" if full else "red"),
            Text(sv["image"] or "?"),
        )
    return [Text(""), nodes, Text(""), services]


def render(console: Console, summary: dict[str, Any]) -> None:
    # names, images, errors come from the host: shown escaped (homeport.safe_text), and only ever as Text (no markup)
    summary = clean_tree(summary)
    console.print(Text("Status", style="bold"))
    if not summary["hosts"]:
        console.print("No status was gathered (no host matched).")
    for host, s in summary["hosts"].items():
        console.print(_host_panel(host, s))
