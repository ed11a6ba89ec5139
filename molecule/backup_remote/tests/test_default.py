"""backup_remote: real REST (restic-rest-server) and S3 (moto_server) repositories, byte-identical restores, the
restore drill on each, and credentials that never reach a command line, a unit, the journal or the output."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
from homeport_testinfra import run_ok

SECRETS = ("mol-Remote-Restic-5e2d", "mol-Rest-Secret-3c9a", "mol-S3-Secret-81f0")  # molecule.yml
HASH_TREE = "cd {} && find . -type f ! -name '*.tmp' -print0 | sort -z | xargs -0 sha256sum"


@pytest.fixture
def target(host):
    if host.backend.get_hostname() != "backup_remote-deb13":
        pytest.skip("the backed-up host only")
    return host


@pytest.mark.parametrize("where", ["/srv/restore-rest", "/srv/restore-s3"])
def test_restore_is_byte_identical(target, where):
    live = run_ok(target, HASH_TREE.format("/srv/data"))
    assert "sub/blob.bin" in live
    assert run_ok(target, HASH_TREE.format(f"{where}/srv/data")) == live
    assert not target.file(f"{where}/srv/data/cache.tmp").exists


def test_both_remote_repositories_hold_the_snapshots(target):
    status = json.loads(target.file("/var/lib/homeport/backup/status.json").content_string)
    assert status["state"] == "success" and [r["ok"] for r in status["repositories"]] == [True, True]
    assert status["drill"]["ok"] is True and status["drill"]["repository"].startswith("s3:")


def test_rest_server_stores_the_repository(host):
    if host.backend.get_hostname() != "backup_remote-rest":
        pytest.skip("REST server only")
    assert host.file("/srv/rest/homeport/config").exists
    assert host.run("ls /srv/rest/homeport/snapshots | wc -l").stdout.strip() != "0"


def test_credentials_only_in_root_only_files(target):
    env = target.file("/etc/homeport/backup/env")
    assert env.mode == 0o600 and env.user == "root"
    text = env.content_string
    assert "RESTIC_REST_USERNAME=homeport" in text and "RESTIC_REST_PASSWORD=mol-Rest-Secret-3c9a" in text
    assert "AWS_SECRET_ACCESS_KEY=mol-S3-Secret-81f0" in text
    config = target.file("/etc/homeport/backup/config.json").content_string
    for secret in SECRETS:
        assert secret not in config
        hits = target.run(
            f"grep -rlF {shlex.quote(secret)} /etc /var/lib/homeport /usr/local /root /tmp 2>/dev/null"
        ).stdout.split()
        assert set(hits) <= {"/etc/homeport/backup/env", "/etc/homeport/backup/restic-password"}, (secret, hits)
        assert secret not in target.run("journalctl --no-pager -o cat").stdout
        assert secret not in target.run("ps -eo args").stdout
        units = target.run("cat /etc/systemd/system/homeport-backup*").stdout
        assert secret not in units and "ExecStart=/usr/bin/python3 /usr/local/libexec/homeport-backup run" in units


def test_no_secret_in_ansible_output():
    text = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.log").read_text(encoding="utf-8")
    assert "PLAY RECAP" in text
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ p=)", text)
    for secret in SECRETS:
        assert [r[:200] for r in records if secret in r and '"_meta"' not in r] == [], secret
