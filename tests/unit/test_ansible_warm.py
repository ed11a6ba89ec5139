"""homeport.ansible_warm (issue 34): with the homeport_warm strategy a task's worker starts with the ansible.builtin
Jinja filter and test plugins already loaded by the main process, and with the action plugin a module task runs
(``normal``) already imported; with ansible-core's linear strategy it loads them itself (the control). Seen from
inside the worker: a small action plugin (no templated argument, so the task itself loads nothing) reports what it
finds when it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_local import ANSIBLE_PLAYBOOK, ROOT

PROBE = """
import sys
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import filter_loader, test_loader


class ActionModule(ActionBase):
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        return {
            "changed": False,
            "filters_loaded": bool(filter_loader._cached_non_collection_wrappers),
            "tests_loaded": bool(test_loader._cached_non_collection_wrappers),
            "normal_imported": any(m.endswith("plugins.action.normal") for m in sys.modules),
        }
"""

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: A module without an action plugin of its own (its worker runs ansible.legacy.normal)
      ansible.builtin.stat:
        path: /
    - name: Probe
      warm_probe:
      register: probe
    - name: Show
      ansible.builtin.copy:
        content: "{{ probe | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def probe(tmp_path: Path, strategy: str) -> dict:
    (tmp_path / "action_plugins").mkdir(exist_ok=True)
    (tmp_path / "action_plugins" / "warm_probe.py").write_text(PROBE, encoding="utf-8")
    (tmp_path / "play.yml").write_text(PLAY, encoding="utf-8")
    out = tmp_path / f"{strategy}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_STRATEGY=strategy,
        ANSIBLE_STRATEGY_PLUGINS=str(ROOT / "src" / "homeport" / "ansible_plugins" / "strategy"),
        ANSIBLE_ACTION_PLUGINS=str(tmp_path / "action_plugins"),
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    r = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "play.yml", "-e", f"out={out}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.needs_tool("ansible-playbook")
def test_the_worker_finds_the_plugins_loaded_with_homeport_warm_and_not_with_linear(tmp_path):
    warm = probe(tmp_path, "homeport_warm")
    assert warm["filters_loaded"] and warm["tests_loaded"], warm
    # stat has no action plugin: its worker runs the `normal` action, which the main process imported before it forked
    assert warm["normal_imported"], warm
    cold = probe(tmp_path, "linear")  # the control: ansible-core alone leaves each worker to load them
    assert not cold["filters_loaded"] and not cold["tests_loaded"], cold
    assert not cold["normal_imported"], cold
