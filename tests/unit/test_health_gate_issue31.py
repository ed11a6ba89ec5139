"""Issue 31, defects 1 and 2 (the health gate): a crash-looping service fails the release, a one-shot init container
is allowed and must exit 0, and stack_wait_timeout bounds the whole wait (compose's dependency waits too).

Pure logic: plugins/module_utils/stack_health.py and the staged check (stack_budget). The release transaction that
runs them on the host (roles/stack/files/homeport-stack-txn with plugins/module_utils/stack_txn.py, installed as the
stack role installs it) runs here against a fake docker CLI (a script that plays compose and the engine), so the
bound and the liveness window are exercised without an engine; tests/unit/test_demo.py deploys the real cases on the
sandbox host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_local import ROOT

sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible_collections.homeport.homeport.plugins.filter import stack as stack_filter
from ansible_collections.homeport.homeport.plugins.module_utils import stack_health as sh

LIMIT = {"deploy": {"resources": {"limits": {"memory": "64m"}}}}


def config_with_one_shot(restart="no"):
    return {
        "services": {
            "migrate": {"image": "x", "restart": restart, **LIMIT},
            "app": {
                "image": "x",
                "restart": "unless-stopped",
                "depends_on": {"migrate": {"condition": "service_completed_successfully", "required": True}},
                **LIMIT,
            },
            "worker": {"image": "x", "restart": "always", **LIMIT},
        }
    }


def test_the_staged_check_allows_a_one_shot_init_container():
    """Defect 2: the check after staging refused restart "no" even for a one-shot another service waits for."""
    budget = stack_filter.stack_budget(config_with_one_shot("no"), "14g")
    assert budget["errors"] == [] and budget["bad_restart"] == []
    lone = {"services": {"migrate": {"image": "x", "restart": "no", **LIMIT}}}  # nobody waits for it: refused
    assert stack_filter.stack_budget(lone, "14g")["bad_restart"] == ["migrate"]
    assert sh.one_shot_services(config_with_one_shot("no")) == ["migrate"]
    assert sh.one_shot_services(config_with_one_shot("unless-stopped")) == []  # it loops: not a one-shot


def view(service, status="running", exit_code=0, *, restarts=0, health="", cid=None):
    return {"id": cid or service, "name": f"p-{service}-1", "service": service, "status": status,
            "exit_code": exit_code, "restarts": restarts, "health": health}  # fmt: skip


def test_the_gate_fails_crash_loops_exits_and_failed_one_shots():
    """Defect 1: up --wait counts a restarting container as running; the gate does not."""
    rules = sh.health_rules(config_with_one_shot())
    assert rules["migrate"] == {"healthcheck": False, "one_shot": True}
    ok = [view("migrate", "exited", 0), view("app"), view("worker", restarts=4)]
    assert sh.judge(rules, {"worker": 4}, ok) == []  # restarts from before the deploy do not count
    crash = sh.judge(rules, {"worker": 4}, [view("migrate", "exited", 0), view("app", restarts=2), view("worker")])
    assert [s for s, _m in crash] == ["app"] and "crash-looping: restarted 2 time(s)" in crash[0][1]
    restarting = sh.judge(rules, {}, [view("app", "restarting", exit_code=1)])
    assert restarting[0][0] == "app" and "last exit code 1" in restarting[0][1]
    failed_once = sh.judge(rules, {}, [view("migrate", "exited", 3)])
    assert failed_once == [("migrate", failed_once[0][1])] and "exited with code 3" in failed_once[0][1]
    exited = sh.judge(rules, {}, [view("worker", "exited", 0)])
    assert "not running after the deploy" in exited[0][1]
    assert sh.judge(rules, {}, [view("app", health="unhealthy")])[0][1].endswith("unhealthy (its healthcheck fails)")
    assert sh.not_ready(rules, [view("migrate", "running"), view("app", "created"), view("worker")]) == [
        "app",
        "migrate",
    ]


def test_container_view_reads_docker_inspect():
    inspect = {
        "Id": "abc",
        "Name": "/p-app-1",
        "RestartCount": 3,
        "State": {"Status": "restarting", "ExitCode": 1, "Health": {"Status": "starting"}},
        "Config": {"Labels": {"com.docker.compose.service": "app"}},
    }
    assert sh.container_view(inspect) == {
        "id": "abc", "name": "p-app-1", "service": "app", "status": "restarting", "exit_code": 1, "restarts": 3,
        "health": "starting",
    }  # fmt: skip


FAKE_DOCKER = r"""#!/bin/bash
# a fake docker CLI: compose config/ps/up/logs, inspect and image inspect, driven by files in $FAKE. It prints what
# the CLI reference says: `compose ps --all --quiet` only the IDs of the project's containers, none before `up`
# created them (docs.docker.com/reference/cli/docker/compose/ps/), `inspect` a JSON array of the containers with
# RestartCount, State.Status/ExitCode/StartedAt and the compose labels (the Engine API's ContainerInspectResponse; the
# engine bumps RestartCount and StartedAt at each restart), `compose config --images` the images, one a line, and
# `image inspect --format {{.Id}}` the image ID. With $FAKE/engine-gone, `ps` after `up` fails as the CLI does when the
# engine stops answering (its "Cannot connect to the Docker daemon" message, exit 1).
case " $* " in
  *" config --images "*) echo x ;;
  *" config "*) cat "$FAKE/config.json" ;;
  *" ps "*)
    if [ -e "$FAKE/created" ] && [ -e "$FAKE/engine-gone" ]; then
      echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2
      exit 1
    fi
    if [ -e "$FAKE/created" ]; then echo app; fi ;;
  *" up "*)
    echo "$@" > "$FAKE/up-args"
    touch "$FAKE/created"
    if [ -e "$FAKE/hang" ]; then echo $$ > "$FAKE/up-pid"; exec sleep 300; fi
    printf ' Container p-app-1  Creating\n Container p-app-1  Started\n' >&2 ;;
  *" logs "*) echo 'app-1  | starting' ;;
  *" image inspect "*) echo sha256:0123456789ab ;;
  "inspect "*|*" inspect "*)
    if [ -e "$FAKE/hang-inspect" ]; then rm "$FAKE/hang-inspect"; exec sleep 300; fi
    n=$(cat "$FAKE/restarts" 2>/dev/null || echo 0)
    [ -e "$FAKE/crash" ] && echo $((n + 1)) > "$FAKE/restarts"
    printf '[{"Id":"app","Name":"/p-app-1","RestartCount":%s,' "$n"
    printf '"State":{"Status":"running","ExitCode":1,"StartedAt":"2025-01-01T00:00:%02dZ"},' "$n"
    printf '"Config":{"Labels":{"com.docker.compose.service":"app"}}}]\n' ;;
