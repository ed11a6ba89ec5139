"""Headroom in `homeport status`: budget left after the stack's memory limits, and how many more services fit."""

from __future__ import annotations

import pytest

from homeport import status

MIB = 1024 * 1024


def test_plan_allocation_leaves_room_for_one_more_2g_agent():
    # the plan's table: 12 GB of limits under a 14 GB budget on a 16 GB Mac (Colima VM sized to the budget)
    room = status.headroom(budget_mb=14336, limits_mb=12288, vm_mb=14336, service_mb=2048)
    assert room == {"ceiling_mb": 14336, "left_mb": 2048.0, "service_mb": 2048, "fits": 1}
    assert status.headroom_text(room) == "2048 MiB left of 14336 MiB: room for 1 more 2 GiB service"


def test_rounding_down_and_plural():
    room = status.headroom(14336, 9000, None, 2048)
    assert room["left_mb"] == 5336 and room["fits"] == 2
    assert status.headroom_text(room).endswith("room for 2 more 2 GiB services")
    # 2047 MiB is not enough for a 2 GiB limit
    assert status.headroom(14336, 12289, None, 2048)["fits"] == 0
    assert "no room for another 2 GiB service" in status.headroom_text(status.headroom(14336, 12289, None, 2048))
    assert status.headroom_text(status.headroom(4096, 0, None, 512)).endswith("room for 8 more 512 MiB services")


def test_smaller_runtime_memory_is_the_ceiling():
    # a Colima VM of 8 GiB under a 14 GiB budget: what fits is bounded by the VM
    room = status.headroom(14336, 4096, 8192, 2048)
    assert room["ceiling_mb"] == 8192 and room["left_mb"] == 4096 and room["fits"] == 2


def test_over_budget_is_zero_not_negative_and_unknown_budget_is_none():
    assert status.headroom(14336, 15000, None, 2048) == {
        "ceiling_mb": 14336,
        "left_mb": 0.0,
        "service_mb": 2048,
        "fits": 0,
    }
    assert status.headroom(None, 1000, 16384, 2048) is None
    assert status.headroom(14336, 0, None, 0) is None


def test_summary_carries_headroom_from_the_status_document():
    doc = {
        "memory": {"budget_mb": 14336},
        "host_memory": {"total_bytes": 16384 * MIB},
        "containers": [
            {"name": "db", "state": "running", "memory_limit_bytes": 2048 * MIB, "memory_usage_bytes": 300 * MIB},
            {"name": "api", "state": "running", "memory_limit_bytes": 1024 * MIB, "memory_usage_bytes": 100 * MIB},
        ],
    }
    s = status.summarise_host(doc)
    assert s["memory"]["headroom"] == {"ceiling_mb": 14336, "left_mb": 11264.0, "service_mb": 2048, "fits": 5}
    s = status.summarise_host(doc, service_mb=4096)
    assert s["memory"]["headroom"]["fits"] == 2


@pytest.mark.parametrize(("text", "mb"), [("2g", 2048), ("512m", 512), ("1.5GiB", 1536), ("0", None), ("two", None)])
def test_service_size_option(text, mb):
    assert status.parse_service_size(text) == mb
