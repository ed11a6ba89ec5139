"""The macOS-sim doubles of the hardening role answer like the real tools (and like the role parses them)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import need_tool

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "tests" / "doubles" / "bin"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="the doubles change settings only as root, like macOS")


@pytest.fixture
def sim(tmp_path):
    env = dict(
        os.environ, HOMEPORT_SIM_STATE=str(tmp_path), PATH=f"{BIN}:{os.environ['PATH']}", PYTHONDONTWRITEBYTECODE="1"
    )

    def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, env=env)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    run.state = tmp_path
    run.env = env
    return run


def calls(state: Path) -> list[list[str]]:
    return [json.loads(line) for line in (state / "calls.log").read_text().splitlines() if line.strip()]


@ROOT_ONLY
def test_socketfilterfw(sim, tmp_path):
    r = sim("socketfilterfw", "--getglobalstate", "--getstealthmode")
    assert r.stdout.splitlines() == ["Firewall is disabled. (State = 0)", "Firewall stealth mode is off"]
    assert sim("socketfilterfw", "--setglobalstate", "on").stdout.strip() == "Firewall is enabled. (State = 1)"
    assert sim("socketfilterfw", "--setstealthmode", "on").stdout.strip() == "Firewall stealth mode is on"
    app = tmp_path / "Tailscale.app"
    app.mkdir()
    assert sim("socketfilterfw", "--add", str(app)).stdout.strip() == f"Application at path ( {app} ) added to firewall"
    sim("socketfilterfw", "--blockapp", str(app))
    assert "( Block incoming connections )" in sim("socketfilterfw", "--listapps").stdout
    sim("socketfilterfw", "--unblockapp", str(app))
    listing = sim("socketfilterfw", "--listapps").stdout
    assert listing.startswith("ALF: total number of apps = 1")
    assert f"1 :  {app}" in listing and "( Allow incoming connections )" in listing
    assert sim("socketfilterfw", "--add", "/nonexistent", check=False).returncode == 1
    assert calls(sim.state)[0] == ["socketfilterfw", "--getglobalstate", "--getstealthmode"]


@ROOT_ONLY
def test_pmset(sim):
    out = sim("pmset", "-g", "custom").stdout
    assert out.splitlines()[0] == "AC Power:"
    assert " sleep                1" in out.splitlines()
    sim("pmset", "-a", "sleep", "0", "autorestart", "1")
    out = sim("pmset", "-g", "custom").stdout
    assert " sleep                0" in out.splitlines() and " autorestart          1" in out.splitlines()
    assert sim("pmset", "-a", "nosuchsetting", "1", check=False).returncode == 1
    assert sim("pmset", "-a", "sleep", check=False).returncode == 1


def test_fdesetup(sim):
    assert sim("fdesetup", "status").stdout.strip() == "FileVault is Off."
    (sim.state / "fdesetup").mkdir(exist_ok=True)
    (sim.state / "fdesetup" / "state").write_text("on\n")
    assert sim("fdesetup", "status").stdout.strip() == "FileVault is On."


@ROOT_ONLY
def test_defaults_as_osx_defaults_reads_it(sim):
    dom = "/Library/Preferences/com.apple.SoftwareUpdate"
    r = sim("defaults", "read-type", dom, "CriticalUpdateInstall", check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr
    sim("defaults", "write", dom, "CriticalUpdateInstall", "-bool", "TRUE")
    assert sim("defaults", "read-type", dom, "CriticalUpdateInstall").stdout.strip() == "Type is boolean"
    assert sim("defaults", "read", dom, "CriticalUpdateInstall").stdout.strip() == "1"
    assert sim("defaults", "read", dom + ".plist", "CriticalUpdateInstall").stdout.strip() == "1"
    sim("defaults", "write", "com.example", "List", "-array", "a", "b c")
    assert sim("defaults", "read", "com.example", "List").stdout == '(\n    a,\n    "b c"\n)\n'
    sim("defaults", "write", "com.example", "Count", "-int", "3")
    assert sim("defaults", "read-type", "com.example", "Count").stdout.strip() == "Type is integer"
    sim("defaults", "delete", "com.example", "Count")
    assert sim("defaults", "read", "com.example", "Count", check=False).returncode == 1


def test_dscl_reads_the_user_database(sim):
    r = sim("dscl", ".", "-read", "/Users/root", "NFSHomeDirectory", "UniqueID")
    assert r.stdout.splitlines() == ["NFSHomeDirectory: /root", "UniqueID: 0"]
    r = sim("dscl", ".", "-read", "/Users/nosuchuser-hp", check=False)
    assert r.returncode != 0 and "eDSRecordNotFound" in r.stderr
    assert sim("dscl", ".", "-create", "/Users/x", check=False).returncode != 0


@ROOT_ONLY
@pytest.mark.slow
def test_osx_defaults_module_against_the_double(sim, tmp_path):
    """The real community.general.osx_defaults module, run by ansible, sees the double like a Mac's defaults."""
    need_tool("ansible")
    env = dict(sim.env, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    args = "domain=/Library/Preferences/com.apple.loginwindow key=GuestEnabled type=bool value=false"

    def adhoc(*extra: str) -> dict:
        r = subprocess.run(
            ["ansible", "localhost", "-c", "local", "-m", "community.general.osx_defaults", "-a", args, *extra],
            capture_output=True,
            text=True,
            env=dict(env, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1"),
        )
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]

    assert adhoc("--check")["changed"] is True
    assert adhoc()["changed"] is True
    assert adhoc()["changed"] is False
    db = json.loads((sim.state / "defaults" / "domains.json").read_text())
    assert db["|/Library/Preferences/com.apple.loginwindow"]["GuestEnabled"] == {"type": "boolean", "value": False}


@pytest.mark.needs_tool("sshd", "ssh-keygen")
def test_sshd_check_dropin(tmp_path):
    """The drop-in checker validates a candidate in the context of the main config and touches nothing else."""
    sshd_dir = tmp_path / "sshd_config.d"
    sshd_dir.mkdir()
    (sshd_dir / "50-other.conf").write_text("X11Forwarding no\n")
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    main = tmp_path / "sshd_config"
    main.write_text(f"Include /etc/ssh/sshd_config.d/*.conf\nHostKey {key}\nUsePAM yes\n")
    good = tmp_path / "good.conf"
    good.write_text("PasswordAuthentication no\nAllowUsers homeport\n")
    bad = tmp_path / "bad.conf"
    bad.write_text("PasswordAuthentication maybe\n")
    script = ROOT / "roles/hardening/files/sshd-check-dropin.sh"
    env = dict(os.environ, PATH=f"/usr/sbin:{os.environ['PATH']}")

    def check(candidate: Path) -> int:
        args = ["sh", str(script), str(candidate), "100-homeport.conf", str(main), str(sshd_dir)]
        return subprocess.run(args, capture_output=True, text=True, env=env).returncode

    before = sorted(p.name for p in sshd_dir.iterdir())
    assert check(good) == 0
    assert check(bad) != 0
    assert sorted(p.name for p in sshd_dir.iterdir()) == before
