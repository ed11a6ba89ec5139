"""The status module (plugins/modules/homeport_status.py): its functions on recorded command output, and one run
through ansible against localhost (with Mitogen, homeport's default strategy, and in check mode).

Recorded output: `docker inspect` / `docker stats --no-stream --format '{{json .}}'` / `docker info --format
'{{json .Swarm}}'` as docker 28.2 client / 20.10 engine printed them here (trimmed to the keys read); MemUsage values
as go-units BytesSize writes them ("41.2MiB / 64MiB"; "0B / 0B" where the engine has no memory accounting; "-- / --"
for a container it could not read, cli/command/container/formatter_stats.go); `docker node ls` / `docker service ls`
JSON rows with the fields of cli/command/formatter (Hostname, Status, Availability, ManagerStatus, EngineVersion,
Self; Name, Image, Replicas "1/2"); `colima list --json` one object per line (cmd/list.go: name, status, arch,
cpus, memory, disk in bytes); `tailscale status --json` (ipnstate.Status: BackendState, Self, Peer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ansible_local import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible_collections.homeport.homeport.plugins.modules import homeport_status as hs  # noqa: E402

MIB = 1024**2

INSPECT_API = {
    "Id": "7148a2bb9de45407d50692c760550c6a7035bf4a00f31300dcfdf1110c218246",
    "Name": "/teststack-api-1",
    "RestartCount": 2,
    "State": {
        "Status": "running",
        "Running": True,
        "ExitCode": 0,
        "StartedAt": "2026-12-02T01:13:10.114777232Z",
        "Health": {"Status": "healthy", "FailingStreak": 0, "Log": []},
    },
    "Config": {
        "Image": "homeport/testapi:1",
        "Labels": {"com.docker.compose.project": "teststack", "com.docker.compose.service": "api"},
    },
    "HostConfig": {"Memory": 67108864},
}
INSPECT_OLD = {
    "Id": "0d1e",
    "Name": "/oneshot",
    "RestartCount": 0,
    "State": {"Status": "exited", "Running": False, "ExitCode": 1, "StartedAt": "2026-12-01T00:00:00Z"},
    "Config": {"Image": "alpine", "Labels": None},
    "HostConfig": {"Memory": 0},
}
INSPECT_DB = {
    **INSPECT_API,
    "Id": "aa11",
    "Name": "/teststack-db-1",
    "RestartCount": 0,
    "Config": {"Image": "homeport/pgvector:17", "Labels": {"com.docker.compose.service": "db"}},
}
STATS = "\n".join(
    json.dumps(r)
    for r in (
        {"BlockIO": "0B / 0B", "CPUPerc": "0.02%", "Container": "7148a2bb9de4", "ID": "7148a2bb9de4",
         "MemPerc": "64.38%", "MemUsage": "41.2MiB / 64MiB", "Name": "teststack-api-1", "NetIO": "1.09kB / 0B",
         "PIDs": "3"},
        {"BlockIO": "--", "CPUPerc": "--", "Container": "aa11", "ID": "aa11", "MemPerc": "--",
         "MemUsage": "-- / --", "Name": "teststack-db-1", "NetIO": "--", "PIDs": "--"},
    )
)  # fmt: skip


class FakeHost(hs.Host):
    """Answers commands from a table (argv prefix -> stdout, or an error line); records every call."""

    def __init__(self, answers: dict[tuple[str, ...], str | None], tools=None):
        super().__init__("/nonexistent")
        self.answers, self.calls = answers, []
        self.tools = set(tools if tools is not None else {a[0] for a in answers})

    def which(self, name):
        return f"/usr/bin/{name}" if name in self.tools else None

    def run(self, *args, timeout=30):
        self.calls.append(args)
        if args[0] not in self.tools:
            return None
        for prefix, out in self.answers.items():
            if args[: len(prefix)] == prefix:
                if out is None:
                    self.errors.append(f"{' '.join(args[:2])}: failed")
                return out
        self.errors.append(f"{' '.join(args[:2])}: no recorded answer")
        return None


def docker_answers(inspected, stats=STATS, swarm='{"LocalNodeState":"inactive","ControlAvailable":false}'):
    return {
        ("docker", "ps"): "\n".join(c["Id"] for c in inspected) + "\n",
        ("docker", "inspect"): json.dumps(inspected),
        ("docker", "stats"): stats,
        ("docker", "info"): swarm,
    }


# ----------------------------------------------------------------------------------------------------- containers
def test_containers_from_recorded_docker_output():
    host = FakeHost(docker_answers([INSPECT_API, INSPECT_OLD, INSPECT_DB]))
    answered, rows = hs.containers(host)
    assert answered is True and host.errors == []
    assert [r["name"] for r in rows] == ["oneshot", "teststack-api-1", "teststack-db-1"]
    api = rows[1]
    assert api == {
        "name": "teststack-api-1",
        "service": "api",
        "project": "teststack",
        "image": "homeport/testapi:1",
        "state": "running",
        "health": "healthy",
        "restarts": 2,
        "exit_code": 0,
        "started_at": "2026-12-02T01:13:10.114777232Z",
        "memory_limit_bytes": 64 * MIB,
        "memory_usage_bytes": int(41.2 * MIB),  # BytesSize's MiB is binary
    }
    assert rows[0]["memory_limit_bytes"] is None and rows[0]["health"] is None and rows[0]["service"] is None
    assert rows[2]["memory_usage_bytes"] is None  # "-- / --": unknown, not 0


def test_no_stats_call_when_nothing_runs():
    host = FakeHost(docker_answers([INSPECT_OLD]))
    hs.containers(host)
    assert not any(c[:2] == ("docker", "stats") for c in host.calls)


def test_docker_absent_or_broken():
    answered, rows = hs.containers(FakeHost({}, tools=set()))
    assert (answered, rows) == (False, [])
    host = FakeHost({("docker", "ps"): "abc\n", ("docker", "inspect"): "not json"})
    assert hs.containers(host) == (True, [])
    assert host.errors == ["docker inspect: not JSON"]


# ----------------------------------------------------------------------------------------------- host and macOS
def test_uptime_and_memory_from_proc(tmp_path):
    (tmp_path / "uptime").write_text("12345.67 23456.78\n")
    (tmp_path / "meminfo").write_text("MemTotal:       16318480 kB\nMemFree: 1 kB\nMemAvailable:    8159240 kB\n")
    host = FakeHost({}, tools=set())
    up, mem = hs.host_uptime_memory(host, proc=str(tmp_path))
    assert up == 12345 and mem == {"total_bytes": 16318480 * 1024, "available_bytes": 8159240 * 1024}
    assert host.calls == []


def test_uptime_and_memory_on_macos_by_sysctl(tmp_path):
    """No /proc on macOS: `sysctl -n kern.boottime` ("{ sec = ..., usec = ... } <date>") and `hw.memsize`."""
    host = FakeHost(
        {
            ("sysctl", "-n", "kern.boottime"): "{ sec = 1764600000, usec = 0 } Mon Dec  1 14:40:00 2025\n",
            ("sysctl", "-n", "hw.memsize"): "17179869184\n",
        }
    )
    up, mem = hs.host_uptime_memory(host, proc=str(tmp_path / "no-proc"), now=lambda: 1764600100.5)
    assert up == 100 and mem == {"total_bytes": 17179869184, "available_bytes": None}


def test_colima_vm_prefers_the_running_profile():
    rows = [
        {"name": "old", "status": "Stopped", "arch": "aarch64", "cpus": 2, "memory": 2147483648, "disk": 1},
        {"name": "default", "status": "Running", "arch": "aarch64", "cpus": 6, "memory": 12884901888, "disk": 2},
    ]
    host = FakeHost({("colima", "list", "--json"): "\n".join(json.dumps(r) for r in rows)})
    assert hs.colima_vm(host) == {
        "kind": "colima",
        "name": "default",
        "status": "Running",
        "memory_bytes": 12884901888,
        "cpus": 6,
        "disk_bytes": 2,
    }
    assert hs.colima_vm(FakeHost({}, tools=set())) is None


def test_search_path_appends_homebrew_and_the_system_dirs():
    path = hs.search_path({"PATH": "/usr/bin:/bin"}, ["/opt/homebrew/bin"])
    assert path.split(":")[:3] == ["/usr/bin", "/bin", "/opt/homebrew/bin"]
    assert path.endswith("/usr/sbin:/sbin")
    assert hs.search_path({}, []).split(":")[0] == "/usr/local/bin"


def test_disk_of_the_state_dir_or_root(tmp_path):
    d = hs.disk_use(str(tmp_path))
    assert d["path"] == str(tmp_path) and d["size_bytes"] > 0 and 0 <= d["use_percent"] <= 100
    assert hs.disk_use(str(tmp_path / "not-yet"))["path"] == "/"


# --------------------------------------------------------------------------------------------- backup and tailnet
def test_last_backup(tmp_path):
    assert hs.last_backup(str(tmp_path)) is None
    (tmp_path / "backup").mkdir()
    status = tmp_path / "backup" / "status.json"
    status.write_text(json.dumps({"state": "success", "last_success": "t1", "snapshot_id": "4f1c", "drill": {"ok": 1}}))
    assert hs.last_backup(str(tmp_path)) == {
        "last_success": "t1",
        "last_failure": None,
        "last_snapshot": "4f1c",
        "error": None,
        "state": "success",
        "drill": {"ok": 1},
    }
    status.write_text("{broken")
    assert "is unreadable" in hs.last_backup(str(tmp_path))["error"]


def test_tailnet_from_status_json():
    doc = {
        "BackendState": "Running",
        "Self": {"DNSName": "mini.tail1234.ts.net.", "TailscaleIPs": ["100.64.0.7", "fd7a:115c:a1e0::7"]},
        "Peer": {
            "k1": {"DNSName": "laptop.tail1234.ts.net.", "Online": True, "CurAddr": "", "Relay": "fra", "Active": True},
            "k2": {"HostName": "phone", "Online": False},
            "k3": {"HostName": "ci", "Online": True, "CurAddr": "203.0.113.9:41641", "Active": False},
        },
    }
    host = FakeHost({("tailscale", "status", "--json"): json.dumps(doc)})
    assert hs.tailnet(host) == {
        "backend_state": "Running",
        "dns_name": "mini.tail1234.ts.net",
        "ips": ["100.64.0.7", "fd7a:115c:a1e0::7"],
        "online_peers": 2,
        "peers": [
            {"name": "laptop.tail1234.ts.net", "direct": False, "relay": "fra", "active": True},
            {"name": "ci", "direct": True, "relay": None, "active": False},
        ],
    }
    assert hs.tailnet(FakeHost({}, tools=set())) is None
    broken = FakeHost({("tailscale", "status", "--json"): "no"})
    assert hs.tailnet(broken) is None and broken.errors == ["tailscale status --json: not JSON"]


# ----------------------------------------------------------------------------------------------------- monitoring
def fake_prometheus(calls: list[str]):
    """Answers as Prometheus' HTTP API documents it (GET /api/v1/query: data.result = [{metric, value: [t, "v"]}];
    GET /api/v1/alerts: data.alerts = [{labels, annotations, state, activeAt}])."""

    def fetch(url):
        calls.append(url)
        if url.endswith("/api/v1/alerts"):
            alerts = [
                {"labels": {"alertname": "Watchdog"}, "state": "firing", "activeAt": "t0"},
                {"labels": {"alertname": "StackServiceDown", "severity": "critical", "service": "api"},
                 "annotations": {"summary": "api is down"}, "state": "firing", "activeAt": "t1"},
                {"labels": {"alertname": "DiskFilling"}, "state": "pending", "activeAt": "t2"},
            ]  # fmt: skip
            return {"status": "success", "data": {"alerts": alerts}}
        query = url.split("query=", 1)[1]
        if "probe_success" in query:
            result = [{"metric": {"service": "api"}, "value": [1, "0.995"]}]
        elif "probe_duration" in query:
            result = [{"metric": {"service": "api"}, "value": [1, "0.0024"]}]
        elif "restarts" in query:
            result = [{"metric": {"service": "api"}, "value": [1, "2.9"]}]
        else:
            result = [{"metric": {}, "value": [1, "1073741824"]}]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    return fetch


def test_monitoring_figures_each_query_once():
    """Defect: the inline program held the Prometheus block twice and sent every query twice per status run."""
    calls: list[str] = []
    mon = hs.monitoring("http://127.0.0.1:9090", fake_prometheus(calls))
    assert mon == {
        "url": "http://127.0.0.1:9090",
        "availability": {"api": {"1d": 99.5, "7d": 99.5, "30d": 99.5}},
        "latency_ms": {"api": 2.4},
        "restarts_1d": {"api": 3},
        "memory": {"peak_1d_bytes": 1073741824, "sustained_1d_bytes": 1073741824},
        "alerts": [
            {"name": "StackServiceDown", "severity": "critical", "service": "api", "since": "t1",
             "summary": "api is down"}
        ],
        "error": None,
    }  # fmt: skip
    assert len(calls) == 8 and len(set(calls)) == 8


def test_monitoring_off_or_unreachable():
    assert hs.monitoring("") is None

    def down(url):
        raise OSError("connection refused")

    mon = hs.monitoring("http://127.0.0.1:9", down)
    assert mon["error"] == "Prometheus at http://127.0.0.1:9: connection refused" and mon["alerts"] == []


# ---------------------------------------------------------------------------------------------------------- swarm
NODES = [
    {"Availability": "Active", "EngineVersion": "28.2.2", "Hostname": "swarm-node1", "ID": "x1",
     "ManagerStatus": "Leader", "Self": True, "Status": "Ready", "TLSStatus": "Ready"},
    {"Availability": "Drain", "EngineVersion": "28.2.2", "Hostname": "swarm-node2", "ID": "x2",
     "ManagerStatus": "", "Self": False, "Status": "Down", "TLSStatus": "Ready"},
]  # fmt: skip
SERVICES = [
    {"ID": "s1", "Image": "homeport/testapi:1", "Mode": "replicated", "Name": "teststack_api", "Ports": "",
     "Replicas": "1/2"},
    {"ID": "s2", "Image": "x", "Mode": "global", "Name": "agent", "Ports": "", "Replicas": "3/3 (max 1 per node)"},
]  # fmt: skip


def test_swarm_on_a_manager():
    answers = {
        ("docker", "info"): '{"NodeID":"x1","LocalNodeState":"active","ControlAvailable":true}',
        ("docker", "node", "ls"): "\n".join(json.dumps(n) for n in NODES),
        ("docker", "service", "ls"): "\n".join(json.dumps(s) for s in SERVICES),
    }
    sw = hs.swarm(FakeHost(answers))
    assert sw["node_id"] == "x1" and sw["manager"] is True
    assert sw["nodes"][0] == {
        "hostname": "swarm-node1",
        "state": "Ready",
        "availability": "Active",
        "manager_status": "Leader",
        "engine": "28.2.2",
        "self": True,
    }
    assert sw["nodes"][1]["manager_status"] == "" and sw["nodes"][1]["state"] == "Down"
    assert sw["services"] == [
        {"name": "teststack_api", "image": "homeport/testapi:1", "running": 1, "desired": 2},
        {"name": "agent", "image": "x", "running": 3, "desired": 3},
    ]


def test_swarm_worker_and_no_swarm():
    worker = FakeHost({("docker", "info"): '{"NodeID":"w","LocalNodeState":"active","ControlAvailable":false}'})
    assert hs.swarm(worker) == {"node_id": "w", "manager": False, "nodes": [], "services": []}
    assert not any(c[1] in {"node", "service"} for c in worker.calls)
    assert hs.swarm(FakeHost({("docker", "info"): '{"LocalNodeState":"inactive"}'})) is None
    assert hs.swarm(FakeHost({("docker", "info"): "garbage"})) is None


# ------------------------------------------------------------------------------------------------- the document
DOC_KEYS = {"errors", "uptime_seconds", "host_memory", "disk", "vm", "docker", "containers", "backup", "monitoring",
            "swarm"}  # fmt: skip


def test_the_whole_document_and_its_errors(tmp_path):
    answers = docker_answers([INSPECT_API])
    answers[("docker", "stats")] = None  # a failing command is one line in errors, never a failure
    host = FakeHost(answers)
    doc = hs.gather(host, str(tmp_path), "", proc=str(tmp_path / "none"))
    assert set(doc) == DOC_KEYS  # no tailscale here: the key is absent, as before
    assert doc["docker"] is True and doc["containers"][0]["memory_usage_bytes"] is None
    assert doc["errors"] == ["docker stats: failed"]
    assert doc["swarm"] is None and doc["monitoring"] is None and doc["vm"] is None
    assert doc["uptime_seconds"] is None  # no /proc and no sysctl
    json.dumps(doc)  # the module returns it as JSON


# --------------------------------------------------------------------------------------------- through ansible
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Gather
      homeport.homeport.homeport_status:
        state_dir: "{{ state_dir }}"
        extra_path: [/nonexistent]
      environment:
        PATH: "{{ bin_dir }}:/usr/bin:/bin"  # the docker double first
      register: gathered
    - name: Keep it
      ansible.builtin.copy:
        content: "{{ gathered | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
      check_mode: false
"""

