"""Filters of the `monitoring` role: blackbox probe targets from the stack, Alertmanager's configuration from
the inventory's receivers, and the validation rules (one message per broken rule, naming the variable).

Pure functions, unit-tested in tests/unit/test_monitoring_filter.py.

Receiver types and what their ``secret`` is (the value comes from the vault):

========  ==========================================  =======================================
type      required fields                             secret
========  ==========================================  =======================================
email     to, from, smarthost (host:port)             the SMTP password (auth_username = from
                                                      unless ``username`` is given)
webhook   —                                           the URL (it usually carries a token)
slack     —  (optional ``channel``)                   the incoming-webhook URL
telegram  chat_id                                     the bot token
pushover  user_key                                    the application token
ntfy      —                                           the topic URL (https://ntfy.sh/<topic>);
                                                      Alertmanager's webhook JSON is the message
========  ==========================================  =======================================

Alertmanager's receiver fields follow https://prometheus.io/docs/alerting/latest/configuration/ (email_configs,
webhook_configs, slack_configs, telegram_configs, pushover_configs; all present since Alertmanager 0.24, so in
Debian 12's 0.25 and Debian 13's 0.28).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.homeport.homeport.plugins.filter.sizes import to_bytes as _size
from ansible_collections.homeport.homeport.plugins.filter.stack import _port

RECEIVER_TYPES = {
    "email": ("to", "from", "smarthost"),
    "webhook": (),
    "slack": (),
    "telegram": ("chat_id",),
    "pushover": ("user_key",),
    "ntfy": (),
}
URL_SECRET_TYPES = {"webhook", "slack", "ntfy"}
# Prometheus' duration syntax (model.ParseDuration): units in this order, at least one, no spaces.
_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
# Prometheus' --storage.tsdb.retention.size (units.Base2Bytes: B, KB, MB, GB, TB, PB, EB).
_RETENTION_SIZE = re.compile(r"^\d+(B|KB|MB|GB|TB|PB|EB)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_duration(value) -> bool:
    """True for a Prometheus duration such as 30s, 5m, 1h30m, 15d (not 0, not '10 minutes')."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return bool(text) and _DURATION.match(text) is not None and any(ch in "123456789" for ch in text)


def duration_seconds(value) -> float:
    """'1h30m' -> 5400.0."""
    if not is_duration(value):
        raise AnsibleFilterError(f"{value!r} is not a duration")
    units = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|y|w|d|h|m|s)", str(value)))


def monitoring_probe_targets(services, bind_address="127.0.0.1"):
    """Every TCP port a stack service publishes, as blackbox targets: [{service, address, port, target}].

    Published ports bind to ``bind_address`` unless the port names its own host IP (as the stack role renders
    them); a published port bound to every interface is probed on 127.0.0.1. UDP ports cannot be probed by a TCP
    connect and are left out."""
    targets = []
    for name in sorted(services or {}):
        spec = services[name] or {}
        for entry in spec.get("ports") or []:
            port = _port(entry, bind_address, f"stack_services.{name}.ports")
            if str(port.get("protocol", "tcp")) != "tcp" or port.get("published") in (None, ""):
                continue
            published = str(port["published"]).split("-")[0]
            address = str(port.get("host_ip") or bind_address)
            if address in ("0.0.0.0", "", "::"):  # noqa: S104 (a check: a port on every interface is probed locally)
                address = "127.0.0.1"
            host = f"[{address}]" if ":" in address else address
            targets.append(
                {"service": name, "address": address, "port": int(published), "target": f"{host}:{published}"}
            )
    return targets


def monitoring_receiver_errors(receivers):
    """One message per problem in ``monitoring_receivers``; secrets are never shown, only whether they are set."""
    if receivers in (None, ""):
        return []
    if not isinstance(receivers, list):
        return [f"monitoring_receivers: must be a list of receivers, got {type(receivers).__name__}"]
    errors, seen = [], set()
    for i, rec in enumerate(receivers):
        where = f"monitoring_receivers[{i}]"
        if not isinstance(rec, dict):
            errors.append(f"{where}: must be a dict with name, type and secret, got {type(rec).__name__}")
            continue
        name = rec.get("name")
        if name:
            where = f"monitoring_receivers[{i}] ({name})"
        if not isinstance(name, str) or not _NAME.match(name):
            errors.append(f"{where}: name {name!r} must be a word of letters, digits, '_', '.' or '-'")
        elif name in seen:
            errors.append(f"{where}: name {name!r} is used twice")
        seen.add(name)
        kind = rec.get("type")
        if kind not in RECEIVER_TYPES:
            errors.append(f"{where}: type {kind!r} is unknown; use one of {', '.join(RECEIVER_TYPES)}")
            continue
        secret = rec.get("secret")
        if not isinstance(secret, str) or not secret.strip():
            errors.append(
                f"{where}: secret is {'empty' if secret in (None, '') else 'not a string'}; a {kind} receiver "
                "needs it (put the value in the vault and set secret to that vault variable)"
            )
        elif kind in URL_SECRET_TYPES and not re.match(r"^https?://[^\s/]+", secret):
            errors.append(f"{where}: secret (masked) must be the {kind} URL, starting with http:// or https://")
        for field in RECEIVER_TYPES[kind]:
            if rec.get(field) in (None, ""):
                errors.append(f"{where}: a {kind} receiver needs {field}")
        if kind == "email" and rec.get("smarthost") and not re.match(r"^[^\s:]+:\d+$", str(rec["smarthost"])):
            errors.append(f"{where}: smarthost {rec['smarthost']!r} must be host:port, e.g. smtp.example.com:587")
        if kind == "telegram" and rec.get("chat_id") not in (None, ""):
            try:
                int(rec["chat_id"])
            except (TypeError, ValueError):
                errors.append(f"{where}: chat_id {rec['chat_id']!r} must be a number")
    return errors


