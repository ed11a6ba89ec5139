"""The deploy lock (plugins/module_utils/stack_lock.py, the module plugins/modules/stack_lock.py and
roles/stack/tasks/lock.yml / unlock.yml): atomic create, the race of two acquirers (exactly one wins, also for a
stale lock), take-over of a stale lock, the controller's judgement of its own dead run, release only with the
token; and the role's tasks once through ansible on localhost (with Mitogen)."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import stat
import sys
from pathlib import Path

import pytest
from ansible_local import ROOT, run_local_playbook

sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible_collections.homeport.homeport.plugins.filter import stack as stack_filter
from ansible_collections.homeport.homeport.plugins.module_utils import stack_lock as sl

ANA = {"owner": "ana@laptop", "pid": 4242, "action": "deploy", "token": "tokAna"}
BEN = {"owner": "ben@desk", "pid": 777, "action": "rollback", "token": "tokBen"}


def lock_file(tmp_path: Path, content: dict | str | None = None) -> str:
    path = tmp_path / ".deploy.lock"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_the_filter_judges_with_the_module_utils_function():
    assert stack_filter.stack_lock_state is sl.stack_lock_state


def test_first_run_creates_the_lock_atomically(tmp_path):
    path = lock_file(tmp_path)
    r = sl.acquire(path, ANA, 1800, 1000)
    assert r["acquired"] and not r["taken_over"] and r["check_owner"] is None
    assert json.loads(Path(path).read_text()) == {**ANA, "time": 1000}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_without_hard_links_the_lock_name_is_created_exclusively(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sl.os, "link", no_links)
    path = lock_file(tmp_path)
    assert sl.acquire(path, ANA, 1800, 1000)["acquired"]
    assert not sl.acquire(path, BEN, 1800, 1000)["acquired"]
    assert sorted(os.listdir(tmp_path)) == [".deploy.lock"]  # no temporary file left behind
    assert json.loads(Path(path).read_text())["token"] == "tokAna"


def test_a_second_run_is_refused_with_the_holder_named(tmp_path):
    path = lock_file(tmp_path)
    sl.acquire(path, BEN, 1800, 1000)
    r = sl.acquire(path, ANA, 1800, 1030)
    assert not r["acquired"]
    assert r["message"].startswith("another deploy is running: locked by ben@desk (pid 777, action rollback) 30s ago")
    assert json.loads(Path(path).read_text())["token"] == "tokBen"  # untouched


def test_another_machines_lock_is_stale_after_the_timeout(tmp_path):
    path = lock_file(tmp_path, {**BEN, "time": 1000})
    r = sl.acquire(path, ANA, 1800, 1000 + 1801)
    assert r["acquired"] and r["taken_over"]
    assert r["message"] == "stale lock of ben@desk (pid 777, action rollback), 1801s old (taking it over)"
    assert json.loads(Path(path).read_text())["token"] == "tokAna"
    assert sorted(os.listdir(tmp_path)) == [".deploy.lock"]  # the renamed file left nothing behind


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"owner": "x", "time": "soon"}'])
def test_an_unreadable_lock_is_taken_over(tmp_path, content):
    path = lock_file(tmp_path, content)
    r = sl.acquire(path, ANA, 1800, 1000)
    assert r["acquired"] and r["taken_over"] and "taking it over" in r["message"]


def test_this_controllers_lock_is_judged_by_the_controller(tmp_path):
    """Issue 14: a lock of this controller whose process is gone (Ctrl-C, SIGKILL) is stale at once; whether the pid
    lives only the controller can see: the host side asks back and takes nothing meanwhile."""
    mine_dead = {**ANA, "pid": 5555, "token": "old", "time": 990}
    path = lock_file(tmp_path, mine_dead)
    r = sl.acquire(path, ANA, 1800, 1000)
    assert not r["acquired"] and r["check_owner"] == mine_dead and r["message"] is None
    alive = sl.acquire(path, ANA, 1800, 1000, owner_alive=True, judged_token="old")
    assert not alive["acquired"] and "another deploy is running: locked by ana@laptop (pid 5555" in alive["message"]
    gone = sl.acquire(path, ANA, 1800, 1000, owner_alive=False, judged_token="old")
    assert gone["acquired"] and gone["taken_over"]
    assert gone["message"] == "stale lock of ana@laptop (pid 5555, action deploy): that run is gone (taking it over)"


def test_a_judgement_of_another_lock_does_not_count(tmp_path):
    """The lock changed between the two calls (another run of this controller took it): asked back again."""
    newer = {**ANA, "pid": 6666, "token": "newer", "time": 999}
    path = lock_file(tmp_path, newer)
    r = sl.acquire(path, ANA, 1800, 1000, owner_alive=False, judged_token="old")
    assert not r["acquired"] and r["check_owner"] == newer
    assert json.loads(Path(path).read_text())["token"] == "newer"


def test_check_mode_writes_nothing(tmp_path):
    path = lock_file(tmp_path)
    assert not sl.acquire(path, ANA, 1800, 1000, write=False)["acquired"]
    assert not os.path.exists(path)
    lock_file(tmp_path, {**BEN, "time": 0})
    r = sl.acquire(path, ANA, 1800, 5000, write=False)
    assert not r["acquired"] and "stale lock of ben@desk" in r["message"]
    assert json.loads(Path(path).read_text())["token"] == "tokBen"


def test_release_only_with_the_token(tmp_path):
    path = lock_file(tmp_path, {**BEN, "time": 1})
    assert sl.release(path, "tokAna") is False and os.path.exists(path)
    assert sl.release(path, "") is False and os.path.exists(path)
    assert sl.release(path, "tokBen", write=False) is True and os.path.exists(path)
    assert sl.release(path, "tokBen") is True and not os.path.exists(path)
    assert sl.release(path, "tokBen") is False  # gone already
    assert sl.release(str(tmp_path / "no-dir" / ".deploy.lock"), "tokBen") is False


# ----------------------------------------------------------------------------------------------------- the race
def _contender(path, n, barrier, results, now):
    barrier.wait()
    lock = {"owner": f"run{n}@host{n}", "pid": 100 + n, "action": "deploy", "token": f"tok{n}"}
    results.put((n, sl.acquire(path, lock, 1800, now)["acquired"]))


def _race(path: str, contenders: int, now: int) -> list[int]:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(contenders), ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(path, n, barrier, results, now)) for n in range(contenders)]
    for p in procs:
        p.start()
    outcome = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return sorted(n for n, won in outcome if won)


@pytest.mark.parametrize("round_", range(10))
def test_two_acquirers_exactly_one_wins(tmp_path, round_):
    path = lock_file(tmp_path)
    winners = _race(path, 2, 1000)
    assert len(winners) == 1, winners
    assert json.loads(Path(path).read_text())["token"] == f"tok{winners[0]}"


@pytest.mark.parametrize("round_", range(10))
def test_two_runs_taking_over_the_same_stale_lock_exactly_one_wins(tmp_path, round_):
    path = lock_file(tmp_path, {**BEN, "time": 0})
    winners = _race(path, 2, 100_000)
    assert len(winners) == 1, winners
    assert json.loads(Path(path).read_text())["token"] == f"tok{winners[0]}"


# --------------------------------------------------------------------------------------------- through ansible
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    stack_project_dir: "{{ project }}"
    _stack_lock_file: "{{ project }}/.deploy.lock"
    stack_action: deploy
    stack_lock_timeout: 1800
    homeport_controller_pid: "{{ controller_pid }}"
  tasks:
    - name: Place a live lock of another machine
      ansible.builtin.copy:
        content: "{{ other_lock | to_json }}"
        dest: "{{ project }}/.deploy.lock"
        mode: "0600"
    - name: A live lock of another machine refuses the run
      block:
        - name: Take the lock
          ansible.builtin.include_tasks: "{{ root }}/roles/stack/tasks/lock.yml"
        - name: Not refused
          ansible.builtin.fail:
            msg: NOT REFUSED
      rescue:
        - name: Keep the refusal
          ansible.builtin.copy:
            content: "{{ ansible_failed_result.msg }}"
            dest: "{{ out }}/refused"
            mode: "0644"
    - name: Leave a lock of this controller whose run is gone
      ansible.builtin.copy:
        content: '{{ {"owner": me, "pid": dead_pid | int, "time": 0, "action": "deploy", "token": "old"} | to_json }}'
        dest: "{{ project }}/.deploy.lock"
        mode: "0600"
    - name: Take the lock over
      ansible.builtin.include_tasks: "{{ root }}/roles/stack/tasks/lock.yml"
    - name: Keep the lock while held
      ansible.builtin.copy:
        src: "{{ project }}/.deploy.lock"
        dest: "{{ out }}/held"
        mode: "0644"
    - name: Release it
      ansible.builtin.include_tasks: "{{ root }}/roles/stack/tasks/unlock.yml"
"""


