"""tests/unit/molecule_gate.py: pytest-xdist's controller removes the molecule gate file when every worker but one has
run out of test files. A real pytest -n 2 --dist loadfile run on two files: a quick one, and one that waits (60 s at
most) for the gate to disappear. The quick file's worker goes down, one worker is left, the gate opens and the waiting
file passes. The control: two waiting files, one per worker; neither worker runs out, the gate stays, both fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK = "def test_quick():\n    pass\n"
WAITS = """
import os, time
def test_waits_for_the_gate():
    deadline = time.monotonic() + {timeout}
    while os.path.exists(os.environ["MOLECULE_GATE"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(os.environ["MOLECULE_GATE"]), "the gate stayed"
"""


def run(tmp_path: Path, files: dict[str, str]) -> tuple[subprocess.CompletedProcess, Path]:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text("from molecule_gate import pytest_testnodedown, pytest_testnodeready\n")
    for name, text in files.items():
        (suite / name).write_text(text)
    gate = tmp_path / "gate"
    gate.write_text("unit\n")
    env = {**os.environ, "MOLECULE_GATE": str(gate), "PYTHONPATH": str(HERE)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider", "-q", str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    return proc, gate


def test_the_gate_opens_when_one_worker_is_left(tmp_path):
    proc, gate = run(tmp_path, {"test_a_quick.py": QUICK, "test_b_waits.py": WAITS.format(timeout=60)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not gate.exists()


def test_control_the_gate_stays_while_two_workers_have_files(tmp_path):
    waits = WAITS.format(timeout=5)
    proc, gate = run(tmp_path, {"test_a_waits.py": waits, "test_b_waits.py": waits})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.count("the gate stayed") >= 2, proc.stdout
    assert not gate.exists()  # the last worker's end opens it (left 0)
