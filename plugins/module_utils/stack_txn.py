"""The release transaction of a deploy, carried out on the host (issue 28).

Once the release is uploaded and promoted, the controller hands the switch to ONE process on the host that no longer
depends on the SSH connection: ``docker compose up`` under one bound with the health gate (stack_health), on failure
the report and the restore of the last good release (its files, its image IDs, its ``up``), the release record
(``releases/<id>/``, ``current``, pruning), the deploy record (``deploys.json``) and the release of the deploy lock.

The process is started as a transient systemd unit (``systemd-run``: its own cgroup, no pipe, no terminal and no
process group shared with sshd, sudo or Mitogen, so neither a dropped link nor the end of the SSH session reaches it);
where systemd is not PID 1 (macOS), as a process in a session of its own (``setsid``) with its output in a file,
re-parented to init/launchd once the module's process ends (what ansible-core's async_wrapper does).

Its state is one JSON file, ``<project>/.transaction.json`` (atomic rewrites, a growing ``seq``; when the project's
disk is full, a copy in ``/run`` or the temp directory takes the writes: the newest ``seq`` wins). A run that finds a
transaction in progress follows it (``wait``); one whose process died (power cut, OOM kill) is run again from its
journal (``resume``): ``up`` of the promoted release under the health gate, which either finishes it or restores the
last good release. At boot ``recover`` does the same (a systemd unit of the stack role).

Stdlib only and Python 3.9 compatible: the host program ``homeport-stack-txn`` imports this file beside
stack_health.py, stack_lock.py and stack_build.py (roles/stack/files); the ``stack_txn`` module imports it through
Ansible.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    from ansible_collections.homeport.homeport.plugins.module_utils import stack_build, stack_health, stack_lock
except ImportError:  # the host program: the files lie beside this one
    import stack_build  # type: ignore[import-not-found]
    import stack_health  # type: ignore[import-not-found]
    import stack_lock  # type: ignore[import-not-found]

__all__ = ["JOURNAL", "follow", "is_alive", "launch", "main", "read_state", "recover", "run", "start"]

JOURNAL = ".transaction.json"
# issue 31, defect 5: per build service, the hash of its build (stack_build.service_build_hash) and the image ID built
# from it; a build whose hash or image differs from its record is built again before `up`
BUILDS = ".builds.json"
# the bound of `docker compose build` (a build is not part of stack_wait_timeout, the bound of the wait)
BUILD_TIMEOUT = 3600
PROGRAM = "homeport-stack-txn"
UNIT_PREFIX = "homeport-stack-txn"


# -- state -------------------------------------------------------------------------------------------------------
def _fallback_path(project_dir):
    base = "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else tempfile.gettempdir()
    return os.path.join(base, "homeport-stack-txn." + project_dir.strip("/").replace("/", "_") + ".json")


def _write_json(path, doc):
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_state(project_dir, doc):
    """Write the transaction state (seq + 1): the project's journal, or the fallback copy when that write fails (a
    full disk). Returns the path written."""
    doc["seq"] = int(doc.get("seq", 0)) + 1
    doc["updated"] = time.time()
    try:
        _write_json(os.path.join(project_dir, JOURNAL), doc)
        return os.path.join(project_dir, JOURNAL)
    except OSError:
        _write_json(_fallback_path(project_dir), doc)
        return _fallback_path(project_dir)


def read_state(project_dir):
    """The newest transaction state (the journal or its fallback copy), None when there is none."""
    found = []
    for path in (os.path.join(project_dir, JOURNAL), _fallback_path(project_dir)):
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            found.append(doc)
    return max(found, key=lambda d: int(d.get("seq", 0))) if found else None


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def is_alive(state):
    """Whether the process of a transaction in progress still runs (same boot, its pid, this program)."""
    pid = int(state.get("pid") or 0)
    if pid <= 1 or (state.get("boot_id") and state.get("boot_id") != boot_id()):
        return False
    if not stack_lock.pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return PROGRAM.encode() in f.read()
    except OSError:
        return True  # no /proc (macOS): the pid alone


# -- the transaction ---------------------------------------------------------------------------------------------
class Txn:
    def __init__(self, project_dir, state, clock=time.monotonic):
        self.dir = project_dir
        self.state = state
        self.p = state["params"]
        self.clock = clock
        self.env = dict(os.environ)
        if self.p.get("docker_host"):
            self.env["DOCKER_HOST"] = self.p["docker_host"]

    # progress
    def note(self, text, **fields):
        self.state.setdefault("progress", []).append({"t": round(time.time(), 1), "text": text})
        self.state.update(fields)
        with contextlib.suppress(OSError):  # no room anywhere: the lines still reach the unit's log
            write_state(self.dir, self.state)
        print(text, flush=True)

    # docker
    def run(self, args, timeout):
        """(rc, stdout, stderr) of the docker CLI; rc None when ``timeout`` ran out (its process group stopped)."""
        proc = subprocess.Popen(
            [self.p["docker_cli"], *args],
            cwd=self.dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    out, err = proc.communicate(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                out, err = b"", b""
            return None, out or b"", err or b""
        return proc.returncode, out, err

    def compose(self, files):
        args = ["compose", "--ansi", "never", "--progress", "plain"]
        args += ["--project-directory", self.dir, "--project-name", self.p["project_name"]]
        for f in files:
            args += ["--file", f]
        return args

    def bound(self, deadline, cap=60):
        """Seconds a docker call may take: ``cap``, and within the wait's ``deadline`` when one is given (at least 5 s,
        so the state can still be read for the report once the bound ran out)."""
        return cap if deadline is None else min(cap, max(deadline - self.clock(), 5))

    def containers(self, files, deadline=None, strict=False):
        """The project's containers as `docker inspect` shows them. When `ps` or `inspect` fails or does not answer
        within the bound: None if ``strict`` (the health gate must not take "could not look" for "nothing wrong"),
        else an empty list (reports and records)."""
        rc, out, _err = self.run([*self.compose(files), "ps", "--all", "--quiet"], self.bound(deadline))
        if rc != 0:
            return None if strict else []
        ids = out.decode().split()
        if not ids:
            return []
        rc, out, _err = self.run(["inspect", *ids], self.bound(deadline))
        try:
            found = json.loads(out.decode() or "[]") if rc == 0 else None
        except ValueError:
            found = None
        return found if found is not None or strict else []

    def image_id(self, ref):
        rc, out, _err = self.run(["image", "inspect", "--format", "{{.Id}}", ref], 60)
        return out.decode().strip() if rc == 0 else ""

    def builds_doc(self):
        """``.builds.json``: {"builds": {service: {"hash", "image"}}, "superseded": [image IDs built here before]}."""
        try:
            doc = json.loads(_read(os.path.join(self.dir, BUILDS)) or "{}")
        except ValueError:
            doc = {}
        builds = doc.get("builds") if isinstance(doc, dict) and isinstance(doc.get("builds"), dict) else {}
        superseded = doc.get("superseded") if isinstance(doc, dict) and isinstance(doc.get("superseded"), list) else []
        return {"builds": builds, "superseded": superseded}

    def compose_model(self, files, timeout):
        """The release's compose model (``docker compose config --format json``): (model, None) or (None, error)."""
        rc, out, err = self.run([*self.compose(files), "config", "--format", "json"], timeout)
        if rc != 0:
            return None, f"docker compose config failed: {err.decode(errors='replace').strip()}"
        try:
            return json.loads(out.decode()), None
        except ValueError as exc:
            return None, f"docker compose config gave no JSON model: {exc}"

    def build_changed(self, files, services, model):
        """Build again the images of the build services whose build changed (issue 31, defect 5): ``up`` builds an
        image only when it is missing (compose's build policy), so an existing image kept serving after its context
        changed. The hash of each build (its settings and the files of its context as they lie on the host, without
        what the source sync leaves out) is recorded with the image ID built from it (``.builds.json``); a service
        whose hash or image (a rollback put an older one back, someone removed it) differs from the record is built
        with ``docker compose build`` here, and ``up`` then recreates its container, the image being another one.
        An unchanged build is not built and nothing is recreated. Returns (ok, message, failed services, whether an
        image changed: then the release is recorded, so that ``current`` names the images that serve)."""
        try:
            targets = stack_build.build_targets(model, self.p["project_name"], services, self.dir)
        except (OSError, ValueError) as exc:
            return False, f"the build contexts could not be read: {exc}", [], False
        doc = self.builds_doc()
        before = {name: self.image_id(t["image"]) for name, t in targets.items()}
        stale = [n for n, t in targets.items() if doc["builds"].get(n) != {"hash": t["hash"], "image": before[n]}]
        if not stale:
            return True, "", [], False
        self.note(f"building {', '.join(stale)}: its build context or settings changed, or its image is another one")
        rc, out, err = self.run([*self.compose(files), "build", "--", *stale], BUILD_TIMEOUT)
        if rc != 0:
            text = [line for line in (out + err).decode(errors="replace").strip().splitlines() if line.strip()]
            why = f"did not end within {BUILD_TIMEOUT} s" if rc is None else "failed: " + " / ".join(text[-5:])
            return False, f"docker compose build of {', '.join(stale)} {why}", stale, False
        rebuilt = False
        for name in stale:
            now = self.image_id(targets[name]["image"])
            recorded = (doc["builds"].get(name) or {}).get("image")
            doc["builds"][name] = {"hash": targets[name]["hash"], "image": now}
            rebuilt = rebuilt or before[name] != now
            for old in (before[name], recorded):  # removed with the last release that names them (prune_images)
                if old and old != now and old not in doc["superseded"]:
                    doc["superseded"].append(old)
        with contextlib.suppress(OSError):  # no record (a full disk): the next deploy builds again, from its cache
            _write_json(os.path.join(self.dir, BUILDS), doc)
        return True, "", [], rebuilt

    def prune_images(self):
        """Remove the images built here that a later build replaced, once no kept release names them (their
        images.json) and no build record does; an image a container still uses stays (docker refuses) for later."""
        doc = self.builds_doc()
        if not doc["superseded"]:
            return
        used = {b.get("image") for b in doc["builds"].values() if isinstance(b, dict)}
        releases = os.path.join(self.dir, "releases")
        for name in os.listdir(releases) if os.path.isdir(releases) else []:
            try:
                used |= set(json.loads(_read(os.path.join(releases, name, "images.json")) or "{}").values())
            except (ValueError, AttributeError):
                return  # a release whose images are unknown: remove nothing
        keep = []
        for iid in doc["superseded"]:
            if iid in used:
                keep.append(iid)
                continue
            rc, _out, err = self.run(["image", "rm", iid], 60)
            if rc != 0 and b"No such image" not in err:
                keep.append(iid)
        doc["superseded"] = keep
        with contextlib.suppress(OSError):
            _write_json(os.path.join(self.dir, BUILDS), doc)

    def up(self, files, services, *, build, liveness, remove_orphans, model=None):
        """`up --wait` under the bound wait_timeout and the health gate: (ok, changed, message, failed services).

        The bound is the whole wait (issue 31): compose's dependency waits, which its own ``--wait-timeout`` does not
        cover, and every docker call of the gate; past it compose's process group is stopped. Then, when `up` changed
        something, the containers are watched for ``liveness`` seconds (stack_health.judge: a crash loop, an exit but
        a one-shot's exit 0, an unhealthy service fail the release). ``model``: these files' compose model when the
        caller has read it already (the build step), else it is read here, within the bound."""
        deadline = self.clock() + int(self.p["wait_timeout"])
        if model is None:
            model, error = self.compose_model(files, self.bound(deadline))
            if model is None:
                return False, False, error, []
        rules = stack_health.health_rules(model)
        before = {c["Id"]: c for c in self.containers(files, deadline)}
        baseline = {cid: int(c.get("RestartCount") or 0) for cid, c in before.items()}
        args = [*self.compose(files), "up", "--detach", "--no-color", "--quiet-pull", "--wait"]
        args += ["--wait-timeout", str(max(int(deadline - self.clock()), 1))]
        if remove_orphans:
            args.append("--remove-orphans")
        if not build:
            args.append("--no-build")
        args += ["--", *services]
        rc, _out, err = self.run(args, deadline - self.clock())
        seen = self.containers(files, deadline)
        changed = {c["Id"]: (c.get("State") or {}).get("StartedAt") for c in seen} != {
            cid: (c.get("State") or {}).get("StartedAt") for cid, c in before.items()
        }
        views = [stack_health.container_view(c) for c in seen]
        if rc is None:
            problems = stack_health.judge(rules, baseline, views)
            failed = sorted({s for s, _m in problems} | set(stack_health.not_ready(rules, views)))
            return (
                False,
                True,
                f"the services were not ready within stack_wait_timeout ({self.p['wait_timeout']} s, the bound of "
                f"the whole wait); docker compose up was stopped. Not ready: {', '.join(failed) or 'none found'}"
                + ("; " + "; ".join(m for _s, m in problems) if problems else ""),
                failed,
            )
        if rc != 0:
            problems = stack_health.judge(rules, baseline, views)
            text = [line for line in err.decode(errors="replace").strip().splitlines() if line.strip()]
            return (
                False,
                True,
                "docker compose up failed: "
                + " / ".join(text[-5:])
                + ("; " + "; ".join(m for _s, m in problems) if problems else ""),
                [s for s, _m in problems],
            )
        window_end = self.clock() + (liveness if changed else 0)
        failed_looks = 0
        while True:
            seen = self.containers(files, deadline, strict=True)
            if seen is None:
                # the engine did not answer: look again (each look bounded), and past the bound after two failed
                # looks in a row the release fails: it is not known to be healthy
                failed_looks += 1
                if failed_looks >= 2 and self.clock() >= deadline:
                    problems = [
                        (
                            "",
                            "the services' state could not be read (docker compose ps / docker inspect failed or did "
                            f"not answer within stack_wait_timeout, {self.p['wait_timeout']} s): the release is not "
                            "known to be healthy",
                        )
                    ]
                    break
                time.sleep(1)
                continue
            failed_looks = 0
            problems = stack_health.judge(rules, baseline, [stack_health.container_view(c) for c in seen])
            if problems or self.clock() >= window_end:
                break
            if self.clock() >= deadline:
                problems = [
                    (
                        "",
                        f"the liveness window (stack_liveness_seconds: {liveness}) did not end within "
                        f"stack_wait_timeout ({self.p['wait_timeout']} s, the bound of the whole wait): raise "
                        "stack_wait_timeout or lower stack_liveness_seconds",
                    )
                ]
                break
            time.sleep(1)
        if problems:
            return (
                False,
                True,
                "the release failed the health gate: " + "; ".join(m for _s, m in problems),
                [s for s, _m in problems if s],
            )
        return True, changed, "", []

    # releases
    def current(self):
        try:
            return os.path.basename(os.readlink(os.path.join(self.dir, "current")))
        except OSError:
            return ""

    def live_differs_from_current(self):
        cur = os.path.join(self.dir, "current")
        if not os.path.islink(cur):
            return True
        for name in ("compose.yaml", "env", "overrides"):
            if _tree(os.path.join(self.dir, name)) != _tree(os.path.join(cur, name)):
                return True
        return False

    def record_release(self):
        """releases/<id>/ with compose.yaml, env/, overrides/, parent and images.json, then `current` -> it."""
        rel = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")  # noqa: UP017 - Python 3.9
        releases = os.path.join(self.dir, "releases")
        os.makedirs(releases, mode=0o700, exist_ok=True)
        for name in os.listdir(releases):  # partial releases of runs killed before their rename
            if name.endswith(".tmp"):
                shutil.rmtree(os.path.join(releases, name), ignore_errors=True)
        tmp = os.path.join(releases, rel + ".tmp")
        os.mkdir(tmp, 0o700)
        for name in ("compose.yaml", "env", "overrides"):
            src = os.path.join(self.dir, name)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(tmp, name), symlinks=True)
            elif os.path.exists(src):
                shutil.copy2(src, os.path.join(tmp, name))
        with open(os.path.join(tmp, "parent"), "w", encoding="utf-8") as f:
            f.write(self.current() + "\n")
        rc, out, err = self.run([*self.compose(self.p["files"]), "config", "--images"], 60)
        if rc != 0:
            raise OSError(f"docker compose config --images failed: {err.decode(errors='replace').strip()}")
        images = {}
        for ref in sorted(set(out.decode().split())):
            rc, iid, err = self.run(["image", "inspect", "--format", "{{.Id}}", ref], 60)
            if rc != 0:
                raise OSError(f"docker image inspect {ref} failed: {err.decode(errors='replace').strip()}")
            images[ref] = iid.decode().strip()
        with open(os.path.join(tmp, "images.json"), "w", encoding="utf-8") as f:
            json.dump(images, f, indent=2, sort_keys=True)
            f.write("\n")
        os.rename(tmp, os.path.join(releases, rel))
        link = os.path.join(self.dir, f".current.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(os.path.join("releases", rel), link)
        os.rename(link, os.path.join(self.dir, "current"))
        self.prune(rel)
        self.prune_images()
        return rel

    def prune(self, current):
        releases = os.path.join(self.dir, "releases")
        names = sorted(n for n in os.listdir(releases) if os.path.isdir(os.path.join(releases, n)))
        parent = _read(os.path.join(releases, current, "parent")).strip()
        protected = {current, parent}
        surplus = len(names) - max(int(self.p.get("keep_releases", 5)), 2)
        for n in names:
            if surplus <= 0:
                break
            if n not in protected:
                shutil.rmtree(os.path.join(releases, n), ignore_errors=True)
                surplus -= 1

    def restore(self, rel):
        """The files and image IDs of release ``rel`` become the live ones, then its `up` under the bound."""
        src = os.path.join(self.dir, "releases", rel)
        if not os.path.isfile(os.path.join(src, "compose.yaml")):
            raise OSError(f"release {rel} has no compose.yaml: it cannot be restored")
        keep = set()
        for sub in ("", "env", "overrides"):
            folder = os.path.join(src, sub)
            if sub and not os.path.isdir(folder):
                continue
            for name in os.listdir(folder) if sub else ["compose.yaml"]:
                rel_name = os.path.join(sub, name) if sub else name
                keep.add(rel_name)
                live = os.path.join(self.dir, rel_name)
                os.makedirs(os.path.dirname(live), mode=0o700, exist_ok=True)
                with open(os.path.join(src, rel_name), "rb") as f:
                    data = f.read()
                with open(live, "r+b" if os.path.exists(live) else "wb") as f:  # in place: room on a full disk
                    f.write(data)
                    f.truncate()
                os.chmod(live, 0o600 if sub == "env" else 0o640)
        for sub in ("env", "overrides"):
            folder = os.path.join(self.dir, sub)
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                if os.path.join(sub, name) not in keep:
                    os.unlink(os.path.join(folder, name))
        try:
            images = json.loads(_read(os.path.join(src, "images.json")) or "{}")
        except ValueError:
            images = {}
        for ref, iid in sorted(images.items()):
            rc, now, _err = self.run(["image", "inspect", "--format", "{{.Id}}", ref], 60)
            if rc != 0 or now.decode().strip() != iid:
                self.run(["image", "tag", iid, ref], 60)
        files = ["compose.yaml", *sorted(k for k in keep if k.startswith("overrides/"))]
        return self.up(files, [], build=False, liveness=0, remove_orphans=True)

    def report(self, error, failed_services, with_services=True):
        """The failure report of failed.yml: the error, the services not running/healthy, their last log lines."""
        lines = [f"Deploy failed: {error}"]
        if with_services:
            rows = []
            for c in self.containers(self.p["files"]):
                v = stack_health.container_view(c)
                ok = (v["status"] == "running" and v["health"] in ("", "healthy")) or (
                    v["status"] == "exited" and v["exit_code"] == 0
                )
                text = f"{v['service']}: state {v['status'] or '?'}"
                if v["health"]:
                    text += f", health {v['health']}"
                if v["status"] == "exited":
                    text += f", exit code {v['exit_code']}"
                if not ok:
                    rows.append(text)
                elif v["service"] in failed_services:
                    rows.append(text + " (failed the health gate)")
            lines.append("Services not running/healthy: " + ("; ".join(rows) or "none found"))
            bad = sorted(set(failed_services) | {r.split(":", 1)[0] for r in rows}) or list(
                self.p.get("services") or []
            )
            rc, out, err = self.run(
                [
                    *self.compose(self.p["files"]),
                    "logs",
                    "--no-color",
                    "--tail",
                    str(self.p.get("log_lines", 20)),
                    *bad,
                ],
                60,
            )
            self.logs = (out + err).decode(errors="replace").strip() if rc is not None else ""
        return lines

    def deploy_record(self, result):
        try:
            import stack_deploys  # type: ignore[import-not-found]  # noqa: PLC0415 - shipped beside the program (plugins/filter/stack_deploys.py)
        except ImportError:
            try:
                from ansible_collections.homeport.homeport.plugins.filter import stack_deploys  # noqa: PLC0415
            except ImportError:
                return "the deploy record could not be written (stack_deploys.py is missing)"
        path = os.path.join(self.dir, "deploys.json")
        try:
            inspected = self.containers(self.p["files"])
            records = stack_deploys.stack_deploy_record(
                _read(path), inspected, float(self.p.get("deploy_started") or self.state["started"]), time.time(),
                result, int(self.p.get("records_keep", 100)),
            )  # fmt: skip
            _write_json(path, records)
        except Exception as exc:
            return f"the deploy record {path} could not be written ({exc}); homeport report will not count this deploy"
        return ""


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def _tree(path):
    """{relative path: content} of a file or the files under a directory ({} when it does not exist)."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {"": f.read()}
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def _take_lock(txn):
    """The deploy lock passes from the controller's run to this process (local: judged on the host by its pid)."""
    p = txn.p
    path, token = p.get("lock_path"), p.get("lock_token")
    if not path or not token:
        return
    new = {
        "owner": f"homeport release transaction {txn.state['id']} on {socket.gethostname()}",
        "pid": os.getpid(),
        "action": "deploy",
        "local": True,
        "token": token,
        "time": int(time.time()),
    }
    try:
        with stack_lock._guard(os.path.dirname(path) or "."):
            existing = stack_lock.read_lock(path)
            if isinstance(existing, dict) and existing.get("token") == token:
                _write_json(path, new)
    except OSError:
        pass  # a full disk: the controller's lock stays (same token), released at the end all the same


def run(project_dir):
    """Carry out (or resume) the transaction of ``project_dir``'s journal. Returns the final state."""
    state = read_state(project_dir)
    if not state or state.get("status") != "running":
        return state
    txn = Txn(project_dir, state)
    p = txn.p
    resumed = bool(state.get("pid"))
    state.update(pid=os.getpid(), boot_id=boot_id())
    state.setdefault("last_good", txn.current())
    _take_lock(txn)
    txn.note(
        ("resuming the release after its process died: " if resumed else "")
        + f"starting the release (up under stack_wait_timeout {p['wait_timeout']} s, then the health gate)",
        phase="up",
    )
    build = p.get("build", "policy") != "never"
    model, error, failed, rebuilt = None, "", [], False
    if build:  # the model is read once: for the builds, then for the health gate of `up`
        model, error = txn.compose_model(p["files"], 120)
    ok = model is not None or not build
    if ok and build:
        ok, error, failed, rebuilt = txn.build_changed(p["files"], p.get("services") or [], model)
    state["rebuilt"] = rebuilt = rebuilt or bool(state.get("rebuilt"))  # a resumed run built nothing new itself
    changed = False
    if ok:
        ok, changed, error, failed = txn.up(
            p["files"], p.get("services") or [], build=build,
            liveness=int(p.get("liveness_seconds", 10)), remove_orphans=bool(p.get("remove_orphans")), model=model,
        )  # fmt: skip
    state["changed"] = bool(state.get("changed")) or changed
    with_services = True
    # a rebuilt image is a new release even with the same files: `current` must name the images that serve
    if ok and (p.get("record_release") or rebuilt or txn.live_differs_from_current()):
        txn.note("the release is healthy; recording it", phase="record")
        try:
            rel = txn.record_release()
            state["changed"] = True
            txn.note(f"release {rel} recorded as current", release=rel)
        except OSError as exc:
            ok, with_services = False, False
            removed = []
            releases = os.path.join(project_dir, "releases")
            for name in sorted(os.listdir(releases)) if os.path.isdir(releases) else []:
                if name.endswith(".tmp"):
                    shutil.rmtree(os.path.join(releases, name), ignore_errors=True)
                    removed.append(os.path.join(releases, name))
            if p.get("staging_dir"):
                shutil.rmtree(p["staging_dir"], ignore_errors=True)
            said = str(exc)
            full = "No space left on device" in said
            error = (
                (
                    f"the disk of stack_project_dir {project_dir} is full (No space left on device), so the release "
                    "could not be recorded after it started"
                )
                if full
                else f"the release could not be recorded in {releases} after it started: {said}"
            )
            error += "; " + (", ".join(removed) + " was removed" if removed else "no partial release was left")
            error += "; " + ("free space there and deploy again" if full else "fix the cause and deploy again") + "."
            error += " " + said
    elif ok:
        txn.note("the release is healthy; nothing new to record", phase="record")
    msg = ""
    if not ok:
        txn.note(f"the release failed: {error}", phase="restore")
        lines = txn.report(error, failed, with_services)
        last = state.get("last_good") or ""
        if last:
            try:
                rok, _changed, rerr, _failed = txn.restore(last)
                note = (
                    f"the previous release {last} was restored and is serving again"
                    if rok
                    else f"restoring the previous release {last} failed too: {rerr}"
                )
            except OSError as exc:
                note = f"restoring the previous release {last} failed too: {exc}"
        else:
            note = "there is no previous release to restore (first deploy); the failed release is left as it is"
        lines.append(note)
        if with_services:
            lines.append("Last log lines:\n  " + getattr(txn, "logs", "").replace("\n", "\n  "))
        msg = "\n".join(lines)
        txn.note(note)
    warning = txn.deploy_record("ok" if ok else "failed")
    if p.get("lock_path") and p.get("lock_token"):
        with contextlib.suppress(OSError):
            stack_lock.release(p["lock_path"], p["lock_token"])
    state.update(
        status="done", result="ok" if ok else "failed", msg=msg, warning=warning, phase="done",
        failed_services=[] if ok else failed,
    )  # fmt: skip
    txn.note("done: " + ("the release serves" if ok else "the release failed; see the report"))
    return state


# -- the controller's side (the stack_txn module) ------------------------------------------------------------------
def start(project_dir, params, program, python="/usr/bin/python3", txn_id=None):
    """Write the journal of a new transaction and launch its process; returns the state once it runs."""
    utc = datetime.timezone.utc  # noqa: UP017 - Python 3.9 (macOS' system Python)
    txn_id = txn_id or datetime.datetime.now(utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"
    previous = read_state(project_dir) or {}
    state = {
        "id": txn_id,
        "seq": int(previous.get("seq", 0)),
        "status": "running",
        "started": time.time(),
        "params": params,
        "progress": [],
        "pid": 0,
    }
    write_state(project_dir, state)
    return launch(project_dir, state, program, python)


def use_systemd(launcher="auto"):
    """Whether the transaction runs as a transient systemd unit: ``systemd``/``detached`` as the role says (the OS
    family: macOS has launchd, no systemd), ``auto`` when systemd is PID 1 (/run/systemd/system, sd_booted(3)) and
    this process is root: systemd-run talks to the system manager, which refuses an unprivileged caller ("Access
    denied") - the stack role runs unprivileged where it needs no become (the Mac's admin user)."""
    if launcher in ("systemd", "detached"):
        return launcher == "systemd"
    return os.geteuid() == 0 and os.path.isdir("/run/systemd/system") and bool(shutil.which("systemd-run"))


def launch(project_dir, state, program, python="/usr/bin/python3", wait=15.0):
    """Start the host process of the transaction: a transient systemd unit where systemd runs, else a process in a
    session of its own. Waits until it wrote its pid (or ``wait`` seconds)."""
    argv = [python, program, "run", project_dir]
    unit = f"{UNIT_PREFIX}-{state['params']['project_name']}-{state['id']}".replace("_", "-")
    before = int(state.get("seq", 0))
    if use_systemd(state["params"].get("launcher", "auto")):
        subprocess.run(
            ["systemctl", "reset-failed", unit + ".service"], capture_output=True, check=False
        )  # a unit of the same name that failed before (a resume)
        r = subprocess.run(
            ["systemd-run", "--unit", unit, "--collect", "--quiet", "--description",
             "homeport: the release transaction of the stack", "--property", "KillMode=mixed", *argv],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if r.returncode != 0:
            raise OSError(f"systemd-run failed: {(r.stderr or r.stdout).strip()}")
        how = f"systemd unit {unit}.service"
    else:
        log = os.path.join(project_dir, ".transaction.log")
        with open(log, "ab") as out:
            subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True, cwd="/",
            )  # fmt: skip
        how = f"a detached process (log {log})"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        now = read_state(project_dir) or {}
        if int(now.get("seq", 0)) > before and now.get("pid"):
            now["how"] = how
            return now
        time.sleep(0.1)
    raise OSError(f"the release transaction did not start within {wait:g} s ({how})")


def follow(project_dir, seen=0, timeout=20.0, program=None, python="/usr/bin/python3"):
    """Wait up to ``timeout`` seconds for the transaction to end; resume it when its process died. Returns the state
    with ``new_progress`` (the lines after the first ``seen``) and ``resumed``."""
    deadline = time.monotonic() + timeout
    resumed = False
    while True:
        state = read_state(project_dir)
        if not state:
            return {"status": "none", "new_progress": [], "resumed": False}
        if state.get("status") == "running" and state.get("pid") and not is_alive(state):
            if program is None:
                state["dead"] = True
                break
            state = launch(project_dir, state, program, python)
            resumed = True
            continue
        if state.get("status") != "running" or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    state["new_progress"] = [p["text"] for p in (state.get("progress") or [])[int(seen) :]]
    state["resumed"] = resumed
    return state


def recover(project_dir, program, python="/usr/bin/python3"):
    """At boot: a transaction left running by a process that is gone is run again (finished or rolled back)."""
    state = read_state(project_dir)
    if state and state.get("status") == "running" and not is_alive(state):
        launch(project_dir, state, program, python)
        return "resumed"
    return "nothing to do"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] not in ("run", "recover"):
        print(f"usage: {PROGRAM} run|recover PROJECT_DIR", file=sys.stderr)
        return 3
    action, project_dir = argv
    if action == "recover":
        print(recover(project_dir, os.path.abspath(sys.argv[0]), sys.executable))
        return 0
    try:
        state = run(project_dir)
    except Exception as exc:
        state = read_state(project_dir) or {"params": {}}
        state.update(
            status="done",
            result="failed",
            phase="done",
            msg=f"Deploy failed: the release transaction "
            f"crashed ({type(exc).__name__}: {exc}); see its log on the host, fix the cause, deploy again",
        )
        with contextlib.suppress(OSError):
            write_state(project_dir, state)
        p = state.get("params") or {}
        if p.get("lock_path") and p.get("lock_token"):
            with contextlib.suppress(OSError):
                stack_lock.release(p["lock_path"], p["lock_token"])
        raise
    return 0 if state and state.get("result") == "ok" else 1
