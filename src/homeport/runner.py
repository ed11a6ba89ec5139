"""The ONE place that builds the ansible-runner private data dir, environment and extravars, and runs a playbook.

Private data dir: ``.homeport/runner/`` (persistent); artifacts: ``.homeport/artifacts/`` (the last
``KEEP_ARTIFACTS`` runs); facts: ``.homeport/facts/`` (jsonfile cache, 24 h). The content root is linked in as the
collection ``homeport.homeport`` so ``homeport.homeport.to_bytes`` and friends resolve.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeport import contract, inventory_check, paths, vault
from homeport.events import EventHandler, Failure, RunRecord

# ansible_runner is imported where a playbook runs (run_playbook): `homeport --help` and the quick verbs need none
# of it (issue 29)

KEEP_ARTIFACTS = 20
FACT_CACHE_TIMEOUT = 24 * 3600
# THE ssh options of every connection homeport makes to a host: playbook runs (ANSIBLE_SSH_ARGS, for ansible-core's
# ssh plugin and Mitogen alike), the quick verbs (homeport.quick), the image shipping (plugins/action/image_ship.py
# reads ANSIBLE_SSH_ARGS). Far-away host: one SSH master reused for 10 minutes, keepalives, and compression: the
# master's settings are those of whichever ssh started it, so a quick verb's master without compression made the
# next playbook run upload 1.22 MB instead of 0.34 MB (issue 29); Mitogen asks for compression on its own.
SSH_OPTIONS = (
    "ControlMaster=auto",
    "ControlPersist=600s",
    "Compression=yes",
    "ServerAliveInterval=30",
    "ServerAliveCountMax=4",
)
SSH_ARGS = " ".join(f"-o {option}" for option in SSH_OPTIONS)


def control_path_dir() -> Path:
    """Short directory for SSH control sockets (a socket path must stay under ~104 bytes)."""
    return Path.home() / ".ansible" / "cp"


def control_path(address: str, port: int | None, user: str | None) -> str:
    """The ControlPath ansible-core's ssh plugin uses for this host with the runs' control path directory (Mitogen
    gets the same one: homeport.mitogen_preload.control_path_args), so every ssh of homeport shares one master."""
    from ansible.plugins.connection.ssh import Connection  # noqa: PLC0415 - ansible is heavy, import on use

    return Connection._create_control_path(address, port or 22, user) % {"directory": str(control_path_dir())}


def ssh_master_args(address: str, port: int | None, user: str | None) -> list[str]:
    """The ssh options (argv words) that join or start this host's master as playbook runs do: SSH_ARGS and the
    ControlPath. The quick verbs start their ssh with these."""
    return [*shlex.split(SSH_ARGS), "-o", f"ControlPath={control_path(address, port, user)}"]


@dataclass
class RunOptions:
    playbook: str  # file name in playbooks/, e.g. "site.yml"
    inventory: Path
    limit: str | None = None
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    check: bool = False
    diff: bool = False
    verbosity: int = 0
    extravars: dict[str, Any] = field(default_factory=dict)


def collection_link(private_dir: Path) -> Path:
    """<private dir>/collections/ansible_collections/homeport/homeport -> content root; returns the collections dir."""
    collections = private_dir / "collections"
    link = collections / "ansible_collections" / "homeport" / "homeport"
    link.parent.mkdir(parents=True, exist_ok=True)
    target = paths.content_root()
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return collections
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target, target_is_directory=True)
    return collections


def build_env(private_dir: Path) -> dict[str, str]:
    """Environment of every ansible-playbook run (on top of the caller's environment)."""
    content = paths.content_root()
    control_path_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    return {
        "PATH": search_path(),
        "ANSIBLE_COLLECTIONS_PATH": str(collection_link(private_dir)),
        "ANSIBLE_ROLES_PATH": str(content / "roles"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",  # ansible-runner turns it off unless set
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": SSH_ARGS,
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_path_dir()),
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": str(FACT_CACHE_TIMEOUT),
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml",
        "ANSIBLE_INTERPRETER_PYTHON": os.environ.get("ANSIBLE_INTERPRETER_PYTHON", "auto_silent"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_SHOW_CUSTOM_STATS": "False",
        # the vault password reaches the client script through a Unix socket, never through the environment
        vault.ENV_PASSWORD: "",
        **mitogen_env(cache=private_dir / "mitogen-fence.json"),
    }


STRATEGY_DIR = Path(__file__).resolve().parent / "ansible_plugins" / "strategy"


# Warnings of the last mitogen_env() (printed by run_playbook): why the speed layer is off or reduced.
MITOGEN_WARNINGS: list[str] = []


def _fence_key() -> str:
    """What the Mitogen fence's verdict depends on: this interpreter, the installed ansible-core, mitogen and
    ansible_mitogen files (path, size, modification time) and homeport's own patches. Found without importing any
    of them (importlib.util.find_spec of a top-level package loads nothing)."""
    parts = [sys.executable, sys.version]
    files = [Path(__file__).with_name("mitogen_preload.py"), Path(__file__)]
    for package in ("ansible_mitogen", "mitogen"):
        spec = importlib.util.find_spec(package)
        for where in (spec.submodule_search_locations or []) if spec else []:
            files += sorted(Path(where).glob("*.py"))
    spec = importlib.util.find_spec("ansible")
    for where in (spec.submodule_search_locations or []) if spec else []:
        files.append(Path(where) / "release.py")
    for f in files:
        try:
            st = f.stat()
        except OSError:
            parts.append(f"{f}:missing")
            continue
        parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def mitogen_env(cache: Path | None = None) -> dict[str, str]:
    """Mitogen, through homeport's ``homeport_linear`` strategy (Mitogen's ``mitogen_linear`` plus ahead-of-time
    module forwarding, homeport.mitogen_preload): on when the package is installed (a homeport dependency), because
    it is correct and several times faster over a far link (bench/, docs/bench.md). HOMEPORT_MITOGEN=0 turns it
    off; HOMEPORT_MITOGEN=1 insists on it (an error when the package is missing).

    The fence's verdict takes ansible's and Mitogen's imports (0.2 CPU s, and cryptography's DSA deprecation
    warning from ansible's SSH agent code); with ``cache`` (a file: the runs' private data dir holds it) it is
    computed once per installation (:func:`_fence_key`) and read back on later runs (issue 29)."""
    wanted = os.environ.get("HOMEPORT_MITOGEN", "").strip().lower()
    if wanted in {"0", "false", "no", "off"}:
        return {}
    MITOGEN_WARNINGS.clear()
    if cache is None:
        return _mitogen_fence(wanted)
    key = _fence_key()
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored["key"] == key and stored["wanted"] == wanted:
            MITOGEN_WARNINGS.extend(str(w) for w in stored["warnings"])
            return {str(k): str(v) for k, v in stored["env"].items()}
    env = _mitogen_fence(wanted)
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "wanted": wanted, "env": env, "warnings": MITOGEN_WARNINGS}))
        tmp.replace(cache)
    return env


