"""The stack role's deploy records (issue 30): each deploy's duration and result, and each container it started,
its time from start to healthy. ``homeport report`` reads them (deploys < 5 min, containers start in < 30 s).

- ``stack_deploy_record(records, inspected, started, finished, result, keep)``: ``records`` (the text of
  ``deploys.json``: a JSON list; empty, unreadable or anything else counts as none) with this deploy appended, the
  oldest dropped beyond ``keep``. ``inspected`` is the JSON text of ``docker inspect`` of the project's containers;
  a container counts as started by this deploy when its ``State.StartedAt`` is at or after ``started``; its time to
  healthy is the end of the first successful probe of its healthcheck log (``State.Health.Log``) minus its start. A
  container without a healthcheck, or whose log holds no success yet, has no time; docker keeps the last five
  probes, so when all five kept probes succeeded the first success may be older than the log: the time is then an
  upper bound and the service is listed in ``start_upper_bound``.

No Ansible import: a plain function, unit-tested in tests/unit/test_report_issue30.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re

HEALTH_LOG_KEPT = 5  # docker's maxHealthLog (daemon/health.go)


def _epoch(value):
    """Docker's RFC 3339 times with nanoseconds ("2026-12-02T01:13:10.114777232Z") or epoch seconds, as a float."""
    if isinstance(value, (int, float)):
        return float(value)
    if not value or str(value).startswith("0001-"):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value).strip()).replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def start_to_healthy(container, since):
    """(seconds from start to the first successful probe, upper bound?) of a container started at or after ``since``;
    None when it was not started by this deploy, has no healthcheck or no successful probe."""
    state = container.get("State") or {}
    started = _epoch(state.get("StartedAt"))
    if started is None or started < since:
        return None
    log = (state.get("Health") or {}).get("Log") or []
    for i, probe in enumerate(log):
        end = _epoch(probe.get("End"))
        if probe.get("ExitCode") == 0 and end is not None and end >= started:
            return round(end - started, 1), i == 0 and len(log) >= HEALTH_LOG_KEPT
    return None


def _json_list(text):
    if isinstance(text, list):
        return text
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def stack_deploy_record(records, inspected, started, finished, result, keep=100):  # noqa: PLR0917 (a Jinja filter)
    started, finished = float(started), float(finished)
    times, upper = {}, []
    for c in _json_list(inspected):
        if not isinstance(c, dict):
            continue
        labels = (c.get("Config") or {}).get("Labels") or {}
        name = labels.get("com.docker.compose.service") or str(c.get("Name", "")).lstrip("/")
        found = start_to_healthy(c, started)
        if found is None:
            continue
        seconds, bound = found
        if seconds > times.get(name, -1):
            times[name] = seconds
            if bound:
                upper.append(name)
    entry = {
        "started": dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished": dt.datetime.fromtimestamp(finished, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_seconds": round(finished - started, 1),
        "result": result,
        "start_to_healthy_seconds": dict(sorted(times.items())),
        "start_upper_bound": sorted(set(upper)),
    }
    kept = [r for r in _json_list(records) if isinstance(r, dict)]
    return [*kept, entry][-int(keep) :]


class FilterModule:
    def filters(self):
        return {"stack_deploy_record": stack_deploy_record}
