"""Run a playbook against localhost (local connection) with the checkout's roles and collection link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def run_local_playbook(
    workdir: Path, text: str, variables: dict, extra_args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Write ``text`` as a playbook in ``workdir`` and run it with ``variables`` as extra vars (JSON) and
    ``extra_args`` (e.g. ``--check``, ``-vvv``)."""
    pb = workdir / "local-playbook.yml"
    pb.write_text(text, encoding="utf-8")
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_FORCE_COLOR": "0",
    }
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", str(pb), "-e", json.dumps(variables), *extra_args],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        check=False,
    )
