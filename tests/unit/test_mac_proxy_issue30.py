"""Issue 30 on the Mac path: the macOS simulation's Homebrew double knows the caddy formula (homebrew/core
Formula/c/caddy.rb: 2.7.6, bin/caddy) and links a bin/caddy that execs Debian's real caddy when a scenario put it in
the container (as restic); the CLI's record of a manual intervention goes to the state dir the roles read for the
inventory's homeport_os_family. molecule/mac_journey runs both for real (the proxy role's Darwin path through
`homeport bootstrap` over SSH, the record written through sudo -n); these are the fast checks of the same code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from homeport import interventions

BREW = Path(__file__).resolve().parents[2] / "tests" / "doubles" / "bin" / "brew"
# the brew double as the admin: it refuses root for changes like the real brew, and the unit tests may run as root
AS_ADMIN = """
import importlib.machinery, importlib.util, os, sys
os.geteuid = lambda: 501
loader = importlib.machinery.SourceFileLoader("brew_double", sys.argv[1])
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("brew_double", loader))
loader.exec_module(module)
sys.argv = ["brew", *sys.argv[2:]]
sys.exit(module.main())
"""


@pytest.fixture
def brew(tmp_path):
    env = {**os.environ, "HOMEBREW_PREFIX": str(tmp_path / "prefix"), "HOMEPORT_SIM_STATE": str(tmp_path / "state")}

    def run(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-c", AS_ADMIN, str(BREW), *args], capture_output=True, text=True,
                           env=env, check=False)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return r

    run.prefix = tmp_path / "prefix"
    run.state = tmp_path / "state" / "brew" / "state.json"
    return run


def test_brew_knows_the_caddy_formula_and_links_the_real_caddy(brew):
    info = json.loads(brew("info", "--json=v2", "caddy").stdout)["formulae"][0]
    assert info["name"] == "caddy" and info["versions"]["stable"] == "2.7.6" and info["installed"] == []
    brew("install", "caddy")
    assert brew("list", "--versions", "caddy").stdout == "caddy 2.7.6\n"
    link = brew.prefix / "bin" / "caddy"
    assert link.is_symlink() and link.resolve() == brew.prefix / "Cellar" / "caddy" / "2.7.6" / "bin" / "caddy"
    out = subprocess.run([str(link), "version"], capture_output=True, text=True, check=True).stdout
    if Path("/usr/bin/caddy").exists():  # Debian's caddy (.ci/run installs it; mac_journey copies it in)
        assert link.resolve().read_text() == '#!/bin/sh\nexec /usr/bin/caddy "$@"\n'
        assert out.startswith("v2.") or out.startswith("2.")  # Debian 12/13: 2.6.2
    else:
        assert out == "caddy 2.7.6 (homeport-sim)\n"
    # a second install changes nothing; an upgrade keeps bin/caddy pointing at the same program
    assert "already installed" in brew("install", "caddy").stderr
    state = json.loads(brew.state.read_text())
    state["outdated"] = ["caddy"]
    brew.state.write_text(json.dumps(state))
    brew("upgrade", "caddy")
    assert brew("list", "--versions", "caddy").stdout == "caddy 2.7.7\n"
    assert (brew.prefix / "bin" / "caddy").resolve().read_text() == link.resolve().read_text()


def test_the_record_goes_to_the_state_dir_the_roles_read_for_the_inventorys_os_family(tmp_path):
    hosts = {
        "mac": {"ansible_host": "192.0.2.10", "homeport_os_family": "Darwin"},
        "deb": {"ansible_host": "192.0.2.11", "homeport_os_family": "Debian"},
        "own": {"ansible_host": "192.0.2.12", "homeport_os_family": "Darwin", "homeport_state_dir": "/srv/hp"},
        "any": {"ansible_host": "192.0.2.13"},
    }
    inv = tmp_path / "hosts.json"
    inv.write_text(json.dumps({"homeport": {"hosts": hosts}}))
    dirs = {name: state_dir for name, (_host, _conn, state_dir) in interventions._targets(inv).items()}
    # roles/homeport/defaults/main.yml: /usr/local/var/homeport when homeport_os_family is Darwin
    assert dirs == {"mac": "/usr/local/var/homeport", "deb": "/var/lib/homeport", "own": "/srv/hp", "any": None}
    entry = {"verb": "bootstrap", "changed": 1}
    mac = interventions.remote_script(entry, dirs["mac"])
    assert "D=/usr/local/var/homeport\n" in mac and "uname" not in mac  # not the host's uname (a sim says Linux)
    assert 'uname -s)" = Darwin' in interventions.remote_script(entry, dirs["any"])  # unknown: the host decides


def test_drift_reads_the_state_dir_the_roles_write_for_the_inventorys_os_family(monkeypatch):
    """`homeport drift` (summary) decided by the host's uname too: the macOS simulation's check ran against
    /var/lib/homeport/state, where its roles never recorded anything."""
    from homeport import drift, quick

    sent = {}

    def run(argv, **_kw):
        sent[argv[-1]] = True
        return subprocess.CompletedProcess(argv, 0, '{"status": "clean", "drift": []}', "")

    monkeypatch.setattr(drift.subprocess, "run", run)
    monkeypatch.setattr(quick, "control_path_dir", lambda: Path("/tmp/homeport-test-cp"))
    for os_family, state_dir, expected in (
        ("Darwin", None, "D=/usr/local/var/homeport/state\n"),
        ("Debian", None, "D=/var/lib/homeport/state\n"),
        ("Darwin", "/srv/hp", "D=/srv/hp/state\n"),
        (None, None, 'uname -s)" = Darwin'),
    ):
        sent.clear()
        drift.check_host(quick.Host("mini", "192.0.2.10", os_family=os_family, state_dir=state_dir))
        (script,) = sent
        assert expected in script, (os_family, state_dir, script)
        assert ("uname" in script) == (os_family is None)
