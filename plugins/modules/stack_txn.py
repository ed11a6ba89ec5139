#!/usr/bin/python
"""homeport.homeport.stack_txn: hand the release transaction to a process on the host, and follow it (issue 28)."""

from __future__ import annotations

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homeport.homeport.plugins.module_utils import stack_txn

DOCUMENTATION = r"""
---
module: stack_txn
short_description: Hand the release transaction of a deploy to a process on the host and follow it
description:
  - "C(state: started) writes the transaction's journal (<project_dir>/.transaction.json) and starts the host program
    (homeport-stack-txn, plugins/module_utils/stack_txn.py) as a transient systemd unit (systemd-run), or as a process
    in a session of its own where systemd is not PID 1. From then on the host alone carries out the release: up with
    the health gate, the restore of the last good release on failure, the release and deploy records, the release of
    the deploy lock. A dropped SSH link does not stop it."
  - "C(state: followed) waits up to I(timeout) seconds for the transaction to end and returns its state; a
    transaction whose process died (a power cut) is started again from its journal (finished, or rolled back by the
    health gate). With I(fail_on_failed), a failed transaction fails the task with the host's report."
version_added: "0.1.0"
author: homeport developers
options:
  project_dir: {description: The project directory., type: path, required: true}
  state: {description: What to do., type: str, choices: [started, followed], required: true}
  params: {description: "The transaction's parameters (C(started) only).", type: dict, default: {}}
  program: {description: The host program (homeport-stack-txn)., type: path, required: true}
  python: {description: The Python 3 that runs it., type: path, default: /usr/bin/python3}
  timeout: {description: "Seconds C(followed) waits before it returns (the caller polls again).", type: int,
            default: 20}
  fail_on_failed: {description: Fail the task when the transaction failed., type: bool, default: true}
  txn_id: {description: "The transaction this run started (C(followed)): its changes count as this run's.", type: str,
           default: ""}
  controller_now: {description: "The controller's clock (epoch) when it sent the task, to map
                                I(params.deploy_started) to the host's clock.", type: float}
"""

RETURN = r"""
done: {description: Whether the transaction has ended (or none exists)., type: bool, returned: always}
result: {description: ok or failed (when done)., type: str, returned: always}
progress: {description: The transaction's progress lines., type: list, returned: always}
id: {description: The transaction's id., type: str, returned: always}
"""


def main():
    module = AnsibleModule(
        argument_spec={
            "project_dir": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["started", "followed"], "required": True},
            "params": {"type": "dict", "default": {}},
            "program": {"type": "path", "required": True},
            "python": {"type": "path", "default": "/usr/bin/python3"},
            "timeout": {"type": "int", "default": 20},
            "fail_on_failed": {"type": "bool", "default": True},
            "txn_id": {"type": "str", "default": ""},
            "controller_now": {"type": "float"},
        },
        supports_check_mode=False,
    )
    p = module.params
    project_dir = p["project_dir"]
    if p["state"] == "started":
        params = dict(p["params"])
        if p["controller_now"] is not None and params.get("deploy_started") is not None:
            params["deploy_started"] = float(params["deploy_started"]) + (time.time() - p["controller_now"])
        try:
            state = stack_txn.start(project_dir, params, p["program"], p["python"])
        except OSError as exc:
            module.fail_json(msg=f"the release transaction could not be started on the host: {exc}")
        module.exit_json(
            changed=False, done=False, id=state["id"], how=state.get("how", ""), result="",
            progress=[x["text"] for x in state.get("progress") or []],
        )  # fmt: skip
    before = stack_txn.read_state(project_dir) or {}
    ours = bool(p["txn_id"]) and before.get("id") == p["txn_id"]
    try:
        state = stack_txn.follow(project_dir, timeout=p["timeout"], program=p["program"], python=p["python"])
    except OSError as exc:
        module.fail_json(msg=f"the release transaction could not be resumed on the host: {exc}")
    progress = [x["text"] for x in state.get("progress") or []]
    out = {
        "done": state.get("status") != "running",
        "id": state.get("id", ""),
        "result": state.get("result", ""),
        "phase": state.get("phase", ""),
        "progress": progress,
        "resumed": state.get("resumed", False),
        "attached": before.get("status") == "running" and not ours,
        "finished": state.get("updated"),
    }
    if state.get("warning"):
        module.warn(state["warning"])
    if out["done"] and state.get("result") == "failed" and p["fail_on_failed"]:
        module.fail_json(msg=state.get("msg") or "the release transaction failed", changed=True, **out)
    # an earlier run's transaction counts as this run's change only when this run waited for it or resumed it
    mine = ours or out["attached"] or out["resumed"]
    module.exit_json(changed=bool(out["done"] and state.get("changed") and mine), msg=state.get("msg", ""), **out)


if __name__ == "__main__":
    main()
