#!/usr/bin/python
"""homeport.homeport.stack_up: start a compose project under one time bound and judge its health (issue 31)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.community.docker.plugins.module_utils.compose_v2 import (
    has_changes,
    parse_events,
    parse_json_events,
)
from ansible_collections.homeport.homeport.plugins.module_utils.stack_health import (
    container_view,
    health_rules,
    judge,
    not_ready,
)

DOCUMENTATION = r"""
---
module: stack_up
short_description: Start a compose project under one time bound and judge its health
description:
  - Runs C(docker compose up --detach --wait) like community.docker.docker_compose_v2 (same change detection), but
    under one bound, I(wait_timeout) seconds for the whole wait - compose's own waits for C(depends_on) conditions too,
    which its C(--wait-timeout) does not cover (a one-shot that never ends, a dependency that never gets healthy).
    Past the bound compose is stopped and the task fails, naming the services that are not ready.
  - Then, when C(up) changed something, it watches the project's containers for I(liveness_seconds) - a service
    restarted by the engine (a crash loop, which C(up --wait) counts as running), one that exited (but a one-shot
    with exit code 0), or an unhealthy one fails the task, with the services in C(failed_services).
  - "A one-shot is a service with restart C(no) (or none) that another service waits for with
    C(condition: service_completed_successfully); it must exit 0."
  - No check mode (use community.docker.docker_compose_v2 there).
version_added: "0.1.0"
author: homeport developers
options:
  project_dir: {description: The project directory., type: path, required: true}
  project_name: {description: The compose project name., type: str, required: true}
  files: {description: Compose files relative to I(project_dir)., type: list, elements: str, required: true}
  services: {description: Services to start (default all)., type: list, elements: str, default: []}
  remove_orphans: {description: Remove containers of services no longer in the files., type: bool, default: false}
  build: {description: C(policy) builds missing images; C(never) never builds., type: str, default: policy,
          choices: [policy, never]}
  wait_timeout: {description: Seconds for the whole wait (up and the liveness window)., type: int, required: true}
  liveness_seconds: {description: Seconds every service must stay up without a restart after C(up)., type: int,
                     default: 10}
  docker_cli: {description: The docker CLI., type: str, default: docker}
  docker_host: {description: The engine (DOCKER_HOST)., type: str}
