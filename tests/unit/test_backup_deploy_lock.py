"""Issue 27, finding 5: the backup job and a deploy share ONE lock (the stack's deploy lock), with real processes.

A backup that started while a deploy recreated the database failed (`psql ended early ... container is not running`)
and sent the failure heartbeat: the deploy lock and the backup job's lock ignored each other. Here the real job
script (roles/backup/files/homeport-backup, its `run` as its own process, the real restic) and the real deploy lock
module (plugins/modules/stack_lock.py as its own process, as Ansible runs it; PYTHONPATH stands for what AnsiballZ
bundles: module_utils/stack_lock.py) meet a `docker` double of one PostgreSQL container: `docker exec` into it fails
as Docker does while the deploy has it down ("container ... is not running"), and a pg_dump that the container's
recreation cuts off fails. The deploy is a process that takes the lock, marks the container down for a while, brings
it back and releases the lock.
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
from test_backup_drill import make_cfg

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "roles" / "backup" / "files" / "homeport-backup"
MODULE = ROOT / "plugins" / "modules" / "stack_lock.py"
pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed (.ci/run installs it)")

# `docker` for one PostgreSQL container `db`, whose state (running | down) is the file $DB_STATE
DOCKER = r"""#!/usr/bin/env python3
import os, re, sys, time
args = sys.argv[1:]
state = lambda: open(os.environ["DB_STATE"]).read().strip()
with open(os.environ["DOCKER_LOG"], "a") as log:
    log.write(f"{time.time():.3f} {state()} {' '.join(args)}\n")
if args[0] != "exec":
    sys.exit(f"double: unsupported docker {args[0]}")
if state() != "running":
    sys.stderr.write("Error response from daemon: container 4f2a9c is not running\n")
    sys.exit(1)
if "psql" in args:
    for line in sys.stdin:
        if "pg_export_snapshot" in line:
            print("00000003-0000001B-1", flush=True)
        m = re.fullmatch(r"SELECT '(.*)';", line.strip())
        if m:
            if state() != "running":
                sys.stderr.write("FATAL:  terminating connection due to administrator command\n")
                sys.exit(2)
            print(m.group(1), flush=True)
    sys.exit(0)
if "pg_dump" in args:
    time.sleep(float(os.environ.get("DUMP_SECONDS", "0")))
    if state() != "running":  # the server went away under the dump
        sys.stderr.write("pg_dump: error: server closed the connection unexpectedly\n")
        sys.exit(1)
    sys.stdout.write("PGDMP fake custom-format dump\n")
    sys.exit(0)
