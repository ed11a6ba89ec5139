"""The tailnet address the stack binds on Linux is read live, read-only, by the shared facts
(roles/homeport/tasks/facts.yml: `tailscale ip -4` when tailscale is in homeport_roles, on Darwin too) and never
taken from the fact cache, where the tailscale role's `tailscale_ipv4` (a cacheable set_fact) outlives the node's
address or expires (issue 15: an expired cache made a later deploy silently bind 127.0.0.1).

Each test runs the real facts.yml and the stack role's vars through ansible-playbook (local connection) with a
jsonfile fact cache holding what an earlier run left, and a `tailscale` stand-in on PATH that answers `ip -4` as the
real CLI does (tests/doubles/bin/tailscale: one address per line, exit 1 and "no current Tailscale IPs; state: ..."
when the node is not up; https://tailscale.com/kb/1080/cli#ip).
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import pytest
from ansible_local import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
CACHED = "100.64.0.1"  # what the cache holds from an earlier run
LIVE = "100.101.7.42"  # what tailscaled reports now

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {root}/roles/homeport/defaults/main.yml
    - {root}/roles/stack/defaults/main.yml
    - {root}/roles/stack/vars/main.yml
  tasks:
    - ansible.builtin.include_role:
        name: homeport
        tasks_from: facts
    - ansible.builtin.copy:
        dest: "{{{{ out }}}}"
        mode: "0644"
        content: >-
          {{{{ {{'tailnet': homeport_tailnet_ipv4 | default(none), 'bind': _stack_bind_address,
              'allowed': _stack_allowed_addresses}} | to_json }}}}
"""

SEED = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        tailscale_ipv4: "{{ cached }}"
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
        # answer None: the node is not up, as `tailscale ip -4` reports it (exit 1)
        body = (
            f"echo {answer}" if answer is not None else 'echo "no current Tailscale IPs; state: NeedsLogin" >&2; exit 1'
        )
        script = bindir / "tailscale"
        script.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n{body}\n', encoding="utf-8")
        script.chmod(0o755)
        if cached:  # an earlier run of the tailscale role left its cacheable fact (roles/tailscale/tasks/join.yml)
            seed = run_local_playbook(tmp_path, SEED, {"cached": cached})
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


def test_the_address_is_read_read_only_with_tailscale_ip_4(host):
    host(LIVE, None)
    assert host.calls.read_text(encoding="utf-8").splitlines() == ["ip -4"]


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
