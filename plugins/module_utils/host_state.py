#!/usr/bin/env python3
# homeport host-state record and check (issue 29). Shipped two ways: as module_utils of the collection (the
# homeport_host_state module imports it to write each role's record), and installed on the host as a plain program
# (/usr/local/libexec/homeport/host_state.py, by the same module) that an hourly systemd timer / launchd job runs.
# Standard library only, Python >= 3.9 (macOS' /usr/bin/python3): no Ansible on the host.
"""homeport host state: each converge records what a role enforces; ``check`` verifies the record in one call.

Record (``<state dir>/<role>.json``, root, 0600: it holds checksums of secret files), written by the role's last task::

    {"version": 1, "role": "hardening",
     "files": {"/etc/nftables.conf": {"type": "file", "sha256": "...", "owner": "root", "group": "root",
                                      "mode": "0755", "secret": false}},
     "packages": ["fail2ban", "nftables"],                 # Debian packages that must be installed
     "units": ["fail2ban", "nftables"],                    # systemd units that must be enabled and active
     "sysctls": {"net.ipv4.ip_nonlocal_bind": "1"},        # kernel settings and their values
     "containers": {"project": "homeport", "docker": "docker", "deploys": "/var/lib/homeport/stack/deploys.json",
                    "items": {"homeport-api-1": {"id": "...", "created": 1767225600.5, "image": "...",
                              "config_hash": "...", "env_digest": "...", "env_names": ["A", "B"]}}}}

Files: what the role just wrote (their checksum, owner, group and mode at the end of the converge). Packages, units and
sysctls: what the role asks for. Containers: the compose project's containers as ``docker inspect`` shows them. A
container that a later ``homeport deploy`` created (``Created`` at or before the end of the last deploy recorded by
the stack role in ``deploys.json``, after the recorded container) is the deploy's work, not drift; so is a recorded
container that is gone after a later deploy.

``check`` prints one JSON summary (and with ``--write`` stores it, 0644, for the monitoring collector)::

    {"version": 1, "checked_at": "2026-12-01T10:00:00Z", "checked_at_epoch": 1764583200, "state_dir": "...",
     "records": 4, "items": 57, "roles": {"hardening": {"items": 14, "drifted": 1}},
     "drifted": [{"role": "hardening", "kind": "unit", "item": "fail2ban", "what": "active",
                  "expected": "active", "found": "inactive"}],
     "errors": []}

Exit codes: 0 nothing drifted, 2 drift, 1 the check could not look at something (``errors``) or found no record.
Secrets: no value of a file, an environment variable or a record is printed; a secret file's checksum is not
either (``(secret)``), and an environment shows as its variable names and a digest prefix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import grp
import hashlib
import json
import os
import platform
import pwd
import stat
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

VERSION = 1
EXIT_OK, EXIT_FAILED, EXIT_DRIFT = 0, 1, 2
SUMMARY_NAME = "summary.json"
PROGRAM = "/usr/local/libexec/homeport/host_state.py"
UNIT = "homeport-host-state"
LAUNCHD_LABEL = "com.homeport.host-state"
LAUNCHD_PLIST = f"/Library/LaunchDaemons/{LAUNCHD_LABEL}.plist"
SYSTEMD_DIR = "/etc/systemd/system"
PROC_SYS = "/proc/sys"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
DIGEST_SHOWN = 12  # hex digits of a digest shown in a summary
DEPLOY_SLACK = 1.0  # deploys.json holds whole seconds
ENABLED = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
ACTIVE = ("active", "reloading", "refreshing")
TIMEOUT = 60


def default_state_dir() -> str:
    base = "/usr/local/var/homeport" if platform.system() == "Darwin" else "/var/lib/homeport"
    return base + "/state"


class CheckError(Exception):
    pass


def _run(argv: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise CheckError(f"{argv[0]}: not installed") from None
    except subprocess.TimeoutExpired:
        raise CheckError(f"{' '.join(argv[:3])}: no answer within {timeout:.0f} s") from None


# ---- what the host holds now ---------------------------------------------------------------------------------


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def file_state(path: str) -> dict | None:
    """Type, owner, group, mode and (regular files) SHA-256 of ``path``; None when it does not exist."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    out: dict = {
        "owner": _name(pwd.getpwuid, st.st_uid),
        "group": _name(grp.getgrgid, st.st_gid),
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
    }
    if stat.S_ISLNK(st.st_mode):
        out.update(type="link", target=os.readlink(path))
    elif stat.S_ISDIR(st.st_mode):
        out["type"] = "directory"
    elif stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        out.update(type="file", sha256=digest.hexdigest())
    else:
        out["type"] = "other"
    return out


