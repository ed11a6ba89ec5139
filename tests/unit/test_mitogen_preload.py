"""homeport.mitogen_preload: which modules are forwarded ahead of a task, and the patch of Mitogen's services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from homeport import mitogen_preload as mp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_tree(tmp_path, monkeypatch):
    """A miniature ansible/module_utils tree: lazy, relative, aliased and multi-line imports."""
    base = tmp_path / "module_utils"
    files = {
        "__init__.py": "",
        "basic.py": """
            import os
            from ansible.module_utils.common import text  # a comment: import nothing.here
            from ansible.module_utils.common.process import (
                get_bin_path,
                run_cmd as run,
            )

            def respawn():
                from ansible.module_utils.common.respawn import respawn_module
                import ansible.module_utils.urls as urls
                return respawn_module, urls
            """,
        "common/__init__.py": "",
        "common/text.py": "",
        "common/process.py": "",
        "common/respawn.py": "from ._ansiballz import _respawn\n",
        "common/_ansiballz/__init__.py": "",
        "common/_ansiballz/_respawn.py": "from . import _respawn_wrapper\n",
        "common/_ansiballz/_respawn_wrapper.py": "",
        "urls.py": "import json, ansible.module_utils.six\n",
        "six.py": "",
        "unused.py": "import ansible.module_utils.basic\n",
    }
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    mp._base.cache_clear()
    mp.direct_imports.cache_clear()
    monkeypatch.setattr(mp, "_base", lambda: base)
    yield base
    mp.direct_imports.cache_clear()


def test_closure_follows_lazy_relative_and_multiline_imports(fake_tree):
    closure = mp.module_utils_closure(["ansible.module_utils.basic"])
    assert closure == [
        "ansible.module_utils.basic",
        "ansible.module_utils.common",
        "ansible.module_utils.six",
        "ansible.module_utils.urls",
        "ansible.module_utils.common._ansiballz",
        "ansible.module_utils.common.process",
        "ansible.module_utils.common.respawn",
        "ansible.module_utils.common.text",
        "ansible.module_utils.common._ansiballz._respawn",
        "ansible.module_utils.common._ansiballz._respawn_wrapper",
    ]
    assert "ansible.module_utils.unused" not in closure  # imports basic, is not imported by it


def test_closure_ignores_names_outside_module_utils_and_missing_modules(fake_tree):
    assert mp.module_utils_closure(["os", "ansible.module_utils.nothere", "ansible_mitogen.runner"]) == []


def test_closure_of_real_ansible_covers_the_lazy_imports_seen_over_a_far_link():
    # the modules the bench saw fetched one round trip at a time before this existed (docs/bench.md)
    mp._base.cache_clear()
    mp.direct_imports.cache_clear()
    closure = set(mp.module_utils_closure(["ansible.module_utils.basic", "ansible.module_utils.common.respawn"]))
    assert "ansible.module_utils.distro._distro" in closure
    assert "ansible.module_utils._internal._ansiballz._respawn_wrapper" in closure
    service = set(mp.module_utils_closure(["ansible.module_utils.service"]))
    assert "ansible.module_utils.facts.compat" in service or "ansible.module_utils.common.sys_info" in service


def test_install_forwards_the_closure_and_extends_the_preload(monkeypatch):
    from ansible_mitogen import services

    calls = []

    def original_scan(self, module_name, module_path, search_path, builtin_path, context):  # noqa: PLR0917
        return {"builtin": ["ansible.module_utils.common.respawn"], "custom": []}

    original_scan.mitogen_service__marker = True  # what Mitogen's @expose decorators attach
    monkeypatch.setattr(services.ModuleDepService, "scan", original_scan)
    monkeypatch.setattr(services.ContextService, "ALWAYS_PRELOAD", ("ansible.module_utils.basic",))
    monkeypatch.setattr(mp, "_installed", False)
    mp._base.cache_clear()
    mp.direct_imports.cache_clear()
    mp.install()
    mp.install()  # idempotent

    class Responder:
        def forward_modules(self, context, names):
            calls.append((context, list(names)))

    class Self:
        router = type("R", (), {"responder": Responder()})()

    result = services.ModuleDepService.scan(Self(), "m", "/p", (), "/b", "ctx")
    assert result == {"builtin": ["ansible.module_utils.common.respawn"], "custom": []}
    assert services.ModuleDepService.scan.mitogen_service__marker is True
    [(context, names)] = calls
    assert context == "ctx"
    assert "ansible.module_utils._internal._ansiballz._respawn_wrapper" in names
    preload = services.ContextService.ALWAYS_PRELOAD
    assert preload[0] == "ansible.module_utils.basic"
    assert "mitogen.sudo" in preload
    assert "ansible.module_utils.distro._distro" in preload
    assert len(preload) == len(set(preload))


def run_mitogen_play(tmp_path: Path, verbosity: str, extra_env: dict | None = None) -> tuple[dict, str]:
    """A one-task local play through homeport's Mitogen strategy: (the environment, stdout + stderr)."""
    from homeport import runner

    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.command: 'true'\n      changed_when: false\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
        **runner.mitogen_env(),
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        **(extra_env or {}),
    }
    bindir = Path(sys.executable).parent
    proc = subprocess.run(
        [str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play), verbosity,
         "-e", f"ansible_python_interpreter={sys.executable}"],
        env=env, capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return env, out


