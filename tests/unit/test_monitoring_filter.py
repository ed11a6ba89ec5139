"""The monitoring role's pure parts (plugins/filter/monitoring.py): probe targets from stack_services, the
validation rules (one message per broken rule, naming the variable, never a secret), Alertmanager's configuration
from the receivers (checked by the real `amtool check-config` when it is installed)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import need_tool

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))
_spec = importlib.util.spec_from_file_location("monitoring_filter", ROOT / "plugins" / "filter" / "monitoring.py")
mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mf)

SECRET = "tok-Secret-9f3e"


# --------------------------------------------------------------------------------------------- probe targets
def test_probe_targets_from_published_ports():
    services = {
        "db": {"ports": ["15432:5432"]},
        "api": {"ports": ["18080:8080", "9999:53/udp"]},
        "worker": {},
        "admin": {"ports": ["100.64.0.7:8443:443", {"target": 80, "published": "8081"}]},
        "open": {"ports": ["0.0.0.0:7000:7000"]},
    }
    targets = mf.monitoring_probe_targets(services, "127.0.0.1")
    assert [(t["service"], t["target"]) for t in targets] == [
        ("admin", "100.64.0.7:8443"),
        ("admin", "127.0.0.1:8081"),
        ("api", "127.0.0.1:18080"),
        ("db", "127.0.0.1:15432"),
        ("open", "127.0.0.1:7000"),
    ]


def test_probe_targets_follow_the_bind_address_and_bracket_ipv6():
    targets = mf.monitoring_probe_targets({"api": {"ports": ["8080:80"]}}, "fd7a:115c:a1e0::1")
    assert targets[0]["target"] == "[fd7a:115c:a1e0::1]:8080"
    assert mf.monitoring_probe_targets({"api": {"ports": ["8080:80"]}}, "100.64.0.9")[0]["target"] == "100.64.0.9:8080"


# --------------------------------------------------------------------------------------------- durations, settings
@pytest.mark.parametrize("value", ["30s", "5m", "1h30m", "15d", "2w", "1y", "500ms"])
def test_durations_accepted(value):
    assert mf.is_duration(value)


@pytest.mark.parametrize("value", ["", "0s", "10 minutes", "5", 5, "1.5h", "m5", True, None, "30d "])
def test_durations_refused(value):
    assert not mf.is_duration(value)


def test_duration_seconds():
    assert mf.duration_seconds("1h30m") == 5400
    assert mf.duration_seconds("2d") == 172800


def test_setting_errors_name_variable_value_and_rule():
    errors = mf.monitoring_setting_errors(
        {
            "monitoring_retention_time": "30 days",
            "monitoring_retention_size": "1g",
            "monitoring_alert_disk_used_percent": 150,
            "monitoring_alert_memory_budget_percent": 0,
            "monitoring_alert_backup_max_age_hours": -1,
            "monitoring_prometheus_port": 70000,
            "monitoring_scrape_interval": "30s",
        }
    )
    assert errors == [
        "monitoring_alert_backup_max_age_hours: -1 must be a number greater than 0",
        "monitoring_alert_disk_used_percent: 150 must be a number between 0 and 100 (exclusive)",
        "monitoring_alert_memory_budget_percent: 0 must be a number between 0 and 100 (exclusive)",
        "monitoring_prometheus_port: 70000 must be a TCP port between 1 and 65535",
        "monitoring_retention_size: '1g' is not a size Prometheus accepts (a whole number and B, KB, MB, GB, TB)",
        "monitoring_retention_time: '30 days' is not a duration (use e.g. 30s, 5m, 2h, 15d)",
    ]


def test_role_defaults_pass_the_rules():
    defaults = yaml.safe_load((ROOT / "roles" / "monitoring" / "defaults" / "main.yml").read_text())
    scalars = {k: v for k, v in defaults.items() if not isinstance(v, dict | list | bool) and "{{" not in str(v)}
    assert len(scalars) > 15
    assert mf.monitoring_setting_errors(scalars) == []
    assert mf.monitoring_memory_total(defaults["monitoring_memory_limits"]) <= 300 * 1024**2


# --------------------------------------------------------------------------------------------- receivers
def test_receiver_errors_unknown_type_and_missing_secret_without_showing_secrets():
    errors = mf.monitoring_receiver_errors(
        [
            {"name": "pager", "type": "pagerduty", "secret": SECRET},
            {"name": "chat", "type": "slack", "secret": ""},
            {"name": "tg", "type": "telegram", "secret": SECRET},
            {"name": "mail", "type": "email", "secret": SECRET, "to": "a@b.c", "from": "h@b.c", "smarthost": "smtp"},
            {"name": "hook", "type": "webhook", "secret": f"ftp://{SECRET}"},
            {"name": "hook", "type": "ntfy", "secret": "https://ntfy.sh/topic"},
        ]
    )
    assert errors == [
        "monitoring_receivers[0] (pager): type 'pagerduty' is unknown; use one of email, webhook, slack, telegram, "
        "pushover, ntfy",
        "monitoring_receivers[1] (chat): secret is empty; a slack receiver needs it (put the value in the vault and "
        "set secret to that vault variable)",
        "monitoring_receivers[2] (tg): a telegram receiver needs chat_id",
        "monitoring_receivers[3] (mail): smarthost 'smtp' must be host:port, e.g. smtp.example.com:587",
        "monitoring_receivers[4] (hook): secret (masked) must be the webhook URL, starting with http:// or https://",
        "monitoring_receivers[5] (hook): name 'hook' is used twice",
    ]
    assert not any(SECRET in e for e in errors)


def test_receivers_must_be_a_list_of_dicts():
    assert mf.monitoring_receiver_errors({"type": "webhook"}) == [
        "monitoring_receivers: must be a list of receivers, got dict"
    ]
    assert mf.monitoring_receiver_errors(["x"])[0].startswith("monitoring_receivers[0]: must be a dict")
    assert mf.monitoring_receiver_errors([]) == []


RECEIVERS = [
    {
        "name": "mail",
        "type": "email",
        "to": "me@example.org",
        "from": "mini@example.org",
        "smarthost": "smtp.example.org:587",
        "secret": "smtp-pass",
    },
    {"name": "hook", "type": "webhook", "secret": "https://example.org/hook/abc"},
    {"name": "chat", "type": "slack", "secret": "https://hooks.slack.com/services/T/B/X", "channel": "#ops"},
    {"name": "tg", "type": "telegram", "chat_id": "-100123", "secret": "123:bot-token"},
    {"name": "push", "type": "pushover", "user_key": "ukey", "secret": "app-token"},
    {"name": "phone", "type": "ntfy", "secret": "https://ntfy.sh/homeport-xyz"},
]


def test_alertmanager_config_routes_everything_to_the_receivers_and_the_watchdog_to_the_switch():
    cfg = mf.monitoring_alertmanager_config(RECEIVERS, "https://hc-ping.com/uuid", "5m", "30s", "5m", "4h")
    receivers = {r["name"]: r for r in cfg["receivers"]}
    assert set(receivers) == {"homeport", "deadmans_switch"}
    hp = receivers["homeport"]
    assert hp["email_configs"][0]["auth_password"] == "smtp-pass"
    assert hp["email_configs"][0]["auth_username"] == "mini@example.org"
    assert [c["url"] for c in hp["webhook_configs"]] == ["https://example.org/hook/abc", "https://ntfy.sh/homeport-xyz"]
    assert hp["slack_configs"] == [
        {"api_url": "https://hooks.slack.com/services/T/B/X", "channel": "#ops", "send_resolved": True}
    ]
    assert hp["telegram_configs"][0]["chat_id"] == -100123
    assert hp["pushover_configs"][0] == {"user_key": "ukey", "token": "app-token", "send_resolved": True}
    assert receivers["deadmans_switch"]["webhook_configs"] == [
        {"url": "https://hc-ping.com/uuid", "send_resolved": False}
    ]
    watchdog = cfg["route"]["routes"][0]
    assert watchdog["matchers"] == ['alertname = "Watchdog"'] and watchdog["repeat_interval"] == "5m"
    assert cfg["route"]["receiver"] == "homeport"


def test_alertmanager_config_refuses_bad_receivers():
    with pytest.raises(mf.AnsibleFilterError, match="unknown"):
        mf.monitoring_alertmanager_config([{"name": "x", "type": "sms", "secret": "s"}])


def test_alertmanager_config_without_receivers_or_switch_is_valid():
    cfg = mf.monitoring_alertmanager_config([], "")
    assert cfg["receivers"] == [{"name": "homeport"}, {"name": "deadmans_switch"}]


@pytest.mark.parametrize("receivers", [RECEIVERS, []], ids=["all-types", "none"])
def test_amtool_accepts_the_rendered_config(tmp_path, receivers):
    amtool = need_tool("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(mf.monitoring_alertmanager_config(receivers, "https://hc-ping.com/u", "5m")))
    proc = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_memory_total():
    assert mf.monitoring_memory_total({"a": "64m", "b": "32m"}) == 96 * 1024**2
    with pytest.raises(mf.AnsibleFilterError, match=r"monitoring_memory_limits\.b"):
        mf.monitoring_memory_total({"a": "64m", "b": "lots"})
