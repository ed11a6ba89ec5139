"""Verify the swarm scenario after converge, idempotence and the side effects (refusals, a failed update that
Swarm rolled back, rollbacks, `deploy api`, the API's node drained, then the API's other node taken out of the
groups while the drained one is active again): one manager and the remaining worker, labels from the host vars,
the departed node out of the swarm, the test stack placed by label and healthy on release 1, secrets only as
Swarm secrets, the overlay MTU, the status program's swarm part on the manager."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from homeport_testinfra import run_ok, status_document

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "tok-stack-test-5f1c8a"  # tests/stack/vars.yml
PG_PASSWORD = "Tq7-stack-test-pg-2b9e"  # tests/stack/vars.yml
MANAGER = "swarm-node1"


def drained() -> str:
    """The API node side_effect drained, then made active again when the other one left."""
    return Path("/tmp/swarm-scenario-drained").read_text().strip()


def left() -> str:
    """The API node side_effect took out of the swarm groups (it left the swarm)."""
    return Path("/tmp/swarm-scenario-left").read_text().strip()


def on_manager(host) -> bool:
    return host.backend.get_hostname() == MANAGER


def jlines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_one_manager_and_the_remaining_worker_with_their_labels(host):
    if not on_manager(host):
        pytest.skip("checked on the manager")
    nodes = {n["Hostname"]: n for n in jlines(run_ok(host, "docker node ls --format '{{json .}}'"))}
    # side_effect took the other API node out of the groups: it left and was removed from the node list
    assert set(nodes) == {"swarm-node1", drained()} and left() not in nodes
    assert nodes["swarm-node1"]["ManagerStatus"] == "Leader"
    assert nodes[drained()]["ManagerStatus"] == ""
    assert all(n["Status"] == "Ready" for n in nodes.values())
    labels = {
        name: json.loads(run_ok(host, f"docker node inspect {name} --format '{{{{json .Spec.Labels}}}}'"))
        for name in nodes
    }
    assert labels == {"swarm-node1": {"role": "db"}, drained(): {"role": "api"}}
    # drained by side_effect, active again in the inventory without the departed node
    assert nodes[drained()]["Availability"] == "Active"


def test_nodes_advertise_their_tailnet_stand_in_address(host):
    info = json.loads(run_ok(host, "docker info --format '{{json .Swarm}}'"))
    if host.backend.get_hostname() == left():
        assert info["LocalNodeState"] == "inactive"  # it left the swarm
        return
    eth0 = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", run_ok(host, "ip -4 addr show eth0")).group(1)
    assert info["LocalNodeState"] == "active"
    assert info["NodeAddr"] == eth0
    if on_manager(host):
        # the manager's Raft port listens on the advertise address only
        assert f"{eth0}:2377" in run_ok(host, "ss -Hltn")
        assert "0.0.0.0:2377" not in run_ok(host, "ss -Hltn") and "*:2377" not in run_ok(host, "ss -Hltn")


def test_stack_placed_by_label_and_healthy(host):
    if not on_manager(host):
        pytest.skip("checked on the manager")
    tasks = jlines(run_ok(host, "docker stack ps teststack --filter desired-state=running --format '{{json .}}'"))
    where = {t["Name"].split(".")[0]: t for t in tasks}
    assert where["teststack_db"]["Node"] == "swarm-node1"
    assert where["teststack_api"]["Node"] == drained()  # the only API node left
    assert all(t["CurrentState"].startswith("Running") for t in tasks)
    services = {s["Name"]: s for s in jlines(run_ok(host, "docker stack services teststack --format '{{json .}}'"))}
    assert services["teststack_api"]["Replicas"] == "1/1" and services["teststack_db"]["Replicas"] == "1/1"


def test_api_serves_through_the_overlay_to_postgres(host):
    if not on_manager(host):
        pytest.skip("checked on the manager")
    node = run_ok(host, "docker service ps teststack_api --filter desired-state=running --format '{{.Node}}'").strip()
    ip = run_ok(host, f"docker node inspect {node} --format '{{{{.Status.Addr}}}}'").strip()
    health = json.loads(run_ok(host, f"curl -fsS http://{ip}:18080/health"))
    assert health == {"status": "ok", "version": "1"}  # release 1 again after homeport rollback
    made = json.loads(
        run_ok(
            host,
            f"curl -fsS -X POST http://{ip}:18080/vectors -H 'Authorization: Bearer {TOKEN}' "
            '-H \'Content-Type: application/json\' -d \'{"name": "swarm", "embedding": [1, 2, 3]}\'',
        )
    )
    got = json.loads(run_ok(host, f"curl -fsS http://{ip}:18080/vectors/{made['id']}"))
    assert got == {"id": made["id"], "name": "swarm", "embedding": [1.0, 2.0, 3.0]}


def test_limits_update_policy_and_endpoint_mode_applied(host):
    if not on_manager(host):
        pytest.skip("checked on the manager")
    spec = json.loads(run_ok(host, "docker service inspect teststack_api --format '{{json .Spec}}'"))
    assert spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 256 * 1024**2
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.labels.role == api"]
    assert spec["UpdateConfig"]["Order"] == "start-first"
    assert spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["EndpointSpec"]["Ports"][0]["PublishMode"] == "host"
    db = json.loads(run_ok(host, "docker service inspect teststack_db --format '{{json .Spec}}'"))
    assert db["UpdateConfig"]["Order"] == "stop-first"  # a named volume: never two tasks on one data directory


def test_secrets_are_swarm_secrets_not_files_or_env(host):
    if not on_manager(host):
        pytest.skip("checked on the manager")
    names = run_ok(host, "docker secret ls --format '{{.Name}}'").split()
    assert any(n.startswith("teststack_db_postgres_password") for n in names)
    for svc in ("teststack_api", "teststack_db"):
        env = run_ok(host, f"docker service inspect {svc} --format '{{{{json .Spec.TaskTemplate.ContainerSpec.Env}}}}'")
        assert PG_PASSWORD not in env and TOKEN not in env
    stack_file = host.file("/var/lib/homeport/swarm/teststack.yaml")
    assert stack_file.mode == 0o600
    assert PG_PASSWORD not in stack_file.content_string and TOKEN not in stack_file.content_string


def test_no_secret_in_env_files_on_any_node(host):
    r = host.run(f"grep -rlF -e {PG_PASSWORD} -e {TOKEN} /var/lib/homeport /etc/docker 2>/dev/null")
    assert r.stdout.strip() == ""


def test_overlay_network_mtu(host):
    if not on_manager(host):
        pytest.skip("checked on the manager")
    net = json.loads(run_ok(host, "docker network inspect teststack_homeport --format '{{json .Options}}'"))
    assert net["com.docker.network.driver.mtu"] == "1230"


def test_status_program_reports_nodes_and_replicas(host):
    if not on_manager(host):
        pytest.skip("the manager reports the swarm")
    doc = status_document(host)  # the status module of roles/homeport/tasks/status.yml
    sw = doc["swarm"]
    assert sw["manager"] is True
    assert {n["hostname"] for n in sw["nodes"]} == {"swarm-node1", drained()}
    assert all(n["engine"] for n in sw["nodes"])
    services = {s["name"]: s for s in sw["services"]}
    assert services["teststack_api"]["running"] == services["teststack_api"]["desired"] == 1