def _mitogen_fence(wanted: str) -> dict[str, str]:
    """mitogen_env's verdict, computed: imports ansible_mitogen and checks homeport's hooks."""
    try:
        import ansible_mitogen  # noqa: PLC0415 - optional at import time: HOMEPORT_MITOGEN=0 works without it
    except ImportError as exc:
        if wanted in {"1", "true", "yes", "on"}:
            raise RuntimeError("HOMEPORT_MITOGEN=1 but mitogen is not installed: pip install mitogen") from exc
        return {}
    # the fence (issue 20): Mitogen that cannot load with this ansible-core -> ansible-core's linear strategy; Mitogen
    # whose internals changed -> plain mitogen_linear; one warning naming the cause, never a failed run
    from homeport import mitogen_preload  # noqa: PLC0415

    # ansible's SSH agent code (imported on the way) uses cryptography's deprecated DSA names: that warning is
    # ansible's business, not the user's, and printed two lines at the top of every run
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="DSA is deprecated")
        try:
            import ansible_mitogen.loaders  # noqa: PLC0415 - raises on an ansible-core it does not support
        except Exception as exc:
            MITOGEN_WARNINGS.append(
                f"Mitogen cannot run with this ansible-core ({type(exc).__name__}: {exc}); "
                "running with ansible-core's linear strategy (slower over a far link)"
            )
            return {}
        problems = mitogen_preload.compatibility_problems()
    if problems:
        MITOGEN_WARNINGS.append(
            "Mitogen's internals changed, running plain mitogen_linear without homeport's speed-ups: "
            + "; ".join(problems)
        )
        return {
            "ANSIBLE_STRATEGY_PLUGINS": str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"),
            "ANSIBLE_STRATEGY": "mitogen_linear",
        }
    return {
        "ANSIBLE_STRATEGY_PLUGINS": str(STRATEGY_DIR),
        "ANSIBLE_STRATEGY": "homeport_linear",
    }


