"""Filters of the `stack` role that read the user's compose files (``stack_compose_files``) on the controller, in the
preflight, before anything changes (issue 31):

- ``stack_controller_paths``: the paths as the controller reads them: ``~`` is the home directory there, a relative
  path is relative to the inventory's directory (``inventory_dir``); ``stack_controller_path_problems``: the entries
  that are not there, saying where they were looked for.
- ``stack_compose_file_services``: service name -> the first compose file that defines it (the services a
  compose-only project has, and the names ``homeport deploy SERVICE`` accepts).
- ``stack_compose_file_problems``: what the preflight refuses in them, one message per problem naming the file, the
  service, the key, what is wrong and what to write: a service named like one of homeport's own (compose would merge
  the two silently), a restart policy that stays down after a power loss, a memory limit that is not a size or under
  Docker's minimum, a string where compose expects a list, and empty or well-known default credentials in the
  environment. Values that compose interpolates (``${...}``) are left to the staged ``docker compose config`` check
  (roles/stack/tasks/validate_release.yml), as are services without a memory limit.
"""

from __future__ import annotations

import os
import re

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.homeport.homeport.plugins.filter.sizes import to_bytes as _size
from ansible_collections.homeport.homeport.plugins.filter.stack import (
    DEFAULT_PASSWORDS,
    DOCKER_MIN_MEMORY,
    RESTART_OK,
    _ComposeLoader,
    list_value_problem,
    restart_of_condition,
)

#: service keys that compose takes as a list only (or a mapping), never as a string
LIST_KEYS = (
    "cap_add",
    "cap_drop",
    "configs",
    "depends_on",
    "devices",
    "environment",
    "expose",
    "extra_hosts",
    "external_links",
    "group_add",
    "labels",
    "links",
    "networks",
    "ports",
    "profiles",
    "secrets",
    "security_opt",
    "sysctls",
    "volumes",
    "volumes_from",
)
#: environment variables that hold a credential (their *_FILE forms name a file, not a secret)
_CREDENTIAL = re.compile(r"(PASSWORD|PASSWD|_PASS|SECRET|SECRET_KEY|TOKEN)$")
_SOURCE_HINT = "stack_services (homeport's default stack, or your replacement of it)"


def stack_controller_paths(paths, base_dir=None):
    """Each path as the controller (the laptop) reads it: ``~`` expanded, a relative path joined to ``base_dir`` (the
    inventory's directory; the current directory when there is none), normalised."""
    base = os.path.expanduser(str(base_dir)) if base_dir else os.getcwd()
    out = []
    for path in paths or []:
        full = os.path.expanduser(str(path))
        out.append(os.path.normpath(full if os.path.isabs(full) else os.path.join(base, full)))
    return out


def stack_controller_path_problems(paths, base_dir=None, var="stack_compose_files", kind="file"):
    """Messages for the entries of ``var`` that are not a ``kind`` (file or directory) on the controller, each with
    where it was looked for and how the path was read."""
    if kind not in ("file", "directory"):
        raise AnsibleFilterError(f"stack_controller_path_problems: kind must be file or directory, not {kind!r}")
    check = os.path.isfile if kind == "file" else os.path.isdir
    base = os.path.expanduser(str(base_dir)) if base_dir else os.getcwd()
    problems = []
    for path, full in zip(paths or [], stack_controller_paths(paths, base_dir), strict=True):
        if check(full):
            continue
        text = str(path)
        if text.startswith("~"):
            how = "~ is the home directory on the controller"
        elif os.path.isabs(text):
            how = "an absolute path on the controller"
        else:
            how = f"a relative path is relative to the inventory's directory {base}"
        problems.append(
            f"{var}: {text!r} is not a {kind} on the controller (looked for {full}: {how}); give a path on this "
            f"machine, absolute, with ~, or relative to the inventory's directory"
        )
    return problems


