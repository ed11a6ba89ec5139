"""Unit tests of the hardening role's filters (roles/hardening/filter_plugins/hardening.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILTERS = ROOT / "roles/hardening/filter_plugins/hardening.py"
_spec = importlib.util.spec_from_file_location("hardening_filters", FILTERS)
hf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hf)

SSHD_T = """port 22
addressfamily any
permitrootlogin without-password
passwordauthentication no
authorizedkeysfile .ssh/authorized_keys /etc/ssh/keys/%u.pub %h/.ssh/extra_%%
allowusers homeport
allowusers deploy
"""


def test_sshd_effective_keeps_repeated_keywords():
    eff = hf.sshd_effective(SSHD_T)
    assert eff["port"] == ["22"]
    assert eff["allowusers"] == ["homeport", "deploy"]
    assert eff["permitrootlogin"] == ["without-password"]


def test_authorized_keys_files_expand_tokens_and_relative_paths():
    files = hf.sshd_authorized_keys_files(SSHD_T, "homeport", "/home/homeport", 1000)
    assert files == [
        "/home/homeport/.ssh/authorized_keys",
        "/etc/ssh/keys/homeport.pub",
        "/home/homeport/.ssh/extra_%",
    ]
    assert hf.sshd_authorized_keys_files("authorizedkeysfile none\n", "u", "/h") == []


STOCK_DEBIAN = "# comment\n\nInclude /etc/ssh/sshd_config.d/*.conf\n\nKbdInteractiveAuthentication no\nUsePAM yes\n"


def test_include_first_leaves_a_good_file_alone():
    assert hf.sshd_include_first(STOCK_DEBIAN, "Include /etc/ssh/sshd_config.d/*.conf") == STOCK_DEBIAN
    mac = "# c\nInclude /etc/ssh/sshd_config.d/*\n#Port 22\n"
    assert hf.sshd_include_first(mac, "Include /etc/ssh/sshd_config.d/*") == mac


def test_include_first_moves_the_include_on_top():
    reset = "PasswordAuthentication yes\n# comment\nUsePAM yes\nInclude /etc/ssh/sshd_config.d/*.conf\n"
    out = hf.sshd_include_first(reset, "Include /etc/ssh/sshd_config.d/*.conf")
    assert out == "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n# comment\nUsePAM yes\n"
    # idempotent: a second pass changes nothing
    assert hf.sshd_include_first(out, "Include /etc/ssh/sshd_config.d/*.conf") == out


def test_include_first_adds_a_missing_include_and_a_final_newline():
    assert hf.sshd_include_first("UsePAM yes", "Include /etc/ssh/sshd_config.d/*") == (
        "Include /etc/ssh/sshd_config.d/*\nUsePAM yes\n"
    )
    assert hf.sshd_include_first("", "Include x/sshd_config.d/*") == "Include x/sshd_config.d/*\n"


PMSET_CUSTOM = """AC Power:
 Sleep On Power Button 1
 autorestart          0
 powernap             1
 disksleep            10
 sleep                1
 womp                 1
"""

PMSET_LIVE = """System-wide power settings:
Currently in use:
 standby              0
 sleep                0 (sleep prevented by powerd, sharingd)
 womp                 1
"""


def test_pmset_parses_sections_spaces_and_notes():
    s = hf.pmset_settings(PMSET_CUSTOM)
    assert s["AC Power"]["Sleep On Power Button"] == "1"
    assert s["AC Power"]["disksleep"] == "10"
    live = hf.pmset_settings(PMSET_LIVE)
    assert live["Currently in use"]["sleep"] == "0"


def test_pmset_changes_only_what_differs():
    wanted = {"sleep": 0, "disksleep": 0, "autorestart": 1, "womp": 1}
    assert hf.pmset_changes(PMSET_CUSTOM, wanted) == {"sleep": "0", "disksleep": "0", "autorestart": "1"}
    ups = PMSET_CUSTOM + "UPS Power:\n sleep                1\n"
    assert hf.pmset_changes(ups.replace(" sleep                1\n", " sleep                0\n", 1), {"sleep": 0}) == {
        "sleep": "0"
    }
    assert hf.pmset_changes(PMSET_CUSTOM, {"womp": True}) == {}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "Firewall is enabled. (State = 1)\nFirewall stealth mode is on\n"
            "Automatically allow built-in signed software ENABLED.\n"
            "Automatically allow downloaded signed software DISABLED.",
            {"enabled": True, "stealth": True, "allow_signed": True, "allow_downloaded_signed": False},
        ),
        (
            "Firewall is disabled. (State = 0)\nStealth mode disabled\nAutomatically allow signed software ENABLED",
            {"enabled": False, "stealth": False, "allow_signed": True, "allow_downloaded_signed": None},
        ),
        (
            "Firewall is blocking all non-essential incoming connections. (State = 2)\nStealth mode enabled",
            {"enabled": True, "stealth": True, "allow_signed": None, "allow_downloaded_signed": None},
        ),
    ],
)
def test_socketfilterfw_state_old_and_new_wordings(output, expected):
    assert hf.socketfilterfw_state(output) == expected


def test_socketfilterfw_apps():
    out = (
        "ALF: total number of apps = 2 \n\n1 :  /Applications/Tailscale.app \n \t ( Allow incoming connections ) \n\n"
        "2 :  /usr/local/bin/thing \n \t ( Block incoming connections ) \n"
    )
    assert hf.socketfilterfw_apps(out) == {"/Applications/Tailscale.app": True, "/usr/local/bin/thing": False}


def test_filevault():
    assert hf.filevault_on("FileVault is On.")
    assert hf.filevault_on("FileVault is On.\nEncryption in progress: Percent completed = 42.1")
    assert not hf.filevault_on("FileVault is Off.")


def test_networks():
    assert hf.invalid_networks(["192.168.1.0/24", "fd7a:115c:a1e0::/48", "192.168.1.1/24", "nonsense"]) == [
        "192.168.1.1/24",
        "nonsense",
    ]
    assert hf.split_networks(["100.64.0.0/10", "fd7a:115c:a1e0::/48"]) == {
        "ipv4": ["100.64.0.0/10"],
        "ipv6": ["fd7a:115c:a1e0::/48"],
    }
    assert hf.ip_in_networks("100.101.102.103", ["100.64.0.0/10"])
    assert hf.ip_in_networks("fd7a:115c:a1e0::1", ["100.64.0.0/10", "fd7a:115c:a1e0::/48"])
    assert not hf.ip_in_networks("203.0.113.9", ["100.64.0.0/10", "192.168.1.0/24"])
    assert not hf.ip_in_networks("not-an-ip", ["0.0.0.0/0"])
