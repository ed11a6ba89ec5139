"""Real ansible-runner runs (local connection) through the same path every verb uses (cli.execute)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from conftest import PLAYBOOKS, write_local_inventory
from rich.console import Console

from homeport import cli, events, paths, runner, vault


@pytest.fixture
def out(monkeypatch: pytest.MonkeyPatch):
    """Capture what the CLI prints (a wide, non-terminal console)."""
    console = Console(record=True, width=200, force_terminal=False)
    monkeypatch.setattr(cli, "console", console)
    return console


def run(playbook: str, inventory: Path, **kwargs) -> int:
    try:
        cli.execute(str(PLAYBOOKS / playbook), inventory, False, **kwargs)
    except typer.Exit as exc:
        return exc.exit_code
    return 0


def test_failing_task_exits_1_with_plain_message(local_inventory, out):
    assert run("fail.yml", local_inventory) == events.EXIT_FAILED
    text = out.export_text()
    assert "No space left on device while writing /srv/release.tar" in text
    assert "Copy the release archive" in text
    assert '"stderr"' not in text and "{" not in text.split("Recap")[-1]  # words, not a JSON dump


@pytest.mark.parametrize(
    "bad",
    [
        {"homeport_memory_budget": "lots"},
        {"homeport_memory_budget": "900t"},
        {"homeport_roles": ["runtime", "cloud"]},
        {"homeport_os_family": "Windows"},
        {"homeport_admin_user": "no-such-user-xyz"},
    ],
    ids=["budget-not-a-size", "budget-over-ram", "unknown-role", "unknown-os", "missing-admin"],
)
def test_invalid_input_exits_3_and_changes_nothing(project, out, bad):
    marker = project / "marker"
    inventory = write_local_inventory(project, {**bad, "marker_path": str(marker)})
    assert run("preflight_marker.yml", inventory) == events.EXIT_INVALID
    assert not marker.exists()
    text = out.export_text()
    assert next(iter(bad)) in text  # the message names the variable
    assert "Nothing was changed" in text


def test_valid_input_passes_the_preflight(project, out):
    marker = project / "marker"
    # runtime on Debian = docker_engine: its read-only checks run in the preflight too
    inventory = write_local_inventory(project, {"marker_path": str(marker), "homeport_roles": ["runtime"]})
    assert run("preflight_marker.yml", inventory) == events.EXIT_OK
    assert marker.is_file()


def test_unreachable_host_exits_4(project, out):
    inventory = project / "hosts.yml"
    inventory.write_text(
        "homeport:\n  hosts:\n    gone:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n"
        "      ansible_connection: ssh\n      ansible_ssh_common_args: -o ConnectTimeout=3\n",
        encoding="utf-8",
    )
    assert run("fail.yml", inventory) == events.EXIT_UNREACHABLE
    assert "could not be reached" in out.export_text()


def _last_artifact() -> Path:
    return max(paths.artifacts_dir().iterdir(), key=lambda p: p.stat().st_mtime)


def test_environment_keeps_host_key_checking_on(local_inventory, out):
    assert run("fail.yml", local_inventory) == events.EXIT_FAILED
    env = json.loads((_last_artifact() / "command").read_text())["env"]
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert "ControlPersist=600s" in env["ANSIBLE_SSH_ARGS"]
    assert env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] == str(paths.facts_dir())
    link = paths.runner_dir() / "collections" / "ansible_collections" / "homeport" / "homeport"
    assert link.resolve() == paths.content_root()
    assert not (paths.runner_dir() / "env").exists()  # suppress_env_files: nothing stale, nothing secret


def test_artifacts_rotate(local_inventory, out, monkeypatch):
    monkeypatch.setattr(runner, "KEEP_ARTIFACTS", 2)
    for _ in range(4):
        run("fail.yml", local_inventory)
    assert len(list(paths.artifacts_dir().iterdir())) == 2


def _vaulted_inventory(project: Path, password: str, token: str) -> Path:
    inv = project / "inventory"
    (inv / "group_vars" / "homeport").mkdir(parents=True)
    write_local_inventory(inv, {"expected_token": token, "work_dir": str(project)})
    secret = vault.encrypt(f"vault_fixture_token: {token}\n", password)
    (inv / "group_vars" / "homeport" / "vault.yml").write_text(secret, encoding="utf-8")
    return inv


def test_vault_password_reaches_ansible_but_no_artifact(project, out, monkeypatch):
    password, token = "correct horse battery staple 7", "tok-3c1d9a0f2b"
    monkeypatch.setenv("HOMEPORT_VAULT_PASSWORD", password)
    inv = _vaulted_inventory(project, password, token)
    assert run("vault_check.yml", inv) == events.EXIT_OK
    for f in paths.project_dir().rglob("*"):
        if f.is_file() and not f.is_symlink():
            content = f.read_text(errors="replace")
            assert password not in content, f"vault password leaked into {f}"
            assert token not in content, f"secret leaked into {f}"
    assert password not in out.export_text() and token not in out.export_text()


def test_wrong_vault_password_fails(project, out, monkeypatch):
    inv = _vaulted_inventory(project, "the right one", "tok-x")
    monkeypatch.setenv("HOMEPORT_VAULT_PASSWORD", "the wrong one")
    assert run("vault_check.yml", inv) == events.EXIT_FAILED
    assert "the wrong one" not in out.export_text()


def test_drift_mode_exit_2_with_diffs_and_masked_secret(project, monkeypatch, capsys):
    """The drift verb's own report (cli.drift_report, the one `homeport drift` uses) on a real check+diff run."""
    password = "pw-for-drift"
    monkeypatch.setenv("HOMEPORT_VAULT_PASSWORD", password)
    inv = _vaulted_inventory(project, password, "tok-drift-5e")
    code = run("changes.yml", inv, check=True, diff=True, as_json=True, report=cli.drift_report(fix=False))
    assert code == events.EXIT_DRIFT
    result = json.loads(capsys.readouterr().out)
    assert result["exit_code"] == 2 and result["drift"] is True and result["fix"] is False
    assert result["hosts"]["local"]["recap"]["changed"] == 2
    changes = {c["task"]: c for c in result["hosts"]["local"]["roles"][""]}
    settings = changes["Write the settings file"]
    assert any("answer = 42" in d.get("after", "") for d in settings["diff"])
    assert changes["Write the token file"]["diff"] == events.HIDDEN
    assert "tok-drift-5e" not in json.dumps(result)
    assert not [f for f in paths.artifacts_dir().rglob("*") if f.is_file() and "tok-drift-5e" in f.read_text()]
    assert not (project / "settings.conf").exists()  # check mode changed nothing


