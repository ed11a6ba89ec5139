"""Issue 34: a test that needs a missing tool skips on a developer's machine and FAILS under CI=true (conftest.py:
need_tool, the needs_tool mark, missing), and under CI=true any other skip fails unless conftest.PLATFORM_SKIPS lists
its reason. Checked by a real pytest run of a small test file next to a copy of this directory's conftest.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

TESTS = """
import pytest
from conftest import missing, need_tool

def test_need_tool():
    need_tool("homeport-no-such-tool")

@pytest.mark.needs_tool("homeport-no-such-tool")
def test_mark():
    pass

def test_missing():
    missing("a reachable Docker engine")

def test_plain_skip():
    pytest.skip("a reason nobody listed")

def test_platform_skip():
    pytest.skip("no vars/main.yml")

def test_tool_found():
    assert need_tool("sh").endswith("/sh")
"""


def run(tmp_path: Path, ci: str | None) -> tuple[dict[str, str], str]:
    """Each test's outcome (PASSED / SKIPPED / FAILED / ERROR) in a pytest run of TESTS, and pytest's output."""
    work = tmp_path / f"ci-{ci}"
    work.mkdir()
    shutil.copy(HERE / "conftest.py", work / "conftest.py")
    shutil.copy(HERE / "molecule_gate.py", work / "molecule_gate.py")  # conftest.py imports its hooks
    (work / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (work / "test_tiny.py").write_text(TESTS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    src = str(HERE.parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist", "test_tiny.py"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = re.compile(r"^test_tiny\.py::(\w+) (PASSED|SKIPPED|FAILED|ERROR)", re.M)
    outcomes = {m.group(1): m.group(2) for m in line.finditer(proc.stdout)}
    return outcomes, proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_missing_tool_skips_outside_ci_and_fails_under_ci(tmp_path):
    local, out = run(tmp_path, None)
    assert local == {
        "test_need_tool": "SKIPPED",
        "test_mark": "SKIPPED",
        "test_missing": "SKIPPED",
        "test_plain_skip": "SKIPPED",
        "test_platform_skip": "SKIPPED",
        "test_tool_found": "PASSED",
    }, out
    assert "missing tool: homeport-no-such-tool" in out

    ci, out = run(tmp_path, "true")
    assert ci == {
        "test_need_tool": "FAILED",
        "test_mark": "ERROR",  # the mark is checked in the setup phase
        "test_missing": "FAILED",
        "test_plain_skip": "FAILED",
        "test_platform_skip": "SKIPPED",
        "test_tool_found": "PASSED",
    }, out
    assert "missing tool: homeport-no-such-tool; under CI=true a test never skips for a missing tool" in out
    assert "skipped under CI=true: 'a reason nobody listed'" in out
    # pytest's exit status says so: the CI run fails
    assert re.search(r"\b3 failed, 1 passed, 1 skipped, 1 error\b", out), out
