"""The stack role's pure parts (plugins/filter/stack.py): memory budget sums from `docker compose config --format
json` documents, port-binding checks, default-credential detection, env files, service merging/rendering, release
bookkeeping and the deploy lock."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# the filter imports the size parser from the collection, as Ansible loads it (make collection-link)
sys.path.insert(0, str(ROOT / ".cache" / "collections"))
_spec = importlib.util.spec_from_file_location("stack_filter", ROOT / "plugins" / "filter" / "stack.py")
st = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(st)

GiB = 1024**3
MiB = 1024**2

# the shape docker compose v2.40 prints for `config --format json` (sizes as byte strings, long port syntax)
CONFIG = json.loads(
    """
{
  "name": "homeport",
  "services": {
    "postgres": {"image": "pgvector/pgvector:pg17", "mem_limit": "2147483648", "restart": "unless-stopped",
                 "environment": {"POSTGRES_PASSWORD": "s3cret-value"},
                 "ports": [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 5432, "published": "5432",
                            "protocol": "tcp"}]},
    "api": {"build": {"context": "/srv/src/api", "dockerfile": "Dockerfile"}, "image": "homeport-api:abc",
            "deploy": {"resources": {"limits": {"memory": "1073741824"}}, "placement": {}},
            "restart": "always",
            "ports": [{"mode": "ingress", "host_ip": "100.101.102.103", "target": 8000, "published": "8000",
                       "protocol": "tcp"}]},
    "workers": {"image": "worker:1", "mem_limit": "536870912", "deploy": {"replicas": 3}, "restart": "always"}
  }
}
"""
)


def with_service(name: str, svc: dict) -> dict:
    cfg = json.loads(json.dumps(CONFIG))
    cfg["services"][name] = svc
    return cfg


# ------------------------------------------------------------------------------------------------- budget
def test_budget_sums_limits_from_mem_limit_deploy_limits_and_replicas():
    b = st.stack_budget(CONFIG, "14g", 24 * GiB)
    assert b["total"] == 2 * GiB + 1 * GiB + 3 * 512 * MiB
    assert b["errors"] == []
    assert b["missing_limit"] == []
    assert {r["name"]: r["total"] for r in b["services"]} == {
        "postgres": 2 * GiB,
        "api": GiB,
        "workers": 1536 * MiB,
    }
    assert "workers=512 MiBx3" in b["breakdown"]


def test_budget_over_the_budget_names_services_and_totals():
    b = st.stack_budget(CONFIG, "4g", 24 * GiB)
    assert len(b["errors"]) == 1
    msg = b["errors"][0]
    assert "total 4.5 GiB exceed homeport_memory_budget 4.0 GiB by 512 MiB" in msg
    for part in ("postgres=2.0 GiB", "api=1.0 GiB", "workers=512 MiBx3"):
        assert part in msg


def test_budget_over_the_runtime_memory_even_when_the_budget_allows_it():
    b = st.stack_budget(CONFIG, "64g", 4 * GiB)
    assert len(b["errors"]) == 1
    assert "exceed the container runtime's memory 4.0 GiB (docker info MemTotal)" in b["errors"][0]


def test_budget_exactly_at_the_budget_is_fine():
    assert st.stack_budget(CONFIG, 4608 * MiB, None)["errors"] == []


def test_budget_refuses_a_service_without_limit_and_names_it():
    cfg = with_service("sidecar", {"image": "x", "restart": "always"})
    b = st.stack_budget(cfg, "14g", None)
    assert b["missing_limit"] == ["sidecar"]
    assert any("without a memory limit: sidecar" in e for e in b["errors"])


@pytest.mark.parametrize("limit", ["0", 0, "", None])
def test_budget_zero_or_empty_limit_counts_as_missing(limit):
    cfg = with_service("sidecar", {"image": "x", "restart": "always", "mem_limit": limit})
    assert st.stack_budget(cfg, "14g", None)["missing_limit"] == ["sidecar"]


@pytest.mark.parametrize(("restart", "ok"), [("unless-stopped", True), ("always", True), ("no", False), (None, False)])
def test_budget_requires_a_restart_policy_that_survives_power_loss(restart, ok):
    svc = {"image": "x", "mem_limit": "1024"}
    if restart:
        svc["restart"] = restart
    b = st.stack_budget(with_service("s", svc), "14g", None)
    assert ("s" in b["bad_restart"]) is not ok


def test_budget_bad_budget_value_names_the_variable():
    with pytest.raises(st.AnsibleFilterError, match="homeport_memory_budget"):
        st.stack_budget(CONFIG, "lots", None)


def test_budget_seed_default_stack_fits_14g():
    """The default stack of roles/stack/defaults (the plan's table) fits the 14 GiB budget. The rows of the plan's
    table sum to 10 GiB (2 + 2 + 1 + 2 + 1.5 + 0.5 + 1; the table's own "Total 12GB" line is off by 2)."""
    defaults = yaml.safe_load((ROOT / "roles" / "stack" / "defaults" / "main.yml").read_text())
    project = st.stack_compose(defaults["stack_services"], "homeport", "127.0.0.1", {})
    b = st.stack_budget(project, "14g", 16 * GiB)
    assert b["total"] == 10 * GiB
    assert b["errors"] == []
    assert st.stack_budget(project, "9g", 16 * GiB)["errors"]


# ------------------------------------------------------------------------------------------------- ports
ALLOWED = ["127.0.0.1", "::1", "100.101.102.103"]


def test_ports_on_loopback_and_tailnet_are_fine():
    assert st.stack_port_violations(CONFIG, ALLOWED) == []


@pytest.mark.parametrize("host_ip", [None, "", "0.0.0.0", "::"])
def test_ports_on_every_interface_are_refused(host_ip):
    port = {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}
    if host_ip is not None:
        port["host_ip"] = host_ip
    cfg = with_service("web", {"image": "x", "mem_limit": "1", "restart": "always", "ports": [port]})
    problems = st.stack_port_violations(cfg, ALLOWED)
    assert len(problems) == 1
    assert problems[0].startswith(f"service web: port 8080->80 binds to {host_ip or '0.0.0.0'}")
    assert "stack_allow_public_ports is false" in problems[0]
    assert st.stack_port_violations(cfg, ALLOWED, allow_public=True) == []


def test_ports_on_a_lan_address_are_refused_unless_public_ports_are_allowed():
    """Issue 27: a LAN address is the LAN's (the explicit opt-in stack_allow_public_ports allows it)."""
    port = {"host_ip": "192.168.1.20", "target": 80, "published": "80"}
    cfg = with_service("web", {"image": "x", "ports": [port]})
    assert st.stack_port_violations(cfg, ALLOWED) == [
        "service web: port 80->80 binds to 192.168.1.20; allowed: loopback, 100.101.102.103, 127.0.0.1, ::1 "
        "(stack_allow_public_ports is false)"
    ]
    assert st.stack_port_violations(cfg, ALLOWED, allow_public=True) == []


def test_the_whole_loopback_range_is_loopback():
    cfg = with_service("web", {"image": "x", "ports": [{"host_ip": "127.0.0.53", "target": 80, "published": "80"}]})
    assert st.stack_port_violations(cfg, ALLOWED) == []


@pytest.mark.parametrize("mode", ["host", "container:some-other-container"])
def test_host_networking_in_the_staged_config_is_refused(mode):
    cfg = with_service("web", {"image": "x", "network_mode": mode})
    problems = st.stack_port_violations(cfg, ALLOWED)
    assert len(problems) == 1 and problems[0].startswith(f"service web: network_mode {mode} "), problems
    assert st.stack_port_violations(cfg, ALLOWED, allow_public=True) == []
    assert st.stack_port_violations(with_service("web", {"image": "x", "network_mode": "service:api"}), ALLOWED) == []


def test_a_macvlan_network_in_the_staged_config_is_refused():
    cfg = {**CONFIG, "networks": {"lan": {"driver": "macvlan", "driver_opts": {"parent": "eth0"}}}}
    assert st.stack_port_violations(cfg, ALLOWED) == [
        "network lan uses the macvlan driver: its containers are on the host's network or the LAN itself "
        "(stack_allow_public_ports is false)"
    ]


# the preflight (roles/stack/tasks/validate.yml): stack_bind_address, stack_services and the user's compose files
TAILNET = ["100.101.102.103"]
DB = {"image": "pg", "memory": "1g", "ports": ["5432:5432"]}


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "100.101.102.103", "localhost"])
def test_exposure_loopback_and_the_tailnet_address_pass(address):
    assert st.stack_exposure_problems({"db": DB}, address, TAILNET) == []


