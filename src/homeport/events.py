"""The ONE handler of ansible-runner events: live progress, the final recap, failures in plain words, --json.

Every changed task is kept as a structured record (host, role, task, diff) in ``RunRecord.changes``; the drift
report builds on it. Results of tasks with ``no_log`` arrive censored from Ansible and stay masked here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from homeport import contract
from homeport.safe_text import clean

# Exit codes of every homeport verb (documented in `homeport --help` and docs/cli.md).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DRIFT = 2
EXIT_INVALID = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention

HIDDEN = "(hidden: this task handles a secret)"
# A failed check (one of these actions) of the preflight (contract.VALIDATION_ROLES) or of a role's read-only
# validate*.yml, before any task of the run changed anything, means: the configuration was refused and nothing was
# changed (exit 3). The preflight runs every role's validate.yml first (roles/preflight/tasks/roles.yml).
VALIDATION_FILES = re.compile(r"/roles/[^/]+/tasks/validate[^/]*\.yml:\d+$")
# The stack role's checks of the staged release (after the lock and a temporary staging directory, both scratch): a
# refusal there changed nothing either, but not "before any role ran" (issue 31).
STAGED_FILES = re.compile(r"/roles/stack/tasks/validate_release\.yml:\d+$")
VALIDATION_ACTIONS = {
    "validate_argument_spec",
    "ansible.builtin.validate_argument_spec",
    "assert",
    "ansible.builtin.assert",
    "fail",
    "ansible.builtin.fail",
    # a role's checks in one task (plugins/action/rules.py, issues 29 and 34)
    "homeport.homeport.rules",
}
# Actions that run on the controller only (no exchange with the host): their duration says nothing of the link
CONTROLLER_ACTIONS = {
    "add_host", "assert", "debug", "fail", "group_by", "import_playbook", "import_role", "import_tasks", "include",
    "include_role", "include_tasks", "include_vars", "meta", "pause", "set_fact", "set_stats",
    "validate_argument_spec", "homeport.homeport.rules",
}  # fmt: skip
_PREFIX = re.compile(r"^(?:Task failed: |Action failed: )+")
# issue 28: the stack role's tasks during which the host carries out the release by itself (roles/stack/tasks:
# service.yml, lock.yml, attach.yml): a link lost there stops nothing on the host
HOST_OWNED_TASKS = re.compile(
    r"^(Build, start and wait for healthy services that stay up \(handed to the host\)|Follow the release on the host"
    r"|Attach to (a|the) release the host is (still )?carrying out)$"
)
HOST_CARRIES_ON = (
    "the connection to {host} was lost while the host was carrying out the release. Nothing is lost: the host "
    "carries on by itself - it finishes the release, or restores the last good one when the release fails its "
    "health gate (within stack_wait_timeout), records the outcome and releases the deploy lock. Once the host can "
    "be reached again, see the outcome with `homeport deploy --attach` (follows the release to its end) or "
    "`homeport status`."
)
LINK_LOST = (
    "the connection to {host} was lost during this task (the link dropped); the run stopped here. Run the command "
    "again once the host can be reached (`homeport doctor` checks the connection)."
)


def lost_link(role: str, task: str, raw: str) -> bool:
    """A host-owned task that failed because Mitogen lost the link under it: besides "unreachable", a dropped link
    surfaces as a failed result carrying Mitogen's own traceback (mitogen/service.py while it pushed the module)."""
    return (
        role == "stack"
        and bool(HOST_OWNED_TASKS.match(task))
        and ("/mitogen/" in raw or "Mitogen was disconnected" in raw or "mitogen.core." in raw)
    )


def unreachable_message(host: str, role: str, task: str, raw: str) -> str:
    """An unreachable task in plain words: the host's own release goes on (HOST_OWNED_TASKS), and Mitogen's raw
    "Mitogen was disconnected ..." text is never shown as it is."""
    if role == "stack" and HOST_OWNED_TASKS.match(task):
        return HOST_CARRIES_ON.format(host=host or "the host")
    if "Mitogen was disconnected" in raw or "disconnected from the remote environment" in raw:
        return LINK_LOST.format(host=host or "the host")
    return raw


@dataclass
class Change:
    host: str
    play: str
    role: str
    task: str
    action: str
    diff: Any = None  # Ansible's diff (list of {before, after, before_header, ...}) or HIDDEN


@dataclass
class Failure:
    host: str
    play: str
    role: str
    task: str
    action: str
    message: str
    unreachable: bool = False
    validation: bool = False
    staged: bool = False  # a validation failure of the staged release (STAGED_FILES), not of the preflight


