"""bench/load.py: the arithmetic of its figures (percentiles, docker's memory sizes, the budget check, the report)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("bench_load", Path(__file__).resolve().parents[2] / "bench" / "load.py")
load = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(load)


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert load.percentile(values, 50) == 50
    assert load.percentile(values, 95) == 95
    assert load.percentile(values, 99) == 99
    assert load.percentile(values, 100) == 100
    assert load.percentile([7.0], 99) == 7.0
    assert load.percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert load.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert load.percentile([], 50) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("0B", 0), ("512kB", 512 * 1000), ("1e+03kB", 1000 * 1000), ("123.5MiB", int(123.5 * 1024**2)),
     ("1.5GiB", int(1.5 * 1024**3)), ("256m", 256 * 1024**2), ("14g", 14 * 1024**3)],
)  # fmt: skip
def test_sizes_as_docker_prints_them(text, value):
    # kB is decimal (go-units HumanSize), KiB/MiB/GiB binary (BytesSize); 256m/14g configured sizes (RAMInBytes)
    assert load.to_bytes(text) == value


def test_size_refuses_garbage():
    with pytest.raises(ValueError, match="not a size"):
        load.to_bytes("lots")


def test_stats_usage_sums_only_the_named_containers():
    out = (
        "teststack-db-1\t41.2MiB / 512MiB\n"
        "teststack-api-1\t20.5MiB / 256MiB\n"
        "someone-else\t1GiB / 2GiB\n"
        "teststack-loadagent-1\t10MiB / 256MiB\n"
    )
    names = {"teststack-db-1", "teststack-api-1"}
    assert load.stats_usage(out, names) == int(41.2 * 1024**2) + int(20.5 * 1024**2)
    assert load.stats_usage(out, names | {"teststack-loadagent-1"}) == load.stats_usage(out, names) + 10 * 1024**2
    assert load.stats_usage("", names) == 0


def test_phase_summary_and_report():
    lat = [float(v) for v in range(1, 201)]  # 200 requests over 10 s
    p = load.phase_summary("stack", lat, 0, 10.0, peak=300 * 1024**2, limits=768 * 1024**2)
    assert (p["requests"], p["rps"], p["p50_ms"], p["p95_ms"], p["p99_ms"]) == (200, 20.0, 100.0, 190.0, 198.0)
    assert (p["peak_mib"], p["limits_mib"], p["errors"]) == (300.0, 768.0, 0)
    p["clients"] = 4
    report = load.format_report([p], 14 * 1024**3)
    assert report.splitlines()[0].split()[:3] == ["phase", "clients", "req"]
    assert report.splitlines()[1].split() == [
        "stack", "4", "200", "20.0", "100.0", "190.0", "198.0", "0", "300.0", "768.0", "14336",
    ]  # fmt: skip
    empty = load.phase_summary("stack", [], 3, 5.0, peak=0, limits=0)
    assert empty["p50_ms"] is None and empty["errors"] == 3


def test_error_percent():
    assert load.error_percent({"requests": 95, "errors": 5}) == 5.0
    assert load.error_percent({"requests": 0, "errors": 0}) == 100.0  # nothing answered: the worst case


def test_agents_must_fit_the_budget():
    gib = 1024**3
    assert load.fits_budget(12 * gib, 2 * gib, 14 * gib)
    assert not load.fits_budget(12 * gib + 1, 2 * gib, 14 * gib)


def test_bounds_are_refused_with_exit_3(capsys):
    assert load.main(["--container", "x", "--clients", "500"]) == 3
    assert load.main(["--container", "x", "--seconds", "9999"]) == 3
    assert load.main(["--container", "x", "--budget", "lots"]) == 3
    assert "refused" in capsys.readouterr().err
