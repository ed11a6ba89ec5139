"""Helpers shared by the testinfra verifiers of every molecule scenario."""

from __future__ import annotations

import json
import shlex

SIM_STATE = "/var/lib/homeport-sim"


def is_macsim(host) -> bool:
    """True on a macOS-sim platform (the doubles are installed)."""
    return host.file(f"{SIM_STATE}/calls.log").exists


def sim_calls(host, tool: str | None = None) -> list[list[str]]:
    """Every recorded double invocation as argv lists, optionally only those of one tool."""
    f = host.file(f"{SIM_STATE}/calls.log")
    if not f.exists:
        return []
    calls = []
    for raw in f.content_string.splitlines():
        line = raw.strip()
        if not line:
            continue
        try:
            argv = json.loads(line)
        except ValueError:
            argv = shlex.split(line)
        if tool is None or (argv and argv[0].rsplit("/", 1)[-1] == tool):
            calls.append(argv)
    return calls


def sim_state(host, tool: str, name: str) -> str | None:
    """Content of a double's state file, or None when absent."""
    f = host.file(f"{SIM_STATE}/{tool}/{name}")
    return f.content_string if f.exists else None


def run_ok(host, cmd: str) -> str:
    """Run a command on the target, assert success, return stdout."""
    r = host.run(cmd)
    assert r.rc == 0, f"{cmd!r} failed rc={r.rc}: {r.stderr or r.stdout}"
    return r.stdout


def unit_active(host, unit: str) -> bool:
    return host.run(f"systemctl is-active {shlex.quote(unit)}").stdout.strip() == "active"


def unit_enabled(host, unit: str) -> bool:
    return host.run(f"systemctl is-enabled {shlex.quote(unit)}").stdout.strip() in {"enabled", "static", "alias"}


def file_mode(host, path: str) -> int:
    return host.file(path).mode


def status_document(host, state_dir: str = "/var/lib/homeport", prometheus_url: str = "") -> dict:
    """The host's status document as `homeport status` gathers it: the module homeport.homeport.homeport_status
    (plugins/modules/homeport_status.py) run on the target through ansible (read-only, so in check mode too)."""
    args = f"state_dir={shlex.quote(state_dir)} prometheus_url={shlex.quote(prometheus_url)}"
    result = host.ansible("homeport.homeport.homeport_status", args, check=False)
    return result["status"]
