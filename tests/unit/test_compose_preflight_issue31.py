"""Issue 31 (part): the user's compose files (stack_compose_files) in the preflight, before anything changes.

- defect 3: a compose-file service named like one of homeport's own services (``db``) merged silently into it; it is
  refused (exit 3) naming the compose file and the homeport service, and the default-credential check reads the
  compose files' environment too.
- defect 7: a compose-only project (every homeport service disabled) is accepted, and ``homeport deploy SERVICE``
  (stack_services_selected) takes a service of a compose file.
- defect 8: ``~/...`` in stack_compose_files is the home directory on the controller; a relative path is relative to
  the inventory's directory, and the error says so.
- defect 9: ``deploy.restart_policy.condition: any`` counts as surviving a power loss; ``mem_limit: 512`` (bytes) is
  refused by the preflight; a string where a list is expected is refused naming the key (never echoed character by
  character); a compose parse error found after staging exits 3 and does not claim "refused before any role ran".

The end-to-end rows go through cli.execute (ansible-runner, the event handler, the exit codes) with the preflight of
the stack role and a marker as the pending change (tests/unit/fixtures/playbooks/preflight_roles_marker.yml, as
test_preflight_rules.py): a refused row leaves no marker, an accepted row leaves it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import yaml
from conftest import PLAYBOOKS, run_cli, write_hosts_inventory

from homeport import events

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))  # the filters import the collection, as Ansible loads them

STACK = {
    **yaml.safe_load((ROOT / "tests" / "stack" / "vars.yml").read_text()),
    "stack_source_dirs": [{"name": "api", "src": str(ROOT / "tests" / "stack" / "api")}],
    "homeport_roles": ["stack"],
}

WEB = {"image": "nginx:1.27", "mem_limit": "128m", "restart": "unless-stopped"}


def _filters(name: str):
    """plugins/filter/<name>.py loaded as Ansible loads it (a missing file fails the test that needs it)."""
    spec = importlib.util.spec_from_file_location(f"issue31_{name}", ROOT / "plugins" / "filter" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compose(path: Path, services: dict, extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"services": services}, sort_keys=False) + extra, encoding="utf-8")
    return path


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------------------------
# end to end: the preflight through cli.execute
# ---------------------------------------------------------------------------------------------------------------
def test_compose_files_in_the_preflight(project, out, monkeypatch):
    """One run, one host per row: the refused rows exit 3 with their message and no marker; the accepted rows pass
    the preflight (their marker exists)."""
    home = project / "home"
    monkeypatch.setenv("HOME", str(home))
    inv_dir = project / "inventory"
    inv_dir.mkdir()
    d = project / "compose"
    web = _compose(d / "web.yaml", {"web": WEB})
    rows: dict[str, tuple[dict, str | None]] = {
        # defect 3: a user's db would take over homeport's db (stack_services.db of tests/stack/vars.yml)
        "collision": (
            {"stack_compose_files": [str(_compose(d / "collide.yaml", {"web": WEB, "db": {"image": "postgres:17"}}))]},
            f"stack_compose_files: {d}/collide.yaml: service db has the name of homeport's own service db "
            "(stack_services.db): compose would merge the two into one service",
        ),
        # defect 3: the defaults check sees the compose files' environment
        "weak-credential": (
            {
                "stack_compose_files": [
                    str(_compose(d / "weak.yaml", {"web": {**WEB, "environment": {"POSTGRES_PASSWORD": "postgres"}}}))
                ]
            },
            f"stack_compose_files: {d}/weak.yaml: service web environment POSTGRES_PASSWORD: is a well-known default "
            "credential",
        ),
        # defect 7: no homeport service at all, the services come from the compose file
        "compose-only": ({"stack_services_disabled": ["db", "api"], "stack_compose_files": [str(web)]}, None),
        # defect 7: homeport deploy web, web being a service of the compose file
        "deploy-compose-service": ({"stack_compose_files": [str(web)], "stack_services_selected": ["web"]}, None),
        # defect 8: the README's own form
        "tilde-path": (
            {"stack_compose_files": ["~/myapp/compose.yaml"]},
            None,
        ),
        # defect 8: relative to the inventory's directory (the cwd is its parent)
        "relative-path": ({"stack_compose_files": ["compose/other.yaml"]}, None),
        "relative-missing": (
            {"stack_compose_files": ["compose/nope.yaml"]},
            f"stack_compose_files: 'compose/nope.yaml' is not a file on the controller (looked for "
            f"{inv_dir}/compose/nope.yaml: a relative path is relative to the inventory's directory {inv_dir}",
        ),
        # defect 9: swarm syntax, the engine gets restart: always
        "restart-any": (
            {
                "stack_compose_files": [
                    str(
                        _compose(
                            d / "any.yaml",
                            {
                                "web": {
                                    "image": "nginx:1.27",
                                    "deploy": {
                                        "restart_policy": {"condition": "any"},
                                        "resources": {"limits": {"memory": "128m"}},
                                    },
                                }
                            },
                        )
                    )
                ]
            },
            None,
        ),
        "restart-missing": (
            {
                "stack_compose_files": [
                    str(_compose(d / "norestart.yaml", {"web": {"image": "nginx", "mem_limit": "1g"}}))
                ]
            },
            f'stack_compose_files: {d}/norestart.yaml: service web restart: none set (compose\'s default is "no"): '
            "it would stay down after a power loss",
        ),
        "mem-bytes": (
            {"stack_compose_files": [str(_compose(d / "bytes.yaml", {"web": {**WEB, "mem_limit": 512}}))]},
            f"stack_compose_files: {d}/bytes.yaml: service web mem_limit: 512 is 512 bytes (a number without a unit "
            "is bytes), under Docker's minimum of 6 MiB; write 512m for 512 MiB",
        ),
        "string-for-list": (
            {"stack_compose_files": [str(_compose(d / "string.yaml", {"web": {**WEB, "ports": "127.0.0.1:8080:80"}}))]},
            f"stack_compose_files: {d}/string.yaml: service web ports: must be a list, got the string "
            "'127.0.0.1:8080:80'; write ports: ['127.0.0.1:8080:80']",
        ),
    }
    _compose(home / "myapp" / "compose.yaml", {"web": WEB})
    _compose(inv_dir / "compose" / "other.yaml", {"web": WEB})
    hosts = {
        name: {**STACK, **broken, "marker_path": str(project / f"marker-{name}")} for name, (broken, _) in rows.items()
    }
    code = run_cli(PLAYBOOKS / "preflight_roles_marker.yml", write_hosts_inventory(inv_dir, hosts))
    text = out.export_text()
    wrong = []
    for name, (_broken, message) in rows.items():
        marker = (project / f"marker-{name}").exists()
        block = _flat(text.split(f"{name}: ", 1)[-1].split("\n\n", 1)[0]) if f"{name}: " in text else ""
        if message is None and not marker:
            wrong.append(f"{name}: refused, expected to pass the preflight: {block[:600]}")
        if message is not None and marker:
            wrong.append(f"{name}: passed the preflight, expected the refusal {message!r}")
        if message is not None and not marker and message not in block:
            wrong.append(f"{name}: expected {message!r} in {block[:800]!r}")
    assert not wrong, "\n".join(wrong) + "\n\n" + text
    assert code == events.EXIT_INVALID, text
    # the string is named once, never taken apart character by character ("port 1 ...", "'1' is not ...")
    assert "port 1 " not in text and "'1'" not in text
    assert "Nothing was changed" in text


PARSE_PLAY = """
- name: The stack's checks, then the staging with a compose that refuses the project
  hosts: all
  gather_facts: false
  tasks:
    - name: Validate
      ansible.builtin.include_role:
        name: stack
        tasks_from: validate.yml
    - name: Stage and check the release
      ansible.builtin.include_role:
        name: stack
        tasks_from: stage.yml
    - name: Leave the marker
      ansible.builtin.copy:
        dest: "{{ marker_path }}"
        content: "went past the staging\\n"
        mode: "0644"
