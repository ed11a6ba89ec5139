#!/usr/bin/python
"""homeport.homeport.stack_lock: the deploy lock of the stack role on the host."""

from __future__ import annotations

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homeport.homeport.plugins.module_utils.stack_lock import acquire_waiting, release

DOCUMENTATION = r"""
---
module: stack_lock
short_description: Take or release the deploy lock of the stack role
description:
  - C(state=present) takes the lock file atomically (C(O_CREAT|O_EXCL)); a second deploy fails with a message
    naming the run that holds it. A stale lock (older than I(timeout), unreadable, or of a run of this controller
    that is gone) is taken over (new file renamed over the old one) with a warning.
  - Whether the process that holds a lock taken from this controller is alive can only be seen on the controller.
    When the lock is this controller's (same I(lock.owner)) and not judged yet, the module returns
    C(check_owner) without taking anything; the task then calls it again with I(owner_alive) and I(judged_token).
  - C(state=absent) removes the lock only when it holds I(lock.token) (this run's).
  - The backup job takes the same lock (C(local=true), C(action=backup)) while it dumps the databases; a deploy waits
    up to I(wait) seconds for it, and takes over at once a lock whose process on the host is gone.
  - The lock is transient, so taking and releasing it report no change; only creating the missing directory does.
  - In check mode it writes nothing and does not fail on a held lock; it reports what it found.
version_added: "0.1.0"
author: homeport developers
options:
  path:
    description: The lock file (its directory is created with I(directory_mode) when missing).
    type: path
    required: true
  state:
    description: C(present) takes the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  lock:
    description:
      - This run's lock - C(owner) (user@controller), C(pid) (the controller's process), C(action), C(token).
        C(time) is set from the host's clock. For C(state=absent) only C(token) is used.
    type: dict
    required: true
  timeout:
    description: Seconds after which another machine's lock is stale.
    type: int
    default: 1800
  owner_alive:
    description: The controller's judgement whether the pid of the lock with token I(judged_token) is alive.
    type: bool
  judged_token:
    description: The token of the lock that I(owner_alive) is about.
    type: str
  wait:
    description: Seconds to wait while a process on the host (the backup job's dump phase) holds the lock.
    type: int
    default: 0
  directory_mode:
    description: Mode of the directory when it has to be created.
    type: raw
    default: "0750"
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Take the deploy lock
  homeport.homeport.stack_lock:
    path: /var/lib/homeport/stack/.deploy.lock
    lock: {owner: ana@laptop, pid: 4242, action: deploy, token: Xy12}
    timeout: 1800
  register: _lock

- name: Release it
  homeport.homeport.stack_lock:
    path: /var/lib/homeport/stack/.deploy.lock
    state: absent
    lock: {token: Xy12}
"""

RETURN = r"""
acquired:
  description: Whether this run holds the lock now.
  returned: state=present
  type: bool
taken_over:
  description: Whether a stale lock was replaced (then C(message) says whose).
  returned: state=present
  type: bool
check_owner:
  description: The existing lock of this controller whose pid the controller must judge (then nothing was taken).
  returned: state=present
  type: dict
existing:
  description: The lock found (a dict, or the raw text of an unreadable one); None when there was none.
  returned: state=present
  type: raw
message:
  description: The judgement of the existing lock (who holds it and since when, or why it was stale).
  returned: state=present
  type: str
waited:
  description: Seconds spent waiting for a lock of a process on the host (I(wait)).
  returned: state=present
  type: int
released:
  description: Whether the lock (holding this run's token) was removed.
  returned: state=absent
  type: bool
"""


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "lock": {"type": "dict", "required": True},
            "timeout": {"type": "int", "default": 1800},
            "owner_alive": {"type": "bool"},
            "judged_token": {"type": "str", "no_log": False},
            "wait": {"type": "int", "default": 0},
            "directory_mode": {"type": "raw", "default": "0750"},
        },
        supports_check_mode=True,
    )
    p = module.params
    path, write = p["path"], not module.check_mode
    if p["state"] == "absent":
        module.exit_json(changed=False, released=release(path, p["lock"].get("token"), write=write))
    directory, changed = os.path.dirname(path), False
    if not os.path.isdir(directory):
        if not write:
            nothing = {"acquired": False, "taken_over": False, "check_owner": None, "existing": None, "message": None}
            module.exit_json(changed=True, **nothing)
        os.makedirs(directory)
        changed = module.set_mode_if_different(directory, p["directory_mode"], True) or True
    result = acquire_waiting(
        path,
        p["lock"],
        p["timeout"],
        p["wait"],
        holder=lambda existing: isinstance(existing, dict) and bool(existing.get("local")),
        clock=time.time,
        owner_alive=p["owner_alive"],
        judged_token=p["judged_token"],
        write=write,
    )
    if result["taken_over"]:
        module.warn(f"{path}: {result['message']}")
    if write and not result["acquired"] and not result["check_owner"]:
        module.fail_json(msg=f"{path}: {result['message']}", changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
