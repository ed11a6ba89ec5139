"""Issue 21: the load test's short mode against this scenario's deployed stack (bench/load.py --short, through an
SSH tunnel to the target, then with two agent containers added), its figures printed into the scenario's log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_load_short_mode(host):
    container = host.backend.get_hostname()
    r = subprocess.run(
        # the API opens a database connection per request with a 3 s timeout: on CI's shared 2-core machine a few
        # requests of the agents' phase can time out (seen once: 2 of 28); a broken path fails every request
        [sys.executable, str(ROOT / "bench" / "load.py"), "--container", container, "--short", "--json",
         "--max-error-percent", "10"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    print(r.stdout)
    print(r.stderr, file=sys.stderr)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout[r.stdout.index("\n{") :])
    stack, agents = doc["phases"]
    assert stack["phase"] == "stack" and agents["phase"] == "stack + 2 agents"
    for phase in (stack, agents):
        assert phase["requests"] > 0 and phase["errors"] <= 0.1 * (phase["requests"] + phase["errors"])
        assert phase["p50_ms"] <= phase["p95_ms"] <= phase["p99_ms"]
        assert 0 < phase["peak_mib"] <= phase["limits_mib"] <= doc["budget_mib"]
        assert phase["memory_samples"] > 0
    assert agents["limits_mib"] == stack["limits_mib"] + 512  # two agents of 256m
    # the agents are gone again, the stack still serves
    assert "loadagent" not in host.run("docker ps -a --format '{{.Names}}'").stdout
    assert host.run("curl -fsS http://127.0.0.1:18080/health").rc == 0