"""

FAKE_DOCKER = """#!/bin/sh
# docker double: compose config refuses the project as compose does with a bad file; info tells the memory
case "$*" in
  *" config "*) echo 'validating overrides/0-web.yaml: services.web.ports must be a array' >&2; exit 15 ;;
  info*) echo 17179869184 ;;
esac
"""


def _staged_project(project: Path, docker_script: str) -> tuple[Path, Path, dict]:
    """PARSE_PLAY, an empty live project directory and the host's variables, with ``docker_script`` as the docker
    CLI (homeport_docker_cli: set by the shared facts in a real run)."""
    docker = project / "docker"
    docker.write_text(docker_script, encoding="utf-8")
    docker.chmod(0o755)
    live = project / "live"
    live.mkdir()
    play = project / "parse.yml"
    play.write_text(PARSE_PLAY, encoding="utf-8")
    host = {
        **STACK,
        "homeport_os_family": "Debian",
        "homeport_docker_host": "unix:///nonexistent.sock",
        "homeport_docker_cli": str(docker),
        "homeport_unknown_variables": "warn",
        "stack_project_dir": str(live),
        "marker_path": str(project / "marker"),
    }
    return play, live, host


def test_a_compose_parse_error_after_staging_exits_3_and_says_where(project, out):
    """defect 9: a project compose refuses after the staging changed nothing on the host: exit 3 (it exited 1), and
    the report says the release was refused after staging (not "refused before any role ran")."""
    play, live, host = _staged_project(project, FAKE_DOCKER)
    host["stack_compose_files"] = [str(_compose(project / "compose" / "web.yaml", {"web": WEB}))]
    code = run_cli(play, write_hosts_inventory(project, {"h": host}))
    text = _flat(out.export_text())
    assert not (project / "marker").exists()
    assert "docker compose config refused the staged project" in text, text
    assert "services.web.ports must be a array" in text
    assert "before any role ran" not in text, text
    assert "the release was refused after it was staged" in text, text
    assert code == events.EXIT_INVALID, text
    # the live project is untouched (the staging directory is removed by main.yml's always, not run here)
    assert not (live / "compose.yaml").exists() and not (live / "current").exists()


# docker double whose compose config prints a parsed project (the file next to it); info tells the memory
FAKE_DOCKER_CONFIG = """#!/bin/sh
case "$*" in
  *" config "*) cat "$(dirname "$0")/config.json" ;;
  info*) echo 17179869184 ;;
