"""Shared fixtures: an isolated project dir (HOMEPORT_HOME), a local-connection inventory, vault passwords; and the
one rule for tests that need a tool from outside Python (issue 34): ``need_tool(name)`` / ``@pytest.mark.needs_tool``
/ ``missing(what)`` skip such a test on a developer's machine and FAIL it under CI=true, where `make test` and .ci/run
provide every tool. Under CI=true any other skip fails too unless its reason is listed in PLATFORM_SKIPS."""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import NoReturn

import pytest
import typer
import yaml
from molecule_gate import pytest_testnodedown, pytest_testnodeready  # noqa: F401 (hooks: the molecule gate)
from rich.console import Console

from homeport import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PLAYBOOKS = FIXTURES / "playbooks"
ROOT = Path(__file__).resolve().parents[2]

# -- tools --------------------------------------------------------------------------------------------------------
# `make tools` (tests/tools.sh) unpacks promtool and amtool here; .ci/run installs the system packages
TOOLS_BIN = ROOT / ".cache" / "tools" / "bin"
CI = os.environ.get("CI") == "true"
# where each tool comes from (said in the skip or failure)
TOOL_SOURCES = {
    "promtool": "make tools unpacks it into .cache/tools/bin",
    "amtool": "make tools unpacks it into .cache/tools/bin",
    "restic": ".ci/run installs Debian's restic",
    "curl": ".ci/run installs Debian's curl",
    "sshd": ".ci/run installs Debian's openssh-server and creates /run/sshd",
    "ansible": "make setup installs it in the venv",
    "ansible-playbook": "make setup installs it in the venv",
}
# the skips that stay skips under CI=true, by the start of their reason: they depend on the platform or on the
# tree, never on a missing tool (CI runs as root, so the first two never skip there)
PLATFORM_SKIPS = (
    "the doubles change settings only as root",  # test_hardening_doubles: macOS's tools change settings as root only
    "brew refuses root",  # test_colima_doubles: the brew double's refusal is checked as root only
    "no vars/main.yml",  # test_roles: a role without internal variables has nothing to check
)


def _on_path(*dirs: Path, last: tuple[Path, ...] = ()) -> str:
    """PATH with ``dirs`` in front and ``last`` at the end, each once."""
    have = os.environ.get("PATH", "").split(os.pathsep)
    front = [str(d) for d in dirs if str(d) not in have]
    back = [str(d) for d in last if str(d) not in have]
    return os.pathsep.join(front + have + back)


# as under `make unit`: the venv's programs first (ansible-playbook, homeport), the unpacked tools last; so the tests
# and the programs they start find the same tools whether pytest runs through make or as .venv/bin/pytest
os.environ["PATH"] = _on_path(Path(sys.executable).parent, last=(TOOLS_BIN,))


def find_tool(name: str) -> str | None:
    """``name`` on PATH (with the venv's bin and .cache/tools/bin, above), else in /usr/sbin or /sbin."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(["/usr/sbin", "/sbin"]))


def missing(what: str, source: str = "") -> NoReturn:
    """The test cannot run without ``what``: a skip on a developer's machine, a failure under CI=true."""
    reason = f"missing tool: {what}" + (f" ({source})" if source else "")
    if CI:
        pytest.fail(f"{reason}; under CI=true a test never skips for a missing tool", pytrace=False)
    pytest.skip(reason)


def need_tool(name: str) -> str:
    """The path of the tool ``name``; skips (under CI=true: fails) the test when it is not on this machine."""
    path = find_tool(name)
    if path is None:
        missing(name, TOOL_SOURCES.get(name, ""))
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_tool(name, ...): the test runs these tools (conftest.need_tool)")


# The files that start real hosts, with rough seconds (test_demo and test_preflight_rules from clean-clone runs, the
# three newer ones from their authors' runs on a loaded machine: an order, not a measurement). pytest-xdist's
# --dist loadfile hands out whole files in collection order, one more each time a worker is free: the longest go
# first, so no long file starts last while the other workers have nothing left to do (longest-first scheduling).
# A file not listed keeps its place after these; a wrong figure only costs balance, never a test.
HEAVY_FILES = {
    "test_demo.py": 450,
    "test_linkcut_issue28.py": 250,
    "test_status_page_issue30.py": 200,
    "test_host_state_issue29.py": 130,
    "test_preflight_rules.py": 84,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first (HEAVY_FILES), the rest in their usual order (sort is stable)."""
    items.sort(key=lambda item: -HEAVY_FILES.get(item.path.name, 0))


# issue 34: per test file, the seconds it ran and the CPU seconds of its worker and the worker's waited-for children
# (ansible-playbook and its forks, the CLI; not what runs inside containers), written at the end of the session to
# .cache/unit-files/<worker>.tsv; `make unit` prints the costliest files from them (tests/unit/file_costs.py)
FILE_COSTS: dict[str, list[float]] = {}


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    wall, cpu = time.monotonic(), _cpu()
    yield
    cost = FILE_COSTS.setdefault(item.path.name, [0.0, 0.0, 0])
    cost[0] += time.monotonic() - wall
    cost[1] += _cpu() - cpu
    cost[2] += 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not FILE_COSTS or "PYTEST_XDIST_WORKER" not in os.environ:
        return  # `make unit` runs on xdist workers; other runs (the compat lane, one file by hand) leave no record
    out = Path(__file__).resolve().parents[2] / ".cache" / "unit-files"
    out.mkdir(parents=True, exist_ok=True)
    worker = os.environ["PYTEST_XDIST_WORKER"]
    lines = [f"{name}\t{wall:.1f}\t{cpu:.1f}\t{n}\t{worker}" for name, (wall, cpu, n) in FILE_COSTS.items()]
    (out / f"{worker}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_tool"):
        for name in mark.args:
            need_tool(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Under CI=true a skip whose reason is not in PLATFORM_SKIPS fails: nothing is skipped silently in CI."""
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if not reason.startswith(PLATFORM_SKIPS):
            report.outcome = "failed"
            report.longrepr = (
                f"skipped under CI=true: {reason!r} (a missing tool fails in CI; a skip that depends only on the "
                "platform belongs in tests/unit/conftest.py PLATFORM_SKIPS)"
            )


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
