"""The deploy lock of the stack role: judging a lock file (also the ``stack_lock_state`` filter) and taking and
releasing it on the host (the ``stack_lock`` module).

The lock file holds one JSON object ``{owner, pid, time, action, token}``: ``owner`` is ``user@controller-host``,
``pid`` the controller's homeport process, ``token`` a random string of the run. Whether ``pid`` is alive can only
be seen on the controller, so the host side asks back (``check_owner``) when the lock is this controller's and the
controller has not judged it yet.

- Taking it: the content written to a run's own ``O_CREAT | O_EXCL`` file, then link(2)ed to the lock name
  (atomic, and never visible half-written: of two runs that find no lock, exactly one creates it).
- A stale lock (older than the timeout, unreadable, or of this controller's run that is gone) is taken over by
  writing a new file and renaming it over the old one; the take-over and the release run under an ``flock`` of the
  lock's directory, and the take-over re-reads the lock inside it, so of two runs that judge the same stale lock
  only one replaces it, and a release never removes a lock that another run took over meanwhile.
- Released only by the run whose token it holds.
- A lock taken by a process on the host itself (``local: true``: the backup job's dump phase, issue 27) is judged
  on the host: stale at once when its ``pid`` is gone (``os.kill(pid, 0)``), else live until ``timeout``. The deploy
  (the ``stack_lock`` module) waits for such a lock up to its ``wait``, and the backup job
  (roles/backup/files/homeport-backup) takes this same lock for its dumps with ``acquire_waiting``: one lock, so a
  dump never sees a database half-recreated by a deploy, and the deploy never recreates one during a dump.

Stdlib only and Python 3.9 compatible (runs on the managed host, macOS' system Python too).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time

__all__ = ["acquire", "acquire_waiting", "pid_alive", "read_lock", "release", "stack_lock_state"]


def pid_alive(pid):
    """Whether process ``pid`` exists on this machine (EPERM: it exists, owned by another user)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError, TypeError):
        return False
    return True


def stack_lock_state(lock, now, timeout, owner_alive=None):
    """Judge an existing lock file's content ({owner, pid, time}) at epoch ``now``: ``stale`` when older than
    ``timeout`` seconds (or unreadable), or at once when ``owner_alive`` is False (the lock was taken from this
    controller and its process is gone: an interrupted or killed run); with a message naming the owner."""
    if not isinstance(lock, dict):
        return {"stale": True, "age": None, "message": "unreadable lock file (taking it over)"}
    try:
        age = int(float(now) - float(lock.get("time", 0)))
    except (TypeError, ValueError):
        return {"stale": True, "age": None, "message": "lock file without a time (taking it over)"}
    who = f"{lock.get('owner', '?')} (pid {lock.get('pid', '?')}, action {lock.get('action', '?')})"
    if owner_alive is False or str(owner_alive).lower() == "false":
        return {"stale": True, "age": age, "message": f"stale lock of {who}: that run is gone (taking it over)"}
    if age > int(timeout):
        return {"stale": True, "age": age, "message": f"stale lock of {who}, {age}s old (taking it over)"}
    if lock.get("action") == "backup":
        return {
            "stale": False,
            "age": age,
            "message": f"the backup job is dumping the databases: locked by {who} {age}s ago; deploy again when its "
            "dumps are done (homeport backup status), or stop that job",
        }
    return {
        "stale": False,
        "age": age,
        "message": f"another deploy is running: locked by {who} {age}s ago; wait for it to finish, or remove the "
        f"lock if that run is dead (it is taken over after {int(timeout)}s)",
    }


def _content(lock):
    return (json.dumps(lock, sort_keys=True) + "\n").encode()


@contextlib.contextmanager
def _guard(directory):
    """An exclusive flock of the lock's directory (released when the descriptor closes)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_lock(path):
    """The lock file's content: a dict, the raw text when it is not a JSON object, None when there is no file."""
    try:
        with open(path, "rb") as f:
            raw = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw
    return doc if isinstance(doc, dict) else raw


