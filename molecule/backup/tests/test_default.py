"""backup: scheduled restic backups that restore byte-identically, on Debian (dind + SFTP) and macOS-sim."""

from __future__ import annotations

import datetime as dt
import json
import os
import plistlib
import re
import shlex
from pathlib import Path

import pytest
from homeport_testinfra import is_macsim, run_ok, sim_calls, status_document, unit_enabled

from homeport import status as status_report

PASSWORD = "mol-Restic-Secret-4b1e9c"  # backup_restic_password in molecule.yml
ETC = "/etc/homeport/backup"
RESTIC_ENV = f"RESTIC_PASSWORD_FILE={ETC}/restic-password RESTIC_CACHE_DIR=/var/lib/homeport/backup/cache"
SFTP_REPO = "sftp:restic@backup-sftp12:/srv/restic/homeport"
HASH_TREE = "cd {} && find . -type f ! -name '*.tmp' -print0 | sort -z | xargs -0 sha256sum"


def _name(host) -> str:
    return host.backend.get_hostname()


@pytest.fixture
def dind(host):
    if _name(host) != "backup-dind13":
        pytest.skip("Debian Docker host only")
    return host


@pytest.fixture
def macsim(host):
    if _name(host) != "backup-macsim":
        pytest.skip("macOS-sim host only")
    assert is_macsim(host)
    return host


def _snapshots(host, repo: str, restic: str = "restic") -> list[dict]:
    out = run_ok(host, f"env {RESTIC_ENV} {restic} --repo {shlex.quote(repo)} snapshots --json --no-lock")
    return json.loads(out)


def test_secrets_are_root_only_files(dind):
    assert dind.file(ETC).mode == 0o700
    for name in ("restic-password", "env", "config.json"):
        f = dind.file(f"{ETC}/{name}")
        assert f.user == "root" and f.mode == 0o600, name
    assert dind.file(f"{ETC}/restic-password").content_string == PASSWORD


def test_timers_installed_and_enabled(dind):
    for unit in ("homeport-backup.timer", "homeport-backup-check.timer", "homeport-backup-drill.timer"):
        assert unit_enabled(dind, unit), unit
    timers = run_ok(dind, "systemctl list-timers --all --no-pager")
    assert "homeport-backup.timer" in timers and "homeport-backup-check.timer" in timers
    assert "homeport-backup-drill.timer" in timers
    drill = dind.file("/etc/systemd/system/homeport-backup-drill.timer").content_string
    assert "OnCalendar=Sat *-*-* 06:00:00" in drill and "Persistent=true" in drill
    assert "homeport-backup verify" in dind.file("/etc/systemd/system/homeport-backup-drill.service").content_string
    timer = dind.file("/etc/systemd/system/homeport-backup.timer").content_string
    assert "OnCalendar=*-*-* 03:30:00" in timer and "Persistent=true" in timer and "RandomizedDelaySec=1800" in timer
    check = dind.file("/etc/systemd/system/homeport-backup-check.timer").content_string
    assert "OnCalendar=Sun *-*-* 05:00:00" in check
    service = dind.file("/etc/systemd/system/homeport-backup-check.service").content_string
    assert "homeport-backup check" in service


def test_status_file_records_success(dind):
    status = json.loads(dind.file("/var/lib/homeport/backup/status.json").content_string)
    assert status["schema"] == 1 and status["state"] == "success" and status["error"] is None
    assert status["last_success"] and status["snapshot_id"]
    assert [r["ok"] for r in status["repositories"]] == [True, True, True]
    assert status["repositories"][2]["copy"] is True
    assert status["check"]["ok"] is True
    # the last drill (after a live file and live rows changed) passed, with its duration: the recovery time
    drill = status["drill"]
    assert drill["ok"] is True and drill["error"] is None and drill["last_success"] == drill["last_run"]
    assert drill["duration_seconds"] > 0 and drill["databases"][0]["ok"] and drill["databases"][0]["tables"] == 3


