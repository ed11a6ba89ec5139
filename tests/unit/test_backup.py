"""backup role: the launchd plists rendered by Ansible's template module (parsed with plistlib), the systemd
units, and the job script's restic handling (missing repository on restic 0.14 vs >= 0.17, locks, redaction)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import plistlib
import stat
from pathlib import Path

import pytest
from ansible_local import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "backup"
SECRET = "unit-Restic-Secret-91ab"

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - ansible.builtin.template:
        src: {role}/templates/launchd.plist.j2
        dest: "{{{{ out }}}}/{{{{ _backup_job }}}}.plist"
        mode: "0644"
      loop: [backup, check, drill]
      loop_control:
        loop_var: _backup_job
    - ansible.builtin.template:
        src: "{role}/templates/{{{{ item }}}}.j2"
        dest: "{{{{ out }}}}/{{{{ item }}}}"
        mode: "0644"
      loop: [homeport-backup.service, homeport-backup.timer, homeport-backup-check.service,
             homeport-backup-check.timer, homeport-backup-drill.service, homeport-backup-drill.timer, config.json]
"""


def render(tmp_path: Path, **extra) -> Path:
    variables = {
        "out": str(tmp_path),
        "homeport_os_family": "Darwin",
        "_backup_brew_prefix": "/opt/homebrew",
        "backup_repository": "sftp:backup@nas:/srv/restic",
        "backup_restic_password": SECRET,
        "backup_s3_secret_access_key": SECRET + "-s3",
        "backup_paths": ["/Users/admin/homeport"],
        **extra,
    }
    r = run_local_playbook(tmp_path, PLAYBOOK.format(role=ROLE), variables)
    assert r.returncode == 0, r.stdout + r.stderr
    assert SECRET not in r.stdout + r.stderr
    return tmp_path


def test_launchd_plists(tmp_path: Path) -> None:
    out = render(tmp_path, backup_schedule_hour=2, backup_schedule_minute=15, backup_check_weekday=3)
    backup = plistlib.loads((out / "backup.plist").read_bytes())
    check = plistlib.loads((out / "check.plist").read_bytes())
    assert backup["Label"] == "com.homeport.backup"
    assert check["Label"] == "com.homeport.backup-check"
    assert backup["ProgramArguments"][1:] == ["/usr/local/libexec/homeport-backup", "run"]
    assert check["ProgramArguments"][1:] == ["/usr/local/libexec/homeport-backup", "check"]
    assert Path(backup["ProgramArguments"][0]).name.startswith("python")
    assert backup["StartCalendarInterval"] == {"Hour": 2, "Minute": 15}
    assert check["StartCalendarInterval"] == {"Weekday": 3, "Hour": 5, "Minute": 0}
    drill = plistlib.loads((out / "drill.plist").read_bytes())
    assert drill["Label"] == "com.homeport.backup-drill"
    assert drill["ProgramArguments"][1:] == ["/usr/local/libexec/homeport-backup", "verify"]
    assert drill["StartCalendarInterval"] == {"Weekday": 6, "Hour": 6, "Minute": 0}
    assert backup["RunAtLoad"] is False
    assert backup["EnvironmentVariables"]["PATH"].startswith("/opt/homebrew/bin:")
    assert backup["StandardErrorPath"] == "/var/log/homeport-backup.log"
    for name in ("backup.plist", "check.plist", "drill.plist"):
        raw = (out / name).read_text(encoding="utf-8")
        assert SECRET not in raw and "PASSWORD" not in raw and "AWS_" not in raw
        assert "Ansible managed" in raw


def test_systemd_units_and_config_hold_no_secret(tmp_path: Path) -> None:
    out = render(tmp_path, homeport_os_family="Debian", backup_check_weekday=0, backup_randomized_delay_sec=600)
    timer = (out / "homeport-backup.timer").read_text(encoding="utf-8")
    assert "OnCalendar=*-*-* 03:30:00" in timer and "Persistent=true" in timer and "RandomizedDelaySec=600" in timer
    assert "OnCalendar=Sun *-*-* 05:00:00" in (out / "homeport-backup-check.timer").read_text(encoding="utf-8")
    assert "homeport-backup run" in (out / "homeport-backup.service").read_text(encoding="utf-8")
    drill = (out / "homeport-backup-drill.timer").read_text(encoding="utf-8")
    assert "OnCalendar=Sat *-*-* 06:00:00" in drill and "Persistent=true" in drill
    assert "homeport-backup verify" in (out / "homeport-backup-drill.service").read_text(encoding="utf-8")
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert cfg["restic"] == "/usr/bin/restic" and cfg["password_file"] == "/etc/homeport/backup/restic-password"
    assert cfg["repositories"] == ["sftp:backup@nas:/srv/restic"]
    assert cfg["keep"] == {"daily": 7, "weekly": 4, "monthly": 6}
    for name in ("homeport-backup.service", "homeport-backup.timer", "config.json"):
        assert SECRET not in (out / name).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ the job script
