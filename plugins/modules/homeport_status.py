#!/usr/bin/python
"""homeport.homeport.homeport_status: the status document of one host, gathered in one remote call."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homeport.homeport.plugins.module_utils.host_tools import Host, search_path
from ansible_collections.homeport.homeport.plugins.module_utils.sizes import display_bytes

# `homeport report`'s raw figures (issue 30): gathered by the code the host's status page runs too (roles/proxy)
from ansible_collections.homeport.homeport.plugins.module_utils.status_report import (  # noqa: F401 - re-exported
    MAX_POINTS,
    PROBES,
    http_json,
    read_json,
    report_prometheus,
)
from ansible_collections.homeport.homeport.plugins.module_utils.status_report import gather_raw as report

DOCUMENTATION = r"""
---
module: homeport_status
short_description: Gather the status document of a homeport host (read-only, one call)
description:
  - Gathers in one module call everything C(homeport status) shows that the facts do not hold - the containers with
    health, restarts, memory limit and use (one C(docker ps), C(docker inspect), C(docker stats) sequence), the
    Colima VM (macOS), the disk use of the state directory's file system, uptime and memory (C(/proc) on Linux,
    C(sysctl) on macOS), the last backup from the backup role's C(status.json), the tailnet state, the swarm seen
    from this engine and, when a Prometheus URL is given, the monitoring figures and the alerts firing.
  - It only reads. It never fails because one source is missing or broken; each problem is one line in C(errors).
  - Docker is reached through the C(DOCKER_HOST) of the task's environment (Colima's socket on macOS).
  - Memory use is parsed from C(docker stats) MemUsage, printed by docker with go-units C(BytesSize) (binary
    units, MiB), by the shared parser of plugins/module_utils/sizes.py.
version_added: "0.1.0"
author: homeport developers
options:
  state_dir:
    description: The homeport state directory on the host (the backup role's status.json is under C(backup/)).
    type: path
    required: true
  prometheus_url:
    description: The host's Prometheus (roles/monitoring), queried from the host itself; empty when monitoring is off.
    type: str
    default: ""
  report_days:
    description:
      - C(homeport report) (issue 30) - when above 0, also gather the raw figures of the plan's targets over this many
        days into C(report) - Prometheus' hourly probe counts, the stack's memory samples, the backup age, the stack
        role's deploy records and the backup role's status.json (the CLI, src/homeport/report.py, makes the rows).
    type: int
    default: 0
  deploy_records:
    description: The stack role's deploy records (C(deploys.json) in the stack's project directory), for the report.
    type: path
    default: ""
  extra_path:
    description:
      - Directories searched for the tools after C(PATH) (Homebrew's bin on macOS, which sshd's non-interactive
        PATH does not hold); C(/usr/local/bin), C(/usr/bin), C(/bin), C(/usr/sbin), C(/sbin) are always searched.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: It only reads, so a check-mode run gathers the same document.
  diff_mode:
    support: none
