"""Two homeport runs sharing one HOMEPORT_HOME (issue 27, finding 7): the artifact rotation must never crash a run.

Deterministic race: while run A removes its oldest artifact directory, a whole second run B (its own rotation
included) happens first, so every directory A meant to remove is gone when A gets to it. Before the fix A died with a
FileNotFoundError traceback from ansible-runner's rotation.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import typer
from conftest import PLAYBOOKS

from homeport import events, paths, runner
from homeport.cli import execute


def _run(inventory) -> int:
    try:
        execute(str(PLAYBOOKS / "fail.yml"), inventory, False)
    except typer.Exit as exc:
        return exc.exit_code
    return 0


def _old_artifacts(count: int) -> list:
    base = paths.artifacts_dir()
    base.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        d = base / f"20200101T00000{i}-old-{i:04x}"
        (d / "job_events").mkdir(parents=True)
        (d / "stdout").write_text("old run\n")
        stamp = time.time() - 3600 + i
        os.utime(d, (stamp, stamp))
        made.append(d)
    return made


def test_a_second_run_rotating_meanwhile_does_not_crash_the_first(local_inventory, out, monkeypatch):
    monkeypatch.setattr(runner, "KEEP_ARTIFACTS", 2)
    old = _old_artifacts(4)
    real_rmtree = shutil.rmtree
    codes: list[int] = []

    def racing_rmtree(path, *args, **kwargs):
        if not codes:  # the first removal of run A: run B goes first, from start to end
            codes.append(-1)
            codes.append(_run(local_inventory))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", racing_rmtree)
    first = _run(local_inventory)  # run A
    assert codes[1:] == [events.EXIT_FAILED]  # run B: fail.yml's own failure, no traceback
    assert first == events.EXIT_FAILED  # run A too
    assert not any(d.exists() for d in old[:3])  # A kept the newest old one: its own and B's came after
    left = sorted(p.name for p in paths.artifacts_dir().iterdir())
    assert len(left) <= runner.KEEP_ARTIFACTS + 1, left  # both runs' own, at most one over while they overlapped


def test_rotation_skips_entries_that_vanish_between_listing_and_reading(project, monkeypatch):
    """The other race: an entry listed by this run is removed by another before this one reads its time."""
    monkeypatch.setattr(runner, "KEEP_ARTIFACTS", 2)
    old = _old_artifacts(5)
    real_scandir = os.scandir

    def scandir_then_vanish(path):
        if Path(path) != paths.artifacts_dir():
            return real_scandir(path)
        listing = list(real_scandir(path))
        # the other run: one directory removed, one renamed away (both still in this run's listing)
        monkeypatch.setattr(os, "scandir", real_scandir)
        shutil.rmtree(old[0])
        old[1].rename(old[1].with_name("moved-away"))
        os.utime(old[1].with_name("moved-away"), (0, 0))
        return iter(listing)

    monkeypatch.setattr(os, "scandir", scandir_then_vanish)
    runner.rotate_artifacts(paths.artifacts_dir(), keep=2)
    left = sorted(p.name for p in paths.artifacts_dir().iterdir())
    assert left == sorted([old[3].name, old[4].name, "moved-away"]), left  # moved-away: listed too late


def test_rotation_keeps_the_newest_and_can_be_turned_off(project):
    old = _old_artifacts(3)
    runner.rotate_artifacts(paths.artifacts_dir(), keep=-1)
    assert all(d.exists() for d in old)
    runner.rotate_artifacts(paths.artifacts_dir(), keep=1)
    assert [d.exists() for d in old] == [False, False, True]
    runner.rotate_artifacts(paths.artifacts_dir(), keep=0)
    assert not any(paths.artifacts_dir().iterdir())
