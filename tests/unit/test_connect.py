"""homeport connect / tunnel (src/homeport/connect.py): the commands they build, the decisions they take, and the
Docker context handling against a stand-in docker CLI that keeps its contexts in a file like the real one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from homeport import connect, quick

HOST = quick.Host(name="mini", address="mini.tail1234.ts.net", user="admin", port=None, key="~/.ssh/id_mini")


def test_endpoint_is_docker_ssh_url():
    assert connect.endpoint(HOST) == "ssh://admin@mini.tail1234.ts.net"
    assert connect.endpoint(quick.Host(name="x", address="10.0.0.5", user="me", port=2222)) == "ssh://me@10.0.0.5:2222"
    assert connect.endpoint(quick.Host(name="x", address="fd7a::1", port=22)) == "ssh://[fd7a::1]"


def test_context_plan_create_unchanged_and_refusal():
    wanted = "ssh://admin@mini.tail1234.ts.net"
    assert connect.context_plan("homeport", wanted, {"default": "unix:///var/run/docker.sock"}) == "create"
    assert connect.context_plan("homeport", wanted, {"homeport": wanted}) == "unchanged"
    with pytest.raises(connect.ConnectError) as exc:
        connect.context_plan("homeport", wanted, {"homeport": "ssh://admin@other-host"})
    assert exc.value.code == 3
    assert "'homeport' already points at ssh://admin@other-host" in str(exc.value)
    assert "--name" in str(exc.value)
    with pytest.raises(connect.ConnectError):
        connect.context_plan("default", wanted, {})


def test_create_and_check_argv():
    assert connect.create_argv("homeport", HOST, "docker") == [
        "docker",
        "context",
        "create",
        "homeport",
        "--description",
        "homeport: mini over SSH",
        "--docker",
        "host=ssh://admin@mini.tail1234.ts.net",
    ]
    assert connect.check_argv("homeport") == [
        "docker",
        "--context",
        "homeport",
        "version",
        "--format",
        "{{.Server.Version}}",
    ]


def _container(service, ports, running=True):
    return {
        "Name": f"/homeport-{service}-1",
        "State": {"Running": running},
        "Config": {"Labels": {quick.SERVICE_LABEL: service, quick.PROJECT_LABEL: "homeport"}},
        "NetworkSettings": {"Ports": ports},
    }


INSPECT = [
    _container("api", {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}], "9000/udp": None}),
    _container(
        "postgres",
        {"5432/tcp": [{"HostIp": "0.0.0.0", "HostPort": "5432"}, {"HostIp": "::", "HostPort": "5432"}]},
    ),
    _container("mcp", {"3000/tcp": [{"HostIp": "100.101.102.103", "HostPort": "3000"}]}),
    _container("worker", {"7000/tcp": None}),
    _container("old", {"1234/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1234"}]}, running=False),
]


def test_published_ports_from_inspect():
    assert connect.published_ports(INSPECT) == [
        ("api", "127.0.0.1", 8000),
        ("postgres", "0.0.0.0", 5432),
        ("postgres", "::", 5432),
        ("mcp", "100.101.102.103", 3000),
    ]


def test_plan_forwards_reaches_loopback_and_tailnet_binds():
    plan = connect.plan_forwards(connect.published_ports(INSPECT), [])
    assert [(f.service, f.local_port, f.remote_address, f.remote_port) for f in plan] == [
        ("mcp", 3000, "100.101.102.103", 3000),
        ("postgres", 5432, "127.0.0.1", 5432),  # IPv4 and IPv6 bindings of one port: one forward
        ("api", 8000, "127.0.0.1", 8000),
    ]
    assert plan[1].spec() == "127.0.0.1:5432:127.0.0.1:5432"


def test_plan_forwards_services_and_offset():
    plan = connect.plan_forwards(connect.published_ports(INSPECT), ["api"], offset=10000)
    assert [(f.service, f.local_port, f.remote_port) for f in plan] == [("api", 18000, 8000)]


def test_plan_forwards_unknown_service_names_the_known_ones():
    with pytest.raises(connect.ConnectError) as exc:
        connect.plan_forwards(connect.published_ports(INSPECT), ["nope"])
    assert (
        exc.value.code == 3 and "unknown service(s) nope" in str(exc.value) and "api, mcp, postgres" in str(exc.value)
    )


def test_plan_forwards_nothing_published():
    with pytest.raises(connect.ConnectError) as exc:
        connect.plan_forwards([], [])
    assert "no published port" in str(exc.value)


def test_busy_ports_sees_a_listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        busy = connect.busy_ports([connect.Forward("api", port, "127.0.0.1", 8000)])
        assert [f.local_port for f in busy] == [port]
    assert connect.busy_ports([connect.Forward("api", port, "127.0.0.1", 8000)]) == []


def test_tunnel_plan_refuses_a_busy_port_naming_it(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        inspect = [_container("api", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]})]
        monkeypatch.setattr(connect, "discover", lambda host: inspect)
        with pytest.raises(connect.ConnectError) as exc:
            connect.tunnel_plan(HOST, [])
    assert exc.value.code == 3
    assert f"127.0.0.1:{port} (service api)" in str(exc.value) and "--offset" in str(exc.value)


def test_tunnel_argv_own_connection_host_key_checking_forwards():
    argv = connect.tunnel_argv(HOST, [connect.Forward("api", 8000, "127.0.0.1", 8000)])
    assert argv[:5] == ["ssh", "-o", "ControlMaster=no", "-o", "ControlPath=none"]
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert "StrictHostKeyChecking=yes" in opts and "BatchMode=yes" in opts and "ExitOnForwardFailure=yes" in opts
    assert not [o for o in opts[2:] if o.startswith(("ControlMaster", "ControlPath", "ControlPersist"))]
    assert argv[argv.index("-L") + 1] == "127.0.0.1:8000:127.0.0.1:8000"
    assert "-N" in argv and argv[argv.index("-i") + 1] == str(Path("~/.ssh/id_mini").expanduser())
    assert argv[-1] == "admin@mini.tail1234.ts.net"


FAKE_DOCKER = r"""#!/usr/bin/env python3
import json, os, sys
db = os.environ["FAKE_DOCKER_DB"]
ctx = json.load(open(db)) if os.path.exists(db) else {"default": "unix:///var/run/docker.sock"}
args = sys.argv[1:]
open(db + ".calls", "a").write(json.dumps(args) + "\n")
if args[:2] == ["context", "ls"]:
    for n, ep in ctx.items():
        print(json.dumps({"Name": n, "DockerEndpoint": ep, "Current": n == "default"}))
