"""`homeport status` shows the restore drill the backup job records (status.json "drill"): its result, duration
(the recovery time) and age, with a warning when it failed or is older than a week plus slack."""

from __future__ import annotations

import datetime as dt

from homeport import status

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def doc(drill: dict | None) -> dict:
    backup = {"last_success": "2026-11-23T03:00:00+00:00", "last_failure": None, "snapshot_id": "4f1c", "drill": drill}
    return {"os": "Debian 13", "docker": True, "containers": [], "backup": backup, "disk": {}, "roles": ["backup"]}


def test_a_passed_drill_is_shown_with_its_duration():
    drill = {"last_run": "2026-11-22T06:00:00+00:00", "last_success": "2026-11-22T06:00:00+00:00", "ok": True,
             "duration_seconds": 41.5, "snapshot_id": "4f1c", "error": None}  # fmt: skip
    s = status.summarise_host(doc(drill), now=NOW)
    assert s["backup"]["drill"] == {**drill, "age_days": 1.2}
    assert not [w for w in s["warnings"] if "drill" in w]


def test_a_failed_drill_warns():
    drill = {"last_run": "2026-11-22T06:00:00+00:00", "last_success": "2026-11-15T06:00:00+00:00", "ok": False,
             "duration_seconds": 12.0,
             "error": "row counts differ from the dump's: public.t: 1 restored vs 5"}  # fmt: skip
    s = status.summarise_host(doc(drill), now=NOW)
    assert s["backup"]["drill"]["ok"] is False
    assert (
        "the last restore drill failed: row counts differ from the dump's: public.t: 1 restored vs 5" in s["warnings"]
    )


def test_an_old_drill_warns():
    drill = {"last_run": "2026-11-01T06:00:00+00:00", "last_success": "2026-11-01T06:00:00+00:00", "ok": True}
    s = status.summarise_host(doc(drill), now=NOW)
    assert "the last successful restore drill is 22 days old" in s["warnings"]


def test_no_drill_yet_adds_nothing():
    s = status.summarise_host(doc(None), now=NOW)
    assert "drill" not in s["backup"]
