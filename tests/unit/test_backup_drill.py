"""backup job (roles/backup/files/homeport-backup) against the real restic on this machine (.ci/run installs
Debian's restic): the restore drill compares with the snapshot's own contents, databases count as restored only
with the row counts recorded at dump time, stale locks of a killed job are cleared and the command retried, a job
killed mid-upload leaves a repository the next run and `restic check` accept, --limit-upload, restic copy to a
second repository, the success heartbeat, macOS's Full Disk Access check, and the Neo4j orchestration against a
double that enforces Neo4j Community's documented refusal of an online dump."""

from __future__ import annotations

import atexit
import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import restic_repo
from test_backup import SECRET, load_job, render

RESTIC = shutil.which("restic")
pytestmark = pytest.mark.needs_tool("restic")
HERE = Path(__file__).resolve().parent


@functools.cache
def _template() -> Path:
    """One repository per test process, made by the real `restic init` and rekeyed cheaply (restic_repo.py)."""
    home = Path(tempfile.mkdtemp(prefix="homeport-restic-template."))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    (home / "pw").write_text(SECRET, encoding="utf-8")
    return restic_repo.make_template(RESTIC or "restic", home / "repo", home / "pw")


def make_cfg(tmp: Path, **over) -> dict:
    """The job's config for a test in `tmp`. Its repository `tmp/repo` is a copy of the cheap template, so the job's
    `init` finds it. The job still finds a missing repository with the real restic and creates it in the copy test
    (its copy repository), test_backup.py's init test does it against a restic double, the molecule backup
    scenarios on the hosts."""
    (tmp / "pw").write_text(SECRET, encoding="utf-8")
    if not (tmp / "repo").exists():
        restic_repo.seed(_template(), tmp / "repo")
    (tmp / "live").mkdir(exist_ok=True)
    (tmp / "live" / "a.txt").write_text("alpha\n", encoding="utf-8")
    (tmp / "live" / "sub").mkdir(exist_ok=True)
    (tmp / "live" / "sub" / "b.bin").write_bytes(os.urandom(20000))
    cfg = {
        "restic": RESTIC, "docker": "docker", "docker_host": "", "path": os.environ["PATH"],
        "password_file": str(tmp / "pw"), "env_file": str(tmp / "env"), "state_dir": str(tmp / "s"),
        "status_file": str(tmp / "s/status.json"), "cache_dir": str(tmp / "c"),
        "staging_dir": str(tmp / "s/staging"), "scratch_dir": str(tmp / "s/scratch"), "host": "mini",
        "repositories": [str(tmp / "repo")], "dumps": [], "volumes": [], "paths": [str(tmp / "live")],
        "excludes": [], "tags": ["homeport"], "keep": {"daily": 7, "weekly": 4, "monthly": 6},
        "check_subset": "100%", "stale_lock_minutes": 120, "on_failure_command": "", "on_failure_url": "",
        "helper_image": "alpine", **over,
    }  # fmt: skip
    return cfg


def restic(cfg: dict, repo: str, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "RESTIC_PASSWORD_FILE": cfg["password_file"], "RESTIC_CACHE_DIR": cfg["cache_dir"]}
    return subprocess.run([RESTIC, "--repo", repo, *args], env=env, capture_output=True, text=True, check=False, **kw)


