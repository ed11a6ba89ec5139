"""The tailnet address the stack binds on Linux is read live, read-only, by the shared facts
(roles/homeport/tasks/facts.yml: `tailscale ip` when tailscale is in homeport_roles, on Darwin too) and never
taken from the fact cache, where the tailscale role's `tailscale_ipv4` (a cacheable set_fact) outlives the node's
address or expires (issue 15: an expired cache made a later deploy silently bind 127.0.0.1).

Each test runs the real facts.yml and the stack role's vars through ansible-playbook (local connection) with a
jsonfile fact cache holding what an earlier run left, and a `tailscale` stand-in on PATH that answers `ip` as the
real CLI does (tests/doubles/bin/tailscale: every address, one per line, IPv4 first; exit 1 and "no current Tailscale
IPs; state: ..." when the node is not up; https://tailscale.com/kb/1080/cli#ip).

The same shared fact, homeport_tailnet_address, is "the tailnet address this host serves on" for every role: the
stack's bind address, the monitoring role's listen and probe address, the swarm role's advertise address and
`homeport status` (roles/homeport/vars/main.yml) follow the live address, and hardening's firewall admits SSH to the
live IPv4 and IPv6 (homeport_tailnet_ipv4/6); and fall back to the cached tailscale_ipv4
only when the shared facts did not run (a role used alone).
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import pytest
import yaml
from ansible_local import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
CACHED = "100.64.0.1"  # what the cache holds from an earlier run
LIVE = "100.101.7.42"  # what tailscaled reports now
CACHED6 = "fd7a:115c:a1e0::1"
LIVE6 = "fd7a:115c:a1e0::42"

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {root}/roles/homeport/defaults/main.yml
    - {root}/roles/homeport/vars/main.yml
    - {root}/roles/stack/defaults/main.yml
    - {root}/roles/stack/vars/main.yml
    - {root}/roles/monitoring/defaults/main.yml
    - {root}/roles/monitoring/vars/main.yml
    - {root}/roles/swarm/defaults/main.yml
    - {root}/roles/swarm/vars/main.yml
    - {root}/roles/hardening/vars/main.yml
  tasks:
    - ansible.builtin.include_role:
        name: homeport
        tasks_from: facts
      when: shared_facts | default(true)
    - ansible.builtin.copy:
        dest: "{{{{ out }}}}"
        mode: "0644"
        content: >-
          {{{{ {{'tailnet': homeport_tailnet_ipv4 | default(none), 'address': homeport_tailnet_address | default(none),
              'bind': _stack_bind_address, 'allowed': _stack_allowed_addresses,
              'monitoring_listen': _monitoring_listen_address, 'monitoring_probe': _monitoring_stack_bind_address,
              'swarm_advertise': _swarm_advertise, 'swarm_tailscale': _swarm_uses_tailscale | bool,
              'status': _homeport_tailnet_address,
              'ssh_to': [_hardening_tailnet_ipv4, _hardening_tailnet_ipv6]}} | to_json }}}}
"""

SEED = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        tailscale_ipv4: "{{ cached }}"
        tailscale_ipv6: "{{ cached6 }}"
        cacheable: true
