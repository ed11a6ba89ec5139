"""The drift report, built from real ansible-runner events (local connection, check+diff mode).

Fixture content: a role `web` with one file that differs from the configuration, one file that matches, a
read-only check, and a command-based "service start" that would run (the service is stopped). The summary
must list exactly the differing file and the stopped service, with the file's diff, and nothing else.
"""

from __future__ import annotations

import json
import sys
from io import StringIO
from pathlib import Path

import ansible_runner
import pytest
import typer
import yaml
from rich.console import Console

from homeport import cli, drift, events

WEB_TASKS = """
- name: Write the app config
  ansible.builtin.copy:
    dest: "{{ root }}/app.conf"
    content: "listen = 8080\\nworkers = 4\\n"
    mode: "0644"

- name: Write the static config
  ansible.builtin.copy:
    dest: "{{ root }}/static.conf"
    content: "same\\n"
    mode: "0644"

- name: Check whether the app service runs (read-only)
  ansible.builtin.command: cat {{ root }}/app.pid
  register: app_pid
  changed_when: false
  failed_when: false
  check_mode: false

- name: Start the app service
  ansible.builtin.command:
    cmd: sh -c 'echo 4242 > {{ root }}/app.pid'
    creates: "{{ root }}/app.pid"
"""

SECRET_TASKS = """
- name: Write the database password file
  ansible.builtin.copy:
    dest: "{{ root }}/db-password"
    content: "{{ db_password }}\\n"
    mode: "0600"
  no_log: true

- name: Write the app environment
  ansible.builtin.copy:
    dest: "{{ root }}/app.env"
    content: |
      API_TOKEN={{ api_token }}
      DATABASE_URL=postgres://app:{{ db_password }}@db:5432/app
      LOG_LEVEL=info
    mode: "0600"

- name: Write the app settings
  ansible.builtin.copy:
    dest: "{{ root }}/settings.json"
    content: "{{ {'secret_key': signing_key, 'debug': false} | to_json }}\\n"
    mode: "0600"
"""

FAIL_TASKS = """
- name: Read a file that is not there
  ansible.builtin.command: cat {{ root }}/missing
  changed_when: false
  check_mode: false
"""

SECRETS = {"db_password": "Db-pa55-Sw0rdX", "api_token": "tok-7f3a9c1e55", "signing_key": "k3y-material-77"}


