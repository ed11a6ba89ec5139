"""Issue 31, defect 5: `build:` services were never rebuilt when their source changed - `up` builds an image only when
it is missing (compose's build policy), so the old image kept serving.

Pure logic here: the hash of a build context (plugins/module_utils/stack_build.py: the files the source sync ships,
without its excludes; the filter stack_tree_hash that tags the images of `source:` services is the same function)
and the build targets read from `docker compose config`. The release transaction that rebuilds a changed build
(roles/stack/files/homeport-stack-txn with plugins/module_utils/stack_txn.py, installed as the stack role installs it)
runs against a fake docker CLI; tests/unit/test_demo.py builds, rebuilds and keeps a real image on the sandbox host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_local import ROOT

sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible_collections.homeport.homeport.plugins.filter import stack as stack_filter
from ansible_collections.homeport.homeport.plugins.module_utils import stack_build as sb


def make_context(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text("FROM base\nCOPY . /app\n")
    (root / "app.py").write_text("print(1)\n")
    (root / "pkg").mkdir(exist_ok=True)
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    return root


def test_the_context_hash_covers_what_the_sync_ships(tmp_path):
    """Content, names and the executable bit count; what the sync leaves out (.git, __pycache__, .venv, node_modules
    at any depth, configure.yml's rsync excludes) does not."""
    ctx = make_context(tmp_path / "app")
    first = sb.tree_hash(ctx)
    assert sb.tree_hash(ctx) == first
    for junk in (".git/HEAD", "node_modules/x/index.js", "pkg/__pycache__/mod.pyc", ".venv/bin/python", "pkg/.git"):
        (ctx / junk).parent.mkdir(parents=True, exist_ok=True)
        (ctx / junk).write_text("not shipped\n")
    assert sb.tree_hash(ctx) == first
    (ctx / "pkg" / "mod.py").write_text("X = 2\n")
    changed = sb.tree_hash(ctx)
    assert changed != first
    (ctx / "pkg" / "mod.py").chmod(0o755)
    assert sb.tree_hash(ctx) != changed
    (ctx / "pkg" / "mod.py").rename(ctx / "pkg" / "other.py")
    assert len({first, changed, sb.tree_hash(ctx)}) == 2 + 1
    assert set(sb.SYNC_EXCLUDES) == {".git", "__pycache__", ".venv", "node_modules"}
    # the same excludes as the sync that ships the context (roles/stack/tasks/configure.yml)
    configure = (ROOT / "roles" / "stack" / "tasks" / "configure.yml").read_text()
    assert all(f"--exclude={name}" in configure for name in sb.SYNC_EXCLUDES)
    # the controller's image tag of a `source:` service is the same hash
    assert stack_filter.stack_tree_hash(str(ctx)) == sb.tree_hash(ctx)[:12]
    with pytest.raises(OSError, match="not a directory"):
        sb.tree_hash(tmp_path / "nope")


def test_the_build_targets_of_a_compose_config(tmp_path):
    """What `docker compose config --format json` gives: absolute contexts, the service's image or compose's default
    name; a remote context or a missing one is left to compose; the build settings count, not the context's path."""
    a = make_context(tmp_path / "a")
    b = make_context(tmp_path / "b")  # the same files elsewhere
    config = {
        "services": {
            "api": {"build": {"context": str(a), "dockerfile": "Dockerfile"}},
            "web": {"image": "me/web:1", "build": {"context": str(b), "dockerfile": "Dockerfile"}},
            "git": {"build": {"context": "https://github.com/docker/compose.git#main"}},
            "gone": {"build": {"context": str(tmp_path / "missing")}},
            "db": {"image": "postgres:17"},
        }
    }
    targets = sb.build_targets(config, "demo")
    assert sorted(targets) == ["api", "web"]
    assert targets["api"]["image"] == "demo-api" and targets["web"]["image"] == "me/web:1"
    assert targets["api"]["hash"] == targets["web"]["hash"]
    assert sorted(sb.build_targets(config, "demo", ["web", "db"])) == ["web"]
    config["services"]["web"]["build"]["args"] = {"VERSION": "2"}
    assert sb.build_targets(config, "demo")["web"]["hash"] != targets["api"]["hash"]
    # a Dockerfile outside the context counts too
    (tmp_path / "outside.Dockerfile").write_text("FROM base\n")
    config["services"]["api"]["build"]["dockerfile"] = "../outside.Dockerfile"
    before = sb.build_targets(config, "demo")["api"]["hash"]
    (tmp_path / "outside.Dockerfile").write_text("FROM other\n")
    assert sb.build_targets(config, "demo")["api"]["hash"] != before
    # a relative context is relative to the project directory
    rel = {"services": {"api": {"build": {"context": "a"}}}}
    assert sb.build_targets(rel, "demo", base=str(tmp_path))["api"]["context"] == str(tmp_path / "a")


def test_source_services_are_tagged_with_their_context_hash():
    """The compose model: a `source:` service builds ./src/<name> under an image tagged with its source's hash, so a
    changed source is a new tag that `up` builds; a plain `build:` service keeps its image name."""
    services = {
        "api": {"source": "api", "memory": "64m"},
        "tool": {"build": "./src/tool", "memory": "64m"},
    }
    project = stack_filter.stack_compose(services, "demo", "127.0.0.1", {"api": "0123456789ab"})
    assert project["services"]["api"]["build"] == {"context": "./src/api"}
    assert project["services"]["api"]["image"] == "demo-api:0123456789ab"
    assert project["services"]["tool"]["build"] == {"context": "./src/tool"}
    assert project["services"]["tool"]["image"] == "demo-tool:local"  # rebuilt by the transaction when it changes


FAKE_DOCKER = r"""#!/bin/bash
# a fake docker CLI for the release transaction: compose config/build/up/ps/logs, inspect and image inspect, driven by
# files in $FAKE. `compose build` gives the image a new ID (what a build of changed files does); `image inspect` of a
# missing image fails as the CLI does ("No such image", exit 1).
case " $* " in
  *" config --images "*) echo p-web ;;
  *" config "*) cat "$FAKE/config.json" ;;
  *" build "*)
    echo "$@" >> "$FAKE/build-args"
    if [ -e "$FAKE/build-fails" ]; then echo 'failed to solve: process "/bin/sh -c false" failed' >&2; exit 1; fi
    n=$(( $(cat "$FAKE/builds" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$FAKE/builds"
    echo "sha256:built$n" > "$FAKE/image-id" ;;
  *" ps "*) if [ -e "$FAKE/created" ]; then echo web; fi ;;
  *" up "*) echo "$@" >> "$FAKE/up-args"; touch "$FAKE/created" ;;
  *" logs "*) echo 'web-1  | serving' ;;
  *" image rm "*) echo "$@" >> "$FAKE/rm-args" ;;
  *" image inspect "*)
    if [ -e "$FAKE/image-id" ]; then cat "$FAKE/image-id"; else echo 'Error: No such image: p-web' >&2; exit 1; fi ;;
  "inspect "*|*" inspect "*)
    printf '[{"Id":"web","Name":"/p-web-1","RestartCount":0,'
    printf '"State":{"Status":"running","ExitCode":0,"StartedAt":"2025-01-01T00:00:00Z"},'
    printf '"Config":{"Labels":{"com.docker.compose.service":"web"}}}]\n' ;;
esac
"""


def run_txn(tmp_path: Path) -> dict:
    """One deploy's release transaction (the host program, as the stack role installs it) against the fake CLI."""
    from ansible_collections.homeport.homeport.plugins.module_utils import stack_txn
    from test_health_gate_issue31 import HOST_PYTHON, install_program

    fake, project = tmp_path / "fake", tmp_path / "project"
    program = tmp_path / "bin" / "homeport-stack-txn"
    if not program.exists():
        install_program(tmp_path / "bin")
    docker = fake / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    params = {
        "project_name": "p", "files": ["compose.yaml"], "docker_cli": str(docker), "wait_timeout": 30,
        "liveness_seconds": 0, "build": "policy", "record_release": False, "keep_releases": 2,
    }  # fmt: skip
    state = {"id": f"t{time.time()}", "seq": 0, "status": "running", "started": time.time(), "params": params,
             "progress": []}  # fmt: skip
    (project / ".transaction.json").unlink(missing_ok=True)
    stack_txn.write_state(str(project), state)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [HOST_PYTHON, str(program), "run", str(project)], capture_output=True, text=True,
        env={**env, "FAKE": str(fake)}, timeout=60,
    )  # fmt: skip
    final = stack_txn.read_state(str(project)) or {}
    assert r.returncode == (0 if final.get("result") == "ok" else 1), (r.stdout, r.stderr, final)
    return final


