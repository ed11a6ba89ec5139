"""The plan's targets, measured (issue 30): the raw figures gathered on the host, one row per target, and the
phone-sized page of the rows - shared by ``homeport report`` on the laptop (src/homeport/report.py), the status
module on the host (plugins/modules/homeport_status.py: :func:`gather_raw`) and the status page the host regenerates
every minute (roles/proxy/files/homeport-status-page, which runs without Ansible: this file is installed next to it).

Gathering (:func:`gather_raw`): Prometheus' hourly probe counts per service, the stack's memory samples, the backup
age series, the containers' restarts by the engine, the stack's deploy records, the backup role's status.json and
homeport's record of manual interventions (<state_dir>/interventions.json, :func:`append_intervention`) over the last
N days.

The rows (pure: :func:`rows`): ``id``, ``name``, ``value`` (a number or None), ``measured`` (text), ``target`` (text),
``verdict`` (``met``, ``not met``, ``not enough data`` or ``not measured``), ``days_of_data``, ``data`` (the same in
words, or when the figure was measured), ``source``, ``detail``, ``series`` (``[[epoch, value], ...]``, one point per
day, for the charts) and, for a charted target, ``limit``.

Verdicts: an aggregate over the window (availability, p95 memory) needs data covering the window asked for (less
one hour) and is ``not enough data`` before; a breach that more data cannot undo is ``not met`` as soon as it is
seen, whatever the coverage: a memory peak, a deploy or a start over its limit, more down time than the whole
window's error budget allows.

The page (:func:`to_html`): inline CSS and SVG, no script, no font, no external reference; every text from the host
is escaped.

Stdlib only and Python 3.9 compatible (runs on the managed host, macOS' system Python too).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

UTC = dt.timezone.utc  # noqa: UP017 - macOS ships Python 3.9 (no datetime.UTC)

MET, NOT_MET, NO_DATA, NOT_MEASURED = "met", "not met", "not enough data", "not measured"
DAY = 86400.0
HOUR = 3600.0
MIB = 1024 * 1024
GIB = 1024 * MIB
# one hour of the window may be missing (the current, partial hour of the query's range)
COVERAGE_SLACK_DAYS = 1 / 24

# the plan's values (seed 001); the roles' defaults are the same and are what the play passes
DEFAULT_THRESHOLDS: dict[str, float] = {
    "availability_percent": 99.9,  # monitoring_report_availability_percent
    "latency_ms": 100,  # monitoring_report_latency_ms
    "memory_peak_mib": 14 * 1024,  # monitoring_report_memory_peak (14g)
    "memory_sustained_mib": 12 * 1024,  # monitoring_report_memory_sustained (12g)
    "memory_percentile": 95,  # monitoring_report_memory_percentile
    "deploy_max_seconds": 300,  # stack_report_deploy_max_seconds
    "start_max_seconds": 30,  # stack_report_start_max_seconds
    "backup_max_age_hours": 26,  # backup_report_max_age_hours
    "drill_max_age_days": 8,  # backup_report_drill_max_age_days
    "price_per_gb_month": 0.006,  # backup_report_price_per_gb_month (Backblaze B2: $6/TB/month)
    "max_cost_month": 5.0,  # backup_report_max_cost_month
    "unattended_days": 7,  # the plan: 7 days of unattended operation
    "interventions_per_week": 1,  # the plan: fewer than 1 manual intervention a week
}


# ------------------------------------------------------------------------------------------- gathering on the host
def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - the host's own Prometheus (http)
        return json.load(r)


# the blackbox probes homeport's alerts and availability figures count: the stack's ports, SSH, the HTTP probes
PROBES = 'job=~"stack|ssh|http"'
MAX_POINTS = 10000  # below Prometheus' 11000 points per series of a range query


def report_prometheus(prom: str, days: float, now: float, fetch: Callable[[str], Any] = http_json) -> dict | None:
    """The raw Prometheus figures of the report over ``days``: per probed service and hour the successful and all
    probes (sum_over_time / count_over_time of probe_success), the stack's memory (the sum over its containers) at a
    step that keeps the range under MAX_POINTS, its peak at the collector's resolution, the backup age each hour and
    the probes' p95 duration. Values as numbers; the arithmetic is :func:`rows`'."""
    if not prom:
        return None
    out: dict[str, Any] = {"error": None, "availability_hourly": {}, "memory": [], "backup_age": []}
    start, window = now - days * 86400, f"{int(days)}d"

    def series(expr, step):
        query = {"query": expr, "start": f"{start + step:.3f}", "end": f"{now:.3f}", "step": f"{step}s"}
        rows = fetch(prom + "/api/v1/query_range?" + urllib.parse.urlencode(query))["data"]["result"]
        return [(r.get("metric") or {}, [[float(t), float(v)] for t, v in r.get("values") or []]) for r in rows]

    def scalar(expr):
        rows = fetch(prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{now:.3f}"}))
        rows = rows["data"]["result"]
        return float(rows[0]["value"][1]) if rows else None

    try:
        counts: dict[str, dict] = {}
        for key, fn in (("ok", "sum_over_time"), ("all", "count_over_time")):
            for metric, values in series(f"sum by (service) ({fn}(probe_success{{{PROBES}}}[1h]))", 3600):
                per = counts.setdefault(metric.get("service", "?"), {})
                for t, v in values:
                    per.setdefault(t, {})[key] = v
        for service, per in counts.items():
            out["availability_hourly"][service] = [
                [t, c.get("ok", 0.0), c["all"]] for t, c in sorted(per.items()) if c.get("all")
            ]
        step = max(60, -(-int(days * 86400) // MAX_POINTS))
        out["memory_step_seconds"] = step
        for _, values in series("sum(homeport_container_memory_usage_bytes)", step):
            out["memory"] = values
        out["memory_peak_bytes"] = scalar(f"max_over_time(sum(homeport_container_memory_usage_bytes)[{window}:1m])")
        for _, values in series("time() - max(homeport_backup_last_success_timestamp_seconds)", 3600):
            out["backup_age"] = values
        p95 = scalar(f"max(quantile_over_time(0.95, probe_duration_seconds{{{PROBES}}}[{window}]))")
        out["probe_latency_p95_ms"] = round(1000 * p95, 1) if p95 is not None else None
        # the host's own recoveries (not interventions): restarts by the engine's restart policy
        out["engine_restarts"] = scalar(f"sum(increase(homeport_container_restarts_total[{window}]))")
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        out["error"] = f"Prometheus at {prom}: {exc}"
    return out


def read_json(path: str, default: Any) -> Any:
    """A JSON file of homeport's records; ``default`` when it does not exist, {"error"} when unreadable."""
    if not path:
        return default
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        return {"error": f"{path} is unreadable: {exc}"}


