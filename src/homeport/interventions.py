"""Manual interventions, recorded on each host (issue 30): every run of a verb by which a human repairs or changes
the host - ``bootstrap``, ``drift --fix``, ``rollback``, ``backup restore`` - that CHANGED something there.

Where: ansible's recap (the changed count per host) is not visible to the playbook's tasks, and a last play that
ran on every run would cost a round trip per host even when nothing changed. The CLI sees the recap (the runner's
``playbook_on_stats`` event, :class:`homeport.events.RunRecord` ``recap``), so after the run it sends ONE small write
to each host whose ``changed`` is above 0, over the run's SSH master (homeport.quick's ssh settings and ControlPath:
one round trip, no new login); a run that changed nothing costs nothing.

What: the collection's ``plugins/module_utils/status_report.py`` - the same file that reads the record for
``homeport report`` and the host's status page - is sent on stdin to the host's python3 (``python3 -
record-intervention STATE_DIR ENTRY``), which appends ``{time (the host's clock), verb, changed, by (user@machine),
result}`` to ``<homeport_state_dir>/interventions.json`` (the last 200, under a lock, written atomically) as root:
directly, or through ``sudo -n``, else as the login user (a state dir it cannot write: a warning, never a failed
run). A deploy is intended change and has its own record (deploys.json); the host's own recoveries (restarts by the
engine) come from Prometheus.

Hosts on ``ansible_connection: local`` get the same command run here; other connections (docker) are skipped
with a warning.
"""

from __future__ import annotations

import getpass
import json
import shlex
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from homeport import events, paths

# the verbs whose changes are manual interventions (status_report.INTERVENTION_VERBS, the reader's list)
VERBS = ("bootstrap", "drift --fix", "rollback", "backup restore")
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")
SSH_CONNECTIONS = ("ssh", "ansible.builtin.ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.paramiko_ssh")
TIMEOUT = 60


def who() -> str:
    """user@machine of this run, as the deploy lock names its owner (roles/stack/tasks/lock.yml)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def remote_script(entry: dict[str, Any], state_dir: str | None = None) -> str:
    """The sh script one host runs, its python3 reading status_report.py on stdin: as root directly, else through
    ``sudo -n``, else as the login user. ``state_dir``: homeport_state_dir when the inventory sets it, else the
    roles' default for the inventory's homeport_os_family (:func:`homeport.quick.default_state_dir`); None: the
    default for the host's OS, decided on the host (as `homeport drift` does when neither is set)."""
    default = 'if [ "$(uname -s)" = Darwin ]; then D=/usr/local/var/homeport; else D=/var/lib/homeport; fi'
    run = f'"$PY" - record-intervention "$D" {shlex.quote(json.dumps(entry, sort_keys=True))}'
    lines = [
        "set -u",
        f"D={shlex.quote(state_dir.rstrip('/') or '/')}" if state_dir else default,
        "PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3",
        f'if [ "$(id -u)" = 0 ]; then exec {run}; fi',
        f"if sudo -n true 2>/dev/null; then exec sudo -n {run}; fi",
        f"exec {run}",
    ]
    return "\n".join(lines) + "\n"


def program() -> bytes:
    """What the host's python3 runs: the collection's status_report.py (writer and reader of the record)."""
    return (paths.content_root() / "plugins" / "module_utils" / "status_report.py").read_bytes()


def host_results(record: events.RunRecord) -> dict[str, dict[str, Any]]:
    """Each host that this run changed: its changed count and its result (failed when a task failed there or it
    became unreachable)."""
    failed = {f.host for f in record.failures}
    out = {}
    for host, counts in sorted(record.recap.items()):
        changed = int(counts.get("changed", 0))
        if changed > 0:
            bad = host in failed or counts.get("failed", 0) or counts.get("unreachable", 0)
            out[host] = {"changed": changed, "result": "failed" if bad else "ok"}
    return out


def _targets(inventory: Path) -> dict[str, tuple[Any, str, str | None]]:
    """name -> (quick.Host, connection, state_dir) of the inventory's homeport hosts."""
    from ansible.template import Templar  # noqa: PLC0415 - ansible is heavy: only when something changed

    from homeport import doctor, quick  # noqa: PLC0415

    out = {}
    for target, hv, loader in doctor.inventory_vars(inventory):
        templar = Templar(loader=loader, variables=hv)

        def get(name: str, hv=hv, templar=templar) -> Any:
            value = hv.get(name)
            if value in (None, ""):
                return None
            try:
                return templar.template(value)
            except Exception:  # an undefined variable in a template: the role's default
                return None

        host = quick.Host(target.name, target.address, target.user, target.port, target.key, target.common_args)
        state_dir = get("homeport_state_dir") or quick.default_state_dir(get("homeport_os_family"))
        out[target.name] = (host, str(get("ansible_connection") or "ssh"), str(state_dir) if state_dir else None)
    return out


def record_run(
    inventory: Path,
    record: events.RunRecord,
    verb: str,
    *,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    by: str | None = None,
) -> list[str]:
    """After a run of ``verb``: one write to each host it changed. Returns one line per host (recorded, or why
    not); never raises for a host (a record that cannot be written must not fail the run)."""
    if verb not in VERBS:
        raise ValueError(f"{verb!r} is not an intervention verb ({', '.join(VERBS)})")
    changed = host_results(record)
    if not changed:
        return []
    try:
        targets = _targets(inventory)
        source = program()
    except Exception as exc:  # the inventory loaded for the run; anything else here is a warning
        return [f"warning: manual intervention not recorded ({exc})"]
    from homeport import quick  # noqa: PLC0415

    lines = []
    for name, result in changed.items():
        if name not in targets:
            lines.append(f"warning: {name}: manual intervention not recorded (not a host of the group homeport)")
            continue
        host, connection, state_dir = targets[name]
        entry = {"verb": verb, "changed": result["changed"], "result": result["result"], "by": by or who()}
        script = remote_script(entry, state_dir)
        if connection in LOCAL_CONNECTIONS:
            argv = ["sh", "-c", script]
        elif connection in SSH_CONNECTIONS:
            quick.control_path_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
            argv = quick.ssh_argv(host, script)
        else:
            lines.append(f"warning: {name}: manual intervention not recorded (connection {connection})")
            continue
        try:
            r = run(argv, input=source, capture_output=True, timeout=TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            lines.append(f"warning: {name}: manual intervention not recorded ({exc})")
            continue
        if r.returncode != 0:
            why = r.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit {r.returncode}"
            lines.append(f"warning: {name}: manual intervention not recorded ({why})")
            continue
        lines.append(f"{name}: recorded as a manual intervention ({verb}, {result['changed']} changed)")
    return lines
