#!/usr/bin/python
"""homeport.homeport.hardening_ssh_client: where the SSH connection of this run comes from (read-only)."""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: hardening_ssh_client
short_description: Find the client address of the SSH connection this run came in on
description:
  - sshd puts C(SSH_CONNECTION) ("client address, client port, server address, server port") into the environment
    of the session it starts (sshd(8), ENVIRONMENT). A module run with become does not see it - sudo's C(env_reset)
    drops it (sudoers(5)), and an inventory's C(ansible_become=true) outranks a task's C(become=false) keyword - so
    reading the module's own environment silently finds nothing and the hardening role's firewall lockout guard
    would be skipped.
  - This module reads its own environment first, then walks up its parent processes (Linux C(/proc/<pid>/environ),
    readable by root and by the process's owner) to the SSH session that started the run, with or without sudo,
    with or without Mitogen's long-lived interpreters in between.
  - C(found) is false when the run did not come in over SSH (a local or docker connection) or the parents cannot be
    read (not Linux).
version_added: "0.1.0"
author: homeport developers
options:
  proc_root:
    description: Where the process table is mounted (tests point it at a fake one).
    type: path
    default: /proc
"""

RETURN = r"""
found:
  description: Whether an SSH session's C(SSH_CONNECTION) was found.
  type: bool
  returned: always
client:
  description: The client address as sshd saw it (empty when not found).
  type: str
  returned: always
connection:
  description: The whole C(SSH_CONNECTION) value (empty when not found).
  type: str
  returned: always
source:
  description: Where it was found - C(environment) or C(pid <n>), or C(none).
  type: str
  returned: always
"""

MAX_DEPTH = 64  # parents walked at most (a loop in a fake or racing process table must not hang the run)


def _environ(proc_root: str, pid: int) -> dict[str, str]:
    try:
        with open(f"{proc_root}/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def _parent(proc_root: str, pid: int) -> int:
    """The parent pid from /proc/<pid>/stat (field 4, after the parenthesised command, which may hold spaces)."""
    try:
        with open(f"{proc_root}/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return 0
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0


def ssh_connection(environ: dict[str, str], pid: int, proc_root: str = "/proc") -> tuple[str, str]:
    """(SSH_CONNECTION, where it was found) or ("", "none")."""
    if environ.get("SSH_CONNECTION", "").split():
        return environ["SSH_CONNECTION"], "environment"
    seen: set[int] = set()
    while pid > 1 and pid not in seen and len(seen) < MAX_DEPTH:
        seen.add(pid)
        value = _environ(proc_root, pid).get("SSH_CONNECTION", "")
        if value.split():
            return value, f"pid {pid}"
        pid = _parent(proc_root, pid)
    return "", "none"


def main() -> None:
    module = AnsibleModule(argument_spec={"proc_root": {"type": "path", "default": "/proc"}}, supports_check_mode=True)
    value, source = ssh_connection(dict(os.environ), os.getpid(), module.params["proc_root"])
    module.exit_json(
        changed=False, found=bool(value), client=value.split()[0] if value else "", connection=value, source=source
    )


if __name__ == "__main__":
    main()