@dataclass
class RunRecord:
    status: str = "unknown"
    rc: int | None = None
    check: bool = False
    plays: list[str] = field(default_factory=list)
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # set_stats data (e.g. homeport_status)
    errors: list[str] = field(default_factory=list)  # ansible's own errors (syntax, inventory) outside tasks
    interrupted: bool = False  # stopped by Ctrl-C / SIGTERM (runner.interruptible)
    # host -> seconds of the run's fastest task that went to the host (an upper bound of the round trip over the
    # run's own SSH connection; `homeport status` shows it when the system cannot tell the connection's RTT)
    host_calls: dict[str, float] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return sorted(self.recap)

    def exit_code(self, drift: bool = False) -> int:
        """3 when the preflight refused the configuration, 4 when a host was unreachable, 1 on any other
        failure, 2 in drift mode when something would change, else 0; 130 when the run was interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if any(f.validation for f in self.failures):
            return EXIT_INVALID
        if any(f.unreachable for f in self.failures):
            return EXIT_UNREACHABLE
        if self.failures or self.errors or self.status != "successful":
            return EXIT_FAILED
        if drift and self.changes:
            return EXIT_DRIFT
        return EXIT_OK

    def note_host_call(self, host: str, action: str, seconds: Any, res: dict) -> None:
        """Keep the fastest task of ``host`` that exchanged something with it (not a controller-only action, not
        delegated elsewhere)."""
        short = action.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")
        if not host or short in CONTROLLER_ACTIONS or "_ansible_delegated_vars" in res:
            return
        try:
            value = float(seconds)
        except (TypeError, ValueError):
            return
        if value > 0 and value < self.host_calls.get(host, float("inf")):
            self.host_calls[host] = value

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "exit_code": self.exit_code(),
            "check_mode": self.check,
            "hosts": self.hosts,
            "plays": self.plays,
            "recap": self.recap,
            "failures": [asdict(f) for f in self.failures],
            "changes": [asdict(c) for c in self.changes],
            "stats": self.stats,
            "errors": self.errors,
        }


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "\n".join(_text(v) for v in value)
    return str(value).strip()


def failure_message(res: dict[str, Any]) -> str:
    """A failed result in plain words: the module's msg, stderr (or stdout), failed loop items."""
    if not isinstance(res, dict):
        return _text(res)
    if "censored" in res:
        return HIDDEN
    parts: list[str] = []
    if res.get("msg"):
        parts.append(_PREFIX.sub("", _text(res["msg"])))
    for key in ("stderr", "module_stderr"):
        if res.get(key) and _text(res[key]) not in parts:
            parts.append(_text(res[key]))
    if not parts and res.get("stdout"):
        parts.append(_text(res["stdout"]))
    for item in res.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            label = item.get("_ansible_item_label", item.get("item", ""))
            parts.append(f"item {_text(label)}: {failure_message(item)}")
    if "rc" in res and res.get("rc") not in (0, None) and not parts:
        parts.append(f"command exited with status {res['rc']}")
    return "\n".join(p for p in parts if p) or "the task failed without a message"


def event_text(stdout: str | None) -> Text:
    """An event's output as rich Text. ansible-runner reads ansible-playbook through a pty, so the lines of a
    multi-line result (any -v) end in CR LF; rich's decoder treats a CR as a terminal overwrite and keeps only the
    text after the last one of each line, so every line but the last would come out empty: CR LF -> LF first."""
    return Text.from_ansi((stdout or "").replace("\r\n", "\n"))


# the status word the default callback starts a task's result line with ("changed: [host]", "ok: [host] => ...")
_RESULT_LINE = re.compile(r"^(changed|ok): \[", re.MULTILINE)


def reported_changed(stdout: str) -> bool | None:
    """Whether the callback's own result line says ``changed`` (None when the text has no result line): the only
    sign of a change a no_log result carries (it arrives censored, without its ``changed`` flag)."""
    found = _RESULT_LINE.search(stdout)
    return None if found is None else found.group(1) == "changed"


def _diffs(res: dict[str, Any]) -> Any:
    if "censored" in res:
        return HIDDEN
    if res.get("results"):
        out = []
        for item in res["results"]:
            if isinstance(item, dict) and item.get("changed"):
                d = _diffs(item)
                if d:
                    out.extend(d if isinstance(d, list) else [d])
        return out or None
    diff = res.get("diff")
    if not diff:
        return None
    return diff if isinstance(diff, list) else [diff]


