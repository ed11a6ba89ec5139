"""Shared fixtures: an isolated project dir (HOMEPORT_HOME), a local-connection inventory, vault passwords."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import typer
import yaml
from rich.console import Console

from homeport import cli

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


def write_hosts_inventory(directory: Path, hosts: dict[str, dict]) -> Path:
    """An inventory whose group homeport holds ``hosts`` (name -> vars), each a local-connection host of this Python
    with the admin user root, as the rule tests (one host per broken rule) use it."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "homeport_admin_user": "root"}
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump({"homeport": {"hosts": {h: {**local, **v} for h, v in hosts.items()}}}))
    return path


def run_cli(playbook: Path | str, inventory: Path) -> int:
    """One real run through cli.execute (ansible-runner, the event handler, the exit codes); its exit code."""
    try:
        cli.execute(str(playbook), inventory, False, as_json=False)
    except typer.Exit as exc:
        return exc.exit_code
    return 0


@pytest.fixture
def out(monkeypatch: pytest.MonkeyPatch) -> Console:
    """The CLI's console, recorded (``out.export_text()``), wide enough that messages do not wrap."""
    console = Console(record=True, width=400, force_terminal=False)
    monkeypatch.setattr(cli, "console", console)
    return console
