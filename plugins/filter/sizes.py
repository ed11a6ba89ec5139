"""Size filters: `homeport.homeport.to_bytes` and `homeport.homeport.to_mib`.

Accept what Docker Compose and Colima accept: plain integers (bytes), and numbers with a unit
b, k/kb/kib, m/mb/mib, g/gb/gib, t/tb/tib, p/pb/pib (case-insensitive; all binary multiples, as docker's
``RAMInBytes`` reads them). The parsing is plugins/module_utils/sizes.py (``ram_bytes``), shared with the
status module.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.homeport.homeport.plugins.module_utils.sizes import SizeError, ram_bytes


def to_bytes(value, name: str = "value") -> int:
    """Parse a memory/disk size such as 2g, 512m, 1.5GiB or 1073741824 into bytes."""
    try:
        return ram_bytes(value, name)
    except SizeError as exc:
        raise AnsibleFilterError(str(exc)) from None


def to_mib(value, name: str = "value") -> int:
    """Parse a size into whole MiB (rounded down)."""
    return to_bytes(value, name) // 1024**2


class FilterModule:
    def filters(self):
        return {"to_bytes": to_bytes, "to_mib": to_mib}