esac
"""
# the Python of the host (roles/stack: _stack_txn_python): the host program needs its standard library only
HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def install_program(dest: Path) -> Path:
    """The host program installed as roles/stack/tasks/txn_install.yml installs it: the files its loop names."""
    import yaml

    tasks = yaml.safe_load((ROOT / "roles" / "stack" / "tasks" / "txn_install.yml").read_text())
    (install,) = [t for t in tasks if t.get("loop") and "homeport.homeport.copy" in t]
    dest.mkdir()
    for item in install["loop"]:
        src = item["src"].replace("{{ role_path }}", str(ROOT / "roles" / "stack"))
        src = src.replace("{{ _stack_plugins }}", str(ROOT / "plugins"))
        shutil.copy(src, dest / Path(src).name)
    return dest / "homeport-stack-txn"


def run_txn(tmp_path: Path, **params) -> tuple[dict, float]:
    """Run the release transaction of a deploy (the host program homeport-stack-txn, what the stack role starts on
    the host) against the fake docker CLI; returns its final state (the journal) and the seconds it took."""
    from ansible_collections.homeport.homeport.plugins.module_utils import stack_txn

    fake = tmp_path / "fake"
    fake.mkdir(exist_ok=True)
    docker = fake / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    (fake / "config.json").write_text(json.dumps({"services": {"app": {"image": "x", "restart": "always"}}}))
    project = tmp_path / "project"
    project.mkdir()
    (project / "compose.yaml").write_text("services: {app: {image: x, restart: always}}\n")
    params = {
        "project_name": "p", "files": ["compose.yaml"], "docker_cli": str(docker), "wait_timeout": 30,
        "liveness_seconds": 3, **params,
    }  # fmt: skip
    state = {"id": "t1", "seq": 0, "status": "running", "started": time.time(), "params": params, "progress": []}
    stack_txn.write_state(str(project), state)
    program = install_program(tmp_path / "bin")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    t0 = time.monotonic()
    r = subprocess.run(
        [HOST_PYTHON, str(program), "run", str(project)], capture_output=True, text=True,
        env={**env, "FAKE": str(fake)}, timeout=60,
    )  # fmt: skip
    seconds = time.monotonic() - t0
    final = stack_txn.read_state(str(project)) or {}
    assert r.returncode == (0 if final.get("result") == "ok" else 1), (r.stdout, r.stderr, final)
    return final, seconds


@pytest.mark.parametrize("crash", [False, True], ids=["steady", "crash-loop"])
def test_the_release_transaction_watches_the_liveness_window(tmp_path, crash):
    fake = tmp_path / "fake"
    fake.mkdir()
    if crash:
        (fake / "crash").touch()
    result, seconds = run_txn(tmp_path)
    if crash:
        assert result["result"] == "failed" and result["failed_services"] == ["app"], result
        assert "service app is crash-looping" in result["msg"]
    else:
        assert result["result"] == "ok" and result["changed"], result
        assert seconds >= 3  # watched for stack_liveness_seconds
    assert "--wait" in (fake / "up-args").read_text().split()


def test_the_release_transaction_bounds_the_whole_wait(tmp_path):
    """Defect 2: `up` hung 17 minutes with stack_wait_timeout: 90 (compose's dependency wait has no bound)."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "hang").touch()
    result, seconds = run_txn(tmp_path, wait_timeout=4)
    assert result["result"] == "failed" and "not ready within stack_wait_timeout (4 s" in result["msg"], result
    assert seconds < 20
    pid = int((fake / "up-pid").read_text())
    with pytest.raises(ProcessLookupError):  # compose (its process group) was stopped, not left hanging
        os.kill(pid, 0)


def test_the_bound_holds_the_docker_calls_of_the_gate_too(tmp_path):
    """The whole wait, stack_wait_timeout: an engine that stops answering after `up` (its `inspect` hangs once) holds
    the gate no longer than the bound (at least 5 s for one look at the containers), not 60 s a call."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "hang-inspect").touch()
    result, seconds = run_txn(tmp_path, wait_timeout=2, liveness_seconds=0)
    assert not (fake / "hang-inspect").exists()  # it did hang once
    assert seconds < 20, result
    assert result["result"] == "ok", result  # the next look found the service running


def test_the_preflight_refuses_a_liveness_window_the_wait_cannot_hold(project, out):
    """stack_wait_timeout bounds the whole wait, the liveness window included: a window as long as the bound (or a
    bound that is not a number) is refused before anything changes (exit 3), naming both variables."""
    import yaml
    from conftest import PLAYBOOKS, run_cli, write_hosts_inventory

    from homeport import events

    stack = {
        **yaml.safe_load((ROOT / "tests" / "stack" / "vars.yml").read_text()),
        "stack_source_dirs": [{"name": "api", "src": str(ROOT / "tests" / "stack" / "api")}],
        "homeport_roles": ["stack"],
    }
    rows = {
        "window-too-long": {"stack_wait_timeout": 30, "stack_liveness_seconds": 30},
        "not-a-number": {"stack_wait_timeout": "soon"},
        "fine": {"stack_wait_timeout": 30, "stack_liveness_seconds": 5},
    }
    hosts = {name: {**stack, **v, "marker_path": str(project / f"marker-{name}")} for name, v in rows.items()}
    code = run_cli(PLAYBOOKS / "preflight_roles_marker.yml", write_hosts_inventory(project, hosts))
    text = " ".join(out.export_text().split())
    assert code == events.EXIT_INVALID, text
    assert [n for n in rows if (project / f"marker-{n}").exists()] == ["fine"], text
    assert "stack_wait_timeout (30) must be a number of seconds of at least 1, and stack_liveness_seconds (30)" in text
    assert "argument 'stack_wait_timeout' is of type str" in text  # the role's argument_specs name it first


def test_a_gate_that_cannot_see_the_services_fails_the_release(tmp_path):
    """Fail closed: `up` succeeded, then the engine stops answering (`ps` fails at every look). "Could not look" is
    not "nothing wrong": the release fails at the bound instead of passing with no container judged."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "engine-gone").touch()
    result, seconds = run_txn(tmp_path, wait_timeout=3, liveness_seconds=1)
    assert result["result"] == "failed", result
    assert "the services' state could not be read" in result["msg"], result
    assert seconds < 30, result
