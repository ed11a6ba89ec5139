"""The swarm role's refusals in the preflight of the real playbooks/deploy.yml (issue 19 with issue 14's
preflight): an even number of managers, a host in both groups, a placement no node satisfies, a node over its
budget, an overlay MTU over tailscale0's 1280 are refused with exit 3 and a message naming the host/variable,
before anything changes (the stack directory the deploy would create does not exist afterwards). One real
ansible-runner run through cli.execute per case, the swarm nodes are local-connection hosts."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from conftest import run_cli
from rich.console import Console

from homeport import events

ROOT = Path(__file__).resolve().parents[2]
STACK = yaml.safe_load((ROOT / "tests" / "stack" / "vars.yml").read_text())
SWARM = yaml.safe_load((ROOT / "molecule" / "swarm" / "vars" / "swarm.yml").read_text())


def _inventory(project: Path, managers: list[str], workers: list[str], host_vars: dict | None = None, **common) -> Path:
    local = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "homeport_admin_user": "root",
        "homeport_roles": [],
        "swarm_advertise_address": "127.0.0.1",
        "swarm_stack_dir": str(project / "swarm"),
        **STACK,
        **SWARM,
        **common,
    }
    hosts = sorted(set(managers) | set(workers))
    inv = {
        "homeport": {"hosts": {h: {**local, **(host_vars or {}).get(h, {})} for h in hosts}},
        "swarm_managers": {"hosts": dict.fromkeys(managers)},
        "swarm_workers": {"hosts": dict.fromkeys(workers)},
    }
    path = project / "hosts.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


def _deploy(inventory: Path) -> int:
    return run_cli(ROOT / "playbooks" / "deploy.yml", inventory)


def _text(out: Console) -> str:
    return " ".join(out.export_text().split())


def test_even_managers_and_a_host_in_both_groups_refused(project, out):
    code = _deploy(_inventory(project, ["n1", "n2"], ["n2", "n3"]))
    text = _text(out)
    assert code == events.EXIT_INVALID, text
    assert "swarm_managers: 2 managers (n1, n2) must be an odd number (1, 3, 5)" in text
    assert "swarm_workers: host n2 is also in swarm_managers; put each host in one of the two groups" in text
    assert not (project / "swarm").exists()
    assert STACK["stack_postgres_password"] not in text and STACK["stack_api_token"] not in text


def test_placement_no_node_satisfies_and_a_node_over_its_budget_refused(project, out):
    inventory = _inventory(
        project,
        ["n1"],
        ["n2", "n3"],
        host_vars={
            "n1": {"swarm_node_labels": {"role": "db"}},
            "n2": {"swarm_node_labels": {"role": "api"}, "homeport_memory_budget": "200m"},
            "n3": {"swarm_node_labels": {"role": "gpu"}},
        },
        swarm_placement={"db": {"role": "nosuch"}, "api": {"role": "api"}},
    )
    code = _deploy(inventory)
    text = _text(out)
    assert code == events.EXIT_INVALID, text
    assert "swarm_placement.db: node.labels.role == nosuch matches no active node (nodes: n1 (active: role=db)" in text
    assert (
        "node n2: the services that may run there (api=256 MiB) need up to 256 MiB, over its "
        "homeport_memory_budget 200 MiB"
    ) in text
    assert not (project / "swarm").exists()


def test_overlay_mtu_over_tailscale0_refused(project, out):
    code = _deploy(_inventory(project, ["n1"], [], swarm_overlay_mtu=1400))
    text = _text(out)
    assert code == events.EXIT_INVALID, text
    assert (
        "swarm_overlay_mtu: 1400 + 50 bytes of VXLAN does not fit the MTU 1280 of tailscale0 on n1; use at most 1230"
    ) in text
    assert not (project / "swarm").exists()
