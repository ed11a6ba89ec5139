"""The health gate of a deploy (issue 31): what `docker compose up --wait` does not judge.

`up --wait` counts a restarting container as running and a service without a healthcheck as ready as soon as it
started, so a crash loop passed the gate. The release transaction on the host (stack_txn.py, ``Txn.up``) runs `up`
under one bound (``stack_wait_timeout``, the whole wait: compose's dependency waits too, which compose's own
``--wait-timeout`` does not cover) and then watches the containers for ``stack_liveness_seconds``; this module judges
what it sees:

- a service restarted by the engine during the deploy (its ``RestartCount`` grew since before `up`), or found
  ``restarting``, fails the release: a crash loop;
- a service that exited fails it, unless it is a one-shot (``restart: "no"``, or no restart policy, and another
  service waits for it with ``condition: service_completed_successfully``), which must have exited 0;
- a service whose healthcheck says ``unhealthy`` fails it;
- a service without a healthcheck must stay running, not restarting, for the whole liveness window (the liveness
  rule, docs/compose.md); one with a healthcheck passed compose's wait and is watched for restarts alike.

Stdlib only and Python 3.9 compatible (runs on the managed host, macOS' system Python too).
"""

from __future__ import annotations

__all__ = ["container_view", "health_rules", "judge", "not_ready", "one_shot_services", "restart_policy"]

#: restart values that do not bring a container back (compose's default is "no")
NO_RESTART = ("", "no", "none", "None")


def restart_policy(svc):
    """The restart policy of a service of `docker compose config --format json` ("no" when none is set)."""
    restart = svc.get("restart")
    if restart in (None, "", False):
        condition = ((svc.get("deploy") or {}).get("restart_policy") or {}).get("condition")
        restart = {"any": "always", "none": "no"}.get(str(condition), condition) if condition else "no"
    return str(restart)


def one_shot_services(config):
    """Names of the one-shot services of a compose config: without a restart policy that brings them back, and
    waited for by another service with ``condition: service_completed_successfully``."""
    services = (config or {}).get("services") or {}
    awaited = set()
    for svc in services.values():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict):
            awaited.update(
                str(name) for name, how in deps.items()
                if isinstance(how, dict) and how.get("condition") == "service_completed_successfully"
            )  # fmt: skip
    return sorted(name for name in awaited if name in services and restart_policy(services[name]) in NO_RESTART)


def health_rules(config):
    """Service name -> {healthcheck: bool, one_shot: bool} for the services of a compose config."""
    services = (config or {}).get("services") or {}
    one_shots = set(one_shot_services(config))
    rules = {}
    for name, svc in services.items():
        check = svc.get("healthcheck") or {}
        test = check.get("test") or []
        disabled = bool(check.get("disable")) or (isinstance(test, list) and test[:1] == ["NONE"])
        rules[name] = {"healthcheck": bool(test) and not disabled, "one_shot": name in one_shots}
    return rules


def container_view(inspect):
    """One `docker inspect` object -> {id, name, service, status, exit_code, restarts, health}."""
    state = inspect.get("State") or {}
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    return {
        "id": str(inspect.get("Id") or ""),
        "name": str(inspect.get("Name") or "").lstrip("/"),
        "service": str(labels.get("com.docker.compose.service") or inspect.get("Name") or "?").lstrip("/"),
        "status": str(state.get("Status") or "").lower(),
        "exit_code": int(state.get("ExitCode") or 0),
        "restarts": int(inspect.get("RestartCount") or 0),
        "health": str((state.get("Health") or {}).get("Status") or "").lower(),
    }


def judge(rules, baseline, containers):
    """Problems of the containers seen after `up` (container_view dicts): [(service, message)], one per service.
    ``baseline``: container id -> restart count before `up` (a container created by this deploy starts at 0);
    ``rules``: health_rules of the project's config (a service not in it is judged as a long-running one)."""
    problems = {}
    for c in sorted(containers, key=lambda c: (c["service"], c["name"])):
        name = c["service"]
        if name in problems:
            continue
        rule = rules.get(name) or {"healthcheck": False, "one_shot": False}
        restarted = c["restarts"] - int(baseline.get(c["id"], 0))
        if rule["one_shot"]:
            if c["status"] == "exited" and c["exit_code"] != 0:
                problems[name] = (
                    f'service {name} is a one-shot (restart "no", waited for with service_completed_successfully) '
                    f"and exited with code {c['exit_code']}: a one-shot must exit 0"
                )
            elif c["status"] in ("restarting", "dead"):
                problems[name] = f"service {name} (a one-shot) is {c['status']}"
            continue
        if c["status"] == "restarting" or restarted > 0:
            problems[name] = (
                f"service {name} is crash-looping: restarted {max(restarted, 1)} time(s) by the engine during the "
                f"deploy (state {c['status'] or '?'}, last exit code {c['exit_code']})"
            )
        elif c["status"] != "running":
            problems[name] = (
                f"service {name} is not running after the deploy (state {c['status'] or '?'}, exit code "
                f'{c["exit_code"]}); only a one-shot (restart "no", waited for with '
                "service_completed_successfully) may exit"
            )
        elif c["health"] == "unhealthy":
            problems[name] = f"service {name} is unhealthy (its healthcheck fails)"
    return sorted(problems.items())


def not_ready(rules, containers):
    """Services whose containers are not ready when the bound ran out: a one-shot that has not exited, another
    service that is not running or not healthy."""
    out = set()
    for c in containers:
        if (rules.get(c["service"]) or {}).get("one_shot"):
            if c["status"] != "exited":
                out.add(c["service"])
        elif c["status"] != "running" or c["health"] not in ("", "healthy"):
            out.add(c["service"])
    return sorted(out)
