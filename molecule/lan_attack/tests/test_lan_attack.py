"""A LAN neighbour against the bootstrapped hosts (issue 27): hand-made frames to the host's MAC.

This machine is on the scenario's Docker network, the same Ethernet segment as the hosts: a neighbour. Each host
publishes three services from its own engine, as a stack does: one on 127.0.0.1, one on the tailnet address (on
tailscale0) and one on every address (the user's opt-in, the control that the probe reaches the host at all). The
neighbour sends SYNs with the host's MAC as the frame's destination and 127.0.0.1, the tailnet address or the
container's own address as the IP destination (homeport.lanprobe); Docker before 28 DNATs the first two to the
container (moby issue 45610) and forwards the third. With homeport's ruleset none may answer; without it (the control:
the table deleted) they must, or this test could not fail. Reloading the ruleset as at boot closes them again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from homeport import audit

HOSTS = ("lan_attack-deb12", "lan_attack-deb13")
NETWORK = "lan_attack-net"
TAILNET = "100.87.65.43"
LOOP_PORT, TAIL_PORT, PUBLIC_PORT = 15432, 18080, 18090
IMAGE = "homeport/busybox:1"


def sh(host: str, script: str, check: bool = True) -> str:
    r = subprocess.run(["docker", "exec", host, "sh", "-c", script], capture_output=True, text=True, check=False)
    assert r.returncode == 0 or not check, f"{host}: {script}: {r.stderr or r.stdout}"
    return r.stdout.strip()


def address(host: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}', host],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def probe(host_address: str, destinations: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """What the neighbour gets for each destination: open (SYN-ACK), closed (RST) or filtered (nothing)."""
    r = subprocess.run(
        [sys.executable, "-m", "homeport.lanprobe", host_address, *(f"{a}:{p}" for a, p in destinations)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    answers = json.loads(r.stdout)
    assert isinstance(answers, list), f"the probe could not run: {answers}"
    return {(a["address"], a["port"]): a["state"] for a in answers}


@pytest.fixture(scope="module")
def stacks():
    """Per host: its LAN address, and the destinations a neighbour must not reach."""
    found = {}
    for host in HOSTS:
        sh(host, "docker rm -f lan-loop lan-tail lan-public >/dev/null 2>&1 || true")
        sh(host, f"docker run -d --name lan-loop -p 127.0.0.1:{LOOP_PORT}:80 {IMAGE} >/dev/null")
        sh(host, f"docker run -d --name lan-tail -p {TAILNET}:{TAIL_PORT}:80 {IMAGE} >/dev/null")
        sh(host, f"docker run -d --name lan-public -p {PUBLIC_PORT}:80 {IMAGE} >/dev/null")
        container = sh(host, "docker inspect -f '{{.NetworkSettings.IPAddress}}' lan-loop")
        found[host] = {
            "address": address(host),
            "closed": [("127.0.0.1", LOOP_PORT), (TAILNET, TAIL_PORT), (container, 80), ("127.0.0.1", PUBLIC_PORT)],
        }
    yield found
    for host in HOSTS:
        sh(host, "docker rm -f lan-loop lan-tail lan-public >/dev/null 2>&1 || true", check=False)


def inventory() -> Path:
    env = os.environ.get("MOLECULE_INVENTORY_FILE")
    if env and Path(env).exists():
        return Path(env)
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"


def audit_lan(host: str) -> audit.CheckResult:
    (target,) = audit.targets_from_inventory(inventory(), limit=host)
    return audit.check_lan(target, None)


@pytest.mark.parametrize("host", HOSTS)
def test_services_answer_where_they_are_published(stacks, host):
    """The legitimate paths still work: the host itself on 127.0.0.1 and the tailnet address, one container of the
    host to another (through the bridge: the forward chain must not cut it), the opt-in port from the LAN."""
    for url in (f"http://127.0.0.1:{LOOP_PORT}/", f"http://{TAILNET}:{TAIL_PORT}/"):
        assert sh(host, f"curl -s -o /dev/null -w '%{{http_code}}' -m 5 {url}") == "404", url  # busybox httpd: no index
    other = sh(host, "docker inspect -f '{{.NetworkSettings.IPAddress}}' lan-tail")
    fetch = f"/bin/busybox wget -S -T 5 -O /dev/null http://{other}:80/"
    out = sh(host, f"docker run --rm {IMAGE} {fetch} 2>&1 || true")
    assert "HTTP/1.1" in out, out
    opt_in = probe(stacks[host]["address"], [(stacks[host]["address"], PUBLIC_PORT)])
    assert set(opt_in.values()) == {"open"}, f"{host}: the published-everywhere port must answer the LAN: {opt_in}"


@pytest.mark.parametrize("host", HOSTS)
def test_a_neighbour_gets_no_answer(stacks, host):
    got = probe(stacks[host]["address"], stacks[host]["closed"])
    print(f"\n{host}: neighbour's probe with homeport's ruleset: {got}")
    assert not [d for d, state in got.items() if state == "open"], f"{host}: reachable from the LAN: {got}"
    result = audit_lan(host)
    assert result.status == "pass", (result.detail, result.findings)


@pytest.mark.parametrize("host", HOSTS)
def test_control_without_the_ruleset_the_attack_succeeds_and_a_reload_closes_it(stacks, host):
    """The control: with the ruleset homeport wrote before issue 27 (the input chain alone: the prerouting and forward
    chains deleted) the same frames reach the services (the engine's NAT and forwarding let them through), and
    `homeport audit` fails; the ruleset as loaded at boot closes them again."""
    sh(host, "nft delete chain inet homeport_filter prerouting && nft delete chain inet homeport_filter forward")
    assert "chain input" in sh(host, "nft list table inet homeport_filter")
    try:
        got = probe(stacks[host]["address"], stacks[host]["closed"][:3])
        print(f"\n{host}: the same probe with the input chain alone: {got}")
        assert set(got.values()) == {"open"}, f"{host}: the control must reach every path: {got}"
        result = audit_lan(host)
        assert result.status == "fail", (result.detail, result.findings)
        assert any(f"127.0.0.1:{LOOP_PORT}" in f for f in result.findings), result.findings
        assert any(f"{TAILNET}:{TAIL_PORT}" in f for f in result.findings), result.findings
    finally:
        # what nftables.service runs at boot (ExecStart; a restart would run its ExecStop, `nft flush ruleset`)
        sh(host, "nft -f /etc/nftables.conf")
    got = probe(stacks[host]["address"], stacks[host]["closed"])
    assert not [d for d, state in got.items() if state == "open"], f"{host}: after the reload: {got}"
