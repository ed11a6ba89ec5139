"""Ahead-of-time module forwarding for Mitogen: fewer round trips per task over a far-away link.

Mitogen runs every task in a persistent Python interpreter on the host and ships the Python modules a task needs
from the controller. What it ships ahead of time is what it finds in module-level ``import`` statements; anything
imported later (inside a function, or with ``from . import x``) is fetched on demand: the host stops, asks, and
waits one round trip per module. ansible-core 2.19 imports much of ``ansible.module_utils`` that way, so a no-change
rerun at 150 ms paid about 25 such stalls (``apt`` five, ``systemd_service`` seven, connection setup three); the
bench (bench/, docs/bench.md) showed them one by one in Mitogen's debug log.

This module closes that gap without changing what runs on the host:

- :func:`module_utils_closure` reads the ``ansible.module_utils`` source: every import statement anywhere in the
  file (function bodies included), relative imports resolved, transitively (a line scan, not a parse: it runs in
  the multiplexer once per module per run, and a name that only looks like an import costs a few bytes, no stall);
- :func:`install` wraps Mitogen's per-module dependency scan (``ModuleDepService.scan``, run in the connection
  multiplexer before each module call) so that the closure of the module's dependencies is *forwarded* to the
  target context before the call: streamed behind the call message, never imported unless the module does;
  and adds the become helper (``mitogen.sudo``) and the closure of Mitogen's own preload list to the modules every
  new context receives;
- every new context also receives, behind its preload, a block of context IDs
  (:func:`homeport.mitogen_target.prime_id_block`): starting Ansible's fork parent in the login context and again
  in the become context would otherwise ask the controller for one, a round trip each (``homeport`` is added to
  the packages the multiplexer serves, for that one small module);
- Mitogen's ssh gets the ControlPath ansible-core's ssh plugin would use (:func:`control_path_args`), so that
  homeport's ``ControlPersist=600s`` keeps a master between runs, as it does without Mitogen;
- while the first SSH connection of a run is being set up (a second or more over a far link), :func:`warm` builds
  the multiplexer's replies for the preload (read, minify, compress: CPU otherwise spent after the handshake, with
  the host waiting; 0.23 s in Mitogen's debug log, which itself slows it, and not timed on its own).

The strategy plugin ``homeport_linear`` (``homeport/ansible_plugins/strategy``) applies it at load time, before
Mitogen forks its multiplexer, and is otherwise exactly Mitogen's ``mitogen_linear``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import threading
from collections.abc import Iterable
from pathlib import Path

PREFIX = "ansible.module_utils"
# what a context needs beyond Mitogen's own preload list: the sudo method (homeport's become method) is imported
# by the login context when the first become task starts the root context
EXTRA_PRELOAD = ("mitogen.sudo", "homeport.mitogen_target")


@functools.cache
def _base() -> Path:
    import ansible.module_utils  # noqa: PLC0415 - only in the controller's ansible-playbook process

    return Path(ansible.module_utils.__file__).parent


def source_path(name: str) -> Path | None:
    """The source file of an ``ansible.module_utils`` module (``None`` for anything else or a missing module)."""
    if name == PREFIX:
        return _base() / "__init__.py"
    if not name.startswith(PREFIX + "."):
        return None
    rel = name[len(PREFIX) + 1 :].replace(".", "/")
    for candidate in (_base() / f"{rel}.py", _base() / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<module>\.*[\w.]*)[ \t]+import[ \t]+(?P<names>\([^)]*\)|[^\n#;]*)"
    r"|import[ \t]+(?P<modules>[^\n#;]*))",
    re.MULTILINE,
)


def _names(text: str) -> list[str]:
    """``a, b as c, (d,\n e)`` -> ``[a, b, d, e]``."""
    return [part.split()[0] for part in text.strip("()").replace("\\", " ").split(",") if part.split()]


@functools.cache
def direct_imports(name: str) -> frozenset[str]:
    """The ``ansible.module_utils`` modules that ``name`` imports anywhere in its source, with their parents."""
    path = source_path(name)
    if path is None:
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    candidates: set[str] = set()
    for m in _IMPORT.finditer(path.read_text(encoding="utf-8", errors="replace")):
        if m.group("modules") is not None:
            candidates.update(_names(m.group("modules")))
            continue
        module = m.group("module")
        level = len(module) - len(module.lstrip("."))
        if level:
            parts = package.split(".")
            parts = parts[: len(parts) - (level - 1)]
            module = ".".join(parts + ([module.lstrip(".")] if module.lstrip(".") else []))
        candidates.add(module)
        candidates.update(f"{module}.{leaf}" for leaf in _names(m.group("names")))
    found: set[str] = set()
    for candidate in candidates:
        if not candidate.startswith(PREFIX):
            continue
        parts = candidate.split(".")
        found.update(".".join(parts[:i]) for i in range(3, len(parts) + 1))
    return frozenset(n for n in found if source_path(n) is not None)


def module_utils_closure(names: Iterable[str]) -> list[str]:
    """Every ``ansible.module_utils`` module reachable from ``names`` through imports (parents first)."""
    seen: set[str] = set()
    todo = [n for n in names if source_path(n) is not None]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(direct_imports(name) - seen)
    return sorted(seen, key=lambda n: (n.count("."), n))


def warm(responder, names: Iterable[str]) -> None:
    """Build (read, minify, compress) the responder's reply for each of ``names``, their packages and the modules
    sent along with them, so that the first context's preload finds them ready. Safe to run beside the broker: a
    reply is a pure function of the module's source, cached by name; a name built twice is built twice, no more."""
    build = getattr(responder, "_build_tuple", None)
    if build is None:
        return
    for name in names:
        parts = name.split(".")
        for fullname in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            try:
                related = build(fullname)[4] or ()
                for rel in related:
                    build(rel)
            except Exception:  # noqa: S112 - the broker builds it again and reports what is wrong
                continue