def test_exposure_a_lan_bind_address_is_refused_naming_the_variable_value_and_rule():
    problems = st.stack_exposure_problems({"db": DB}, "192.168.1.20", TAILNET)
    assert problems[0] == (
        "stack_bind_address: 192.168.1.20 is neither loopback (127.0.0.0/8, ::1) nor this host's tailnet address "
        "(100.101.102.103): a port bound there is reachable from the LAN; use 127.0.0.1 or the tailnet address, or "
        "set stack_allow_public_ports: true to expose it on purpose"
    )
    assert st.stack_exposure_problems({"db": DB}, "192.168.1.20", TAILNET, True) == []


def test_exposure_every_interface_and_another_tailnet_address():
    assert st.stack_exposure_problems({"db": DB}, "0.0.0.0", TAILNET)[0].startswith(
        "stack_bind_address: 0.0.0.0 publishes ports on every interface"
    )
    assert (
        "not this host's tailnet address (100.101.102.103)" in st.stack_exposure_problems({}, "100.64.0.9", TAILNET)[0]
    )
    # the host's tailnet address unknown here (tailscale not managed): an address of the tailnet ranges passes
    assert st.stack_exposure_problems({}, "100.64.0.9", []) == []
    assert st.stack_exposure_problems({}, "fd7a:115c:a1e0::9", []) == []


