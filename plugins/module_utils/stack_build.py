"""Build contexts and their content hash (issue 31, defect 5: a changed build context rebuilds the image).

``tree_hash`` is the one definition of "the files of a build context": the files the stack role's source sync ships
(roles/stack/tasks/configure.yml: every file but those under a name in ``SYNC_EXCLUDES``, at any depth), by relative
path, executable bit and content. The controller tags the images of ``source:`` services with it (the filter
``stack_tree_hash``); the release transaction on the host (stack_txn.py) hashes each build service's context as the
host has it, with the service's build settings, and builds the image again when that hash differs from the one it
recorded when it built the image, or when the image under the service's name is no longer the one it built.

Stdlib only and Python 3.9 compatible: installed on the host beside stack_txn.py (roles/stack/tasks/txn_install.yml).
"""

from __future__ import annotations

import hashlib
import json
import os

__all__ = ["SYNC_EXCLUDES", "build_targets", "default_image", "service_build_hash", "tree_hash"]

# the names the source sync leaves out (configure.yml's rsync --exclude list); a file or directory of that name is
# neither shipped nor hashed, wherever it lies in the tree
SYNC_EXCLUDES = (".git", "__pycache__", ".venv", "node_modules")


def tree_hash(path, exclude=()):
    """SHA-256 (hex) over the relative paths, executable bits and contents of the files under ``path``, without the
    names of ``SYNC_EXCLUDES`` and ``exclude``. Symbolic links count by their target's content (what a build's COPY
    reads); a dangling one by its link text. Raises OSError when ``path`` is not a directory."""
    path = os.path.expanduser(str(path))
    if not os.path.isdir(path):
        raise OSError(f"{path} is not a directory")
    skip = set(SYNC_EXCLUDES) | set(exclude or ())
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(files):
            if name in skip:
                continue
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            h.update(rel.encode() + b"\0")
            try:
                h.update(str(os.stat(full).st_mode & 0o111).encode() + b"\0")
                with open(full, "rb") as fh:
                    h.update(hashlib.sha256(fh.read()).digest())
            except OSError:  # a dangling link: its text
                h.update(b"link\0" + os.readlink(full).encode())
    return h.hexdigest()


def default_image(project, service, spec):
    """The image a build service's image is named by: its ``image``, else compose's default ``<project>-<service>``
    (docker compose v2's api.GetImageNameOrDefault)."""
    return spec.get("image") or f"{project}-{service}"


def _local_context(build):
    context = str(build.get("context") or ".")
    if "://" in context or context.startswith(("git@", "github.com/")):
        return None  # a remote context (git, an URL): nothing here to hash, compose's own policy decides
    return context


def service_build_hash(build, context):
    """The hash of one service's build: its build settings (without the context's path: the same files elsewhere are
    the same build), the files of its context and a Dockerfile that lies outside the context."""
    settings = {k: v for k, v in build.items() if k != "context"}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode() + b"\0")
    h.update(tree_hash(context).encode())
    dockerfile = build.get("dockerfile")
    if dockerfile:
        full = os.path.normpath(os.path.join(context, dockerfile))
        if not (full + os.sep).startswith(os.path.normpath(context) + os.sep) and os.path.isfile(full):
            with open(full, "rb") as fh:
                h.update(b"dockerfile\0" + hashlib.sha256(fh.read()).digest())
    return h.hexdigest()[:16]


def build_targets(config, project, services=(), base="."):
    """{service: {"image", "context", "hash"}} of the services of ``config`` (``docker compose config --format json``:
    build contexts are absolute paths; a relative one is taken relative to ``base``, the project directory) that are
    built from a context on this machine; only ``services`` when given. A context that does not exist is left out:
    compose's build names it."""
    out = {}
    for name, spec in sorted((config.get("services") or {}).items()):
        build = spec.get("build")
        if not isinstance(build, dict) or (services and name not in services):
            continue
        context = _local_context(build)
        if context is None:
            continue
        context = os.path.join(base, context)
        if not os.path.isdir(context):
            continue
        out[name] = {
            "image": default_image(project, name, spec),
            "context": context,
            "hash": service_build_hash(build, context),
        }
    return out