def test_strategy_plugin_loads_in_ansible_and_runs_a_play(tmp_path):
    """The plugin as ansible-playbook loads it: Mitogen's linear strategy, patched, running a real local play."""
    env, out = run_mitogen_play(tmp_path, "-v")
    assert "ok=1" in out
    assert env["ANSIBLE_STRATEGY"] == "homeport_linear"


def test_warm_builds_packages_modules_and_their_related_modules():
    built = []

    class Responder:
        def _build_tuple(self, fullname):
            built.append(fullname)
            if fullname == "broken":
                raise ImportError("no such module")
            related = ["ansible.module_utils.six"] if fullname == "ansible.module_utils.basic" else []
            return (fullname, None, "/p", b"", related)

    mp.warm(Responder(), ["broken", "ansible.module_utils.basic"])
    assert built == [
        "broken",
        "ansible",
        "ansible.module_utils",
        "ansible.module_utils.basic",
        "ansible.module_utils.six",
    ]
    mp.warm(object(), ["x"])  # a responder without the method: nothing to do, no error


def test_contexts_get_their_id_block_ahead_and_never_ask_for_one(tmp_path):
    """Mitogen's debug log of a real local play: the context is primed with a block of IDs before init_child, so
    starting its fork parent does not ask the controller (ALLOCATE_ID: one round trip per context over SSH)."""
    _, out = run_mitogen_play(tmp_path, "-vvv", {"MITOGEN_ROUTER_DEBUG": "1"})
    assert "dispatching (None, 'homeport.mitogen_target', None, 'prime_id_block'" in out
    assert "using mitogen.fork" in out  # the fork parent was started ...
    assert not re.search(r"allocating \[\d+\.\.\d+\) to Context", out)  # ... with an ID it already had


class Spec:
    """The parts of Mitogen's connection spec control_path_args reads."""

    def __init__(self, options: dict | None = None) -> None:
        self.options = options

    def _connection_option(self, name):
        if self.options is None:
            raise AttributeError(name)  # a spec without the ssh plugin's options
        return self.options.get(name)

    def remote_addr(self):
        return "mini.example"

    def port(self):
        return 22

    def remote_user(self):
        return "admin"


PERSIST = ["-o", "ControlMaster=auto", "-o", "ControlPersist=600s", "-o", "ServerAliveInterval=30"]


def test_control_path_is_the_one_ansible_core_would_use(tmp_path):
    from ansible.plugins.connection.ssh import Connection

    cpdir = tmp_path / "cp"
    args = mp.control_path_args(PERSIST, Spec({"control_path_dir": str(cpdir)}))
    expected = Connection._create_control_path("mini.example", 22, "admin") % {"directory": str(cpdir)}
    assert args == ["-o", f"ControlPath={expected}"]
    assert cpdir.is_dir() and (cpdir.stat().st_mode & 0o777) == 0o700
    # a control_path of the user's own is honoured
    own = mp.control_path_args(PERSIST, Spec({"control_path_dir": str(cpdir), "control_path": "%(directory)s/x"}))
    assert own == ["-o", f"ControlPath={cpdir}/x"]