def control_path_args(ssh_args: list[str], spec) -> list[str]:
    """``["-o", "ControlPath=..."]`` when ``ssh_args`` ask for a persistent master (ControlPersist) but name no socket;
    else ``[]``. The socket is the one ansible-core's ssh plugin would use for the same host, port and user (its
    ``control_path``/``control_path_dir`` options, default ``~/.ansible/cp/<hash>``), so a master started by
    either is reused by the other."""
    flat = "".join(ssh_args).lower()
    for noise in (" ", '"', "'", "="):
        flat = flat.replace(noise, "")
    if "controlpersist" not in flat or "controlpath" in flat or "controlmasterno" in flat:
        return []
    from ansible.plugins.connection.ssh import Connection as SSHConnection  # noqa: PLC0415
    from ansible.utils.path import makedirs_safe, unfrackpath  # noqa: PLC0415

    def option(name: str):
        try:
            return spec._connection_option(name)  # Mitogen's accessor for the ssh plugin's options
        except Exception:  # a spec without the ssh plugin's options (mitogen_via): the defaults
            return None

    directory = unfrackpath(option("control_path_dir") or "~/.ansible/cp")
    makedirs_safe(directory, 0o700)
    template = option("control_path") or SSHConnection._create_control_path(  # the name ansible-core uses
        spec.remote_addr(), spec.port(), spec.remote_user()
    )
    return ["-o", "ControlPath=" + template % {"directory": directory}]


_installed = False

# The fence (issue 20): every Mitogen internal install() replaces or relies on, with the parameters it expects.
# Tested against the Mitogen range pyproject.toml pins; a later Mitogen that renames or reshapes one of them makes
# install() patch nothing (plain mitogen_linear), and homeport.runner then chooses plain mitogen_linear or, when
# Mitogen cannot load at all, ansible-core's linear strategy, with one warning that names the cause.
HOOKS: dict[str, tuple[str, ...] | type] = {
    "ansible_mitogen.process._setup_responder": ("responder",),
    "ansible_mitogen.services.ModuleDepService.scan": (
        "self", "module_name", "module_path", "search_path", "builtin_path", "context",
    ),
    "ansible_mitogen.services.ContextService._send_module_forwards": ("self", "context"),
    "ansible_mitogen.services.ContextService._connect": ("self", "key", "spec", "via"),
    "ansible_mitogen.services.ContextService.ALWAYS_PRELOAD": tuple,
    "ansible_mitogen.connection.CONNECTION_METHOD": dict,
    "mitogen.master.IdAllocator.allocate_block": ("self",),
    "mitogen.master.ModuleResponder.forward_modules": ("self", "context", "fullnames"),
    "mitogen.master.ModuleResponder.whitelist_prefix": ("self", "fullname"),
    "mitogen.parent.upgrade_router": ("econtext",),
}  # fmt: skip