def gather_raw(
    prom: str,
    days: float,
    state_dir: str,
    deploy_records: str,
    *,
    fetch: Callable[[str], Any] = http_json,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The raw document of the report: Prometheus' figures, the deploy records, the backup status."""
    at = now()
    deploys = read_json(deploy_records, [])
    backup = read_json(os.path.join(state_dir, "backup", "status.json"), None)
    return {
        "interventions": read_json(os.path.join(state_dir, INTERVENTIONS_FILE), None),
        "now": at,
        "days": days,
        "prometheus": report_prometheus(prom, days, at, fetch),
        "deploys": deploys if isinstance(deploys, list) else [],
        "deploys_error": deploys.get("error") if isinstance(deploys, dict) else None,
        "backup": backup,
    }


# ---------------------------------------------------------------------------------------------------- arithmetic
def percentile(values: Iterable[float], p: float) -> float | None:
    """The nearest-rank percentile (the smallest value with at least p % of the values at or below it)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _day_index(t: float, start: float) -> int:
    return int((t - start) // DAY)


def _parse_time(value: Any) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    # Python 3.9's fromisoformat takes neither "Z" nor more than 6 digits of a second (docker's are 9)
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value).replace("Z", "+00:00"))
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def availability(hourly: dict[str, list], start: float, end: float) -> dict[str, Any]:
    """From Prometheus' hourly ``[t, successes, samples]`` of each probed service (``sum_over_time`` and
    ``count_over_time`` of ``probe_success`` over each hour): each service's share of successful probes in the
    window, the worst service, the hours that hold samples (as days of data) and the worst service per day."""
    per_service: dict[str, float] = {}
    hours: set[int] = set()
    daily: dict[int, dict[str, list[float]]] = {}
    for service, points in sorted((hourly or {}).items()):
        ok = total = 0.0
        for point in points:
            t, successes, samples = (float(x) for x in point)
            if samples <= 0 or not start <= t <= end:
                continue
            ok += successes
            total += samples
            hours.add(int(t // HOUR))
            day = daily.setdefault(_day_index(t, start), {}).setdefault(service, [0.0, 0.0])
            day[0] += successes
            day[1] += samples
        if total:
            per_service[service] = 100 * ok / total
    series = [
        [start + i * DAY, min(100 * ok / n for ok, n in services.values())] for i, services in sorted(daily.items())
    ]
    worst = min(per_service.items(), key=lambda kv: (kv[1], kv[0])) if per_service else None
    return {"per_service": per_service, "worst": worst, "days": len(hours) / 24, "series": series}


def memory(samples: list, step: float, start: float, end: float, p: float) -> dict[str, Any]:
    """From ``[t, bytes]`` samples of the stack's memory (one per ``step`` seconds): peak, p-th percentile (the
    sustained figure), days of data (samples x step) and the peak per day, in MiB."""
    values = [(float(t), float(v) / MIB) for t, v in samples or [] if start <= float(t) <= end]
    daily: dict[int, float] = {}
    for t, v in values:
        i = _day_index(t, start)
        daily[i] = max(daily.get(i, 0.0), v)
    return {
        "peak": max((v for _, v in values), default=None),
        "sustained": percentile((v for _, v in values), p),
        "days": min(len(values) * step, end - start) / DAY,
        "series": [[start + i * DAY, v] for i, v in sorted(daily.items())],
    }


def _daily_max(points: list, start: float, end: float) -> list:
    daily: dict[int, float] = {}
    for point in points or []:
        t, v = float(point[0]), float(point[1])
        if start <= t <= end:
            daily[_day_index(t, start)] = max(daily.get(_day_index(t, start), v), v)
    return [[start + i * DAY, v] for i, v in sorted(daily.items())]


# ------------------------------------------------------------------------------------- the interventions record
# issue 30: every homeport run that changed a host by a human's verb (bootstrap, drift --fix, rollback, backup restore)
# is one manual intervention, appended on the host by the CLI after the run's recap (src/homeport/interventions.py
# sends this file with ``record-intervention``); a deploy is intended change, recorded in deploys.json instead, and
# the host's own recoveries (restarts by the engine) come from Prometheus.
INTERVENTIONS_FILE = "interventions.json"
INTERVENTIONS_KEEP = 200  # the last entries kept: years at the plan's < 1 a week
INTERVENTION_VERBS = ("bootstrap", "drift --fix", "rollback", "backup restore")


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def append_intervention(
    state_dir: str, entry: dict[str, Any], keep: int = INTERVENTIONS_KEEP, now: Callable[[], float] = time.time
) -> dict[str, Any]:
    """Append one run to ``<state_dir>/interventions.json`` and return the record: ``{"since": when the record
    began, "interventions": [{"time", "verb", "changed", "by", "result"[, "setup"]}, ...]}`` (the last ``keep``).
    The time is this host's clock (the one of the report's ``now``). The run that begins the record, when it is a
    bootstrap, is the host's setup (``"setup": true``): the start of its unattended operation, not a repair. Under an
    exclusive lock, written atomically (mode 0644: times, verbs and user@machine, no secret). A record that does not
    parse is started afresh (its history is lost; the rows then count from the new start). ValueError for an entry
    that is not one of the verbs' runs."""
    import fcntl  # noqa: PLC0415 - Unix only, like the hosts; the page and the report never write

    verb, changed = entry.get("verb"), entry.get("changed")
    if verb not in INTERVENTION_VERBS:
        raise ValueError(f"verb {verb!r}: not one of {', '.join(INTERVENTION_VERBS)}")
    if not isinstance(changed, int) or isinstance(changed, bool) or changed < 1:
        raise ValueError(f"changed {changed!r}: a run that changed nothing is not an intervention")
    item = {
        "time": _iso(now()),
        "verb": verb,
        "changed": changed,
        "by": str(entry.get("by") or "unknown")[:100],
        "result": "ok" if entry.get("result", "ok") == "ok" else "failed",
    }
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    path = os.path.join(state_dir, INTERVENTIONS_FILE)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = read_json(path, None)
        if not isinstance(doc, dict) or not isinstance(doc.get("interventions"), list) or "since" not in doc:
            doc = {"since": item["time"], "interventions": []}
            if verb == "bootstrap":
                item["setup"] = True
        doc["interventions"] = (doc["interventions"] + [item])[-max(1, int(keep)) :]
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return doc


