"""Skip a task whose ``when`` is false in the controller's main process, without forking a worker (issues 29, 34).

ansible-core forks a worker (``WorkerProcess``) for every task of every host, and the worker is what evaluates the
task's ``when`` (``TaskExecutor._execute_internal``, ansible-core 2.19): a skipped task costs a whole fork, about
25 ms of CPU on an idle 2-core machine and 57 ms under load (process accounting over ``make test``, issue 34).
A fifth to a quarter of the task results of homeport's runs are skips (a role's Darwin branch on Debian, a feature
that is off: 107 of 601 in the stack scenario's recaps, 29 % over the scenarios in an earlier count), so a no-change
bootstrap forks dozens of workers that only answer "skipped".

The mixin evaluates the conditional in the main process first, exactly as the worker would, and when it is false
hands the strategy the worker's result itself: the same ``v2_runner_on_start`` callback, then the same result dict
(``changed: false, skipped: true, skip_reason, false_condition`` and ``_ansible_no_log``), through the same result
queue. Everything else (registered variables, the recap, callbacks, ``run_once``) is the strategy's unchanged code.

It steps aside, and the worker runs as before, for anything that would make its answer differ from the worker's:
a task with a loop (``when`` is evaluated per item), a delegated task (the worker first computes the delegated
host's variables), a conditional that is true, fails to evaluate (the worker reports the error) or emits a warning
(the worker attaches it to the result), or ansible-core internals that are not those of 2.19 (the fence below).
``HOMEPORT_SKIP_IN_MAIN=0`` turns it off (the control run of tests/unit/test_skip_in_main.py and bench A/B runs).
"""

from __future__ import annotations

import os
import typing as t

from ansible.utils.display import Display

display = Display()

try:  # the ansible-core 2.19 internals used below; another layout leaves every task to its worker
    from ansible._internal import _task

    try:  # where later 2.19 releases keep it; 2.19.1 has it in ansible.utils.display
        from ansible._internal._display_utils import DeferredWarningContext
    except ImportError:
        from ansible.utils.display import _DeferredWarningContext as DeferredWarningContext
    from ansible._internal._templating._engine import TemplateEngine
    from ansible.executor.task_result import _RawTaskResult

    _INTERNALS = True
except ImportError:  # pragma: no cover - the fence; tests/unit/test_skip_in_main.py runs on 2.19
    _INTERNALS = False


def enabled() -> bool:
    return _INTERNALS and os.environ.get("HOMEPORT_SKIP_IN_MAIN", "1") != "0"


def skip_result(task: t.Any, task_vars: dict[str, t.Any], play_context: t.Any, loader: t.Any) -> dict | None:
    """The worker's result for ``task`` on this host when its conditional is false, else None (the worker runs).

    The steps of ``TaskExecutor.run`` / ``_execute_internal`` up to the conditional, in their order: the search path
    ``_get_loop_items`` sets, the play context overridden by the task and its magic variables added to a copy of the
    variables, then ``Task._resolve_conditional``; ``_execute`` then sets ``_ansible_no_log``."""
    if not task.when or task.loop_with or task.loop is not None or task.delegate_to is not None:
        return None
    variables = dict(task_vars)
    search_path = list(task.get_search_path())
    if loader.get_basedir() not in search_path:
        search_path.append(loader.get_basedir())
    variables["ansible_search_path"] = search_path
    templar = TemplateEngine(loader=loader, variables=variables)
    try:
        with _task.TaskContext(task), DeferredWarningContext(variables=variables) as warnings:
            context = play_context.set_task_and_variable_override(task=task, variables=variables, templar=templar)
            context.post_validate(templar=templar)
            context.update_vars(variables)
            false: dict[str, t.Any] = {}
            if task._resolve_conditional(task.when, variables, result_context=false):
                return None
            result = dict(changed=False, skipped=True, skip_reason="Conditional result was False") | false
            task.update_result_no_log(templar, result)
    except Exception as exc:  # the worker evaluates it again and reports the error as it always has
        display.vvvv(f"homeport skip-in-main: {task.get_name()}: {exc}")
        return None
    if warnings.get_warnings() or warnings.get_deprecation_warnings():
        return None
    return result


class SkipInMainMixin:
    """For a strategy plugin, first in its bases: a task whose conditional is false gets its skipped result here
    instead of from a forked worker (the bookkeeping is ``StrategyBase._queue_task``'s: the queued-task cache the
    result processing reads, the start callback, the pending-result count)."""

    def _queue_task(self, host, task, task_vars, play_context):
        result = skip_result(task, task_vars, play_context, self._loader) if enabled() else None
        if result is None:
            return super()._queue_task(host, task, task_vars, play_context)
        self._queued_task_cache[(host.name, task._uuid)] = {
            "host": host,
            "task": task,
            "task_vars": task_vars,
            "play_context": play_context,
        }
        self._tqm.send_callback("v2_runner_on_start", host, task)
        self._final_q.send_task_result(
            _RawTaskResult(host=host, task=task, return_data=result, task_fields=task.dump_attrs())
        )
        self._pending_results += 1
        return None
