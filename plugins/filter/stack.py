"""Filters of the `stack` role: the pure parts of a compose deployment.

- ``stack_merge_services``: defaults + ``stack_services_extra`` minus ``stack_services_disabled``.
- ``stack_compose``: turn the ``stack_services`` description into a compose project (a dict for to_nice_yaml).
- ``stack_secret_bindings`` / ``stack_weak_secrets`` / ``stack_env_file``: vault secrets into env files, and
  refusal of empty or well-known default credentials.
- ``stack_budget``: memory limits summed from ``docker compose config --format json`` against the budget and the
  runtime's memory; services without a limit or without a restart policy are reported.
- ``stack_port_violations``: published ports that bind to anything but loopback or the host's tailnet address, and
  services on the host's network (``network_mode: host``) or the LAN itself (macvlan/ipvlan networks), in the staged
  ``docker compose config``; ``stack_exposure_problems``: the same rules in the preflight, on ``stack_services``,
  ``stack_bind_address`` and the user's compose files (``stack_compose_files``, read on the controller).
- ``stack_config_summary``: the config without environment (safe to log).
- ``stack_release_plan`` / ``stack_lock_state`` / ``stack_tree_hash``: release bookkeeping, the deploy lock (judged
  by plugins/module_utils/stack_lock.py, shared with the stack_lock module) and the content hash that tags images
  built from synced sources.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.homeport.homeport.plugins.filter.sizes import to_bytes as _size
from ansible_collections.homeport.homeport.plugins.module_utils.image_ref import image_reference_problem
from ansible_collections.homeport.homeport.plugins.module_utils.stack_build import tree_hash
from ansible_collections.homeport.homeport.plugins.module_utils.stack_health import one_shot_services
from ansible_collections.homeport.homeport.plugins.module_utils.stack_lock import stack_lock_state

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: restart policies that bring a service back after a power loss / engine restart
RESTART_OK = ("unless-stopped", "always")
#: what the engine gets for a swarm-style ``deploy.restart_policy.condition`` (compose v2 maps it when ``restart`` is
#: not set): any -> always
RESTART_CONDITIONS = {"any": "always", "on-failure": "on-failure", "none": "no"}
#: the smallest memory limit Docker accepts ("Minimum memory limit allowed is 6MB")
DOCKER_MIN_MEMORY = 6 * 1024**2

#: passwords that are well-known defaults (compared case-insensitively, surrounding blanks ignored)
DEFAULT_PASSWORDS = frozenset(
    {
        "",
        "postgres",
        "neo4j",
        "admin",
        "administrator",
        "root",
        "password",
        "passw0rd",
        "p@ssw0rd",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "default",
        "letmein",
        "welcome",
        "123456",
        "12345678",
        "qwerty",
        "test",
        "guest",
        "token",
    }
)

PUBLIC_ADDRESSES = ("", "0.0.0.0", "::", "[::]")  # noqa: S104 - these are what we refuse
#: Tailscale's address ranges (the CGNAT range it assigns IPv4 from, and its ULA prefix)
TAILNET_NETWORKS = (ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("fd7a:115c:a1e0::/48"))
#: network drivers that put a container on the host's network or straight on the LAN (its own LAN address)
LAN_DRIVERS = ("host", "macvlan", "ipvlan")
_OPT_IN = "set stack_allow_public_ports: true to expose it on purpose"


def restart_of_condition(condition):
    """The restart policy the engine gets for a ``deploy.restart_policy.condition`` (``any`` is ``always``)."""
    return RESTART_CONDITIONS.get(str(condition), condition)


def list_value_problem(key, value):
    """A message when ``value`` of the compose key ``key`` is a string where compose expects a list (or a mapping),
    else None; said once, with what to write, instead of being read character by character."""
    if not isinstance(value, str):
        return None
    return f"{key}: must be a list, got the string {value!r}; write {key}: [{value!r}]"


def human(n: int) -> str:
    """2147483648 -> '2.0 GiB'; 536870912 -> '512 MiB'."""
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GiB"
    return f"{n // 1024**2} MiB"


# ---------------------------------------------------------------------------------------------------------------
# services -> compose project
# ---------------------------------------------------------------------------------------------------------------
def stack_merge_services(defaults, extra=None, disabled=None):
    """Merge ``extra`` over ``defaults`` per service (keys of a service replace the default's keys; a service set
    to ``None`` or ``{enabled: false}`` is dropped) and remove the ``disabled`` names."""
    if not isinstance(defaults, dict):
        raise AnsibleFilterError("stack_services: must be a dict of service name -> settings")
    extra = extra or {}
    if not isinstance(extra, dict):
        raise AnsibleFilterError("stack_services_extra: must be a dict of service name -> settings")
    disabled = list(disabled or [])
    merged = {}
    for name, spec in defaults.items():
        merged[name] = copy.deepcopy(spec) if spec is not None else None
    for name, spec in extra.items():
        if spec is None:
            merged[name] = None
        elif isinstance(merged.get(name), dict) and isinstance(spec, dict):
            merged[name] = {**merged[name], **copy.deepcopy(spec)}
        else:
            merged[name] = copy.deepcopy(spec)
    out = {}
    for name, spec in merged.items():
        if spec is None or name in disabled:
            continue
        if not isinstance(spec, dict):
            raise AnsibleFilterError(f"stack_services.{name}: must be a dict of settings, got {type(spec).__name__}")
        if spec.get("enabled", True) is False:
            continue
        out[name] = spec
    return out


def stack_service_errors(services, source_names=None):
    """Problems in the ``stack_services`` description (after merge), one message per problem."""
    errors = []
    source_names = set(source_names or [])
    allowed = {
        "enabled",
        "image",
        "build",
        "source",
        "memory",
        "memory_reservation",
        "restart",
        "healthcheck",
        "healthcheck_exempt",
        "environment",
        "secrets",
        "ports",
        "volumes",
        "depends_on",
        "command",
        "pull_policy",
        "compose",
    }
    for name, spec in services.items():
        where = f"stack_services.{name}"
        if not _NAME_RE.match(name):
            errors.append(f"{where}: service names use lower-case letters, digits, '-', '_' and '.'")
        unknown = sorted(set(spec) - allowed)
        if unknown:
            errors.append(f"{where}: unknown setting(s) {', '.join(unknown)} (raw compose keys go under 'compose')")
        if not (spec.get("image") or spec.get("build") or spec.get("source")):
            errors.append(f"{where}: needs an image, a build context or a source")
        # the image reference goes into the compose file and every docker command: Docker's grammar only
        for key, image in (("image", spec.get("image")), ("compose.image", (spec.get("compose") or {}).get("image"))):
            why = None if image is None else image_reference_problem(image)
            if why:
                errors.append(f"{where}.{key}: {str(image)!r} is not a valid image reference: {why}")
        if spec.get("source") and spec["source"] not in source_names:
            errors.append(f"{where}.source: {spec['source']!r} is not a name in stack_source_dirs")
        if not spec.get("memory"):
            errors.append(f"{where}.memory: every service needs a memory limit (e.g. 512m)")
        else:
            try:
                if _size(spec["memory"], f"{where}.memory") <= 0:
                    errors.append(f"{where}.memory: must be greater than zero")
            except AnsibleFilterError as exc:
                errors.append(str(exc))
        if not _has_health(spec) and not str(spec.get("healthcheck_exempt") or "").strip():
            errors.append(
                f"{where}.healthcheck: every service needs a healthcheck (a failed release is rolled back only when"
                f" its health says so); add one, or set healthcheck_exempt: '<why this service cannot have one>'"
            )
        restart = spec.get("restart", "unless-stopped")
        if restart not in RESTART_OK:
            errors.append(
                f"{where}.restart: {restart!r} would not come back after a power loss; use unless-stopped or always"
            )
        for key in ("environment", "secrets"):
            value = spec.get(key) or {}
            if not isinstance(value, dict):
                errors.append(f"{where}.{key}: must be a dict of VARIABLE -> value")
                continue
            errors.extend(f"{where}.{key}: {k!r} is not a valid variable name" for k in value if not _ENV_RE.match(k))
        listed = {}
        for key in ("depends_on", "ports", "volumes"):
            why = list_value_problem(key, spec.get(key))
            if why:
                errors.append(f"{where}.{why}")
            else:
                listed[key] = spec.get(key)
        for dep in _depends_names(listed.get("depends_on")):
            if dep not in services:
                errors.append(f"{where}.depends_on: {dep!r} is not an enabled service")
    return errors


def _has_health(spec):
    """A healthcheck of its own in stack_services (or under ``compose``), not one that is disabled."""
    for hc in (spec.get("healthcheck"), (spec.get("compose") or {}).get("healthcheck")):
        if isinstance(hc, dict) and hc and not hc.get("disable") and hc.get("test") not in (None, ["NONE"], "NONE"):
            return True
    return False


def stack_declared_budget(services, budget, extra=None):
    """Messages when the declared memory limits of the enabled services (plus ``extra``: {name: size} of other
    homeport processes that count in the budget) exceed ``budget``; checked in the preflight, before anything
    changes. The rendered project is checked again after staging (``stack_budget``, which also sees the user's
    compose files)."""
    budget_b = _size(budget, "homeport_memory_budget")
    rows = []
    for name in sorted(services):
        try:
            where = f"stack_services.{name}"
            rows.append((where, _size(services[name].get("memory"), f"{where}.memory")))
        except AnsibleFilterError:
            continue  # a missing or bad limit is reported by stack_service_errors
    for name, size in sorted((extra or {}).items()):
        rows.append((name, _size(size, name)))
    total = sum(size for _, size in rows)
    if total <= budget_b:
        return []
    biggest = ", ".join(f"{name}={human(size)}" for name, size in sorted(rows, key=lambda r: -r[1]))
    return [
        f"homeport_memory_budget: {human(budget_b)} is less than the memory limits of the stack, "
        f"{human(total)} (over by {human(total - budget_b)}): {biggest}"
    ]


def _depends_names(deps):
    if not deps:
        return []
    if isinstance(deps, dict):
        return list(deps)
    return list(deps)


def _port(entry, bind_address, where):
    """'8080:80' / '8080:80/udp' / 80 / {published, target, host_ip, protocol} -> long syntax dict."""
    if isinstance(entry, dict):
        out = dict(entry)
        if "target" not in out:
            raise AnsibleFilterError(f"{where}: a port dict needs 'target'")
        out.setdefault("host_ip", bind_address)
        return out
    text = str(entry)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    parts = text.split(":")
    if len(parts) == 1:
        return {"target": int(parts[0]), "published": parts[0], "host_ip": bind_address, "protocol": proto}
    if len(parts) == 2:
        return {"target": int(parts[1]), "published": parts[0], "host_ip": bind_address, "protocol": proto}
    if len(parts) == 3:
        return {"target": int(parts[2]), "published": parts[1], "host_ip": parts[0], "protocol": proto}
    raise AnsibleFilterError(f"{where}: {entry!r} is not a port mapping (use PUBLISHED:TARGET)")


def stack_port_spec(entry, bind_address, where):
    """Public form of the port parser (used by the swarm filter): any ``ports`` entry of ``stack_services`` ->
    ``{target, published, host_ip, protocol}``."""
    return _port(entry, bind_address, where)


def compose_literal(value):
    """``value`` as a compose file value that compose does not interpolate: every ``$`` doubled (compose reads
    ``$$`` as one literal ``$``; https://docs.docker.com/compose/compose-file/12-interpolation/), so ``${HOME}`` or
    a password with a ``$`` reaches the container as written (issue 27, finding 8a)."""
    return str(value).replace("$", "$$")


def stack_compose(services, project, bind_address="127.0.0.1", image_tags=None):
    """The compose project as a dict. Built services get ``image: <project>-<name>:<tag>`` (the tag is the content
    hash of their synced source) so a changed source means a changed compose file and a new image, and every
    release names exactly the images it ran."""
    image_tags = image_tags or {}
    out_services = {}
    volumes = {}
    for name, spec in services.items():
        where = f"stack_services.{name}"
        svc = {}
        build = spec.get("build")
        if spec.get("source"):
            build = {"context": f"./src/{spec['source']}"}
        if isinstance(build, str):
            build = {"context": build}
        if build:
            svc["build"] = build
            svc["image"] = (
                spec.get("image") or f"{project}-{name}:{image_tags.get(spec.get('source') or name, 'local')}"
            )
            # built here: never try a registry for it (a missing image is built from the synced source)
            svc["pull_policy"] = spec.get("pull_policy", "never" if spec.get("source") else "missing")
        else:
            svc["image"] = spec["image"]
            svc["pull_policy"] = spec.get("pull_policy", "missing")
        if spec.get("command") is not None:
            svc["command"] = spec["command"]
        svc["restart"] = spec.get("restart", "unless-stopped")
        svc["mem_limit"] = _size(spec["memory"], f"{where}.memory")
        if spec.get("memory_reservation"):
            svc["mem_reservation"] = _size(spec["memory_reservation"], f"{where}.memory_reservation")
        if spec.get("environment"):
            svc["environment"] = {str(k): compose_literal(v) for k, v in spec["environment"].items()}
        if spec.get("secrets"):
            svc["env_file"] = [f"./env/{name}.env"]
        if spec.get("ports"):
            svc["ports"] = [_port(p, bind_address, f"{where}.ports") for p in spec["ports"]]
        if spec.get("volumes"):
            svc["volumes"] = list(spec["volumes"])
            for vol in spec["volumes"]:
                source = str(vol).split(":", 1)[0]
                if ":" in str(vol) and source and not source.startswith(("/", ".", "~", "$")):
                    volumes[source] = {}
        if spec.get("healthcheck"):
            svc["healthcheck"] = dict(spec["healthcheck"])
        deps = spec.get("depends_on")
        if deps:
            if isinstance(deps, dict):
                svc["depends_on"] = deps
            else:
                svc["depends_on"] = {
                    d: {"condition": "service_healthy" if services.get(d, {}).get("healthcheck") else "service_started"}
                    for d in deps
                }
        svc.update(copy.deepcopy(spec.get("compose") or {}))
        out_services[name] = svc
    project_dict = {"name": project, "services": out_services}
    if volumes:
        project_dict["volumes"] = volumes
    return project_dict


# ---------------------------------------------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------------------------------------------
def stack_secret_bindings(services):
    """[{service, env, var, format}] for every secret an enabled service takes from a role variable.
    A secret is ``ENV: variable_name`` or ``ENV: {var: variable_name, format: 'neo4j/{value}'}``."""
    out = []
    for name, spec in services.items():
        for env, ref in (spec.get("secrets") or {}).items():
            if isinstance(ref, dict):
                var, fmt = ref.get("var"), ref.get("format", "{value}")
            else:
                var, fmt = ref, "{value}"
            if not var or "{value}" not in fmt:
                raise AnsibleFilterError(
                    f"stack_services.{name}.secrets.{env}: use a variable name or {{var: NAME, format: '...{{value}}'}}"
                )
            out.append({"service": name, "env": env, "var": var, "format": fmt})
    return out


def stack_weak_secrets(values, users=None):
    """Messages naming each variable whose value is empty or a well-known default credential.
    ``values``: variable name -> value; ``users``: variable name -> user names it is used with (a password equal
    to its user name, e.g. postgres/postgres, is refused too). Never echoes the value."""
    users = users or {}
    problems = []
    for var in sorted(values):
        value = values[var]
        text = "" if value is None else str(value)
        if not text.strip():
            problems.append(f"{var}: is empty; set it in the vault (homeport vault edit)")
        elif text.strip().lower() in DEFAULT_PASSWORDS:
            problems.append(f"{var}: is a well-known default credential; choose a strong secret")
        elif text in (users.get(var) or []):
            problems.append(f"{var}: equals its user name; choose a strong secret")
        elif "\n" in text or "'" in text or "\x00" in text:
            problems.append(f"{var}: must not contain a newline, NUL or single quote (env file syntax)")
    return problems


def stack_secret_users(services):
    """Variable name -> user names it is used with (the values of *USER environment keys of the services that
    take it), so stack_weak_secrets can refuse postgres/postgres-style pairs."""
    out = {}
    for b in stack_secret_bindings(services):
        env = services[b["service"]].get("environment") or {}
        names = [str(v) for k, v in env.items() if str(k).upper().endswith("USER")]
        if b["format"] != "{value}":
            names.append(b["format"].split("{value}", 1)[0].rstrip("/:"))
        out.setdefault(b["var"], [])
        out[b["var"]].extend(n for n in names if n and n not in out[b["var"]])
    return out


def _env_quote(value: str, where: str) -> str:
    if "'" in value or "\n" in value or "\x00" in value:
        raise AnsibleFilterError(f"{where}: must not contain a newline, NUL or single quote")
    return f"'{value}'"


def stack_env_file(bindings, values):
    """Env file text (KEY='value' lines, single quotes: compose takes them literally) for one service."""
    lines = []
    for b in bindings:
        value = b["format"].replace("{value}", str(values[b["var"]]))
        lines.append(f"{b['env']}={_env_quote(value, b['var'])}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# docker compose config --format json: budget, ports, summary
# ---------------------------------------------------------------------------------------------------------------
def _limit(svc):
    lim = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    for value in (lim.get("memory"), svc.get("mem_limit")):
        if value not in (None, "", 0, "0"):
            return _size(value, "memory limit")
    return None


def _replicas(svc):
    deploy = svc.get("deploy") or {}
    value = deploy.get("replicas", svc.get("scale", 1))
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 1


def stack_budget(config, budget, mem_total=None):
    """Sum the memory limits of the rendered project and judge them. Returns a dict with per-service figures,
    ``total``, ``budget``, ``mem_total``, ``missing_limit``, ``bad_restart`` and ``errors`` (empty = fine)."""
    services = (config or {}).get("services") or {}
    budget_b = _size(budget, "homeport_memory_budget")
    mem_total_b = _size(mem_total, "docker info MemTotal") if mem_total not in (None, "", 0) else None
    rows, missing, bad_restart, tiny = [], [], [], []
    total = 0
    # a one-shot (restart "no", waited for with service_completed_successfully) runs once: no restart policy wanted
    one_shots = set(one_shot_services(config))
    for name in sorted(services):
        svc = services[name]
        limit = _limit(svc)
        replicas = _replicas(svc)
        if limit is None:
            missing.append(name)
        else:
            total += limit * replicas
        restart = svc.get("restart") or restart_of_condition(
            ((svc.get("deploy") or {}).get("restart_policy") or {}).get("condition")
        )
        if restart not in RESTART_OK and name not in one_shots:
            bad_restart.append(name)
        if limit is not None and limit < DOCKER_MIN_MEMORY:
            tiny.append((name, limit))
        rows.append({"name": name, "limit": limit, "replicas": replicas, "total": (limit or 0) * replicas})
    breakdown = ", ".join(
        f"{r['name']}={human(r['limit'])}" + (f"x{r['replicas']}" if r["replicas"] != 1 else "")
        for r in rows
        if r["limit"] is not None
    )
    errors = []
    if missing:
        errors.append(
            f"service(s) without a memory limit: {', '.join(missing)} "
            "(set memory in stack_services or deploy.resources.limits.memory / mem_limit in your compose file)"
        )
    if bad_restart:
        errors.append(
            f"service(s) without restart unless-stopped/always (would stay down after a power loss): "
            f"{', '.join(bad_restart)}"
        )
    errors.extend(
        f"service {name}: memory limit {limit} bytes is under Docker's minimum of 6 MiB (a number without a unit is "
        f"bytes: write {limit}m for {limit} MiB)"
        for name, limit in tiny
    )
    if total > budget_b:
        errors.append(
            f"memory limits total {human(total)} exceed homeport_memory_budget {human(budget_b)} "
            f"by {human(total - budget_b)}: {breakdown}"
        )
    if mem_total_b is not None and total > mem_total_b:
        errors.append(
            f"memory limits total {human(total)} exceed the container runtime's memory {human(mem_total_b)} "
            f"(docker info MemTotal): {breakdown}"
        )
    return {
        "services": rows,
        "total": total,
        "total_human": human(total),
        "budget": budget_b,
        "budget_human": human(budget_b),
        "mem_total": mem_total_b,
        "missing_limit": missing,
        "bad_restart": bad_restart,
        "breakdown": breakdown,
        "errors": errors,
    }


def stack_port_violations(config, allowed, allow_public=False):
    """Messages for the staged ``docker compose config`` (the rendered project plus the user's compose files): a
    published port bound to anything but loopback or an address in ``allowed`` (this host's tailnet address), and
    host networking (``network_mode: host``, ``container:``, host/macvlan/ipvlan networks), unless ``allow_public``
    (stack_allow_public_ports)."""
    allowed = [str(a) for a in (allowed or []) if a]
    tailnet = [a for a in allowed if a not in ("127.0.0.1", "::1", "localhost")]
    shown_allowed = ", ".join(sorted(set(allowed)))
    problems = []
    services = (config or {}).get("services") or {}
    for name in sorted(services):
        for port in services[name].get("ports") or []:
            if isinstance(port, dict):
                host_ip = str(port.get("host_ip") or "")
                published = port.get("published") or "random"  # no published port: an ephemeral host port
                target = port.get("target")
            else:  # short syntax (older compose output)
                parsed = _port(port, "", f"{name}.ports")
                host_ip, published, target = parsed["host_ip"], parsed["published"], parsed["target"]
            if not stack_bind_problem(host_ip, tailnet, allow_public):
                continue
            shown = host_ip or "0.0.0.0"  # noqa: S104 - only for the message
            problems.append(
                f"service {name}: port {published}->{target} binds to {shown}; allowed: loopback, {shown_allowed}"
                + ("" if allow_public else " (stack_allow_public_ports is false)")
            )
        why = None if allow_public else _network_mode_problem(services[name].get("network_mode"))
        if why:
            problems.append(
                f"service {name}: network_mode {services[name].get('network_mode')} {why} "
                "(stack_allow_public_ports is false)"
            )
    if not allow_public:
        for net_name, net in sorted(((config or {}).get("networks") or {}).items()):
            why = _network_problem(net_name, net)
            if why:
                problems.append(f"{why} (stack_allow_public_ports is false)")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# exposure: where published ports and service networks can be reached from
# ---------------------------------------------------------------------------------------------------------------
def _strip_brackets(address):
    address = str(address if address is not None else "").strip()
    return address[1:-1] if address.startswith("[") and address.endswith("]") else address


def stack_bind_problem(address, tailnet=None, allow_public=False):
    """Why a port bound to ``address`` would be reachable beyond this host's loopback and its tailnet address (a
    phrase for a message), or None when it is fine. ``tailnet``: this host's known tailnet addresses (empty when they
    are not known: then any address in Tailscale's ranges counts as the tailnet's). Every interface and any other
    address (a LAN address) are fine only with ``allow_public`` (stack_allow_public_ports)."""
    ip = _strip_brackets(address)
    if ip == "localhost":
        return None
    known = {_strip_brackets(a) for a in (tailnet or []) if a and str(a).strip()}
    if ip in PUBLIC_ADDRESSES:
        return None if allow_public else "publishes ports on every interface (the LAN included)"
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return "is not an IP address (published ports bind to an address: loopback or this host's tailnet address)"
    if parsed.is_loopback:
        return None
    if ip in known or str(parsed) in known:
        return None
    if allow_public:
        return None
    if any(parsed in net for net in TAILNET_NETWORKS):
        if not known:
            return None
        return (
            f"is in the tailnet range but not this host's tailnet address ({', '.join(sorted(known))}); "
            "use 127.0.0.1 or that address"
        )
    return (
        "is neither loopback (127.0.0.0/8, ::1) nor this host's tailnet address "
        f"({', '.join(sorted(known)) or 'unknown here; 100.64.0.0/10, fd7a:115c:a1e0::/48'}): "
        "a port bound there is reachable from the LAN"
    )


def _port_host_ip(entry, default):
    """The host address a ``ports`` entry binds to (``default`` when it names none), or None when it cannot be judged
    before compose interpolates it (``${VAR}``)."""
    if isinstance(entry, dict):
        host_ip = entry.get("host_ip")
        host_ip = default if host_ip is None else str(host_ip)
    else:
        text = str(entry).rsplit("/", 1)[0]
        if text.startswith("["):  # [::1]:8080:80
            host_ip = text[1 : text.index("]")] if "]" in text else text
        else:
            parts = text.rsplit(":", 2)
            host_ip = parts[0] if len(parts) == 3 else default
    return None if "$" in str(host_ip) else host_ip


def _port_label(entry):
    if isinstance(entry, dict):
        return f"{entry.get('published') or 'random'}->{entry.get('target')}"
    return str(entry)


def _network_mode_problem(mode):
    """Why a service's network_mode reaches past its published ports, or None. ``container:NAME`` joins a container
    homeport does not manage (its ports cannot be checked); ``service:NAME`` joins a service of the project, whose
    ports are checked."""
    mode = str(mode or "").strip()
    if mode == "host":
        return "runs on the host's network: every port it listens on is open on every interface (the LAN included)"
    if mode.startswith("container:"):
        return "joins the network of a container outside the project, whose ports homeport cannot check"
    return None


def _network_problem(name, net):
    """Why a top-level network puts its containers on the host's network or the LAN, or None."""
    net = net if isinstance(net, dict) else {}
    driver = str(net.get("driver") or "")
    if driver in LAN_DRIVERS:
        return f"network {name} uses the {driver} driver: its containers are on the host's network or the LAN itself"
    if str(net.get("name") or "") == "host" and net.get("external"):
        return f"network {name} is the engine's host network: its containers run on the host's network"
    return None


def _project_exposure(project, where, default_ip, tailnet, allow_public):
    """Messages for one compose project (a dict): ``where`` names the variable the project comes from."""
    problems = []
    services = (project or {}).get("services") or {}
    if not isinstance(services, dict):
        return problems
    for name in sorted(services):
        svc = services[name] if isinstance(services[name], dict) else {}
        ports = svc.get("ports") or []
        for entry in ports if isinstance(ports, list) else []:  # a string: stack_compose_file_problems names it
            host_ip = _port_host_ip(entry, default_ip)
            if host_ip is None:
                continue
            why = stack_bind_problem(host_ip, tailnet, allow_public)
            if why:
                shown = _strip_brackets(host_ip) or "0.0.0.0"  # noqa: S104 - only for the message
                problems.append(
                    f"{where(name, 'ports')}: port {_port_label(entry)} binds to {shown}, which {why}; {_OPT_IN}"
                )
        why = None if allow_public else _network_mode_problem(svc.get("network_mode"))
        if why:
            problems.append(f"{where(name, 'network_mode')}: {svc.get('network_mode')} {why}; {_OPT_IN}")
    if not allow_public:
        for net_name, net in sorted(((project or {}).get("networks") or {}).items()):
            why = _network_problem(net_name, net)
            if why:
                problems.append(f"{where(None, 'networks')}: {why}; {_OPT_IN}")
    return problems


class _ComposeLoader(yaml.SafeLoader):
    """YAML of a compose file: compose's own tags (!reset, !override) read as their plain values."""


def _plain(loader, _suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_ComposeLoader.add_multi_constructor("!", _plain)


def stack_exposure_problems(services, bind_address, tailnet=None, allow_public=False, compose_files=None):
    """The preflight's exposure rules, one message per problem naming the variable, its value and the rule:
    ``stack_bind_address`` (the effective bind address), every ``ports`` entry and ``network_mode`` of the merged
    ``stack_services`` (their own ``ports`` bind to the bind address unless they name one; ports under ``compose``
    are raw compose ports, every interface unless they name one) and of the user's compose files (paths on the
    controller; ports there bind to every interface unless they name an address)."""
    problems = []
    why = stack_bind_problem(bind_address, tailnet, allow_public)
    if why:
        shown = _strip_brackets(bind_address) or "0.0.0.0"  # noqa: S104 - only for the message
        problems.append(f"stack_bind_address: {shown} {why}; use 127.0.0.1 or the tailnet address, or {_OPT_IN}")
    for name in sorted(services or {}):
        spec = services[name] or {}
        raw = spec.get("compose") or {}
        own = {"services": {name: {"ports": spec.get("ports") or []}}}
        problems += [
            p
            for p in _project_exposure(own, lambda s, k: f"stack_services.{s}.{k}", bind_address, tailnet, allow_public)
            if not p.startswith("stack_bind_address")
        ]
        if isinstance(raw, dict):
            project = {"services": {name: raw}}
            problems += _project_exposure(
                project, lambda s, k: f"stack_services.{s}.compose.{k}", "", tailnet, allow_public
            )
    for path in compose_files or []:
        full = os.path.expanduser(str(path))
        try:
            with open(full, encoding="utf-8") as fh:
                doc = yaml.load(fh, Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader subclass
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"stack_compose_files: {path} cannot be read as YAML ({type(exc).__name__})")
            continue
        if isinstance(doc, dict):
            problems += _project_exposure(
                doc, lambda s, k, p=path: f"stack_compose_files: {p}" + (f": service {s} {k}" if s else f": {k}"),
                "", tailnet, allow_public,
            )  # fmt: skip
    return problems


def stack_ps_row(row):
    """One row of `docker compose ps --all --format json` -> {service, ok, text}: ok when running and healthy (or
    without a healthcheck), or a one-shot container that exited 0."""
    service = row.get("Service") or row.get("Name") or "?"
    state = str(row.get("State") or "").lower()
    health = str(row.get("Health") or "").lower()
    exit_code = row.get("ExitCode", 0)
    ok = (state == "running" and health in ("", "healthy")) or (state == "exited" and exit_code == 0)
    text = f"{service}: state {state or '?'}"
    if health:
        text += f", health {health}"
    if state == "exited":
        text += f", exit code {exit_code}"
    if row.get("Status"):
        text += f" ({row['Status']})"
    return {"service": service, "ok": ok, "text": text}


def stack_config_summary(config):
    """The rendered project without environment values: safe to show."""
    out = {}
    for name, svc in ((config or {}).get("services") or {}).items():
        out[name] = {
            "image": svc.get("image"),
            "build": bool(svc.get("build")),
            "memory": _limit(svc),
            "restart": svc.get("restart"),
            "ports": svc.get("ports") or [],
            "volumes": [v.get("source") if isinstance(v, dict) else v for v in svc.get("volumes") or []],
        }
    return out


# ---------------------------------------------------------------------------------------------------------------
# releases, lock, hashes
# ---------------------------------------------------------------------------------------------------------------
def stack_release_plan(releases, current=None, keep=5, parent=None):
    """Given release directory names (timestamps, sortable), the one `current` points to and the release that was
    current when it was deployed (`parent`, kept in releases/<current>/parent): the release a rollback brings back
    (`previous`: the parent when it still exists, else the newest release older than current) and the releases to
    prune (oldest first, beyond ``keep``, never current nor previous)."""
    keep = int(keep)
    if keep < 2:
        raise AnsibleFilterError("stack_keep_releases: must be at least 2 (the current and the previous release)")
    names = sorted({str(r) for r in releases or [] if r})
    previous = None
    if current in names:
        if parent and parent in names and parent != current:
            previous = parent
        else:
            older = [n for n in names if n < current]
            previous = older[-1] if older else None
    protected = {current, previous}
    prune = []
    surplus = len(names) - keep
    for n in names:
        if surplus <= 0:
            break
        if n in protected:
            continue
        prune.append(n)
        surplus -= 1
    return {"releases": names, "current": current if current in names else None, "previous": previous, "prune": prune}


def stack_tree_hash(path, exclude=None):
    """SHA-256 over the relative paths, modes and contents of the files under ``path`` (on the controller): the
    tag of the image built from it. 12 hex digits. The files are those the source sync ships
    (plugins/module_utils/stack_build.py, which the release transaction on the host hashes with too)."""
    path = os.path.expanduser(str(path))
    if not os.path.isdir(path):
        raise AnsibleFilterError(f"stack_source_dirs: {path} is not a directory on the controller")
    return tree_hash(path, exclude or ())[:12]


class FilterModule:
    def filters(self):
        return {
            "stack_merge_services": stack_merge_services,
            "stack_service_errors": stack_service_errors,
            "stack_declared_budget": stack_declared_budget,
            "stack_compose": stack_compose,
            "stack_secret_bindings": stack_secret_bindings,
            "stack_weak_secrets": stack_weak_secrets,
            "stack_secret_users": stack_secret_users,
            "stack_env_file": stack_env_file,
            "stack_budget": stack_budget,
            "stack_port_violations": stack_port_violations,
            "stack_exposure_problems": stack_exposure_problems,
            "stack_config_summary": stack_config_summary,
            "stack_ps_row": stack_ps_row,
            "stack_release_plan": stack_release_plan,
            "stack_lock_state": stack_lock_state,
            "stack_tree_hash": stack_tree_hash,
        }