def test_exposure_a_service_port_on_a_lan_address_and_raw_compose_ports():
    services = {
        "db": {**DB, "ports": ["192.168.1.20:5432:5432", "127.0.0.1:5433:5432", {"target": 1, "host_ip": "10.0.0.2"}]},
        "web": {"image": "w", "memory": "1g", "compose": {"ports": ["8080:80", "[::1]:8081:80", "${BIND}:8082:80"]}},
    }
    problems = st.stack_exposure_problems(services, "127.0.0.1", TAILNET)
    assert [p.split(", which ")[0] for p in problems] == [
        "stack_services.db.ports: port 192.168.1.20:5432:5432 binds to 192.168.1.20",
        "stack_services.db.ports: port random->1 binds to 10.0.0.2",
        # raw compose ports bind every interface unless they name an address (stack_bind_address does not apply)
        "stack_services.web.compose.ports: port 8080:80 binds to 0.0.0.0",
    ]
    assert st.stack_exposure_problems(services, "127.0.0.1", TAILNET, allow_public=True) == []


def test_exposure_host_network_mode_in_a_service_is_refused():
    services = {"db": {**DB, "compose": {"network_mode": "host"}}}
    assert st.stack_exposure_problems(services, "127.0.0.1", TAILNET) == [
        "stack_services.db.compose.network_mode: host runs on the host's network: every port it listens on is open "
        "on every interface (the LAN included); set stack_allow_public_ports: true to expose it on purpose"
    ]
    assert st.stack_exposure_problems(services, "127.0.0.1", TAILNET, True) == []


def test_exposure_the_users_compose_files(tmp_path):
    good = tmp_path / "good.yml"
    good.write_text("services:\n  db:\n    ports: !override ['127.0.0.1:5432:5432']\n", encoding="utf-8")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "services:\n  db:\n    network_mode: host\n  web:\n    ports: ['9000:90']\n"
        "networks:\n  lan:\n    driver: ipvlan\n",
        encoding="utf-8",
    )
    assert st.stack_exposure_problems({}, "127.0.0.1", TAILNET, compose_files=[str(good)]) == []
    problems = st.stack_exposure_problems({}, "127.0.0.1", TAILNET, compose_files=[str(good), str(bad)])
    assert [p.split(" ", 3)[:3] for p in problems] == [
        ["stack_compose_files:", f"{bad}:", "service"],
        ["stack_compose_files:", f"{bad}:", "service"],
        ["stack_compose_files:", f"{bad}:", "networks:"],
    ]
    assert f"stack_compose_files: {bad}: service db network_mode: host runs on the host's network" in problems[0]
    assert f"stack_compose_files: {bad}: service web ports: port 9000:90 binds to 0.0.0.0" in problems[1]
    assert st.stack_exposure_problems({}, "127.0.0.1", TAILNET, True, [str(good), str(bad)]) == []