print("-- globals")
"""

# a deploy: the stack role's lock task (the module as a process), the container down for a while, then unlock
DEPLOY = r"""
import json, os, subprocess, sys, time
module, path, state_file, hold, wait = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
lock = {"owner": "ana@laptop", "pid": os.getpid(), "action": "deploy", "token": "tokDeploy"}
def call(args):
    argsfile = path + ".args.json"
    with open(argsfile, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
    out = subprocess.run([sys.executable, module, argsfile], capture_output=True, text=True).stdout
    return json.loads(out)
took = call({"path": path, "lock": lock, "timeout": 1800, **({"wait": int(wait)} if int(wait) else {})})
print(json.dumps({"event": "lock", "at": time.time(), **took}), flush=True)
if not took.get("acquired"):
    sys.exit(2)
open(state_file, "w").write("down\n")  # docker compose up recreates the database container
print(json.dumps({"event": "down", "at": time.time()}), flush=True)
time.sleep(hold)
open(state_file, "w").write("running\n")
print(json.dumps({"event": "up", "at": time.time()}), flush=True)
print(json.dumps({"event": "unlock", "at": time.time(), **call({"path": path, "state": "absent", "lock": lock})}),
      flush=True)
"""


@pytest.fixture
def host(tmp_path: Path):
    """The job's config (the real restic, one postgres dump, the docker double, a failure command and the stack
    directory with its deploy lock path) and the runners of the job and of a deploy, each its own process."""
    docker = tmp_path / "docker"
    docker.write_text(DOCKER, encoding="utf-8")
    docker.chmod(0o755)
    (tmp_path / "db-state").write_text("running\n", encoding="utf-8")
    stack = tmp_path / "stack"
    stack.mkdir()
    dump = {"name": "brain", "type": "postgres", "container": "db", "user": "brain", "database": "brain"}
    cfg = make_cfg(
        tmp_path,
        docker=str(docker),
        dumps=[dump],
        on_failure_command=f'echo "$HOMEPORT_BACKUP_ERROR" >> {tmp_path / "failures"}',
        deploy_lock=str(stack / ".deploy.lock"),
        deploy_wait=60,
        deploy_lock_timeout=1800,
    )
    (tmp_path / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    (tmp_path / "deploy.py").write_text(DEPLOY, encoding="utf-8")
    env = {
        **os.environ,
        "DB_STATE": str(tmp_path / "db-state"),
        "DOCKER_LOG": str(tmp_path / "docker.log"),
        "PYTHONPATH": str(ROOT / ".cache" / "collections"),
    }
    env.pop("HOMEPORT_DEPLOY_LOCK_TOKEN", None)
    init = subprocess.run([sys.executable, str(JOB), "--config", str(tmp_path / "config.json"), "init"], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert init.returncode == 0, init.stderr

    def job(extra_env: dict | None = None, **popen) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(JOB), "--config", str(tmp_path / "config.json"), "run"],
            env={**env, **(extra_env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
        )  # fmt: skip

    def deploy(hold: float, wait: int = 0) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(tmp_path / "deploy.py"), str(MODULE), cfg["deploy_lock"], env["DB_STATE"],
             str(hold), str(wait)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    return {"cfg": cfg, "tmp": tmp_path, "job": job, "deploy": deploy, "env": env}


def events(proc: subprocess.Popen, until: str, timeout: float = 60) -> dict:
    """Read the deploy's JSON events up to ``until``; the events by name."""
    seen = {}
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        event = json.loads(line)
        seen[event["event"]] = event
        if event["event"] == until:
            return seen
        assert time.monotonic() < deadline, seen
    raise AssertionError(f"the deploy ended before {until}: {seen} {proc.stderr.read()}")


def docker_calls(tmp: Path) -> list[tuple[float, str, str]]:
    out = []
    for line in (tmp / "docker.log").read_text(encoding="utf-8").splitlines():
        at, state, argv = line.split(" ", 2)
        out.append((float(at), state, argv))
    return out


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, dict, str]:
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, json.loads(stdout), stderr


def test_a_backup_started_during_a_deploy_waits_for_it_and_then_dumps(host) -> None:
    deploy = host["deploy"](hold=4)
    seen = events(deploy, "down")
    assert seen["lock"]["acquired"], seen
    rc, status, stderr = finish(host["job"]())
    after = events(deploy, "unlock")
    assert deploy.wait(timeout=30) == 0
    assert rc == 0, f"{status.get('error')}\n{stderr}"
    assert status["state"] == "success" and status["dumps"][0]["name"] == "brain"
    assert "waiting up to 60 s (backup_deploy_wait) for a deploy to finish" in stderr
    assert "another deploy is running: locked by ana@laptop" in stderr
    # no docker call while the container was down, the first one only after the deploy brought it back
    calls = docker_calls(host["tmp"])
    assert calls and all(state == "running" for _at, state, _argv in calls), calls
    assert calls[0][0] >= after["up"]["at"]
    assert not (host["tmp"] / "failures").exists()
    assert not Path(host["cfg"]["deploy_lock"]).exists()  # both released theirs