elif args[:2] == ["context", "create"]:
    ep = [a for a in args if a.startswith("host=")][0][5:]
    ctx[args[2]] = ep
    json.dump(ctx, open(db, "w"))
    print(args[2])
elif args[:1] == ["--context"] and args[2] == "version":
    if os.environ.get("FAKE_DOCKER_FAIL"):
        sys.stderr.write("error during connect: command [ssh -- host docker system dial-stdio] has exited with "
                         "exit status 127: stderr=sh: docker: command not found\n")
        sys.exit(1)
    print("27.4.0")
else:
    sys.exit(2)
"""


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(FAKE_DOCKER, encoding="utf-8")
    (bindir / "docker").chmod(0o755)
    db = tmp_path / "contexts.json"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_DB", str(db))
    return db


def test_connect_creates_then_leaves_the_context_alone(fake_docker):
    first = connect.connect(HOST)
    assert first == {
        "context": "homeport",
        "endpoint": "ssh://admin@mini.tail1234.ts.net",
        "action": "create",
        "server_version": "27.4.0",
    }
    second = connect.connect(HOST)
    assert second["action"] == "unchanged"
    calls = [json.loads(line) for line in Path(str(fake_docker) + ".calls").read_text().splitlines()]
    assert len([c for c in calls if c[:2] == ["context", "create"]]) == 1


def test_connect_refuses_a_name_used_for_another_host_and_changes_nothing(fake_docker):
    fake_docker.write_text(json.dumps({"homeport": "ssh://admin@old-mac"}), encoding="utf-8")
    before = fake_docker.read_text()
    with pytest.raises(connect.ConnectError) as exc:
        connect.connect(HOST)
    assert exc.value.code == 3 and "ssh://admin@old-mac" in str(exc.value)
    assert fake_docker.read_text() == before
    calls = Path(str(fake_docker) + ".calls").read_text()
    assert "create" not in calls


def test_connect_explains_the_macos_ssh_path_problem(fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "1")
    with pytest.raises(connect.ConnectError) as exc:
        connect.connect(HOST)
    assert exc.value.code == 1 and "docker/cli#3045" in str(exc.value) and "homeport bootstrap" in str(exc.value)


def test_run_tunnel_ctrl_c_closes_the_tunnel_and_exits_0(tmp_path):
    pidfile = tmp_path / "child.pid"
    program = (
        "import sys; from homeport.connect import run_tunnel; "
        f"sys.exit(run_tunnel(['sh', '-c', 'echo $$ > {pidfile}; exec sleep 60'], "
        "on_ready=lambda: print('ready', flush=True)))"
    )
    proc = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.time() < deadline
        time.sleep(0.05)
    child = int(pidfile.read_text())
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_run_tunnel_reports_ssh_failure():
    assert connect.run_tunnel(["sh", "-c", "exit 255"]) == 4
    assert connect.run_tunnel(["sh", "-c", "exit 1"]) == 1