def _resolve(dotted: str):
    """The object a dotted name points at (the longest importable module prefix, then attributes)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def compatibility_problems() -> list[str]:
    """What no longer looks as install() expects (empty: safe to patch). Never raises."""
    problems = []
    for dotted, expected in HOOKS.items():
        try:
            obj = _resolve(dotted)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{dotted} is gone ({type(exc).__name__}: {exc})")
            continue
        except Exception as exc:
            problems.append(f"{dotted} cannot be loaded ({type(exc).__name__}: {exc})")
            continue
        if isinstance(expected, type):
            if not isinstance(obj, expected):
                problems.append(f"{dotted} is a {type(obj).__name__}, not a {expected.__name__}")
            elif isinstance(obj, dict) and not callable(obj.get("ssh")):
                problems.append(f"{dotted} has no ssh method")
            continue
        try:
            params = tuple(inspect.signature(obj).parameters)
        except (TypeError, ValueError):
            problems.append(f"{dotted} is not a function")
            continue
        if params != expected:
            problems.append(f"{dotted}{inspect.signature(obj)} changed (expected ({', '.join(expected)}))")
    return problems


def install() -> bool:
    """Patch Mitogen's multiplexer-side services (idempotent). Call before Mitogen forks its multiplexer. Patches
    nothing and returns False when :func:`compatibility_problems` finds a hook that changed."""
    global _installed  # noqa: PLW0603 - a one-time process-wide patch
    if _installed:
        return True
    if compatibility_problems():
        return False
    from ansible_mitogen import process, services  # noqa: PLC0415 - Mitogen is optional for the rest of homeport

    original_setup = process._setup_responder

    @functools.wraps(original_setup)
    def _setup_responder(responder):
        original_setup(responder)
        responder.whitelist_prefix("homeport")  # serve homeport.mitogen_target (and its package) to contexts

    process._setup_responder = _setup_responder

    original_scan = services.ModuleDepService.scan

    @functools.wraps(original_scan)  # keeps Mitogen's @expose/@arg_spec markers (copied through __dict__)
    def scan(self, module_name, module_path, search_path, builtin_path, context):  # noqa: PLR0917 - Mitogen's signature
        result = original_scan(self, module_name, module_path, search_path, builtin_path, context)
        forward = getattr(self.router.responder, "forward_modules", None)
        if forward is not None:
            forward(context, module_utils_closure(result["builtin"]))
        return result

    services.ModuleDepService.scan = scan

    original_forwards = services.ContextService._send_module_forwards

    @functools.wraps(original_forwards)
    def _send_module_forwards(self, context):
        original_forwards(self, context)
        # behind the preload and ahead of init_child: the block of IDs the context would otherwise ask for
        from homeport import mitogen_target  # noqa: PLC0415 - imports mitogen, loaded only with Mitogen

        start, end = self.router.id_allocator.allocate_block()
        context.call_no_reply(mitogen_target.prime_id_block, start, end)

    services.ContextService._send_module_forwards = _send_module_forwards

    original_connect = services.ContextService._connect
    warming = threading.Lock()

    @functools.wraps(original_connect)
    def _connect(self, key, spec, via=None):
        # the first connection of the run spends a second or more in the SSH handshake: build the preload's module
        # replies meanwhile (0.23 s after the handshake in Mitogen's debug log, which slows it; not timed alone)
        if via is None and warming.acquire(blocking=False):
            threading.Thread(
                target=warm, args=(self.router.responder, self.ALWAYS_PRELOAD), name="homeport-warm", daemon=True
            ).start()
        return original_connect(self, key, spec, via=via)

    services.ContextService._connect = _connect

    # Mitogen starts ssh with the configured ssh_args (homeport's ControlMaster=auto, ControlPersist=600s) but
    # without a ControlPath, which ansible-core's ssh plugin adds itself: without one OpenSSH keeps no master, and
    # every run paid the whole handshake again. With it, a run within ten minutes of the last one opens a session
    # on the master instead (about 1.3 s less at 150 ms)
    from ansible_mitogen import connection  # noqa: PLC0415

    original_ssh = connection.CONNECTION_METHOD["ssh"]

    @functools.wraps(original_ssh)
    def _connect_ssh(spec):
        result = original_ssh(spec)
        kwargs = result["kwargs"]
        args = list(kwargs.get("ssh_args") or [])
        kwargs["ssh_args"] = args + control_path_args(args, spec)
        return result

    for method in ("ssh", "smart"):
        if connection.CONNECTION_METHOD.get(method) is original_ssh:
            connection.CONNECTION_METHOD[method] = _connect_ssh
    preload = tuple(services.ContextService.ALWAYS_PRELOAD)
    extra = [n for n in (*EXTRA_PRELOAD, *module_utils_closure(preload)) if n not in preload]
    services.ContextService.ALWAYS_PRELOAD = preload + tuple(extra)
    _installed = True
    return True