FAKE_DOCKER = """#!/bin/sh
# a docker double for this test only: no containers (docker ps -aq prints nothing), not in a swarm
case "$1" in
  ps) exit 0 ;;
  info) echo '{"NodeID":"","LocalNodeState":"inactive","ControlAvailable":false}' ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"""


@pytest.mark.slow
def test_module_through_ansible_with_mitogen_in_check_mode(tmp_path, monkeypatch):
    """The module through ansible on localhost, once: with homeport's Mitogen strategy (its module_utils import from
    the collection must resolve there) and in check mode (read-only: it runs all the same, changed false)."""
    from homeport import runner

    state = tmp_path / "state"
    (state / "backup").mkdir(parents=True)
    (state / "backup" / "status.json").write_text('{"state": "success", "snapshot_id": "ab12"}')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    mitogen = runner.mitogen_env()
    assert mitogen.get("ANSIBLE_STRATEGY") == "homeport_linear", runner.MITOGEN_WARNINGS
    for key, value in mitogen.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out.json"
    variables = {"state_dir": str(state), "bin_dir": str(bin_dir), "out": str(out)}
    r = run_local_playbook(tmp_path, PLAY, variables, ("--check",))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["changed"] is False
    doc = result["status"]
    assert set(doc) == DOC_KEYS
    assert doc["docker"] is True and doc["containers"] == [] and doc["swarm"] is None
    assert doc["backup"]["last_snapshot"] == "ab12" and doc["disk"]["path"] == str(state)
    assert doc["uptime_seconds"] > 0 and doc["host_memory"]["total_bytes"] > 0
    assert doc["errors"] == []
