"""The built wheel carries the Ansible content and works outside the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import write_local_inventory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (built,) = out.glob("homeport-*.whl")
    return built


@pytest.mark.slow
def test_wheel_contains_the_content(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "homeport/cli.py",
        "homeport/runner.py",
        "homeport/images/build.sh",
        "homeport/_content/playbooks/site.yml",
        "homeport/_content/playbooks/status.yml",
        "homeport/_content/roles/homeport/tasks/main.yml",
        "homeport/_content/roles/homeport/meta/argument_specs.yml",
        "homeport/_content/plugins/filter/sizes.py",
        "homeport/_content/galaxy.yml",
        "homeport/_content/inventory/example/hosts.yml",
    ):
        assert required in names, required
    assert any(n.endswith("entry_points.txt") and "homeport" in n for n in names)


@pytest.mark.slow
def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    write_local_inventory(work)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HOMEPORT_", "ANSIBLE_", "PYTHONPATH", "XDG_CONFIG"))
    }
    env["PYTHONPATH"] = str(site)
    probe = subprocess.run(
        [sys.executable, "-c", "from homeport import paths; print(paths.content_root())"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == str(site / "homeport" / "_content"), probe.stderr
    r = subprocess.run(
        [sys.executable, "-m", "homeport", "status", "-i", "hosts.yml", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["stats"]["homeport_status"]["local"]["memory"]["budget"] == "14g"
    link = work / ".homeport" / "runner" / "collections" / "ansible_collections" / "homeport" / "homeport"
    assert link.resolve() == site / "homeport" / "_content"
