"""The backup role refuses bad remote-backend, heartbeat, limit and Neo4j settings in validate.yml, before it
changes anything: real ansible-playbook runs of the whole role (local connection, check mode as a second safety
net); the play must stop in validation with one message naming the variable, and the host must be untouched."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from ansible_local import run_role_locally, validation_task_names

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
TASK_RE = re.compile(r"^TASK \[backup : (.+?)\] \**$", re.MULTILINE)
S3_SECRET = "unit-S3-Secret-7f3a"


def run_role(tmp_path: Path, variables: dict):
    state = {"homeport_os_family": "Debian", "homeport_state_dir": str(tmp_path / "state")}
    return run_role_locally(tmp_path, "backup", {**state, **variables})


GOOD = {
    "backup_repository": "s3:https://s3.us-west-000.backblazeb2.com/homeport-bucket/mini",
    "backup_restic_password": "unit-Restic-Secret-91ab",
    "backup_s3_access_key_id": "0001234567890",
    "backup_s3_secret_access_key": S3_SECRET,
    "backup_paths": ["/srv/data"],
    "backup_heartbeat_url": "https://hc-ping.com/0f0e-token",
    "backup_limit_upload_kib": 2000,
    "backup_database_dumps": [{"name": "graph", "type": "neo4j", "container": "neo4j", "database": "neo4j"}],
}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"backup_s3_access_key_id": ""}, "backup_s3_access_key_id is empty, but backup_repository uses S3"),
        ({"backup_s3_secret_access_key": ""}, "backup_s3_secret_access_key is empty, but backup_repository uses S3"),
        (
            {"backup_copy_repositories": ["s3:https://s3.example.com"]},
            "backup_copy_repositories: 's3:https://s3.example.com' is not an S3 bucket URL",
        ),
        (
            {"backup_repository": "s3:https://s3.example.com/Bad_Bucket"},
            "backup_repository: 's3:https://s3.example.com/Bad_Bucket' is not an S3 bucket URL",
        ),
        ({"backup_heartbeat_url": "ftp://hc-ping.com/0f0e-token"}, "backup_heartbeat_url: 'ftp://hc-pin...' (masked)"),
        (
            {"backup_repository": "rest:https://homeport:hunter2-Rest@nas:8000/x"},
            "backup_repository: 'rest:https://***@nas:8000/x' has credentials in the URL",
        ),
        ({"backup_limit_upload_kib": "fast"}, "backup_limit_upload_kib"),
        ({"backup_neo4j_edition": "desktop"}, "backup_neo4j_edition"),
        (
            {"backup_database_dumps": [{**GOOD["backup_database_dumps"][0], "method": "online"}]},
            "backup_database_dumps entry graph: method online needs backup_neo4j_edition enterprise",
        ),
    ],
)
def test_bad_settings_fail_in_validation_before_any_change(tmp_path, variables, expected):
    proc, out = run_role(tmp_path, {**GOOD, **variables})
    assert proc.returncode != 0, out
    assert expected in out, out
    assert S3_SECRET not in out and "0f0e-token" not in out and "hunter2-Rest" not in out
    ran = TASK_RE.findall(out)
    outside = [t for t in ran if t not in validation_task_names("backup") and not t.startswith("Validating arguments")]
    assert not outside, f"tasks outside validation ran: {outside}"
    assert not (tmp_path / "state").exists()


def test_good_settings_pass_validation(tmp_path):
    _proc, out = run_role(tmp_path, {**GOOD, "backup_action": "verify"})
    # verify stops at "the job is not installed" (after validation): every rule of validate.yml's one task passed
    assert "TASK [backup : Check the backup settings]" in out and "checks passed" in out, out
    assert "needs the backup job, which is not installed" in out, out
    assert S3_SECRET not in out


def test_a_later_rule_fails_with_its_own_message_after_the_loops_passed(tmp_path):
    """validate.yml is one homeport.homeport.rules task: a bad backup_drill_hour (a rule near the end) fails it with
    the drill rule's message, after the earlier loop rules (repositories, retention, two database dumps) passed."""
    dumps = [*GOOD["backup_database_dumps"], {"name": "db", "type": "postgres", "container": "pg", "database": "app"}]
    proc, out = run_role(tmp_path, {**GOOD, "backup_database_dumps": dumps, "backup_drill_hour": 24})
    assert proc.returncode != 0, out
    fatal = [line for line in out.splitlines() if line.startswith("fatal: [local]: FAILED! => ")]
    assert len(fatal) == 1, out
    result = json.loads(fatal[0].split(" => ", 1)[1])
    assert result["rule"] == "the drill schedule", result
    drill = "backup_drill_weekday 6 must be 0-7, backup_drill_hour 24 0-23 and backup_drill_minute 0 0-59"
    assert result["msg"] == f"backup: {drill}", result
    assert "backup_drill_hour" in result["assertion"] and "item_label" not in result
    # the repositories (4 items), the retention and schedule (13) and the database dumps (2) were checked and passed
    assert result["checked"] > 4 + 13 + 2, result
    assert TASK_RE.findall(out)[-1] == "Check the backup settings", out
    assert not (tmp_path / "state").exists()