notes:
  - Python 3.9 compatible and stdlib only on the host (macOS' system Python).
"""

EXAMPLES = r"""
- name: Gather the host status
  homeport.homeport.homeport_status:
    state_dir: /var/lib/homeport
    extra_path: [/opt/homebrew/bin]
  environment:
    DOCKER_HOST: unix:///var/run/docker.sock
  register: _status
"""

RETURN = r"""
status:
  description: The status document (rendered by the CLI, src/homeport/status.py).
  returned: always
  type: dict
  contains:
    errors: {description: One line per source that failed (command and its message)., type: list, elements: str}
    uptime_seconds: {description: Seconds since boot (None when unknown)., type: int}
    host_memory: {description: "total_bytes, available_bytes (available is None on macOS).", type: dict}
    disk: {description: "path, size_bytes, used_bytes, available_bytes, use_percent of the state dir's file system.",
           type: dict}
    vm: {description: "The Colima VM (kind, name, status, memory_bytes, cpus, disk_bytes) or None.", type: dict}
    docker: {description: Whether the docker CLI answered., type: bool}
    containers:
      description: "Per container, sorted by name: name, service, project, image, state, health, restarts,
        exit_code, started_at, memory_limit_bytes, memory_usage_bytes."
      type: list
      elements: dict
    backup: {description: "The backup role's status.json (last_success, last_failure, last_snapshot, error, state,
             drill), None when absent, {error} when unreadable.", type: dict}
    tailscale: {description: "backend_state, dns_name, ips, online_peers, peers (at most 20); absent without
                tailscale.", type: dict, returned: when tailscale answers}
    monitoring: {description: "url, availability, latency_ms, restarts_1d, memory, alerts, error; None when off.",
                 type: dict}
    swarm: {description: "node_id, manager, nodes, services when this engine is in a swarm, else None.", type: dict}
    report: {description: "With report_days - now, days, prometheus (availability_hourly, memory, memory_step_seconds,
             memory_peak_bytes, backup_age, probe_latency_p95_ms, error), deploys, backup.", type: dict,
             returned: when report_days is above 0}
"""


def json_lines(text):
    """The objects of ``--format '{{json .}}'`` output, one per line; other lines skipped."""
    rows = []
    for line in (text or "").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------- the host itself
def host_uptime_memory(host, proc="/proc", now=time.time):
    """Uptime and memory: /proc on Linux; on macOS (no /proc) ``sysctl kern.boottime`` and ``hw.memsize``."""
    try:
        with open(os.path.join(proc, "uptime")) as f:
            uptime = int(float(f.read().split()[0]))
        with open(os.path.join(proc, "meminfo")) as f:
            mem = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if ":" in line}
        return uptime, {"total_bytes": mem.get("MemTotal"), "available_bytes": mem.get("MemAvailable")}
    except OSError:
        pass
    # `sysctl -n kern.boottime` prints "{ sec = 1700000000, usec = 0 } Tue Nov 14 22:13:20 2023"
    m = re.search(r"sec = (\d+)", host.run("sysctl", "-n", "kern.boottime") or "")
    total = (host.run("sysctl", "-n", "hw.memsize") or "").strip()
    return (int(now()) - int(m.group(1)) if m else None), {
        "total_bytes": int(total) if total.isdigit() else None,
        "available_bytes": None,
    }


def disk_use(state_dir):
    """Disk use of the file system holding the state directory (``/`` before it exists)."""
    where = state_dir if os.path.isdir(state_dir) else "/"
    st = os.statvfs(where)
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    used = total - st.f_bfree * st.f_frsize
    return {
        "path": where,
        "size_bytes": total,
        "used_bytes": used,
        "available_bytes": free,
        "use_percent": round(100 * used / (used + free), 1) if used + free else 0,
    }


def colima_vm(host):
    """The Colima VM (macOS), the running one first: its memory is what the containers can really get."""
    vm = None
    for row in json_lines(host.run("colima", "list", "--json")):
        if vm is None or row.get("status") == "Running":
            vm = {
                "kind": "colima",
                "name": row.get("name"),
                "status": row.get("status"),
                "memory_bytes": row.get("memory"),
                "cpus": row.get("cpus"),
                "disk_bytes": row.get("disk"),
            }
    return vm


# ------------------------------------------------------------------------------------------------------ containers
def containers(host):
    """(docker answered, containers): health, restarts, limits (docker ps + inspect), memory use (docker stats)."""
    ids = host.run("docker", "ps", "-aq", "--no-trunc")
    answered = ids is not None
    ids = (ids or "").split()
    try:
        inspected = json.loads(host.run("docker", "inspect", *ids) or "[]") if ids else []
    except ValueError:
        inspected = []
        host.errors.append("docker inspect: not JSON")
    usage = {}
    if any(c.get("State", {}).get("Running") for c in inspected):
        stats = host.run("docker", "stats", "--no-stream", "--format", "{{json .}}", timeout=60)
        for row in json_lines(stats):
            # MemUsage is "USAGE / LIMIT", both written by go-units BytesSize ("41.2MiB / 512MiB")
            usage[row.get("Name", "")] = display_bytes(str(row.get("MemUsage", "")).split("/")[0])
    out = []
    for c in inspected:
        state, labels = c.get("State", {}), c.get("Config", {}).get("Labels") or {}
        name = c.get("Name", "").lstrip("/")
        out.append(
            {
                "name": name,
                "service": labels.get("com.docker.compose.service"),
                "project": labels.get("com.docker.compose.project"),
                "image": c.get("Config", {}).get("Image"),
                "state": state.get("Status"),
                "health": (state.get("Health") or {}).get("Status"),
                "restarts": c.get("RestartCount", 0),
                "exit_code": state.get("ExitCode"),
                "started_at": state.get("StartedAt"),
                "memory_limit_bytes": (c.get("HostConfig") or {}).get("Memory") or None,
                "memory_usage_bytes": usage.get(name),
            }
        )
    return answered, sorted(out, key=lambda c: c["name"])


# ---------------------------------------------------------------------------------------------- backup and tailnet
def last_backup(state_dir):
    """The last backup, as the backup role's job records it in <state_dir>/backup/status.json."""
    backup_file = os.path.join(state_dir, "backup", "status.json")
    try:
        with open(backup_file) as f:
            b = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"error": f"{backup_file} is unreadable: {exc}"}
    return {
        "last_success": b.get("last_success"),
        "last_failure": b.get("last_failure"),
        "last_snapshot": b.get("last_snapshot", b.get("snapshot_id")),
        "error": b.get("error"),
        "state": b.get("state"),
        "drill": b.get("drill"),
    }


