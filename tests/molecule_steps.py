#!/usr/bin/env python3
"""The time of each molecule step (create, prepare, converge, idempotence, side_effect, verify, destroy) of each
scenario, for tests/run-molecule.sh (issue 34).

    molecule test -s S 2>&1 | molecule_steps.py stamp LOGDIR/S.steps > LOGDIR/S.log
        passes molecule's output through unchanged, except that each of molecule's action lines
        ("S ➜ converge: Executing", "... Executed: Successful") gets the seconds since the start appended
        ("[t+83s]"); and writes "SECONDS SCENARIO ACTION EVENT" for each of them to S.steps
    molecule_steps.py table LOGDIR S1 S2 ...
        a table of the seconds of each scenario's steps (a step: from its "Executing" line to the next action line),
        the slowest steps of the whole run, and its slowest tasks: each playbook run of a scenario ends with its ten
        slowest tasks (ansible.posix.profile_tasks, summary only: .config/molecule/config.yml), read from LOGDIR/S.log
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
# molecule 25+: "INFO     default ➜ converge: Executing" (colours on) or "INFO     [default > converge] Executing"
ACTION = re.compile(
    r"(?:^|\s)(?:\[(?P<s1>[\w.-]+) > (?P<a1>\w+)\]|(?P<s2>[\w.-]+) ➜ (?P<a2>\w+):) (?P<event>\S.*?)\s*$"
)
# molecule's test sequence order (the table's columns)
ORDER = [
    "dependency",
    "cleanup",
    "destroy",
    "syntax",
    "create",
    "prepare",
    "converge",
    "idempotence",
    "side_effect",
    "verify",
]


def stamp(steps_path: str) -> int:
    start = time.monotonic()
    out = sys.stdout.buffer
    with open(steps_path, "w", encoding="utf-8") as steps:
        for raw in sys.stdin.buffer:
            m = ACTION.search(ANSI.sub(b"", raw).decode("utf-8", "replace"))
            if not m:
                out.write(raw)
                out.flush()
                continue
            elapsed = time.monotonic() - start
            scenario, action = m.group("s1") or m.group("s2"), m.group("a1") or m.group("a2")
            steps.write(f"{elapsed:.1f} {scenario} {action} {m.group('event')}\n")
            steps.flush()
            out.write(raw.rstrip(b"\r\n") + f"  [t+{elapsed:.0f}s]\n".encode())
            out.flush()
    return 0


# a line of profile_tasks' summary: "Task name ------------------------------ 1.14s" (molecule wraps it at its width)
TASK_TIME = re.compile(r"^(?P<name>\S.*?) -{3,}\s*(?P<seconds>\d+\.\d+)s$")
BOX = re.compile(r"^\s*│ ?")


def slow_tasks(log_path: Path, scenario: str) -> list[tuple[float, str, str, str]]:
    """(seconds, scenario, step, task) of each task in the profile_tasks summaries of one scenario's log."""
    found: list[tuple[float, str, str, str]] = []
    step, in_recap, line = "?", False, ""
    text = ANSI.sub(b"", log_path.read_bytes()).decode("utf-8", "replace")
    for raw in [*text.splitlines(), ""]:
        m = ACTION.search(raw)
        if m:
            step = m.group("a1") or m.group("a2")
        body = BOX.sub("", raw, count=1) if BOX.match(raw) else None
        if body is not None and body.startswith("  ") and line:  # molecule's continuation of a wrapped line
            line += " " + body.strip()
            continue
        if in_recap and (t := TASK_TIME.match(line)):
            found.append((float(t.group("seconds")), scenario, step, t.group("name")))
        if body is not None and body.startswith("TASKS RECAP"):
            in_recap = True
        elif body is None or body.startswith(("PLAY", "TASK ")):
            in_recap = False
        line = body.rstrip() if body is not None else ""
    return found


def durations(steps_path: Path) -> tuple[dict[str, float], float, list[str]]:
    """{action: seconds} of one scenario (an action that ran twice, like destroy: the sum), the end time, and the
    actions whose last line was not an "Executed: ..." (the one running when the scenario stopped, or failed)."""
    rows = []
    for line in steps_path.read_text(encoding="utf-8").splitlines():
        t, _, action, event = line.split(" ", 3)
        rows.append((float(t), action, event))
    times: dict[str, float] = {}
    unfinished = []
    end = rows[-1][0] if rows else 0.0
    for i, (t, action, event) in enumerate(rows):
        if event != "Executing":  # not "Executing Testinfra tests found in ..." (a line inside verify)
            continue
        # the step ends at its own "Executed: ..." line, else where the next step starts (or the log ends)
        stop = next(
            (r for r in rows[i + 1 :] if r[2] == "Executing" or (r[1] == action and r[2].startswith("Executed"))), None
        )
        times[action] = times.get(action, 0.0) + ((stop[0] if stop else end) - t)
        if stop is None or stop[2] == "Executing" or "Success" not in stop[2]:
            unfinished.append(action)
    return times, end, unfinished


def table(logdir: str, scenarios: list[str]) -> int:
    results = {}
    for s in scenarios:
        path = Path(logdir) / f"{s}.steps"
        if path.is_file():
            results[s] = durations(path)
    if not results:
        print("molecule steps: no step times recorded")
        return 0
    seen = {a for times, _, _ in results.values() for a in times}
    cols = [a for a in ORDER if a in seen] + sorted(seen - set(ORDER))
    width = max(len(s) for s in results) + 2
    print("==== molecule steps (seconds; destroy = the destroy before and after the test) ====")
    print(f"{'scenario':<{width}}" + "".join(f"{c[:11]:>12}" for c in cols) + f"{'all':>8}")
    steps = []
    for s, (times, _end, unfinished) in results.items():
        cells = ""
        for c in cols:
            v = times.get(c)
            mark = "!" if c in unfinished else ""
            cells += f"{'-' if v is None else f'{v:.0f}{mark}':>12}"
            if v is not None:
                steps.append((v, s, c))
        print(f"{s:<{width}}{cells}{sum(times.values()):>8.0f}")
    totals = {c: sum(t.get(c, 0.0) for t, _, _ in results.values()) for c in cols}
    print(f"{'all':<{width}}" + "".join(f"{totals[c]:>12.0f}" for c in cols) + f"{sum(totals.values()):>8.0f}")
    if any(u for _, _, u in results.values()):
        print("(! = the step did not finish: it failed, or the scenario stopped in it)")
    steps.sort(reverse=True)
    print("slowest steps: " + ", ".join(f"{s} {c} {v:.0f}s" for v, s, c in steps[:8]))
    tasks = sorted(
        (t for s in results if (Path(logdir) / f"{s}.log").is_file() for t in slow_tasks(Path(logdir) / f"{s}.log", s)),
        reverse=True,
    )
    if tasks:
        print(f"slowest tasks (of {len(tasks)} in the playbook runs' summaries):")
        for v, s, c, name in tasks[:15]:
            print(f"  {v:7.1f}s  {s} {c}: {name}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "stamp":
        return stamp(argv[1])
    if len(argv) >= 2 and argv[0] == "table":
        return table(argv[1], argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
