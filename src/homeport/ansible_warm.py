"""Warm ansible-core's plugin caches in the controller's main process before its task workers fork (issue 34).

ansible-core runs every task of every host in a worker forked from the main process (``WorkerProcess``), and the
worker dies with the task. Several caches are filled lazily, the first time a worker needs them, so each worker
fills them again and throws them away:

- the Jinja filter and test plugins of ``ansible.builtin`` (``Jinja2Loader._ensure_non_collection_wrappers``
  imports every file under ansible/plugins/filter and ansible/plugins/test the first time any template uses an
  Ansible filter or test, e.g. ``| bool``, ``| to_json``, ``is file``);
- the resolution of each task's action and module name to a plugin file (``PluginLoader._plugin_path_cache``, the
  collection's ``meta/runtime.yml`` routing) and the import of the action plugin's module;
- the connection, shell and become plugins of the play.

Measured on 100 ``assert`` tasks with one filter each (local connection, cProfile inside every worker): 56 ms of
Python per worker before, 36 ms after the first item alone. The main process loads the filter and test plugins once
per play (0.14 CPU-s on the 2-core test machine); nothing changes in what a task does: the same plugins are found,
the worker only finds them already loaded. ``bench/task_overhead.py`` prints the figure (controller CPU per task,
with and without; 10 % on 120 local tasks). tests/unit/test_ansible_warm.py checks, from inside a worker, that the
cache is there when the worker starts.
"""

from __future__ import annotations

import typing as t

from ansible.plugins.loader import (
    action_loader,
    become_loader,
    connection_loader,
    filter_loader,
    module_loader,
    shell_loader,
    test_loader,
)
from ansible.utils.display import Display

display = Display()


def warm_jinja_plugins() -> None:
    """Load the ansible.builtin filter and test plugins once (a worker would import them all again)."""
    list(filter_loader.all())
    list(test_loader.all())


def warm_action(action: str, collections: list[str] | None) -> None:
    """The lookups of TaskExecutor._get_action_handler_with_module_context (ansible-core 2.19), in its order: the
    module (and the action plugin it names), else an action plugin of the task's name, else ansible.legacy.normal.
    A name that does not resolve is left to the worker, which reports it exactly as it does without this."""
    try:
        module = module_loader.find_plugin_with_context(action, collection_list=collections)
        if module.resolved and module.action_plugin:
            action_loader.get(module.action_plugin, class_only=True, collection_list=collections)
        elif action_loader.has_plugin(action, collection_list=collections):
            action_loader.get(action, class_only=True, collection_list=collections)
        else:
            action_loader.get("ansible.legacy.normal", class_only=True)
    except Exception as exc:  # a warm-up never fails a run: the worker loads it as before
        display.vvvv(f"homeport warm-up: {action}: {exc}")


def warm_plugins(name_and_loaders: t.Iterable[tuple[t.Any, str | None]]) -> None:
    """Import each named plugin's class (connection, shell, become) in this process."""
    for loader, name in name_and_loaders:
        if not name:
            continue
        try:
            loader.get(name, class_only=True)
        except Exception as exc:  # as above
            display.vvvv(f"homeport warm-up: {name}: {exc}")


class WarmStrategyMixin:
    """For a strategy plugin: warm the caches above in the main process. ``run`` loads the Jinja plugins once per
    play; ``_queue_task`` resolves each distinct task action (and the play's connection, shell and become plugins)
    once, just before the first worker that needs it forks. Put it after Mitogen's StrategyMixin in the bases, so
    that the connection is resolved through Mitogen's redirection."""

    def run(self, iterator, play_context, *args, **kwargs):
        warm_jinja_plugins()
        self._homeport_warmed = set()
        return super().run(iterator, play_context, *args, **kwargs)

    def _queue_task(self, host, task, task_vars, play_context):
        warmed = getattr(self, "_homeport_warmed", None)
        if warmed is None:
            warmed = self._homeport_warmed = set()
        collections = tuple(task.collections or ())
        key = (task.action, collections)
        if key not in warmed:
            warmed.add(key)
            warm_action(task.action, list(collections) or None)
        connection = getattr(play_context, "connection", None)
        if isinstance(connection, str) and ("connection", connection) not in warmed:
            warmed.add(("connection", connection))
            warm_plugins(((connection_loader, connection), (shell_loader, "sh"), (become_loader, "sudo")))
        return super()._queue_task(host, task, task_vars, play_context)