def test_ports_short_syntax_and_unpublished_ports():
    cfg = with_service("web", {"image": "x", "ports": ["127.0.0.1:80:80", "9000:90", {"target": 7000}]})
    problems = st.stack_port_violations(cfg, ALLOWED)
    assert problems == [
        "service web: port 9000->90 binds to 0.0.0.0; allowed: loopback, 100.101.102.103, 127.0.0.1, ::1 "
        "(stack_allow_public_ports is false)",
        # a long-syntax port without `published` gets a random host port on every interface
        "service web: port random->7000 binds to 0.0.0.0; allowed: loopback, 100.101.102.103, 127.0.0.1, ::1 "
        "(stack_allow_public_ports is false)",
    ]
    cfg = with_service("web", {"image": "x", "expose": ["80"]})
    assert st.stack_port_violations(cfg, ALLOWED) == []


# ------------------------------------------------------------------------------------------------- secrets
@pytest.mark.parametrize(
    "value", ["", "   ", None, "postgres", "neo4j", "admin", "password", "changeme", "CHANGEME", " Password "]
)
def test_default_credentials_are_refused_naming_the_variable(value):
    problems = st.stack_weak_secrets({"stack_postgres_password": value})
    assert len(problems) == 1
    assert problems[0].startswith("stack_postgres_password: ")
    if value and value.strip():
        assert value.strip() not in problems[0].replace("stack_postgres_password", "")


def test_password_equal_to_its_user_is_refused():
    users = {"stack_postgres_password": ["brain"]}
    assert st.stack_weak_secrets({"stack_postgres_password": "brain"}, users) == [
        "stack_postgres_password: equals its user name; choose a strong secret"
    ]


def test_strong_secrets_pass_and_env_unsafe_ones_are_refused():
    assert st.stack_weak_secrets({"a": "Xq7-long-random-9f", "b": "tok_123456789abc"}) == []
    assert st.stack_weak_secrets({"a": "it's"}) == [
        "a: must not contain a newline, NUL or single quote (env file syntax)"
    ]


def test_secret_users_come_from_user_env_keys_and_formats():
    services = {
        "postgres": {"environment": {"POSTGRES_USER": "brain"}, "secrets": {"POSTGRES_PASSWORD": "stack_pg"}},
        "neo4j": {"secrets": {"NEO4J_AUTH": {"var": "stack_neo", "format": "neo4j/{value}"}}},
    }
    assert st.stack_secret_users(services) == {"stack_pg": ["brain"], "stack_neo": ["neo4j"]}


def test_env_file_quotes_values_literally():
    bindings = [
        {"service": "neo4j", "env": "NEO4J_AUTH", "var": "pw", "format": "neo4j/{value}"},
        {"service": "neo4j", "env": "TOKEN", "var": "tok", "format": "{value}"},
    ]
    text = st.stack_env_file(bindings, {"pw": "a$b#c d", "tok": "t0k"})
    assert text == "NEO4J_AUTH='neo4j/a$b#c d'\nTOKEN='t0k'\n"


def test_secret_binding_needs_a_value_placeholder():
    with pytest.raises(st.AnsibleFilterError, match=r"stack_services\.x\.secrets\.A"):
        st.stack_secret_bindings({"x": {"secrets": {"A": {"var": "v", "format": "no placeholder"}}}})


# ------------------------------------------------------------------------------------------------- services
def test_merge_extra_over_defaults_and_disable():
    defaults = {"a": {"image": "a", "memory": "1g"}, "b": {"image": "b", "memory": "1g"}, "c": {"image": "c"}}
    extra = {"a": {"memory": "2g"}, "d": {"image": "d", "memory": "64m"}, "c": None}
    merged = st.stack_merge_services(defaults, extra, ["b"])
    assert merged == {"a": {"image": "a", "memory": "2g"}, "d": {"image": "d", "memory": "64m"}}
    assert defaults["a"]["memory"] == "1g"  # not mutated


