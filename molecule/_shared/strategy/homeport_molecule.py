"""Mitogen's linear strategy for molecule's docker-connection targets (issue 34: the suite's controller CPU).

Every molecule scenario talks to its containers through ``community.docker.docker``, a new ``docker exec`` and a
new Python per task. Mitogen keeps one Python per target and sends it the module (ansible_mitogen's ``docker``
transport: ``docker exec --interactive CONTAINER python``). Measured once, on a machine other work shared: a
no-change converge of molecule/lan_attack took 20 s wall instead of 43 s, and 31 busy CPU seconds of the machine
instead of 83. Mitogen's strategy redirects connection plugins by their short name only
(ansible_mitogen/strategy.py, REDIRECTED_CONNECTION_PLUGINS and wrap_connection_loader__get_with_context: ``name in
REDIRECTED_CONNECTION_PLUGINS``), and molecule's docker driver writes the fully qualified
``community.docker.docker``: this plugin maps it to ``docker`` before Mitogen looks, and is otherwise
``mitogen_linear``. Real homeport runs use ``homeport_linear`` (src/homeport/ansible_plugins) over SSH; this one is
for the test targets only. A scenario opts out with ``ANSIBLE_STRATEGY: linear`` in its provisioner env.
"""

from __future__ import annotations

import ansible_mitogen.loaders as _mitogen_loaders
import ansible_mitogen.strategy as _mitogen_strategy
from ansible_mitogen.plugins.strategy import mitogen_linear

from homeport.ansible_skip import SkipInMainMixin
from homeport.ansible_warm import WarmStrategyMixin

_SHORT = {"community.docker.docker": "docker"}
# the controller's own tasks (molecule's create/destroy playbooks: async docker_container + async_status) keep
# ansible-core's local connection: under mitogen_local their async_status never saw the job finish
_VANILLA = {"local", "ansible.builtin.local"}
_redirect = _mitogen_strategy.wrap_connection_loader__get_with_context


def _wrap_connection_loader__get_with_context(name, *args, **kwargs):
    if name in _VANILLA:
        return _mitogen_loaders.connection_loader__get_with_context(name, *args, **kwargs)
    play_context = args[0] if args else None
    if getattr(play_context, "connection", None) in _SHORT:
        play_context.connection = _SHORT[play_context.connection]
    return _redirect(_SHORT.get(name, name), *args, **kwargs)


# StrategyMixin._install_wrappers reads this module global when a play starts
_mitogen_strategy.wrap_connection_loader__get_with_context = _wrap_connection_loader__get_with_context


class StrategyModule(SkipInMainMixin, _mitogen_strategy.StrategyMixin, WarmStrategyMixin, mitogen_linear.Base):  # type: ignore[misc,name-defined]
    """mitogen_linear, reached for molecule's fully qualified docker connection too, with the main process's plugin
    caches warmed before the workers fork (homeport.ansible_warm: the Jinja filter and test plugins, each action),
    and a task whose conditional is false skipped without a worker (homeport.ansible_skip)."""
