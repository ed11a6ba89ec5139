"""tests/unit/restic_repo.py against the real restic: a rekeyed repository opens with the same password and the cheap
parameters, keeps its data and passes `restic check`; a wrong password is still refused (the control)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest
import restic_repo

RESTIC = shutil.which("restic")
pytestmark = pytest.mark.needs_tool("restic")


def run(repo: Path, pw: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RESTIC_PASSWORD_FILE": str(pw), "RESTIC_CACHE_DIR": str(repo) + ".cache"}
    return subprocess.run([RESTIC or "restic", "--repo", str(repo), *args], env=env, capture_output=True, text=True)


def cpu(call):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    value = call()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, value


def test_a_rekeyed_repository_opens_cheaply_and_keeps_its_data(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("a secret\n", encoding="utf-8")
    repo = tmp_path / "repo"
    assert run(repo, pw, "init").returncode == 0
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("alpha\n", encoding="utf-8")
    assert run(repo, pw, "backup", str(tmp_path / "data")).returncode == 0
    slow, config = cpu(lambda: run(repo, pw, "cat", "config").stdout)
    (before,) = (repo / "keys").iterdir()
    assert json.loads(before.read_bytes())["N"] >= 16384  # restic's calibration starts at scrypt's default

    key = restic_repo.rekey(repo, "a secret")
    (after,) = (repo / "keys").iterdir()
    assert {k: key[k] for k in ("N", "r", "p")} == restic_repo.CHEAP
    assert json.loads(after.read_bytes())["N"] == 1024 and after.name != before.name
    fast, same = cpu(lambda: run(repo, pw, "cat", "config").stdout)
    assert same == config  # the same repository, the same master key
    assert fast < 0.15 and slow > 2 * fast, (slow, fast)  # CPU seconds of the restic process
    assert "alpha" in run(repo, pw, "dump", "latest", str(tmp_path / "data" / "a.txt")).stdout
    check = run(repo, pw, "check")
    assert check.returncode == 0 and "no errors were found" in check.stdout, check.stderr

    wrong = tmp_path / "wrong"
    wrong.write_text("another secret\n", encoding="utf-8")
    refused = run(repo, wrong, "snapshots")
    assert refused.returncode != 0 and "wrong password" in refused.stderr
    with pytest.raises(ValueError, match="does not open this key"):
        restic_repo.rekey(repo, "another secret")


def test_seeded_copies_are_repositories_of_their_own_path(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret", encoding="utf-8")
    template = restic_repo.make_template(RESTIC or "restic", tmp_path / "template", pw)
    one, two = restic_repo.seed(template, tmp_path / "one"), restic_repo.seed(template, tmp_path / "two")
    assert run(one, pw, "backup", str(pw)).returncode == 0
    assert json.loads(run(two, pw, "snapshots", "--json").stdout) == []  # a copy, not a link
    assert len(json.loads(run(one, pw, "snapshots", "--json").stdout)) == 1