def _read(path):
    """(document, problem) of one compose file."""
    try:
        with open(os.path.expanduser(str(path)), encoding="utf-8") as fh:
            doc = yaml.load(fh, Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        return None, f"stack_compose_files: {path} cannot be read ({exc.strerror or type(exc).__name__})"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or type(exc).__name__
        return None, f"stack_compose_files: {path} is not valid YAML{where} ({what})"
    if doc is None:
        return {}, None
    if not isinstance(doc, dict):
        kind = type(doc).__name__
        return None, f"stack_compose_files: {path} must be a compose file (a mapping with services:), got a {kind}"
    services = doc.get("services")
    if services is not None and not isinstance(services, dict):
        return None, (
            f"stack_compose_files: {path}: services: must be a mapping of service name -> settings, "
            f"got a {type(services).__name__}"
        )
    return doc, None


def _model(paths):
    """The compose files merged as compose merges them, key by key: {service: {key: (value, file)}}, the file that
    first defines each service, and the files' own problems."""
    merged, first, problems = {}, {}, []
    for path in paths or []:
        doc, problem = _read(path)
        if problem:
            problems.append(problem)
            continue
        for raw_name, spec in ((doc or {}).get("services") or {}).items():
            name = str(raw_name)
            first.setdefault(name, str(path))
            svc = merged.setdefault(name, {})
            if spec is None:
                continue
            if not isinstance(spec, dict):
                problems.append(
                    f"stack_compose_files: {path}: service {name}: must be a mapping of settings, "
                    f"got a {type(spec).__name__}"
                )
                continue
            for key, value in spec.items():
                svc[str(key)] = (value, str(path))
    return merged, first, problems


def stack_compose_file_services(paths):
    """Service name -> the first of the compose files (controller paths) that defines it; unreadable files add
    nothing (stack_compose_file_problems reports them)."""
    return dict(sorted(_model(paths)[1].items()))


def _interpolated(value):
    return "$" in str(value)


def _restart_problem(name, svc, one_shots):
    """(key, file, message) for a restart policy that does not bring the service back, or None."""
    if "restart" in svc:
        value, path = svc["restart"]
        key, shown = "restart", value
    else:
        deploy = (svc.get("deploy") or (None, None))[0]
        condition = ((deploy or {}).get("restart_policy") or {}).get("condition") if isinstance(deploy, dict) else None
        if condition is not None:
            value, path = restart_of_condition(condition), svc["deploy"][1]
            key, shown = "deploy.restart_policy.condition", condition
        else:
            value, path, key, shown = None, None, "restart", None
    if value is not None and (_interpolated(value) or str(value) in RESTART_OK):
        return None
    if (value is False or str(value) in ("None", "no", "none")) and name in one_shots:
        return None  # a one-shot another service waits for (service_completed_successfully)
    what = 'none set (compose\'s default is "no")' if shown is None else repr("no" if shown is False else shown)
    return (
        key,
        path,
        f"{key}: {what}: it would stay down after a power loss (or an engine restart); write restart: unless-stopped "
        "(or deploy.restart_policy.condition: any)",
    )


def _memory_problems(svc):
    """(key, file, message) for each memory limit that is not a size or is under Docker's minimum."""
    out = []
    candidates = []
    if "mem_limit" in svc:
        candidates.append(("mem_limit", *svc["mem_limit"]))
    deploy, path = svc.get("deploy") or (None, None)
    if isinstance(deploy, dict):
        resources = deploy.get("resources")
        limits = (resources.get("limits") or {}) if isinstance(resources, dict) else {}
        if isinstance(limits, dict) and "memory" in limits:
            candidates.append(("deploy.resources.limits.memory", limits["memory"], path))
    for key, value, where in candidates:
        if value in (None, "", 0, "0") or _interpolated(value):
            continue  # none (the staged check names services without a limit), or known after interpolation
        try:
            size = _size(value, key)
        except AnsibleFilterError:
            out.append((key, where, f"{key}: {str(value)!r} is not a size; write e.g. 512m or 1g"))
            continue
        if size < DOCKER_MIN_MEMORY:
            unit = "a number without a unit is bytes" if re.fullmatch(r"\s*\d+\s*", str(value)) else "its unit"
            hint = f"; write {str(value).strip()}m for {str(value).strip()} MiB" if unit.startswith("a number") else ""
            out.append((key, where, f"{key}: {value} is {size} bytes ({unit}), under Docker's minimum of 6 MiB{hint}"))
    return out


def _environment(value):
    """[(KEY, value or None)] of a compose environment (mapping or KEY=value list)."""
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list):
        out = []
        for item in value:
            text = str(item)
            key, sep, val = text.partition("=")
            out.append((key.strip(), val if sep else None))
        return out
    return []


