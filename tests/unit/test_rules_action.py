"""homeport.homeport.rules (plugins/action/rules.py): a role's checks in one task, with the semantics of the
sequence of ansible.builtin.assert tasks it replaces (issues 29 and 34).

The equivalence test writes the same rules both ways, as one rules task and as assert tasks, and runs both on the
same inputs: the same input fails or passes in both, with the same message. The control: a rules task whose rules are
in another order than the asserts gives another first message for an input that breaks two rules, so the comparison
can tell an order difference."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from ansible_local import run_local_playbook

RULES = [
    {
        "name": "the port",
        "that": ["app_port | int > 0", "app_port | int < 65536"],
        "msg": "app_port: {{ app_port }} must be from 1 to 65535",
    },
    {
        "name": "no public repository",
        "that": "app_repos | select('match', '^http:') | list | length == 0",
        "msg": "app_repos: {{ app_repos | select('match', '^http:') | first | default('') }} is plain http",
    },
    {
        "name": "the restore target",
        "when": "app_action == 'restore'",
        "that": "app_target is match('^/.')",
        "msg": "app_target: '{{ app_target }}' must be an absolute directory (app_action=restore)",
    },
    {
        "name": "each dump",
        "loop": "{{ app_dumps }}",
        "label": "{{ item.name }}",
        "when": "item.enabled | default(true)",
        "vars": {"_app_same": "{{ app_dumps | selectattr('name', 'equalto', item.name) | list | length }}"},
        "that": ["item.name is match('^[a-z]+$')", "_app_same | int == 1"],
        "msg": "app_dumps: entry {{ item.name }} must be lowercase letters and unique ({{ _app_same }} found)",
    },
]

# each run reports through the JSON callback: every task's result per host, read back below
JSON = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
GOOD = {
    "app_port": 8080,
    "app_repos": ["https://a", "/srv/b"],
    "app_action": "none",
    "app_target": "",
    "app_dumps": [{"name": "db"}, {"name": "graph"}],
}
CASES = {
    "good": {},
    "port": {"app_port": 0},
    "port and http": {"app_port": 70000, "app_repos": ["http://x"]},
    "http": {"app_repos": ["/srv", "http://plain"]},
    "restore without target": {"app_action": "restore"},
    "target ignored without restore": {"app_target": "relative"},
    "bad dump name": {"app_dumps": [{"name": "db"}, {"name": "Bad Name"}]},
    "dump repeated": {"app_dumps": [{"name": "db"}, {"name": "db"}]},
    "disabled bad dump": {"app_dumps": [{"name": "db"}, {"name": "BAD", "enabled": False}]},
}


def as_asserts(rules: list[dict]) -> list[dict]:
    tasks = []
    for rule in rules:
        task: dict = {
            "name": rule["name"],
            "ansible.builtin.assert": {"that": rule["that"], "fail_msg": rule["msg"], "quiet": True},
        }
        for key in ("when", "loop", "vars"):
            if key in rule:
                task[key] = rule[key]
        if "label" in rule:
            task["loop_control"] = {"label": rule["label"]}
        tasks.append(task)
    return tasks


def play(tasks: list[dict]) -> str:
    return yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False)


def rules_task(rules: list[dict]) -> list[dict]:
    return [{"name": "Check the app settings", "homeport.homeport.rules": {"rules": rules}}]


def outcomes(tmp_path: Path, tasks: list[dict], cases: dict[str, dict]) -> dict[str, tuple[bool, str]]:
    """One playbook run, one local host per case (its variables GOOD updated by the case): per case, whether the
    play failed for it and the first failure's message (an assert task with a loop reports every failed item, the
    rules stop at the first)."""
    hosts = {f"case{i}": {"ansible_connection": "local", **GOOD, **v} for i, v in enumerate(cases.values())}
    inventory = tmp_path / "cases.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}), encoding="utf-8")
    text = yaml.safe_dump([{"hosts": "all:!localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False)
    proc = run_local_playbook(tmp_path, text, {}, ("-i", str(inventory)), env=JSON)
    report = json.loads(proc.stdout)
    found: dict[str, tuple[bool, str]] = {}
    for task in report["plays"][0]["tasks"]:
        for host, res in task["hosts"].items():
            if host in found or not res.get("failed"):
                continue
            items = [r for r in res.get("results", []) if r.get("failed")]
            found[host] = (True, (items[0] if items else res)["msg"])
    return {case: found.get(f"case{i}", (False, "")) for i, case in enumerate(cases)}


def test_rules_fail_and_pass_as_the_assert_tasks_do(tmp_path):
    got = outcomes(tmp_path, rules_task(RULES), CASES)
    want = outcomes(tmp_path, as_asserts(RULES), CASES)
    assert got == want
    passing = {"good", "target ignored without restore", "disabled bad dump"}
    assert {case for case, (failed, _) in got.items() if not failed} == passing
    assert got["port and http"] == (True, "app_port: 70000 must be from 1 to 65535")


def test_control_another_order_gives_another_first_message(tmp_path):
    cases = {"port and http": CASES["port and http"]}
    got = outcomes(tmp_path, rules_task([RULES[1], RULES[0], *RULES[2:]]), cases)
    want = outcomes(tmp_path, as_asserts(RULES), cases)
    assert got["port and http"][0] and want["port and http"][0]
    assert got != want


def test_a_message_is_templated_only_when_its_rule_fails(tmp_path):
    """An assert task templates its fail_msg even when it passes (ansible-core 2.19 templates task arguments before
    the action runs): a message reading the first offending entry fails on good input. A rule's message does not."""
    rule = {
        "name": "no public repository",
        "that": "app_repos | select('match', '^http:') | list | length == 0",
        "msg": "app_repos: {{ (app_repos | select('match', '^http:') | list)[0] }} is plain http",
    }
    cases = {"good": {}, "http": {"app_repos": ["/a", "http://plain"]}}
    assert outcomes(tmp_path, rules_task([rule]), cases) == {
        "good": (False, ""),
        "http": (True, "app_repos: http://plain is plain http"),
    }
    failed, message = outcomes(tmp_path, as_asserts([rule]), cases)["good"]  # the control: the assert task fails
    assert failed and "no element 0" in message


