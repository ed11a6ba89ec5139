"""homeport.ansible_skip: a task whose ``when`` is false is skipped by the main process, without a forked worker,
and nothing a callback, a registered variable or the recap sees differs from the worker's skip (issues 29, 34).

One playbook holds every kind of skip the mixin takes and every kind it must leave to the worker: a magic variable
only the play context adds (``ansible_connection`` from the play keyword), a registered skip, a skipped block and
include, ``run_once``, ``no_log``, a handler, a loop, a delegated task, a conditional that fails to evaluate and one
that is true. It runs under each homeport strategy with the mixin on and off (HOMEPORT_SKIP_IN_MAIN=0, the control).
The JSON callback's output must be the same both ways (durations aside) and the main process must fork exactly
one worker fewer per qualifying skip: a callback plugin counts the forks with ``os.register_at_fork``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_local import WARM_STRATEGY, run_local_playbook

from homeport import runner

PLAYBOOK = """
- name: Skips of every kind
  hosts: all:!localhost
  connection: local
  gather_facts: false
  vars:
    feature_on: false
  tasks:
    - name: A plain skip, registered
      ansible.builtin.command: "false"
      when: feature_on | bool
      register: plain_skip

    - name: The registered skip is the worker's
      ansible.builtin.assert:
        that:
          - plain_skip is skipped
          - plain_skip.false_condition == 'feature_on | bool'
          - plain_skip.skip_reason == 'Conditional result was False'

    # the play keyword sets ansible_connection only in the play context: the worker adds it to the variables
    - name: A magic variable of the play context
      ansible.builtin.command: "false"
      when: ansible_connection is not defined

    - name: A skipped block
      when: feature_on | bool
      block:
        - name: First task of the skipped block
          ansible.builtin.command: "false"
        - name: Second task of the skipped block
          ansible.builtin.command: "false"

    - name: A skipped include
      ansible.builtin.include_tasks: does-not-exist.yml
      when: feature_on | bool

    - name: A skipped run_once
      ansible.builtin.command: "false"
      run_once: true
      when: feature_on | bool

    - name: A skipped secret
      ansible.builtin.debug:
        msg: "secret-value-{{ inventory_hostname }}"
      no_log: true
      when: feature_on | bool

    - name: A change that notifies
      ansible.builtin.command: "true"
      notify: A handler that does not apply

    # left to the worker: a loop (per item), a delegated task, an error, a true conditional
    - name: A loop
      ansible.builtin.command: "false"
      loop: [1, 2]
      when: item > 5

    - name: A delegated task
      ansible.builtin.command: "false"
      delegate_to: localhost
      when: feature_on | bool

    - name: A conditional that fails to evaluate
      ansible.builtin.command: "false"
      when: no_such_variable | bool
      ignore_errors: true

    - name: A true conditional runs
      ansible.builtin.command: "true"
      when: not feature_on | bool
      changed_when: false

  handlers:
    - name: A handler that does not apply
      ansible.builtin.command: "false"
      when: feature_on | bool
"""
HOSTS = ("alpha", "beta")
# host x task pairs the main process skips: plain, magic, 2 block tasks, include, secret, handler on both hosts,
# run_once on the first host only
QUALIFYING = 2 * 7 + 1

FORK_COUNTER = """
import os
from ansible.plugins.callback import CallbackBase

_forks = [0]
os.register_at_fork(after_in_parent=lambda: _forks.__setitem__(0, _forks[0] + 1))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fork_counter"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["FORK_COUNT_FILE"], "w") as f:
            f.write(str(_forks[0]))
"""


def _strategies() -> dict[str, dict[str, str]]:
    mitogen = runner.mitogen_env()
    assert mitogen.get("ANSIBLE_STRATEGY") == "homeport_linear", mitogen
    return {"homeport_linear": mitogen, "homeport_warm": WARM_STRATEGY}


def _run(tmp: Path, strategy: dict[str, str], skip_in_main: bool) -> tuple[dict, int, str]:
    (tmp / "callbacks").mkdir(exist_ok=True)
    (tmp / "callbacks" / "fork_counter.py").write_text(FORK_COUNTER, encoding="utf-8")
    (tmp / "hosts.ini").write_text("\n".join(HOSTS), encoding="utf-8")
    count = tmp / f"forks-{skip_in_main}"
    env = {
        **strategy,
        "ANSIBLE_CALLBACK_PLUGINS": str(tmp / "callbacks"),
        "ANSIBLE_CALLBACKS_ENABLED": "fork_counter",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "FORK_COUNT_FILE": str(count),
        "HOMEPORT_SKIP_IN_MAIN": "1" if skip_in_main else "0",
    }
    proc = run_local_playbook(tmp, PLAYBOOK, {}, ("-i", str(tmp / "hosts.ini")), env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout), int(count.read_text()), proc.stdout


def _comparable(doc: dict) -> list:
    """The JSON callback's plays without their times and durations."""
    plays = []
    for play in doc["plays"]:
        tasks = []
        for task in play["tasks"]:
            hosts = {}
            for host, result in task["hosts"].items():
                hosts[host] = {k: v for k, v in result.items() if k not in {"delta", "start", "end"}}
            tasks.append({"name": task["task"]["name"], "hosts": hosts})
        plays.append(tasks)
    return [plays, doc["stats"]]


@pytest.mark.parametrize("name", ["homeport_linear", "homeport_warm"])
def test_skips_in_the_main_process_are_the_workers_skips_with_fewer_forks(tmp_path, name):
    strategy = _strategies()[name]
    on, forks_on, out_on = _run(tmp_path, strategy, skip_in_main=True)
    off, forks_off, _ = _run(tmp_path, strategy, skip_in_main=False)
    assert _comparable(on) == _comparable(off)
    # the control: without the mixin every task start forks a worker
    assert forks_off - forks_on == QUALIFYING, (forks_on, forks_off)
    stats = on["stats"]
    assert {h: (stats[h]["skipped"], stats[h]["failures"], stats[h]["ignored"]) for h in HOSTS} == {
        # 7 qualifying skips, the loop's and the delegated task's skips; the failed conditional is ignored
        "alpha": (10, 0, 1),
        "beta": (9, 0, 1),
    }
    assert "secret-value" not in out_on