def wait_reaped(pgid: int, timeout: float = 30) -> None:
    """Wait until no process of the group is left, zombies included. A killed job's restic is an orphan that init
    reaps; until then restic calls its lock live (the PID exists: lock.go, Lock.Stale). systemd reaps at once; this
    machine's PID 1 takes a second or two, which a fast test run (cheap repository keys, restic_repo.py) reaches."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat_file.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:  # after "pid (comm)": state, ppid, pgrp
                    left.append(stat_file.parent.name)
        if not left:
            return
        assert time.monotonic() < deadline, f"processes {left} of the killed group {pgid} were not reaped"
        time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leave_lock_of_killed_job(cfg: dict, repo: str) -> None:
    """A `restic backup --stdin` that waits on a pipe holds its lock; SIGKILL leaves the lock (dead PID).

    Under a loaded test run (pid_max 32768, many parallel processes) the dead PID can be taken by a new process
    before the job looks at the lock: restic then rightly calls the lock live (lock.go, Lock.Stale: the process
    exists). That is not the case under test, so such a lock is made again with a fresh process."""
    for _attempt in range(5):
        pid = _leave_lock(cfg, repo)
        if not pid_alive(pid):
            return
        for lock in (Path(repo) / "locks").iterdir():
            lock.unlink()
    raise AssertionError("the killed restic's PID was reused five times in a row")


def _lock_complete(cfg: dict, repo: str) -> bool:
    """True once restic can read the lock file back, not merely list it.

    restic 0.14's local backend (Debian 12) creates the file under its final name and then writes it; a SIGKILL in
    between leaves an empty or cut-off lock, which 0.14 ignores because it cannot load it (lock.go,
    checkForOtherLocks: "ignore lock"), so `restic check` then succeeds: 6 runs in 30 here when the job was killed
    as soon as the file was listed. (Newer restic writes `<id>-tmp-*` and renames it: backend/local/local.go, Save.)
    The case under test is a killed job's whole lock, so the kill waits for one that `restic cat lock` decodes."""
    locks = list((Path(repo) / "locks").iterdir())
    return bool(locks) and restic(cfg, repo, "--no-lock", "cat", "lock", locks[0].name).returncode == 0