esac
"""
STAGED_WEB = {
    "image": "nginx:1.27",
    "restart": "unless-stopped",
    "deploy": {"resources": {"limits": {"memory": "128m"}}},
}


def test_the_staged_release_is_judged_after_its_memory_is_read(project, out):
    """validate_release.yml's second check (after `docker info`): a staged project with a service without a memory
    limit and a port on 0.0.0.0 is refused after staging (exit 3, both problems named); the same project with a limit
    and a loopback port goes past the staging."""
    play, _, host = _staged_project(project, FAKE_DOCKER_CONFIG)
    refused = {
        "services": {
            "web": {**STAGED_WEB, "ports": [{"host_ip": "0.0.0.0", "published": "8080", "target": 80}]},
            "worker": {"image": "busybox:1", "restart": "unless-stopped"},
        }
    }
    (project / "config.json").write_text(json.dumps(refused), encoding="utf-8")
    code = run_cli(play, write_hosts_inventory(project, {"h": host}))
    text = _flat(out.export_text())
    assert code == events.EXIT_INVALID, text
    assert not (project / "marker").exists()
    assert "Deploy refused, nothing was changed:" in text, text
    assert "service(s) without a memory limit: worker" in text, text
    assert "service web: port 8080->80 binds to 0.0.0.0" in text, text
    assert "the release was refused after it was staged" in text, text

    accepted = {
        "services": {"web": {**STAGED_WEB, "ports": [{"host_ip": "127.0.0.1", "published": "8080", "target": 80}]}}
    }
    (project / "config.json").write_text(json.dumps(accepted), encoding="utf-8")
    code = run_cli(play, write_hosts_inventory(project, {"h": host}))
    assert code == 0, _flat(out.export_text())
    assert (project / "marker").exists()


# ---------------------------------------------------------------------------------------------------------------
# the filters
# ---------------------------------------------------------------------------------------------------------------
def test_controller_paths_expand_the_home_and_the_inventory_dir(tmp_path, monkeypatch):
    """defect 8: the README's ~/ form and a relative path, as the controller reads them."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cm = _filters("compose_model")
    got = cm.stack_controller_paths(["~/code/compose.yaml", "rel/x.yaml", "/abs/y.yaml"], str(tmp_path / "inv"))
    assert got == [f"{tmp_path}/home/code/compose.yaml", f"{tmp_path}/inv/rel/x.yaml", "/abs/y.yaml"]


