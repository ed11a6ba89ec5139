"""The homeport-metrics collector (roles/monitoring/files/homeport-metrics) against a fake Docker Engine API on a
unix socket, a backup status.json as the backup role's job writes it, and a tailscale double.

The fake answers the documented Engine API endpoints and shapes (https://docs.docker.com/reference/api/engine/
version/v1.41/: ContainerList, ContainerInspect, ContainerStats with stream=false/one-shot, SystemEvents with
since/until, newline-delimited JSON objects), including its unpleasant parts: nanosecond timestamps, the zero time
0001-01-01T00:00:00Z for a container that never finished, State.OOMKilled reset to false once a restart policy
started the container again (moby daemon/container/state.go setRunning), so only the `oom` events tell."""

from __future__ import annotations

import datetime as dt
import http.server
import importlib.machinery
import importlib.util
import json
import re
import socketserver
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from conftest import need_tool

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "monitoring" / "files" / "homeport-metrics"
_loader = importlib.machinery.SourceFileLoader("homeport_metrics", str(SCRIPT))
_spec = importlib.util.spec_from_loader("homeport_metrics", _loader)
hm = importlib.util.module_from_spec(_spec)
_loader.exec_module(hm)

LABELS_DB = {"com.docker.compose.project": "teststack", "com.docker.compose.service": "db"}
LABELS_API = {"com.docker.compose.project": "teststack", "com.docker.compose.service": "api"}


def container(cid, name, labels, *, running=True, health="healthy", restarts=0, oom=False, memory=536870912):
    state = {
        "Status": "running" if running else "exited",
        "Running": running,
        "OOMKilled": oom,
        "StartedAt": "2026-12-01T10:00:00.123456789Z",
        "FinishedAt": "0001-01-01T00:00:00Z" if running else "2026-12-01T11:00:00.5Z",
    }
    if health:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    return {
        "Id": cid,
        "Name": f"/{name}",
        "RestartCount": restarts,
        "State": state,
        "Config": {"Labels": labels, "Image": "img"},
        "HostConfig": {"Memory": memory},
    }


class FakeDocker:
    def __init__(self):
        self.containers = {
            "aaa": container("aaa", "teststack-db-1", LABELS_DB, restarts=2),
            "bbb": container("bbb", "teststack-api-1", LABELS_API, running=False, health=None, oom=True, memory=0),
            "ccc": container("ccc", "other", {}, health="unhealthy"),
        }
        self.events: list[dict] = []
        self.requests: list[str] = []

    def answer(self, path: str):
        url = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(url.query))
        self.requests.append(path)
        if url.path == "/containers/json":
            rows = [
                {"Id": c["Id"], "Names": [c["Name"]], "Labels": c["Config"]["Labels"], "State": c["State"]["Status"]}
                for c in self.containers.values()
                if q.get("all") == "1" or c["State"]["Running"]
            ]
            return 200, json.dumps(rows)
        m = re.match(r"^/containers/(\w+)/(json|stats)$", url.path)
        if m and m.group(1) in self.containers:
            c = self.containers[m.group(1)]
            if m.group(2) == "json":
                return 200, json.dumps(c)
            assert q.get("stream") == "false"
            return 200, json.dumps(
                {
                    "memory_stats": {"usage": 300 * 2**20, "limit": 2**33, "stats": {"inactive_file": 100 * 2**20}},
                    "cpu_stats": {"cpu_usage": {"total_usage": 12_500_000_000}, "online_cpus": 2},
                }
            )
        if url.path == "/events":
            since, until = int(q["since"]), int(q["until"])
            assert json.loads(q["filters"]) == {"type": ["container"], "event": ["oom"]}
            rows = [e for e in self.events if since <= e["time"] <= until]
            return 200, "".join(json.dumps(e) + "\n" for e in rows)
        return 404, json.dumps({"message": f"page not found: {url.path}"})