def test_homeport_status_shows_the_drill(dind):
    """The status module of `homeport status` (roles/homeport/tasks/status.yml) on this host, summarised as
    `homeport status --json` does: the drill's result and duration are in the host's backup section."""
    raw = status_document(dind)  # the status module of roles/homeport/tasks/status.yml
    summary = status_report.summarise_host(raw, now=dt.datetime.now(dt.UTC))
    drill = summary["backup"]["drill"]
    assert drill["ok"] is True and drill["duration_seconds"] > 0 and drill["age_days"] is not None
    assert not [w for w in summary["warnings"] if "drill" in w]


def test_copy_repository_holds_the_same_snapshots(dind):
    local = sorted(s["tree"] for s in _snapshots(dind, "/srv/backup/local-repo"))
    copied = sorted(s["tree"] for s in _snapshots(dind, "/srv/backup/copy-repo"))
    assert copied == local and len(copied) == 5


def test_heartbeat_received_pings(dind):
    hits = dind.file("/var/lib/backup-hb-hits").content_string.splitlines()
    assert "POST /ping/mol-Heartbeat-Token-77d2" in hits  # every good run
    assert "POST /ping/mol-Heartbeat-Token-77d2/fail" in hits  # the failing run of the failure-hook step
    # the journal minus the receiver's own request log (a stand-in for the remote service)
    journal = dind.run("journalctl --no-pager -o short | grep -v ' backup-hb-receiver\\['").stdout
    assert "mol-Heartbeat-Token-77d2" not in journal
    hits = dind.run("grep -rlF mol-Heartbeat-Token-77d2 /etc /var/lib/homeport /usr/local /root /tmp").stdout.split()
    assert sorted(hits) == ["/etc/homeport/backup/config.json", "/tmp/corrupt-config.json", "/tmp/fail-config.json"]


def test_restore_is_byte_identical(dind):
    """The restore action (from the SFTP repository) wrote the same bytes as the live path and volume."""
    live = run_ok(dind, HASH_TREE.format("/srv/app-config"))
    restored = run_ok(dind, HASH_TREE.format("/srv/restore-test/srv/app-config"))
    assert live == restored and "conf.d/secret.bin" in live
    volume = run_ok(
        dind,
        "docker run --rm --network none -v appdata:/data:ro --entrypoint sh homeport/pgvector:17 -c "
        + shlex.quote(HASH_TREE.format("/data")),
    )
    restored_volume = run_ok(
        dind, HASH_TREE.format("/srv/restore-test/var/lib/homeport/backup/staging/volumes/appdata")
    )
    assert volume == restored_volume and "uploads/2026/blob.bin" in volume
    # excluded by backup_excludes
    assert not dind.file("/srv/restore-test/srv/app-config/cache.tmp").exists
    dump = dind.file("/srv/restore-test/var/lib/homeport/backup/staging/dumps/appdb.dump")
    assert dump.exists and dump.size > 0


def test_restored_dump_has_the_same_rows(dind):
    """Load the restored dump into a throwaway container of the live image and count rows there."""
    dump = "/srv/restore-test/var/lib/homeport/backup/staging/dumps/appdb.dump"
    script = f"""
set -e
docker rm -f t-verify >/dev/null 2>&1 || true
docker run -d --name t-verify --network none -e POSTGRES_PASSWORD=x homeport/pgvector:17 >/dev/null
until docker exec t-verify pg_isready -h 127.0.0.1 -U postgres >/dev/null 2>&1; do sleep 1; done
docker exec t-verify createdb -U postgres app
docker exec -i t-verify pg_restore -U postgres -d app --no-owner --exit-on-error <{dump}
docker exec t-verify psql -U postgres -d app -At -c \
  "select (select count(*) from customers), (select count(*) from items), (select count(*) from audit.log)"
docker rm -f t-verify >/dev/null
"""
    assert run_ok(dind, script).strip() == "137|42|2"
    live = run_ok(
        dind,
        "docker exec backup-pg psql -U app -d app -At -c "
        "'select (select count(*) from customers), (select count(*) from items), (select count(*) from audit.log)'",
    )
    assert live.strip() == "137|42|2"


def test_retention_left_the_expected_snapshots(dind):
    for repo in ("/srv/backup/local-repo", SFTP_REPO):
        times = sorted(s["time"][:13] for s in _snapshots(dind, repo))
        assert len(times) == 5, (repo, times)
        assert times[:4] == ["2026-02-10T10", "2026-03-09T10", "2026-03-16T10", "2026-03-17T18"], (repo, times)


