"""The shared fast-path filters (plugins/filter/host_state.py): whether systemd's and dpkg's one-call answers mean
the slow module (systemd_service, apt) has nothing to do."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("host_state", ROOT / "plugins" / "filter" / "host_state.py")
hs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hs)


@pytest.mark.parametrize(
    ("stdout", "units", "running"),
    [
        ("loaded\nactive\nenabled\n", ["docker.service"], True),  # systemd's own order, not the asked one
        ("loaded\nactive\nenabled\nloaded\nenabled\nactive", ["a.timer", "b.timer"], True),
        ("loaded\ninactive\nenabled", ["docker.service"], False),  # stopped
        ("loaded\nactive\ndisabled", ["docker.service"], False),  # not started at boot
        ("not-found\ninactive\n", ["docker.service"], False),  # no such unit: fewer values
        ("loaded\nactive\nenabled", ["a.timer", "b.timer"], False),  # one unit's values missing
        ("", [], True),
        (None, ["docker.service"], False),
    ],
)
def test_units_running(stdout, units, running):
    assert hs.units_running(stdout, units) is running


@pytest.mark.parametrize(
    ("dpkg", "missing"),
    [
        ({"rc": 0, "stdout_lines": ["installed", "installed"]}, False),
        ({"rc": 0, "stdout_lines": ["installed", "not-installed"]}, True),
        ({"rc": 0, "stdout_lines": ["installed", "config-files"]}, True),  # removed, configuration kept
        ({"rc": 1, "stdout_lines": ["installed"]}, True),  # dpkg-query never heard of one of them
        ({}, True),
    ],
)
def test_packages_missing(dpkg, missing):
    assert hs.packages_missing(dpkg) is missing