def test_service_errors_name_the_setting():
    services = {
        "ok": {"image": "x", "memory": "1g", "healthcheck": {"test": ["CMD", "true"]}},
        "worker": {"image": "x", "memory": "1g", "healthcheck_exempt": "pulls its work, serves no port"},
        "nohealth": {"image": "x", "memory": "1g"},
        "disabled": {"image": "x", "memory": "1g", "healthcheck": {"disable": True}},
        "nolimit": {"image": "x"},
        "norestart": {"image": "x", "memory": "1g", "restart": "no"},
        "nosrc": {"source": "missing", "memory": "1g"},
        "typo": {"image": "x", "memory": "1g", "memroy": "2g"},
        "dep": {"image": "x", "memory": "1g", "depends_on": ["ghost"]},
        "badsize": {"image": "x", "memory": "big"},
    }
    errors = st.stack_service_errors(services, ["api"])
    joined = "\n".join(errors)
    assert "stack_services.nolimit.memory: every service needs a memory limit" in joined
    assert "stack_services.norestart.restart: 'no' would not come back after a power loss" in joined
    assert "stack_services.nosrc.source: 'missing' is not a name in stack_source_dirs" in joined
    assert "stack_services.typo: unknown setting(s) memroy" in joined
    assert "stack_services.dep.depends_on: 'ghost' is not an enabled service" in joined
    assert "stack_services.badsize.memory: 'big' is not a size" in joined
    assert not any(e.startswith(("stack_services.ok", "stack_services.worker")) for e in errors)
    # issue 14: rollback depends on health, so a service without a healthcheck needs a stated reason
    assert "stack_services.nohealth.healthcheck: every service needs a healthcheck" in joined
    assert "stack_services.disabled.healthcheck: every service needs a healthcheck" in joined
    assert "set healthcheck_exempt: '<why this service cannot have one>'" in joined


def test_the_default_stack_has_a_healthcheck_or_a_reason_for_every_service():
    import yaml

    defaults = yaml.safe_load((ROOT / "roles" / "stack" / "defaults" / "main.yml").read_text())
    sources = [spec["source"] for spec in defaults["stack_services"].values() if spec.get("source")]
    errors = st.stack_service_errors(defaults["stack_services"], sources)
    assert errors == []


def test_declared_budget_is_checked_before_anything_runs():
    services = {"db": {"memory": "512m"}, "api": {"memory": "256m"}, "bad": {"memory": "lots"}}
    assert st.stack_declared_budget(services, "1g") == []
    (msg,) = st.stack_declared_budget(services, "600m")
    assert msg == (
        "homeport_memory_budget: 600 MiB is less than the memory limits of the stack, 768 MiB (over by 168 MiB): "
        "stack_services.db=512 MiB, stack_services.api=256 MiB"
    )
    # other homeport processes that count in the budget (e.g. monitoring) are named with their variable
    (msg,) = st.stack_declared_budget(services, "800m", {"monitoring_memory_limit": "64m"})
    assert "monitoring_memory_limit=64 MiB" in msg


