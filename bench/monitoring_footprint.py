#!/usr/bin/env python3
"""Measured memory of the monitoring processes (issue 16: target <= 300 MiB together).

    python bench/monitoring_footprint.py --container monitoring-dind13   # a docker target (the molecule host)
    python bench/monitoring_footprint.py                                  # this machine
    python bench/monitoring_footprint.py --json

Per daemon: the resident set (VmRSS of each process of the unit, from /proc) and, on systemd hosts, the unit's
cgroup memory (MemoryCurrent: RSS plus its page cache, what MemoryMax limits) next to its MemoryMax. The collector
is a short-lived timer job: its peak RSS is measured by running it once (resource.getrusage of the child).
RSS counts the shared pages of the binaries too, so it can exceed the cgroup figure (page cache is charged to the
cgroup that first read it) and even MemoryMax without the limit being hit.
Prints a line per process, the total and whether the target is met.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

UNITS = {
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "node_exporter": "prometheus-node-exporter",
    "blackbox_exporter": "prometheus-blackbox-exporter",
}
TARGET_MIB = 300
MIB = 1024 * 1024

# runs on the measured host: stdlib only, prints one JSON document
PROBE = r"""
import json, os, resource, subprocess, sys
units = json.loads(sys.argv[1])
out = {}
def rss_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
for key, unit in units.items():
    show = subprocess.run(["systemctl", "show", "-p", "MainPID,MemoryCurrent,MemoryMax,ControlGroup", unit],
                          capture_output=True, text=True).stdout
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    pids = []
    cg = props.get("ControlGroup") or ""
    procs = "/sys/fs/cgroup" + cg + "/cgroup.procs"
    try:
        with open(procs) as f:
            pids = [int(p) for p in f.read().split()]
    except OSError:
        pids = [int(props.get("MainPID") or 0)] if props.get("MainPID", "0") != "0" else []
    def num(v):
        return int(v) if (v or "").isdigit() else None
    out[key] = {"unit": unit, "pids": pids, "rss_bytes": sum(rss_of(p) for p in pids),
                "cgroup_bytes": num(props.get("MemoryCurrent")), "limit_bytes": num(props.get("MemoryMax"))}
# the collector: one run, its peak RSS (ru_maxrss of the waited-for child, KiB on Linux)
cfg = "/etc/homeport/monitoring/collector.json"
if os.path.exists(cfg):
    subprocess.run(["/usr/bin/python3", "/usr/local/libexec/homeport-metrics", "--config", cfg],
                   capture_output=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    show = subprocess.run(["systemctl", "show", "-p", "MemoryMax", "homeport-metrics.service"],
                          capture_output=True, text=True).stdout.strip().split("=", 1)[-1]
    out["collector"] = {"unit": "homeport-metrics.service (one run, peak)", "pids": [], "rss_bytes": peak,
                        "cgroup_bytes": None, "limit_bytes": int(show) if show.isdigit() else None}
print(json.dumps(out))
"""


def measure(container: str | None) -> dict:
    argv = ["python3", "-c", PROBE, json.dumps(UNITS)]
    if container:
        argv = ["docker", "exec", container, *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measuring failed ({shlex.join(argv[:3])} ...): {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def report(figures: dict) -> tuple[str, int]:
    def mib(v):
        return "-" if v is None else f"{v / MIB:7.1f}"

    lines = [f"{'process':<18} {'RSS MiB':>8} {'cgroup MiB':>11} {'limit MiB':>10}  unit"]
    total = 0
    for key, f in figures.items():
        total += f["rss_bytes"]
        lines.append(
            f"{key:<18} {mib(f['rss_bytes']):>8} {mib(f['cgroup_bytes']):>11} {mib(f['limit_bytes']):>10}  {f['unit']}"
        )
    missing = [k for k in UNITS if not figures.get(k, {}).get("pids")]
    verdict = "met" if total <= TARGET_MIB * MIB else "NOT met"
    lines.append(f"{'total RSS':<18} {mib(total):>8}   target <= {TARGET_MIB} MiB: {verdict}")
    if missing:
        lines.append(f"not running: {', '.join(missing)}")
    return "\n".join(lines), total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--container", help="measure inside this docker container (e.g. the molecule target)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = measure(args.container)
    text, total = report(figures)
    if args.json:
        print(json.dumps({"processes": figures, "total_rss_bytes": total, "target_bytes": TARGET_MIB * MIB}, indent=2))
    else:
        print(text)
    missing = [k for k in UNITS if not figures.get(k, {}).get("pids")]
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
