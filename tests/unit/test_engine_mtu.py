"""Issue 13: the Docker engine's MTU follows the host's uplink (plugins/filter/engine_mtu.py), in the
docker_engine role's daemon.json and in the dind test images' boot step (src/homeport/images/homeport-dind-mtu)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_docker_engine_config import RENDER, VALIDATE, playbook

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("engine_mtu", ROOT / "plugins" / "filter" / "engine_mtu.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
engine_mtu, engine_mtu_settings, mtu_override_error = _mod.engine_mtu, _mod.engine_mtu_settings, _mod.mtu_override_error
SCRIPT = ROOT / "src" / "homeport" / "images" / "homeport-dind-mtu"


@pytest.mark.parametrize(
    ("uplink", "override", "expected"),
    [
        (1500, "auto", 0),  # Docker's default already fits: nothing set
        (9001, "auto", 0),  # jumbo uplink: Docker's 1500 fits inside it
        (1400, "auto", 1400),  # this CI machine
        (1492, "auto", 1492),  # PPPoE
        (1280, "auto", 1280),  # a tailnet-only host
        (None, "auto", 0),  # no default route: nothing to follow
        ("", "auto", 0),
        (1400, 1300, 1300),  # the override wins ...
        (1500, "1450", 1450),  # ... also above a 1500 uplink
        (1400, None, 1400),
    ],
)
def test_mtu_decision(uplink, override, expected):
    assert engine_mtu(uplink, override) == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("big", "must be 'auto' or a number"),
        (100, "from 1280 to 9216"),
        (True, "must be 'auto' or a number"),
        (20000, "from 1280 to 9216"),
    ],
)
def test_bad_override_names_the_rule(value, rule):
    assert rule in mtu_override_error(value)
    with pytest.raises(ValueError):
        engine_mtu(1500, value)


def test_settings_with_and_without_network_opts():
    assert engine_mtu_settings(0) == {}
    assert engine_mtu_settings(1400, network_opts=False) == {"mtu": 1400}
    assert engine_mtu_settings(1400) == {
        "mtu": 1400,
        "default-network-opts": {"bridge": {"com.docker.network.driver.mtu": "1400"}},
    }


@pytest.mark.parametrize(
    ("uplink", "help_text", "expected"),
    [
        (1500, "--default-network-opt mapmap", {}),
        (1400, "--mtu int", {"mtu": 1400}),  # Debian 12's dockerd 20.10: no default-network-opts
        (
            1400,
            "--default-network-opt mapmap",
            {"mtu": 1400, "default-network-opts": {"bridge": {"com.docker.network.driver.mtu": "1400"}}},
        ),
    ],
)
def test_role_daemon_json_follows_the_uplink(tmp_path, uplink, help_text, expected):
    r = playbook(
        tmp_path,
        RENDER,
        {
            "out": str(tmp_path),
            "_docker_engine_uplink_mtu": uplink,
            "_docker_engine_dockerd_help": {"stdout": help_text},
        },
    )
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = json.loads((tmp_path / "daemon.json").read_text())
    assert {k: v for k, v in cfg.items() if k in ("mtu", "default-network-opts")} == expected


def test_role_override_wins(tmp_path):
    r = playbook(
        tmp_path,
        RENDER,
        {"out": str(tmp_path), "_docker_engine_uplink_mtu": 1400, "docker_engine_mtu": 1280},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path / "daemon.json").read_text())["mtu"] == 1280


def test_role_refuses_a_bad_mtu(tmp_path):
    r = playbook(
        tmp_path, VALIDATE, {"homeport_os_family": "Debian", "docker_engine_users": [], "docker_engine_mtu": 99}
    )
    assert r.returncode != 0
    assert "docker_engine_mtu: 99 must be from 1280 to 9216" in r.stdout, r.stdout


def fake_root(tmp_path: Path, mtu: int) -> Path:
    root = tmp_path / "root"
    (root / "proc/net").mkdir(parents=True)
    (root / "proc/net/route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    )
    (root / "sys/class/net/eth0").mkdir(parents=True)
    (root / "sys/class/net/eth0/mtu").write_text(f"{mtu}\n")
    return root


def run_script(root: Path, daemon: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), "--daemon-json", str(daemon), *flags],
        capture_output=True,
        text=True,
        check=True,
    )


def test_dind_boot_step_sets_and_clears_the_mtu(tmp_path):
    daemon = tmp_path / "daemon.json"
    daemon.write_text(json.dumps({"log-driver": "json-file"}))
    out = run_script(fake_root(tmp_path, 1400), daemon, "--network-opts").stdout
    assert "default route via eth0 (mtu 1400); engine mtu 1400" in out
    assert json.loads(daemon.read_text()) == {
        "log-driver": "json-file",
        "mtu": 1400,
        "default-network-opts": {"bridge": {"com.docker.network.driver.mtu": "1400"}},
    }
    before = daemon.stat().st_mtime_ns
    assert "wrote" not in run_script(fake_root(tmp_path / "again", 1400), daemon, "--network-opts").stdout
    assert daemon.stat().st_mtime_ns == before  # unchanged: not rewritten
    run_script(fake_root(tmp_path / "big", 1500), daemon, "--no-network-opts")
    assert json.loads(daemon.read_text()) == {"log-driver": "json-file"}  # a 1500 uplink: Docker's default again
