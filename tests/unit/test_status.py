"""`homeport status`: the summary and rendering (pure), and one real run of the status play (local connection)
against this machine's Docker engine with a container we start (memory limit, healthcheck, compose labels)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
import yaml
from conftest import missing, write_local_inventory
from rich.console import Console
from typer.testing import CliRunner

from homeport import paths, status
from homeport.cli import app

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
GIB = 1024**3


def mac_doc(**over) -> dict:
    doc = {
        "os": "MacOSX 15.1",
        "arch": "arm64",
        "uptime_seconds": 3 * 86400 + 3600,
        "docker": True,
        "memory": {"total_mb": 16384, "budget": "14g", "budget_mb": 14336},
        "host_memory": {"total_bytes": 16 * GIB},
        "vm": {"kind": "colima", "name": "default", "status": "Running", "memory_bytes": 12 * GIB, "cpus": 8},
        "containers": [
            {
                "name": "stack-postgres-1",
                "service": "postgres",
                "state": "running",
                "health": "healthy",
                "restarts": 0,
                "memory_limit_bytes": 2 * GIB,
                "memory_usage_bytes": 300 * 1024**2,
            },
            {
                "name": "stack-neo4j-1",
                "service": "neo4j",
                "state": "running",
                "health": "unhealthy",
                "restarts": 3,
                "memory_limit_bytes": 13 * GIB,
                "memory_usage_bytes": 1024**3,
            },
            {"name": "watcher", "state": "running", "health": None, "restarts": 0, "memory_usage_bytes": 50 * 1024**2},
            {"name": "old-job", "state": "exited", "health": None, "restarts": 0},
        ],
        "backup": {
            "last_success": "2026-11-21T03:00:00+00:00",
            "last_failure": None,
            "last_snapshot": "4f1c",
            "error": None,
        },
        "disk": {"path": "/usr/local/var/homeport", "use_percent": 91.2, "available_bytes": 20 * GIB},
        "tailscale": {
            "backend_state": "Running",
            "dns_name": "mini.tail1234.ts.net",
            "ips": ["100.64.0.7"],
            "peers": [{"name": "laptop.tail1234.ts.net", "direct": False, "relay": "sin", "active": True}],
        },
        "roles": ["runtime", "tailscale", "stack", "backup"],
        "errors": [],
    }
    doc.update(over)
    return doc


def test_summary_of_a_mac_host():
    s = status.summarise_host(mac_doc(), now=NOW, latency_ms=183.0)
    mem = s["memory"]
    assert mem["budget_mb"] == 14336 and mem["vm_mb"] == 12288 and mem["host_mb"] == 16384
    assert mem["limits_mb"] == 15360 and mem["usage_mb"] == pytest.approx(1374.0)
    assert mem["unlimited"] == ["watcher"]
    assert s["backup"]["age_hours"] == 57.0 and s["backup"]["ok"] is False
    assert s["tailnet"]["latency_ms"] == 183.0
    assert s["warnings"] == [
        "container stack-neo4j-1 is unhealthy",
        "container stack-neo4j-1 restarted 3 time(s)",
        "container old-job is exited",
        "no memory limit: watcher",
        "container memory limits (15360 MiB) exceed the budget (14336 MiB)",
        "the Colima VM has 12288 MiB, less than the budget (14336 MiB)",
        "the last successful backup is 57 h old",
        "disk /usr/local/var/homeport is 91.2% full",
    ]


def test_backup_states():
    failed = status.summarise_host(
        mac_doc(
            backup={"last_success": "2026-11-22T03:00:00Z", "last_failure": "2026-11-23T03:00:00Z", "error": "B2: 403"}
        ),
        now=NOW,
    )
    assert failed["backup"]["ok"] is False and "the last backup failed: B2: 403" in failed["warnings"]
    fresh = status.summarise_host(mac_doc(backup={"last_success": "2026-11-23T03:00:00+00:00"}), now=NOW)
    assert fresh["backup"] == {
        "last_success": "2026-11-23T03:00:00+00:00",
        "last_failure": None,
        "last_snapshot": None,
        "error": None,
        "age_hours": 9.0,
        "ok": True,
    }
    assert not [w for w in fresh["warnings"] if "backup" in w]
    never = status.summarise_host(mac_doc(backup=None), now=NOW)
    assert never["backup"] is None and "no backup has run yet" in never["warnings"]
    no_role = status.summarise_host(mac_doc(backup=None, roles=["runtime"]), now=NOW)
    assert not [w for w in no_role["warnings"] if "backup" in w or not w]


def test_debian_host_without_docker_or_tailscale():
    doc = {
        "os": "Debian 13.1",
        "arch": "x86_64",
        "uptime_seconds": 120,
        "docker": False,
        "memory": {"total_mb": 8000, "budget_mb": 6144},
        "host_memory": {"total_bytes": 8000 * 1024**2},
        "vm": None,
        "containers": [],
        "backup": None,
        "disk": {"path": "/var/lib/homeport", "use_percent": 10.0, "available_bytes": 50 * GIB},
        "roles": ["runtime"],
        "errors": ["docker ps: Cannot connect to the Docker daemon"],
    }
    s = status.summarise_host(doc, now=NOW)
    assert s["memory"]["vm_mb"] == s["memory"]["host_mb"] == 8000
    assert s["tailnet"] == {"latency_ms": None, "backend_state": None, "dns_name": None, "ips": [], "peers": []}
    assert s["warnings"] == []
    text = render({"local": doc})
    assert "Docker is not reachable" in text and "Cannot connect to the Docker daemon" in text
    assert "host 8000 MiB" in text and "up 2m" in text


def test_render_one_screen_per_host():
    text = render({"mini": mac_doc(), "spare": mac_doc(containers=[])})
    assert text.count("╭─ mini") == 1 and text.count("╭─ spare") == 1
    assert "limits 15360 MiB / budget 14336 MiB / VM 12288 MiB; in use 1374 MiB" in text
    assert "stack-neo4j-1" in text and "unhealthy" in text
    assert "relayed (DERP) to laptop.tail1234.ts.net" in text
    assert "\x1b[" not in text


def test_latency_is_measured_for_ssh_hosts_only(monkeypatch):
    """From the run's own SSH exchange (issue 29: no probe of its own; tests/unit/test_daily_loop_issue29.py)."""
    calls = []
    monkeypatch.setattr(status, "master_rtt_ms", lambda a, p, u: calls.append((a, p, u)) or 42.0)
    summary = status.summarise(
        {
            "mini": mac_doc(address="mini.tail1234.ts.net", port=22, connection="ssh", user="admin"),
            "local": mac_doc(address="localhost", connection="local"),
        }
    )
    assert calls == [("mini.tail1234.ts.net", 22, "admin")]
    assert summary["hosts"]["mini"]["tailnet"]["latency_ms"] == 42.0
    assert summary["hosts"]["local"]["tailnet"]["latency_ms"] is None