@pytest.fixture
def docker(tmp_path):
    fake = FakeDocker()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code, body = fake.answer(self.path)
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def address_string(self):
            return "unix"

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def get_request(self):
            conn, _ = super().get_request()
            return conn, ("unix", 0)

    sock = tmp_path / "docker.sock"
    server = Server(str(sock), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.socket = str(sock)
    yield fake
    server.shutdown()
    server.server_close()


def parse(text: str) -> dict[tuple, float]:
    """Prometheus text format -> {(name, frozenset(labels)): value}; checks HELP/TYPE precede each family."""
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        assert name in typed, f"{name} has no TYPE line before it"
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
        out[(name, pairs)] = float(value)
    return out


def value(metrics, metric, /, **labels):
    want = set(labels.items())
    found = [v for (n, lab), v in metrics.items() if n == metric and want <= set(lab)]
    assert len(found) == 1, f"{metric}{labels}: {len(found)} samples"
    return found[0]


def config(tmp_path, docker, **extra):
    cfg = {
        "output": str(tmp_path / "textfile" / "homeport.prom"),
        "state_file": str(tmp_path / "state" / "collector-state.json"),
        "docker_socket": docker.socket,
        "project": "teststack",
        "services": ["api", "db", "worker"],
        "backup_status_file": str(tmp_path / "backup" / "status.json"),
        "memory_budget_bytes": 4 * 2**30,
        "monitoring_memory_limit_bytes": 296 * 2**20,
        **extra,
    }
    path = tmp_path / "collector.json"
    path.write_text(json.dumps(cfg))
    return path, cfg


def run(path) -> dict:
    assert hm.main(["--config", str(path)]) == 0
    cfg = json.loads(Path(path).read_text())
    return parse(Path(cfg["output"]).read_text())


def test_container_metrics(tmp_path, docker):
    path, cfg = config(tmp_path, docker)
    m = run(path)
    assert value(m, "homeport_docker_up") == 1
    assert value(m, "homeport_container_running", name="teststack-db-1", service="db", project="teststack") == 1
    assert value(m, "homeport_container_running", name="teststack-api-1") == 0
    assert value(m, "homeport_container_health_status", name="teststack-db-1", status="healthy") == 1
    assert value(m, "homeport_container_health_status", name="teststack-db-1", status="unhealthy") == 0
    assert value(m, "homeport_container_health_status", name="teststack-api-1", status="none") == 1
    assert value(m, "homeport_container_health_status", name="other", status="unhealthy") == 1
    assert value(m, "homeport_container_restarts_total", name="teststack-db-1") == 2
    assert value(m, "homeport_container_oom_killed", name="teststack-api-1") == 1
    assert value(m, "homeport_container_memory_limit_bytes", name="teststack-db-1") == 536870912
    assert value(m, "homeport_container_memory_usage_bytes", name="teststack-db-1") == 200 * 2**20  # minus cache
    assert value(m, "homeport_container_cpu_seconds_total", name="teststack-db-1") == 12.5
    assert value(m, "homeport_container_start_time_seconds", name="teststack-db-1") == pytest.approx(
        epoch("2026-12-01T10:00:00") + 0.123456
    )
    # a stopped container has no stats call
    assert not any("/containers/bbb/stats" in r for r in docker.requests)
    # expected services: present (even stopped) or missing
    assert value(m, "homeport_stack_service_present", service="api") == 1
    assert value(m, "homeport_stack_service_present", service="worker") == 0
    assert value(m, "homeport_memory_budget_bytes") == 4 * 2**30
    assert value(m, "homeport_monitoring_memory_limit_bytes") == 296 * 2**20
    assert value(m, "homeport_collector_errors") == 0
    assert Path(cfg["output"]).stat().st_mode & 0o777 == 0o644
    assert Path(cfg["state_file"]).stat().st_mode & 0o777 == 0o600


def test_oom_kills_come_from_events_and_survive_the_restart(tmp_path, docker):
    path, cfg = config(tmp_path, docker)
    run(path)
    state = json.loads(Path(cfg["state_file"]).read_text())
    # the container is OOM-killed and the restart policy starts it again before the next run: OOMKilled is false
    # again, only the engine's event tells
    t = state["events_until"] + 1
    docker.events += [
        {
            "Type": "container",
            "Action": "oom",
            "time": t,
            "timeNano": t * 10**9,
            "Actor": {"ID": "aaa", "Attributes": {"name": "teststack-db-1", **LABELS_DB}},
        },
    ]
    time.sleep(2.1)  # until = now - 1 must reach the event's second
    m = run(path)
    assert value(m, "homeport_container_oom_killed", name="teststack-db-1") == 0
    assert value(m, "homeport_container_oom_kills_total", name="teststack-db-1") == 1
    # the next run does not count it again (since = last until + 1)
    time.sleep(1.1)
    m = run(path)
    assert value(m, "homeport_container_oom_kills_total", name="teststack-db-1") == 1


def test_engine_down_is_a_metric_not_a_crash(tmp_path, docker):
    path, _ = config(tmp_path, docker, docker_socket=str(tmp_path / "nothing.sock"))
    m = run(path)
    assert value(m, "homeport_docker_up") == 0
    assert value(m, "homeport_collector_errors") == 1
    assert not any(n == "homeport_container_running" for n, _ in m)


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def write_backup(tmp_path, **status):
    p = tmp_path / "backup" / "status.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"schema": 1, **status}))


def test_backup_status_metrics(tmp_path, docker):
    path, _ = config(tmp_path, docker)
    m = run(path)
    assert value(m, "homeport_backup_status_present") == 0
    # as homeport-backup writes it after a success and a later failing check
    write_backup(
        tmp_path,
        state="success",
        last_success="2026-12-01T03:00:12+00:00",
        last_failure="2026-11-30T03:00:09+00:00",
        check={"last_run": "2026-12-01T04:00:00+00:00", "ok": False},
        drill={"last_run": "2026-11-29T05:00:00+00:00", "ok": True, "duration_seconds": 41.5},
    )
    m = run(path)
    assert value(m, "homeport_backup_status_present") == 1
    assert value(m, "homeport_backup_last_success_timestamp_seconds") == epoch("2026-12-01T03:00:12")
    assert value(m, "homeport_backup_last_failure_timestamp_seconds") == epoch("2026-11-30T03:00:09")
    assert value(m, "homeport_backup_last_run_ok") == 1
    assert value(m, "homeport_backup_check_ok") == 0
    assert value(m, "homeport_restore_drill_ok") == 1
    assert value(m, "homeport_restore_drill_last_run_timestamp_seconds") == epoch("2026-11-29T05:00:00")
    write_backup(
        tmp_path,
        state="failure",
        last_success="2026-11-29T03:00:00+00:00",
        last_failure="2026-12-01T03:00:00+00:00",
        error="repository locked",
    )
    m = run(path)
    assert value(m, "homeport_backup_last_run_ok") == 0
    # a run in progress keeps the verdict of the last finished run
    write_backup(
        tmp_path, state="running", last_success="2026-11-29T03:00:00+00:00", last_failure="2026-12-01T03:00:00+00:00"
    )
    assert value(run(path), "homeport_backup_last_run_ok") == 0
    write_backup(tmp_path, state="garbage{")
    (tmp_path / "backup" / "status.json").write_text("{not json")
    m = run(path)
    assert value(m, "homeport_backup_status_present") == 0
    assert value(m, "homeport_collector_errors") == 1


def test_tailscale_and_colima_doubles(tmp_path, docker):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ts = bin_dir / "tailscale"
    ts.write_text('#!/bin/sh\necho \'{"BackendState": "NeedsLogin", "Self": {}}\'\n')
    colima = bin_dir / "colima"
    # `colima list --json`: one JSON object per line (colima's cmd/list.go)
    colima.write_text(
        '#!/bin/sh\necho \'{"name":"default","status":"Running","arch":"aarch64","cpus":4,'
        '"memory":12884901888,"disk":107374182400,"runtime":"docker"}\'\n'
    )
    ts.chmod(0o755)
    colima.chmod(0o755)
    path, _ = config(tmp_path, docker, tailscale=str(ts), colima=str(colima))
    m = run(path)
    assert value(m, "homeport_tailscale_connected", backend_state="NeedsLogin") == 0
    assert value(m, "homeport_colima_running", profile="default") == 1
    assert value(m, "homeport_colima_memory_bytes") == 12884901888


def test_output_passes_promtool_check_metrics(tmp_path, docker):
    promtool = need_tool("promtool")
    write_backup(tmp_path, state="success", last_success="2026-12-01T03:00:12+00:00")
    path, cfg = config(tmp_path, docker)
    run(path)
    text = Path(cfg["output"]).read_text()
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    # promtool lints names; errors (not lint warnings about counters' _total etc.) fail the check
    assert proc.returncode in (0, 3), proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr


def test_label_values_are_escaped():
    m = hm.Metrics()
    m.add("x", "gauge", "h", 1, name='a"b\\c\nd')
    assert 'x{name="a\\"b\\\\c\\nd"} 1' in m.render()


# --- the last drift check (the record playbooks/drift.yml writes) ------------------------------------------------


def test_drift_check_record(tmp_path, docker):
    record = tmp_path / "drift.json"
    path, _ = config(tmp_path, docker, drift_status_file=str(record))
    assert not [n for (n, _lab) in run(path) if n.startswith("homeport_drift_")]  # never checked: nothing
    record.write_text(json.dumps({"last_check": "2026-12-01T08:00:05Z", "changes": 3, "fixed": 0, "mode": "check"}))
    m = run(path)
    assert value(m, "homeport_drift_last_check_timestamp_seconds") == epoch("2026-12-01T08:00:05+00:00")
    assert value(m, "homeport_drift_changes") == 3
    assert value(m, "homeport_drift_result") == 2
    record.write_text(json.dumps({"last_check": "2026-12-02T08:00:00Z", "changes": 0, "fixed": 3, "mode": "fix"}))
    m = run(path)
    assert value(m, "homeport_drift_changes") == 0 and value(m, "homeport_drift_result") == 0
    record.write_text("{not json")
    m = run(path)
    assert value(m, "homeport_collector_errors") == 1
    assert not [n for (n, _lab) in m if n.startswith("homeport_drift_")]


# --- the Colima VM's memory pressure (Linux PSI inside the VM, through `colima ssh`) ------------------------------

COLIMA_DOUBLE = ROOT / "tests" / "doubles" / "bin" / "colima"


def sim_colima(tmp_path, vm: dict) -> Path:
    """The macOS-sim colima double (tests/doubles/bin/colima) with its state in tmp_path: `colima list --json` and
    `colima ssh -- cat /proc/pressure/memory` answer from the VM state written here."""
    state = tmp_path / "sim"
    (state / "colima").mkdir(parents=True, exist_ok=True)
    (state / "colima" / "default.json").write_text(
        json.dumps(
            {
                "status": "Running",
                "config": {"arch": "aarch64", "cpu": 4, "memory": 8, "disk": 60, "runtime": "docker"},
                **vm,
            }
        )
    )
    exe = tmp_path / "bin" / "colima"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(f'#!/bin/sh\nHOMEPORT_SIM_STATE={state} exec python3 {COLIMA_DOUBLE} "$@"\n')
    exe.chmod(0o755)
    return exe


def test_psi_format_of_the_kernel():
    # Documentation/accounting/psi.rst: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" and a "full" line
    text = "some avg10=1.50 avg60=20.25 avg300=3.00 total=123456789\nfull avg10=0.00 avg60=0.10 avg300=0.00 total=42\n"
    assert hm.parse_psi(text) == {
        "some": {"avg10": 1.5, "avg60": 20.25, "avg300": 3.0, "total": 123456789.0},
        "full": {"avg10": 0.0, "avg60": 0.1, "avg300": 0.0, "total": 42.0},
    }
    assert hm.parse_psi("") == {} and hm.parse_psi("some avg10=x") == {}


def test_colima_memory_pressure_from_inside_the_vm(tmp_path, docker):
    colima = sim_colima(tmp_path, {"pressure_memory": {"some": [12.5, 30.1, 8, 123456789], "full": [1, 2, 3, 4000000]}})
    path, _ = config(tmp_path, docker, colima=str(colima), colima_profile="default")
    m = run(path)
    assert value(m, "homeport_colima_running", profile="default") == 1
    assert value(m, "homeport_colima_memory_pressure_waiting_seconds_total", profile="default") == 123.456789
    assert value(m, "homeport_colima_memory_pressure_stalled_seconds_total", profile="default") == 4.0
    calls = [json.loads(line) for line in (tmp_path / "sim" / "calls.log").read_text().splitlines()]
    assert ["colima", "ssh", "-p", "default", "--", "cat", "/proc/pressure/memory"] in calls


def test_a_stopped_vm_is_not_asked_for_pressure(tmp_path, docker):
    colima = sim_colima(tmp_path, {"status": "Stopped"})
    path, _ = config(tmp_path, docker, colima=str(colima))
    m = run(path)
    assert value(m, "homeport_colima_running", profile="default") == 0
    assert not [n for (n, _lab) in m if "pressure" in n]
    calls = (tmp_path / "sim" / "calls.log").read_text()
    assert '"ssh"' not in calls and value(m, "homeport_collector_errors") == 0
