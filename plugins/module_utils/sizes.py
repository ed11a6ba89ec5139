"""Sizes, parsed in one place: the size filters (plugins/filter/sizes.py) and the status module use this.

Docker writes and reads sizes with docker/go-units (size.go), which has two display functions and two parsers:

- ``BytesSize`` prints binary abbreviations (``B KiB MiB GiB TiB PiB``, base 1024): ``docker stats`` MemUsage
  ("41.2MiB / 512MiB", cli/command/container/formatter_stats.go ``MemUsage``).
- ``HumanSize`` / ``HumanSizeWithPrecision`` print decimal abbreviations (``B kB MB GB TB PB``, base 1000):
  ``docker ps --size`` ("1.09kB (virtual 10MB)", cli/command/formatter/container.go ``Size``) and the NetIO /
  BlockIO columns of ``docker stats``.
- ``RAMInBytes`` parses an amount of memory someone configured (``docker run --memory``, compose ``mem_limit``):
  every unit is binary, the ``b`` and the ``i`` optional ("512m", "2g", "1.5GiB" and "2gb" alike).
- ``FromHumanSize`` parses with decimal units.

So there are two questions, two functions:

- :func:`ram_bytes` — a size someone wrote in the configuration (``homeport_memory_budget``, a service's memory):
  ``RAMInBytes``' rule, every unit binary.
- :func:`display_bytes` — a size docker printed: the abbreviation says the base (``KiB``/``MiB``/``GiB`` are binary,
  ``kB``/``MB``/``GB`` decimal), as ``BytesSize`` and ``HumanSize`` wrote them.

Stdlib only and Python 3.9 compatible: it also runs on the managed host inside modules (macOS' system Python).
"""

from __future__ import annotations

import re

__all__ = ["SizeError", "display_bytes", "ram_bytes"]

_PREFIX = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
# what a person writes (go-units sizeRegex: a number, an optional blank, an optional prefix, optional i, optional b)
_RAM_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
# what docker prints: the number and the abbreviation exactly as BytesSize / HumanSize wrote it
_DISPLAY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([kKmMgGtTpP]?)(i?)([bB]?)\s*$")


class SizeError(ValueError):
    """A value that is not a size."""


def ram_bytes(value, name: str = "value") -> int:
    """A configured size into bytes with docker's ``RAMInBytes`` rule: plain integers are bytes, every unit is a
    binary multiple (``512m``, ``2g``, ``1.5GiB``, ``2gb``, ``1073741824``)."""
    if isinstance(value, bool):
        raise SizeError(f"{name}: expected a size such as 2g or 512m, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise SizeError(f"{name}: size must not be negative, got {value}")
        return value
    if isinstance(value, float):
        return int(value)
    m = _RAM_RE.match(str(value))
    if not m:
        raise SizeError(f"{name}: {value!r} is not a size (use e.g. 2g, 512m, 1.5GiB or a byte count)")
    number, prefix = m.groups()
    return int(float(number) * 1024 ** _PREFIX[prefix.lower()])


def display_bytes(text) -> int | None:
    """A size as docker printed it into bytes: ``41.2MiB`` (``BytesSize``, binary), ``1.09kB`` / ``10MB``
    (``HumanSize``, decimal), ``0B``. None for what is not a size (``--``, empty): docker prints ``--`` for a
    container whose stats it could not read."""
    m = _DISPLAY_RE.match(str(text or ""))
    if not m:
        return None
    number, prefix, binary, _b = m.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** _PREFIX[prefix.lower()])