"""

RETURN = r"""
changed: {description: Whether up created, recreated, started or removed anything., type: bool, returned: always}
failed_services: {description: Services that failed the health gate., type: list, returned: always}
seconds: {description: Seconds the wait took., type: float, returned: always}
"""


def _version(text):
    parts = []
    for piece in str(text).lstrip("v").split("-")[0].split("."):
        parts.append(int(piece) if piece.isdigit() else 0)
    return tuple(parts)


class Gate:
    def __init__(self, module):
        self.module = module
        p = module.params
        self.p = p
        self.env = dict(os.environ, **({"DOCKER_HOST": p["docker_host"]} if p["docker_host"] else {}))
        self.deadline = time.monotonic() + p["wait_timeout"]

    def remaining(self):
        return self.deadline - time.monotonic()

    def run(self, args, timeout=None):
        """(rc, stdout, stderr) of the docker CLI; rc None when the bound ran out (compose was stopped)."""
        limit = self.remaining() if timeout is None else min(timeout, max(self.remaining(), 5))
        proc = subprocess.Popen(
            [self.p["docker_cli"], *args],
            cwd=self.p["project_dir"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stopped as a whole when the bound runs out
        )
        try:
            out, err = proc.communicate(timeout=max(limit, 1))
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    out, err = proc.communicate(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                out, err = b"", b""
            return None, out or b"", err or b""
        return proc.returncode, out, err

    def base(self, json_events):
        args = ["compose", "--ansi", "never", "--progress", "json" if json_events else "plain"]
        args += ["--project-directory", self.p["project_dir"], "--project-name", self.p["project_name"]]
        for f in self.p["files"]:
            args += ["--file", f]
        return args

    def containers(self, json_events):
        rc, out, _err = self.run([*self.base(json_events), "ps", "--all", "--quiet"], timeout=60)
        ids = out.decode().split() if rc == 0 else []
        if not ids:
            return []
        rc, out, _err = self.run(["inspect", *ids], timeout=60)
        try:
            return [container_view(c) for c in json.loads(out.decode() or "[]")] if rc == 0 else []
        except ValueError:
            return []


def main():
    module = AnsibleModule(
        argument_spec={
            "project_dir": {"type": "path", "required": True},
            "project_name": {"type": "str", "required": True},
            "files": {"type": "list", "elements": "str", "required": True},
            "services": {"type": "list", "elements": "str", "default": []},
            "remove_orphans": {"type": "bool", "default": False},
            "build": {"type": "str", "default": "policy", "choices": ["policy", "never"]},
            "wait_timeout": {"type": "int", "required": True},
            "liveness_seconds": {"type": "int", "default": 10},
            "docker_cli": {"type": "str", "default": "docker"},
            "docker_host": {"type": "str"},
        },
        supports_check_mode=False,
    )
    p = module.params
    gate = Gate(module)
    started = time.monotonic()
    rc, out, _err = gate.run(["compose", "version", "--format", "json"], timeout=60)
    try:
        json_events = rc == 0 and _version(json.loads(out.decode())["version"]) >= (2, 29)
    except (ValueError, KeyError):
        json_events = False
    rc, out, err = gate.run([*gate.base(json_events), "config", "--format", "json"], timeout=60)
    if rc != 0:
        module.fail_json(
            msg=f"docker compose config failed: {err.decode(errors='replace').strip()}", failed_services=[]
        )
    rules = health_rules(json.loads(out.decode()))
    baseline = {c["id"]: c["restarts"] for c in gate.containers(json_events)}

    args = [*gate.base(json_events), "up", "--detach", "--no-color", "--quiet-pull", "--wait"]
    args += ["--wait-timeout", str(max(int(gate.remaining()), 1))]
    if p["remove_orphans"]:
        args.append("--remove-orphans")
    if p["build"] == "never":
        args.append("--no-build")
    args += ["--", *p["services"]]
    rc, out, err = gate.run(args)
    events = (
        parse_json_events(err, warn_function=module.warn)
        if json_events
        else parse_events(err, warn_function=module.warn, nonzero_rc=bool(rc))
    )
    changed = has_changes(events, ignore_service_pull_events=True) or rc != 0

    def seen():
        return gate.containers(json_events)

    if rc is None:
        now = seen()
        problems = judge(rules, baseline, now)
        failed = sorted({s for s, _m in problems} | set(not_ready(rules, now)))
        module.fail_json(
            msg=(
                f"the services were not ready within stack_wait_timeout ({p['wait_timeout']} s, the bound of the "
                f"whole wait); docker compose up was stopped. Not ready: {', '.join(failed) or 'none found'}"
                + ("; " + "; ".join(m for _s, m in problems) if problems else "")
            ),
            changed=True,
            failed_services=failed,
            seconds=round(time.monotonic() - started, 1),
        )
    if rc != 0:
        problems = judge(rules, baseline, seen())
        text = err.decode(errors="replace").strip().splitlines()
        module.fail_json(
            msg="docker compose up failed: "
            + " / ".join(line for line in text[-5:] if line.strip())
            + ("; " + "; ".join(m for _s, m in problems) if problems else ""),
            changed=True,
            failed_services=[s for s, _m in problems],
            seconds=round(time.monotonic() - started, 1),
        )
    # the liveness window: only after a change (a rerun that changed nothing has nothing new to watch)
    window_end = time.monotonic() + (p["liveness_seconds"] if changed else 0)
    while True:
        problems = judge(rules, baseline, seen())
        if problems or time.monotonic() >= window_end:
            break
        if gate.remaining() <= 0:
            problems = [
                (
                    "",
                    f"the liveness window (stack_liveness_seconds: {p['liveness_seconds']}) did not end within "
                    f"stack_wait_timeout ({p['wait_timeout']} s, the bound of the whole wait): raise "
                    "stack_wait_timeout or lower stack_liveness_seconds",
                )
            ]
            break
        time.sleep(1)
    if problems:
        module.fail_json(
            msg="the release failed the health gate: " + "; ".join(m for _s, m in problems),
            changed=True,
            failed_services=[s for s, _m in problems if s],
            seconds=round(time.monotonic() - started, 1),
        )
    module.exit_json(changed=changed, failed_services=[], seconds=round(time.monotonic() - started, 1))


if __name__ == "__main__":
    main()
