"""homeport.homeport.image_ship: images built on the controller get onto the host without a registry.

For each image reference, the image ID on the controller (``docker image inspect``, local) is compared with the
ID on the host (one remote call for all of them, through the task's connection and become). Only the images
whose ID differs, or that the host lacks, are sent: one ``docker save`` of all of them (layers shared between
images travel once), gzip-compressed unless ``compress: false``, copied over the task's connection (the same SSH
connection as every other task) and loaded with ``docker load`` (which reads gzip too). Afterwards the host's
IDs are read again and must match. Same IDs on both sides: nothing is sent, ``changed: false``. Check mode
reports what would be sent and sends nothing.

Options:
  images       list of image references present on the controller (required)
  docker_cli   the docker command on the host (default ``docker``; ``/opt/homebrew/bin/docker`` for Colima)
  docker_host  DOCKER_HOST for the host's docker command (optional)
  local_docker the docker command on the controller (default ``docker``)
  compress     gzip the archive (default true; false is faster on a LAN or loopback)
Returns: ``shipped`` (references sent), ``unchanged`` (already there), ``ids`` (reference -> ID), ``bytes``.
"""

from __future__ import annotations

import gzip
import os
import shlex
import shutil
import subprocess
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

MISSING = "missing"
CHUNK = 1024 * 1024


def images_to_ship(local_ids: dict[str, str], remote_ids: dict[str, str | None]) -> list[str]:
    """The references to send: those whose ID on the host differs from the controller's, or that it lacks."""
    return [ref for ref, image_id in local_ids.items() if remote_ids.get(ref) != image_id]


def parse_remote_ids(refs: list[str], stdout: str) -> dict[str, str | None]:
    """The remote script prints one line per reference, in order: the image ID or ``missing``."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if len(lines) != len(refs):
        raise ValueError(f"expected {len(refs)} lines from the host, got {len(lines)}: {stdout[-300:]!r}")
    return {ref: (None if line == MISSING else line) for ref, line in zip(refs, lines, strict=True)}


def remote_inspect_script(refs: list[str], docker: str, docker_host: str | None = None) -> str:
    prefix = f"DOCKER_HOST={shlex.quote(docker_host)} " if docker_host else ""
    fmt = shlex.quote("{{.Id}}")
    lines = [
        f"{prefix}{docker} image inspect --format {fmt} {shlex.quote(ref)} 2>/dev/null || echo {MISSING}"
        for ref in refs
    ]
    return "; ".join(lines)


def local_ids(refs: list[str], docker: str = "docker") -> dict[str, str]:
    ids, missing = {}, []
    for ref in refs:
        r = subprocess.run(
            [*shlex.split(docker), "image", "inspect", "--format", "{{.Id}}", ref],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            missing.append(ref)
        else:
            ids[ref] = r.stdout.strip()
    if missing:
        raise AnsibleActionFail(
            f"stack_ship_images: {', '.join(missing)} not found on the controller (docker image inspect failed): "
            "build or pull them here first"
        )
    return ids


def save_archive(refs: list[str], path: str, docker: str = "docker", compress: bool = True) -> int:
    """``docker save`` of all references into ``path`` (gzip level 1 when compress); returns its size."""
    proc = subprocess.Popen([*shlex.split(docker), "save", *refs], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    with open(path, "wb") as raw:
        out = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) if compress else raw
        try:
            shutil.copyfileobj(proc.stdout, out, CHUNK)
        finally:
            if compress:
                out.close()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise AnsibleActionFail(f"docker save {' '.join(refs)} failed on the controller: {err.strip()[-400:]}")
    return os.path.getsize(path)


class ActionModule(ActionBase):
    TRANSFERS_FILES = True
    _VALID_ARGS = frozenset(("images", "docker_cli", "docker_host", "local_docker", "compress"))

    def _remote(self, cmd: str) -> dict:
        result = self._low_level_execute_command(cmd, executable="/bin/sh")
        if result.get("rc", 1) != 0:
            raise AnsibleActionFail(f"on the host: {cmd[:200]}: {(result.get('stderr') or '').strip()[-400:]}")
        return result

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        refs = list(dict.fromkeys(args.get("images") or []))
        if not all(isinstance(r, str) and r for r in refs):
            raise AnsibleActionFail(f"stack_ship_images: expected a list of image references, got {refs!r}")
        docker = str(args.get("docker_cli") or "docker")
        docker_host = args.get("docker_host") or None
        local_docker = str(args.get("local_docker") or "docker")
        compress = bool(args.get("compress", True))
        result.update(changed=False, shipped=[], unchanged=[], ids={}, bytes=0)
        if not refs:
            return result

        local = local_ids(refs, local_docker)
        script = remote_inspect_script(refs, shlex.quote(docker), docker_host)
        remote = parse_remote_ids(refs, self._remote(script)["stdout"])
        ship = images_to_ship(local, remote)
        result.update(ids=local, shipped=ship, unchanged=[r for r in refs if r not in ship])
        if not ship:
            return result
        result["changed"] = True
        if self._task.check_mode:
            return result

        tmpdir = self._make_tmp_path()
        try:
            with tempfile.TemporaryDirectory(prefix="homeport-ship-") as local_dir:
                archive = os.path.join(local_dir, "images.tar" + (".gz" if compress else ""))
                result["bytes"] = save_archive(ship, archive, local_docker, compress)
                remote_archive = self._connection._shell.join_path(tmpdir, os.path.basename(archive))
                self._transfer_file(archive, remote_archive)
            prefix = f"DOCKER_HOST={shlex.quote(docker_host)} " if docker_host else ""
            self._remote(f"{prefix}{shlex.quote(docker)} load --quiet --input {shlex.quote(remote_archive)}")
        finally:
            self._remove_tmp_path(tmpdir)

        after = parse_remote_ids(refs, self._remote(script)["stdout"])
        still = images_to_ship(local, after)
        if still:
            raise AnsibleActionFail(f"after docker load the host's image IDs still differ for {', '.join(still)}")
        return result