def test_no_drift_exit_0_after_apply(project, monkeypatch, out):
    password = "pw-apply"
    monkeypatch.setenv("HOMEPORT_VAULT_PASSWORD", password)
    inv = _vaulted_inventory(project, password, "tok-apply")
    assert run("changes.yml", inv) == events.EXIT_OK
    assert (project / "settings.conf").read_text() == "answer = 42\n"
    assert run("changes.yml", inv, check=True, diff=True, report=cli.drift_report(fix=False)) == events.EXIT_OK
    assert "No drift" in out.export_text()


def test_mitogen_is_on_by_default_and_can_be_turned_off(monkeypatch):
    from homeport import runner as runner_mod

    monkeypatch.delenv("HOMEPORT_MITOGEN", raising=False)
    env = runner_mod.mitogen_env()
    assert env["ANSIBLE_STRATEGY"] == "homeport_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "homeport_linear.py").is_file()
    monkeypatch.setenv("HOMEPORT_MITOGEN", "0")
    assert runner_mod.mitogen_env() == {}
    assert "ANSIBLE_STRATEGY" not in runner_mod.build_env(Path("/tmp/homeport-test-private"))


def test_runs_the_ansible_playbook_beside_homeport_even_when_path_lacks_it(local_inventory, out, monkeypatch):
    """A pipx/venv install does not put ansible-playbook on PATH: homeport still finds its own."""
    import sys

    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env = runner.build_env(Path("/tmp/homeport-test-private"))
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert run("fail.yml", local_inventory) == events.EXIT_FAILED
    assert "No space left on device" in out.export_text()


def test_an_ansible_playbook_that_cannot_start_is_reported_not_silent(local_inventory, out, monkeypatch, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "ansible-playbook"
    monkeypatch.setattr(runner, "search_path", lambda: f"{fake}:/usr/bin:/bin")
    script.write_text("#!/bin/sh\necho 'ERROR! the playbook could not be read' >&2\nexit 5\n")
    script.chmod(0o755)
    assert run("fail.yml", local_inventory) == events.EXIT_FAILED
    assert "the playbook could not be read" in out.export_text()
    script.write_text("#!/bin/sh\nkill -9 $$\n")  # dies without a word
    assert run("fail.yml", local_inventory) == events.EXIT_FAILED
    assert "before running anything" in out.export_text()