def _cmdline(opts: RunOptions, vault_client: Path | None) -> str:
    args: list[str] = []
    if opts.check:
        args.append("--check")
    if opts.diff:
        args.append("--diff")
    if vault_client:
        args += ["--vault-password-file", str(vault_client)]
    return shlex.join(args)


def search_path() -> str:
    """PATH for ansible-playbook: homeport's own environment first (beside this Python; a pipx or venv install does
    not put it on PATH, and an ansible-playbook of another installation must not be picked up instead)."""
    bindir = str(Path(sys.executable).parent)
    rest = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p and p != bindir]
    return os.pathsep.join([bindir, *rest])


def rotate_artifacts(directory: Path, keep: int) -> None:
    """Keep the newest ``keep`` entries of the artifacts directory (by modification time) and remove the rest (a
    negative ``keep`` keeps everything). Several homeport runs may share the directory (one HOMEPORT_HOME) and
    rotate it at the same moment: an entry that is gone when this run reads or removes it was removed by another
    run, as this one wanted (ansible-runner's own rotation raised FileNotFoundError then). Best effort: what cannot
    be removed now stays for the next run; a rotation never fails a run."""
    if keep < 0:
        return
    try:
        listing = list(os.scandir(directory))
    except FileNotFoundError:
        return
    entries: list[tuple[float, str, bool]] = []
    for entry in listing:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        entries.append((info.st_mtime, entry.path, entry.is_dir(follow_symlinks=False)))
    entries.sort()
    for _, path, is_dir in entries[: max(0, len(entries) - keep)]:
        if is_dir:
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _ident(playbook: str) -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{Path(playbook).stem}-{secrets.token_hex(2)}"


