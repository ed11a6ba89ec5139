"""The shared facts' module (plugins/modules/homeport_facts.py), run as a real module process (the way ansible runs
it: the module file with its arguments file) with fake `sysctl` and `tailscale` on PATH, and facts.yml's remote
calls counted in a real ansible run.

The fakes answer as the real tools do:
- `sysctl -n hw.optional.arm64` prints 1 on Apple Silicon; on an Intel Mac the key does not exist: "sysctl: unknown
  oid 'hw.optional.arm64'" and exit 1 (the sysctl double, tests/doubles/bin/sysctl, profile "intel");
- `tailscale ip` (no -4/-6) prints every address of the node, one per line, IPv4 first; when the node is not up it
  prints "no current Tailscale IPs; state: NeedsLogin" and exits 1 (the tailscale double, tests/doubles/bin/tailscale;
  https://tailscale.com/kb/1080/cli#ip, runIP in tailscale's cmd/tailscale/cli/ip.go).
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_local import ROOT, run_local_playbook

sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible_collections.homeport.homeport.plugins.modules import homeport_facts as hf

MODULE = ROOT / "plugins" / "modules" / "homeport_facts.py"
ME = getpass.getuser()
HOME = os.path.expanduser(f"~{ME}")
LIVE = "100.101.7.42"
NOT_UP = 'echo "no current Tailscale IPs; state: NeedsLogin" >&2; exit 1'
UNKNOWN_OID = "echo \"sysctl: unknown oid 'hw.optional.arm64'\" >&2; exit 1"


@pytest.fixture
def tools(tmp_path: Path):
    """fake(name, body) writes a tool on a PATH of its own that logs its argv; calls(name) reads that log."""
    bindir = tmp_path / "bin"
    bindir.mkdir()

    def fake(name: str, body: str) -> Path:
        exe = bindir / name
        exe.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/{name}.calls\n{body}\n', encoding="utf-8")
        exe.chmod(0o755)
        return exe

    def calls(name: str) -> list[str]:
        log = tmp_path / f"{name}.calls"
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []

    fake.calls = calls
    fake.bindir = bindir
    return fake


def run_module(tools, tmp_path: Path, **args) -> dict:
    """The module as its own process, as ansible runs it: the file and a JSON file of ANSIBLE_MODULE_ARGS."""
    argsfile = tmp_path / "args.json"
    argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}), encoding="utf-8")
    # the fakes first; then only system directories, where no real tailscale is expected. The collection on
    # PYTHONPATH stands for what AnsiballZ bundles with the module: its module_utils (host_tools)
    env = {**os.environ, "PATH": f"{tools.bindir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT / ".cache" / "collections")}
    r = subprocess.run(
        [sys.executable, str(MODULE), str(argsfile)], capture_output=True, text=True, env=env, check=False
    )
    out = json.loads(r.stdout)
    assert r.returncode == 0 and not out.get("failed"), r.stdout + r.stderr
    assert out["changed"] is False
    return out


def test_apple_silicon_mac(tools, tmp_path):
    tools("sysctl", "echo 1")
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Darwin")
    assert (got["apple_silicon"], got["brew_prefix"], got["admin_home"]) == (True, "/opt/homebrew", HOME)
    assert tools.calls("sysctl") == ["-n hw.optional.arm64"]


def test_intel_mac_has_no_arm64_key(tools, tmp_path):
    tools("sysctl", UNKNOWN_OID)
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Darwin")
    assert (got["apple_silicon"], got["brew_prefix"]) == (False, "/usr/local")


def test_sysctl_printing_zero_is_not_apple_silicon(tools, tmp_path):
    tools("sysctl", "echo 0")
    assert run_module(tools, tmp_path, admin_user=ME, os_family="Darwin")["apple_silicon"] is False


def test_debian_asks_sysctl_nothing_and_has_no_homebrew_prefix(tools, tmp_path):
    tools("sysctl", "echo 1")
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Debian")
    assert (got["apple_silicon"], got["brew_prefix"], got["tailnet_ipv4"]) == (False, "", "")
    assert tools.calls("sysctl") == []


def test_a_missing_admin_user_has_an_empty_home(tools, tmp_path):
    tools("sysctl", "echo 1")
    assert run_module(tools, tmp_path, admin_user="nosuchuser-hp", os_family="Darwin")["admin_home"] == ""


def test_the_live_tailnet_addresses_from_one_tailscale_ip(tools, tmp_path):
    tools("tailscale", f"echo {LIVE}; echo fd7a:115c:a1e0::42")
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Debian", tailnet=True)
    assert (got["tailnet_ipv4"], got["tailnet_ipv6"]) == (LIVE, "fd7a:115c:a1e0::42")
    assert tools.calls("tailscale") == ["ip"]


def test_the_first_line_that_is_an_address_of_each_kind(tools, tmp_path):
    tools("tailscale", "echo fd7a:115c:a1e0::1; echo 999.1.2.3; echo 100.64.0.7; echo 100.64.0.8; echo fd7a::2")
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Debian", tailnet=True)
    assert (got["tailnet_ipv4"], got["tailnet_ipv6"]) == ("100.64.0.7", "fd7a:115c:a1e0::1")


def test_a_node_without_ipv6_has_an_empty_tailnet_ipv6(tools, tmp_path):
    tools("tailscale", f"echo {LIVE}")
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Debian", tailnet=True)
    assert (got["tailnet_ipv4"], got["tailnet_ipv6"]) == (LIVE, "")


def test_a_node_that_is_not_up_has_no_tailnet_address(tools, tmp_path):
    tools("tailscale", NOT_UP)
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Debian", tailnet=True)
    assert (got["tailnet_ipv4"], got["tailnet_ipv6"]) == ("", "")


def test_a_missing_tailscale_cli_has_no_tailnet_address(tools, tmp_path):
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Debian", tailnet=True, tailscale_cli="/nonexistent/ts")
    assert got["tailnet_ipv4"] == ""
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Debian", tailnet=True)  # none on PATH either
    assert got["tailnet_ipv4"] == ""


def test_tailscale_is_not_asked_unless_requested(tools, tmp_path):
    tools("tailscale", f"echo {LIVE}")
    assert run_module(tools, tmp_path, admin_user=ME, os_family="Debian")["tailnet_ipv4"] == ""
    assert tools.calls("tailscale") == []


def test_an_explicit_tailscale_cli_is_run(tools, tmp_path):
    cli = tools("tailscale-homebrew", f"echo {LIVE}")
    tools("sysctl", "echo 1")
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Darwin", tailnet=True, tailscale_cli=str(cli))
    assert got["tailnet_ipv4"] == LIVE
    assert tools.calls("tailscale-homebrew") == ["ip"]


def test_check_mode_reads_the_same(tools, tmp_path):
    tools("sysctl", "echo 1")
    tools("tailscale", f"echo {LIVE}")
    args = {"admin_user": ME, "os_family": "Darwin", "tailnet": True, "tailscale_cli": str(tools.bindir / "tailscale")}
    assert run_module(tools, tmp_path, **args, _ansible_check_mode=True) == run_module(tools, tmp_path, **args)


@pytest.mark.parametrize(("arm", "cli"), [(True, "/opt/homebrew/bin/tailscale"), (False, "/usr/local/bin/tailscale")])
def test_on_the_mac_the_default_cli_is_homebrews(monkeypatch, arm, cli):
    """sshd's non-interactive PATH on macOS has no Homebrew bin: the CLI is <Homebrew prefix>/bin/tailscale."""
    ran = []

    def fake_run(argv, path):
        ran.append(argv)
        return ("1\n" if arm else None) if argv[0] == "sysctl" else f"{LIVE}\n"

    monkeypatch.setattr(hf, "run", fake_run)
    assert hf.read_facts(ME, "Darwin", tailnet=True, environ={"PATH": ""})["tailnet_ipv4"] == LIVE
    assert ran == [["sysctl", "-n", "hw.optional.arm64"], [cli, "ip"]]