class EventHandler:
    """Callable passed to ansible_runner.run(event_handler=...)."""

    def __init__(self, console: Console, json_mode: bool = False, verbosity: int = 0, check: bool = False):
        self.console = console
        self.json_mode = json_mode
        self.verbosity = verbosity
        self.record = RunRecord(check=check)
        self.counts: Counter[str] = Counter()
        self.play = ""
        self.task = ""
        self.role = ""
        self.host = ""
        self._live: Live | None = None
        self._stdout = ""
        self._changed_items: set[tuple[str, str]] = set()  # (host, task) of no_log loops with a changed item

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> EventHandler:
        if not self.json_mode and self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, transient=True, refresh_per_second=8)
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._live:
            self._live.stop()
            self._live = None

    # -- events ------------------------------------------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if self.verbosity and not self.json_mode and event.get("stdout"):
            self._print(event_text(event["stdout"]))
        self._stdout = event_text(event.get("stdout")).plain.strip()
        handler = getattr(self, "_on_" + kind, None)
        if handler:
            handler(data)
        elif kind in ("verbose", "error") and event.get("stdout"):
            line = event_text(event["stdout"]).plain.strip()
            # Mitogen's raw disconnect text and its internal tracebacks ("[mux ...] mitogen.service: ..."): the
            # unreachable task's failure says it in plain words (issue 28)
            if line.startswith(("ERROR", "[ERROR]")) and not ("Mitogen was disconnected" in line or "mitogen." in line):
                self.record.errors.append(line)
        if self._live:
            self._live.update(self._render())
        return True

    def _on_playbook_on_play_start(self, data: dict) -> None:
        self.play = data.get("play", "")
        self.record.plays.append(self.play)
        self._plain(Text(f"PLAY {self.play}", style="bold"))

    def _on_playbook_on_task_start(self, data: dict) -> None:
        self.task = data.get("task", "")
        self.role = data.get("role", "") or ""
        self.host = ""

    def _on_runner_on_start(self, data: dict) -> None:
        self.host = data.get("host", "")

    def _on_runner_item_on_ok(self, data: dict) -> None:
        # a no_log loop's final result arrives censored and its callback prints no line for it: its items' lines
        # are the only sign of a change
        if "censored" in (data.get("res") or {}) and reported_changed(self._stdout):
            self._changed_items.add((data.get("host", ""), data.get("task_uuid") or data.get("task", self.task)))

    def _on_runner_on_ok(self, data: dict) -> None:
        res = data.get("res") or {}
        self.record.note_host_call(data.get("host", ""), data.get("task_action", ""), data.get("duration"), res)
        if "censored" in res:
            # a no_log result arrives censored, without its `changed` flag: the callback's own line still says it
            # (the first line: with -v the censored result follows, and it holds its own "changed: false")
            key = (data.get("host", ""), data.get("task_uuid") or data.get("task", self.task))
            said = reported_changed(self._stdout)
            changed = said if said is not None else key in self._changed_items
            self._changed_items.discard(key)
        else:
            changed = bool(res.get("changed"))
        if changed:
            self.counts["changed"] += 1
            change = Change(
                host=data.get("host", ""),
                play=data.get("play", self.play),
                role=data.get("role", "") or "",
                task=data.get("task", self.task),
                action=data.get("task_action", ""),
                diff=_diffs(res),
            )
            self.record.changes.append(change)
            verb = "would change" if self.record.check else "changed"
            self._plain(Text(f"  {verb}: [{change.host}] {self._label(change.role, change.task)}", style="yellow"))
        else:
            self.counts["ok"] += 1

    def _on_runner_on_failed(self, data: dict) -> None:
        if data.get("ignore_errors"):
            self.counts["ok"] += 1
            return
        self.counts["failed"] += 1
        self._failure(data, unreachable=False)

    def _on_runner_on_unreachable(self, data: dict) -> None:
        self.counts["unreachable"] += 1
        self._failure(data, unreachable=True)

    def _on_runner_on_skipped(self, data: dict) -> None:
        self.counts["skipped"] += 1

    def _on_playbook_on_stats(self, data: dict) -> None:
        keys = {
            "ok": "ok",
            "changed": "changed",
            "failures": "failed",
            "dark": "unreachable",
            "skipped": "skipped",
            "rescued": "rescued",
            "ignored": "ignored",
        }
        hosts: set[str] = set()
        for key in keys:
            hosts.update((data.get(key) or {}).keys())
        self.record.recap = {h: {name: int((data.get(k) or {}).get(h, 0)) for k, name in keys.items()} for h in hosts}
        self.record.stats = data.get("artifact_data") or {}

    def _failure(self, data: dict, unreachable: bool) -> None:
        role = data.get("role", "") or ""
        host = data.get("host", "")
        if any(
            f.host == host and f.message == HOST_CARRIES_ON.format(host=host or "the host")
            for f in self.record.failures
        ):
            return  # the link is gone and the host carries on: what fails after that says nothing new
        unreachable = unreachable or lost_link(
            role, data.get("task", self.task), failure_message(data.get("res") or {})
        )
        action = data.get("task_action", "")
        failure = Failure(
            host=data.get("host", ""),
            play=data.get("play", self.play),
            role=role,
            task=data.get("task", self.task),
            action=action,
            message=failure_message(data.get("res") or {}),
            unreachable=unreachable,
            validation=(
                not unreachable
                and action in VALIDATION_ACTIONS
                and (role in contract.VALIDATION_ROLES or bool(VALIDATION_FILES.search(data.get("task_path") or "")))
                and not self.record.changes
            ),
        )
        if unreachable:
            failure.message = unreachable_message(failure.host, role, failure.task, failure.message)
        failure.staged = failure.validation and bool(STAGED_FILES.search(data.get("task_path") or ""))
        self.record.failures.append(failure)
        word = "unreachable" if unreachable else "failed"
        self._plain(Text(f"  {word}: [{failure.host}] {self._label(role, failure.task)}", style="red"))

    # -- output ------------------------------------------------------------------------------------
    @staticmethod
    def _label(role: str, task: str) -> str:
        return f"{role} : {task}" if role else task

    def _print(self, renderable) -> None:
        if self._live:
            self._live.console.print(renderable)
        else:
            self.console.print(renderable)

    def _plain(self, text: Text) -> None:
        """Line-by-line progress for logs (no terminal); the live display covers terminals."""
        if not self.json_mode and not self._live and not self.verbosity:
            self.console.print(text, highlight=False)

    def _render(self) -> Group:
        counts = Text.assemble(
            ("ok ", "bold"),
            (str(self.counts["ok"]), "green"),
            ("  changed ", "bold"),
            (str(self.counts["changed"]), "yellow"),
            ("  failed ", "bold"),
            (str(self.counts["failed"]), "red"),
            ("  skipped ", "bold"),
            (str(self.counts["skipped"]), "cyan"),
            ("  unreachable ", "bold"),
            (str(self.counts["unreachable"]), "magenta"),
        )
        host = f" [{self.host}]" if self.host else ""
        return Group(
            Text(f"play  {self.play}", style="bold"),
            Text(f"task  {self._label(self.role, self.task)}{host}"),
            counts,
        )