def tailnet(host):
    """``tailscale status --json`` (ipnstate.Status): state, addresses, how the online peers are reached; None
    without tailscale or when it does not answer."""
    if not host.which("tailscale"):
        return None
    text = host.run("tailscale", "status", "--json", timeout=15)
    if not text:
        return None
    try:
        t = json.loads(text)
    except ValueError:
        host.errors.append("tailscale status --json: not JSON")
        return None
    me = t.get("Self") or {}
    peers = [p for p in (t.get("Peer") or {}).values() if p.get("Online")]
    return {
        "backend_state": t.get("BackendState"),
        "dns_name": (me.get("DNSName") or "").rstrip("."),
        "ips": me.get("TailscaleIPs") or t.get("TailscaleIPs") or [],
        "online_peers": len(peers),
        "peers": [
            {
                "name": (p.get("DNSName") or p.get("HostName") or "").rstrip("."),
                "direct": bool(p.get("CurAddr")),
                "relay": p.get("Relay") or None,
                "active": bool(p.get("Active")),
            }
            for p in peers
        ][:20],
    }


# ------------------------------------------------------------------------------------------------------ monitoring
def monitoring(prom, fetch=http_json):
    """From the host's Prometheus (issue 16): availability per probed service over 1/7/30 days (the share of
    successful blackbox probes in the data Prometheus holds), probe latency, restarts and stack memory over a day,
    and the alerts firing now (the Watchdog, always firing by design, left out). None when monitoring is off."""
    if not prom:
        return None

    def promql(expr):
        return fetch(prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]

    def value(row):
        return float(row["value"][1])

    mon = {
        "url": prom,
        "availability": {},
        "latency_ms": {},
        "restarts_1d": {},
        "memory": {},
        "alerts": [],
        "error": None,
    }
    try:
        for period in ("1d", "7d", "30d"):
            for r in promql(f"avg by (service) (avg_over_time(probe_success{{{PROBES}}}[{period}]))"):
                mon["availability"].setdefault(r["metric"].get("service", "?"), {})[period] = round(100 * value(r), 3)
        for r in promql(f"avg by (service) (avg_over_time(probe_duration_seconds{{{PROBES}}}[1h]))"):
            mon["latency_ms"][r["metric"].get("service", "?")] = round(1000 * value(r), 1)
        for r in promql("sum by (service) (increase(homeport_container_restarts_total[1d]))"):
            mon["restarts_1d"][r["metric"].get("service") or "?"] = round(value(r))
        for key, fn in (("peak_1d_bytes", "max_over_time"), ("sustained_1d_bytes", "avg_over_time")):
            rows = promql(f"{fn}(sum(homeport_container_memory_usage_bytes)[1d:1m])")
            mon["memory"][key] = int(value(rows[0])) if rows else None
        for a in fetch(prom + "/api/v1/alerts")["data"]["alerts"]:
            labels = a.get("labels") or {}
            if a.get("state") == "firing" and labels.get("alertname") != "Watchdog":
                mon["alerts"].append(
                    {
                        "name": labels.get("alertname"),
                        "severity": labels.get("severity"),
                        "service": labels.get("service"),
                        "since": a.get("activeAt"),
                        "summary": (a.get("annotations") or {}).get("summary"),
                    }
                )
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        mon["error"] = f"Prometheus at {prom}: {exc}"
    return mon