def _intervention_rows(doc: Any, th: dict, now: float, window: float, restarts: Any) -> list[dict[str, Any]]:
    """The rows "Unattended operation" (the longest stretch without an intervention in the window, and the current
    one) and "Manual interventions" (their number against the window's allowance: ``interventions_per_week`` x
    window / 7) from the record of :func:`append_intervention`. The record's days of data run from its start (the
    window's start when older); before a host has a record both rows are ``not enough data``."""
    src = f"homeport's record of its runs that changed the host ({INTERVENTIONS_FILE})"
    unattended_t = f">= {th['unattended_days']:g} days"
    per_week = th["interventions_per_week"]
    interventions_t = f"< {per_week:g} a week"
    own = ""
    if restarts is not None:
        own = f"the host's own recoveries (not counted): {float(restarts):.0f} container restarts by the engine"
    since = _parse_time((doc or {}).get("since")) if isinstance(doc, dict) else None
    if since is None:
        why = (doc or {}).get("error") if isinstance(doc, dict) else None
        why = why or (
            "no record yet: it starts at the first bootstrap, drift --fix, rollback or backup restore that changes "
            "the host"
        )
        detail = "; ".join(x for x in (why, own) if x)
        return [
            _row("unattended", "Unattended operation", unattended_t, src, detail=detail),
            _row("interventions", "Manual interventions", interventions_t, src, detail=detail),
        ]
    start = max(now - window * DAY, since)
    covered = max(0.0, min(window, (now - start) / DAY))
    enough = window - COVERAGE_SLACK_DAYS
    entries = []
    for e in doc.get("interventions") or []:
        t = _parse_time(e.get("time")) if isinstance(e, dict) else None
        if t is not None and start <= t <= now and not e.get("setup"):
            entries.append((t, e))
    entries.sort(key=lambda te: te[0])

    # unattended: the stretches between the interventions, from the start of the window (or of the record) to now
    bounds = [start] + [t for t, _ in entries] + [now]
    longest = max(bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)) / DAY  # no pairwise: 3.9
    current = (now - bounds[-2]) / DAY
    goal = th["unattended_days"]
    if longest >= goal:
        verdict = MET
    elif covered < min(goal, enough):
        verdict = NO_DATA  # no stretch of the target's length fits in the data yet
    else:
        verdict = NOT_MET
    detail = f"current stretch {current:.1f} days" + (f"; {_need(covered, goal)}" if verdict == NO_DATA else "")
    out = [
        _row("unattended", "Unattended operation", unattended_t, src, value=round(longest, 2),
             measured=f"{longest:.1f} days (longest)", verdict=verdict, days_of_data=covered, detail=detail)
    ]  # fmt: skip

    # interventions: their number in the window against the window's allowance; more than the whole window allows
    # is a breach more data cannot undo
    n = len(entries)
    allowed = per_week * window / 7
    verdict = NOT_MET if n >= allowed else (MET if covered >= enough else NO_DATA)
    parts = [_need(covered, window)] if verdict == NO_DATA else []
    if entries:
        t, last = entries[-1]
        stamp = dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")
        verbs: dict[str, int] = {}
        for _, e in entries:
            verbs[str(e.get("verb"))] = verbs.get(str(e.get("verb")), 0) + 1
        parts.append(", ".join(f"{v} {c}" for v, c in sorted(verbs.items())))
        parts.append(f"last: {last.get('verb')} by {last.get('by')} at {stamp} ({last.get('changed')} changed)")
    if own:
        parts.append(own)
    out.append(
        _row("interventions", "Manual interventions", interventions_t, src, value=round(n / window * 7, 2),
             measured=f"{n} in {window:g} days ({n / window * 7:.2f} a week)", verdict=verdict,
             days_of_data=covered, detail="; ".join(parts))
    )  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------------ the rows
