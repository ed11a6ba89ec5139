"""Filters shared by the roles' read-only fast paths (one remote call decides whether the slow module must run).

- ``units_running``: the output of ``systemctl show --property=LoadState,UnitFileState,ActiveState --value --
  <units>`` says every unit is loaded, enabled and active (systemd prints the three values per unit in its own
  order, so they are counted, not read by position).
- ``packages_missing``: the registered result of ``dpkg-query -W -f '${db:Status-Status}\\n' <packages>`` says a
  package is not installed (dpkg-query fails for a package it has never heard of).
"""

from __future__ import annotations

_RUNNING = frozenset({"loaded", "enabled", "active"})


def units_running(stdout: str | None, units: list[str]) -> bool:
    values = (stdout or "").split()
    return len(values) == 3 * len(units) and all(v in _RUNNING for v in values)


def packages_missing(dpkg: dict) -> bool:
    return dpkg.get("rc", 1) != 0 or any(line != "installed" for line in dpkg.get("stdout_lines", []))


class FilterModule:
    def filters(self):
        return {"units_running": units_running, "packages_missing": packages_missing}