def test_collision_names_the_file_and_the_homeport_service(tmp_path):
    """defect 3: the origin of homeport's service is named (its default stack or stack_services_extra)."""
    cm = _filters("compose_model")
    f = _compose(tmp_path / "c.yaml", {"postgres": {**WEB}, "grafana": {**WEB}})
    services = {"postgres": {"image": "pg"}, "grafana": {"image": "g"}}
    problems = cm.stack_compose_file_problems([str(f)], services, ["grafana"])
    start = f"stack_compose_files: {f}: service postgres has the name of homeport's own service postgres "
    assert any(
        p.startswith(start + "(stack_services.postgres)")
        and "stack_services_disabled: [postgres]" in p
        and "Rename the service" in p
        for p in problems
    ), problems
    assert any("(stack_services_extra.grafana)" in p for p in problems), problems


def test_credentials_of_compose_files(tmp_path):
    """defect 3: well-known defaults, empty and user-name passwords in a compose file's environment (both forms);
    interpolated values, *_FILE and values from the shell are not judged. The value is never shown."""
    cm = _filters("compose_model")
    f = _compose(
        tmp_path / "c.yaml",
        {
            "db": {**WEB, "environment": {"MYSQL_USER": "wp", "MYSQL_PASSWORD": "wp", "MYSQL_ROOT_PASSWORD": "root"}},
            "app": {**WEB, "environment": ["SECRET_KEY=changeme", "DB_PASSWORD=${DB_PASSWORD}", "API_TOKEN"]},
            "ok": {
                **WEB,
                "environment": {"POSTGRES_PASSWORD_FILE": "/run/secrets/pg", "ADMIN_PASSWORD": "Xk2-long-9q"},
            },
        },
    )
    problems = [p for p in cm.stack_compose_file_problems([str(f)], {}) if "environment" in p]
    assert problems == [
        f"stack_compose_files: {f}: service app environment SECRET_KEY: is a well-known default credential "
        "(the value is not shown); put a strong secret in its place",
        f"stack_compose_files: {f}: service db environment MYSQL_PASSWORD: equals its user name (MYSQL_USER) "
        "(the value is not shown); put a strong secret in its place",
        f"stack_compose_files: {f}: service db environment MYSQL_ROOT_PASSWORD: is a well-known default credential "
        "(the value is not shown); put a strong secret in its place",
    ]


def test_restart_policies_of_compose_files(tmp_path):
    """defect 9: condition any is always; a one-shot that another service waits for (completed successfully) may
    stay down; on-failure and none are refused with what to write."""
    cm = _filters("compose_model")
    f = _compose(
        tmp_path / "c.yaml",
        {
            "a": {"image": "x", "mem_limit": "64m", "deploy": {"restart_policy": {"condition": "any"}}},
            "b": {"image": "x", "mem_limit": "64m", "restart": "on-failure:3"},
            "c": {"image": "x", "mem_limit": "64m", "deploy": {"restart_policy": {"condition": "none"}}},
            "migrate": {"image": "x", "mem_limit": "64m", "restart": "no"},
            "web": {**WEB, "depends_on": {"migrate": {"condition": "service_completed_successfully"}}},
            "later": {"image": "x", "mem_limit": "64m", "restart": "${RESTART:-always}"},
        },
    )
    problems = [p for p in cm.stack_compose_file_problems([str(f)], {}) if "restart" in p]
    assert [p.split(": ")[2] for p in problems] == ["service b restart", "service c deploy.restart_policy.condition"]
    assert "write restart: unless-stopped (or deploy.restart_policy.condition: any)" in problems[0]