def package_states(names: list[str]) -> dict[str, str]:
    """dpkg's status of each package (``installed``, ``config-files``, ``not-installed``, ...) in one dpkg-query."""
    if not names:
        return {}
    r = _run(["dpkg-query", "-W", "-f", "${Package}\\t${db:Status-Status}\\n", "--", *names])
    found = {}
    for line in r.stdout.splitlines():
        name, _, status = line.partition("\t")
        found[name.split(":")[0]] = status.strip() or "unknown"
    # dpkg-query exits 1 and says so on stderr for a package it never heard of (a purged one)
    return {n: found.get(n, "not-installed") for n in names}


def unit_states(names: list[str]) -> dict[str, dict[str, str]]:
    """systemd's UnitFileState and ActiveState of each unit, in one ``systemctl show`` (one block per unit, in the
    asked order; systemd prints the properties in its own order, hence key=value)."""
    if not names:
        return {}
    r = _run(["systemctl", "show", "--property=Id,LoadState,UnitFileState,ActiveState", "--", *names])
    if r.returncode != 0:
        raise CheckError(f"systemctl show: {r.stderr.strip()[-300:]}")
    blocks = [b for b in r.stdout.strip("\n").split("\n\n")]
    out = {}
    for name, block in zip(names, blocks, strict=False):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        out[name] = {
            "load": props.get("LoadState", ""),
            "enabled": props.get("UnitFileState", "") or "-",
            "active": props.get("ActiveState", "") or "-",
        }
    for name in names[len(blocks) :]:
        out[name] = {"load": "not-found", "enabled": "-", "active": "-"}
    return out


def sysctl_value(key: str, proc_sys: str = PROC_SYS) -> str | None:
    try:
        with open(os.path.join(proc_sys, *key.split(".")), encoding="utf-8") as fh:
            return " ".join(fh.read().split())
    except OSError:
        return None


