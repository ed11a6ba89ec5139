"""`homeport status` on a swarm: the swarm part of the status document (gathered on a manager by the status
program in roles/homeport/tasks/status.yml; the molecule scenario `swarm` runs that program on a real manager)
summarised and rendered: nodes with state, availability, manager reachability and engine version; services with
replicas running/desired."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from homeport import status

SWARM = {
    "node_id": "abc",
    "manager": True,
    "nodes": [
        {
            "hostname": "mini",
            "state": "Ready",
            "availability": "Active",
            "manager_status": "Leader",
            "engine": "26.1.5",
        },
        {"hostname": "box", "state": "Down", "availability": "Drain", "manager_status": "", "engine": "26.1.5"},
        {
            "hostname": "vm",
            "state": "Ready",
            "availability": "Active",
            "manager_status": "Unreachable",
            "engine": "27.0",
        },
    ],
    "services": [
        {"name": "homeport_db", "image": "pg:17", "running": 1, "desired": 1},
        {"name": "homeport_api", "image": "api:2", "running": 1, "desired": 2},
    ],
}


def doc(**over):
    base = {"os": "Debian 13", "arch": "x86_64", "docker": True, "memory": {"budget_mb": 14336}, "errors": []}
    base.update(over)
    return base


def test_swarm_summary_and_warnings():
    s = status.summarise_host(doc(swarm=SWARM))
    assert s["swarm"]["manager"] is True
    assert [n["hostname"] for n in s["swarm"]["nodes"]] == ["mini", "box", "vm"]
    assert s["swarm"]["services"][1] == {"name": "homeport_api", "image": "api:2", "running": 1, "desired": 2}
    assert "swarm node box is Down" in s["warnings"]
    assert "swarm manager vm is unreachable" in s["warnings"]
    assert "swarm service homeport_api runs 1 of 2 replicas" in s["warnings"]
    assert not any("homeport_db" in w for w in s["warnings"])


def test_no_swarm_is_no_section():
    s = status.summarise_host(doc())
    assert s["swarm"] is None
    assert not any("swarm" in w for w in s["warnings"])


def test_swarm_rendered_on_the_manager():
    buf = StringIO()
    summary = status.summarise({"mini": doc(swarm=SWARM)}, measure=False)
    status.render(Console(file=buf, width=140, force_terminal=False), summary)
    out = buf.getvalue()
    for text in ("swarm node", "Leader", "Unreachable", "Drain", "26.1.5", "swarm service", "homeport_api", "1/2"):
        assert text in out


def test_worker_shows_no_swarm_tables():
    buf = StringIO()
    worker = {"node_id": "w", "manager": False, "nodes": [], "services": []}
    status.render(Console(file=buf, width=140), status.summarise({"box": doc(swarm=worker)}, measure=False))
    assert "swarm node" not in buf.getvalue()
