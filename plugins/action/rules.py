"""homeport.homeport.rules: a role's read-only checks in one task (issues 29 and 34).

Each ``ansible.builtin.assert`` task of a role's validate.yml cost a task start: a forked worker, its variables and
templating, 30-60 ms of controller CPU, and a line of output, whether or not the rule applied. This action checks a
list of rules in one task, with assert's semantics rule by rule:

- the rules are checked in order and the first that fails ends the task (``failed``, ``msg`` = its message), as a
  sequence of assert tasks would stop at the first failed one;
- a rule's ``that`` (a conditional or a list of them) is evaluated as assert evaluates it (``evaluate_conditional``:
  a bare expression, no ``{{ }}``);
- its ``msg`` is templated only when the rule fails (a rule that passes may have a message that cannot be templated,
  e.g. one that reads ``_repos[0]`` of an empty list);
- ``when`` skips the rule (per item with a loop, as Ansible's ``when`` does), ``loop`` checks it for each item
  (``item``; ``label`` names the item in the result, never the item itself, which may hold a secret), ``vars`` are
  the rule's own variables, templated lazily when the rule reads them (they may read ``item``).

Options: ``rules`` (required, list of dicts with ``that``, ``msg`` and optionally ``name``, ``when``, ``loop``,
``label``, ``vars``). Returns ``checked`` (how many rule evaluations ran), ``changed: false``; on failure also
``rule`` (its name or number), ``assertion`` (the expression that was false) and ``item_label``.

How the rules escape ansible-core's eager templating of task arguments: ``finalize_task_arg`` (ansible-core 2.19,
ansible/plugins/action/__init__.py; ``assert`` overrides it for ``that`` the same way) returns ``rules`` as written,
its strings still trusted templates from the role's YAML, and this action templates each part when it needs it,
with the task's variables (``self._templar``) under the rule's ``vars`` and ``item``.
"""

from __future__ import annotations

import typing as t
from collections import ChainMap

from ansible.errors import AnsibleActionFail, AnsibleUndefinedVariable
from ansible.plugins.action import ActionBase

RULE_KEYS = {"name", "that", "msg", "when", "loop", "label", "vars"}


def _as_list(value: t.Any) -> list:
    return value if isinstance(value, list) else [value]


def _applies(templar: t.Any, rule: dict) -> bool:
    """Whether every condition of the rule's ``when`` holds (no ``when``: it applies)."""
    return all(templar.evaluate_conditional(w) for w in _as_list(rule.get("when", True)))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    @classmethod
    def finalize_task_arg(cls, name: str, value: t.Any, templar: t.Any, context: t.Any) -> t.Any:
        if name == "rules":
            return value  # each rule's parts are templated in run(), when and if they are needed
        return super().finalize_task_arg(name, value, templar, context)

    def _scoped(self, variables: ChainMap) -> t.Any:
        """The task's templar over ``variables`` (ansible.template.Templar.copy_with_new_env)."""
        return self._templar.copy_with_new_env(available_variables=variables)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        rules = self._task.args.get("rules")
        unknown = set(self._task.args) - {"rules"}
        if unknown:
            raise AnsibleActionFail(f"rules: unknown option(s) {sorted(unknown)}; the only option is rules")
        if not isinstance(rules, list) or not rules:
            raise AnsibleActionFail("rules: the option rules must be a non-empty list of rules")
        base = self._templar.available_variables
        checked = 0
        for number, rule in enumerate(rules, 1):
            name = rule.get("name", f"rule {number}") if isinstance(rule, dict) else f"rule {number}"
            if not isinstance(rule, dict) or "that" not in rule or "msg" not in rule:
                raise AnsibleActionFail(f"rules: {name} must be a dict with at least that and msg")
            extra = set(rule) - RULE_KEYS
            if extra:
                raise AnsibleActionFail(f"rules: {name} has unknown key(s) {sorted(extra)}; known: {sorted(RULE_KEYS)}")
            own = dict(rule.get("vars") or {})
            if "loop" in rule:
                outer = self._scoped(ChainMap(own, base))
                try:
                    items = outer.template(rule["loop"])
                except AnsibleUndefinedVariable:
                    # as ansible-core's TaskExecutor does (_loop_eval_error): an undefined loop is an error only
                    # when the task's `when` (read without `item`) holds
                    if not _applies(outer, rule):
                        continue
                    raise
                if not isinstance(items, list):
                    raise AnsibleActionFail(f"rules: {name}: loop must give a list, got {type(items).__name__}")
                scopes = [ChainMap({"item": item}, own, base) for item in items]
            else:
                scopes = [ChainMap(own, base)]
            for scope in scopes:
                templar = self._scoped(scope)
                if not _applies(templar, rule):
                    continue
                checked += 1
                for that in _as_list(rule["that"]):
                    if templar.evaluate_conditional(that):
                        continue
                    label = templar.template(rule["label"]) if "label" in rule else None
                    result.update(
                        failed=True,
                        msg=templar.template(rule["msg"]),
                        rule=name,
                        assertion=that,
                        evaluated_to=False,
                        checked=checked,
                    )
                    if label is not None:
                        result["item_label"] = label
                    return result
        result.update(changed=False, checked=checked, msg=f"{checked} checks passed")
        return result
