"""`homeport drift`: what differs between the hosts and the configuration, per host, role and task, with diffs.

Two ways to look (issue 29):

- ``homeport drift`` (the summary): ONE SSH call per host (the quick verbs' shared master, homeport.quick) runs the
  host-state check the converge installed (plugins/module_utils/host_state.py: each role recorded the files, packages,
  units, sysctls and containers it enforces) and prints each drifted item with what was recorded and what is found.
  Without root or passwordless sudo on the host it reads the summary the hourly timer stored instead. The report
  has the shape below (``"mode": "summary"``, one "task" per drifted item, its ``diff`` a ``prepared`` text
  ``-found: ... / +expected: ...``, and ``kind``, ``item``, ``what``, ``expected``, ``found`` beside it).
  :func:`state_script`, :func:`parse_state`, :func:`summarise_state`, :func:`check_hosts`.
- ``homeport drift --deep`` (and ``--fix``, and any ``--tags``): the drift playbook, as below.

The drift playbook (playbooks/drift.yml = the site playbook) runs in check+diff mode through the runner; every
task that would change something arrives as a :class:`homeport.events.Change`. :func:`summarise` groups them
and masks secrets; :func:`render` prints them (no colours when stdout is not a terminal, so cron and launchd
logs stay plain); :func:`exit_code` gives 0 (clean), 2 (drift found) or a failure code. ``--fix`` runs the same
playbook for real and reports what it changed.

Secrets never reach the output:

- a task with ``no_log`` arrives censored from Ansible: its diff shows as ``(hidden: this task handles a secret)``;
- in every diff (text and structured), the value of any variable/key whose name contains ``password``,
  ``passwd``, ``secret``, ``token`` or ``key`` is replaced with ``********`` (``DB_PASSWORD=...``,
  ``api_token: ...``, ``"secret_key": "..."``, ``--token=...``), and so is the password of a URL
  (``postgres://user:********@db``);
- values the caller knows to be secret (``secret_values``) are replaced wherever they appear.

JSON (``homeport drift --json``), one document on stdout::

    {
      "drift": true,                     # something would change (check mode) / changed (--fix)
      "fix": false,                      # true with --fix (the changes were applied)
      "exit_code": 2,                    # 0 clean, 2 drift, 1 failure (3 invalid configuration, 4 unreachable)
      "status": "successful",            # ansible-runner's status
      "changed_tasks": 2,
      "hosts": {
        "mini": {
          "changed": 2,                  # tasks that would change (or changed) on this host
          "recap": {"ok": 30, "changed": 2, "failed": 0, "unreachable": 0, "skipped": 5, ...},
          "roles": {
            "hardening": [
              {"task": "Write the sshd configuration", "action": "homeport.homeport.template",
               "diff": [{"before_header": "/etc/ssh/sshd_config", "after_header": "...",
                         "before": "...", "after": "...", "unified": "--- ...\\n+++ ...\\n@@ ..."}]}
            ]
          }
        }
      },
      "failures": [{"host": "...", "role": "...", "task": "...", "message": "...", "unreachable": false}],
      "errors": []
    }

``diff`` is a list of entries (Ansible's diff: ``before``/``after`` text or mappings, the headers, or
``prepared`` for modules that prepare their own text), the string ``(hidden: this task handles a secret)`` for
no_log tasks, or ``null`` when the module reports no diff (e.g. a service that would be started). Tasks outside
any role are listed under the role ``""`` (shown as ``(play)``).
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console
from rich.text import Text

from homeport.events import EXIT_DRIFT, EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, HIDDEN, RunRecord
from homeport.safe_text import clean_tree

MASK = "********"
SECRET_WORDS = ("password", "passwd", "secret", "token", "key")
_SECRET_NAME = re.compile("|".join(SECRET_WORDS), re.IGNORECASE)
# NAME = value / NAME: value / "NAME": "value" / --name=value, in any text a diff holds
_ASSIGNMENT = re.compile(
    r"""(?P<lead>(?<![A-Za-z0-9_.-])["']?[A-Za-z0-9_.-]*(?:password|passwd|secret|token|key)[A-Za-z0-9_.-]*["']?"""
    r"""[ \t]*[:=][ \t]*)(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s,;}\]]+)""",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<lead>\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)(?P<value>[^\s@/]+)(?=@)", re.IGNORECASE)
_MIN_SECRET_LEN = 4  # shorter "secrets" would mask ordinary text


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def mask_text(text: str, secret_values: tuple[str, ...] = ()) -> str:
    """Mask secret values inside a text (a file's content, a command line)."""

    def assignment(m: re.Match) -> str:
        value = m.group("value")
        if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
            return f"{m.group('lead')}{value[0]}{MASK}{value[0]}"
        return m.group("lead") + MASK

    out = _ASSIGNMENT.sub(assignment, text)
    out = _URL_PASSWORD.sub(lambda m: m.group("lead") + MASK, out)
    for value in sorted((v for v in secret_values if v and len(v) >= _MIN_SECRET_LEN), key=len, reverse=True):
        out = out.replace(value, MASK)
    return out


def mask(value: Any, secret_values: tuple[str, ...] = ()) -> Any:
    """Mask secrets in a diff value: mappings by key name (recursively), texts by :func:`mask_text`."""
    if isinstance(value, dict):
        return {
            k: (MASK if is_secret_name(str(k)) and v not in (None, "", [], {}) else mask(v, secret_values))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask(v, secret_values) for v in value]
    if isinstance(value, str):
        return mask_text(value, secret_values)
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"


def unified(entry: dict[str, Any]) -> str:
    """A unified diff for one diff entry (before/after texts, or mappings shown as JSON)."""
    if "prepared" in entry:
        return str(entry["prepared"]).rstrip("\n") + "\n"
    if "before" not in entry and "after" not in entry:
        return ""
    before = _as_text(entry.get("before", ""))
    after = _as_text(entry.get("after", ""))
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=str(entry.get("before_header") or "before"),
        tofile=str(entry.get("after_header") or "after"),
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _all_text(entry: dict[str, Any]) -> bool:
    return all(isinstance(entry.get(k, ""), str) for k in ("before", "after"))


def _masked_diff(diff: Any, secret_values: tuple[str, ...]) -> Any:
    if diff is None or diff == HIDDEN:
        return diff
    if isinstance(diff, str):
        return mask_text(diff, secret_values)
    entries = diff if isinstance(diff, list) else [diff]
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            out.append(mask(entry, secret_values))
            continue
        masked = mask(entry, secret_values)
        # diff the real texts, then mask line by line: a changed secret still shows as -NAME=*** / +NAME=***
        text = mask_text(unified(entry), secret_values) if _all_text(entry) else unified(masked)
        if text:
            masked["unified"] = text
        out.append(masked)
    return out


def exit_code(record: RunRecord, fix: bool = False) -> int:
    """0 clean (or fixed), 2 drift found (check mode), else the failure code of the run (1, 3 or 4)."""
    code = record.exit_code(drift=not fix)
    if code in (EXIT_OK, EXIT_DRIFT):
        return code
    return code or EXIT_FAILED


def summarise(record: RunRecord, fix: bool = False, secret_values: tuple[str, ...] = ()) -> dict[str, Any]:
    """The drift report of one run (the JSON document described in the module docstring)."""
    hosts: dict[str, dict[str, Any]] = {}
    for host in record.hosts:
        hosts[host] = {"changed": 0, "recap": dict(record.recap[host]), "roles": {}}
    for change in record.changes:
        entry = hosts.setdefault(change.host, {"changed": 0, "recap": {}, "roles": {}})
        entry["changed"] += 1
        entry["roles"].setdefault(change.role or "", []).append(
            {
                "task": mask_text(change.task, secret_values),
                "action": change.action,
                "diff": _masked_diff(change.diff, secret_values),
            }
        )
    return {
        "drift": bool(record.changes),
        "fix": fix,
        "exit_code": exit_code(record, fix),
        "status": record.status,
        "changed_tasks": len(record.changes),
        "hosts": hosts,
        "failures": [
            {
                "host": f.host,
                "role": f.role,
                "task": f.task,
                "message": mask_text(f.message, secret_values),
                "unreachable": f.unreachable,
            }
            for f in record.failures
        ],
        "errors": [mask_text(e, secret_values) for e in record.errors],
    }


# ---- the summary: the host-state check in one SSH call per host (issue 29) ----------------------------------

HOST_PROGRAM = "/usr/local/libexec/homeport/host_state.py"  # where homeport_host_state installs it
NO_PROGRAM_RC = 96  # the remote script's "no host-state check installed"
SSH_FAILED_RC = 255


def state_script(state_dir: str | None = None) -> str:
    """The sh script ``homeport drift`` runs on a host: the check now as root (directly, or through ``sudo -n``) and
    stored for the monitoring as the timer does, else the timer's last stored summary. JSON on stdout; the exit code
    is the check's (0 clean, 2 drift, 1 failed), 96 when the host has no check installed."""
    default = 'if [ "$(uname -s)" = Darwin ]; then D=/usr/local/var/homeport/state; else D=/var/lib/homeport/state; fi'
    lines = [
        "set -u",
        f"P={shlex.quote(HOST_PROGRAM)}",
        f"D={shlex.quote(state_dir.rstrip('/') + '/state')}" if state_dir else default,
        "PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3",
        f'[ -f "$P" ] || {{ echo "homeport: no host-state check installed at $P" >&2; exit {NO_PROGRAM_RC}; }}',
        'run() { exec "$@" "$P" check --state-dir "$D" --write "$D/summary.json"; }',
        'if [ "$(id -u)" = 0 ]; then run "$PY"; fi',
        'if sudo -n true 2>/dev/null; then run sudo -n "$PY"; fi',
        'exec "$PY" "$P" summary --state-dir "$D"',
    ]
    return "\n".join(lines) + "\n"


def parse_state(host: str, rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    """One host's answer: the check's summary document, or ``{"failure": ..., "unreachable": bool}``."""
    if rc == SSH_FAILED_RC:
        return {"failure": f"SSH failed: {stderr.strip()[-400:]}", "unreachable": True}
    if rc == NO_PROGRAM_RC:
        return {
            "failure": "no host-state record on this host: run `homeport bootstrap` once with this version "
            "(or use `homeport drift --deep`)",
            "unreachable": False,
        }
    try:
        doc = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("drifted"), list):
        return {"failure": f"the host-state check failed (exit {rc}): {stderr.strip()[-400:]}", "unreachable": False}
    return doc


def _state_task(item: dict[str, Any], secret_values: tuple[str, ...]) -> dict[str, Any]:
    kind, name, what = (str(item.get(k, "")) for k in ("kind", "item", "what"))
    expected = mask_text(str(item.get("expected")), secret_values)
    found = mask_text(str(item.get("found")), secret_values)
    text = f"-found:    {found}\n+expected: {expected}\n"
    return {
        "task": mask_text(f"{kind} {name}: {what}", secret_values),
        "action": f"host_state/{kind}",
        "diff": [{"prepared": text, "unified": text}],
        "kind": kind,
        "item": mask_text(name, secret_values),
        "what": what,
        "expected": expected,
        "found": found,
    }


def summarise_state(docs: dict[str, dict[str, Any]], secret_values: tuple[str, ...] = ()) -> dict[str, Any]:
    """The drift report from each host's host-state summary (same shape as :func:`summarise`, ``mode`` summary)."""
    hosts: dict[str, dict[str, Any]] = {}
    failures, errors = [], []
    for host, doc in sorted(docs.items()):
        if "failure" in doc:
            failures.append(
                {
                    "host": host,
                    "role": "",
                    "task": "host-state check",
                    "message": mask_text(doc["failure"], secret_values),
                    "unreachable": bool(doc.get("unreachable")),
                }
            )
            continue
        roles: dict[str, list[dict[str, Any]]] = {}
        for item in doc["drifted"]:
            if isinstance(item, dict):
                roles.setdefault(str(item.get("role", "")), []).append(_state_task(item, secret_values))
        hosts[host] = {
            "changed": sum(len(t) for t in roles.values()),
            "recap": {},
            "roles": roles,
            "checked_at": doc.get("checked_at"),
            "stored": bool(doc.get("stored")),
            "items": doc.get("items", 0),
        }
        errors += [f"{host}: {mask_text(str(e), secret_values)}" for e in doc.get("errors") or []]
    changed = sum(h["changed"] for h in hosts.values())
    if any(f["unreachable"] for f in failures):
        code = EXIT_UNREACHABLE
    elif failures or errors:
        code = EXIT_FAILED
    else:
        code = EXIT_DRIFT if changed else EXIT_OK
    return {
        "drift": bool(changed),
        "mode": "summary",
        "fix": False,
        "exit_code": code,
        "status": "successful" if not failures else "failed",
        "changed_tasks": changed,
        "hosts": hosts,
        "failures": failures,
        "errors": errors,
    }


def check_host(host: Any) -> dict[str, Any]:
    """One SSH call to one host (homeport.quick's settings and shared master): its host-state summary."""
    from homeport import quick  # noqa: PLC0415 - the quick verbs' SSH settings, loaded only by the summary

    quick.control_path_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = quick.ssh_argv(host, state_script(host.state_dir or quick.default_state_dir(host.os_family)))
    r = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    return parse_state(host.name, r.returncode, r.stdout, r.stderr)


def check_hosts(hosts: list[Any]) -> dict[str, dict[str, Any]]:
    """Every host at once (one SSH call each, in parallel)."""
    if len(hosts) == 1:
        return {hosts[0].name: check_host(hosts[0])}
    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        return dict(zip([h.name for h in hosts], pool.map(check_host, hosts), strict=True))


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True, default=str)


