"""Issue 31, defects 1 and 2 (the health gate): a crash-looping service fails the release, a one-shot init container
is allowed and must exit 0, and stack_wait_timeout bounds the whole wait (compose's dependency waits too).

Pure logic: plugins/module_utils/stack_health.py and the staged check (stack_budget). The module
(plugins/modules/stack_up.py) runs here against a fake docker CLI (a script that plays compose and the engine), so
the bound and the liveness window are exercised without an engine; tests/unit/test_demo.py deploys the real cases on
the sandbox host.
"""

from __future__ import annotations

import json
import os
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
# a fake docker CLI: compose version/config/ps/up and inspect, driven by files in $FAKE
case " $* " in
  *" version "*) echo '{"version":"2.20.2"}' ;;
  *" config "*) cat "$FAKE/config.json" ;;
  *" ps "*) echo app ;;
  *" up "*)
    echo "$@" > "$FAKE/up-args"
    if [ -e "$FAKE/hang" ]; then echo $$ > "$FAKE/up-pid"; exec sleep 300; fi
    printf ' Container p-app-1  Starting\n Container p-app-1  Started\n' >&2 ;;
  "inspect "*|*" inspect "*)
    n=$(cat "$FAKE/restarts" 2>/dev/null || echo 0)
    [ -e "$FAKE/crash" ] && echo $((n + 1)) > "$FAKE/restarts"
    printf '[{"Id":"app","Name":"/p-app-1","RestartCount":%s,"State":{"Status":"running","ExitCode":1},' "$n"
    printf '"Config":{"Labels":{"com.docker.compose.service":"app"}}}]\n' ;;
esac
"""


def run_module(tmp_path: Path, **params) -> tuple[dict, float]:
    fake = tmp_path / "fake"
    fake.mkdir(exist_ok=True)
    docker = fake / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    (fake / "config.json").write_text(json.dumps({"services": {"app": {"image": "x", "restart": "always"}}}))
    args = {
        "project_dir": str(tmp_path), "project_name": "p", "files": ["compose.yaml"], "docker_cli": str(docker),
        "wait_timeout": 30, "liveness_seconds": 3, **params,
    }  # fmt: skip
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {
        **os.environ,
        "FAKE": str(fake),
        "PYTHONPATH": os.pathsep.join([str(ROOT / ".cache" / "collections"), *sys.path]),
    }
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, str(ROOT / "plugins" / "modules" / "stack_up.py"), str(argfile)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    return json.loads(r.stdout), time.monotonic() - t0


@pytest.mark.parametrize("crash", [False, True], ids=["steady", "crash-loop"])
def test_the_module_watches_the_liveness_window(tmp_path, crash):
    fake = tmp_path / "fake"
    fake.mkdir()
    if crash:
        (fake / "crash").touch()
    result, seconds = run_module(tmp_path)
    if crash:
        assert result.get("failed") and result["failed_services"] == ["app"], result
        assert "service app is crash-looping" in result["msg"]
    else:
        assert not result.get("failed") and result["changed"], result
        assert seconds >= 3  # watched for stack_liveness_seconds
    assert "--wait" in (fake / "up-args").read_text().split()


def test_the_module_bounds_the_whole_wait(tmp_path):
    """Defect 2: `up` hung 17 minutes with stack_wait_timeout: 90 (compose's dependency wait has no bound)."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "hang").touch()
    result, seconds = run_module(tmp_path, wait_timeout=4)
    assert result.get("failed") and "not ready within stack_wait_timeout (4 s" in result["msg"], result
    assert seconds < 20
    pid = int((fake / "up-pid").read_text())
    with pytest.raises(ProcessLookupError):  # compose (its process group) was stopped, not left hanging
        os.kill(pid, 0)


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
