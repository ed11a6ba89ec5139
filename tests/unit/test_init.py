"""`homeport init`: inventory files, encrypted vault with fresh secrets, nothing secret printed, no overwrite."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from homeport import inventory, paths, vault
from homeport.cli import app
from homeport.roledocs import role_options

PASSWORD = "init-test-password-9f27"


def _init(directory: Path, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "init",
            "--host",
            "mini.tail1234.ts.net",
            "--user",
            "admin",
            "--dir",
            str(directory),
            "--non-interactive",
            *extra,
        ],
    )


@pytest.fixture
def vault_env(project, monkeypatch):
    monkeypatch.setenv("HOMEPORT_VAULT_PASSWORD", PASSWORD)
    return project


def _vault_doc(directory: Path) -> dict:
    text = (directory / "inventory" / "group_vars" / "homeport" / "vault.yml").read_text()
    assert text.startswith("$ANSIBLE_VAULT;1.1;AES256")
    return yaml.safe_load(vault.decrypt(text, PASSWORD))


def test_init_twice_gives_different_secrets_and_prints_none(vault_env, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    r1, r2 = _init(one), _init(two)
    assert r1.exit_code == 0, r1.output
    assert r2.exit_code == 0, r2.output
    v1, v2 = _vault_doc(one), _vault_doc(two)
    generated = list(inventory.GENERATED_SECRETS.values())
    for name in generated:
        assert len(v1[name]) >= 40, name
        assert v1[name] != v2[name], name
    assert v1["vault_tailscale_authkey"] == "" and v1["vault_backup_s3_secret_access_key"] == ""
    for secret in [PASSWORD, *(v1[n] for n in generated), *(v2[n] for n in generated)]:
        assert secret not in r1.output + r2.output
    mode = stat.S_IMODE((one / "inventory" / "group_vars" / "homeport" / "vault.yml").stat().st_mode)
    assert mode == 0o600


def test_init_writes_hosts_and_mappings(vault_env, tmp_path):
    assert _init(tmp_path).exit_code == 0
    hosts = yaml.safe_load((tmp_path / "inventory" / "hosts.yml").read_text())
    host = hosts["homeport"]["hosts"]["mini"]
    assert host == {"ansible_host": "mini.tail1234.ts.net", "ansible_user": "admin"}
    main = (tmp_path / "inventory" / "group_vars" / "homeport" / "main.yml").read_text()
    active = yaml.safe_load(main)
    assert active == {role_var: f"{{{{ {vault_var} }}}}" for role_var, vault_var in inventory.SECRETS.items()}
    # every tunable of every role is listed (commented out) with its default, generated from argument_specs
    for role_dir in (paths.content_root() / "roles").iterdir():
        for name in role_options(role_dir):
            if name not in inventory.SECRETS:
                assert f"\n# {name}:" in main, f"{name} missing from main.yml"
    assert "# homeport_memory_budget: 14g" in main


def test_init_refuses_overwrite_without_force(vault_env, tmp_path):
    assert _init(tmp_path).exit_code == 0
    before = _vault_doc(tmp_path)
    again = _init(tmp_path)
    assert again.exit_code == 3
    assert "--force" in again.output
    assert _vault_doc(tmp_path) == before
    forced = _init(tmp_path, "--force")
    assert forced.exit_code == 0
    assert _vault_doc(tmp_path) != before


def test_init_generates_and_stores_password_when_none_given(project, tmp_path):
    r = _init(tmp_path)
    assert r.exit_code == 0, r.output
    stored = vault.password_file()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    password = stored.read_text().strip()
    assert len(password) >= 40 and password not in r.output
    text = (tmp_path / "inventory" / "group_vars" / "homeport" / "vault.yml").read_text()
    assert yaml.safe_load(vault.decrypt(text, password))["vault_stack_api_token"]


@pytest.mark.parametrize("args", [["--host", "bad host!", "--user", "admin"], ["--host", "mini", "--user", "a b"]])
def test_init_rejects_bad_input(project, tmp_path, args):
    r = CliRunner().invoke(app, ["init", *args, "--dir", str(tmp_path), "--non-interactive"])
    assert r.exit_code == 3
    assert not (tmp_path / "inventory").exists()