def builds(fake: Path) -> list[str]:
    path = fake / "build-args"
    return [line.split(" build ", 1)[1].strip() for line in path.read_text().splitlines()] if path.exists() else []


def test_the_release_transaction_rebuilds_a_changed_build_context_only(tmp_path):
    """Defect 5: a changed context (a source file) builds the image again before `up` (which then recreates the
    container: the image is another one); an unchanged one, or a change the sync does not ship, builds nothing."""
    fake, project = tmp_path / "fake", tmp_path / "project"
    fake.mkdir()
    ctx = make_context(project / "src" / "web")
    (project / "compose.yaml").write_text("services: {web: {build: ./src/web}}\n")
    (fake / "config.json").write_text(json.dumps({"services": {"web": {"build": {"context": str(ctx)},
                                                                       "restart": "always"}}}))  # fmt: skip
    (fake / "image-id").write_text("sha256:old\n")  # the image an earlier homeport built, without a record

    def images_of_current() -> dict:
        return json.loads((project / "current" / "images.json").read_text())

    first = run_txn(tmp_path)
    assert first["result"] == "ok", first
    assert builds(fake) == ["-- web"]  # no record of what it was built from: built (the cache makes it cheap)
    assert (fake / "up-args").read_text().count(" up ") == 1 and "--no-build" not in (fake / "up-args").read_text()
    record = json.loads((project / ".builds.json").read_text())
    assert record["builds"]["web"]["image"] == "sha256:built1"
    # the image changed with the same files: a new release names it (a later failure restores what served)
    assert images_of_current() == {"p-web": "sha256:built1"}
    release = os.readlink(project / "current")

    assert run_txn(tmp_path)["result"] == "ok"
    assert builds(fake) == ["-- web"], "an unchanged build context was built again"
    assert os.readlink(project / "current") == release  # nothing new to record

    (ctx / "node_modules").mkdir()
    (ctx / "node_modules" / "dep.js").write_text("x\n")  # not shipped by the sync: no build
    assert run_txn(tmp_path)["result"] == "ok"
    assert builds(fake) == ["-- web"]

    (ctx / "app.py").write_text("print(2)\n")
    changed = run_txn(tmp_path)
    assert changed["result"] == "ok" and changed["changed"], changed
    assert builds(fake) == ["-- web", "-- web"]
    assert any("building web" in p["text"] for p in changed["progress"]), changed["progress"]
    assert json.loads((project / ".builds.json").read_text())["builds"]["web"]["image"] == "sha256:built2"
    assert images_of_current() == {"p-web": "sha256:built2"}

    (fake / "image-id").write_text("sha256:built1\n")  # a rollback put the previous release's image back
    assert run_txn(tmp_path)["result"] == "ok"
    assert len(builds(fake)) == 3
    # the superseded images go with the last release that names them (stack_keep_releases: 2 - the current and its
    # parent stay): the first ones, sha256:old and sha256:built1, once no kept release names them
    removed = (fake / "rm-args").read_text().split() if (fake / "rm-args").exists() else []
    assert "sha256:old" in removed and "sha256:built3" not in removed, removed
    kept = {v for r in (project / "releases").iterdir() for v in json.loads((r / "images.json").read_text()).values()}
    assert not kept & set(removed), (kept, removed)


def test_a_failed_build_fails_the_release_before_up(tmp_path):
    fake, project = tmp_path / "fake", tmp_path / "project"
    fake.mkdir()
    ctx = make_context(project / "src" / "web")
    (project / "compose.yaml").write_text("services: {web: {build: ./src/web}}\n")
    (fake / "config.json").write_text(json.dumps({"services": {"web": {"build": {"context": str(ctx)}}}}))
    (fake / "build-fails").touch()
    result = run_txn(tmp_path)
    assert result["result"] == "failed", result
    assert "docker compose build of web failed: failed to solve" in result["msg"], result["msg"]
    assert not (fake / "up-args").exists()  # nothing was started
    assert not (project / ".builds.json").exists()