def test_memory_limits_of_compose_files(tmp_path):
    """defect 9: bytes under Docker's minimum and a value that is not a size are refused naming the key; the forms
    compose takes are fine; an interpolated value is left to the staged check."""
    cm = _filters("compose_model")
    f = _compose(
        tmp_path / "c.yaml",
        {
            "a": {**WEB, "mem_limit": 512},
            "b": {**WEB, "mem_limit": None, "deploy": {"resources": {"limits": {"memory": "lots"}}}},
            "c": {**WEB, "mem_limit": "0.5g"},
            "d": {**WEB, "mem_limit": "512MiB"},
            "e": {**WEB, "mem_limit": 536870912},
            "f": {**WEB, "mem_limit": "${MEM_LIMIT}"},
        },
    )
    problems = [p for p in cm.stack_compose_file_problems([str(f)], {}) if "mem" in p]
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"stack_compose_files: {f}: service a mem_limit: 512 is 512 bytes")
    assert problems[1].startswith(
        f"stack_compose_files: {f}: service b deploy.resources.limits.memory: 'lots' is not a size"
    )


def test_strings_where_lists_are_expected(tmp_path):
    """defect 9: named once with what to write; the exposure check no longer reads the string's characters."""
    cm = _filters("compose_model")
    st = _filters("stack")
    f = _compose(tmp_path / "c.yaml", {"web": {**WEB, "ports": "8080:80", "depends_on": "db", "volumes": "d:/d"}})
    problems = cm.stack_compose_file_problems([str(f)], {})
    assert [p for p in problems if "must be a list" in p] == [
        f"stack_compose_files: {f}: service web depends_on: must be a list, got the string 'db'; write depends_on: "
        "['db']",
        f"stack_compose_files: {f}: service web ports: must be a list, got the string '8080:80'; write ports: "
        "['8080:80']",
        f"stack_compose_files: {f}: service web volumes: must be a list, got the string 'd:/d'; write volumes: "
        "['d:/d']",
    ]
    assert st.stack_exposure_problems({}, "127.0.0.1", [], False, [str(f)]) == []
    # the same in stack_services: one message, not one per character
    errors = st.stack_service_errors(
        {"api": {"image": "x", "memory": "64m", "healthcheck_exempt": "t", "depends_on": "db", "ports": "80"}}
    )
    assert errors == [
        "stack_services.api.depends_on: must be a list, got the string 'db'; write depends_on: ['db']",
        "stack_services.api.ports: must be a list, got the string '80'; write ports: ['80']",
    ]


def test_staged_restart_policy_any_and_tiny_limits():
    """defect 9, the staged check (docker compose config): condition any is always; a limit under Docker's minimum is
    refused there too (a `${MEM_LIMIT}` the preflight could not read)."""
    st = _filters("stack")
    config = {
        "services": {
            "web": {"image": "x", "mem_limit": "536870912", "deploy": {"restart_policy": {"condition": "any"}}},
            "tiny": {"image": "x", "mem_limit": "512", "restart": "always"},
        }
    }
    result = st.stack_budget(config, "14g")
    assert result["bad_restart"] == []
    assert result["errors"] == [
        "service tiny: memory limit 512 bytes is under Docker's minimum of 6 MiB (a number without a unit is bytes: "
        "write 512m for 512 MiB)"
    ]


def test_compose_only_and_selected_names(tmp_path):
    """defect 7: the service names of the compose files (for the enabled-service and `deploy SERVICE` checks)."""
    cm = _filters("compose_model")
    a = _compose(tmp_path / "a.yaml", {"web": WEB, "worker": WEB})
    b = _compose(tmp_path / "b.yaml", {"web": {"mem_limit": "256m"}, "cron": WEB})
    assert cm.stack_compose_file_services([str(a), str(b)]) == {"cron": str(b), "web": str(a), "worker": str(a)}
    assert cm.stack_compose_file_services([str(tmp_path / "missing.yaml")]) == {}
