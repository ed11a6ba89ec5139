"""Size filters: `homeport.homeport.to_bytes` and `homeport.homeport.to_mib`.

Accept what Docker Compose and Colima accept: plain integers (bytes), and numbers with a unit
b, k/kb/kib, m/mb/mib, g/gb/gib, t/tb/tib (case-insensitive; all binary multiples, as Docker uses).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def to_bytes(value, name: str = "value") -> int:
    """Parse a memory/disk size such as 2g, 512m, 1.5GiB or 1073741824 into bytes."""
    if isinstance(value, bool):
        raise AnsibleFilterError(f"{name}: expected a size such as 2g or 512m, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise AnsibleFilterError(f"{name}: size must not be negative, got {value}")
        return value
    if isinstance(value, float):
        return int(value)
    m = _RE.match(str(value))
    if not m:
        raise AnsibleFilterError(f"{name}: {value!r} is not a size (use e.g. 2g, 512m, 1.5GiB or a byte count)")
    number, unit = m.groups()
    return int(float(number) * _UNITS[unit.lower()])


def to_mib(value, name: str = "value") -> int:
    """Parse a size into whole MiB (rounded down)."""
    return to_bytes(value, name) // 1024**2


class FilterModule:
    def filters(self):
        return {"to_bytes": to_bytes, "to_mib": to_mib}