def test_offsite_repository_is_on_the_sftp_host(host):
    if _name(host) != "backup-sftp12":
        pytest.skip("SFTP host only")
    assert host.file("/srv/restic/homeport/config").exists
    assert host.file("/srv/restic/homeport/config").user == "restic"


def test_sftp_host_key_pinned_not_scanned(dind):
    known = dind.file("/root/.ssh/known_hosts").content_string
    assert known.startswith("backup-sftp12 ssh-ed25519 ")


def test_recovered_host_took_no_backup_of_its_own(host):
    """docs/runbook.md "The Mac Mini died" step 1: the new host's bootstrap (backup_initial_run: false) wrote no
    snapshot over the old host's, and its timers are in place for after the recovery (recovery.yml did the rest)."""
    if _name(host) != "backup-new13":
        pytest.skip("recovered host only")
    hosts = {s["hostname"] for s in _snapshots(host, SFTP_REPO)}
    assert hosts == {"backup-dind13"}, hosts
    assert unit_enabled(host, "homeport-backup.timer")
    assert host.file("/srv/recovery/srv/app-config/app.yml").content_string == "key: value\n"


def test_failure_hook_fired(dind):
    assert "backup: " in dind.file("/tmp/hook-fired").content_string
    status = json.loads(dind.file("/tmp/fail-status.json").content_string)
    assert status["state"] == "failure" and status["last_failure"] and status["error"]


def test_no_secret_in_journal_files_or_processes(host):
    if _name(host) == "backup-sftp12":
        pytest.skip("no secret on the SFTP host")
    # the only file that holds the password is the root-only password file
    hits = host.run(
        f"grep -rlF {shlex.quote(PASSWORD)} /etc /var/lib/homeport /usr/local /Library /var/log /root /tmp 2>/dev/null"
    ).stdout.split()
    assert hits == [f"{ETC}/restic-password"], hits
    assert PASSWORD not in host.run("journalctl --no-pager -o cat 2>/dev/null").stdout
    assert PASSWORD not in host.run("ps -eo args").stdout


def test_no_secret_in_ansible_output():
    """Every line converge, idempotence and side_effect (the actions at -v) wrote to ANSIBLE_LOG_PATH."""
    log = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.log"
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "PLAY RECAP" in text and "homeport-backup" in text
    # one record per timestamped line; the verifier's own inventory dump (testinfra) holds the inventory itself
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ p=)", text)
    leaks = [r[:200] for r in records if PASSWORD in r and '"_meta"' not in r]
    assert leaks == []
    token = "mol-Heartbeat-Token-77d2"  # backup_heartbeat_url carries it
    assert [r[:200] for r in records if token in r and '"_meta"' not in r] == []


def test_darwin_restic_from_homebrew_and_launchd(macsim):
    assert ["brew", "install", "restic"] in [c[:3] for c in sim_calls(macsim, "brew")]
    for label, args in (
        ("com.homeport.backup", "run"),
        ("com.homeport.backup-check", "check"),
        ("com.homeport.backup-drill", "verify"),
    ):
        plist = plistlib.loads(macsim.file(f"/Library/LaunchDaemons/{label}.plist").content)
        assert plist["Label"] == label
        assert plist["ProgramArguments"][-2:] == ["/usr/local/libexec/homeport-backup", args]
        assert PASSWORD.encode() not in macsim.file(f"/Library/LaunchDaemons/{label}.plist").content
        assert ["launchctl", "bootstrap", "system", f"/Library/LaunchDaemons/{label}.plist"] in sim_calls(
            macsim, "launchctl"
        )
        assert macsim.run(f"launchctl print system/{label}").rc == 0


def test_darwin_backups_ran_with_real_restic(macsim):
    status = json.loads(macsim.file("/usr/local/var/homeport/backup/status.json").content_string)
    assert status["state"] == "success"
    env = "RESTIC_PASSWORD_FILE=/etc/homeport/backup/restic-password"
    snaps = json.loads(run_ok(macsim, f"env {env} /opt/homebrew/bin/restic -r /srv/backup/repo snapshots --json"))
    assert len(snaps) == 2 and all("/srv/data" in s["paths"] for s in snaps)
