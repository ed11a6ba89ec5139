"""The backup role refuses bad remote-backend, heartbeat, limit and Neo4j settings in validate.yml, before it
changes anything: real ansible-playbook runs of the whole role (local connection, check mode as a second safety
net); the play must stop in validation with one message naming the variable, and the host must be untouched."""

from __future__ import annotations

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
    # verify stops at "the job is not installed" (after validation): every validation task passed
    assert "Check the drill schedule" in out and "needs the backup job, which is not installed" in out, out
    assert S3_SECRET not in out