def parse_time(value) -> float | None:
    """Docker's RFC 3339 times (nanoseconds, Z) and deploys.json's ``%Y-%m-%dT%H:%M:%SZ`` -> epoch seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    if not value or str(value).startswith("0001-"):
        return None
    text = str(value).strip().replace("Z", "+00:00")
    if "." in text:
        head, frac = text.split(".", 1)
        digits = "".join(ch for ch in frac if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{frac[len(digits) :]}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)  # noqa: UP017 - Python 3.9 on macOS has no dt.UTC
    return parsed.timestamp()


def env_digest(env: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(env)).encode()).hexdigest()


def container_state(info: dict) -> dict:
    """What is recorded of one container (``docker inspect`` document): never an environment value."""
    config = info.get("Config") or {}
    env = [str(e) for e in config.get("Env") or []]
    return {
        "id": info.get("Id", ""),
        "created": parse_time(info.get("Created")),
        "service": (config.get("Labels") or {}).get(SERVICE_LABEL) or "",
        "image": config.get("Image") or "",
        "config_hash": (config.get("Labels") or {}).get(CONFIG_HASH_LABEL) or "",
        "env_digest": env_digest(env),
        "env_names": sorted({e.split("=", 1)[0] for e in env}),
    }


def containers(project: str, docker: str = "docker") -> dict[str, dict]:
    """The compose project's containers by name (``docker ps`` by the project label, then ``docker inspect``)."""
    cli = docker.split()
    r = _run([*cli, "ps", "-aq", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}"])
    if r.returncode != 0:
        raise CheckError(f"docker ps: {r.stderr.strip()[-300:]}")
    ids = r.stdout.split()
    if not ids:
        return {}
    r = _run([*cli, "inspect", *ids])
    if r.returncode != 0:
        raise CheckError(f"docker inspect: {r.stderr.strip()[-300:]}")
    return {str(c.get("Name", "")).lstrip("/"): container_state(c) for c in json.loads(r.stdout or "[]")}


def last_deploy_finished(path: str) -> float | None:
    """When the stack role's last recorded deploy ended (its deploys.json), in the host's epoch seconds."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            records = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(records, list):
        return None
    parsed = [parse_time(r.get("finished")) for r in records if isinstance(r, dict)]
    times = [t for t in parsed if t is not None]
    return max(times) if times else None


# ---- recording -----------------------------------------------------------------------------------------------


def _files_spec(files) -> list[tuple[str, bool]]:
    out = []
    for f in files or []:
        if isinstance(f, dict):
            out.append((str(f["path"]), bool(f.get("secret", False))))
        else:
            out.append((str(f), False))
    return out


def build_record(role: str, spec: dict) -> dict:
    """The record of one role from its spec (files, packages, units, sysctls, containers), as the host is now.

    Files that do not exist are left out (a role writes some only in some configurations). The record holds no
    time, so an unchanged host gives the same record (the record task reports no change)."""
    files = {}
    for path, secret in _files_spec(spec.get("files")):
        found = file_state(path)
        if found is not None:
            files[path] = {**found, "secret": secret}
    record: dict = {
        "version": VERSION,
        "role": role,
        "files": dict(sorted(files.items())),
        "packages": sorted(set(spec.get("packages") or [])),
        "units": sorted(set(spec.get("units") or [])),
        "sysctls": {str(k): " ".join(str(v).split()) for k, v in sorted((spec.get("sysctls") or {}).items())},
    }
    cont = spec.get("containers") or {}
    if cont.get("project"):
        docker = cont.get("docker") or "docker"
        items = containers(cont["project"], docker)
        record["containers"] = {
            "project": cont["project"],
            "docker": docker,
            "deploys": cont.get("deploys") or "",
            "items": dict(sorted(items.items())),
        }
    return record


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write_if_changed(path: str, text: str, mode: int = 0o644) -> bool:
    """Write ``text`` atomically (temp file + rename) when the file does not hold it already, with ``mode``."""
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                if stat.S_IMODE(os.stat(path).st_mode) != mode:
                    os.chmod(path, mode)
                    return True
                return False
    except (OSError, UnicodeDecodeError):
        pass
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def record_path(state_dir: str, role: str) -> str:
    if not role or "/" in role or role.startswith(".") or role == SUMMARY_NAME[:-5]:
        raise ValueError(f"role: {role!r} is not a role name")
    return os.path.join(state_dir, role + ".json")


def record(state_dir: str, role: str, spec: dict) -> bool:
    """Write the role's record (0600) when it differs; True when it was written."""
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    return write_if_changed(record_path(state_dir, role), dumps(build_record(role, spec)), 0o600)


# ---- checking ------------------------------------------------------------------------------------------------


def _short(digest: str) -> str:
    return f"sha256:{digest[:DIGEST_SHOWN]}" if digest else "-"


def _item(role: str, kind: str, item: str, what: str, *, expected, found) -> dict:
    return {"role": role, "kind": kind, "item": item, "what": what, "expected": expected, "found": found}


def check_files(role: str, files: dict) -> list[dict]:
    out = []
    for path, exp in sorted(files.items()):
        try:
            cur = file_state(path)
        except OSError as exc:
            out.append(_item(role, "file", path, "readable", expected="readable", found=f"unreadable: {exc.strerror}"))
            continue
        if cur is None:
            out.append(_item(role, "file", path, "exists", expected=exp.get("type", "file"), found="missing"))
            continue
        if cur.get("type") != exp.get("type"):
            out.append(_item(role, "file", path, "type", expected=exp.get("type"), found=cur.get("type")))
            continue
        if exp.get("type") == "file" and cur.get("sha256") != exp.get("sha256"):
            secret = exp.get("secret")
            expected = "(secret)" if secret else _short(exp.get("sha256", ""))
            found = "(secret, changed)" if secret else _short(cur.get("sha256", ""))
            out.append(_item(role, "file", path, "content", expected=expected, found=found))
        if exp.get("type") == "link" and cur.get("target") != exp.get("target"):
            out.append(_item(role, "file", path, "target", expected=exp.get("target"), found=cur.get("target")))
        for what in ("owner", "group", "mode"):
            if cur.get(what) != exp.get(what):
                out.append(_item(role, "file", path, what, expected=exp.get(what), found=cur.get(what)))
    return out


def check_packages(role: str, packages: list[str]) -> list[dict]:
    states = package_states(list(packages))
    return [
        _item(role, "package", name, "installed", expected="installed", found=states.get(name, "not-installed"))
        for name in packages
        if states.get(name) != "installed"
    ]


def check_units(role: str, units: list[str]) -> list[dict]:
    out = []
    states = unit_states(list(units))
    for name in units:
        cur = states[name]
        if cur["enabled"] not in ENABLED:
            out.append(_item(role, "unit", name, "enabled", expected="enabled", found=cur["enabled"]))
        if cur["active"] not in ACTIVE:
            out.append(_item(role, "unit", name, "active", expected="active", found=cur["active"]))
    return out


def check_sysctls(role: str, sysctls: dict, proc_sys: str = PROC_SYS) -> list[dict]:
    out = []
    for key, value in sorted(sysctls.items()):
        cur = sysctl_value(key, proc_sys)
        if cur != value:
            out.append(_item(role, "sysctl", key, "value", expected=value, found="unreadable" if cur is None else cur))
    return out


def _env_text(state: dict) -> str:
    return f"{len(state.get('env_names') or [])} variables, {_short(state.get('env_digest', ''))}"


def _env_found(exp: dict, cur: dict) -> str:
    added = sorted(set(cur.get("env_names") or []) - set(exp.get("env_names") or []))
    removed = sorted(set(exp.get("env_names") or []) - set(cur.get("env_names") or []))
    notes = [f"added {', '.join(added)}"] if added else []
    notes += [f"removed {', '.join(removed)}"] if removed else []
    if not added and not removed:
        notes.append("a value changed")
    return f"{_env_text(cur)} ({'; '.join(notes)})"


def check_containers(role: str, section: dict) -> list[dict]:
    """The project's containers against the record, a later homeport deploy's work excepted (module docstring)."""
    recorded = section.get("items") or {}
    current = containers(section["project"], section.get("docker") or "docker")
    deployed = last_deploy_finished(section.get("deploys") or "")

    def by_deploy(cur: dict, after: float | None) -> bool:
        created = cur.get("created")
        if deployed is None or created is None or created > deployed + DEPLOY_SLACK:
            return False
        return after is None or created > after

    out = []
    for name, exp in sorted(recorded.items()):
        cur = current.get(name)
        if cur is None:
            if deployed is not None and exp.get("created") is not None and deployed > exp["created"]:
                continue  # a later deploy removed or renamed it
            out.append(_item(role, "container", name, "exists", expected="present", found="missing"))
            continue
        if cur["id"] != exp.get("id") and by_deploy(cur, exp.get("created")):
            continue
        if cur["image"] != exp.get("image"):
            out.append(_item(role, "container", name, "image", expected=exp.get("image"), found=cur["image"]))
        if cur["config_hash"] != exp.get("config_hash"):
            expected, found = _short(exp.get("config_hash", "")), _short(cur["config_hash"])
            out.append(_item(role, "container", name, "config-hash", expected=expected, found=found))
        if cur["env_digest"] != exp.get("env_digest"):
            out.append(
                _item(role, "container", name, "environment", expected=_env_text(exp), found=_env_found(exp, cur))
            )
    for name, cur in sorted(current.items()):
        if name not in recorded and not by_deploy(cur, None):
            out.append(
                _item(
                    role,
                    "container",
                    name,
                    "recorded",
                    expected="absent",
                    found=f"created outside homeport ({cur['service']})",
                )
            )
    return out


def _count(rec: dict) -> int:
    cont = (rec.get("containers") or {}).get("items") or {}
    return sum(len(rec.get(k) or ()) for k in ("files", "packages", "units", "sysctls")) + len(cont)


def read_records(state_dir: str) -> dict[str, dict]:
    out = {}
    for entry in sorted(os.listdir(state_dir)) if os.path.isdir(state_dir) else []:
        if not entry.endswith(".json") or entry == SUMMARY_NAME or entry.startswith("."):
            continue
        with open(os.path.join(state_dir, entry), encoding="utf-8") as fh:
            doc = json.load(fh)
        if isinstance(doc, dict) and doc.get("version") == VERSION:
            out[str(doc.get("role") or entry[:-5])] = doc
    return out


def check(state_dir: str, proc_sys: str = PROC_SYS, now: float | None = None) -> dict:
    """Verify every record in ``state_dir``: the summary document (module docstring)."""
    now = time.time() if now is None else now
    summary: dict = {
        "version": VERSION,
        "checked_at": dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),  # noqa: UP017
        "checked_at_epoch": int(now),
        "state_dir": state_dir,
        "records": 0,
        "items": 0,
        "roles": {},
        "drifted": [],
        "errors": [],
    }
    try:
        records = read_records(state_dir)
    except (OSError, ValueError) as exc:
        summary["errors"].append(f"{state_dir}: the records do not read: {exc}")
        return summary
    if not records:
        summary["errors"].append(f"{state_dir}: no state record (run `homeport bootstrap` with this version)")
    for role, rec in records.items():
        drifted: list[dict] = []
        steps: list[tuple[Callable[[str, Any], list[dict]], Any]] = [
            (check_files, rec.get("files") or {}),
            (check_packages, rec.get("packages") or []),
            (check_units, rec.get("units") or []),
            (lambda r, s: check_sysctls(r, s, proc_sys), rec.get("sysctls") or {}),
        ]
        if (rec.get("containers") or {}).get("project"):
            steps.append((check_containers, rec["containers"]))
        for step, section in steps:
            if not section:
                continue
            try:
                drifted += step(role, section)
            except CheckError as exc:
                summary["errors"].append(f"{role}: {exc}")
        summary["records"] += 1
        summary["items"] += _count(rec)
        summary["roles"][role] = {"items": _count(rec), "drifted": len(drifted)}
        summary["drifted"] += drifted
    return summary