def _diff_text(line: str) -> Text:
    if line.startswith(("+++", "---")):
        return Text(line, style="bold")
    if line.startswith("+"):
        return Text(line, style="green")
    if line.startswith("-"):
        return Text(line, style="red")
    if line.startswith("@@"):
        return Text(line, style="cyan")
    return Text(line)


def render(console: Console, summary: dict[str, Any], show_diffs: bool = True) -> None:
    """Human report: per host, per role, each task that would change (or changed, with --fix), with its diff."""
    verb = "changed" if summary["fix"] else "would change"
    state = summary.get("mode") == "summary"
    summary = clean_tree(summary)  # diffs hold the host's files, messages its output: shown escaped
    for host, data in sorted(summary["hosts"].items()):
        when = ""
        if state:
            how = "the timer's check of" if data.get("stored") else "checked"
            when = f" ({how} {data.get('checked_at') or '?'}, {data.get('items', 0)} recorded items)"
        if not data["changed"]:
            console.print(Text.assemble((host, "bold"), ": ", ("no drift", "green"), when), highlight=False)
            continue
        what = (
            f"{data['changed']} item(s) differ from the last converge" if state else f"{data['changed']} task(s) {verb}"
        )
        console.print(Text.assemble((host, "bold"), ": ", (what, "yellow"), when), highlight=False)
        for role, tasks in sorted(data["roles"].items()):
            console.print(Text(f"  {role or '(play)'}", style="bold"), highlight=False)
            for task in tasks:
                console.print(Text(f"    - {task['task']}  [{task['action']}]"), highlight=False)
                if not show_diffs:
                    continue
                diff = task["diff"]
                if diff == HIDDEN:
                    console.print(Text(f"        {HIDDEN}", style="dim"), highlight=False)
                    continue
                for entry in diff or []:
                    text = entry.get("unified", "") if isinstance(entry, dict) else str(entry)
                    for line in text.rstrip("\n").splitlines():
                        console.print(Text("        ") + _diff_text(line), highlight=False, soft_wrap=True)
    for f in summary["failures"]:
        what = "unreachable" if f["unreachable"] else "failed"
        label = f"{f['role']} : {f['task']}" if f["role"] else f["task"]
        console.print(Text.assemble((f"{f['host']}: ", "bold red"), (label, "bold"), f" {what}: {f['message']}"))
    for line in summary["errors"]:
        console.print(Text(line, style="red"), highlight=False)
    code = summary["exit_code"]
    if state:
        _render_state_end(console, summary)
        return
    if code == EXIT_DRIFT:
        console.print(
            f"Drift: {summary['changed_tasks']} task(s) would change something. `homeport drift --fix` applies them.",
            style="bold yellow",
        )
    elif code == EXIT_OK and summary["fix"]:
        console.print(f"Fixed: {summary['changed_tasks']} task(s) changed something.", style="bold green")
    elif code == EXIT_OK:
        console.print("No drift: the hosts match the configuration.", style="bold green")
    else:
        console.print(
            "The drift check failed (see above); nothing is known about the remaining tasks.", style="bold red"
        )


def _render_state_end(console: Console, summary: dict[str, Any]) -> None:
    code = summary["exit_code"]
    if code == EXIT_DRIFT:
        console.print(
            f"Drift: {summary['changed_tasks']} item(s) differ from what the last converge recorded. "
            "`homeport drift --fix` repairs them; `homeport drift --deep` shows each task's diff.",
            style="bold yellow",
        )
    elif code == EXIT_OK:
        console.print("No drift: the hosts hold what the last converge recorded.", style="bold green")
    else:
        console.print(
            "The host-state check did not work everywhere (see above); `homeport drift --deep` runs the full check.",
            style="bold red",
        )
