"""What homeport checks on the controller before ansible-playbook starts (issue 14), so that these mistakes exit 3
before anything runs on a host:

- **YAML errors** in the inventory file and in its ``group_vars/`` and ``host_vars/`` files, reported as
  ``file:line:column: problem`` (ansible itself names neither file nor line for a broken group_vars file).
- **Unknown variables**: a variable with a homeport role prefix (``homeport_``, ``stack_``, ``hardening_``, ...)
  that no role declares (``meta/argument_specs.yml`` or ``defaults/main.yml``) is a typo until proven otherwise: a
  misspelled ``stack_services`` would silently let the default stack take over. Each is reported with a "did you
  mean" suggestion. Names the configuration itself refers to (e.g. the vault variables that ``stack_services``
  names under ``secrets``) are known too. ``homeport_unknown_variables: warn`` (in the inventory) or the
  environment variable ``HOMEPORT_UNKNOWN_VARIABLES=warn`` turns the error into a warning.

Files encrypted as a whole with ansible-vault are skipped (their names cannot be read without the password);
``!vault`` values inside plain files are fine.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from homeport import paths

SWITCH = "homeport_unknown_variables"
SWITCH_ENV = "HOMEPORT_UNKNOWN_VARIABLES"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_YAML_SUFFIXES = ("", ".yml", ".yaml", ".json")


@dataclass
class Problem:
    where: str  # file (and line) the problem is in
    message: str
    error: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class _Loader(yaml.SafeLoader):
    """SafeLoader that accepts Ansible's tags and records the line of every mapping key."""


#: the YAML tags Ansible's loader knows (ansible/_internal/_yaml/_constructor.py); any other makes ansible fail
ANSIBLE_TAGS = ("unsafe", "vault", "vault-encrypted")


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> str:
    if suffix not in ANSIBLE_TAGS:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown YAML tag !{suffix} (Ansible knows {', '.join('!' + t for t in ANSIBLE_TAGS)})",
            node.start_mark,
        )  # fmt: skip
    return f"<{suffix}>"


_Loader.add_multi_constructor("!", _tagged)