INTERRUPTED = (
    "interrupted: the run was stopped by a signal (Ctrl-C or SIGTERM); ansible-playbook and its children were stopped"
)
# how often ansible-runner asks whether to cancel (seconds): a Ctrl-C stops the run within about this time
CANCEL_POLL = 0.5


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first), from ``ps`` (Linux and macOS alike)."""
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=False).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(fields[0]))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_descendants(grace: float = 2.0) -> None:
    """SIGTERM every process this one started (ansible-playbook, its forks, and the ones that left its process
    group, such as Mitogen's multiplexer, which ansible-runner's process-group kill misses), then SIGKILL what is
    left after ``grace`` seconds."""
    pids = descendants(os.getpid())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_exists(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _cancel(caught: list[int]) -> bool:
    """ansible-runner's cancel callback: after a signal, stop the whole tree here (ansible-runner then kills the
    process group of ansible-playbook, what is left of it)."""
    if caught:
        stop_descendants()
        return True
    return False


@contextlib.contextmanager
def interruptible():
    """While a playbook runs, SIGINT (Ctrl-C) and SIGTERM (a closed laptop lid, a service manager) do not kill this
    process mid-way: they set a flag that ansible-runner's cancel callback reads, and ansible-runner then kills the
    whole process group of ansible-playbook (its forks and Mitogen's multiplexer included). Yields the flag (a list:
    non-empty once a signal arrived)."""
    caught: list[int] = []

    def on_signal(signum, _frame):
        caught.append(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
            previous[sig] = signal.signal(sig, on_signal)
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_inventory(inventory: Path, handler: EventHandler) -> RunRecord | None:
    """A record of the refusal when the inventory has errors (warnings are printed), else None."""
    problems = inventory_check.check(inventory) if inventory.exists() else []
    for warning in (p for p in problems if not p.error):
        if not handler.json_mode:
            handler.console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    errors = [p for p in problems if p.error]
    if not errors:
        return None
    record = handler.record
    record.status = "refused"
    record.failures += [
        Failure(
            host="inventory",
            play="",
            role=contract.PREFLIGHT_ROLE,
            task="Check the inventory (before running anything)",
            action="assert",
            message=str(p),
            validation=True,
        )
        for p in errors
    ]
    return record


def run_playbook(opts: RunOptions, handler: EventHandler) -> RunRecord:
    """Run one playbook with ansible-runner; every event goes through ``handler``; returns its record. The
    inventory's YAML and variable names are checked first (homeport.inventory_check): an error there refuses the
    run before ansible-playbook starts (exit 3)."""
    refused = check_inventory(opts.inventory, handler)
    if refused:
        return refused
    private_dir = paths.runner_dir()
    private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = build_env(private_dir)
    for warning in MITOGEN_WARNINGS:
        if not handler.json_mode:
            handler.console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    # homeport rotates (ansible-runner's own rotation crashes when another run rotates at the same time): the last
    # KEEP_ARTIFACTS - 1 runs stay, this run's directory makes KEEP_ARTIFACTS
    if KEEP_ARTIFACTS > 0:
        rotate_artifacts(paths.artifacts_dir(), KEEP_ARTIFACTS - 1)
    password = vault.resolve_password()
    client = vault.client_script(private_dir / "bin") if password else None
    import ansible_runner  # noqa: PLC0415 - only a playbook run needs it (issue 29: start-up)

    with (
        vault.PasswordPipe(password) if password else contextlib.nullcontext() as pipe,
        handler,
        interruptible() as caught,
    ):
        if pipe:
            env[vault.ENV_SOCKET] = str(pipe.path)
        result = ansible_runner.run(
            private_data_dir=str(private_dir),
            playbook=str(paths.playbook(opts.playbook)),
            inventory=str(opts.inventory),
            envvars=env,
            # the deploy lock records this process: a lock whose owner is gone is stale at once (roles/stack)
            extravars={**opts.extravars, **contract.run_vars(os.getpid())},
            cmdline=_cmdline(opts, client) or None,
            limit=opts.limit,
            tags=",".join(opts.tags) or None,
            skip_tags=",".join(opts.skip_tags) or None,
            verbosity=opts.verbosity or None,
            artifact_dir=str(paths.artifacts_dir()),
            rotate_artifacts=0,  # rotated above (rotate_artifacts)
            ident=_ident(opts.playbook),
            fact_cache_type="jsonfile",
            fact_cache=str(paths.facts_dir()),  # absolute: ansible-runner keeps it outside the artifacts
            event_handler=handler,
            suppress_env_files=True,  # nothing (env, extravars) written into <private dir>/env/
            quiet=True,
            cancel_callback=lambda: _cancel(caught),
            settings={"pexpect_timeout": CANCEL_POLL},
        )
    record = handler.record
    record.status = result.status
    record.rc = result.rc
    if caught:
        record.interrupted = True
        record.errors.append(INTERRUPTED)
        return record
    if result.status != "successful" and not (record.recap or record.failures or record.errors):
        # ansible-playbook ended before its first event (it could not start, or died): say so, never exit silently
        tail = [line for line in (result.stdout.read() if result.stdout else "").splitlines() if line.strip()][-5:]
        how = f"exited with {result.rc}" if result.rc is not None else f"ended ({result.status})"
        said = ": " + " / ".join(tail) if tail else ""
        record.errors.append(f"ansible-playbook {how} before running anything{said}")
    return record
