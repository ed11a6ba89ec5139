"""The monitoring role's rules in the preflight (issue 16 with issue 14's preflight): each bad value is refused with
exit 3 and a message naming the variable, before anything changes (the marker the play would write afterwards does
not exist), and a receiver's secret never reaches the output. One real ansible-runner run through cli.execute with
a local connection, one inventory host per rule."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import PLAYBOOKS, run_cli, write_hosts_inventory

from homeport import events

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hook-Secret-7c2d91"
BASE = {"homeport_roles": ["monitoring"]}

RULES = [
    (
        "receiver-type",
        {"monitoring_receivers": [{"name": "pager", "type": "pagerduty", "secret": SECRET}]},
        "monitoring_receivers[0] (pager): type 'pagerduty' is unknown; use one of email, webhook, slack, telegram, "
        "pushover, ntfy",
    ),
    (
        "receiver-secret",
        {"monitoring_receivers": [{"name": "chat", "type": "slack"}]},
        "monitoring_receivers[0] (chat): secret is empty; a slack receiver needs it",
    ),
    (
        "receiver-url",
        {"monitoring_receivers": [{"name": "hook", "type": "webhook", "secret": SECRET}]},
        "monitoring_receivers[0] (hook): secret (masked) must be the webhook URL",
    ),
    (
        "retention-time",
        {"monitoring_retention_time": "30 days"},
        "monitoring_retention_time: '30 days' is not a duration (use e.g. 30s, 5m, 2h, 15d)",
    ),
    (
        "retention-size",
        {"monitoring_retention_size": "1g"},
        "monitoring_retention_size: '1g' is not a size Prometheus accepts",
    ),
    (
        "disk-threshold",
        {"monitoring_alert_disk_used_percent": 150},
        "monitoring_alert_disk_used_percent: 150 must be a number between 0 and 100 (exclusive)",
    ),
    (
        "backup-age",
        {"monitoring_alert_backup_max_age_hours": 0},
        "monitoring_alert_backup_max_age_hours: 0 must be a number greater than 0",
    ),
    (
        "colima-pressure",
        {"monitoring_alert_colima_memory_pressure_percent": 0},
        "monitoring_alert_colima_memory_pressure_percent: 0 must be a number between 0 and 100 (exclusive)",
    ),
    (
        "drift-check-age",
        {"monitoring_alert_drift_check_max_age_days": -1},
        "monitoring_alert_drift_check_max_age_days: -1 must be a number greater than 0",
    ),
    (
        "probe-timeout",
        {"monitoring_probe_timeout": "1m", "monitoring_scrape_interval": "30s"},
        "monitoring_probe_timeout: 1m must be shorter than monitoring_scrape_interval (30s)",
    ),
    (
        "public-listen",
        {"monitoring_listen_address": "0.0.0.0"},
        "monitoring_listen_address: 0.0.0.0 listens on every interface",
    ),
    (
        "switch-url",
        {"monitoring_deadmans_switch_url": SECRET},
        "monitoring_deadmans_switch_url: (masked) must be an http:// or https:// ping URL, or empty",
    ),
]


def _inventory(project: Path, hosts: dict[str, dict]) -> Path:
    return write_hosts_inventory(project, hosts)


def _run(playbook: str, inventory: Path) -> int:
    return run_cli(PLAYBOOKS / playbook, inventory)


def test_every_monitoring_rule_refuses_before_any_change(project, out):
    hosts = {name: {**BASE, **broken, "marker_path": str(project / f"marker-{name}")} for name, broken, _ in RULES}
    code = _run("preflight_roles_marker.yml", _inventory(project, hosts))
    text = out.export_text()
    assert code == events.EXIT_INVALID, text
    for name, _broken, message in RULES:
        assert not (project / f"marker-{name}").exists(), f"{name}: the play went past the preflight"
        block = text.split(f"{name}: ", 1)[-1]
        assert message in " ".join(block.split()), f"{name}: expected {message!r} in\n{text}"
    assert SECRET not in text, "a receiver's secret reached the output"


def test_the_defaults_pass(project, out):
    hosts = {"ok": {**BASE, "marker_path": str(project / "marker-ok")}}
    assert _run("preflight_roles_marker.yml", _inventory(project, hosts)) == events.EXIT_OK, out.export_text()
    assert (project / "marker-ok").exists()


def test_monitoring_limits_count_in_the_memory_budget(project, out):
    """The stack's declared limits (768 MiB in tests/stack) plus monitoring's 296 MiB exceed a 1 GiB budget."""
    stack = {
        **yaml.safe_load((ROOT / "tests" / "stack" / "vars.yml").read_text()),
        "stack_source_dirs": [{"name": "api", "src": str(ROOT / "tests" / "stack" / "api")}],
    }
    hosts = {
        "without": {
            **stack,
            "homeport_roles": ["stack"],
            "homeport_memory_budget": "1g",
            "marker_path": str(project / "marker-without"),
        },
        "with": {
            **stack,
            "homeport_roles": ["stack", "monitoring"],
            "homeport_memory_budget": "1g",
            "marker_path": str(project / "marker-with"),
        },
    }
    code = _run("preflight_roles_marker.yml", _inventory(project, hosts))
    text = " ".join(out.export_text().split())
    assert code == events.EXIT_INVALID, text
    assert (project / "marker-without").exists()  # the stack alone fits: the refusal is monitoring's share
    assert not (project / "marker-with").exists()
    assert "homeport_memory_budget: 1.0 GiB is less than the memory limits of the stack" in text
    assert "(over by 40 MiB)" in text and "monitoring_memory_limits.prometheus=160 MiB" in text
