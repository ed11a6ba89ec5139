"""The quick verbs' command building (homeport.quick): the ssh argv, the engine per OS, the remote scripts.

The scripts are also run here with sh against a stand-in `docker` on PATH (it answers from files, like the real
CLI's `ps -q --filter label=...` would): that proves the shell is valid and the exit codes are the documented
ones. The same verbs against the sandbox's real engine are in tests/unit/test_demo.py.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from homeport import quick
from homeport.runner import control_path_dir


def _host(**kw) -> quick.Host:
    base = {"name": "mini", "address": "mini.tail.ts.net", "user": "admin", "port": 2222, "key": "~/.ssh/id_mini"}
    return quick.Host(**{**base, **kw})


def test_ssh_argv_keeps_host_key_checking_and_reuses_the_runner_master():
    from ansible.plugins.connection.ssh import Connection

    host = _host(common_args="-o UserKnownHostsFile=/k/known_hosts -o StrictHostKeyChecking=yes")
    argv = quick.ssh_argv(host, "echo hi")
    joined = " ".join(argv)
    assert argv[0] == "ssh"
    assert "StrictHostKeyChecking=yes" in joined and "StrictHostKeyChecking=no" not in joined
    assert "BatchMode=yes" in joined and "ControlPersist=600s" in joined
    assert "UserKnownHostsFile=/k/known_hosts" in joined
    expected = Connection._create_control_path("mini.tail.ts.net", 2222, "admin") % {
        "directory": str(control_path_dir())
    }
    assert f"ControlPath={expected}" in argv
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-i") + 1] == str(Path("~/.ssh/id_mini").expanduser())
    assert "-T" in argv and "-tt" not in argv
    assert argv[-4:-1] == ["admin@mini.tail.ts.net", "sh", "-c"]
    assert shlex.split(argv[-1]) == ["echo hi"]  # the remote shell gets the script as one word
    assert "-tt" in quick.ssh_argv(host, "true", tty=True)


def test_engine_on_macos_is_the_colima_socket_of_the_profile():
    prelude = quick.engine_prelude(_host(os_family="Darwin", colima_profile="work"))
    assert 'H="$HOME"' in prelude
    assert 'DOCKER_HOST="unix://$H/.colima/work/docker.sock"' in prelude
    assert "/opt/homebrew/bin" in prelude
    other_user = quick.engine_prelude(_host(os_family="Darwin", colima_user="colima"))
    assert "H=~colima;" in other_user and "/.colima/default/docker.sock" in other_user
    with pytest.raises(quick.QuickError) as exc:
        quick.engine_prelude(_host(os_family="Darwin", colima_profile="a b"))
    assert exc.value.code == 3 and "colima_profile" in str(exc.value)


def test_engine_on_debian_is_the_default_socket_through_sudo_when_needed():
    prelude = quick.engine_prelude(_host(os_family="Debian"))
    assert "DOCKER_HOST" not in prelude and "colima" not in prelude
    assert 'D="sudo -n docker"' in prelude and "/var/run/docker.sock" in prelude


def test_engine_unknown_os_is_decided_on_the_host_and_an_explicit_docker_host_wins():
    both = quick.engine_prelude(_host())
    assert 'uname -s)" = Darwin' in both and "colima" in both and "sudo -n docker" in both
    explicit = quick.engine_prelude(_host(os_family="Darwin", docker_host="tcp://127.0.0.1:2375"))
    assert explicit == "export DOCKER_HOST=tcp://127.0.0.1:2375\nD=docker\n"


def test_scripts_filter_on_the_compose_project_and_service_labels():
    host = _host(os_family="Debian", project="teststack")
    ps = quick.remote_script(host, "ps")
    assert "--filter label=com.docker.compose.project=teststack" in ps
    assert quick.SEPARATOR in ps and "stats --no-stream" in ps
    logs = quick.remote_script(host, "logs", "api", quick.logs_args(since="10m", tail="5"))
    assert "--filter label=com.docker.compose.service=api" in logs
    assert '$D logs --since 10m --tail 5 "$first" 2>&1' in logs
    follow = quick.remote_script(host, "logs", "api", quick.logs_args(follow=True))
    assert "cat >/dev/null; kill $pid" in follow  # the remote `docker logs -f` ends when ssh's stdin closes
    assert "exec $D restart $ids" in quick.remote_script(host, "restart", "api")
    assert quick.exec_argv("abc", ["psql", "-c", "select 1"], tty=True) == "$D exec -it abc psql -c 'select 1'"
    assert quick.exec_argv("abc", ["cat"], tty=False) == "$D exec -i abc cat"
    with pytest.raises(ValueError, match="needs a service"):
        quick.remote_script(host, "logs")


FAKE_DOCKER = r"""#!/bin/sh
# stand-in docker: logs argv; `ps` answers from $STATE/ps-<service|all>, `logs`/`restart`/`inspect` echo
echo "$*" >>"$STATE/calls"
case "$1" in
  ps)
    svc=all
    for a in "$@"; do case "$a" in label=com.docker.compose.service=*) svc="${a#*=}"; svc="${svc#*=}";; esac; done
    case " $* " in *" --format "*) cat "$STATE/labels" 2>/dev/null; exit 0;; esac
    cat "$STATE/ps-$svc" 2>/dev/null; exit 0;;
  logs) echo "log line of $*"; echo "err line" >&2;;
  restart) shift; echo "restarted $*";;
  inspect) echo '[{"Id": "aaaaaaaaaaaa1", "Name": "/teststack-api-1", "RestartCount": 2,
    "Config": {"Image": "homeport/testapi:1", "Labels": {"com.docker.compose.service": "api"}},
    "State": {"Status": "running", "Running": true, "StartedAt": "t", "Health": {"Status": "healthy"}},
    "HostConfig": {"Memory": 268435456}}]';;
  stats) echo '{"ID": "aaaaaaaaaaaa", "MemUsage": "12.5MiB / 256MiB"}';;
