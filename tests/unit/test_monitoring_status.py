"""`homeport status` and the host's Prometheus (issue 16): availability per service over 1/7/30 days, probe latency,
restarts, stack memory peak/sustained and the firing alerts, in the JSON summary and on screen; exit code 5 while
an alert fires.

The pure part (status.summarise_monitoring) is tested on documents; the real status play runs locally against a fake
Prometheus that answers the documented HTTP API (https://prometheus.io/docs/prometheus/latest/querying/api/:
GET /api/v1/query -> {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {...}, "value":
[<unix time>, "<value as a string>"]}]}}, GET /api/v1/alerts -> {"data": {"alerts": [{"labels", "annotations",
"state", "activeAt", "value"}]}}), including the always-firing Watchdog that status must leave out."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from conftest import write_local_inventory
from rich.console import Console
from typer.testing import CliRunner

from homeport import status
from homeport.cli import app

DOC = {
    "url": "http://127.0.0.1:9090",
    "availability": {"api": {"1d": 99.5, "7d": 99.93, "30d": 99.981}, "ssh": {"1d": 100.0, "7d": 100.0, "30d": 100.0}},
    "latency_ms": {"api": 2.4, "ssh": 11.0},
    "restarts_1d": {"api": 3},
    "memory": {"peak_1d_bytes": 1610612736, "sustained_1d_bytes": 1073741824},
    "alerts": [
        {
            "name": "StackServiceDown",
            "severity": "critical",
            "service": "api",
            "since": "2026-12-01T20:00:00Z",
            "summary": "Stack service api does not accept connections on 127.0.0.1:18080.",
        }
    ],
    "error": None,
}


def test_summary_shape():
    summary, warnings = status.summarise_monitoring(DOC)
    assert summary == {
        "availability": {
            "api": {"1d": 99.5, "7d": 99.93, "30d": 99.981},
            "ssh": {"1d": 100.0, "7d": 100.0, "30d": 100.0},
        },
        "latency_ms": {"api": 2.4, "ssh": 11.0},
        "restarts_1d": {"api": 3},
        "memory": {"peak_1d_mb": 1536.0, "sustained_1d_mb": 1024.0},
        "alerts": DOC["alerts"],
        "error": None,
    }
    assert warnings == [
        "alert StackServiceDown firing: Stack service api does not accept connections on 127.0.0.1:18080."
    ]


def test_no_monitoring_section_without_the_role():
    assert status.summarise_monitoring(None) == (None, [])
    s = status.summarise({"h": {"roles": ["runtime"]}}, measure=False)
    assert s["hosts"]["h"]["monitoring"] is None
    assert status.alerts_firing(s) == 0


def test_unreachable_prometheus_is_a_warning_not_an_alert():
    summary, warnings = status.summarise_monitoring(
        {"availability": {}, "alerts": [], "error": "Prometheus at http://127.0.0.1:9090: refused"}
    )
    assert summary["alerts"] == [] and warnings == ["monitoring: Prometheus at http://127.0.0.1:9090: refused"]


def test_host_summary_and_screen():
    s = status.summarise({"mini": {"monitoring": DOC}}, measure=False)
    assert status.alerts_firing(s) == 1
    host = s["hosts"]["mini"]
    assert host["monitoring"]["availability"]["api"]["30d"] == 99.981
    assert any(w.startswith("alert StackServiceDown firing") for w in host["warnings"])
    buf = StringIO()
    status.render(Console(file=buf, width=140, force_terminal=False), s)
    text = buf.getvalue()
    assert "99.50%" in text and "99.93%" in text and "99.98%" in text and "100.00%" in text
    assert "peak 1536 MiB, sustained 1024 MiB" in text
    assert "alert StackServiceDown firing" in text


# -- the real status play against a fake Prometheus ------------------------------------------------------------
class FakePrometheus:
    def __init__(self, firing: bool):
        self.firing = firing
        self.queries: list[str] = []

    def vector(self, rows):
        return {"status": "success", "data": {"resultType": "vector", "result": rows}}

    def answer(self, path: str):
        url = urllib.parse.urlsplit(path)
        if url.path == "/api/v1/alerts":
            alerts = [
                {
                    "labels": {"alertname": "Watchdog", "severity": "none"},
                    "annotations": {"summary": "always"},
                    "state": "firing",
                    "activeAt": "2026-12-01T19:00:00Z",
                    "value": "1e+00",
                },
            ]
            if self.firing:
                alerts.append(
                    {
                        "labels": {"alertname": "BackupStale", "severity": "critical", "job": "node"},
                        "annotations": {"summary": "The last successful backup is 1d 6h 0m 0s old (threshold 26 h)."},
                        "state": "firing",
                        "activeAt": "2026-12-01T20:00:00Z",
                        "value": "1.08e+05",
                    },
                )
            alerts.append({"labels": {"alertname": "TargetDown"}, "state": "pending", "activeAt": "x", "value": "0"})
            return {"status": "success", "data": {"alerts": alerts}}
        query = dict(urllib.parse.parse_qsl(url.query))["query"]
        self.queries.append(query)
        t = 1796150000.0
        if "probe_success" in query:
            share = {"[1d]": "0.995", "[7d]": "0.9993", "[30d]": "0.99981"}[
                query[query.index("[") : query.index("]") + 1]
            ]
            return self.vector([{"metric": {"service": "api"}, "value": [t, share]}])
        if "probe_duration_seconds" in query:
            return self.vector([{"metric": {"service": "api"}, "value": [t, "0.0024"]}])
        if "restarts" in query:
            return self.vector([{"metric": {"service": "api"}, "value": [t, "2.9999"]}])
        if "max_over_time" in query:
            return self.vector([{"metric": {}, "value": [t, "1610612736"]}])
        if "avg_over_time(sum" in query:
            return self.vector([{"metric": {}, "value": [t, "1073741824"]}])
        return self.vector([])


@pytest.fixture
def prometheus(request):
    fake = FakePrometheus(firing=request.param)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(fake.answer(self.path)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.port = server.server_address[1]
    yield fake
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("prometheus", [True], indirect=True, ids=["firing"])
def test_status_play_reads_prometheus_and_exits_5_while_an_alert_fires(project, prometheus):
    write_local_inventory(
        project,
        {
            "homeport_state_dir": str(project / "state"),
            "homeport_roles": ["monitoring"],
            "monitoring_prometheus_port": prometheus.port,
        },
    )
    r = CliRunner().invoke(app, ["status", "-i", "hosts.yml", "--json"])
    assert r.exit_code == status.EXIT_ALERTS == 5, r.output
    doc = json.loads(r.stdout)
    assert doc["recap"]["local"]["failed"] == 0
    mon = doc["summary"]["local"]["monitoring"]
    assert mon["availability"] == {"api": {"1d": 99.5, "7d": 99.93, "30d": 99.981}}
    assert mon["latency_ms"] == {"api": 2.4}
    assert mon["restarts_1d"] == {"api": 3}
    assert mon["memory"] == {"peak_1d_mb": 1536.0, "sustained_1d_mb": 1024.0}
    assert [a["name"] for a in mon["alerts"]] == ["BackupStale"]  # not the Watchdog, not a pending alert
    assert mon["error"] is None
    assert any("[30d]" in q for q in prometheus.queries)


@pytest.mark.parametrize("prometheus", [False], indirect=True, ids=["quiet"])
def test_status_exits_0_when_nothing_fires(project, prometheus):
    write_local_inventory(
        project,
        {
            "homeport_state_dir": str(project / "state"),
            "homeport_roles": ["monitoring"],
            "monitoring_prometheus_port": prometheus.port,
        },
    )
    r = CliRunner().invoke(app, ["status", "-i", "hosts.yml"])
    assert r.exit_code == 0, r.output
    assert "99.50%" in r.output