@pytest.mark.slow
def test_the_role_tasks_through_ansible_with_mitogen(tmp_path, monkeypatch):
    from homeport import runner

    for key, value in runner.mitogen_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("USER", "tester")
    project, out = tmp_path / "stack", tmp_path / "out"
    out.mkdir()
    dead = multiprocessing.get_context("fork").Process(target=os.getpid)
    dead.start()
    dead.join()  # a pid that was this controller's and is gone now
    other = {"owner": "someone@elsewhere", "pid": 4242, "time": 2**40, "action": "deploy", "token": "other"}
    variables = {
        "project": str(project),
        "out": str(out),
        "root": str(ROOT),
        "controller_pid": os.getpid(),
        "me": f"tester@{socket.gethostname()}",
        "dead_pid": dead.pid,
        "other_lock": other,
    }
    project.mkdir(mode=0o750)
    r = run_local_playbook(tmp_path, PLAY, variables)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    refused = (out / "refused").read_text()
    assert refused.startswith(f"{project}/.deploy.lock: another deploy is running: locked by someone@elsewhere")
    held = json.loads((out / "held").read_text())
    assert held["owner"] == f"tester@{socket.gethostname()}" and held["pid"] == os.getpid()
    assert held["token"] != "old" and len(held["token"]) == 16
    warning = f"stale lock of tester@{socket.gethostname()} (pid {dead.pid}, action deploy): that run is gone"
    assert warning in " ".join((r.stdout + r.stderr).split())  # the warning (wrapped on screen)
    assert not (project / ".deploy.lock").exists()  # released by its token
    assert "changed=4" in r.stdout  # the test's own four copies: taking and releasing the lock change nothing