def test_control_path_only_where_a_persistent_master_is_asked_for_and_unnamed(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = Spec({"control_path_dir": str(tmp_path / "cp")})
    assert mp.control_path_args([], spec) == []
    assert mp.control_path_args(["-o", "ControlMaster=auto"], spec) == []  # no ControlPersist
    assert mp.control_path_args([*PERSIST, "-o", "ControlPath=/run/x/%C"], spec) == []  # the user named one
    assert mp.control_path_args(["-o", "ControlMaster no", "-o", "ControlPersist=60s"], spec) == []
    # without the ssh plugin's options: ansible-core's default directory
    [_, path] = mp.control_path_args(PERSIST, Spec(None))
    assert path.startswith(f"ControlPath={tmp_path}/.ansible/cp/")


# ------------------------------------------------------------------------------------------------ the fence (issue 20)
def _break(monkeypatch, dotted: str) -> None:
    """Make one hook look like a later Mitogen's: gone (attributes) or with other parameters (functions)."""
    owner_name, attr = dotted.rsplit(".", 1)
    owner = mp._resolve(owner_name)
    if isinstance(mp.HOOKS[dotted], type):
        monkeypatch.setattr(owner, attr, None)
    else:
        monkeypatch.setattr(owner, attr, lambda *args, renamed=None: None)


@pytest.mark.parametrize("hook", sorted(mp.HOOKS))
def test_each_changed_hook_turns_the_patches_off_with_a_named_warning(monkeypatch, hook):
    from homeport import runner

    assert mp.compatibility_problems() == []
    _break(monkeypatch, hook)
    (problem,) = mp.compatibility_problems()
    assert problem.startswith(hook)
    monkeypatch.setattr(mp, "_installed", False)
    assert mp.install() is False  # nothing patched
    env = runner.mitogen_env()
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"  # plain Mitogen, not homeport's patched strategy
    assert Path(env["ANSIBLE_STRATEGY_PLUGINS"], "mitogen_linear.py").is_file()
    (warning,) = runner.MITOGEN_WARNINGS
    assert hook in warning and "plain mitogen_linear" in warning


def test_a_mitogen_that_cannot_load_falls_back_to_ansible_cores_linear_strategy(monkeypatch):
    import builtins

    from homeport import runner

    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "ansible_mitogen.loaders":
            raise RuntimeError("Your Ansible version (2.99) is too new")  # what ansible_mitogen.loaders raises
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    assert runner.mitogen_env() == {}
    (warning,) = runner.MITOGEN_WARNINGS
    assert "too new" in warning and "ansible-core's linear strategy" in warning


@pytest.mark.parametrize(
    "breakage",
    [
        # a later Mitogen's changes that Mitogen itself copes with (it is only homeport's patches that must not run)
        "import ansible_mitogen.services as s; s.ContextService.ALWAYS_PRELOAD = list(s.ContextService.ALWAYS_PRELOAD)",
        "import ansible_mitogen.services as s; o = s.ContextService._connect; "
        "s.ContextService._connect = lambda self, key, spec, via=None, timeout=None: o(self, key, spec, via)",
    ],
    ids=["retyped", "reshaped"],
)
def test_the_patched_strategy_still_runs_a_play_when_a_hook_changed(tmp_path, breakage):
    """A real ansible-playbook run through homeport_linear with one Mitogen internal changed (a sitecustomize does
    it at interpreter start): the run succeeds, as plain mitogen_linear, with one warning naming the hook."""
    site = tmp_path / "site"
    site.mkdir()
    # only in ansible-playbook itself (the controller), not in the interpreters Mitogen starts for the target
    (site / "sitecustomize.py").write_text(
        "import sys\nif sys.argv and sys.argv[0].endswith('ansible-playbook'):\n    " + breakage + "\n"
    )
    env, out = run_mitogen_play(tmp_path, "-v", {"PYTHONPATH": str(site)})
    assert env["ANSIBLE_STRATEGY"] == "homeport_linear"
    assert "ok=1" in out
    assert "Mitogen's internals changed, running plain mitogen_linear" in out
