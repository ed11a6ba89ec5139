"""The doctor's tailnet rows: status words, never Python booleans; a laptop without Tailscale only warns."""

from __future__ import annotations

import subprocess

from homeport import doctor, tailnet


def test_tailnet_rows_map_to_status_words(monkeypatch):
    rows = [
        tailnet.Row("tailscale on this machine", True, "Running, 100.64.0.2", ""),
        tailnet.Row("tailnet path to macmini", False, "no pong", "check the node"),
    ]
    seen = {}

    def fake(peers):
        seen["peers"] = list(peers)
        return rows

    monkeypatch.setattr(tailnet, "controller_status", fake)
    checks = doctor.tailnet_checks(["macmini"])
    assert seen["peers"] == ["macmini"]
    assert [(c.check, c.status) for c in checks] == [
        ("tailscale on this machine", "ok"),
        ("tailnet path to macmini", "warn"),
    ]
    assert checks[1].fix == "check the node"


def test_no_tailscale_binary_is_a_warning(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda _name: None)
    checks = doctor.tailnet_checks([])
    assert len(checks) == 1
    assert checks[0].status == "warn"
    assert "not installed" in checks[0].detail


# ---- the first hour: install commands per laptop OS, sudo, FileVault, automatic macOS updates (issue 18) -------


def test_missing_prerequisites_name_their_install_command(monkeypatch):
    real_which = doctor.shutil.which
    monkeypatch.setattr(
        doctor.shutil, "which", lambda name: None if name in {"docker", "ssh", "debootstrap"} else real_which(name)
    )
    for os_name, docker_fix, ssh_fix in (
        ("Darwin", "brew install colima docker", "macOS ships OpenSSH"),
        ("Linux", "sudo apt-get install docker.io", "sudo apt-get install openssh-client"),
    ):
        monkeypatch.setattr(doctor, "laptop_os", lambda os_name=os_name: os_name)
        rows = {r.check: r for r in doctor.local_checks()}
        assert docker_fix in rows["Docker (demo, sandbox, tests)"].fix
        assert (rows["ssh client"].status, ssh_fix in rows["ssh client"].fix) == ("fail", True)
        deboot = "debootstrap (sandbox image without a registry)"
        if os_name == "Darwin":
            assert deboot not in rows  # a Mac builds the sandbox image from Debian's official image
        else:
            assert "sudo apt-get install debootstrap" in rows[deboot].fix


def _facts_from_stand_ins(tmp_path, uname="Darwin", sudo_rc=1, filevault="FileVault is On.", updates="1"):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    tools = {
        "uname": f"echo {uname}",
        "sudo": f"exit {sudo_rc}",
        "fdesetup": f'[ "$1" = status ] && echo "{filevault}"',
        "defaults": (f"echo {updates}" if updates is not None else "echo 'does not exist' >&2; exit 1"),
    }
    for tool, body in tools.items():
        (bindir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / tool).chmod(0o755)
    r = subprocess.run(
        ["sh", "-c", doctor.HOST_FACTS_SCRIPT], capture_output=True, text=True, env={"PATH": f"{bindir}:/usr/bin:/bin"}
    )
    return doctor.parse_host_facts(r.stdout)


def test_mac_with_filevault_on_automatic_updates_and_sudo_asking_a_password(tmp_path):
    facts = _facts_from_stand_ins(tmp_path)
    assert facts == {"os": "Darwin", "sudo": "password", "filevault": "FileVault is On.", "macos_updates": "1"}
    rows = {r.check: r for r in doctor.host_fact_checks("mini", facts, become_password_set=False)}
    assert rows["mini: sudo"].status == "fail"
    assert "NOPASSWD" in rows["mini: sudo"].fix and "ansible_become_password" in rows["mini: sudo"].fix
    assert rows["mini: FileVault"].status == "warn" and "fdesetup authrestart" in rows["mini: FileVault"].fix
    assert rows["mini: automatic macOS updates"].status == "warn"
    assert "hardening_macos_softwareupdate_install_macos_updates" in rows["mini: automatic macOS updates"].fix
    with_password = {r.check: r for r in doctor.host_fact_checks("mini", facts, become_password_set=True)}
    assert with_password["mini: sudo"].status == "ok"


def test_mac_ready_for_unattended_use(tmp_path):
    facts = _facts_from_stand_ins(tmp_path, sudo_rc=0, filevault="FileVault is Off.", updates="0")
    rows = {r.check: r.status for r in doctor.host_fact_checks("mini", facts, False)}
    assert rows == {"mini: sudo": "ok", "mini: FileVault": "ok", "mini: automatic macOS updates": "ok"}
    unset = _facts_from_stand_ins(tmp_path, sudo_rc=0, filevault="FileVault is Off.", updates=None)
    assert unset["macos_updates"] == "unset"
    row = next(r for r in doctor.host_fact_checks("mini", unset, False) if "updates" in r.check)
    assert row.status == "warn" and "macOS default" in row.detail


def test_debian_host_checks_only_sudo(tmp_path):
    facts = _facts_from_stand_ins(tmp_path, uname="Linux", sudo_rc=0)
    assert facts == {"os": "Linux", "sudo": "ok"}
    assert [r.check for r in doctor.host_fact_checks("box", facts, False)] == ["box: sudo"]


def test_become_password_from_the_inventory_is_noticed_not_read(tmp_path):
    import yaml

    inv = tmp_path / "hosts.yml"
    host = {"ansible_host": "10.0.0.5", "ansible_become_password": "{{ vault_become_password }}"}
    inv.write_text(yaml.safe_dump({"homeport": {"hosts": {"mini": host, "box": {"ansible_host": "10.0.0.6"}}}}))
    targets = {t.name: t for t in doctor.inventory_targets(inv)}
    assert targets["mini"].become_password_set and not targets["box"].become_password_set


def test_homebrew_never_tells_users_to_remove_passwordless_sudo():
    """Every later run needs sudo (become): the homebrew role's refusal and README must not suggest removing it."""
    from pathlib import Path

    role = Path(__file__).resolve().parents[2] / "roles" / "homebrew"
    for path in (role / "tasks" / "validate.yml", role / "README.md"):
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert "may remove" not in text, path
        assert "every later homeport run uses sudo" in text, path
        assert "ansible_become_password" in text, path