def _leave_lock(cfg: dict, repo: str) -> int:
    reader, writer = os.pipe()
    env = {**os.environ, "RESTIC_PASSWORD_FILE": cfg["password_file"], "RESTIC_CACHE_DIR": cfg["cache_dir"]}
    proc = subprocess.Popen(
        [RESTIC, "--repo", repo, "backup", "--stdin"], stdin=reader, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(reader)
    deadline = time.monotonic() + 30
    while not _lock_complete(cfg, repo):
        assert time.monotonic() < deadline, "restic took no lock"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.close(writer)
    assert list((Path(repo) / "locks").iterdir()), "the killed job's lock is gone"
    return proc.pid


@pytest.fixture
def job(tmp_path: Path):
    mod = load_job()
    cfg = make_cfg(tmp_path)
    j = mod.Job(cfg)
    j.init()
    return mod, j, tmp_path


# ------------------------------------------------------------------------------------------ stale locks
def test_check_clears_the_lock_of_a_killed_job_and_retries(job) -> None:
    """Defect: restic unlock removed the stale lock, the lock list came back empty and the check was not retried."""
    _mod, j, tmp = job
    assert j.run(None, [])["state"] == "success"
    leave_lock_of_killed_job(j.cfg, str(tmp / "repo"))
    assert restic(j.cfg, str(tmp / "repo"), "check").returncode != 0  # restic itself refuses: locked
    result = j.check(None)
    assert result["ok"], result
    assert j.locks_cleared == 1
    assert not list((tmp / "repo" / "locks").iterdir())


def test_run_after_a_killed_job_clears_its_lock(job) -> None:
    _mod, j, tmp = job
    leave_lock_of_killed_job(j.cfg, str(tmp / "repo"))
    status = j.run(None, [])
    assert status["state"] == "success" and status["locks_cleared"] == 1, status
    assert restic(j.cfg, str(tmp / "repo"), "check").returncode == 0


def test_a_live_lock_of_another_host_is_not_removed(job, monkeypatch) -> None:
    """restic never calls a fresh lock of another host stale; neither does the job (younger than the limit)."""
    mod, j, tmp = job
    leave_lock_of_killed_job(j.cfg, str(tmp / "repo"))
    real = mod.Job.restic

    def other_host(self, repo, *args, **kw):  # restic unlock on "another host": it cannot judge the PID
        if args and args[0] == "unlock" and "--remove-all" not in args:
            return subprocess.CompletedProcess(args, 0, "", "")
        return real(self, repo, *args, **kw)

    monkeypatch.setattr(mod.Job, "restic", other_host)
    assert j.clear_stale_locks(str(tmp / "repo")) is False
    assert list((tmp / "repo" / "locks").iterdir())
    j.cfg["stale_lock_minutes"] = 0  # every lock is now older than the limit
    assert j.clear_stale_locks(str(tmp / "repo")) is True
    assert not list((tmp / "repo" / "locks").iterdir())


def test_a_job_killed_mid_upload_leaves_a_repository_the_next_run_and_check_accept(tmp_path: Path) -> None:
    mod = load_job()
    cfg = make_cfg(tmp_path, limit_upload_kib=2000)
    (tmp_path / "live" / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    mod.Job(cfg).init()
    script = Path(mod.__file__ or (HERE.parents[1] / "roles/backup/files/homeport-backup"))
    (tmp_path / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    proc = subprocess.Popen(
        ["python3", str(script), "--config", str(tmp_path / "config.json"), "run"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list((tmp_path / "repo" / "data").rglob("*")) or not any(
        p.is_file() for p in (tmp_path / "repo" / "data").rglob("*")
    ):
        assert time.monotonic() < deadline and proc.poll() is None, "no pack was uploaded before the kill"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the job and its restic, mid-upload
    proc.wait()
    wait_reaped(proc.pid)
    assert restic(cfg, str(tmp_path / "repo"), "snapshots", "--json", "--no-lock").stdout.strip() in ("[]", "null")
    cfg["limit_upload_kib"] = 0
    status = mod.Job(cfg).run(None, [])
    assert status["state"] == "success", status
    check = restic(cfg, str(tmp_path / "repo"), "check", "--read-data")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no errors were found" in check.stdout


def test_limit_upload_reaches_every_restic_call(tmp_path: Path) -> None:
    mod = load_job()
    wrapper = tmp_path / "restic-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >>{tmp_path}/argv\nexec {RESTIC} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    cfg = make_cfg(tmp_path, restic=str(wrapper), limit_upload_kib=512)
    j = mod.Job(cfg)
    j.init()
    assert j.run(None, [])["state"] == "success"
    lines = (tmp_path / "argv").read_text(encoding="utf-8").splitlines()
    assert lines and all("--limit-upload 512 " in line for line in lines), lines
    assert any(" backup " in line for line in lines)


# ------------------------------------------------------------------------------------------ the drill
def test_drill_compares_with_the_snapshot_not_with_live_files(job) -> None:
    """Defect: verify compared the restore with the live files, so any change since the snapshot failed it."""
    _mod, j, tmp = job
    assert j.run(None, [])["state"] == "success"
    (tmp / "live" / "a.txt").write_text("changed after the snapshot\n", encoding="utf-8")
    (tmp / "live" / "new.txt").write_text("created after the snapshot\n", encoding="utf-8")
    report = j.verify(0, "latest")
    assert report["ok"], report
    assert report["mismatches"] == [] and report["files"] == 2
    drill = json.loads((tmp / "s" / "status.json").read_text(encoding="utf-8"))["drill"]
    assert drill["ok"] and drill["last_success"] == drill["last_run"] and drill["duration_seconds"] >= 0
    assert drill["snapshot_id"] == report["snapshot_id"]


def test_drill_fails_when_the_repository_does_not_give_the_snapshot_back(job) -> None:
    _mod, j, tmp = job
    assert j.run(None, [])["state"] == "success"
    packs = sorted((p for p in (tmp / "repo" / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest = packs[-1]
    biggest.chmod(0o644)
    data = bytearray(biggest.read_bytes())
    data[100:164] = os.urandom(64)  # corrupt the pack holding the file contents
    biggest.write_bytes(bytes(data))
    report = j.verify(0, "latest")
    assert not report["ok"] and report["error"], report
    status = json.loads((tmp / "s" / "status.json").read_text(encoding="utf-8"))
    assert status["drill"]["ok"] is False and status["drill"]["error"]
    assert "last_success" not in status["drill"]


def test_compare_listing_finds_missing_resized_and_extra_files(tmp_path: Path) -> None:
    mod = load_job()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "same").write_text("abc", encoding="utf-8")
    (tmp_path / "d" / "short").write_text("ab", encoding="utf-8")
    (tmp_path / "d" / "extra").write_text("x", encoding="utf-8")
    listing = {"d": ("dir", 0), "d/same": ("file", 3), "d/short": ("file", 3), "d/gone": ("file", 1)}
    found = {m["file"]: m["problem"] for m in mod.compare_listing(listing, tmp_path)}
    assert found == {
        "d/short": "restored size 2, snapshot 3",
        "d/gone": "in the snapshot but not restored",
        "d/extra": "restored but not in the snapshot",
    }
    nodes = mod.snapshot_listing(
        '{"struct_type":"snapshot","paths":["/x"]}\n'
        '{"name":"a","type":"file","path":"/x/a","size":3,"struct_type":"node"}\n'
        '{"message_type":"node","name":"b","type":"dir","path":"/x/b"}\n'
    )
    assert nodes == {"x/a": ("file", 3), "x/b": ("dir", 0)}


FAKE_DOCKER = """#!/bin/sh
# docker stand-in for the database part of the drill: every call succeeds and prints nothing
echo "$*" >>"$DOCKER_LOG"
exit 0
"""


def drill_dump(tmp: Path, monkeypatch, restored: dict, recorded: dict | None):
    mod = load_job()
    fake = tmp / "docker"
    fake.write_text(FAKE_DOCKER, encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("DOCKER_LOG", str(tmp / "docker.log"))
    cfg = make_cfg(tmp, docker=str(fake))
    j = mod.Job(cfg)
    dumps = tmp / "dumps"
    dumps.mkdir()
    (dumps / "appdb.dump").write_bytes(b"PGDMP fake")
    if recorded is not None:
        (dumps / "appdb.rows.json").write_text(json.dumps(recorded), encoding="utf-8")
    live = {"public.customers": 999}  # the live database moved on since the dump: must not matter
    monkeypatch.setattr(j, "row_counts", lambda c, u, d: restored if c.startswith("homeport-verify") else live)
    entry = {"name": "appdb", "type": "postgres", "container": "pg", "database": "app", "user": "app"}
    return j.verify_dump(entry, dumps)


def test_database_counts_as_restored_only_with_the_rows_recorded_at_dump_time(tmp_path, monkeypatch) -> None:
    """Defect: a database counted as restored as soon as it held one table."""
    result = drill_dump(tmp_path, monkeypatch, {"public.customers": 1}, {"public.customers": 137})
    assert result["ok"] is False
    assert result["row_differences"] == ["public.customers"]
    assert "1 restored vs 137 recorded" in result["error"]


def test_database_restored_with_the_recorded_rows_passes_although_live_data_moved(tmp_path, monkeypatch) -> None:
    counts = {"public.customers": 137, "audit.log": 2}
    result = drill_dump(tmp_path, monkeypatch, dict(counts), counts)
    assert result["ok"] is True and result["row_differences"] == [] and result["tables"] == 2


def test_database_without_recorded_counts_fails(tmp_path, monkeypatch) -> None:
    result = drill_dump(tmp_path, monkeypatch, {"public.customers": 137}, None)
    assert result["ok"] is False and "rows.json" in result["error"]


# ------------------------------------------------------------------------------------------ copy, heartbeat, FDA
def test_copy_repository_gets_the_snapshots_with_restic_copy(tmp_path: Path) -> None:
    mod = load_job()
    cfg = make_cfg(tmp_path, copy_repositories=[str(tmp_path / "copy")])
    j = mod.Job(cfg)
    j.init()
    status = j.run(None, [])
    assert status["state"] == "success", status
    assert [r.get("copy", False) for r in status["repositories"]] == [False, True]
    primary = json.loads(restic(cfg, str(tmp_path / "repo"), "snapshots", "--json").stdout)
    copied = json.loads(restic(cfg, str(tmp_path / "copy"), "snapshots", "--json").stdout)
    assert len(copied) == 1 and copied[0]["tree"] == primary[0]["tree"]  # same content, same tree id
    (tmp_path / "live" / "a.txt").write_text("second run\n", encoding="utf-8")
    assert j.run(None, ["second"])["state"] == "success"
    primary = json.loads(restic(cfg, str(tmp_path / "repo"), "snapshots", "--json").stdout)
    copied = json.loads(restic(cfg, str(tmp_path / "copy"), "snapshots", "--json").stdout)
    # the same retention on both (keep-daily keeps the newest of today), the copy holds the second run's tree
    assert [s["tree"] for s in copied] == [s["tree"] for s in primary] and "second" in copied[-1]["tags"]
    report = j.verify(1, "latest")  # the restore drill on the copy
    assert report["ok"], report


class Receiver(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.hits.append((self.path, json.loads(body or b"{}")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    Receiver.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/ping/4b1e9c-token", Receiver.hits
    server.shutdown()


@pytest.mark.needs_tool("curl")
def test_heartbeat_is_pinged_after_a_good_run_and_fail_after_a_bad_one(tmp_path: Path, receiver) -> None:
    url, hits = receiver
    mod = load_job()
    cfg = make_cfg(tmp_path, heartbeat_url=url)
    j = mod.Job(cfg)
    j.init()
    status = j.run(None, [])
    assert status["state"] == "success"
    assert [h[0] for h in hits] == ["/ping/4b1e9c-token"] and hits[0][1]["state"] == "success"
    assert status["heartbeat"]["ok"] is True
    (tmp_path / "a-file").write_text("not a repository\n", encoding="utf-8")
    j.repos = [str(tmp_path / "a-file" / "repo")]  # cannot be created: the run fails
    assert j.run(None, [])["state"] == "failure"
    assert hits[-1][0] == "/ping/4b1e9c-token/fail"


def test_full_disk_access_check_names_the_path(tmp_path: Path, monkeypatch) -> None:
    """macOS TCC answers EPERM for a protected folder until restic has Full Disk Access."""
    mod = load_job()
    cfg = make_cfg(tmp_path, os_family="Darwin")
    protected = str(tmp_path / "live")
    real = os.listdir
    monkeypatch.setattr(
        mod.os, "listdir", lambda p: (_ for _ in ()).throw(PermissionError(1, "Operation not permitted", p))
        if str(p) == protected else real(p)
    )  # fmt: skip
    j = mod.Job(cfg)
    j.init()
    status = j.run(None, [])
    assert status["state"] == "failure"
    assert f"restic lacks Full Disk Access for {protected}" in status["error"]
    assert "Privacy & Security" in status["error"] and RESTIC in status["error"]
    j.cfg["os_family"] = "Debian"  # the check is macOS-only
    assert j.run(None, [])["state"] == "success"
    assert mod.readable_under_tcc(tmp_path / "nonexistent") is True


# ------------------------------------------------------------------------------------------ Neo4j
def test_neo4j_defaults_to_the_stop_method_on_community(tmp_path: Path) -> None:
    """Defect: the default Neo4j dump was "online", which Neo4j Community refuses."""
    dumps = [{"name": "graph", "type": "neo4j", "container": "neo4j", "database": "neo4j"}]
    out = render(tmp_path, homeport_os_family="Debian", backup_database_dumps=dumps)
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert cfg["dumps"][0]["method"] == "stop" and cfg["dumps"][0]["edition"] == "community"
    (tmp_path / "e").mkdir()
    out = render(
        tmp_path / "e", homeport_os_family="Debian", backup_database_dumps=dumps, backup_neo4j_edition="enterprise"
    )
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["dumps"][0]["method"] == "online"


# A double of `docker` with one Neo4j container, for the orchestration only (Neo4j cannot be installed here).
# It enforces what Neo4j documents, including the unpleasant part:
# - Operations Manual, "Back up an offline database"
#   (https://neo4j.com/docs/operations-manual/current/backup-restore/offline-backup/): "On Community Edition, the
#   command can be run only on an offline Neo4j DBMS" and "It is not possible to dump a database that is mounted in
#   a running Neo4j server." neo4j-admin sees the server's lock on the store (store_lock, neo4j/neo4j#12595) and
#   stops with "the database is in use -- stop Neo4j and try again".
# - Operations Manual, "Dump and load a Neo4j database (offline)" for Docker
#   (https://neo4j.com/docs/operations-manual/current/docker/dump-load/): the dump runs in its own --rm container
#   on the stopped server's data volume.
# - Docker: `docker exec` into a stopped container fails; a started container's health is "starting" until its
#   healthcheck passed.
NEO4J_DOUBLE_TEXT = r"""#!/usr/bin/env python3
import os, sys
from pathlib import Path
state = Path(os.environ["NEO4J_DOUBLE_STATE"])
args = sys.argv[1:]
with (state / "calls.log").open("a") if state.exists() else open(os.devnull, "w") as log:
    log.write(" ".join(args) + "\n")
IN_USE = "command failed: the database is in use -- stop Neo4j and try again\n"

def running(name):
    return (state / f"{name}.running").exists()

def dump(db):
    sys.stdout.buffer.write(b"NEO4J-DOUBLE-DUMP " + db.encode() + b"\n" + (state / "store").read_bytes())

cmd = args[0]
if cmd == "double-setup":
    state.mkdir(parents=True, exist_ok=True)
    (state / "store").write_bytes(os.urandom(4096))
    (state / f"{args[1]}.running").touch()
    (state / f"{args[1]}.edition").write_text(args[2])
elif cmd == "inspect":
    fmt, name = args[2], args[3]
    if ".Image" in fmt:
        print("sha256:" + "4e0" * 21 + "4")
    elif "State.Status" in fmt:
        if not running(name):
            print("exited none")
        else:
            polls = state / f"{name}.polls"
            n = int(polls.read_text()) if polls.exists() else 0
            polls.write_text(str(n + 1))
            bad = (state / f"{name}.unhealthy-after-start").exists()
            print("running " + ("unhealthy" if bad and n >= 1 else "starting" if n < 2 else "healthy"))
elif cmd == "stop":
    (state / f"{args[-1]}.running").unlink(missing_ok=True)
    print(args[-1])
elif cmd == "start":
    (state / f"{args[-1]}.running").touch()
    (state / f"{args[-1]}.polls").write_text("0")
    print(args[-1])
elif cmd == "exec":
    name = args[1]
    if not running(name):
        sys.exit(f"Error response from daemon: container {name} is not running")
    if args[2:4] == ["sh", "-c"] and "neo4j-admin database backup" in args[4]:
        # "Performs an online backup from a running Neo4j enterprise server" (neo4j-admin's command list):
        # Community's neo4j-admin has no such command
        if (state / f"{name}.edition").read_text() != "enterprise":
            sys.stderr.write("Unmatched argument at index 1: 'backup'\n")
            sys.exit(2)
        sys.stdout.buffer.write(b"NEO4J-DOUBLE-BACKUP " + args[6].encode() + b"\n" + (state / "store").read_bytes())
        sys.exit(0)
    if args[2:5] == ["neo4j-admin", "database", "dump"]:
        sys.stderr.write(IN_USE)  # the running server holds the store: Community and Enterprise alike
        sys.exit(1)
    sys.exit(f"double: unsupported exec {args[2:]}")
elif cmd == "run":
    volumes_from = args[args.index("--volumes-from") + 1] if "--volumes-from" in args else None
    rest = args[args.index("--entrypoint") + 3:]
    if rest[:2] == ["database", "dump"]:
        if volumes_from is None or running(volumes_from):
            sys.stderr.write(IN_USE)
            sys.exit(1)
        dump(rest[2])
    elif rest[:2] == ["database", "load"]:
        # Neo4j 5.20+ loads a dump or a full backup artifact ("Restore a database backup")
        host_dir = Path(next(a.split(":")[0] for a in args if a.endswith(":/dumps:ro")))
        found = [f for f in (host_dir / f"{rest[2]}.dump", host_dir / f"{rest[2]}.backup") if f.exists()]
        ok = bool(found) and found[0].read_bytes().startswith((b"NEO4J-DOUBLE-DUMP", b"NEO4J-DOUBLE-BACKUP"))
        sys.exit(0 if ok else "load failed: not a Neo4j dump or backup artifact")
    else:
        sys.exit(f"double: unsupported run {rest}")
else:
    sys.exit(f"double: unsupported docker {cmd}")
"""


def neo4j_job(tmp: Path, monkeypatch, **entry_over):
    mod = load_job()
    state = tmp / "neo4j-state"
    double = tmp / "neo4j-docker-double"
    double.write_text(NEO4J_DOUBLE_TEXT, encoding="utf-8")
    double.chmod(0o755)
    monkeypatch.setenv("NEO4J_DOUBLE_STATE", str(state))
    subprocess.run([str(double), "double-setup", "neo4j", entry_over.get("edition", "community")], check=True)
    entry = {"name": "graph", "type": "neo4j", "container": "neo4j", "database": "neo4j", "edition": "community",
             "method": "stop", "health_timeout": 20, **entry_over}  # fmt: skip
    cfg = make_cfg(tmp, docker=str(double), dumps=[entry])
    return mod, mod.Job(cfg), state


def test_neo4j_double_refuses_an_online_dump_on_community(tmp_path: Path, monkeypatch) -> None:
    """The double itself: a dump while the DBMS runs fails as Neo4j documents (so the orchestration test can fail)."""
    _mod, j, state = neo4j_job(tmp_path, monkeypatch)
    proc = subprocess.run(
        [j.cfg["docker"], "exec", "neo4j", "neo4j-admin", "database", "dump", "neo4j", "--to-stdout"],
        capture_output=True, text=True, check=False, env={**os.environ, "NEO4J_DOUBLE_STATE": str(state)},
    )  # fmt: skip
    assert proc.returncode != 0 and "in use" in proc.stderr


def test_neo4j_community_stops_dumps_in_a_one_off_container_and_is_healthy_again(tmp_path, monkeypatch) -> None:
    _mod, j, state = neo4j_job(tmp_path, monkeypatch)
    j.init()
    status = j.run(None, [])
    assert status["state"] == "success", status
    dump = status["dumps"][0]
    assert dump["method"] == "stop" and dump["health"] == "healthy" and dump["stop_seconds"] >= 0
    calls = (state / "calls.log").read_text(encoding="utf-8").splitlines()
    order = [c.split()[0] for c in calls if c.split()[0] in ("stop", "run", "start")]
    assert order == ["stop", "run", "start"], calls
    run_call = next(c for c in calls if c.startswith("run "))
    assert "--rm" in run_call and "--volumes-from neo4j" in run_call and "database dump neo4j" in run_call
    assert (state / "neo4j.running").exists()  # started again
    restored = tmp_path / "restore"
    j.restore(0, "latest", str(restored), force=False)
    dumped = next(restored.rglob("neo4j.dump"))
    assert dumped.read_bytes().startswith(b"NEO4J-DOUBLE-DUMP")
    report = j.verify(0, "latest")  # the drill loads the dump with neo4j-admin database load in a one-off container
    assert report["ok"] and report["databases"][0]["ok"], report


def test_neo4j_online_on_community_is_refused_by_the_job(tmp_path, monkeypatch) -> None:
    _mod, j, state = neo4j_job(tmp_path, monkeypatch, method="online")
    j.init()
    status = j.run(None, [])
    assert status["state"] == "failure" and "needs Enterprise Edition" in status["error"]
    assert (state / "neo4j.running").exists()  # nothing was stopped


def test_neo4j_not_healthy_again_fails_the_job(tmp_path, monkeypatch) -> None:
    _mod, j, state = neo4j_job(tmp_path, monkeypatch, health_timeout=2)
    (state / "neo4j.unhealthy-after-start").touch()
    j.init()
    status = j.run(None, [])
    assert status["state"] == "failure" and "not healthy" in status["error"], status


def test_neo4j_enterprise_online_takes_a_backup_artifact_without_stopping(tmp_path, monkeypatch) -> None:
    _mod, j, state = neo4j_job(tmp_path, monkeypatch, edition="enterprise", method="online")
    j.init()
    status = j.run(None, [])
    assert status["state"] == "success", status
    assert status["dumps"][0]["method"] == "online" and status["dumps"][0]["stop_seconds"] == 0
    calls = (state / "calls.log").read_text(encoding="utf-8").splitlines()
    assert not [c for c in calls if c.split()[0] in ("stop", "start")], calls
    restored = tmp_path / "restore"
    j.restore(0, "latest", str(restored), force=False)
    assert next(restored.rglob("neo4j.backup")).read_bytes().startswith(b"NEO4J-DOUBLE-BACKUP neo4j")
    report = j.verify(0, "latest")
    assert report["ok"] and report["databases"][0]["ok"], report


def test_neo4j_online_against_a_community_server_fails(tmp_path, monkeypatch) -> None:
    """A wrong backup_neo4j_edition (enterprise on a Community server): its neo4j-admin has no backup command."""
    _mod, j, state = neo4j_job(tmp_path, monkeypatch, method="online")
    j.cfg["dumps"][0]["edition"] = "enterprise"
    j.init()
    status = j.run(None, [])
    assert status["state"] == "failure" and "Unmatched argument" in status["error"], status
    assert (state / "neo4j.running").exists()
