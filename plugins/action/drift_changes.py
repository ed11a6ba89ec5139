"""homeport.homeport.drift_changes: how many tasks have changed (in check mode: would change) on this host so far
in this playbook run, read from the run's own statistics. Used by the last task of playbooks/drift.yml so that a
`homeport drift` check can record its result on the host for the monitoring collector.

No option. Returns ``changes`` (int, or None when the statistics cannot be read) and ``changed: false``: the task
reports, it changes nothing and never counts as drift itself. Runs on the controller, no connection.

Where the figure comes from: ansible-playbook's strategy counts every task result per host in the run's
``AggregateStats`` (ansible/executor/stats.py; the counts the PLAY RECAP prints) before the next task starts, and
each task runs in a worker process forked from the playbook's process (ansible/utils/multiprocessing.py: the
``fork`` context), so the worker holds a copy of those counts as they were when this task started. The object is
found by its type among the worker's objects; nothing in ansible-playbook is changed.
"""

from __future__ import annotations

import gc

from ansible.executor.stats import AggregateStats
from ansible.plugins.action import ActionBase


def run_stats() -> AggregateStats | None:
    """The playbook run's statistics as this worker inherited them (None outside an ansible-playbook worker)."""
    found = [o for o in gc.get_objects() if type(o) is AggregateStats]
    return found[0] if len(found) == 1 else None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        host = (task_vars or {}).get("inventory_hostname")
        stats = run_stats()
        changes = int(stats.changed.get(host, 0)) if stats is not None and host else None
        result.update(changed=False, changes=changes)
        if changes is None:
            result["msg"] = "the run's statistics could not be read; the change count is unknown"
        return result
