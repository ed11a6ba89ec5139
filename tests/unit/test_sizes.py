"""The one size parser (plugins/module_utils/sizes.py), shared by the size filters and the status module.

Units as docker's go-units (size.go) defines them: ``RAMInBytes`` reads configured sizes with every unit binary;
``BytesSize`` prints binary abbreviations (KiB, MiB: docker stats MemUsage), ``HumanSize`` /
``HumanSizeWithPrecision`` print decimal ones (kB, MB: docker ps --size, docker stats NetIO/BlockIO), with ``%.3g``
or ``%.4g`` formatting, so "1e+03kB" is something docker can print."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.homeport.homeport.plugins.filter import sizes as size_filter  # noqa: E402
from ansible_collections.homeport.homeport.plugins.module_utils import sizes  # noqa: E402

KIB, MIB, GIB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "value"),
    [("512m", 512 * MIB), ("2g", 2 * GIB), ("2gb", 2 * GIB), ("2GB", 2 * GIB), ("1.5GiB", int(1.5 * GIB)),
     ("14g", 14 * GIB), ("1k", KIB), ("100", 100), ("100b", 100), (" 3 t ", 3 * 1024**4), ("1p", 1024**5),
     (1073741824, GIB), (2.5, 2)],
)  # fmt: skip
def test_configured_sizes_are_binary_as_docker_ram_in_bytes(text, value):
    assert sizes.ram_bytes(text) == value
    assert size_filter.to_bytes(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("41.2MiB", int(41.2 * MIB)), ("1.944GiB", int(1.944 * GIB)), ("512KiB", 512 * KIB), ("0B", 0),
     ("1.09kB", 1090), ("10MB", 10 * 1000**2), ("21.5MB", 21_500_000), ("1.5GB", 1_500_000_000),
     ("1e+03kB", 1_000_000), ("12B", 12), (" 3.2 MiB ", int(3.2 * MIB))],
)  # fmt: skip
def test_printed_sizes_follow_the_abbreviation(text, value):
    """BytesSize writes KiB/MiB/GiB (base 1024), HumanSize kB/MB/GB (base 1000)."""
    assert sizes.display_bytes(text) == value


@pytest.mark.parametrize("text", ["--", "", None, "lots", "1.2.3MiB", "5 parsecs"])
def test_what_is_not_a_printed_size_is_unknown(text):
    """docker stats prints "-- / --" for a container it could not read: unknown, never 0."""
    assert sizes.display_bytes(text) is None


def test_the_two_rules_disagree_only_on_decimal_abbreviations():
    assert sizes.ram_bytes("1GiB") == sizes.display_bytes("1GiB") == GIB
    assert sizes.ram_bytes("1GB") == GIB and sizes.display_bytes("1GB") == 1000**3


@pytest.mark.parametrize(
    ("value", "message"),
    [("big", "stack.memory: 'big' is not a size (use e.g. 2g, 512m, 1.5GiB or a byte count)"),
     (True, "stack.memory: expected a size such as 2g or 512m, got a boolean"),
     (-1, "stack.memory: size must not be negative, got -1"), ("1.5.2g", "is not a size")],
)  # fmt: skip
def test_refusals_name_the_variable(value, message):
    with pytest.raises(sizes.SizeError) as err:
        sizes.ram_bytes(value, "stack.memory")
    assert message in str(err.value)
    with pytest.raises(AnsibleFilterError) as ferr:
        size_filter.to_bytes(value, "stack.memory")
    assert message in str(ferr.value)


def test_to_mib_rounds_down():
    assert size_filter.to_mib("1.5GiB") == 1536
    assert size_filter.to_mib(MIB + 1) == 1


def test_module_utils_needs_only_the_stdlib():
    """It runs on the managed host inside modules (no ansible there beyond what AnsiballZ ships)."""
    text = (ROOT / "plugins/module_utils/sizes.py").read_text(encoding="utf-8")
    imports = {line.split()[1] for line in text.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "re"}, imports
