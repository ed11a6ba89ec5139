"""tests/run-molecule.sh, the molecule stage of `make test` (issue 34), with a stand-in for molecule (MOLECULE_CMD)
and for docker (its `docker info` check): the scenarios' slots (MOLECULE_JOBS, and one at a time while the gate file
MOLECULE_GATE exists, i.e. while the unit tests run beside), and the signals each scenario starts with."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ansible_local import ROOT

SCRIPT = ROOT / "tests" / "run-molecule.sh"

# molecule's stand-in: records when each scenario ran and the signals it ignores, passes one "test"
FAKE_MOLECULE = """#!/bin/sh
s=$3
echo "start $s $(date +%s.%N)" >>"$RECORD"
grep '^SigIgn:' /proc/self/status | sed "s/^/$s /" >>"$RECORD"
sleep 1.5
echo "end $s $(date +%s.%N)" >>"$RECORD"
echo "1 passed"
"""


def run(tmp_path: Path, scenarios: list[str], **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "molecule").write_text(FAKE_MOLECULE, encoding="utf-8")
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    record = tmp_path / "record"
    record.unlink(missing_ok=True)
    r = subprocess.run(
        ["bash", str(SCRIPT), *scenarios],
        capture_output=True,
        text=True,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "RECORD": str(record),
            "MOLECULE_LOGDIR": str(tmp_path / "logs"),
            **env,
        },
        timeout=120,
        check=False,
    )
    return r, [line.split() for line in record.read_text(encoding="utf-8").splitlines()]


def intervals(lines: list[list[str]]) -> dict[str, list[float]]:
    spans: dict[str, list[float]] = {}
    for kind, name, *rest in lines:
        if kind in ("start", "end"):
            spans.setdefault(name, []).append(float(rest[0]))
    return spans


def overlaps(spans: dict[str, list[float]]) -> int:
    """The most scenarios that ran at the same moment."""
    edges = sorted([(t0, 1) for t0, _ in spans.values()] + [(t1, -1) for _, t1 in spans.values()])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_each_scenario_starts_with_sigint_and_sigquit_at_their_defaults(tmp_path):
    """bash starts a background simple command of a script with SIGINT and SIGQUIT ignored; mac_journey's verifier
    stops `homeport tunnel` with SIGINT as Ctrl-C does, and a tunnel that ignores it never ends."""
    r, lines = run(tmp_path, ["one", "two"], MOLECULE_JOBS="2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    masks = {name: int(value, 16) for name, field, value in (x for x in lines if x[1] == "SigIgn:")}
    assert set(masks) == {"one", "two"}, lines
    for name, mask in masks.items():
        assert not mask & (1 << 1), f"{name}: SIGINT ignored (SigIgn {mask:#x})"
        assert not mask & (1 << 2), f"{name}: SIGQUIT ignored (SigIgn {mask:#x})"


def test_one_at_a_time_while_the_gate_exists_then_molecule_jobs(tmp_path):
    gate = tmp_path / "gate"
    gate.write_text("unit\n", encoding="utf-8")
    r, lines = run(tmp_path, ["a", "b", "c"], MOLECULE_JOBS="3", MOLECULE_GATE=str(gate))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "1 at a time while" in r.stdout
    assert overlaps(intervals(lines)) == 1, lines

    gate.unlink()  # the unit tests have ended: the slots open
    r, lines = run(tmp_path, ["a", "b", "c"], MOLECULE_JOBS="3", MOLECULE_GATE=str(gate))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert overlaps(intervals(lines)) == 3, lines