def _row(rid: str, name: str, target: str, source: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": rid, "name": name, "target": target, "source": source, "value": None}
    row["measured"] = "-"
    row.update({"verdict": NO_DATA, "days_of_data": 0.0, "detail": "", "series": []})
    row.update(kw)
    row["days_of_data"] = round(float(row["days_of_data"]), 2)
    # what the data is, in words: the days there are, or "now" for a figure measured by this run
    row.setdefault("data", "-" if row["verdict"] == NOT_MEASURED else _days_text(row["days_of_data"]))
    return row


def _days_text(days: float) -> str:
    return f"{days:.1f} day{'s' if round(days, 1) != 1 else ''} of data"


def _need(days: float, window: float) -> str:
    return f"{_days_text(days)}, {window:g} needed"


def _gib(mib: float) -> str:
    return f"{mib / 1024:.2f} GiB"


def rows(raw: dict[str, Any], thresholds: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per target of the plan, from the raw report document of one host (see the module's docstring)."""
    th = {k: float(v) for k, v in {**DEFAULT_THRESHOLDS, **(raw.get("thresholds") or {}), **(thresholds or {})}.items()}
    now = float(raw.get("now") or time.time())
    window = float(raw.get("days") or 7)
    start = now - window * DAY
    enough = window - COVERAGE_SLACK_DAYS
    prom: dict[str, Any] = raw.get("prometheus") or {}
    prom_src = "Prometheus on the host"
    prom_err = prom.get("error") if raw.get("prometheus") is not None else "monitoring is not enabled on this host"
    out = []

    # availability: the worst probed service's share of successful probes over the window
    target = f">= {th['availability_percent']:g} %"
    src = f"{prom_src}: probe_success of each probed service (blackbox), hourly counts"
    if prom_err:
        out.append(_row("availability", "Availability", target, src, detail=prom_err))
    else:
        a = availability(prom.get("availability_hourly") or {}, start, now)
        if a["worst"] is None:
            out.append(_row("availability", "Availability", target, src, detail="no probe samples in the window"))
        else:
            service, value = a["worst"]
            # the window's whole error budget; down time beyond it is a breach more data cannot undo
            budget_min = (100 - th["availability_percent"]) / 100 * window * 1440
            down_min = (100 - value) / 100 * a["days"] * 1440
            if a["days"] >= enough:
                verdict = MET if value >= th["availability_percent"] else NOT_MET
            else:
                verdict = NOT_MET if down_min > budget_min else NO_DATA
            detail = ", ".join(f"{s} {v:.3f} %" for s, v in sorted(a["per_service"].items()))
            detail += f"; about {down_min:.0f} min down of {budget_min:.0f} allowed in {window:g} days ({service})"
            if verdict == NO_DATA:
                detail = f"{_need(a['days'], window)}; {detail}"
            out.append(
                _row("availability", "Availability", target, src, value=round(value, 3), measured=f"{value:.3f} %",
                     verdict=verdict, days_of_data=a["days"], detail=detail, series=a["series"],
                 limit=th["availability_percent"])
            )  # fmt: skip

    # latency: laptop to host, the CLI's own measurement on this run's SSH connection; the host's probes beside it
    target = f"< {th['latency_ms']:g} ms"
    src = "this run's SSH connection from this machine (kernel RTT, else the fastest task)"
    lat = raw.get("latency_ms")
    probe = prom.get("probe_latency_p95_ms") if not prom_err else None
    detail = f"probes on the host: p95 {probe:.1f} ms" if probe is not None else ""
    if lat is None:
        out.append(_row("latency", "Latency", target, src, detail=detail or "not measurable on this connection",
                        verdict=NOT_MEASURED))  # fmt: skip
    else:
        out.append(
            _row("latency", "Latency", target, src, value=lat, measured=f"{lat:.1f} ms", data="measured now",
                 verdict=MET if lat < th["latency_ms"] else NOT_MET, days_of_data=0, detail=detail or "measured now")
        )  # fmt: skip

    # memory: the stack's containers together (homeport_container_memory_usage_bytes), peak and p95
    src = f"{prom_src}: sum(homeport_container_memory_usage_bytes)"
    p = th["memory_percentile"]
    peak_t, sus_t = f"< {_gib(th['memory_peak_mib'])}", f"< {_gib(th['memory_sustained_mib'])} (p{p:g})"
    if prom_err:
        out.append(_row("memory_peak", "Memory peak", peak_t, src, detail=prom_err))
        out.append(_row("memory_sustained", "Memory sustained", sus_t, src, detail=prom_err))
    else:
        m = memory(prom.get("memory") or [], float(prom.get("memory_step_seconds") or 60), start, now, p)
        if m["peak"] is not None and prom.get("memory_peak_bytes") is not None:
            # the peak at the collector's resolution (a 1-minute subquery), above the samples' step when it is longer
            m["peak"] = max(m["peak"], float(prom["memory_peak_bytes"]) / MIB)
        if m["peak"] is None:
            for rid, name, goal in (
                ("memory_peak", "Memory peak", peak_t),
                ("memory_sustained", "Memory sustained", sus_t),
            ):
                out.append(_row(rid, name, goal, src, detail="no memory samples in the window"))
        else:
            breach = m["peak"] >= th["memory_peak_mib"]
            verdict = NOT_MET if breach else (MET if m["days"] >= enough else NO_DATA)
            detail = "" if verdict != NO_DATA else _need(m["days"], window)
            out.append(_row("memory_peak", "Memory peak", peak_t, src, value=round(m["peak"], 1),
                            measured=_gib(m["peak"]), verdict=verdict, days_of_data=m["days"], detail=detail,
                            series=m["series"], limit=th["memory_peak_mib"]))  # fmt: skip
            value = m["sustained"]
            verdict = (MET if value < th["memory_sustained_mib"] else NOT_MET) if m["days"] >= enough else NO_DATA
            detail = "" if verdict != NO_DATA else _need(m["days"], window)
            out.append(_row("memory_sustained", "Memory sustained", sus_t, src, value=round(value, 1),
                            measured=f"{_gib(value)} (p{p:g})", verdict=verdict, days_of_data=m["days"],
                            detail=detail))  # fmt: skip

    # deploys and container starts: the stack role's deploy records in the window
    deploys = [d for d in raw.get("deploys") or [] if (_parse_time(d.get("started")) or 0) >= start]
    src = "the stack role's deploy records on the host (deploys.json)"
    target = f"< {th['deploy_max_seconds'] / 60:g} min"
    done = [d for d in deploys if d.get("duration_seconds") is not None]
    if not done:
        out.append(_row("deploy", "Deploy time", target, src, detail=f"no deploy recorded in the last {window:g} days"))
    else:
        longest = max(done, key=lambda d: float(d["duration_seconds"]))
        value = float(longest["duration_seconds"])
        failed = sum(1 for d in done if d.get("result") != "ok")
        out.append(
            _row("deploy", "Deploy time", target, src, value=value, measured=f"{value:.0f} s (longest of {len(done)})",
                 verdict=MET if value < th["deploy_max_seconds"] else NOT_MET,
                 days_of_data=min(window, (now - min(_parse_time(d["started"]) or now for d in done)) / DAY),
                 detail=f"{failed} failed" if failed else "",
                 series=_daily_max([[_parse_time(d["started"]), d["duration_seconds"]] for d in done], start, now))
        )  # fmt: skip
    starts = [
        (service, float(s), _parse_time(d.get("started")))
        for d in deploys
        for service, s in sorted((d.get("start_to_healthy_seconds") or {}).items())
        if s is not None
    ]
    target = f"< {th['start_max_seconds']:g} s"
    src = "the stack role's deploy records: each started container's time from start to healthy"
    if not starts:
        out.append(_row("container_start", "Container start", target, src,
                        detail=f"no container started by a deploy in the last {window:g} days"))  # fmt: skip
    else:
        service, value, _ = max(starts, key=lambda s: s[1])
        out.append(
            _row("container_start", "Container start", target, src, value=value, measured=f"{value:.1f} s ({service})",
                 verdict=MET if value < th["start_max_seconds"] else NOT_MET,
                 days_of_data=min(window, (now - min(t or now for _, _, t in starts)) / DAY),
                 detail=f"slowest of {len(starts)} starts")
        )  # fmt: skip

    backup_age = prom.get("backup_age") if not prom_err else None
    out.extend(_backup_rows(raw.get("backup"), th, now, window, backup_age))

    restarts = prom.get("engine_restarts") if not prom_err else None
    out.extend(_intervention_rows(raw.get("interventions"), th, now, window, restarts))
    return out


def _backup_rows(backup: Any, th: dict, now: float, window: float, age: Any) -> list[dict[str, Any]]:
    """The backup rows: age and restore drill, and the storage cost (repository size x price per GB-month)."""
    out = []
    src = "the backup role's status.json on the host"
    target = f"age < {th['backup_max_age_hours']:g} h, drill < {th['drill_max_age_days']:g} days"
    series = [[t, v / HOUR] for t, v in _daily_max(age or [], now - window * DAY, now)]
    last = _parse_time((backup or {}).get("last_success"))
    if not backup or last is None:
        out.append(_row("backup", "Backups", target, src, series=series,
                        detail=(backup or {}).get("error") or "no successful backup recorded yet"))  # fmt: skip
    else:
        age_h = (now - last) / HOUR
        drill = backup.get("drill") or {}
        drill_t = _parse_time(drill.get("last_success"))
        drill_days = (now - drill_t) / DAY if drill_t is not None else None
        problems = []
        if age_h >= th["backup_max_age_hours"]:
            problems.append(f"last backup {age_h:.1f} h ago")
        if drill_days is None:
            problems.append("no successful restore drill")
        elif drill_days >= th["drill_max_age_days"]:
            problems.append(f"last successful drill {drill_days:.1f} days ago")
        if drill.get("ok") is False:
            problems.append("the last drill failed")
        measured = f"{age_h:.1f} h; drill " + (f"{drill_days:.1f} days ago" if drill_days is not None else "never")
        if drill.get("duration_seconds") is not None and drill_t is not None:
            measured += f" (restore {float(drill['duration_seconds']):.0f} s)"
        out.append(_row("backup", "Backups", target, src, value=round(age_h, 2), measured=measured,
                        verdict=NOT_MET if problems else MET, days_of_data=min(len(age or []) / 24, window),
                        detail="; ".join(problems), series=series, limit=th["backup_max_age_hours"]))  # fmt: skip

    target = f"< ${th['max_cost_month']:g}/month"
    price = float(th["price_per_gb_month"])
    src = f"restic stats (raw data) x ${price:g} per GB-month"
    # each repository of the last backup run, the copies too (homeport-backup records restic stats' raw-data size)
    sizes = [r.get("size_bytes") for r in (backup or {}).get("repositories") or [] if isinstance(r, dict)]
    if not sizes or any(s is None for s in sizes):
        out.append(_row("backup_cost", "Backup storage cost", target, src,
                        detail="no repository size recorded yet (the next backup records it)"))  # fmt: skip
    else:
        gb = sum(float(s or 0) for s in sizes) / 1e9
        cost = gb * price
        out.append(_row("backup_cost", "Backup storage cost", target, src, value=round(cost, 2),
                        measured=f"${cost:.2f}/month ({gb:.2f} GB)", data="at the last backup",
                        verdict=MET if cost < th["max_cost_month"] else NOT_MET,
                        detail=f"{len(sizes)} repositor{'y' if len(sizes) == 1 else 'ies'}"))  # fmt: skip
    return out


def report(raw_by_host: dict[str, dict], latency: dict[str, float | None] | None = None) -> dict[str, Any]:
    """Every host's rows (the CLI adds each host's latency, measured on this run's SSH connection)."""
    hosts = {}
    for host, gathered in sorted((raw_by_host or {}).items()):
        doc = dict(gathered or {})
        if latency and host in latency:
            doc["latency_ms"] = latency[host]
        hosts[host] = {"days": doc.get("days"), "generated": doc.get("now"), "rows": rows(doc)}
    return {"hosts": hosts}


# -------------------------------------------------------------------------------------------------------- output
def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, default=str)


COLOURS = {MET: "#1a7f37", NOT_MET: "#cf222e", NO_DATA: "#9a6700", NOT_MEASURED: "#6e7781"}


def sparkline(series: list, limit: float | None = None, width: int = 120, height: int = 28) -> str:
    """An inline SVG polyline of the series (one point a day: the worst availability, the memory peak, the longest
    deploy, the oldest backup of each day), a dashed red line at the target (``limit``) when given."""
    values = [float(v) for _, v in series or []]
    if not values:
        return ""
    lo = min(values + ([limit] if limit is not None else []))
    hi = max(values + ([limit] if limit is not None else []))
    span = (hi - lo) or 1.0

    def y(v: float) -> float:
        return round(height - 2 - (v - lo) / span * (height - 4), 1)

    step = (width - 4) / max(len(values) - 1, 1)
    points = " ".join(f"{2 + i * step:.1f},{y(v)}" for i, v in enumerate(values))
    parts = [
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{len(values)} days">'
    ]
    if limit is not None:
        parts.append(f'<line x1="0" x2="{width}" y1="{y(limit)}" y2="{y(limit)}" stroke="#cf222e" '
                     'stroke-dasharray="3,2" stroke-width="1"/>')  # fmt: skip
    if len(values) == 1:  # one day of data: a dot (a polyline of one point draws nothing)
        parts.append(f'<circle cx="{width / 2:g}" cy="{y(values[0])}" r="2" fill="#0969da"/>')
    parts.append(f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{points}"/></svg>')
    return "".join(parts)


CSS = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:12px;max-width:480px;
color:#1f2328;background:#fff}
h1{font-size:18px;margin:0 0 4px}h2{font-size:16px;margin:16px 0 6px}p.meta{color:#6e7781;margin:0 0 8px}
.row{border:1px solid #d0d7de;border-radius:8px;padding:8px 10px;margin:0 0 8px}
.top{display:flex;justify-content:space-between;gap:8px}.name{font-weight:600}
.verdict{color:#fff;border-radius:10px;padding:0 8px;font-size:13px;white-space:nowrap}
.val{font-size:17px}.small{color:#6e7781;font-size:13px}.spark{display:block;margin-top:4px}
"""


# what each chart draws (one point a day), under the chart
CHART_CAPTIONS = {
    "availability": "the worst service each day",
    "memory_peak": "the peak each day",
    "deploy": "the longest deploy each day",
    "backup": "the oldest backup each day, in hours",
}


def to_html(doc: dict[str, Any], title: str = "homeport report", refresh: int | None = None) -> str:
    """A phone-sized page of the rows, self-contained: inline CSS and SVG, no script, no external reference.
    Every text from the host is escaped. ``refresh``: seconds after which the browser reloads the page (the host's
    status page, regenerated every minute)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
    ]
    if refresh:
        out.append(f'<meta http-equiv="refresh" content="{int(refresh)}">')
    out += [
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for host, h in sorted(doc.get("hosts", {}).items()):
        when = h.get("generated")
        stamp = dt.datetime.fromtimestamp(float(when), UTC).strftime("%Y-%m-%d %H:%M UTC") if when else "?"
        out.append(f'<h2>{e(str(host))}</h2><p class="meta">last {e(str(h.get("days")))} days, {e(stamp)}</p>')
        for r in h.get("rows", []):
            colour = COLOURS.get(r["verdict"], "#6e7781")
            chart = sparkline(r.get("series") or [], r.get("limit"))
            if chart:
                caption = CHART_CAPTIONS.get(str(r["id"]), "one point a day")
                caption += "; dashed: the target" if r.get("limit") is not None else ""
                chart += f'<div class="small">{e(caption)}</div>'
            out.append(
                f'<div class="row" id="{e(str(r["id"]))}"><div class="top">'
                f'<span class="name">{e(str(r["name"]))}</span>'
                f'<span class="verdict" style="background:{colour}">{e(str(r["verdict"]))}</span></div>'
                f'<div class="val">{e(str(r["measured"]))} '
                f'<span class="small">target {e(str(r["target"]))}</span></div>'
                f"{chart}"
                f'<div class="small">{e(str(r["detail"]))}</div>'
                f'<div class="small">{e(str(r["data"]))} · {e(str(r["source"]))}</div></div>'
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def host_page(raw: dict[str, Any], host: str, title: str = "homeport status", refresh: int | None = 60) -> str:
    """The status page of one host from its raw document (:func:`gather_raw` plus its ``thresholds``): the rows
    of ``homeport report`` as :func:`to_html` draws them. The latency row is not measured: it is the laptop's."""
    return to_html(report({host: raw}), title=title, refresh=refresh)


def main(argv: list[str]) -> int:
    """``python3 status_report.py record-intervention STATE_DIR ENTRY_JSON``: :func:`append_intervention` (the CLI
    sends this file on stdin, ``python3 - record-intervention ...``); prints the entry written, as JSON."""
    if len(argv) != 3 or argv[0] != "record-intervention":
        print("usage: status_report.py record-intervention STATE_DIR ENTRY_JSON", file=sys.stderr)
        return 2
    try:
        doc = append_intervention(argv[1], json.loads(argv[2]))
    except (OSError, ValueError) as exc:
        print(f"homeport: the intervention was not recorded: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(doc["interventions"][-1], sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
