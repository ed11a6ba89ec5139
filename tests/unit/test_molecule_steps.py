"""tests/molecule_steps.py: the slowest tasks of a run, read from profile_tasks' summaries in molecule's output.

The fixture is molecule 25's real output (colours on, lines wrapped at 80 columns inside its box) of the scenario
hardening_lockout's destroy and prepare steps, with ansible.posix.profile_tasks in summary-only mode.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "tests" / "unit" / "fixtures" / "molecule" / "profile_tasks.log"
spec = importlib.util.spec_from_file_location("molecule_steps", ROOT / "tests" / "molecule_steps.py")
assert spec and spec.loader
molecule_steps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(molecule_steps)


def test_the_wrapped_summary_lines_are_joined_and_tagged_with_their_step():
    tasks = molecule_steps.slow_tasks(LOG, "hardening_lockout")
    assert (1.14, "hardening_lockout", "destroy", "Remove each platform's container") in tasks
    # a name wrapped by molecule, its time on the continuation line
    assert (
        0.04,
        "hardening_lockout",
        "destroy",
        "Remove the networks molecule created for the platforms (the driver's own task file)",
    ) in tasks
    assert (1.34, "hardening_lockout", "prepare", "Create the admin user homeport") in tasks
    # the banner lines of the summary (the date line, the rules of = and *) are not tasks
    assert all(not name.startswith(("Monday", "=", "*")) for _, _, _, name in tasks)


def test_the_table_prints_the_slowest_tasks(tmp_path):
    (tmp_path / "demo.log").write_bytes(LOG.read_bytes())
    (tmp_path / "demo.steps").write_text(
        "1.0 demo destroy Executing\n9.0 demo destroy Executed: Successful\n"
        "9.1 demo prepare Executing\n20.0 demo prepare Executed: Successful\n",
        encoding="utf-8",
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "molecule_steps.py"), "table", str(tmp_path), "demo"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = out.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("slowest tasks")))
    assert lines[first + 1].split() == ["1.3s", "demo", "prepare:", "Create", "the", "admin", "user", "homeport"]
    assert "demo destroy: Remove each platform's container" in out