def test_a_deploy_waits_for_the_dump_phase_of_a_running_backup(host) -> None:
    job = host["job"]({"DUMP_SECONDS": "4"})
    deadline = time.monotonic() + 30
    while not Path(host["cfg"]["deploy_lock"]).exists():  # the job holds the deploy lock while it dumps
        assert job.poll() is None and time.monotonic() < deadline, job.stderr.read() if job.poll() is not None else ""
        time.sleep(0.05)
    holder = json.loads(Path(host["cfg"]["deploy_lock"]).read_text(encoding="utf-8"))
    assert holder["action"] == "backup" and holder["pid"] == job.pid and holder["local"] is True
    refused = host["deploy"](hold=0, wait=0)  # stack_backup_wait 0: refused at once, naming the backup job
    took = events(refused, "lock")["lock"]
    assert refused.wait(timeout=30) == 2
    assert not took["acquired"] and "the backup job is dumping the databases" in took["msg"], took
    deploy = host["deploy"](hold=1, wait=60)
    seen = events(deploy, "unlock")
    assert deploy.wait(timeout=30) == 0
    rc, status, stderr = finish(job)
    assert rc == 0, f"{status.get('error')}\n{stderr}"
    assert seen["lock"]["acquired"] and seen["lock"]["waited"] >= 1, seen
    calls = docker_calls(host["tmp"])
    dump = [at for at, _state, argv in calls if " pg_dump " in f" {argv} "]
    assert calls and all(state == "running" for _at, state, _argv in calls), calls
    # the container went down only after the dump (4 s) and every other call of the dump phase
    assert dump and seen["down"]["at"] > dump[0] + 3.5 and seen["down"]["at"] > calls[-1][0], (seen, calls)


def test_the_pre_deploy_backup_dumps_under_the_deploys_own_lock(host) -> None:
    """roles/stack/tasks/predeploy_backup.yml: the deploy runs the job while it holds the lock (no deadlock)."""
    lock = Path(host["cfg"]["deploy_lock"])
    lock.write_text(json.dumps({"owner": "ana@laptop", "pid": 1, "action": "deploy", "token": "tokPre",
                                "time": int(time.time())}), encoding="utf-8")  # fmt: skip
    rc, status, stderr = finish(host["job"]({"HOMEPORT_DEPLOY_LOCK_TOKEN": "tokPre"}), timeout=60)
    assert rc == 0 and status["state"] == "success", f"{status.get('error')}\n{stderr}"
    assert "waiting" not in stderr
    assert json.loads(lock.read_text(encoding="utf-8"))["token"] == "tokPre"  # the deploy's lock is left alone


def test_a_backup_gives_up_after_backup_deploy_wait_with_a_failure(host) -> None:
    cfg = {**host["cfg"], "deploy_wait": 2}
    (host["tmp"] / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    deploy = host["deploy"](hold=8)
    events(deploy, "down")
    rc, status, stderr = finish(host["job"]())
    deploy.kill()
    assert rc == 1 and status["state"] == "failure", stderr
    assert "a deploy held the deploy lock" in status["error"] and "backup_deploy_wait (2 s)" in status["error"]
    assert "ana@laptop" in status["error"] and "no dump was taken" in status["error"]
    assert not (host["tmp"] / "docker.log").exists()  # nothing touched the database
    assert "backup_deploy_wait" in (host["tmp"] / "failures").read_text(encoding="utf-8")  # the failure hook ran


def test_a_lock_of_a_dead_backup_process_blocks_nothing(host) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = {"owner": "homeport-backup@mini", "pid": gone.pid, "action": "backup", "token": "tokDead", "local": True,
             "time": int(time.time())}  # fmt: skip
    lock = Path(host["cfg"]["deploy_lock"])
    lock.write_text(json.dumps(stale), encoding="utf-8")
    deploy = host["deploy"](hold=0, wait=0)  # no waiting: a dead process's lock is taken over at once
    seen = events(deploy, "unlock")
    assert deploy.wait(timeout=30) == 0 and seen["lock"]["acquired"] and seen["lock"]["taken_over"], seen
    lock.write_text(json.dumps(stale), encoding="utf-8")
    rc, status, stderr = finish(host["job"](), timeout=60)
    assert rc == 0 and status["state"] == "success", f"{status.get('error')}\n{stderr}"
    assert "that run is gone (taking it over)" in stderr
    assert not lock.exists()
