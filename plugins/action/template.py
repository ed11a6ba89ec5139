"""homeport.homeport.template: `ansible.builtin.template` with one remote call fewer for a file that is already
right.

Same options, same results: the builtin renders the template and hands the file to the copy action; this one hands
it to homeport.homeport.copy instead, which skips the `file` call when owner, group and mode already match.
"""

from __future__ import annotations

from ansible.plugins.action.template import ActionModule as _BuiltinTemplate

_COPY = "homeport.homeport.copy"


class _ActionLoader:
    """The shared action loader, except that the builtin template's copy action is ours."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def get(self, name, *args, **kwargs):
        return self._loader.get(_COPY if name == "ansible.legacy.copy" else name, *args, **kwargs)

    def __getattr__(self, attr):
        return getattr(self._loader, attr)


class _SharedLoader:
    def __init__(self, shared) -> None:
        self._shared = shared
        self.action_loader = _ActionLoader(shared.action_loader)

    def __getattr__(self, attr):
        return getattr(self._shared, attr)


class ActionModule(_BuiltinTemplate):
    def run(self, tmp=None, task_vars=None):
        shared = self._shared_loader_obj
        self._shared_loader_obj = _SharedLoader(shared)
        try:
            return super().run(tmp, task_vars)
        finally:
            self._shared_loader_obj = shared