esac
"""


@pytest.fixture
def fake_engine(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(FAKE_DOCKER)
    (bindir / "docker").chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    (state / "ps-api").write_text("aaaaaaaaaaaa1\n")
    (state / "ps-all").write_text("aaaaaaaaaaaa1\nbbbbbbbbbbbb2\n")
    (state / "labels").write_text("api\ndb\napi\n")

    def run(script: str) -> subprocess.CompletedProcess:
        env = {"PATH": f"{bindir}:/usr/bin:/bin", "STATE": str(state), "HOME": str(tmp_path)}
        # the Debian prelude: the stand-in socket is not writable, so $D is "sudo -n docker"; run as root it is not
        script = script.replace('D="sudo -n docker"', "D=docker")
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env)

    return run, state


def test_scripts_run_against_a_stand_in_docker(fake_engine):
    run, state = fake_engine
    host = _host(os_family="Debian", project="teststack")
    r = run(quick.remote_script(host, "logs", "api", ["--since", "10m"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["log line of logs --since 10m aaaaaaaaaaaa1", "err line"]  # stderr merged

    r = run(quick.remote_script(host, "restart", "api"))
    assert (r.returncode, r.stdout.strip()) == (0, "restarted aaaaaaaaaaaa1")

    r = run(quick.remote_script(host, "logs", "nosuch"))
    assert r.returncode == quick.UNKNOWN_SERVICE_RC
    message = quick.unknown_service_message("nosuch", r.stderr, "teststack")
    assert message == "unknown service 'nosuch' in the stack 'teststack'; known services: api, db"

    r = run(quick.remote_script(host, "ps"))
    assert r.returncode == 0, r.stderr
    rows = quick.parse_ps(r.stdout)
    assert rows == [
        {
            "service": "api",
            "name": "teststack-api-1",
            "image": "homeport/testapi:1",
            "state": "running",
            "health": "healthy",
            "restarts": 2,
            "started_at": "t",
            "memory_usage_mb": 12.5,
            "memory_limit_mb": 256.0,
        }
    ]
    calls = (state / "calls").read_text()
    assert "ps -aq --no-trunc --filter label=com.docker.compose.project=teststack" in calls


def test_ps_of_an_empty_project_and_the_darwin_socket(fake_engine, tmp_path):
    run, state = fake_engine
    (state / "ps-all").write_text("")
    host = _host(os_family="Darwin", project="teststack")
    script = quick.remote_script(host, "ps") + 'echo "DOCKER_HOST=$DOCKER_HOST"\n'
    assert "PATH=/opt/homebrew/bin:/usr/local/bin:$PATH" in script
    r = run(script.replace("/opt/homebrew/bin:/usr/local/bin:", ""))  # this machine has a real docker there
    assert r.returncode == 0, r.stderr
    assert quick.parse_ps(r.stdout.rsplit("DOCKER_HOST=", 1)[0]) == []
    assert r.stdout.strip().endswith(f"DOCKER_HOST=unix://{tmp_path}/.colima/default/docker.sock")


def test_hosts_come_from_the_inventory_with_the_stack_project(project, tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        yaml.safe_dump(
            {
                "homeport": {
                    "hosts": {
                        "mini": {"ansible_host": "10.0.0.5", "ansible_user": "admin", "homeport_os_family": "Darwin"},
                        "box": {"ansible_host": "10.0.0.6", "ansible_port": 2200},
                    },
                    "vars": {"stack_project_name": "{{ 'brain' }}", "colima_profile": "work"},
                }
            }
        )
    )
    hosts = quick.load_hosts(inv)
    mini = quick.pick_host(hosts, "mini")
    assert (mini.address, mini.user, mini.os_family, mini.project, mini.colima_profile) == (
        "10.0.0.5",
        "admin",
        "Darwin",
        "brain",
        "work",
    )
    assert quick.pick_host(hosts, "10.0.0.6").port == 2200
    with pytest.raises(quick.QuickError) as exc:
        quick.pick_host(hosts, None)
    assert exc.value.code == 3 and "--limit" in str(exc.value)
    with pytest.raises(quick.QuickError, match="no such host"):
        quick.pick_host(hosts, "nope")


def test_unknown_service_exits_3_with_the_known_services(monkeypatch):
    def fake_run(argv, **kw):
        return subprocess.CompletedProcess(argv, quick.UNKNOWN_SERVICE_RC, "", "known: api db \n")

    monkeypatch.setattr(quick.subprocess, "run", fake_run)
    with pytest.raises(quick.QuickError) as exc:
        quick.restart(_host(project="teststack"), "web")
    assert exc.value.code == 3
    assert str(exc.value) == "unknown service 'web' in the stack 'teststack'; known services: api, db"


def test_ps_json_shape(monkeypatch, project, tmp_path):
    from typer.testing import CliRunner

    from homeport.cli import app

    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"homeport": {"hosts": {"mini": {"ansible_host": "10.0.0.5"}}}}))
    monkeypatch.setattr(quick, "ps", lambda host: [{"service": "api", "state": "running"}])
    r = CliRunner().invoke(app, ["ps", "-i", str(inv), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "host": "mini",
        "project": "homeport",
        "containers": [{"service": "api", "state": "running"}],
    }


def test_exec_cli_unknown_service_exits_3_and_options_come_before_the_command(monkeypatch, project, tmp_path):
    from typer.testing import CliRunner

    from homeport.cli import app

    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"homeport": {"hosts": {"mini": {"ansible_host": "10.0.0.5"}}}}))
    calls = []

    def fake_run(argv, **kw):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, quick.UNKNOWN_SERVICE_RC, "", "known: api db\n")

    monkeypatch.setattr(quick.subprocess, "run", fake_run)
    r = CliRunner().invoke(app, ["exec", "web", "-i", str(inv), "--", "psql", "-c", "select 1"])
    assert r.exit_code == 3
    assert "unknown service 'web' in the stack 'homeport'; known services: api, db" in " ".join(r.output.split())
    assert len(calls) == 1 and "com.docker.compose.service=web" in calls[0][-1]  # only the resolve call ran
