#!/usr/bin/python
"""homeport.homeport.homeport_host_state: record what a role enforces, install the hourly check (issue 29)."""

from __future__ import annotations

import inspect
import os
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homeport.homeport.plugins.module_utils import host_state

DOCUMENTATION = r"""
---
module: homeport_host_state
short_description: Record the state a role enforces on the host, and install the hourly host-state check
description:
  - Writes the role's record (C(<state_dir>/<role>.json), mode 0600) - the checksum, owner, group and mode of the
    files it manages, the packages that must be installed, the systemd units that must be enabled and active, the
    sysctls and their values, and the compose project's containers (image, config hash, environment digest) - built
    by plugins/module_utils/host_state.py, the same code the host's check runs.
  - The record holds no time; writing it is bookkeeping (like the drift and deploy records) and never reports a
    change. A change is reported only when the check program or its timer had to be installed or updated.
  - Installs that code as a plain program (C(program)) and its hourly job, a systemd service and timer
    (C(homeport-host-state.timer)) on Linux, a LaunchDaemon (C(com.homeport.host-state)) on macOS; the job writes
    C(<state_dir>/summary.json), which the monitoring collector exports (metric C(homeport_host_state_drifted_items),
    alert C(DriftDetected)) and C(homeport drift) reads.
  - Then checks every record once and stores the summary, so the summary is fresh after a converge.
  - Check mode changes nothing and reports no change.
version_added: "0.1.0"
author: homeport developers
options:
  role:
    description: The role whose record this is (the record's file name).
    type: str
    required: true
  state_dir:
    description: Where the records and the summary live (C(<homeport_state_dir>/state)).
    type: path
    required: true
  files:
    description: Files (and directories, links) the role manages; C(secret) ones show no checksum in a summary.
    type: list
    elements: raw
    default: []
  packages:
    description: Debian packages that must be installed.
    type: list
    elements: str
    default: []
  units:
    description: systemd units that must be enabled and active.
    type: list
    elements: str
    default: []
  sysctls:
    description: Kernel settings (dotted names) and their values.
    type: dict
    default: {}
  containers:
    description:
      - The compose project whose containers are recorded - C(project), C(docker) (the docker command) and
        C(deploys) (the stack role's deploys.json; a container a later deploy created is not drift).
    type: dict
    default: {}
  install:
    description: Install the check program and its hourly job.
    type: bool
    default: true
  program:
    description: Where the check program is installed.
    type: path
    default: /usr/local/libexec/homeport/host_state.py
  python:
    description: The interpreter the hourly job runs the program with.
    type: path
    default: /usr/bin/python3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Record the state this role enforces
  homeport.homeport.homeport_host_state:
    role: hardening
    state_dir: /var/lib/homeport/state
    files: [/etc/nftables.conf, {path: /etc/homeport/backup/restic-password, secret: true}]
    packages: [nftables]
    units: [nftables]
"""

RETURN = r"""
recorded:
  description: The role's record was written (it differed from the one on the host).
  type: bool
  returned: always
items:
  description: How many items the role's record holds.
  type: int
  returned: always
drifted:
  description: How many items of all records differ from the host after this converge (the fresh summary).
  type: int
  returned: always
"""


def _own_source() -> str:
    """The check program's text: the module_utils file this module was shipped with."""
    return inspect.getsource(host_state)


def _systemctl(module: AnsibleModule, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)


def install_systemd(module: AnsibleModule, python: str, program: str, state_dir: str) -> bool:
    changed = False
    for name, text in host_state.systemd_units(python, program, state_dir).items():
        changed |= host_state.write_if_changed(os.path.join(host_state.SYSTEMD_DIR, name), text, 0o644)
    timer = f"{host_state.UNIT}.timer"
    if changed:
        r = _systemctl(module, "daemon-reload")
        if r.returncode != 0:
            module.fail_json(msg=f"systemctl daemon-reload: {r.stderr.strip()}")
    state = host_state.unit_states([timer])[timer]
    if changed or state["enabled"] != "enabled" or state["active"] not in host_state.ACTIVE:
        r = _systemctl(module, "enable", "--now", timer)
        if r.returncode != 0:
            module.fail_json(msg=f"systemctl enable --now {timer}: {r.stderr.strip()}")
        changed = True
    return changed


def install_launchd(module: AnsibleModule, python: str, program: str, state_dir: str) -> bool:
    """The LaunchDaemon: written, then (re)loaded with launchctl bootout/bootstrap when it changed or is not loaded
    (launchctl(1): ``bootstrap system PLIST``, ``print system/LABEL`` exits non-zero for a job not loaded)."""
    text = host_state.launchd_plist(python, program, state_dir)
    changed = host_state.write_if_changed(host_state.LAUNCHD_PLIST, text, 0o644)
    target = f"system/{host_state.LAUNCHD_LABEL}"
    loaded = subprocess.run(["launchctl", "print", target], capture_output=True, check=False).returncode == 0
    if changed and loaded:
        subprocess.run(["launchctl", "bootout", target], capture_output=True, check=False)
        loaded = False
    if not loaded:
        r = subprocess.run(
            ["launchctl", "bootstrap", "system", host_state.LAUNCHD_PLIST], capture_output=True, text=True, check=False
        )
        if r.returncode != 0:
            module.fail_json(msg=f"launchctl bootstrap system {host_state.LAUNCHD_PLIST}: {r.stderr.strip()}")
        changed = True
    return changed


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "role": {"type": "str", "required": True},
            "state_dir": {"type": "path", "required": True},
            "files": {"type": "list", "elements": "raw", "default": []},
            "packages": {"type": "list", "elements": "str", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
            "sysctls": {"type": "dict", "default": {}},
            "containers": {"type": "dict", "default": {}},
            "install": {"type": "bool", "default": True},
            "program": {"type": "path", "default": host_state.PROGRAM},
            "python": {"type": "path", "default": "/usr/bin/python3"},
        },
        supports_check_mode=True,
    )
    p = module.params
    for f in p["files"]:
        if not isinstance(f, str) and not (isinstance(f, dict) and isinstance(f.get("path"), str)):
            module.fail_json(msg=f"files: {f!r} is neither a path nor a mapping with a path")
    if module.check_mode:
        module.exit_json(changed=False, recorded=False, items=0, drifted=0)
    spec = {k: p[k] for k in ("files", "packages", "units", "sysctls", "containers")}
    state_dir = p["state_dir"]
    try:
        os.makedirs(state_dir, mode=0o755, exist_ok=True)
        doc = host_state.build_record(p["role"], spec)
        recorded = host_state.write_if_changed(
            host_state.record_path(state_dir, p["role"]), host_state.dumps(doc), 0o600
        )
    except (host_state.CheckError, ValueError, OSError) as exc:
        module.fail_json(msg=f"homeport_host_state: the record of {p['role']} could not be written: {exc}")
    changed = False
    if p["install"]:
        changed |= host_state.write_if_changed(p["program"], _own_source(), 0o755)
        if os.uname().sysname == "Darwin":
            changed |= install_launchd(module, p["python"], p["program"], state_dir)
        else:
            changed |= install_systemd(module, p["python"], p["program"], state_dir)
    summary = host_state.check(state_dir)
    host_state.write_if_changed(os.path.join(state_dir, host_state.SUMMARY_NAME), host_state.dumps(summary), 0o644)
    module.exit_json(changed=changed, recorded=recorded, items=host_state._count(doc), drifted=len(summary["drifted"]))


if __name__ == "__main__":
    main()
