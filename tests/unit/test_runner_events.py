"""The event handler on its own: change records, masked secrets, plain failure messages, exit code priority."""

from __future__ import annotations

import io

from rich.console import Console

from homeport import events


def _handler(check: bool = False) -> events.EventHandler:
    return events.EventHandler(Console(file=io.StringIO()), json_mode=True, check=check)


def _ok(task: str, res: dict, stdout: str = "", role: str = "stack") -> dict:
    return {
        "event": "runner_on_ok",
        "stdout": stdout,
        "event_data": {"host": "mini", "task": task, "role": role, "task_action": "ansible.builtin.copy", "res": res},
    }


def test_changes_are_recorded_with_diffs_and_secrets_masked():
    h = _handler(check=True)
    h(_ok("Render compose file", {"changed": True, "diff": [{"before": "a\n", "after": "b\n"}]}, "changed: [mini]"))
    h(_ok("Write token", {"censored": "hidden"}, "changed: [mini]"))
    h(_ok("Read config", {"changed": False}, "ok: [mini]"))
    h(_ok("Hidden but unchanged", {"censored": "hidden"}, "ok: [mini]"))
    loop = {"changed": True, "results": [{"changed": True, "diff": {"after": "x"}}, {"changed": False, "diff": {}}]}
    h(_ok("Loop", loop, "changed: [mini]"))
    h.record.status = "successful"
    changes = {c.task: c for c in h.record.changes}
    assert set(changes) == {"Render compose file", "Write token", "Loop"}
    assert changes["Render compose file"].diff == [{"before": "a\n", "after": "b\n"}]
    assert changes["Render compose file"].role == "stack" and changes["Render compose file"].host == "mini"
    assert changes["Write token"].diff == events.HIDDEN
    assert changes["Loop"].diff == [{"after": "x"}]
    assert h.record.exit_code(drift=True) == events.EXIT_DRIFT
    assert h.counts["changed"] == 3 and h.counts["ok"] == 2


def test_failure_message_is_plain_words():
    msg = events.failure_message(
        {"msg": "Task failed: Action failed: non-zero return code", "stderr": "E: Unable to locate package", "rc": 100}
    )
    assert msg == "non-zero return code\nE: Unable to locate package"
    looped = events.failure_message({"results": [{"failed": True, "msg": "bad", "_ansible_item_label": "pg"}]})
    assert looped == "item pg: bad"
    assert events.failure_message({"censored": "x"}) == events.HIDDEN


def test_exit_code_priority():
    r = events.RunRecord(status="failed")
    assert r.exit_code() == events.EXIT_FAILED
    r.failures.append(events.Failure("a", "p", "", "t", "command", "boom", unreachable=True))
    assert r.exit_code() == events.EXIT_UNREACHABLE
    r.failures.append(events.Failure("b", "p", "homeport", "t", "ansible.builtin.assert", "x: bad", validation=True))
    assert r.exit_code() == events.EXIT_INVALID
    assert events.RunRecord(status="successful").exit_code(drift=True) == events.EXIT_OK


def test_validation_only_from_the_preflight_role():
    h = _handler()
    base = {"host": "mini", "task": "Check", "task_action": "ansible.builtin.assert", "res": {"msg": "no"}}
    h({"event": "runner_on_failed", "event_data": {**base, "role": "stack"}})
    assert h.record.exit_code() == events.EXIT_FAILED
    h({"event": "runner_on_failed", "event_data": {**base, "role": "homeport"}})
    assert h.record.exit_code() == events.EXIT_INVALID
    h2 = _handler()
    h2({"event": "runner_on_failed", "event_data": {**base, "role": "homeport", "ignore_errors": True}})
    assert h2.record.failures == []
