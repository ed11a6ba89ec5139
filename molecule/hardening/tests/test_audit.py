"""`homeport audit` (its module-level entry point, on the controller) against this scenario's hosts.

The hardened Debian 12/13 hosts must pass ssh-audit, a port scan from a second container (hardening-plain, on the
same Docker network, inside the LAN range the scenario allows) and Lynis at or above the index held in
roles/hardening/README.md. hardening-plain, a stock Debian 13 the role never touched, must fail the same audit:
proof that the checks can fail. On every Debian host a server listens on tcp/5432 on all addresses, as a stack
port published by mistake would: the firewall must hide it.

debsecan is left out here: its data comes from security-tracker.debian.org, which this machine cannot reach
(the unit tests cover its pass/fail logic). The macOS checks are unit-tested on recorded outputs (no Mac here).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from homeport import audit

ROOT = Path(__file__).resolve().parents[3]
HARDENED = ("hardening-deb12", "hardening-deb13")
PLAIN = "hardening-plain"
STACK_PORT = 5432
# Lynis warnings this scenario accepts, with the reason (the role's README lists the suggestions it does not follow)
ACCEPTED = {
    "PKGS-7388": "the test images are debootstrapped from deb.debian.org alone; a real Debian install has the "
    "security repository, and unattended-upgrades is configured for it",
}


def held_lynis_index() -> int:
    text = (ROOT / "roles" / "hardening" / "README.md").read_text(encoding="utf-8")
    m = re.search(r"Lynis hardening index at least \*\*(\d+)\*\*", text)
    assert m, "roles/hardening/README.md must hold the Lynis index (`Lynis hardening index at least **N**`)"
    return int(m.group(1))


def inventory() -> Path:
    env = os.environ.get("MOLECULE_INVENTORY_FILE")
    if env and Path(env).exists():
        return Path(env)
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"


def listen(container: str) -> str:
    """Start a server on tcp/STACK_PORT, all addresses, in the container; returns its pid there."""
    r = subprocess.run(
        ["docker", "exec", container, "sh", "-c",
         f"python3 -m http.server {STACK_PORT} --bind 0.0.0.0 >/dev/null 2>&1 & echo $!"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    pid = r.stdout.strip()
    for _ in range(50):
        probe = f"import socket; socket.create_connection(('127.0.0.1', {STACK_PORT}), 1)"
        if subprocess.run(["docker", "exec", container, "python3", "-c", probe], check=False).returncode == 0:
            break
        time.sleep(0.2)
    return pid


@pytest.fixture(scope="module")
def results():
    names = (*HARDENED, PLAIN)
    pids = {name: listen(name) for name in names}
    try:
        start = time.monotonic()
        targets = audit.targets_from_inventory(inventory())
        hardened_opts = audit.Options(
            checks=("ssh", "ports", "lynis"), scan_from=PLAIN, lynis_min=held_lynis_index(), lynis_accept=ACCEPTED
        )
        with ThreadPoolExecutor(max_workers=2) as pool:  # both at once: Lynis takes the longest
            hardened_run = pool.submit(audit.run_audit, [t for t in targets if t.name in HARDENED], hardened_opts)
            plain_run = pool.submit(
                audit.run_audit,
                [t for t in targets if t.name == PLAIN],
                audit.Options(checks=("ssh", "ports"), scan_from=HARDENED[1]),
            )
            hardened, plain = hardened_run.result(), plain_run.result()
        print(f"audit took {time.monotonic() - start:.1f} s")
        for name, host in {**hardened["hosts"], **plain["hosts"]}.items():
            for c in host["checks"]:
                print(f"{name} {c['check']}: {c['status']} - {c['detail']}")
                for f in c["findings"]:
                    print(f"    {f}")
            if host["lynis_index"] is not None:
                print(f"{name}: Lynis hardening index {host['lynis_index']} (held: {held_lynis_index()})")
        yield {**hardened["hosts"], **plain["hosts"]}
    finally:
        for name, pid in pids.items():
            subprocess.run(["docker", "exec", name, "kill", pid], check=False)


def checks_of(results, name: str) -> dict:
    return {c["check"]: c for c in results[name]["checks"]}


def hardened_only(host) -> str:
    name = host.backend.get_hostname()
    if name not in HARDENED:
        pytest.skip("the hardened Debian hosts")
    return name


def test_ssh_audit_clean(host, results):
    name = hardened_only(host)
    ssh = checks_of(results, name)["ssh"]
    assert ssh["status"] == "pass", ssh["findings"]
    assert ssh["data"]["algorithms"]["kex"], "ssh-audit saw no key exchange: it did not reach sshd"


def test_scan_from_a_second_container_shows_only_ssh(host, results):
    name = hardened_only(host)
    ports = checks_of(results, name)["ports"]
    assert ports["status"] == "pass", ports["detail"]
    assert ports["data"]["open"] == [22], ports["data"]
    assert PLAIN in ports["data"]["scanner"]
    # the stack port answers on the host itself: the firewall, not a missing server, hides it
    assert host.run(f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {STACK_PORT}), 2)\"").rc == 0


def test_lynis_index_at_least_the_held_value(host, results):
    name = hardened_only(host)
    lynis = checks_of(results, name)["lynis"]
    assert lynis["status"] == "pass", lynis["findings"]
    assert lynis["data"]["hardening_index"] >= held_lynis_index()


def test_lynis_left_nothing_on_the_host(host, results):
    hardened_only(host)
    assert checks_of(results, host.backend.get_hostname())["lynis"]["data"]["tests_executed"] > 100
    assert host.run("ls -d /tmp/homeport-lynis.* 2>/dev/null").stdout.strip() == ""
    assert not host.package("lynis").is_installed


def test_unhardened_host_fails_the_audit(host, results):
    if host.backend.get_hostname() != PLAIN:
        pytest.skip("the un-hardened control host")
    assert results[PLAIN]["passed"] is False
    checks = checks_of(results, PLAIN)
    assert checks["ssh"]["status"] == "fail"
    assert any("ecdh-sha2-nistp256: fail" in f for f in checks["ssh"]["findings"])
    assert checks["ports"]["status"] == "fail"
    assert f"tcp/{STACK_PORT} is open and not allowed" in checks["ports"]["findings"]