def exit_code(summary: dict) -> int:
    if summary["drifted"]:
        return EXIT_DRIFT
    return EXIT_FAILED if summary["errors"] else EXIT_OK


# ---- the hourly job ------------------------------------------------------------------------------------------


def check_argv(python: str, program: str, state_dir: str) -> list[str]:
    summary = os.path.join(state_dir, SUMMARY_NAME)
    return [python, program, "check", "--state-dir", state_dir, "--write", summary, "--quiet"]


def systemd_units(python: str, program: str, state_dir: str) -> dict[str, str]:
    """The service and its hourly timer (systemd.timer(5): OnCalendar=hourly, Persistent= catches a missed run)."""
    head = "# Managed by homeport (homeport_host_state module, issue 29); changes are overwritten.\n"
    argv = " ".join(check_argv(python, program, state_dir))
    service = (
        f"{head}[Unit]\nDescription=homeport host-state check (drift since the last converge)\n"
        "After=docker.service\n\n[Service]\nType=oneshot\n"
        # exit 2 means drift found: the check worked, the unit must not count as failed
        f"ExecStart={argv}\nSuccessExitStatus=2\nNice=10\nIOSchedulingClass=idle\n"
    )
    timer = (
        f"{head}[Unit]\nDescription=hourly homeport host-state check\n\n[Timer]\nOnCalendar=hourly\n"
        "RandomizedDelaySec=5min\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
    )
    return {f"{UNIT}.service": service, f"{UNIT}.timer": timer}