def test_the_search_path_adds_the_system_directories_sysctl_lives_in():
    assert hf.search_path({"PATH": "/usr/bin:/bin"}).split(os.pathsep)[:2] == ["/usr/bin", "/bin"]
    assert "/usr/sbin" in hf.search_path({}).split(os.pathsep)  # /usr/sbin/sysctl on macOS


# --- facts.yml: ONE remote call per host -------------------------------------------------------------------------
FACTS_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: homeport
        tasks_from: facts
"""


def remote_calls(tmp_path: Path, tools, monkeypatch: pytest.MonkeyPatch, **variables) -> list[str]:
    """The actions facts.yml ran on the host (not skipped; set_fact and include_role run on the controller)."""
    monkeypatch.setenv("PATH", f"{tools.bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", "json")
    r = run_local_playbook(tmp_path, FACTS_PLAY, {"homeport_admin_user": ME, **variables})
    assert r.returncode == 0, r.stdout + r.stderr
    ran = []
    for task in json.loads(r.stdout)["plays"][0]["tasks"]:
        result = task["hosts"]["localhost"]
        if not result.get("skipped") and result.get("action") not in {
            "ansible.builtin.set_fact",
            "ansible.builtin.include_role",
        }:
            ran.append(result.get("action"))
    return ran


def test_facts_on_the_mac_are_one_remote_call_with_the_tailnet_address(tmp_path, tools, monkeypatch):
    tools("sysctl", "echo 1")
    tools("tailscale", f"echo {LIVE}")
    calls = remote_calls(
        tmp_path,
        tools,
        monkeypatch,
        homeport_os_family="Darwin",
        _homeport_tailscale_cli=str(tools.bindir / "tailscale"),
    )
    assert calls == ["homeport.homeport.homeport_facts"]
    assert tools.calls("sysctl") == ["-n hw.optional.arm64"] and tools.calls("tailscale") == ["ip"]


def test_facts_on_debian_with_tailscale_are_one_remote_call(tmp_path, tools, monkeypatch):
    tools("tailscale", f"echo {LIVE}")
    assert remote_calls(tmp_path, tools, monkeypatch, homeport_os_family="Debian") == [
        "homeport.homeport.homeport_facts"
    ]
    assert tools.calls("sysctl") == []


def test_facts_on_debian_without_tailscale_make_no_remote_call(tmp_path, tools, monkeypatch):
    tools("tailscale", f"echo {LIVE}")
    assert (
        remote_calls(tmp_path, tools, monkeypatch, homeport_os_family="Debian", homeport_roles=["runtime", "stack"])
        == []
    )
    assert tools.calls("tailscale") == []


# --- against the tailscale double itself (tests/doubles/bin/tailscale, Tailscale 1.76's CLI) -------------------------
DOUBLE = ROOT / "tests" / "doubles" / "bin" / "tailscale"


@pytest.mark.parametrize(
    "case",
    [(True, "Running", LIVE), (True, "NeedsLogin", ""), (True, "Stopped", ""), (False, "Running", "")],
    ids=["running", "needs-login", "stopped", "no-tailscaled"],
)
def test_the_tailscale_double_answers_the_module_as_the_cli_does(tools, tmp_path, monkeypatch, case):
    daemon, state, want = case
    sim = tmp_path / "sim"
    (sim / "tailscale").mkdir(parents=True)
    node = {"backend_state": state, "identity": {"ips": [LIVE, "fd7a:115c:a1e0::42"]}}
    (sim / "tailscale" / "node.json").write_text(json.dumps(node), encoding="utf-8")
    if daemon:  # tailscaled counts as running when its pid file names a live process (this test's)
        (sim / "tailscale" / "tailscaled.pid").write_text(str(os.getpid()), encoding="utf-8")
    monkeypatch.setenv("HOMEPORT_SIM_STATE", str(sim))
    got = run_module(tools, tmp_path, admin_user=ME, os_family="Debian", tailnet=True, tailscale_cli=str(DOUBLE))
    assert (got["tailnet_ipv4"], got["tailnet_ipv6"]) == (want, want and "fd7a:115c:a1e0::42")
    calls = [json.loads(line) for line in (sim / "calls.log").read_text(encoding="utf-8").splitlines()]
    assert calls == [["tailscale", "ip"]]