def test_status_gathering_is_one_remote_call():
    """Everything on the host comes from one module call (read-only: plugins/modules/homeport_status.py, tested in
    test_status_module.py); the other tasks run on the controller only."""
    tasks = yaml.safe_load((paths.content_root() / "roles" / "homeport" / "tasks" / "status.yml").read_text())
    remote = [t for t in tasks if not ({"ansible.builtin.set_stats", "ansible.builtin.set_fact"} & set(t))]
    assert [next(k for k in t if k.startswith("homeport.") or k.startswith("ansible.")) for t in remote] == [
        "homeport.homeport.homeport_status"
    ]


def render(docs: dict) -> str:
    buf = StringIO()
    status.render(Console(file=buf, width=120, force_terminal=False), status.summarise(docs, now=NOW, measure=False))
    return buf.getvalue()


# -- a real run ---------------------------------------------------------------------------------------------------
def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "image", "inspect", "homeport/debian:13"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture
def container():
    if not _docker_ok():
        missing("Docker and the image homeport/debian:13", "make images builds it")
    name = f"homeport-status-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--memory",
            "64m",
            "--label",
            "com.docker.compose.project=statustest",
            "--label",
            "com.docker.compose.service=api",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            "homeport/debian:13",
            "sleep",
            "600",
        ],
        check=True,
        capture_output=True,
    )
    for _ in range(30):
        health = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", name], capture_output=True, text=True
        ).stdout.strip()
        if health == "healthy":
            break
        time.sleep(0.5)
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@pytest.mark.docker
@pytest.mark.slow
def test_status_for_real(project: Path, container: str):
    state = project / "state"
    (state / "backup").mkdir(parents=True)
    (state / "backup" / "status.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "state": "failure",
                "last_success": "2026-11-20T03:00:00+00:00",
                "last_failure": "2026-11-21T03:00:00+00:00",
                "snapshot_id": "4f1cabcd",
                "error": "restic: repository is locked",
            }
        )
    )
    write_local_inventory(project, {"homeport_state_dir": str(state)})
    r = CliRunner().invoke(app, ["status", "-i", "hosts.yml", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["recap"]["local"]["changed"] == 0 and doc["recap"]["local"]["failed"] == 0
    s = doc["summary"]["local"]
    mine = next(c for c in s["containers"] if c["name"] == container)
    assert mine["memory_limit_mb"] == 64.0
    assert mine["state"] == "running" and mine["health"] == "healthy" and mine["restarts"] == 0
    assert mine["service"] == "api" and mine["project"] == "statustest"
    # what this engine reports: some (cgroup v1 hosts without memory accounting) report "0B / 0B" for every
    # container; status then says "unknown" (None), never a usage of 0
    engine = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container], capture_output=True, text=True
    ).stdout.strip()
    if engine.startswith("0B"):
        assert mine["memory_usage_mb"] is None
    else:
        assert mine["memory_usage_mb"] is not None and 0 < mine["memory_usage_mb"] <= 64
    assert s["memory"]["limits_mb"] >= 64 and s["memory"]["budget_mb"] == 14336
    assert s["backup"]["last_snapshot"] == "4f1cabcd" and s["backup"]["ok"] is False
    assert "the last backup failed: restic: repository is locked" in s["warnings"]
    assert s["disk"]["path"] == str(state) and 0 < s["disk"]["use_percent"] < 100
    assert s["uptime_seconds"] > 0
    raw = doc["stats"]["homeport_status"]["local"]
    assert raw["docker"] is True and raw["errors"] == []

    text = CliRunner().invoke(app, ["status", "-i", "hosts.yml"]).output
    assert container in text and "restic: repository is locked" in text
