"""Data-aware rollback: roles/stack/tasks/predeploy_backup.yml (run by `homeport deploy` after staging) takes a
fresh backup before a release changes a database service's image, names the snapshot in the report, stops the deploy
when that backup fails, and does nothing for other releases. Real ansible-playbook runs (local connection) with a
docker stand-in for `docker ps` and a stand-in backup job that records its argv."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ansible_local import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
from backup_predeploy import backup_predeploy_changes  # noqa: E402

PS = ["stack-postgres-1\tpostgres\tpgvector/pgvector:pg17", "stack-api-1\tapi\thomeport/testapi:1"]

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    _stack_os_family: Debian
    _stack_docker_env: {{}}
    stack_project_name: stack
  tasks:
    - ansible.builtin.include_tasks: {tasks}
    - ansible.builtin.copy:
        content: "{{{{ {{'changes': _stack_predeploy_changes | default(None)}} | to_json }}}}"
        dest: "{{{{ out }}}}/result.json"
        mode: "0644"
"""


def test_filter_finds_only_running_database_services_with_a_new_image():
    staged = {"postgres": {"image": "pgvector/pgvector:pg18"}, "api": {"image": "homeport/testapi:2"}}
    assert backup_predeploy_changes(PS, staged, ["stack-postgres-1"]) == [
        {"service": "postgres", "container": "stack-postgres-1", "from": "pgvector/pgvector:pg17",
         "to": "pgvector/pgvector:pg18"}
    ]  # fmt: skip
    assert [c["service"] for c in backup_predeploy_changes(PS, staged, [], ["api"])] == ["api"]
    same = {"postgres": {"image": "pgvector/pgvector:pg17"}}
    assert backup_predeploy_changes(PS, same, ["stack-postgres-1"]) == []
    assert backup_predeploy_changes(PS, {}, ["stack-postgres-1"]) == []  # the release drops it: no new image


def run(tmp_path: Path, staged_image: str, job_rc: int = 0, args: tuple = ("-v",), **extra):
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(f"'{line}'" for line in PS) + "\n", encoding="utf-8")
    docker.chmod(0o755)
    job = tmp_path / "job"
    body = {"state": "success" if job_rc == 0 else "failure", "snapshot_id": "5e1f" * 16, "error": "B2: 403"}
    job.write_text(
        f'#!/bin/sh\necho "$*" >>{tmp_path}/job-argv\necho "$HOMEPORT_DEPLOY_LOCK_TOKEN" >>{tmp_path}/job-token\n'
        f"echo '{json.dumps(body)}'\nexit {job_rc}\n",
        encoding="utf-8",
    )
    job.chmod(0o755)
    config = tmp_path / "config.json"
    config.write_text("{}", encoding="utf-8")
    staged = {"services": {"postgres": {"image": staged_image}, "api": {"image": "homeport/testapi:1"}}}
    variables = {
        "out": str(tmp_path),
        "_stack_docker_cli": str(docker),
        "_stack_config_raw": {"stdout": json.dumps(staged), "rc": 0},
        "backup_database_dumps": [{"name": "appdb", "type": "postgres", "container": "stack-postgres-1"}],
        "_stack_predeploy_job": [str(job)],
        "_stack_predeploy_config": str(config),
        # the deploy holds its lock while this runs (roles/stack/tasks/lock.yml); the job dumps under it
        "_stack_lock": {"owner": "test@here", "pid": 1, "action": "deploy", "token": "DeployToken42"},
        **extra,
    }
    tasks = ROOT / "roles" / "stack" / "tasks" / "predeploy_backup.yml"
    return run_local_playbook(tmp_path, PLAYBOOK.format(tasks=tasks), variables, args)


def test_a_new_database_image_gets_a_fresh_backup_named_in_the_report(tmp_path):
    r = run(tmp_path, "pgvector/pgvector:pg18")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "job-argv").read_text(encoding="utf-8").split() == ["run", "--tag", "predeploy"]
    assert (tmp_path / "job-token").read_text(encoding="utf-8").split() == ["DeployToken42"]  # the deploy's lock
    assert "homeport backup restore --snapshot " + "5e1f" * 16 in r.stdout  # the set_stats of the report
    changes = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))["changes"]
    assert changes == [{"service": "postgres", "container": "stack-postgres-1", "from": "pgvector/pgvector:pg17",
                        "to": "pgvector/pgvector:pg18"}]  # fmt: skip


def test_the_same_image_takes_no_backup(tmp_path):
    r = run(tmp_path, "pgvector/pgvector:pg17")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (tmp_path / "job-argv").exists()


def test_a_failed_backup_stops_the_deploy(tmp_path):
    r = run(tmp_path, "pgvector/pgvector:pg18", job_rc=1)
    assert r.returncode != 0
    assert "no deploy of a new postgres image without a fresh backup: B2: 403" in r.stdout


@pytest.mark.parametrize("extra", [{"backup_predeploy_dump": False}])
def test_it_can_be_turned_off(tmp_path, extra):
    r = run(tmp_path, "pgvector/pgvector:pg18", **extra)
    assert r.returncode == 0 and not (tmp_path / "job-argv").exists()


def test_a_check_mode_run_takes_no_backup(tmp_path):
    """homeport drift runs the deploy in check mode: it must neither take a backup nor fail on the skipped job."""
    r = run(tmp_path, "pgvector/pgvector:pg18", args=("-v", "--check"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (tmp_path / "job-argv").exists()