class _Key(str):
    line: int = 0


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, str):
            key = _Key(key)
            key.line = key_node.start_mark.line + 1
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> tuple[Any, Problem | None]:
    """The file's data, or a Problem naming file:line:column when it is not valid YAML."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        return None, None
    try:
        return yaml.load(text, Loader=_Loader), None  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return None, Problem(where, f"invalid YAML: {what}")
    except yaml.YAMLError as exc:
        return None, Problem(str(path), f"invalid YAML: {exc}")


def _var_files(directory: Path) -> list[Path]:
    """group_vars/<name>(.yml) and group_vars/<name>/*.yml, as ansible reads them."""
    out: list[Path] = []
    if not directory.is_dir():
        return out
    for entry in sorted(directory.iterdir()):
        if entry.is_dir():
            out += [f for f in sorted(entry.rglob("*")) if f.is_file() and f.suffix in _YAML_SUFFIXES[1:]]
        elif entry.is_file() and entry.suffix in _YAML_SUFFIXES and not entry.name.startswith("."):
            out.append(entry)
    return out


def inventory_files(inventory: Path) -> tuple[list[Path], list[Path]]:
    """(the inventory's own YAML files, the group_vars/host_vars files beside them)."""
    base = inventory if inventory.is_dir() else inventory.parent
    if inventory.is_file():
        own = [inventory] if inventory.suffix in (".yml", ".yaml") else []
    else:
        own = sorted(f for f in inventory.iterdir() if f.is_file() and f.suffix in (".yml", ".yaml"))
    var_files = [f for sub in ("group_vars", "host_vars") for f in _var_files(base / sub)]
    return own, var_files


def _inventory_vars(data: Any, where: str) -> list[tuple[str, int, str]]:
    """(name, line, where) of every variable set in a YAML inventory (groups' vars, hosts' vars, children)."""
    out: list[tuple[str, int, str]] = []
    if not isinstance(data, dict):
        return out
    for group in data.values():
        if not isinstance(group, dict):
            continue
        for key in ("vars",):
            out += [(k, getattr(k, "line", 0), where) for k in (group.get(key) or {}) if isinstance(k, str)]
        for host_vars in (group.get("hosts") or {}).values():
            if isinstance(host_vars, dict):
                out += [(k, getattr(k, "line", 0), where) for k in host_vars if isinstance(k, str)]
        out += _inventory_vars(group.get("children") or {}, where)
    return out


def _strings(value: Any) -> set[str]:
    """Every identifier-like string value inside ``value`` (names the configuration refers to)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack += list(v.values())
        elif isinstance(v, list | tuple):
            stack += list(v)
        elif isinstance(v, str) and _IDENT.match(v):
            found.add(str(v))
    return found


def declared_variables(roles_dir: Path | None = None) -> tuple[set[str], set[str]]:
    """(every variable a role declares, the prefixes that mark a homeport variable)."""
    roles_dir = roles_dir or paths.content_root() / "roles"
    known: set[str] = set()
    prefixes = {"homeport_"}
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        prefixes.add(f"{role.name}_")
        spec_file = role / "meta" / "argument_specs.yml"
        if spec_file.is_file():
            spec = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
            for entry in (spec.get("argument_specs") or {}).values():
                known.update((entry or {}).get("options") or {})
        defaults = role / "defaults" / "main.yml"
        if defaults.is_file():
            data = yaml.safe_load(defaults.read_text(encoding="utf-8")) or {}
            known.update(k for k in data if isinstance(k, str))
            known.update(_strings(data))  # e.g. the vault variables the default stack names under secrets
    return known, prefixes


def _mode(found: dict[str, Any]) -> str:
    env = os.environ.get(SWITCH_ENV, "").strip().lower()
    if env in ("warn", "error"):
        return env
    value = str(found.get(SWITCH, "error")).strip().lower()
    return value if value in ("warn", "error") else "error"


def yaml_problems(inventory: Path) -> list[Problem]:
    """The YAML errors of the inventory's files and its group_vars/host_vars (file:line:column: problem)."""
    own, var_files = inventory_files(inventory)
    return [problem for path in own + var_files for _data, problem in [load_yaml(path)] if problem]


def check(inventory: Path, roles_dir: Path | None = None) -> list[Problem]:
    """Every YAML error and unknown homeport variable in ``inventory`` (errors and warnings)."""
    problems: list[Problem] = []
    seen: list[tuple[str, int, str]] = []
    values: dict[str, Any] = {}
    own, var_files = inventory_files(inventory)
    for path in own + var_files:
        data, problem = load_yaml(path)
        if problem:
            problems.append(problem)
            continue
        if data is None:
            continue
        if path in own:
            seen += _inventory_vars(data, str(path))
            for group in data.values() if isinstance(data, dict) else []:
                if isinstance(group, dict):
                    values.update(group.get("vars") or {})
                    for hv in (group.get("hosts") or {}).values():
                        values.update(hv if isinstance(hv, dict) else {})
        elif isinstance(data, dict):
            seen += [(k, getattr(k, "line", 0), str(path)) for k in data if isinstance(k, str)]
            values.update(data)
    if any(p.error for p in problems):
        return problems  # names in a file that does not parse cannot be judged
    known, prefixes = declared_variables(roles_dir)
    known |= {SWITCH} | _strings(values)
    error = _mode(values) == "error"
    for name, line, where in seen:
        if name in known or name.startswith("_") or not name.startswith(tuple(prefixes)):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(
            Problem(
                f"{where}:{line}" if line else where,
                f"{name} is not a variable of any homeport role{hint} (set {SWITCH}: warn to allow it)",
                error=error,
            )
        )
    return problems
