"""homeport_warm: ansible-core's linear strategy with the main process's plugin caches warmed before each worker
forks (homeport.ansible_warm). For runs without Mitogen: the local-connection playbooks of the unit tests and
molecule's controller-side plays; homeport's own runs use homeport_linear, which does the same on top of Mitogen."""

from __future__ import annotations

DOCUMENTATION = """
name: homeport_warm
short_description: ansible-core's linear strategy with warmed plugin caches (homeport)
description:
  - The linear strategy; before a task's worker forks, the main process has loaded the ansible.builtin Jinja filter
    and test plugins and resolved the task's action, module and connection plugins, so the worker does not load
    them again; a task whose conditional is false is skipped by the main process without forking a worker. What a
    task does is unchanged.
author: homeport
"""

from ansible.plugins.strategy.linear import StrategyModule as _Linear  # noqa: E402

from homeport.ansible_skip import SkipInMainMixin  # noqa: E402
from homeport.ansible_warm import WarmStrategyMixin  # noqa: E402


class StrategyModule(SkipInMainMixin, WarmStrategyMixin, _Linear):
    """ansible.builtin.linear with warmed caches; a task whose conditional is false is skipped without a worker
    (homeport.ansible_skip)."""
