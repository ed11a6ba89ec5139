"""tests/stage-times.sh, the driver of `make test` (issue 34): stages in order, A+B side by side, the table of
seconds and CPU per stage, a WARNING past a stage's share, the first failure stops the run with its exit code.
A makefile in a temporary directory plays the stages."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ansible_local import ROOT

SCRIPT = ROOT / "tests" / "stage-times.sh"

# `a` waits until `b` has started (b's marker file), so `a+b` only ends when the two really run at once
MAKEFILE = """\
a:
\t@for i in $$(seq 1 100); do [ -e b.started ] && break; sleep 0.05; done; [ -e b.started ] && echo A-saw-B
b:
\t@touch b.started; echo B-out
alone:
\t@echo alone-out
slow:
\t@sleep 2
fail:
\t@echo failing; exit 5
never:
\t@touch never.ran
"""


def stages(tmp_path: Path, budget: int, *spec: str) -> subprocess.CompletedProcess:
    (tmp_path / "mk.mk").write_text(MAKEFILE, encoding="utf-8")
    # stage-times.sh cds to the checkout; the fake make works in tmp_path whatever the current directory
    make = f"make -C {tmp_path} -f {tmp_path / 'mk.mk'}"
    return subprocess.run(
        ["bash", str(SCRIPT), str(budget), *spec],
        capture_output=True,
        text=True,
        # the gate file in tmp_path: the default (.cache/stage-gate of the checkout) is the real one while `make test`
        # runs these tests, and removing it would open the molecule stage's slots early
        env={"PATH": "/usr/bin:/bin", "MAKE": make, "STAGE_GATE": str(tmp_path / "gate")},
        timeout=60,
        check=False,
    )


def table_row(out: str, stage: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [stage])


def test_a_group_runs_its_members_side_by_side_and_the_table_has_cpu_columns(tmp_path):
    r = stages(tmp_path, 10, "alone=4", "a+b=6")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "A-saw-B" in r.stdout  # a found b running: the two ran at once
    assert "==== make test: b (beside a) exit 0; its output:" in r.stdout
    assert "B-out" in r.stdout
    assert "stage" in r.stdout and "cpu-busy" in r.stdout and "cpu-idle" in r.stdout
    row = table_row(r.stdout, "a+b")
    assert row[2] == "6" and row[3].isdigit() and row[4].isdigit(), row
    assert table_row(r.stdout, "total")[2] == "10"
    assert "WARNING" not in r.stdout


def test_a_failing_member_fails_the_group_and_stops_the_run(tmp_path):
    r = stages(tmp_path, 10, "a+fail+b=6", "never=4")
    assert r.returncode != 0
    assert "==== make test: fail (beside a) exit 2; its output:" in r.stdout
    assert "failing" in r.stdout
    assert "make test: stage a+fail+b failed" in r.stdout
    assert not (tmp_path / "never.ran").exists()  # the next stage did not run
    assert table_row(r.stdout, "never")[1] == "-"


def test_a_stage_past_its_share_is_warned(tmp_path):
    r = stages(tmp_path, 1, "slow=1", "alone=0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING: stage slow took" in r.stdout and "more than its share 1s" in r.stdout
    assert "WARNING: make test took" in r.stdout


def test_shares_that_do_not_add_up_to_the_budget_are_refused(tmp_path):
    r = stages(tmp_path, 10, "alone=4", "a+b=5")
    assert r.returncode == 2
    assert "the shares add up to 9s, not the budget 10s" in r.stderr


def test_the_gate_exists_while_the_first_member_runs_and_not_after(tmp_path):
    """The molecule stage beside the unit tests runs fewer scenarios while MOLECULE_GATE exists: the file must be
    there when the members start and be gone once the first member has ended (and after the run)."""
    gate = tmp_path / "gate"
    makefile = (
        "first:\n\t@sleep 1; echo first-done\n"
        "watcher:\n"
        '\t@[ -e "$$MOLECULE_GATE" ] && echo gate-open-at-start; '
        'for i in $$(seq 1 100); do [ -e "$$MOLECULE_GATE" ] || break; sleep 0.05; done; '
        '[ -e "$$MOLECULE_GATE" ] || echo gate-closed-after-first\n'
    )
    (tmp_path / "mk.mk").write_text(makefile, encoding="utf-8")
    r = subprocess.run(
        ["bash", str(SCRIPT), "10", "first+watcher=10"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MAKE": f"make -C {tmp_path} -f {tmp_path / 'mk.mk'}", "STAGE_GATE": str(gate)},
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gate-open-at-start" in r.stdout and "gate-closed-after-first" in r.stdout, r.stdout
    assert r.stdout.index("first-done") < r.stdout.index("gate-closed-after-first")
    assert not gate.exists()