def launchd_plist(python: str, program: str, state_dir: str) -> str:
    """The LaunchDaemon (launchd.plist(5)): every 3600 s (StartInterval), once at load (RunAtLoad)."""
    import plistlib  # noqa: PLC0415 - only the macOS job needs it

    doc = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": check_argv(python, program, state_dir),
        "StartInterval": 3600,
        "RunAtLoad": True,
        "LowPriorityIO": True,
        "Nice": 10,
        "StandardErrorPath": "/var/log/homeport-host-state.log",
    }
    return plistlib.dumps(doc, sort_keys=True).decode()


# ---- command line --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="host_state.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="verify the records; print the JSON summary (exit 0 clean, 2 drift, 1 failed)")
    c.add_argument("--state-dir", default=default_state_dir())
    c.add_argument("--write", metavar="FILE", help="also store the summary there (0644), for the monitoring")
    c.add_argument("--quiet", action="store_true", help="print nothing (with --write: the timer's job)")
    c.add_argument("--proc-sys", default=PROC_SYS, help=argparse.SUPPRESS)
    s = sub.add_parser("summary", help="print the last stored summary (no root needed)")
    s.add_argument("--state-dir", default=default_state_dir())
    r = sub.add_parser("record", help="write ROLE's record from a JSON spec (what the homeport_host_state module does)")
    r.add_argument("--state-dir", default=default_state_dir())
    r.add_argument("--role", required=True)
    r.add_argument("--spec", required=True, help="JSON: files, packages, units, sysctls, containers")
    args = parser.parse_args(argv)

    if args.command == "summary":
        path = os.path.join(args.state_dir, SUMMARY_NAME)
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as exc:
            print(json.dumps({"errors": [f"{path}: {exc}"], "drifted": [], "stored": True}))
            return EXIT_FAILED
        doc["stored"] = True
        print(json.dumps(doc, sort_keys=True))
        return exit_code({"drifted": doc.get("drifted") or [], "errors": doc.get("errors") or []})
    if args.command == "record":
        try:
            changed = record(args.state_dir, args.role, json.loads(args.spec))
        except (CheckError, ValueError, OSError) as exc:
            print(f"host_state.py record: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print("changed" if changed else "ok")
        return EXIT_OK
    summary = check(args.state_dir, proc_sys=args.proc_sys)
    if args.write:
        write_if_changed(args.write, dumps(summary), 0o644)
    if not args.quiet:
        print(json.dumps(summary, sort_keys=True))
    return exit_code(summary)


if __name__ == "__main__":
    sys.exit(main())