def render_result(console: Console, record: RunRecord) -> None:
    """The end of every run: recap table per host, then each failure in plain words (`homeport drift` has its own
    report: homeport.drift)."""
    if record.recap:
        table = Table(title="Recap", title_justify="left")
        table.add_column("host")
        for col, style in (
            ("ok", "green"),
            ("changed", "yellow"),
            ("failed", "red"),
            ("unreachable", "magenta"),
            ("skipped", "cyan"),
            ("rescued", ""),
            ("ignored", ""),
        ):
            table.add_column(col, justify="right", style=style)
        for host in record.hosts:
            r = record.recap[host]
            table.add_row(
                host,
                *(str(r[c]) for c in ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")),
            )
        console.print(table)
    # the messages quote the host (a failed deploy's container log lines, stderr): shown escaped (homeport.safe_text)
    for f in record.failures:
        what = "could not be reached" if f.unreachable else "failed"
        console.print(
            Text.assemble(
                (f"{clean(f.host)}: ", "bold red"),
                (clean(EventHandler._label(f.role, f.task)), "bold"),
                f" {what}:\n",
                (clean(f.message), ""),
            ),
            highlight=False,
        )
    for line in record.errors:
        console.print(Text(clean(line), style="red"), highlight=False)
    refusals = [f for f in record.failures if f.validation]
    if refusals and all(f.staged for f in refusals):
        console.print(
            "Nothing was changed: the release was refused after it was staged in a temporary directory; the live "
            "project, its containers and the current release were not touched.",
            style="bold",
        )
    elif refusals:
        console.print("Nothing was changed: the configuration was refused before any role ran.", style="bold")


def print_json(record: RunRecord) -> None:
    print(json.dumps(record.as_dict(), indent=2, sort_keys=True, default=str))