def _credential_problems(svc):
    """(key, file, message) for each empty or well-known default credential (the value is never shown)."""
    if "environment" not in svc:
        return []
    env_value, path = svc["environment"]
    env = _environment(env_value)
    users = {k: str(v) for k, v in env if k.upper().endswith("USER") and v is not None}
    out = []
    fix = "(the value is not shown); put a strong secret in its place"
    for key, value in sorted(env):
        upper = key.upper()
        if not _CREDENTIAL.search(upper) or value is None or _interpolated(value) or isinstance(value, bool):
            continue
        text = str(value)
        if not text.strip():
            why = "is empty"
        elif text.strip().lower() in DEFAULT_PASSWORDS:
            why = "is a well-known default credential"
        elif text in users.values():
            user = sorted(k for k, v in users.items() if v == text)[0]
            why = f"equals its user name ({user})"
        else:
            continue
        out.append((f"environment {key}", path, f"environment {key}: {why} {fix}"))
    return out


def stack_compose_file_problems(paths, services=None, extra_names=None):
    """The preflight's rules on the user's compose files (controller paths), merged as compose merges them; one
    message per problem: ``stack_compose_files: <file>: service <name> <key>: <what is wrong>; <what to write>``.
    ``services``: homeport's enabled services (the merged stack_services), which no compose-file service may be
    named like; ``extra_names``: the names stack_services_extra defines (named as their origin)."""
    services = services or {}
    extra_names = set(extra_names or [])
    merged, first, problems = _model(paths)
    one_shots = set()
    for svc in merged.values():
        deps = (svc.get("depends_on") or (None, None))[0]
        if isinstance(deps, dict):
            one_shots.update(
                str(d) for d, how in deps.items()
                if isinstance(how, dict) and how.get("condition") == "service_completed_successfully"
            )  # fmt: skip
    rows = []
    for name in sorted(merged):
        svc = merged[name]
        if name in services:
            origin = f"stack_services_extra.{name}" if name in extra_names else f"stack_services.{name}"
            rows.append(
                (
                    name,
                    None,
                    first[name],
                    f"has the name of homeport's own service {name} ({origin}): compose would merge the two into one "
                    f"service (its image, environment and healthcheck) without a word. Rename the service in "
                    f"{first[name]} (and what refers to it), or leave homeport's own out with "
                    f"stack_services_disabled: [{name}]",
                )
            )
            continue  # its other settings would apply to the merged service: the collision comes first
        for key in LIST_KEYS:
            if key in svc:
                why = list_value_problem(key, svc[key][0])
                if why:
                    rows.append((name, key, svc[key][1], why))
        profiles = svc.get("profiles")
        if profiles and isinstance(profiles[0], list) and profiles[0]:
            continue  # started only with its profile: not part of the stack's `up`
        if "extends" not in svc:  # an extended service inherits what it does not set
            restart = _restart_problem(name, svc, one_shots)
            if restart:
                key, path, message = restart
                rows.append((name, key, path or first[name], message))
        rows.extend((name, *row) for row in _memory_problems(svc))
        rows.extend((name, *row) for row in _credential_problems(svc))
    for name, _key, path, message in rows:
        problems.append(f"stack_compose_files: {path}: service {name} {message}")
    return problems


class FilterModule:
    def filters(self):
        return {
            "stack_controller_paths": stack_controller_paths,
            "stack_controller_path_problems": stack_controller_path_problems,
            "stack_compose_file_services": stack_compose_file_services,
            "stack_compose_file_problems": stack_compose_file_problems,
        }