def make_content(base: Path, tasks: str) -> Path:
    """A private data dir with a playbook that applies role `web` to localhost (local connection)."""
    (base / "project" / "roles" / "web" / "tasks").mkdir(parents=True)
    (base / "project" / "roles" / "web" / "tasks" / "main.yml").write_text(tasks)
    play = [{"name": "Fixture site", "hosts": "fixture", "gather_facts": False, "roles": ["web"]}]
    (base / "project" / "site.yml").write_text(yaml.safe_dump(play))
    inventory = {
        "all": {"hosts": {"fixture": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
    }
    (base / "inventory.yml").write_text(yaml.safe_dump(inventory))
    root = base / "target"
    root.mkdir()
    return root


def run_fixture(base: Path, root: Path, *, check: bool, extravars: dict | None = None) -> events.RunRecord:
    handler = events.EventHandler(Console(file=StringIO()), json_mode=True, check=check)
    with handler:
        result = ansible_runner.run(
            private_data_dir=str(base),
            playbook="site.yml",
            inventory=str(base / "inventory.yml"),
            extravars={"root": str(root), **(extravars or {})},
            cmdline="--check --diff" if check else "--diff",
            envvars={"ANSIBLE_ROLES_PATH": str(base / "project" / "roles"), "ANSIBLE_NOCOLOR": "1"},
            event_handler=handler,
            quiet=True,
        )
    handler.record.status = result.status
    handler.record.rc = result.rc
    return handler.record


@pytest.fixture
def drifted(tmp_path: Path):
    """Host state: app.conf differs, static.conf matches, the app service is stopped (no pid file)."""
    root = make_content(tmp_path, WEB_TASKS)
    (root / "app.conf").write_text("listen = 8080\nworkers = 2\n")
    (root / "static.conf").write_text("same\n")
    (root / "static.conf").chmod(0o644)
    return tmp_path, root


def test_summary_lists_exactly_the_changed_file_and_the_stopped_service(drifted):
    base, root = drifted
    record = run_fixture(base, root, check=True)
    summary = drift.summarise(record)

    assert summary["drift"] is True
    assert summary["exit_code"] == events.EXIT_DRIFT == 2
    assert list(summary["hosts"]) == ["fixture"]
    host = summary["hosts"]["fixture"]
    assert host["changed"] == 2
    assert list(host["roles"]) == ["web"]
    tasks = host["roles"]["web"]
    assert [(t["task"], t["action"]) for t in tasks] == [
        ("Write the app config", "ansible.builtin.copy"),
        ("Start the app service", "ansible.builtin.command"),
    ]
    unified = "".join(e["unified"] for e in tasks[0]["diff"])
    assert "-workers = 2" in unified and "+workers = 4" in unified
    assert str(root / "app.conf") in unified
    assert tasks[1]["diff"] is None  # a command reports no diff
    # check mode changed nothing
    assert (root / "app.conf").read_text() == "listen = 8080\nworkers = 2\n"
    assert not (root / "app.pid").exists()

    text = render_text(summary)
    assert "fixture: 2 task(s) would change" in text
    assert "Write the app config" in text and "Start the app service" in text
    assert "Write the static config" not in text and "Check whether" not in text
    assert "+workers = 4" in text
    assert "\x1b[" not in text  # no colours when not a terminal


def test_fix_applies_then_drift_is_clean(drifted):
    base, root = drifted
    fixed = drift.summarise(run_fixture(base, root, check=False), fix=True)
    assert fixed["exit_code"] == events.EXIT_OK
    assert fixed["fix"] is True and fixed["changed_tasks"] == 2
    assert (root / "app.conf").read_text() == "listen = 8080\nworkers = 4\n"
    assert (root / "app.pid").exists()

    clean = drift.summarise(run_fixture(base, root, check=True))
    assert clean == {
        "drift": False,
        "fix": False,
        "exit_code": 0,
        "status": "successful",
        "changed_tasks": 0,
        "hosts": {"fixture": {"changed": 0, "recap": clean["hosts"]["fixture"]["recap"], "roles": {}}},
        "failures": [],
        "errors": [],
    }
    assert clean["hosts"]["fixture"]["recap"]["ok"] == 4
    assert "No drift" in render_text(clean)


def test_failure_exits_1(tmp_path: Path):
    root = make_content(tmp_path, FAIL_TASKS)
    summary = drift.summarise(run_fixture(tmp_path, root, check=True))
    assert summary["exit_code"] == events.EXIT_FAILED == 1
    assert summary["drift"] is False
    assert summary["failures"][0]["task"] == "Read a file that is not there"
    assert "missing" in summary["failures"][0]["message"]
    assert "drift check failed" in render_text(summary)


def test_secrets_are_masked_in_diffs_and_json(tmp_path: Path):
    root = make_content(tmp_path, SECRET_TASKS)
    (root / "app.env").write_text("API_TOKEN=old-token-value\nLOG_LEVEL=debug\n")
    summary = drift.summarise(run_fixture(tmp_path, root, check=True, extravars=SECRETS))
    tasks = {t["task"]: t for t in summary["hosts"]["fixture"]["roles"]["web"]}
    assert set(tasks) == {"Write the database password file", "Write the app environment", "Write the app settings"}
    assert tasks["Write the database password file"]["diff"] == events.HIDDEN

    env_diff = "".join(e["unified"] for e in tasks["Write the app environment"]["diff"])
    assert "+API_TOKEN=********" in env_diff and "-API_TOKEN=********" in env_diff
    assert "postgres://app:********@db:5432/app" in env_diff
    assert "+LOG_LEVEL=info" in env_diff  # ordinary values stay readable
    settings = "".join(e["unified"] for e in tasks["Write the app settings"]["diff"])
    assert '"secret_key": "********"' in settings

    document = drift.to_json(summary) + render_text(summary)
    for value in [*SECRETS.values(), "old-token-value"]:
        assert value not in document


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("DB_PASSWORD=hunter22", "DB_PASSWORD=********"),
        ("api_token: 'abc def'", "api_token: '********'"),
        ('{"secret_key": "s3cr3t", "debug": false}', '{"secret_key": "********", "debug": false}'),
        (
            "ExecStart=/bin/agent --auth-key=tskey-abc123 --verbose",
            "ExecStart=/bin/agent --auth-key=******** --verbose",
        ),
        ("url = https://user:pa55word@example.com/x", "url = https://user:********@example.com/x"),
        ("PubkeyAuthentication yes", "PubkeyAuthentication yes"),
        ("listen = 8080", "listen = 8080"),
    ],
)
def test_mask_text(text, masked):
    assert drift.mask_text(text) == masked