# ----------------------------------------------------------------------------------------------------------- swarm
def swarm(host):
    """The swarm (roles/swarm) when this engine is in one: on a manager, every node and each service's replicas."""
    try:
        info = json.loads(host.run("docker", "info", "--format", "{{json .Swarm}}") or "{}")
    except ValueError:
        info = {}
    if not isinstance(info, dict) or info.get("LocalNodeState") != "active":
        return None
    sw = {"node_id": info.get("NodeID"), "manager": bool(info.get("ControlAvailable")), "nodes": [], "services": []}
    if not sw["manager"]:
        return sw
    for r in json_lines(host.run("docker", "node", "ls", "--format", "{{json .}}")):
        sw["nodes"].append(
            {
                "hostname": r.get("Hostname"),
                "state": r.get("Status"),
                "availability": r.get("Availability"),
                "manager_status": r.get("ManagerStatus") or "",
                "engine": r.get("EngineVersion"),
                "self": bool(r.get("Self")),
            }
        )
    for r in json_lines(host.run("docker", "service", "ls", "--format", "{{json .}}")):
        m = re.match(r"\s*(\d+)/(\d+)", str(r.get("Replicas") or ""))
        sw["services"].append(
            {
                "name": r.get("Name"),
                "image": r.get("Image"),
                "running": int(m.group(1)) if m else None,
                "desired": int(m.group(2)) if m else None,
            }
        )
    return sw


# -------------------------------------------------------------------------------------------------------- document
def gather(host, state_dir, prometheus_url="", proc="/proc", fetch=http_json, *, report_days=0, deploy_records=""):
    """The whole status document of this host (and the report's raw figures with ``report_days``)."""
    out = {"errors": host.errors}
    out["uptime_seconds"], out["host_memory"] = host_uptime_memory(host, proc)
    out["disk"] = disk_use(state_dir)
    out["vm"] = colima_vm(host)
    out["docker"], out["containers"] = containers(host)
    out["backup"] = last_backup(state_dir)
    ts = tailnet(host)
    if ts is not None:
        out["tailscale"] = ts
    out["monitoring"] = monitoring(prometheus_url, fetch)
    out["swarm"] = swarm(host) if out["docker"] else None
    if report_days > 0:
        out["report"] = report(prometheus_url, report_days, state_dir, deploy_records, fetch=fetch)
    return out


def main():
    module = AnsibleModule(
        argument_spec={
            "state_dir": {"type": "path", "required": True},
            "prometheus_url": {"type": "str", "default": ""},
            "extra_path": {"type": "list", "elements": "str", "default": []},
            "report_days": {"type": "int", "default": 0},
            "deploy_records": {"type": "path", "default": ""},
        },
        supports_check_mode=True,
    )
    host = Host(search_path(os.environ, module.params["extra_path"]))
    p = module.params
    doc = gather(
        host, p["state_dir"], p["prometheus_url"], report_days=p["report_days"], deploy_records=p["deploy_records"]
    )
    module.exit_json(changed=False, status=doc)


if __name__ == "__main__":
    main()
