"""Files that hold a secret never show either side of their diff (issue 27, finding 3).

`homeport drift` (--json), -v output and the run artifacts must not carry a secret that is in the host's file (the
diff's "before" side) even when the new configuration has none, or when the secret is someone else's (docker's
registry logins). Real runs through cli.execute (check + diff, -v) of the roles' own task files against files in a
temporary directory.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import typer
import yaml
from conftest import write_local_inventory

from homeport import cli, events, paths

ROOT = Path(__file__).resolve().parents[2]
OLD_HEARTBEAT = "https://hc-ping.example/8c1f7e2a-old-heartbeat-token"
OLD_FAILURE = "https://ntfy.example/old-failure-topic-5d2b"
REGISTRY_PASSWORD = "Regi5try-Pa55-77f1"


def _drift(playbook: Path, inventory: Path, capsys, extravars: dict) -> tuple[int, str]:
    code = 0
    try:
        cli.execute(str(playbook), inventory, False, check=True, diff=True, verbose=1, as_json=True,
                    extravars=extravars, report=cli.drift_report(fix=False))  # fmt: skip
    except typer.Exit as exc:
        code = exc.exit_code
    return code, capsys.readouterr().out


def _artifacts_text() -> str:
    return "\n".join(
        f.read_text(errors="replace") for f in paths.artifacts_dir().rglob("*") if f.is_file() and not f.is_symlink()
    )


def _changed_tasks(out: str) -> dict:
    doc = json.loads(out[out.index("{\n") :])
    return {t["task"]: t for role in doc["hosts"]["local"]["roles"].values() for t in role}


def test_backup_job_config_hides_the_old_heartbeat_url_when_the_new_one_is_empty(project, capsys):
    etc = project / "etc"
    etc.mkdir()
    (etc / "config.json").write_text(
        json.dumps({"heartbeat_url": OLD_HEARTBEAT, "on_failure_url": OLD_FAILURE}, indent=2) + "\n"
    )
    playbook = project / "backup-configure.yml"
    play = [
        {
            "name": "Backup configuration",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {"name": "Configure", "ansible.builtin.include_role": {"name": "backup", "tasks_from": "configure"}}
            ],
        }
    ]
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    inventory = write_local_inventory(project)
    extravars = {
        "homeport_os_family": "Debian",
        "backup_repository": str(project / "repo"),
        "backup_restic_password": "restic-pw-3e9a",
        "backup_heartbeat_url": "",  # the user removed both URLs: today's no_log followed the new, empty values
        "backup_on_failure_url": "",
        "_backup_etc_dir": str(etc),
        "_backup_state_dir": str(project / "state"),
        "_backup_script": str(project / "libexec" / "homeport-backup"),
    }
    code, out = _drift(playbook, inventory, capsys, extravars)
    assert code == events.EXIT_DRIFT, out[-3000:]
    tasks = _changed_tasks(out)
    assert tasks["Write the job configuration"]["diff"] == events.HIDDEN
    everything = out + _artifacts_text()
    for secret in (OLD_HEARTBEAT, OLD_FAILURE, "8c1f7e2a-old-heartbeat-token", "old-failure-topic-5d2b"):
        assert secret not in everything, secret


def _colima_tasks() -> list[dict]:
    """The colima role's two tasks that read and rewrite ~/.docker/config.json, as the role spells them (minus
    `become`: this test runs as the file's owner already)."""
    tasks = yaml.safe_load((ROOT / "roles" / "colima" / "tasks" / "configure.yml").read_text())
    picked = [t for t in tasks if "docker CLI configuration" in t["name"] or "cliPluginsExtraDirs" in t["name"]]
    assert len(picked) == 2, [t["name"] for t in tasks]
    return [{k: v for k, v in t.items() if k != "become"} for t in picked]


def test_docker_cli_config_with_registry_logins_never_reaches_output(project, capsys):
    home = project / "home"
    (home / ".docker").mkdir(parents=True)
    auth = base64.b64encode(f"someone:{REGISTRY_PASSWORD}".encode()).decode()
    content = json.dumps({"auths": {"registry.example:5000": {"auth": auth}}}, indent=2) + "\n"
    (home / ".docker" / "config.json").write_text(content)
    play = [{"name": "Colima docker config", "hosts": "all", "gather_facts": False, "tasks": _colima_tasks()}]
    playbook = project / "colima-docker-config.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    inventory = write_local_inventory(project)
    extravars = {
        "_colima_home": str(home),
        "colima_user": "root",
        "_colima_user_info": {"group": "root"},
        "_colima_prefix": "/opt/homebrew",
    }
    code, out = _drift(playbook, inventory, capsys, extravars)
    assert code == events.EXIT_DRIFT, out[-3000:]
    everything = out + _artifacts_text()
    for secret in (auth, REGISTRY_PASSWORD, base64.b64encode(content.encode()).decode()):
        assert secret not in everything, secret


def _tasks(items):
    for task in items or []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from _tasks(task.get(key))


def test_no_role_task_decides_no_log_from_a_value():
    """A templated no_log follows the NEW value only (the diff's "before" side is the host's file): every role task
    that sets no_log sets it to true or false, never to an expression."""
    templated = []
    for path in sorted((ROOT / "roles").glob("*/*/*.yml")):
        if path.parent.name not in {"tasks", "handlers"}:
            continue
        for task in _tasks(yaml.safe_load(path.read_text()) or []):
            if "no_log" in task and not isinstance(task["no_log"], bool):
                templated.append(f"{path.relative_to(ROOT)}: {task.get('name')}: no_log: {task['no_log']}")
    assert not templated, templated