def test_mask_structured_and_known_values():
    diff = {"before": {"user": "app", "password": "x1y2z3"}, "after": {"user": "app", "password": "n3w-pass"}}
    assert drift.mask(diff) == {
        "before": {"user": "app", "password": "********"},
        "after": {"user": "app", "password": "********"},
    }
    assert (
        drift.mask_text("conn=postgres host=db pw=Sup3rSecret!", ("Sup3rSecret!",))
        == "conn=postgres host=db pw=********"
    )
    assert drift.mask_text("a b", ("a",)) == "a b"  # too short to be treated as a secret


def render_text(summary: dict) -> str:
    buf = StringIO()
    drift.render(Console(file=buf, width=200, force_terminal=False), summary)
    return buf.getvalue()


# -- the CLI verb ------------------------------------------------------------------------------------------------
def invoke_drift(monkeypatch, record: events.RunRecord, *args: str) -> tuple[int, str, dict]:
    """Run `homeport drift ARGS` with run_playbook replaced by one that returns a recorded real run."""
    seen: dict = {}

    def fake_run(opts, handler):
        seen["opts"] = opts
        return record

    monkeypatch.setattr(cli, "run_playbook", fake_run)
    monkeypatch.setattr(cli, "resolve_inventory", lambda inventory, sandbox: Path("inventory"))
    buf = StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buf, width=200, force_terminal=False))
    try:
        _call_drift(args)
    except typer.Exit as exc:
        return exc.exit_code, buf.getvalue(), seen
    return 0, buf.getvalue(), seen


def _call_drift(args: tuple[str, ...]) -> None:
    # the playbook check is `homeport drift --deep` since issue 29 (the default is the host-state check)
    cli.drift(
        inventory=None, sandbox=False, limit=None, tags=None, fix="--fix" in args, deep=True, verbose=0,
        as_json="--json" in args,
    )  # fmt: skip


def test_cli_drift_json_and_exit_code(drifted, monkeypatch, capsys):
    base, root = drifted
    record = run_fixture(base, root, check=True)
    code, _, seen = invoke_drift(monkeypatch, record, "--json")
    assert code == 2
    assert seen["opts"].playbook == "drift.yml" and seen["opts"].check and seen["opts"].diff
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 2 and doc["drift"] is True
    assert set(doc) == {"drift", "fix", "exit_code", "status", "changed_tasks", "hosts", "failures", "errors"}
    assert [t["task"] for t in doc["hosts"]["fixture"]["roles"]["web"]] == [
        "Write the app config",
        "Start the app service",
    ]


def test_cli_drift_fix_runs_for_real_and_exits_0(drifted, monkeypatch):
    base, root = drifted
    record = run_fixture(base, root, check=False)
    code, text, seen = invoke_drift(monkeypatch, record, "--fix")
    assert code == 0
    assert seen["opts"].check is False and seen["opts"].diff is True
    assert "fixture: 2 task(s) changed" in text and "Fixed: 2 task(s)" in text
