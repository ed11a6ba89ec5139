"""The swarm role's pure parts (plugins/filter/swarm.py): the inventory groups, the stack file rendered from the
same stack_services as the compose path, placement against each node's labels/budget/RAM, the tailnet pitfalls
(overlay MTU, UDP GRO before 6.8.5, Colima's VM address) and the reports read from docker service inspect/ps."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))
_spec = importlib.util.spec_from_file_location("swarm_filter", ROOT / "plugins" / "filter" / "swarm.py")
sw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sw)

from ansible.errors import AnsibleFilterError  # noqa: E402

MiB = 1024**2
STACK_VARS = yaml.safe_load((ROOT / "tests" / "stack" / "vars.yml").read_text())
# the swarm scenario's services: tests/stack/vars.yml with molecule/swarm/vars/swarm.yml's stack_services_extra over
# it, key by key per service as stack_merge_services does (the image instead of a build, healthchecks for compose 3.9)
SWARM_EXTRA = yaml.safe_load((ROOT / "molecule" / "swarm" / "vars" / "swarm.yml").read_text())["stack_services_extra"]
SERVICES = {name: {**spec, **SWARM_EXTRA.get(name, {})} for name, spec in STACK_VARS["stack_services"].items()}
OPTS = {
    "endpoint_mode": "dnsrr",
    "publish_mode": "host",
    "publish_ports": True,
    "network": {"name": "homeport", "mtu": 1230, "encrypted": True},
    "placement": {"db": {"role": "db"}, "api": {"role": "api"}},
    "replicas": {"api": 2},
    "env_from_secrets": {"api": ["python3", "/app/api.py"]},
    "update": {"order": "start-first", "monitor": "30s", "delay": "5s", "parallelism": 1},
    "rollback": {"monitor": "10s"},
}
NAMES = {"db-postgres_password": "s_db_v1", "api-database_password": "s_api_db_v1", "api-api_token": "s_api_tok_v1"}


# --- membership ---------------------------------------------------------------------------------------------------
def test_membership_one_manager_two_workers():
    m = sw.swarm_membership(["n1"], ["n2", "n3"])
    assert m["errors"] == []
    assert m["first_manager"] == "n1"
    assert m["members"] == ["n1", "n2", "n3"]


def test_membership_even_managers_refused_naming_them():
    m = sw.swarm_membership(["n1", "n2"], [])
    assert m["errors"] == [
        "swarm_managers: 2 managers (n1, n2) must be an odd number (1, 3, 5): Raft needs a majority, so an even "
        "count tolerates no more failures than one manager fewer"
    ]


def test_membership_host_in_both_groups_refused():
    m = sw.swarm_membership(["n1", "n2", "n3"], ["n3", "n4"])
    assert m["errors"] == ["swarm_workers: host n3 is also in swarm_managers; put each host in one of the two groups"]
    assert m["workers"] == ["n4"]


def test_membership_workers_without_manager_refused():
    assert "needs at least one manager" in sw.swarm_membership([], ["n2"])["errors"][0]


def test_membership_no_swarm_is_no_error():
    m = sw.swarm_membership([], [])
    assert m == {"managers": [], "workers": [], "members": [], "first_manager": None, "errors": []}


# --- the stack file -----------------------------------------------------------------------------------------------
def test_stack_deploy_section_from_the_memory_fields_labels_and_update_policy():
    stack = sw.swarm_stack(SERVICES, "teststack", OPTS, NAMES)
    db = stack["services"]["db"]["deploy"]
    api = stack["services"]["api"]["deploy"]
    # docker stack deploy: "services.api.deploy.resources.limits.memory must be a string"
    assert db["resources"] == {"limits": {"memory": str(512 * MiB)}}
    assert api["resources"] == {"limits": {"memory": str(256 * MiB)}}
    assert db["placement"] == {"constraints": ["node.labels.role == db"]}
    assert api["placement"] == {"constraints": ["node.labels.role == api"]}
    assert api["replicas"] == 2 and db["replicas"] == 1
    assert api["endpoint_mode"] == "dnsrr"
    assert api["update_config"] == {
        "parallelism": 1,
        "delay": "5s",
        "order": "start-first",
        "failure_action": "rollback",
        "monitor": "30s",
        "max_failure_ratio": 0.0,
    }
    assert api["rollback_config"]["order"] == "start-first"
    assert api["rollback_config"]["monitor"] == "10s"
    # a service with a named volume never runs two tasks on one data directory
    assert db["update_config"]["order"] == "stop-first"
    assert db["rollback_config"]["order"] == "stop-first"
    assert api["restart_policy"]["condition"] == "any"


def test_stack_reservation_from_memory_reservation():
    services = {"pg": {"image": "pg:17", "memory": "2g", "memory_reservation": "512m"}}
    stack = sw.swarm_stack(services, "p", OPTS | {"placement": {}, "replicas": {}, "env_from_secrets": {}}, {})
    assert stack["services"]["pg"]["deploy"]["resources"] == {
        "limits": {"memory": str(2048 * MiB)},
        "reservations": {"memory": str(512 * MiB)},
    }
    assert "placement" not in stack["services"]["pg"]["deploy"]


def test_stack_healthcheck_ports_network_and_volumes():
    stack = sw.swarm_stack(SERVICES, "teststack", OPTS, NAMES)
    api = stack["services"]["api"]
    assert api["healthcheck"] == SERVICES["api"]["healthcheck"]
    assert api["ports"] == [{"target": 8080, "published": 18080, "protocol": "tcp", "mode": "host"}]
    assert api["networks"] == ["homeport"]
    assert stack["networks"]["homeport"] == {
        "driver": "overlay",
        "attachable": False,
        "driver_opts": {"com.docker.network.driver.mtu": "1230", "encrypted": ""},
    }
    assert stack["volumes"] == {"pgdata": {}}
    assert "restart" not in api and "depends_on" not in api  # docker stack deploy ignores both


def test_stack_unencrypted_overlay_when_asked():
    opts = OPTS | {"network": {"name": "n", "mtu": 1230, "encrypted": False}}
    assert "encrypted" not in sw.swarm_stack(SERVICES, "t", opts, NAMES)["networks"]["n"]["driver_opts"]


def test_stack_secrets_are_swarm_secrets_never_values():
    stack = sw.swarm_stack(SERVICES, "teststack", OPTS, NAMES)
    text = json.dumps(stack)
    assert STACK_VARS["stack_postgres_password"] not in text
    assert stack["secrets"] == {
        "db-postgres_password": {"external": True, "name": "s_db_v1"},
        "api-database_password": {"external": True, "name": "s_api_db_v1"},
        "api-api_token": {"external": True, "name": "s_api_tok_v1"},
    }
    db = stack["services"]["db"]
    assert db["secrets"] == [{"source": "db-postgres_password", "target": "POSTGRES_PASSWORD"}]
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/POSTGRES_PASSWORD"
    assert "POSTGRES_PASSWORD" not in db["environment"]


def test_stack_env_from_secrets_shim_exports_each_secret_then_runs_the_command():
    api = sw.swarm_stack(SERVICES, "teststack", OPTS, NAMES)["services"]["api"]
    assert api["entrypoint"][:2] == ["/bin/sh", "-c"]
    script = api["entrypoint"][2]
    # $ doubled: docker stack deploy interpolates variables in the file
    assert 'export DATABASE_PASSWORD="$$(cat /run/secrets/DATABASE_PASSWORD)"' in script
    assert 'export API_TOKEN="$$(cat /run/secrets/API_TOKEN)"' in script
    assert script.endswith('exec "$$@"')
    assert api["command"] == ["python3", "/app/api.py"]
    assert "DATABASE_PASSWORD_FILE" not in api["environment"]


def test_stack_secret_plan_names_and_formats():
    services = {
        "neo4j": {
            "image": "neo4j:5",
            "memory": "1g",
            "secrets": {"NEO4J_AUTH": {"var": "pw", "format": "neo4j/{value}"}},
        }
    }
    plan = sw.swarm_secret_plan(services, "homeport")
    assert plan == [
        {
            "service": "neo4j",
            "env": "NEO4J_AUTH",
            "var": "pw",
            "format": "neo4j/{value}",
            "key": "neo4j-neo4j_auth",
            "name": "homeport_neo4j_neo4j_auth",
        }
    ]


def test_stack_missing_secret_name_is_an_error():
    with pytest.raises(AnsibleFilterError, match="no Swarm secret was created"):
        sw.swarm_stack(SERVICES, "teststack", OPTS, {})


def test_stack_overrides_merge_raw_keys():
    opts = OPTS | {"overrides": {"api": {"stop_grace_period": "20s"}}}
    assert sw.swarm_stack(SERVICES, "t", opts, NAMES)["services"]["api"]["stop_grace_period"] == "20s"


def test_stack_file_is_yaml_docker_accepts_shape():
    text = yaml.safe_dump(sw.swarm_stack(SERVICES, "teststack", OPTS, NAMES))
    again = yaml.safe_load(text)
    assert again["version"] == "3.9"
    assert set(again["services"]) == {"db", "api"}


# --- stack errors -------------------------------------------------------------------------------------------------
def test_stack_errors_fine_for_the_test_stack():
    assert sw.swarm_stack_errors(SERVICES, OPTS) == []


def test_stack_errors_start_interval_refused_naming_the_service():
    # the compose path's healthchecks (tests/stack/vars.yml) use start_interval; the stack file of the swarm path is
    # compose 3.9, whose schema in the docker CLI has no such key, so docker stack deploy would refuse it mid-deploy
    services = {**SERVICES, "db": STACK_VARS["stack_services"]["db"]}
    assert "start_interval" in services["db"]["healthcheck"]
    errors = sw.swarm_stack_errors(services, OPTS)
    assert errors == [
        "stack_services.db.healthcheck.start_interval: the swarm path writes a compose 3.9 stack file, whose schema "
        "has no start_interval (docker stack deploy refuses it); remove it or set a shorter interval"
    ]


def test_stack_errors_build_without_image():
    services = {"api": {"source": "api", "memory": "256m"}}
    errors = sw.swarm_stack_errors(services, OPTS | {"placement": {}, "replicas": {}, "env_from_secrets": {}})
    assert errors == [
        "stack_services.api: has no image; Swarm cannot build on a node: build it, load or push it to every node "
        "that may run it, and set image"
    ]


def test_stack_errors_dnsrr_with_ingress_and_unknown_modes():
    errors = sw.swarm_stack_errors(SERVICES, OPTS | {"publish_mode": "ingress"})
    assert any(e.startswith("swarm_publish_mode: ingress needs swarm_endpoint_mode vip") for e in errors)
    errors = sw.swarm_stack_errors(SERVICES, OPTS | {"endpoint_mode": "mesh"})
    assert "swarm_endpoint_mode: 'mesh' must be one of vip, dnsrr" in errors


def test_stack_errors_ports_need_opt_in_and_no_per_port_address():
    errors = sw.swarm_stack_errors(SERVICES, OPTS | {"publish_ports": False})
    assert sum("set swarm_publish_ports: true" in e for e in errors) == 2
    services = {**SERVICES, "api": {**SERVICES["api"], "ports": ["127.0.0.1:18080:8080"]}}
    errors = sw.swarm_stack_errors(services, OPTS)
    assert errors == [
        "stack_services.api.ports: '127.0.0.1:18080:8080' binds to 127.0.0.1; Swarm publishes a port on every "
        "address of the node (guard it with the firewall), so a per-port address cannot be kept"
    ]


def test_stack_errors_unknown_service_names_and_bad_values():
    opts = OPTS | {
        "placement": {"nosuch": {"role": "x"}, "api": {"bad label!": "x"}},
        "replicas": {"api": -1},
        "env_from_secrets": {"db": "postgres"},
        "update": {"order": "sideways", "monitor": "soon"},
    }
    errors = sw.swarm_stack_errors(SERVICES, opts)
    assert "swarm_placement.nosuch: is not an enabled service" in errors
    assert "swarm_placement.api: 'bad label!' is not a node label name" in errors
    assert "swarm_replicas.api: -1 must be a whole number >= 0" in errors
    assert "swarm_env_from_secrets.db: must be the service's command as a list (argv)" in errors
    assert "swarm_update_order: 'sideways' must be one of start-first, stop-first" in errors
    assert "swarm_update_monitor: 'soon' is not a duration such as 30s or 1m" in errors


# --- placement and budgets ----------------------------------------------------------------------------------------
NODES = [
    {"name": "n1", "labels": {"role": "db"}, "budget": "14g", "ram_bytes": 16 * 1024 * MiB},
    {"name": "n2", "labels": {"role": "api"}, "budget": "14g", "ram_bytes": 16 * 1024 * MiB},
    {"name": "n3", "labels": {"role": "api"}, "budget": "14g", "ram_bytes": 16 * 1024 * MiB},
]


def test_placement_fits():
    result = sw.swarm_placement(SERVICES, OPTS, NODES)
    assert result["errors"] == []
    totals = {n["name"]: n["total"] for n in result["nodes"]}
    assert totals == {"n1": 512 * MiB, "n2": 256 * MiB, "n3": 256 * MiB}


def test_placement_label_no_node_satisfies_names_the_nodes():
    opts = OPTS | {"placement": {"db": {"role": "gpu"}, "api": {"role": "api"}}}
    errors = sw.swarm_placement(SERVICES, opts, NODES)["errors"]
    assert errors == [
        "swarm_placement.db: node.labels.role == gpu matches no active node (nodes: n1 (active: role=db); "
        "n2 (active: role=api); n3 (active: role=api)); set swarm_node_labels on a node"
    ]


def test_placement_drained_node_is_not_eligible():
    nodes = [dict(NODES[0], availability="drain"), *NODES[1:]]
    errors = sw.swarm_placement(SERVICES, OPTS, nodes)["errors"]
    assert errors[0].startswith("swarm_placement.db: node.labels.role == db matches no active node")
    assert "n1 (drain: role=db)" in errors[0]


def test_placement_over_a_nodes_budget_names_node_and_services():
    nodes = [NODES[0], dict(NODES[1], budget="200m"), NODES[2]]
    errors = sw.swarm_placement(SERVICES, OPTS | {"replicas": {}}, nodes)["errors"]
    assert errors == [
        "node n2: the services that may run there (api=256 MiB) need up to 256 MiB, over its "
        "homeport_memory_budget 200 MiB"
    ]


def test_placement_over_a_nodes_ram_and_replicas_spread_worst_case():
    services = {"w": {"image": "w:1", "memory": "3g"}}
    nodes = [{"name": "a", "labels": {}, "budget": "100g", "ram_bytes": 8 * 1024 * MiB}, {"name": "b", "labels": {}}]
    result = sw.swarm_placement(services, {"replicas": {"w": 3}}, nodes)
    # 3 replicas over 2 nodes: up to 2 on one node
    assert [n["total"] for n in result["nodes"]] == [6 * 1024 * MiB, 6 * 1024 * MiB]
    assert result["errors"] == []
    result = sw.swarm_placement(services, {"replicas": {"w": 6}}, nodes)
    assert (
        "node a: the services that may run there (w=3.0 GiBx3) need up to 9.0 GiB, over its RAM 8.0 GiB"
        in (result["errors"])
    )


def test_placement_zero_replicas_is_not_placed():
    result = sw.swarm_placement(SERVICES, OPTS | {"replicas": {"api": 0}, "placement": {"api": {"role": "x"}}}, NODES)
    assert result["errors"] == []


# --- tailnet pitfalls ---------------------------------------------------------------------------------------------
def test_mtu_fits_tailscale0():
    assert sw.swarm_mtu_errors(1230, {"n1": {"interface": "tailscale0", "mtu": 1280}}) == []


def test_mtu_too_big_for_tailscale0():
    assert sw.swarm_mtu_errors(1450, {"n1": {"interface": "tailscale0", "mtu": 1280}}) == [
        "swarm_overlay_mtu: 1450 + 50 bytes of VXLAN does not fit the MTU 1280 of tailscale0 on n1; use at most 1230"
    ]
    # the default 1500 of Docker's overlay does not fit either
    assert sw.swarm_mtu_errors(1500, {"n1": {"interface": "tailscale0", "mtu": 0}})[0].startswith(
        "swarm_overlay_mtu: 1500 + 50 bytes"
    )


def test_mtu_not_a_number():
    assert sw.swarm_mtu_errors("big", {}) == ["swarm_overlay_mtu: 'big' must be a whole number"]


@pytest.mark.parametrize(
    ("release", "version"),
    [
        ("6.1.0-28-amd64", [6, 1, 0]),
        ("6.8.5-060805-generic", [6, 8, 5]),
        ("6.18.44-fc-v657", [6, 18, 44]),
        ("", [0, 0, 0]),
    ],
)
def test_kernel_version(release, version):
    assert sw.swarm_kernel_version(release) == version


def test_gro_before_6_8_5_over_tailscale_applies_the_workaround():
    # tailscale#11026: --write-coalesced-vxlan fails on 6.8.4 and passes on 6.8.5
    assert sw.swarm_gro_check("n1", "Linux", "6.8.4-060804-generic", True, True) == {
        "needed": True,
        "apply": True,
        "errors": [],
    }
    assert sw.swarm_gro_check("n1", "Linux", "6.8.5-060805-generic", True, True)["needed"] is False
    assert sw.swarm_gro_check("n1", "Linux", "6.1.0-28-amd64", False, True)["needed"] is False  # not over tailscale
    assert sw.swarm_gro_check("n1", "Darwin", "23.0.0", True, True)["needed"] is False


def test_gro_refused_when_the_workaround_is_off():
    result = sw.swarm_gro_check("n1", "Linux", "6.1.0-28-amd64", True, False)
    assert result["apply"] is False
    assert result["errors"] == [
        "swarm_tailscale_udp_gro_workaround: false on n1, whose kernel 6.1.0-28-amd64 is older than 6.8.5: UDP GRO "
        "on tailscale0 drops VXLAN (overlay) packets there (tailscale/tailscale#11026); set it to true "
        "(tailscaled runs with TS_TUN_DISABLE_UDP_GRO=true) or upgrade the kernel"
    ]


def test_colima_address_from_the_list_json():
    # colima list --json: one object per line; `address` only with --network-address (tests/doubles/bin/colima)
    without = '{"name": "default", "status": "Running", "arch": "aarch64", "address": ""}\n'
    with_addr = (
        '{"name": "default", "status": "Running", "address": "192.168.106.2"}\n{"name": "x", "status": "Stopped"}'
    )
    assert sw.swarm_colima_address(without) == ""
    assert sw.swarm_colima_address(with_addr) == "192.168.106.2"
    assert sw.swarm_colima_address(with_addr, "x") == ""
    assert sw.swarm_colima_address("not json") == ""


# --- convergence and rollback reports -----------------------------------------------------------------------------
def _inspect(name, state=None, started="2026-12-01T20:00:00Z", message=""):
    doc = {"Spec": {"Name": name}}
    if state:
        doc["UpdateStatus"] = {"State": state, "StartedAt": started, "Message": message}
    return doc


def test_converged_when_all_replicas_run_and_no_update_in_progress():
    rows = [{"Name": "t_api", "Replicas": "1/1"}, {"Name": "t_db", "Replicas": "1/1"}]
    assert sw.swarm_converged(rows, [_inspect("t_api", "completed"), _inspect("t_db")])["converged"] is True
    assert sw.swarm_converged(rows, [_inspect("t_api", "updating")])["converged"] is False
    assert sw.swarm_converged(rows, [_inspect("t_api", "rollback_started")])["converged"] is False
    assert sw.swarm_converged([{"Name": "t_api", "Replicas": "0/1"}], [])["converged"] is False
    assert sw.swarm_converged([], [])["converged"] is False
    # rolled back and running the old tasks again: converged (the report says what happened)
    assert sw.swarm_converged(rows, [_inspect("t_api", "rollback_completed")])["converged"] is True


def test_service_report_names_service_task_and_reason():
    inspected = [
        _inspect(
            "t_api",
            "rollback_completed",
            message="rollback completed",
        ),
        _inspect("t_db", "completed"),
    ]
    inspected[0]["UpdateStatus"]["Message"] = (
        "update rolled back due to failure or early termination of task x8c1k2m9q0a7"
    )
    tasks = [
        {
            "ID": "x8c1k2m9q0a7zzzzzzzz",
            "Name": "t_api.1",
            "Node": "n3",
            "CurrentState": "Failed 5 seconds ago",
            "Error": "task: non-zero exit (143): dockerexec: unhealthy container",
        },
        {"ID": "aaaaaaaaaaaa", "Name": "t_api.1", "Node": "n2", "CurrentState": "Running 2 minutes ago", "Error": ""},
        {"ID": "bbbbbbbbbbbb", "Name": "t_db.1", "Node": "n1", "CurrentState": "Running", "Error": ""},
    ]
    report = sw.swarm_service_report(inspected, tasks)
    assert len(report) == 1
    assert report[0]["service"] == "t_api"
    assert report[0]["text"] == (
        "service t_api: Swarm rollback completed: update rolled back due to failure or early termination of task "
        "x8c1k2m9q0a7; task t_api.1 (x8c1k2m9q0a7) on n3: task: non-zero exit (143): dockerexec: unhealthy container"
    )


def test_service_report_skips_a_rollback_older_than_this_deploy():
    inspected = [_inspect("t_api", "rollback_completed", started="2026-12-01T19:00:00Z")]
    before = sw.swarm_update_marks(inspected)
    assert before == {"t_api": "2026-12-01T19:00:00Z"}
    assert sw.swarm_service_report(inspected, [], before) == []
    newer = [_inspect("t_api", "rollback_completed", started="2026-12-01T20:00:00Z")]
    assert len(sw.swarm_service_report(newer, [], before)) == 1


def test_json_lines():
    assert sw.swarm_json_lines('{"a": 1}\n\nnot json\n{"b": 2}\n') == [{"a": 1}, {"b": 2}]


def test_nodes_from_host_vars_and_facts():
    hostvars = {
        "n1": {
            "swarm_node_labels": {"role": "db"},
            "homeport_memory_budget": "8g",
            "ansible_facts": {"memtotal_mb": 16},
        },
        "n2": {"swarm_node_availability": "drain"},
    }
    assert sw.swarm_nodes(["n1", "n2"], hostvars) == [
        {"name": "n1", "labels": {"role": "db"}, "availability": "active", "budget": "8g", "ram_bytes": 16 * MiB},
        {"name": "n2", "labels": {}, "availability": "drain", "budget": "14g", "ram_bytes": None},
    ]


def test_service_report_after_the_rollback_completed_takes_the_newest_failed_task():
    # what Docker 26 shows once the rollback finished (molecule scenario swarm): the message names no task
    inspected = [_inspect("t_api", "rollback_completed", message="rollback completed")]
    tasks = [
        {"ID": "aw3useleq", "Name": "t_api.1", "Node": "n3", "CurrentState": "Shutdown", "Error": ""},
        {
            "ID": "rc2tlblf6v5y",
            "Name": "t_api.1",
            "Node": "n3",
            "CurrentState": "Failed",
            "Error": "task: non-zero exit (137): dockerexec: unhealthy container",
        },
        {"ID": "rzose240abme", "Name": "t_api.1", "Node": "n2", "CurrentState": "Running", "Error": ""},
        {"ID": "nz135ygt4s3j", "Name": "t_api.1", "Node": "n2", "CurrentState": "Failed", "Error": "older failure"},
    ]
    (report,) = sw.swarm_service_report(inspected, tasks)
    assert report["text"] == (
        "service t_api: Swarm rollback completed: rollback completed; task t_api.1 (rc2tlblf6v5y) on n3: "
        "task: non-zero exit (137): dockerexec: unhealthy container"
    )
