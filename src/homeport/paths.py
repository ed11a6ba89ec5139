"""Where things are: the Ansible content (playbooks, roles, plugins) and the project state directory.

Content root: the checkout (the directory holding playbooks/ and roles/) when homeport runs from a checkout or an
editable install, else the copy packaged inside the wheel at ``homeport/_content``.
Project state: ``.homeport/`` in the current directory, or ``$HOMEPORT_HOME`` when set.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent


def _is_content_root(path: Path) -> bool:
    return (path / "playbooks" / "site.yml").is_file() and (path / "roles").is_dir()


def content_root() -> Path:
    """The directory holding playbooks/, roles/, plugins/ and galaxy.yml."""
    checkout = PACKAGE_DIR.parent.parent  # <checkout>/src/homeport -> <checkout>
    if _is_content_root(checkout):
        return checkout
    packaged = PACKAGE_DIR / "_content"
    if _is_content_root(packaged):
        return packaged
    raise FileNotFoundError(f"homeport's playbooks are neither in {checkout} nor in {packaged}: reinstall homeport")


def playbook(name: str) -> Path:
    """A playbook of homeport by file name (site.yml), or any playbook given by absolute path."""
    path = Path(name) if Path(name).is_absolute() else content_root() / "playbooks" / name
    if not path.is_file():
        raise FileNotFoundError(f"playbook {name} is missing from {path.parent}")
    return path


def project_dir() -> Path:
    """The per-project state directory (runner data, artifacts, fact cache, sandbox)."""
    env = os.environ.get("HOMEPORT_HOME")
    return Path(env).expanduser().resolve() if env else Path.cwd() / ".homeport"


def runner_dir() -> Path:
    return project_dir() / "runner"


def artifacts_dir() -> Path:
    return project_dir() / "artifacts"


def facts_dir() -> Path:
    return project_dir() / "facts"


def sandbox_dir() -> Path:
    return project_dir() / "sandbox"


def sandbox_inventory() -> Path:
    return sandbox_dir() / "inventory.yml"


def default_inventory() -> Path:
    """The inventory `homeport init` writes: ./inventory (a directory holding hosts.yml and group_vars/)."""
    return Path.cwd() / "inventory"


def config_dir() -> Path:
    """Per-user configuration (the stored vault password)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "homeport"


@functools.cache
def sizes() -> ModuleType:
    """The collection's size parser (plugins/module_utils/sizes.py: docker's units, stdlib only), loaded by path so
    the CLI, the bench and the host-side modules read sizes the same way (the collection import needs ansible)."""
    where = content_root() / "plugins" / "module_utils" / "sizes.py"
    spec = importlib.util.spec_from_file_location("homeport_sizes", where)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {where}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