def test_a_failure_names_the_rule_and_the_item_label_never_the_item(tmp_path):
    rules = [
        {
            "name": "each token",
            "loop": "{{ app_tokens }}",
            "label": "{{ app_tokens.index(item) }}",
            "that": "item | length >= 12",
            "msg": "app_tokens: entry {{ app_tokens.index(item) }} is shorter than 12 characters (not shown)",
        }
    ]
    tasks = [{"name": "Check the tokens", "homeport.homeport.rules": {"rules": rules}}]
    proc = run_local_playbook(tmp_path, play(tasks), {"app_tokens": ["long-enough-token", "s3cr3t"]}, env=JSON)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["msg"] == "app_tokens: entry 1 is shorter than 12 characters (not shown)"
    assert result["rule"] == "each token" and result["item_label"] == 1 and result["checked"] == 2
    assert "s3cr3t" not in out


def test_one_task_for_all_the_rules_in_the_recap(tmp_path):
    proc = run_local_playbook(tmp_path, play(rules_task(RULES)), GOOD, ("--check",), env=JSON)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["stats"]["localhost"]["ok"] == 1 and report["stats"]["localhost"]["changed"] == 0
    # port, repos, the two dumps (the restore rule did not apply)
    assert report["plays"][0]["tasks"][0]["hosts"]["localhost"]["checked"] == 4


MALFORMED = [
    ({"rules": []}, "rules must be a non-empty list"),
    ({"rules": [{"that": "true"}]}, "rule 1 must be a dict with at least that and msg"),
    ({"rules": [{"that": "true", "msg": "m", "fail_msg": "x"}]}, "rule 1 has unknown key(s) ['fail_msg']"),
    ({"rules": [{"that": "true", "msg": "m"}], "quiet": True}, "unknown option(s) ['quiet']"),
    ({"rules": [{"name": "n", "loop": "{{ 3 }}", "that": "true", "msg": "m"}]}, "n: loop must give a list"),
]


def test_a_malformed_rules_task_fails_with_what_is_wrong(tmp_path):
    tasks = [
        {"name": f"Check {i}", "homeport.homeport.rules": args, "ignore_errors": True}
        for i, (args, _) in enumerate(MALFORMED)
    ]
    proc = run_local_playbook(tmp_path, play(tasks), {}, env=JSON)
    results = [task["hosts"]["localhost"] for task in json.loads(proc.stdout)["plays"][0]["tasks"]]
    assert len(results) == len(MALFORMED)
    for result, (_, message) in zip(results, MALFORMED, strict=True):
        assert result.get("failed") and message in result["msg"], result


def test_an_undefined_loop_fails_only_when_the_rule_applies(tmp_path):
    """ansible-core's TaskExecutor skips a task whose loop is undefined when its `when` is false, and fails it
    otherwise; so does a rule."""
    rule = {
        "name": "each restore path",
        "when": "app_action == 'restore'",
        "loop": "{{ app_restore_paths }}",
        "that": "item is match('^/')",
        "msg": "app_restore_paths: {{ item }} must be absolute",
    }
    cases = {"no restore": {}, "restore": {"app_action": "restore"}}
    got = outcomes(tmp_path, rules_task([rule]), cases)
    assert got["no restore"] == (False, "")
    assert got["restore"][0] and "app_restore_paths" in got["restore"][1]
    want = outcomes(tmp_path, as_asserts([rule]), cases)
    assert want["no restore"] == (False, "") and want["restore"][0]
