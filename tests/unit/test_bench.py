"""bench/: the delay proxy really adds the round-trip time (and only latency), the recap is parsed, the settings
profiles are what they claim, and the report prints the figures and the `ratio:` line."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import proxy  # noqa: E402
import run as bench  # noqa: E402


@pytest.fixture
def echo_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn):
        with conn:
            conn.sendall(b"banner\n")
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    stop.set()
    srv.close()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed early")
        buf += chunk
    return buf


def test_proxy_adds_the_round_trip_time_each_way(echo_server):
    rtt_ms = 200
    p = proxy.DelayProxy("127.0.0.1", echo_server, rtt_ms).start()
    try:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", p.port)) as s:
            assert _recv_exactly(s, 7) == b"banner\n"
            banner = time.monotonic() - t0  # SYN out + banner back: one RTT
            t1 = time.monotonic()
            s.sendall(b"ping")
            assert _recv_exactly(s, 4) == b"ping"
            echo = time.monotonic() - t1  # request out + reply back: one RTT
            # latency, not serialisation: 20 chunks sent back to back come back ~one RTT later, not 20 RTTs
            t2 = time.monotonic()
            for i in range(20):
                s.sendall(b"%02d" % i)
            assert _recv_exactly(s, 40) == b"".join(b"%02d" % i for i in range(20))
            burst = time.monotonic() - t2
    finally:
        p.stop()
    assert 0.19 <= banner < 0.4, banner
    assert 0.19 <= echo < 0.4, echo
    assert 0.19 <= burst < 0.5, burst
    assert p.connections == 1


def test_proxy_zero_rtt_and_bad_rtt(echo_server):
    p = proxy.DelayProxy("127.0.0.1", echo_server, 0).start()
    try:
        assert proxy.measure_rtt("127.0.0.1", p.port) < 0.1
    finally:
        p.stop()
    with pytest.raises(ValueError, match="rtt_ms"):
        proxy.DelayProxy("127.0.0.1", echo_server, -1)


def test_recap_parsing_counts_executed_tasks():
    out = (
        "PLAY RECAP *********\n"
        "bench                      : ok=24   changed=3    unreachable=0    failed=1    skipped=2    "
        "rescued=0    ignored=0\n"
    )
    m = list(bench._RECAP.finditer(out))[-1]
    run = bench.Run("homeport", 1, "rerun", 6.0, 0, ok=int(m["ok"]), changed=int(m["changed"]), failed=int(m["failed"]))
    assert run.tasks == 25 and run.per_task == pytest.approx(0.24)


def test_profiles_hold_what_they_claim(tmp_path):
    stock, home = bench.make_profiles(["stock", "homeport"], tmp_path)
    assert not any(k in stock.env for k in ("ANSIBLE_PIPELINING", "ANSIBLE_SSH_ARGS", "ANSIBLE_GATHERING"))
    assert home.env["ANSIBLE_PIPELINING"] == "True"
    assert "ControlPersist=600s" in home.env["ANSIBLE_SSH_ARGS"]
    assert home.env["ANSIBLE_GATHERING"] == "smart" and home.env["ANSIBLE_CACHE_PLUGIN"] == "jsonfile"
    with pytest.raises(SystemExit, match="unknown profile"):
        bench.make_profiles(["fast"], tmp_path)


def _runs(stock_s: float, home_s: float, tasks: int = 24) -> list:
    runs = []
    for profile, secs in (("stock", stock_s), ("homeport", home_s)):
        for phase in bench.PHASES:
            changed = 10 if phase == "bootstrap" else 0
            runs.append(
                bench.Run(profile, 1, phase, secs * (2 if phase == "bootstrap" else 1), 0, ok=tasks, changed=changed)
            )
    return runs


def test_report_prints_figures_and_ratio(tmp_path, capsys):
    profiles = [bench.Profile("stock", {}), bench.Profile("homeport", {})]
    args = argparse.Namespace(mode="short", rtt_ms=150.0, reps=1, playbook_label="bench/playbooks/bench.yml")
    fp = {
        "stock": {"/etc/x": "a", "benchapp.service": "active"},
        "homeport": {"/etc/x": "a", "benchapp.service": "active"},
    }
    rc = bench.report(_runs(24.0, 4.8), profiles, fp, args, tmp_path / "r.json")
    out = capsys.readouterr().out
    assert rc == 0
    assert [line for line in out.splitlines() if line.startswith("ratio:")] == ["ratio: 5.00"]
    assert "homeport          rerun         24       0     4.80   0.200" in out
    assert "target rerun >= 4x faster than stock at 150 ms: met" in out
    assert "target <= 0.25 s per executed task (homeport rerun, bench/playbooks/bench.yml): 0.200 met" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["ratio"] == 5.0 and {f["profile"] for f in doc["figures"]} == {"stock", "homeport"}


def test_report_site_gives_the_per_task_target_on_homeports_own_playbook(tmp_path, capsys):
    out_file = tmp_path / "r.json"
    out_file.write_text(json.dumps({"ratio": 9.5}))
    site = bench.Profile("homeport-site", {})
    runs = [
        bench.Run("homeport-site", rep, phase, secs, 0, ok=tasks)
        for rep, (boot, rerun) in enumerate([(50.0, 16.6), (49.0, 15.0)], start=1)
        for phase, secs, tasks in (("bootstrap", boot, 99), ("rerun", rerun, 83))
    ]
    assert bench.report_site(runs, site, out_file) == 0
    out = capsys.readouterr().out
    # median of 15.0 and 16.6 over 83 tasks
    assert "target <= 0.25 s per executed task (homeport rerun, homeport's own site playbook): 0.190 met" in out
    doc = json.loads(out_file.read_text())
    assert doc["ratio"] == 9.5 and {f["phase"] for f in doc["site"]["figures"]} == {"bootstrap", "rerun"}

    slow = [bench.Run("homeport-site", 1, "rerun", 24.0, 0, ok=83)]
    assert bench.report_site(slow, bench.Profile("homeport-site", {}), out_file) == 0
    assert "homeport's own site playbook): 0.289 NOT met" in capsys.readouterr().out
    broken = bench.Profile("homeport-site", {}, problems=["rerun (rep 1) failed rc=2"])
    assert bench.report_site([], broken, out_file) == 1


def test_report_flags_an_incorrect_profile(tmp_path, capsys):
    profiles = [
        bench.Profile("stock", {}),
        bench.Profile("homeport", {}, problems=["rerun (rep 1) reported changed=2"]),
    ]
    args = argparse.Namespace(mode="short", rtt_ms=30.0, reps=1, playbook_label="x")
    fp = {
        "stock": {"/etc/x": "a", "benchapp.service": "active"},
        "homeport": {"/etc/x": "b", "benchapp.service": "active"},
    }
    rc = bench.report(_runs(10.0, 5.0), profiles, fp, args, tmp_path / "r.json")
    out = capsys.readouterr().out
    assert rc == 1
    assert (
        "homeport: INCORRECT: rerun (rep 1) reported changed=2; bootstrapped host differs from stock's: /etc/x" in out
    )
    assert "target rerun >= 4x faster than stock at 150 ms: NOT met (measured at 30 ms)" in out
