"""homeport_linear: Mitogen's ``mitogen_linear`` strategy with ahead-of-time module forwarding.

Selected by homeport.runner.build_env (ANSIBLE_STRATEGY=homeport_linear) when Mitogen is installed; see
homeport.mitogen_preload for what it changes and why. Behaviour on the host is Mitogen's: only fewer round trips.
"""

from __future__ import annotations

DOCUMENTATION = """
name: homeport_linear
short_description: Mitogen's linear strategy with ahead-of-time module forwarding (homeport)
description:
  - Ansible's linear strategy run through Mitogen (one persistent interpreter per host and become user), plus the
    ansible.module_utils modules each task imports lazily forwarded before the call instead of fetched on demand,
    and a task whose conditional is false skipped by the main process without forking a worker.
author: homeport
"""

import ansible_mitogen.loaders  # noqa: E402 - after DOCUMENTATION, as ansible plugins are laid out
import ansible_mitogen.strategy  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

from homeport import mitogen_preload  # noqa: E402
from homeport.ansible_skip import SkipInMainMixin  # noqa: E402
from homeport.ansible_warm import WarmStrategyMixin  # noqa: E402

if not mitogen_preload.install():
    # the fence: a Mitogen whose internals changed runs as plain mitogen_linear, never a failed run
    Display().warning(
        "homeport: Mitogen's internals changed, running plain mitogen_linear without homeport's speed-ups: "
        + "; ".join(mitogen_preload.compatibility_problems())
    )

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(SkipInMainMixin, ansible_mitogen.strategy.StrategyMixin, WarmStrategyMixin, _Linear):  # type: ignore[valid-type,misc]  # run-time class
    """mitogen_linear, with the main process's plugin caches warmed before the workers fork (homeport.ansible_warm),
    and a task whose conditional is false skipped without a worker (homeport.ansible_skip)."""
