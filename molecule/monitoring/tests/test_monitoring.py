"""Verify the monitoring scenario: Debian's Prometheus, node_exporter, blackbox_exporter and Alertmanager run with
homeport's settings on 127.0.0.1 only, every target is up, the container metrics of the test stack arrive, the
Watchdog pings the dead man's switch, a stopped stack container's alert reaches the test webhook within a bounded
time (printed) and resolves after the restart, and a stale backup status fires BackupStale.

Last, the Debian journey's boot (issue 15): the host container is restarted with `docker restart` and nothing of
homeport or Ansible runs afterwards. Docker, every stack container (running and healthy), the API on the tailnet
address that tailscale0 gets only seconds after dockerd has restarted the containers (prepare.yml's unit), the rows
written before, nftables' ruleset, fail2ban's sshd jail, the backup/check/drill timers and every Prometheus target
must come back by themselves; the time from the restart to a healthy stack is printed. The control shows the race is
real: without ip_nonlocal_bind Docker refuses to publish a port on an address the host does not have."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml
from homeport_testinfra import run_ok

PROM = "http://127.0.0.1:9090"
WEBHOOK_LOG = "/var/log/monitoring-webhook.jsonl"
STATUS = "/var/lib/homeport/backup/status.json"
ALERT_BOUND_S = 120  # scrape 5s + evaluation 5s + for 10s + group_wait 1s, with room for a loaded machine
UNITS = {
    "prometheus": 160,
    "prometheus-alertmanager": 40,
    "prometheus-node-exporter": 32,
    "prometheus-blackbox-exporter": 32,
}


def query(host, promql: str) -> list[dict]:
    out = run_ok(host, f"curl -fsS --get {PROM}/api/v1/query --data-urlencode 'query={promql}'")
    doc = json.loads(out)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def wait_for(what: str, check, timeout: float, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def webhook(host, since: float) -> list[dict]:
    f = host.file(WEBHOOK_LOG)
    if not f.exists:
        return []
    rows = [json.loads(line) for line in f.content_string.splitlines() if line.strip()]
    return [r for r in rows if r["received_at"] >= since]


def notified(host, since: float, alertname: str, status: str, **labels):
    for row in webhook(host, since):
        if row["path"] != "/alerts" or not isinstance(row["body"], dict):
            continue
        for a in row["body"].get("alerts", []):
            if (
                a["labels"].get("alertname") == alertname
                and a["status"] == status
                and all(a["labels"].get(k) == v for k, v in labels.items())
            ):
                return row
    return None


def target_time(host) -> float:
    return float(run_ok(host, "date +%s.%N").strip())


def homeport_status(host, workdir: Path) -> tuple[int, dict]:
    """`homeport status --json` from the controller against this target (docker connection), as a user runs it."""
    name = host.backend.host
    inventory = workdir / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "homeport": {
                    "hosts": {
                        name: {
                            "ansible_connection": "community.docker.docker",
                            "ansible_host": name,
                            "homeport_admin_user": "root",
                            "homeport_roles": ["monitoring"],
                            "homeport_memory_budget": "4g",
                        }
                    }
                }
            }
        )
    )
    cli = Path(sys.executable).with_name("homeport")
    env = {**os.environ, "HOMEPORT_HOME": str(workdir / ".homeport")}
    proc = subprocess.run(
        [str(cli), "status", "-i", str(inventory), "--json"],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        check=False,
        timeout=300,
    )
    doc = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    assert doc, f"homeport status printed no JSON (rc={proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
    return proc.returncode, doc["summary"][name]


def firing(host) -> list[str]:
    doc = json.loads(run_ok(host, f"curl -fsS {PROM}/api/v1/alerts"))
    return [
        a["labels"]["alertname"]
        for a in doc["data"]["alerts"]
        if a["state"] == "firing" and a["labels"]["alertname"] != "Watchdog"
    ]


def test_daemons_run_with_their_memory_limits(host):
    for unit, mib in UNITS.items():
        assert host.service(unit).is_running, unit
        assert host.service(unit).is_enabled, unit
        limit = run_ok(host, f"systemctl show -p MemoryMax --value {unit}").strip()
        assert int(limit) == mib * 1024**2, (unit, limit)
    assert run_ok(host, "systemctl is-active homeport-metrics.timer").strip() == "active"


def test_nothing_listens_beyond_localhost(host):
    lines = run_ok(host, "ss -Htlnp").splitlines()
    mine = [ln for ln in lines if "prometheus" in ln]
    assert len(mine) == 4, lines
    for ln in mine:
        assert ln.split()[3].startswith("127.0.0.1:"), ln
    assert not any(":9094" in ln for ln in lines), "Alertmanager's gossip port must stay closed"
    assert not run_ok(host, "ss -Hulnp | grep prometheus || true").strip()


def test_configs_pass_the_hosts_own_tools(host):
    run_ok(host, "promtool check config /etc/prometheus/prometheus.yml")
    run_ok(host, "promtool check rules /etc/prometheus/homeport-rules.yml")
    out = run_ok(host, "amtool check-config /etc/prometheus/alertmanager.yml")
    assert "SUCCESS" in out
    am = host.file("/etc/prometheus/alertmanager.yml")
    assert (am.user, am.group, am.mode) == ("root", "prometheus", 0o640)
    args = host.file("/etc/default/prometheus").content_string
    assert "--storage.tsdb.retention.time=30d" in args and "--storage.tsdb.retention.size=1GB" in args


def test_every_target_is_up(host):
    def all_up():
        doc = json.loads(run_ok(host, f"curl -fsS {PROM}/api/v1/targets"))
        targets = doc["data"]["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_for("every scrape target up", all_up, 90)
    jobs = sorted({t["labels"]["job"] for t in targets})
    assert jobs == ["alertmanager", "blackbox", "node", "prometheus", "ssh", "stack"]
    ups = query(host, "up")
    assert ups and all(r["value"][1] == "1" for r in ups), ups
    probes = {r["metric"]["service"]: r["value"][1] for r in query(host, "probe_success")}
    assert probes == {"db": "1", "api": "1", "ssh": "1"}, probes
    print(f"\n[monitoring] {len(ups)} targets, all up == 1: {jobs}")


def test_container_metrics_reach_prometheus(host):
    def running():
        rows = query(host, 'homeport_container_running{project="teststack"}')
        return rows if {r["metric"]["service"] for r in rows} == {"db", "api"} else None

    rows = wait_for("container metrics", running, 60)
    assert all(r["value"][1] == "1" for r in rows)
    memory = {
        r["metric"]["service"]: float(r["value"][1]) for r in query(host, "homeport_container_memory_usage_bytes")
    }
    assert memory["db"] > 1024**2 and memory["api"] > 1024**2, memory
    limits = {
        r["metric"]["service"]: float(r["value"][1]) for r in query(host, "homeport_container_memory_limit_bytes")
    }
    assert limits == {"db": 512 * 1024**2, "api": 256 * 1024**2}
    assert float(query(host, 'homeport_container_cpu_seconds_total{service="db"}')[0]["value"][1]) > 0

    def healthy():
        rows = query(host, 'homeport_container_health_status{status="healthy"} == 1')
        return {r["metric"]["service"] for r in rows} == {"db", "api"}

    wait_for("both containers healthy in the metrics", healthy, 60)
    assert query(host, "homeport_memory_budget_bytes")[0]["value"][1] == str(4 * 1024**3)


def test_watchdog_pings_the_deadmans_switch(host):
    def pinged():
        return [r for r in webhook(host, 0) if r["path"] == "/deadman"]

    pings = wait_for("the Watchdog's ping", pinged, 90)
    body = pings[-1]["body"]
    assert body["receiver"] == "deadmans_switch"
    assert [a["labels"]["alertname"] for a in body["alerts"]] == ["Watchdog"]
    # the Watchdog goes only to the switch, never to the user's receivers
    assert not any(
        a["labels"]["alertname"] == "Watchdog"
        for r in webhook(host, 0)
        if r["path"] == "/alerts"
        for a in r["body"]["alerts"]
    )


def test_stopped_service_alerts_the_webhook_and_clears_after_restart(host):
    cid = run_ok(host, "docker ps -q --filter label=com.docker.compose.service=api").strip()
    assert cid
    t0 = target_time(host)
    run_ok(host, f"docker stop {cid}")
    try:
        row = wait_for(
            "StackServiceDown at the webhook",
            lambda: notified(host, t0, "StackServiceDown", "firing", service="api"),
            ALERT_BOUND_S,
        )
        print(f"\n[monitoring] api stopped -> StackServiceDown at the webhook after {row['received_at'] - t0:.1f} s")
        assert notified(host, t0, "StackContainerDown", "firing", service="api") or wait_for(
            "StackContainerDown", lambda: notified(host, t0, "StackContainerDown", "firing", service="api"), 60
        )
    finally:
        run_ok(host, f"docker start {cid}")
    t1 = target_time(host)
    row = wait_for(
        "StackServiceDown resolved",
        lambda: notified(host, t1, "StackServiceDown", "resolved", service="api"),
        ALERT_BOUND_S,
    )
    print(f"[monitoring] api started -> resolved at the webhook after {row['received_at'] - t1:.1f} s")


def test_stale_backup_fires_backup_stale(host, tmp_path):
    now = target_time(host)
    old = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 30 * 3600))
    status = {"schema": 1, "state": "success", "last_success": old, "last_failure": None, "error": None}
    run_ok(host, f"mkdir -p /var/lib/homeport/backup && echo '{json.dumps(status)}' > {STATUS}")
    try:
        row = wait_for(
            "BackupStale at the webhook", lambda: notified(host, now, "BackupStale", "firing"), ALERT_BOUND_S
        )
        print(f"\n[monitoring] backup 30 h old -> BackupStale at the webhook after {row['received_at'] - now:.1f} s")
        # homeport status: availability from this Prometheus, the firing alert, exit code 5
        code, summary = homeport_status(host, tmp_path)
        mon = summary["monitoring"]
        assert code == 5, summary
        assert "BackupStale" in [a["name"] for a in mon["alerts"]]
        assert set(mon["availability"]) == {"api", "db", "ssh"}, mon
        assert all(0 < p["1d"] <= 100 for p in mon["availability"].values()), mon
        assert mon["latency_ms"]["db"] > 0 and mon["memory"]["peak_1d_mb"] > 0, mon
        assert mon["error"] is None
        print(f"[monitoring] homeport status: exit {code}, availability 1d {mon['availability']}")
        # a fresh backup clears it
        fresh = {**status, "last_success": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(target_time(host)))}
        t1 = target_time(host)
        run_ok(host, f"echo '{json.dumps(fresh)}' > {STATUS}")
        wait_for("BackupStale resolved", lambda: notified(host, t1, "BackupStale", "resolved"), ALERT_BOUND_S)
        others = firing(host)
        code, summary = homeport_status(host, tmp_path)
        assert code == (5 if others else 0), (others, summary["monitoring"]["alerts"])
    finally:
        run_ok(host, f"rm -f {STATUS}")


TELEGRAM_TOKEN_SECRET = "AAmoleculeFAKEtoken_0123456789abcdefXYZ"  # molecule.yml's test-telegram receiver


def test_the_telegram_bot_token_never_reaches_the_journal(host):
    """Issue 27: Alertmanager logs each failed Telegram notification with the request URL, which holds the bot token;
    its output goes through homeport-log-redact. The test receiver fails at once (api.telegram.org -> 127.0.0.1):
    its errors must be in the journal, masked, and the token nowhere in it."""
    journal = "journalctl --no-pager -o cat -u prometheus-alertmanager"

    def failed_masked():
        out = run_ok(host, journal)
        lines = [ln for ln in out.splitlines() if "telegram" in ln and "api.telegram.org/<redacted>" in ln]
        return lines or None

    lines = wait_for("a masked Telegram failure in the journal", failed_masked, ALERT_BOUND_S)
    assert "connection refused" in lines[-1], lines[-1]  # the error stays useful
    assert TELEGRAM_TOKEN_SECRET not in run_ok(host, "journalctl --no-pager -o cat")
    unit = run_ok(host, "systemctl show -p MainPID -p ExecStart --value prometheus-alertmanager")
    assert "homeport-log-redact" in unit, unit
    main_pid = run_ok(host, "systemctl show -p MainPID --value prometheus-alertmanager").strip()
    comm = run_ok(host, f"cat /proc/{main_pid}/comm").strip()
    assert comm.startswith("prometheus-ale"), comm  # the daemon is the unit's main process, not the filter


# The Debian journey's boot: these run last (a restart of the host)
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
    chain = run_ok(host, "nft list chain inet homeport_filter input")
    assert "policy drop" in chain
    # SSH addressed to the live tailnet address (homeport_tailnet_ipv4, read with `tailscale ip`) is admitted
    assert re.search(rf"ip daddr {re.escape(TAILNET)} tcp dport [^\n]*\b22\b[^\n]* accept", chain), chain
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


def test_a_lan_neighbour_reaches_no_stack_port_after_the_boot(host):
    """Issue 27 on the journey's real stack, after the boot above: `homeport audit`'s LAN check lists every port bound
    to loopback or the tailnet address (the stack's, Prometheus', Alertmanager's...) and sends hand-made frames from
    this machine (a neighbour on the host's Docker network) to the host's MAC for each: none may answer. The control
    that the same probe does get answers without homeport's prerouting/forward chains is molecule/lan_attack's."""
    from homeport import audit

    name = host.backend.get_hostname()
    result = audit.check_lan(audit.Target(name=name, connection="docker", address=name), None)
    print(f"\n[journey] LAN neighbour's probe of {name}: {result.detail}")
    probed = {(a["address"], a["port"]) for a in result.data.get("answers", [])}
    assert {(TAILNET, 18080), (TAILNET, 15432), ("127.0.0.1", 9090)} <= probed, (result.detail, probed)
    assert result.status == "pass", (result.detail, result.findings)


def test_without_nonlocal_bind_docker_refuses_an_address_the_host_does_not_have(host):
    """The control: the race the role's sysctl wins (roles/docker_engine/README.md)."""
    absent = "100.87.65.99"
    run_ok(host, "sysctl -qw net.ipv4.ip_nonlocal_bind=0")
    try:
        r = host.run(f"docker run --rm -p {absent}:18999:80 homeport/stackbase:13 true")
        assert r.rc != 0 and "cannot assign requested address" in r.stderr, (r.rc, r.stderr)
    finally:
        run_ok(host, "sysctl -qw net.ipv4.ip_nonlocal_bind=1")
    r = host.run(f"docker run --rm -p {absent}:18999:80 homeport/stackbase:13 true")
    assert r.rc == 0, r.stderr