def _create(path, lock):
    """Create the lock file with its whole content at once: True when this call created it, False when one exists.

    ``O_CREAT | O_EXCL`` on the lock name alone leaves a moment where the file exists but is still empty, and a
    second run reading it then would judge it unreadable and take it over (two winners: the race test caught it).
    So the content goes into a temporary file of this run (``O_CREAT | O_EXCL``, a name with the run's token), which
    is then linked to the lock name: link(2) fails with EEXIST when the name exists, and the name never shows an
    incomplete file. Where the file system has no hard links, the lock name is created with ``O_EXCL`` directly."""
    tmp = f"{path}.{lock.get('token', 'new')}.{os.getpid()}.tmp"
    _write_new(tmp, lock)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # no hard links here (EPERM, ENOTSUP)
        return _create_in_place(path, lock)
    finally:
        os.unlink(tmp)
    return True


def _create_in_place(path, lock):
    try:
        _write_new(path, lock)
    except FileExistsError:
        return False
    return True


def _write_new(path, lock):
    """Write the lock into a file that must not exist yet (O_CREAT | O_EXCL, mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, _content(lock))
    finally:
        os.close(fd)


def _needs_owner_check(existing, lock, judged_token):
    """This controller's lock (same owner, a real pid) that the controller has not judged yet."""
    return (
        isinstance(existing, dict)
        and existing.get("owner") == lock.get("owner")
        and _pid(existing) > 1
        and existing.get("token") != judged_token
    )


def _pid(lock):
    try:
        return int(lock.get("pid") or 0)
    except (TypeError, ValueError):
        return 0


def acquire(path, lock, timeout, now, *, owner_alive=None, judged_token=None, write=True):
    """Take the lock at ``path`` for ``lock`` (its ``time`` is set to ``now``, the host's clock, the one clock all
    runs share). ``owner_alive`` is the controller's judgement of the lock whose token is ``judged_token``.

    Returns ``{"acquired": bool, "message": str|None, "taken_over": bool, "check_owner": dict|None,
    "existing": dict|str|None}``: ``check_owner`` is the existing lock when the controller must first say whether
    its pid is alive (call again with ``owner_alive`` and ``judged_token``). ``write=False`` (check mode) judges
    without writing."""
    lock = {**lock, "time": int(now)}
    result = {"acquired": False, "message": None, "taken_over": False, "check_owner": None, "existing": None}
    for _ in range(3):  # the lock may be released between a failed create and the read
        if write and _create(path, lock):
            result["acquired"] = True
            return result
        with _guard(os.path.dirname(path) or "."):
            existing = read_lock(path)
            if existing is None:
                if not write:
                    return result
                continue
            result["existing"] = existing
            local = isinstance(existing, dict) and bool(existing.get("local"))
            if not local and _needs_owner_check(existing, lock, judged_token):
                result["check_owner"] = existing
                return result
            alive = owner_alive if isinstance(existing, dict) and existing.get("token") == judged_token else None
            if local:  # a process of this host: judged here
                alive = _pid(existing) > 1 and pid_alive(_pid(existing))
            state = stack_lock_state(existing, now, timeout, alive)
            result["message"] = state["message"]
            if not state["stale"] or not write:
                return result
            new = f"{path}.{lock.get('token', 'new')}.new"
            with open(new, "wb") as f:
                f.write(_content(lock))
            os.chmod(new, 0o600)
            os.rename(new, path)
            result.update(acquired=True, taken_over=True)
            return result
    result["message"] = "the lock kept changing (three tries); run again"
    return result


def acquire_waiting(path, lock, timeout, wait, *, holder=None, poll=1.0, clock=time.time, sleep=time.sleep, **kw):
    """``acquire``, retried every ``poll`` seconds for up to ``wait`` seconds while the lock is held by a live run that
    ``holder(existing)`` says is worth waiting for (default: any). Returns acquire's result plus ``waited``
    (seconds)."""
    start = clock()
    while True:
        result = acquire(path, lock, timeout, clock(), **kw)
        result["waited"] = int(clock() - start)
        if result["acquired"] or result["check_owner"] or not kw.get("write", True):
            return result
        existing = result["existing"]
        if existing is not None and holder is not None and not holder(existing):
            return result
        if clock() - start + poll > float(wait):
            return result
        sleep(poll)


def release(path, token, write=True):
    """Remove the lock when it holds ``token`` (this run's); True when removed."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return False
    with _guard(directory):
        existing = read_lock(path)
        if not (isinstance(existing, dict) and token and existing.get("token") == token):
            return False
        if write:
            os.unlink(path)
        return True
