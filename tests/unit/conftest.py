"""Shared fixtures: an isolated project dir (HOMEPORT_HOME), a local-connection inventory, vault passwords."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PLAYBOOKS = FIXTURES / "playbooks"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory as cwd, homeport state inside it, no vault password from the user's setup."""
    home = tmp_path / "project"
    home.mkdir()
    monkeypatch.chdir(home)
    monkeypatch.setenv("HOMEPORT_HOME", str(home / ".homeport"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("HOMEPORT_VAULT_PASSWORD", raising=False)
    return home


def write_local_inventory(directory: Path, host_vars: dict | None = None) -> Path:
    """An inventory with one host `local` (local connection, this Python) in the group homeport."""
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **(host_vars or {})}
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump({"homeport": {"hosts": {"local": host}}}), encoding="utf-8")
    return path


@pytest.fixture
def local_inventory(project: Path) -> Path:
    return write_local_inventory(project)