def load_job():
    path = ROLE / "files" / "homeport-backup"
    loader = importlib.machinery.SourceFileLoader("homeport_backup_job", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


FAKE_RESTIC = r"""#!/bin/sh
# restic stand-in: behaves like restic VERSION for `cat config` on a missing repository and records argv
echo "$*" >>"$LOG"
[ -n "$RESTIC_PASSWORD" ] && echo "password in environment" >&2 && exit 99
case "$*" in
  *"cat config"*)
    [ -f "$REPO_DIR/config" ] && exit 0
    if [ "$VERSION" = 0.14 ]; then
      echo "Fatal: unable to open config file: stat $REPO_DIR/config: no such file or directory" >&2
      printf 'Is there a repository at the following location?\n%s\n' "$REPO_DIR" >&2
      exit 1
    fi
    echo "Fatal: repository does not exist: unable to open config file" >&2; exit 10 ;;
  *" init"*) mkdir -p "$REPO_DIR" && : >"$REPO_DIR/config"; echo "created restic repository" ;;
  *) exit 0 ;;
esac
"""


@pytest.fixture
def job_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "restic"
    fake.write_text(FAKE_RESTIC, encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "pw").write_text(SECRET, encoding="utf-8")
    cfg = {
        "restic": str(fake), "docker": "docker", "docker_host": "", "path": os.environ["PATH"],
        "password_file": str(tmp_path / "pw"), "env_file": str(tmp_path / "env"), "state_dir": str(tmp_path / "s"),
        "status_file": str(tmp_path / "s/status.json"), "cache_dir": str(tmp_path / "c"),
        "staging_dir": str(tmp_path / "s/staging"), "scratch_dir": str(tmp_path / "s/scratch"), "host": "mini",
        "repositories": [str(tmp_path / "repo")], "dumps": [], "volumes": [], "paths": [], "excludes": [],
        "tags": ["homeport"], "keep": {"daily": 7, "weekly": 4, "monthly": 6}, "check_subset": "5%",
        "stale_lock_minutes": 120, "on_failure_command": "", "on_failure_url": "", "helper_image": "alpine",
    }  # fmt: skip
    (tmp_path / "env").write_text("# creds\nAWS_SECRET_ACCESS_KEY=abc=def\n", encoding="utf-8")
    monkeypatch.setenv("LOG", str(tmp_path / "calls"))
    monkeypatch.setenv("REPO_DIR", str(tmp_path / "repo"))
    monkeypatch.setenv("RESTIC_PASSWORD", "must-be-dropped")
    return load_job(), cfg, tmp_path


@pytest.mark.parametrize("version", ["0.14", "0.18"])
def test_init_creates_a_missing_repository_once(job_env, monkeypatch, version) -> None:
    mod, cfg, tmp = job_env
    monkeypatch.setenv("VERSION", version)
    job = mod.Job(cfg)
    assert job.env["AWS_SECRET_ACCESS_KEY"] == "abc=def"
    assert job.env["RESTIC_PASSWORD_FILE"] == str(tmp / "pw") and "RESTIC_PASSWORD" not in job.env
    assert job.init()["changed"] is True
    assert job.init()["changed"] is False
    calls = (tmp / "calls").read_text(encoding="utf-8")
    assert calls.count(" init") == 1 and SECRET not in calls


def test_wrong_password_is_an_error_not_a_missing_repository(job_env, monkeypatch) -> None:
    mod, cfg, _tmp = job_env
    fake = Path(cfg["restic"])
    fake.write_text("#!/bin/sh\necho 'Fatal: wrong password or no key found' >&2\nexit 12\n", encoding="utf-8")
    with pytest.raises(mod.JobError, match="cannot open repository"):
        mod.Job(cfg).init()


def test_helpers() -> None:
    mod = load_job()
    assert mod.redact("rest:https://user:s3cret@host:8000/x failed") == "rest:https://***@host:8000/x failed"
    t = mod.parse_time("2026-03-17T18:00:00.123456789+01:00")
    assert t.isoformat() == "2026-03-17T18:00:00+01:00"
    assert mod.parse_time("2026-03-17T18:00:00Z").utcoffset().total_seconds() == 0
    out = '{"message_type":"status"}\n{"message_type":"summary","snapshot_id":"abc"}\n'
    assert mod.last_json(out, "summary")["snapshot_id"] == "abc"
    assert mod.excluded("cache/x.tmp", ["*.tmp"]) and not mod.excluded("x.txt", ["*.tmp"])


def test_restore_refuses_live_data_and_non_empty_targets(job_env, tmp_path: Path) -> None:
    mod, cfg, tmp = job_env
    cfg["paths"] = [str(tmp / "live")]
    job = mod.Job(cfg)
    job.snapshots = lambda index: [{"id": "a" * 64, "short_id": "aaaaaaaa", "time": "2026-01-01T00:00:00Z"}]
    with pytest.raises(mod.JobError, match="overlaps live data"):
        job.restore(0, "latest", str(tmp / "live" / "sub"), force=False)
    with pytest.raises(mod.JobError, match="overlaps live data"):
        job.restore(0, "latest", "/", force=False)
    (tmp / "full").mkdir()
    (tmp / "full" / "f").write_text("x", encoding="utf-8")
    with pytest.raises(mod.JobError, match="not empty"):
        job.restore(0, "latest", str(tmp / "full"), force=False)
    with pytest.raises(mod.JobError, match="not found"):
        job.restore(0, "deadbeef", str(tmp / "new"), force=False)
    assert job.restore(0, "latest", str(tmp / "new"), force=False)["snapshot_id"] == "a" * 64
