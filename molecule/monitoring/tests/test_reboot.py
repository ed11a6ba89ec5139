"""The Debian journey's boot (issue 15), after the monitoring checks (this file sorts after test_monitoring.py): the
host container is restarted with `docker restart` and nothing of homeport or Ansible runs afterwards. Docker, every
stack container (running and healthy), the API on the tailnet address that tailscale0 gets only seconds after
dockerd has restarted the containers (prepare.yml's unit), the rows written before, nftables' ruleset, fail2ban's
sshd jail, the backup/check/drill timers and every Prometheus target must come back by themselves. The time from the
restart to a healthy stack is printed. The control shows the race is real: without ip_nonlocal_bind Docker refuses to
publish a port on an address the host does not have."""

from __future__ import annotations

import json
import subprocess
import time

from homeport_testinfra import run_ok

TAILNET = "100.87.65.43"  # prepare.yml's homeport-sim-tailnet.service
PROJECT = "teststack"
PSQL = "docker exec {db} psql -U brain -d brain -tAc"
BOOT_BOUND_S = 240  # restart -> stack healthy on a loaded 2-core machine
TIMERS = ["homeport-backup.timer", "homeport-backup-check.timer", "homeport-backup-drill.timer"]


def stack(host) -> dict[str, str]:
    out = host.run(
        f"docker ps -a --filter label=com.docker.compose.project={PROJECT} "
        "--format '{{.Label \"com.docker.compose.service\"}} {{.Status}}'",
    )
    if out.rc != 0:
        return {}
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


def db_container(host) -> str:
    return run_ok(
        host,
        f"docker ps -q --filter label=com.docker.compose.project={PROJECT} "
        "--filter label=com.docker.compose.service=db",
    ).strip()


def api_answers(host) -> bool:
    return host.run(f"curl -fsS --max-time 3 http://{TAILNET}:18080/health").rc == 0


def wait_for(what: str, check, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def booted(host) -> bool:
    if host.run("systemctl is-active docker").stdout.strip() != "active":
        return False
    services = stack(host)
    return (
        set(services) == {"db", "api"}
        and all(s.startswith("Up") and "(healthy)" in s for s in services.values())
        and api_answers(host)
    )


def test_everything_comes_back_after_a_restart_of_the_host_without_a_homeport_run(host):
    name = host.backend.host
    # before: the stack publishes on the tailnet address the shared facts read live (not 127.0.0.1)
    ports = run_ok(host, f"docker ps --filter label=com.docker.compose.project={PROJECT} --format '{{{{.Ports}}}}'")
    assert f"{TAILNET}:18080->" in ports and f"{TAILNET}:15432->" in ports, ports
    assert api_answers(host)
    db = db_container(host)
    run_ok(
        host,
        f'{PSQL.format(db=db)} "CREATE TABLE IF NOT EXISTS journey (id int PRIMARY KEY, note text); '
        "INSERT INTO journey SELECT g, 'row ' || g FROM generate_series(1, 250) g ON CONFLICT DO NOTHING\"",
    )

    t0 = time.monotonic()
    subprocess.run(["docker", "restart", "-t", "2", name], check=True, capture_output=True, timeout=120)
    wait_for("docker, the stack healthy and the API on the tailnet address", lambda: booted(host), BOOT_BOUND_S)
    healthy_s = time.monotonic() - t0
    print(f"\n[journey] docker restart {name} -> stack healthy, API on {TAILNET}: {healthy_s:.1f} s")

    # the address did come late: the unit ran after docker.service, and the ports survived anyway
    assert run_ok(host, "sysctl -n net.ipv4.ip_nonlocal_bind").strip() == "1"
    assert run_ok(host, "sysctl -n net.ipv6.ip_nonlocal_bind").strip() == "1"
    assert f"inet {TAILNET}/32" in run_ok(host, "ip -4 addr show dev tailscale0")
    assert run_ok(host, "tailscale ip -4").strip() == TAILNET
    count = run_ok(host, f"{PSQL.format(db=db_container(host))} 'SELECT count(*) FROM journey'").strip()
    assert count == "250", count

    assert "table inet homeport_filter" in run_ok(host, "nft list table inet homeport_filter")
    assert "policy drop" in run_ok(host, "nft list chain inet homeport_filter input")
    assert host.service("fail2ban").is_running
    assert "Status for the jail: sshd" in wait_for(
        "fail2ban's sshd jail", lambda: host.run("fail2ban-client status sshd").stdout, 60
    )
    states = host.run("systemctl is-active " + " ".join(TIMERS)).stdout.split()
    assert states == ["active"] * len(TIMERS), dict(zip(TIMERS, states, strict=False))

    def targets_up():
        out = host.run("curl -fsS http://127.0.0.1:9090/api/v1/targets")
        if out.rc != 0:
            return None
        targets = json.loads(out.stdout)["data"]["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_for("every Prometheus target up again", targets_up, 120, 2.0)
    print(f"[journey] {len(targets)} Prometheus targets up {time.monotonic() - t0:.1f} s after the restart")


def test_without_nonlocal_bind_docker_refuses_an_address_the_host_does_not_have(host):
    """The control: the race the role's sysctl wins (roles/docker_engine/README.md)."""
    absent = "100.87.65.99"
    run_ok(host, "sysctl -qw net.ipv4.ip_nonlocal_bind=0")
    try:
        r = host.run(f"docker run --rm -p {absent}:18999:80 homeport/debian:13 true")
        assert r.rc != 0 and "cannot assign requested address" in r.stderr, (r.rc, r.stderr)
    finally:
        run_ok(host, "sysctl -qw net.ipv4.ip_nonlocal_bind=1")
    r = host.run(f"docker run --rm -p {absent}:18999:80 homeport/debian:13 true")
    assert r.rc == 0, r.stderr
