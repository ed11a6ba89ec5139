"""`homeport report`: the plan's targets, measured on the host (issue 30).

The status play gathers, with ``homeport_report_days`` set, the raw figures of the last N days in the same one
remote call as ``homeport status`` (plugins/modules/homeport_status.py, ``report``): Prometheus' hourly probe counts
per service, the stack's memory samples, the backup age series, the stack's deploy records and the backup role's
status.json, and the thresholds of the roles that own them (monitoring_report_*, stack_report_*, backup_report_*).

The rows and the page are the collection's plugins/module_utils/status_report.py (pure, stdlib only): the same code
makes the status page on the host every minute (roles/proxy/files/homeport-status-page, no Ansible there), so the
laptop's ``--html`` and the host's page cannot drift apart. It is loaded by path (the collection's import needs
ansible) and its names are re-exported here: :func:`rows` (one row per target), :func:`report` (every host's rows),
:func:`to_html` (the self-contained page), :func:`to_json`, :func:`sparkline`, :func:`percentile`; this module adds
the terminal table (:func:`render`). See that module for the rows' fields and the verdicts' rules.
"""

from __future__ import annotations

import functools
import importlib.util
from types import ModuleType
from typing import Any

from homeport import paths


@functools.cache
def shared() -> ModuleType:
    """plugins/module_utils/status_report.py of the content this CLI runs (the checkout or the wheel's copy)."""
    where = paths.content_root() / "plugins" / "module_utils" / "status_report.py"
    spec = importlib.util.spec_from_file_location("homeport_status_report", where)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {where}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_core = shared()
MET, NOT_MET, NO_DATA, NOT_MEASURED = _core.MET, _core.NOT_MET, _core.NO_DATA, _core.NOT_MEASURED
DEFAULT_THRESHOLDS: dict[str, float] = _core.DEFAULT_THRESHOLDS
percentile = _core.percentile
availability = _core.availability
memory = _core.memory
rows = _core.rows
report = _core.report
to_json = _core.to_json
sparkline = _core.sparkline
to_html = _core.to_html
COLOURS: dict[str, str] = _core.COLOURS


def render(console: Any, doc: dict[str, Any]) -> None:
    """The rows as one table per host (rich)."""
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    styles = {MET: "green", NOT_MET: "red", NO_DATA: "yellow", NOT_MEASURED: "dim"}
    for host, h in sorted(doc.get("hosts", {}).items()):
        table = Table(title=f"{host}: the plan's targets, last {h.get('days')} days", title_justify="left")
        for col in ("target", "measured", "goal", "verdict", "data", "source"):
            table.add_column(col, overflow="fold")
        for r in h.get("rows", []):
            verdict = Text(r["verdict"], style=styles.get(r["verdict"], ""))
            measured = Text(str(r["measured"]) + (f"\n{r['detail']}" if r["detail"] else ""))
            table.add_row(Text(str(r["name"])), measured, Text(str(r["target"])), verdict,
                          Text(str(r["data"])), Text(str(r["source"])))  # fmt: skip
        console.print(table)