def test_compose_render_binds_ports_tags_built_images_and_waits_for_healthy_deps():
    services = {
        "db": {"image": "pg", "memory": "512m", "volumes": ["pgdata:/data", "./conf:/conf"], "healthcheck": {"t": 1}},
        "api": {"source": "api", "memory": "256m", "ports": ["8080:80", "127.0.0.1:9000:90/udp"], "depends_on": ["db"]},
    }
    project = st.stack_compose(services, "demo", "100.64.0.1", {"api": "abc123"})
    api = project["services"]["api"]
    assert api["image"] == "demo-api:abc123"
    assert api["build"] == {"context": "./src/api"}
    assert api["pull_policy"] == "never"
    assert api["restart"] == "unless-stopped"
    assert api["mem_limit"] == 256 * MiB
    assert api["ports"][0] == {"target": 80, "published": "8080", "host_ip": "100.64.0.1", "protocol": "tcp"}
    assert api["ports"][1] == {"target": 90, "published": "9000", "host_ip": "127.0.0.1", "protocol": "udp"}
    assert api["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert project["volumes"] == {"pgdata": {}}
    assert project["services"]["db"]["pull_policy"] == "missing"


# ------------------------------------------------------------------------------------------------- releases / lock
def test_release_plan_previous_and_prune():
    names = ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z", "20260104T000000Z", "20260105T000000Z"]
    plan = st.stack_release_plan(names, "20260105T000000Z", 3)
    assert plan["previous"] == "20260104T000000Z"
    assert plan["prune"] == ["20260101T000000Z", "20260102T000000Z"]


def test_release_plan_after_rollback_keeps_current_and_its_previous():
    names = ["r1", "r2", "r3", "r4"]
    plan = st.stack_release_plan(names, "r2", 2)  # rolled back to r2: r1 is its previous
    assert plan["previous"] == "r1"
    assert plan["prune"] == ["r3", "r4"]


def test_release_plan_follows_the_parent_after_a_rollback_and_a_new_deploy():
    # r1 deployed, r2 deployed, rolled back to r1, then r3 deployed from r1: rolling back r3 must give r1, not r2
    plan = st.stack_release_plan(["r1", "r2", "r3"], "r3", 5, parent="r1")
    assert plan["previous"] == "r1"
    # the parent was pruned or never recorded: fall back to the newest older release
    assert st.stack_release_plan(["r2", "r3"], "r3", 5, parent="r1")["previous"] == "r2"
    assert st.stack_release_plan(["r2", "r3"], "r3", 5, parent="")["previous"] == "r2"
    # pruning never takes current or the parent
    assert st.stack_release_plan(["r1", "r2", "r3", "r4"], "r4", 2, parent="r1")["prune"] == ["r2", "r3"]


def test_release_plan_first_release_has_no_previous():
    assert st.stack_release_plan(["r1"], "r1", 5) == {
        "releases": ["r1"],
        "current": "r1",
        "previous": None,
        "prune": [],
    }
    assert st.stack_release_plan([], "", 5)["previous"] is None


def test_release_plan_needs_two_releases():
    with pytest.raises(st.AnsibleFilterError, match="stack_keep_releases"):
        st.stack_release_plan(["r1"], "r1", 1)


def test_lock_state_live_and_stale():
    lock = {"owner": "ana@laptop", "pid": 4242, "time": 1000, "action": "deploy"}
    live = st.stack_lock_state(lock, 1030, 1800)
    assert not live["stale"]
    assert "another deploy is running: locked by ana@laptop (pid 4242, action deploy) 30s ago" in live["message"]
    stale = st.stack_lock_state(lock, 1000 + 1801, 1800)
    assert stale["stale"]
    assert "stale lock of ana@laptop" in stale["message"]
    assert st.stack_lock_state("garbage", 0, 10)["stale"]


@pytest.mark.parametrize("gone", [False, "False"])
def test_a_lock_whose_owner_process_is_gone_is_stale_at_once(gone):
    """Issue 14: Ctrl-C / SIGKILL of the controller leaves the lock behind; its owner (this machine) is gone."""
    lock = {"owner": "ana@laptop", "pid": 4242, "time": 1000, "action": "deploy"}
    state = st.stack_lock_state(lock, 1005, 1800, gone)
    assert state["stale"]
    assert "that run is gone" in state["message"]
    assert not st.stack_lock_state(lock, 1005, 1800, True)["stale"]  # alive: still held
    assert not st.stack_lock_state(lock, 1005, 1800, None)["stale"]  # another machine's lock: by age only


def test_tree_hash_changes_with_content_only(tmp_path):
    (tmp_path / "a.py").write_text("print(1)\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"junk")
    first = st.stack_tree_hash(str(tmp_path))
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"other junk")
    assert st.stack_tree_hash(str(tmp_path)) == first
    (tmp_path / "a.py").write_text("print(2)\n")
    assert st.stack_tree_hash(str(tmp_path)) != first
    with pytest.raises(st.AnsibleFilterError, match="stack_source_dirs"):
        st.stack_tree_hash(str(tmp_path / "nope"))


def test_ps_row_judges_health():
    assert st.stack_ps_row({"Service": "api", "State": "running", "Health": "healthy"})["ok"]
    assert st.stack_ps_row({"Service": "w", "State": "running", "Health": ""})["ok"]
    bad = st.stack_ps_row({"Service": "api", "State": "running", "Health": "unhealthy", "Status": "Up 9s (unhealthy)"})
    assert not bad["ok"]
    assert bad["text"] == "api: state running, health unhealthy (Up 9s (unhealthy))"
    assert not st.stack_ps_row({"Service": "job", "State": "exited", "ExitCode": 1})["ok"]