"""


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fact cache and a tailscale CLI stand-in; returns run(answer, cached, **vars) -> the facts and vars."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "tailscale-calls.log"
    cache = tmp_path / "facts"
    cache.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN", "jsonfile")
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(cache))
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_TIMEOUT", "86400")

    def run(answer: str | None, cached: str | None, **variables) -> dict:
        # answer None: the node is not up, as `tailscale ip` reports it (exit 1); else its IPv4 and LIVE6
        not_up = 'echo "no current Tailscale IPs; state: NeedsLogin" >&2; exit 1'
        body = f"echo {answer}; echo {LIVE6}" if answer is not None else not_up
        script = bindir / "tailscale"
        script.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n{body}\n', encoding="utf-8")
        script.chmod(0o755)
        if cached:  # an earlier run of the tailscale role left its cacheable fact (roles/tailscale/tasks/join.yml)
            seed = run_local_playbook(tmp_path, SEED, {"cached": cached, "cached6": CACHED6})
            assert seed.returncode == 0, seed.stdout + seed.stderr
        out = tmp_path / "out.json"
        r = run_local_playbook(
            tmp_path,
            PLAY.format(root=ROOT),
            {"out": str(out), "homeport_admin_user": getpass.getuser(), "homeport_os_family": "Debian", **variables},
        )
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(out.read_text(encoding="utf-8"))

    run.calls = calls
    return run


def test_a_stale_cached_address_is_not_bound(host):
    got = host(LIVE, CACHED)
    assert got["bind"] == LIVE
    assert got["tailnet"] == LIVE
    assert CACHED not in got["allowed"]


def test_an_expired_cache_still_binds_the_tailnet_address(host):
    got = host(LIVE, None)
    assert got["bind"] == LIVE
    assert got["tailnet"] == LIVE


def test_the_addresses_are_read_read_only_with_one_tailscale_ip(host):
    host(LIVE, None)
    assert host.calls.read_text(encoding="utf-8").splitlines() == ["ip"]


def test_a_node_that_is_not_up_binds_loopback_not_the_cached_address(host):
    got = host(None, CACHED)
    assert got["bind"] == "127.0.0.1"
    assert got["tailnet"] == ""
    assert CACHED not in got["allowed"]


def test_without_the_tailscale_role_nothing_is_asked_and_loopback_is_bound(host):
    got = host(LIVE, CACHED, homeport_roles=["runtime", "stack"])
    assert got["tailnet"] == ""
    assert got["bind"] == "127.0.0.1"
    assert not host.calls.exists()


def test_the_darwin_path_reads_it_too_with_homebrews_cli_and_still_binds_loopback_in_the_vm(host, tmp_path):
    # on the Mac the CLI is <Homebrew prefix>/bin/tailscale; the stack keeps 127.0.0.1 inside the Colima VM
    got = host(LIVE, CACHED, homeport_os_family="Darwin", _homeport_tailscale_cli=str(tmp_path / "bin/tailscale"))
    assert got["tailnet"] == LIVE
    assert got["bind"] == "127.0.0.1"


def test_an_explicit_stack_bind_address_wins(host):
    got = host(LIVE, CACHED, stack_bind_address="127.0.0.1")
    assert got["bind"] == "127.0.0.1"


# --- every role serves on the same live address ---------------------------------------------------------------
def test_monitoring_and_swarm_follow_the_live_address_not_a_stale_cache(host):
    # an interface that is not tailscale0: the swarm knows it is on the tailnet from the address alone
    got = host(LIVE, CACHED, swarm_advertise_interface="eth0")
    assert (got["monitoring_listen"], got["monitoring_probe"]) == (LIVE, LIVE)  # Prometheus' listen, the stack probes
    assert got["swarm_advertise"] == LIVE and got["swarm_tailscale"] is True
    assert got["status"] == LIVE
    assert got["address"] == LIVE


def test_hardening_admits_ssh_to_the_live_addresses_not_the_cached_ones(host):
    assert host(LIVE, CACHED)["ssh_to"] == [LIVE, LIVE6]
    assert host(None, CACHED)["ssh_to"] == ["", ""]  # not up: no tailnet address rule (tailscale0 still admits)
    assert host(LIVE, CACHED, shared_facts=False)["ssh_to"] == [CACHED, CACHED6]  # the role used alone


def test_an_expired_cache_no_longer_drops_monitoring_to_loopback_or_swarm_to_nothing(host):
    got = host(LIVE, None)
    assert (got["monitoring_listen"], got["monitoring_probe"]) == (LIVE, LIVE)
    assert got["swarm_advertise"] == LIVE


def test_a_node_that_is_not_up_is_not_served_on_at_its_cached_address(host):
    got = host(None, CACHED)
    assert (got["monitoring_listen"], got["monitoring_probe"]) == ("127.0.0.1", "127.0.0.1")
    assert got["swarm_advertise"] != CACHED  # the interface's address (none here), never the stale one
    assert got["status"] == ""
    assert got["address"] == ""


def test_explicit_addresses_still_win(host):
    got = host(
        LIVE,
        CACHED,
        monitoring_listen_address="127.0.0.1",
        swarm_advertise_address="10.0.0.5",
        swarm_advertise_interface="eth0",
    )
    assert got["monitoring_listen"] == "127.0.0.1"
    assert got["swarm_advertise"] == "10.0.0.5" and got["swarm_tailscale"] is False


def test_a_role_used_alone_falls_back_to_the_cached_address(host):
    # no shared facts (a molecule scenario including the role directly): the tailscale role's cached fact, once
    got = host(LIVE, CACHED, shared_facts=False)
    assert got["address"] is None
    assert got["bind"] == CACHED
    assert (got["monitoring_listen"], got["monitoring_probe"]) == (CACHED, CACHED)
    assert got["swarm_advertise"] == CACHED
    assert got["status"] == CACHED
    assert not host.calls.exists()


def test_the_tailscale_role_refreshes_the_shared_address_after_it_joins():
    join = (ROOT / "roles/tailscale/tasks/join.yml").read_text(encoding="utf-8")
    refresh = join[join.index("- name: Refresh the shared live tailnet address") :].split("\n- name:")[0]
    assert 'homeport_tailnet_address: "{{ tailscale_ipv4 }}"' in refresh
    assert 'homeport_tailnet_ipv4: "{{ tailscale_ipv4 }}"' in refresh
    assert 'homeport_tailnet_ipv6: "{{ tailscale_ipv6 }}"' in refresh


def test_leaving_the_tailnet_clears_the_shared_address():
    """tailscale_state: absent logs the node out: the live address the shared facts read before the logout must not
    outlive it in this run (the stack would bind, monitoring listen on, swarm advertise an address that is gone)."""
    tasks = yaml.safe_load((ROOT / "roles/tailscale/tasks/absent.yml").read_text(encoding="utf-8"))
    cleared = {}
    for task in tasks:
        cleared.update(task.get("ansible.builtin.set_fact") or {})
    for fact in ("tailscale_ipv4", "tailscale_ipv6", *(f"homeport_tailnet_{k}" for k in ("ipv4", "ipv6", "address"))):
        assert cleared.get(fact) == "", f"{fact} is not cleared by absent.yml"
