"""`homeport drift -v`: verbosity must not change what counts as drift (issue 27, finding 6).

Real runs through cli.execute (ansible-runner, homeport's environment with its YAML result format, the event handler,
the drift report): a playbook with a plain file, a no_log file and a no_log loop. Converged, the check is clean at
every verbosity; with one no_log file and one no_log loop item drifted, every verbosity reports exactly those two.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import typer
import yaml
from conftest import write_local_inventory
from rich.console import Console

from homeport import cli, events

PLAY = [
    {
        "name": "Secret files",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Write the plain file",
                "ansible.builtin.copy": {"dest": "{{ work_dir }}/plain.conf", "content": "a = 1\n", "mode": "0644"},
            },
            {
                "name": "Write the secret file",
                "ansible.builtin.copy": {"dest": "{{ work_dir }}/secret", "content": "s3cr3t-value\n", "mode": "0600"},
                "no_log": True,
            },
            {
                "name": "Write the secret files of a loop",
                "ansible.builtin.copy": {
                    "dest": "{{ work_dir }}/{{ item }}",
                    "content": "k-{{ item }}\n",
                    "mode": "0600",
                },
                "loop": ["one", "two"],
                "no_log": True,
            },
        ],
    }
]


def _run(playbook: Path, inventory: Path, *, check: bool, verbose: int) -> tuple[int, dict | None]:
    buf = io.StringIO()
    console = Console(file=buf, width=300, force_terminal=False)
    code = 0
    saved = cli.console
    cli.console = console
    try:
        if check:
            cli.execute(str(playbook), inventory, False, check=True, diff=True, verbose=verbose, as_json=False,
                        report=cli.drift_report(fix=False))  # fmt: skip
        else:
            cli.execute(str(playbook), inventory, False, verbose=verbose)
    except typer.Exit as exc:
        code = exc.exit_code
    finally:
        cli.console = saved
    return code, {"text": buf.getvalue()}


@pytest.fixture
def converged(project: Path) -> tuple[Path, Path, Path]:
    work = project / "work"
    work.mkdir()
    playbook = project / "secret-files.yml"
    playbook.write_text(yaml.safe_dump(PLAY, sort_keys=False), encoding="utf-8")
    inventory = write_local_inventory(project, {"work_dir": str(work)})
    code, _ = _run(playbook, inventory, check=False, verbose=0)
    assert code == events.EXIT_OK
    return playbook, inventory, work


def _drift_json(playbook: Path, inventory: Path, verbose: int, capsys) -> tuple[int, dict, str]:
    code = 0
    try:
        cli.execute(str(playbook), inventory, False, check=True, diff=True, verbose=verbose, as_json=True,
                    report=cli.drift_report(fix=False))  # fmt: skip
    except typer.Exit as exc:
        code = exc.exit_code
    out = capsys.readouterr().out
    return code, json.loads(out[out.index("{\n") :]), out


def test_verbosity_changes_nothing_in_the_drift_report(converged, capsys):
    """One converge, then the check at -v levels 0-2 (clean), then the same with one no_log file and one no_log loop
    item drifted on the host (exactly those two tasks, hidden). A single test: each real run costs seconds."""
    playbook, inventory, work = converged
    for verbose in (0, 1, 2):
        code, out = _run(playbook, inventory, check=True, verbose=verbose)
        assert code == events.EXIT_OK, (verbose, out["text"][-3000:])
        assert "No drift" in out["text"]

    (work / "secret").write_text("edited on the host\n")
    (work / "two").write_text("edited too\n")
    for verbose in (0, 1):
        code, doc, out = _drift_json(playbook, inventory, verbose, capsys)
        assert code == events.EXIT_DRIFT, (verbose, doc)
        tasks = {t["task"]: t for t in doc["hosts"]["local"]["roles"][""]}
        assert set(tasks) == {"Write the secret file", "Write the secret files of a loop"}, (verbose, tasks)
        assert all(t["diff"] == events.HIDDEN for t in tasks.values())
        assert "edited" not in out and "s3cr3t-value" not in out


def test_verbose_output_keeps_every_line_of_a_multi_line_result():
    """What -v prints: the result's lines, not only the text after the last carriage return of the event."""
    buf = io.StringIO()
    handler = events.EventHandler(Console(file=buf, width=300, force_terminal=False), verbosity=1, check=True)
    stdout = "ok: [mini] => \r\n    censored: 'hidden'\r\n    changed: false"
    handler(
        {
            "event": "runner_on_ok",
            "stdout": stdout,
            "event_data": {"host": "mini", "task": "T", "res": {"censored": "x"}},
        }
    )
    assert handler.record.changes == []
    assert handler.counts["ok"] == 1
    assert "ok: [mini] =>" in buf.getvalue() and "censored: 'hidden'" in buf.getvalue()