def _receiver_config(rec):
    kind, secret = rec["type"], rec["secret"]
    resolved = bool(rec.get("send_resolved", True))
    if kind == "email":
        return "email_configs", {
            "to": rec["to"],
            "from": rec["from"],
            "smarthost": rec["smarthost"],
            "auth_username": rec.get("username") or rec["from"],
            "auth_password": secret,
            "require_tls": bool(rec.get("require_tls", True)),
            "send_resolved": resolved,
        }
    if kind in ("webhook", "ntfy"):
        return "webhook_configs", {"url": secret, "send_resolved": resolved}
    if kind == "slack":
        out = {"api_url": secret, "send_resolved": resolved}
        if rec.get("channel"):
            out["channel"] = rec["channel"]
        return "slack_configs", out
    if kind == "telegram":
        return "telegram_configs", {"bot_token": secret, "chat_id": int(rec["chat_id"]), "send_resolved": resolved}
    return "pushover_configs", {"user_key": rec["user_key"], "token": secret, "send_resolved": resolved}


def monitoring_alertmanager_config(  # noqa: PLR0917 (a Jinja filter: positional arguments)
    receivers,
    deadmans_switch_url="",
    deadmans_switch_interval="5m",
    group_wait="30s",
    group_interval="5m",
    repeat_interval="4h",
):
    """Alertmanager's configuration: every alert goes to the receiver ``homeport`` (all configured receivers
    together), the always-firing Watchdog only to ``deadmans_switch`` (the healthchecks.io-style ping URL, every
    ``deadmans_switch_interval``), or nowhere when no URL is set."""
    errors = monitoring_receiver_errors(receivers)
    if errors:
        raise AnsibleFilterError("; ".join(errors))
    homeport = {"name": "homeport"}
    for rec in receivers or []:
        key, cfg = _receiver_config(rec)
        homeport.setdefault(key, []).append(cfg)
    deadman = {"name": "deadmans_switch"}
    if deadmans_switch_url:
        deadman["webhook_configs"] = [{"url": deadmans_switch_url, "send_resolved": False}]
    return {
        "route": {
            "receiver": "homeport",
            "group_by": ["alertname", "instance", "service"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
            "routes": [
                {
                    "receiver": "deadmans_switch",
                    "matchers": ['alertname = "Watchdog"'],
                    "group_wait": "0s",
                    "group_interval": deadmans_switch_interval,
                    "repeat_interval": deadmans_switch_interval,
                }
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['alertname = "StackServiceDown"'],
                "target_matchers": ['alertname = "StackServiceUnhealthy"'],
                "equal": ["service"],
            }
        ],
        "receivers": [homeport, deadman],
    }


def monitoring_memory_total(limits, name="monitoring_memory_limits"):
    """Sum of the monitoring processes' memory limits in bytes."""
    if not isinstance(limits, dict):
        raise AnsibleFilterError(f"{name}: must be a dict of process -> size")
    return sum(_size(v, f"{name}.{k}") for k, v in limits.items())


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _setting_error(name: str, value) -> str | None:
    """The rule a setting's name implies, and the message when its value breaks it."""
    shown = repr(value)
    if name == "monitoring_retention_size":
        if not isinstance(value, str) or not _RETENTION_SIZE.match(value):
            return f"{name}: {shown} is not a size Prometheus accepts (a whole number and B, KB, MB, GB, TB)"
    elif name.endswith(("_interval", "_for", "_time", "_timeout", "_stale")):
        if not is_duration(value):
            return f"{name}: {shown} is not a duration (use e.g. 30s, 5m, 2h, 15d)"
    elif name.endswith("_percent"):
        if not (_number(value) and 0 < value < 100):
            return f"{name}: {shown} must be a number between 0 and 100 (exclusive)"
    elif name.endswith("_port"):
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536):
            return f"{name}: {shown} must be a TCP port between 1 and 65535"
    elif name.endswith(("_hours", "_days", "_count")) and not (_number(value) and value > 0):
        return f"{name}: {shown} must be a number greater than 0"
    return None


def monitoring_setting_errors(settings):
    """One message per broken rule among the scalar settings. ``settings`` maps a variable name to its value; the
    rule comes from the name (durations, sizes, percentages, ports, hours)."""
    errors = [_setting_error(name, value) for name, value in sorted((settings or {}).items())]
    return [e for e in errors if e]


class FilterModule:
    def filters(self):
        return {
            "monitoring_probe_targets": monitoring_probe_targets,
            "monitoring_receiver_errors": monitoring_receiver_errors,
            "monitoring_alertmanager_config": monitoring_alertmanager_config,
            "monitoring_memory_total": monitoring_memory_total,
            "monitoring_setting_errors": monitoring_setting_errors,
            "monitoring_duration_seconds": duration_seconds,
        }
