"""The Docker engine's MTU, decided from the host's uplink (issue 13).

Docker creates ``docker0`` and every bridge network with MTU 1500 whatever the uplink is. On a host whose
default-route interface is smaller (PPPoE 1492, many cloud VMs 1460, tunnels and the tailnet 1280, this CI
machine 1400) the containers then sit behind a path-MTU black hole: TCP connects, large responses are lost and
`apt-get update` fails with "Connection failed". The fix is the engine's own ``mtu`` (docker0) and, on engines
that have it (dockerd >= 24, ``--default-network-opt``), the default MTU of new bridge networks such as the ones
compose creates (``default-network-opts.bridge.com.docker.network.driver.mtu``).

- ``engine_mtu(uplink, override)``: the MTU to configure, or 0 to keep Docker's default. ``override`` is
  ``auto`` (follow the uplink: set it only below 1500) or a number, which always wins.
- ``engine_mtu_settings(mtu, network_opts)``: the daemon.json keys for that MTU ({} for 0).

This file has no Ansible import on purpose: the docker-in-docker test image runs it at boot
(src/homeport/images/homeport-dind-mtu) so the test engines follow the same rule as the role.
"""

from __future__ import annotations

DOCKER_DEFAULT_MTU = 1500
# 1280 is IPv6's minimum link MTU (RFC 8200 §5) and tailscale0's MTU; 9216 the largest jumbo frame in common use
MTU_MIN = 1280
MTU_MAX = 9216
AUTO = "auto"


def check_override(value) -> int | None:
    """The override as an int (None for auto); ValueError with the rule when it is neither."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", AUTO)):
        return None
    if isinstance(value, bool):
        raise ValueError(f"must be {AUTO!r} or a number from {MTU_MIN} to {MTU_MAX}")
    try:
        mtu = int(str(value).strip())
    except ValueError:
        raise ValueError(f"must be {AUTO!r} or a number from {MTU_MIN} to {MTU_MAX}") from None
    if not MTU_MIN <= mtu <= MTU_MAX:
        raise ValueError(f"must be from {MTU_MIN} to {MTU_MAX}")
    return mtu


def engine_mtu(uplink_mtu, override=AUTO) -> int:
    forced = check_override(override)
    if forced is not None:
        return forced
    try:
        uplink = int(uplink_mtu)
    except (TypeError, ValueError):
        return 0  # no default route (or no fact): nothing to follow
    # 576 is IPv4's minimum datagram size (RFC 791): a smaller reading is not a real uplink
    if uplink < 576 or uplink >= DOCKER_DEFAULT_MTU:
        return 0
    return uplink


def engine_mtu_settings(mtu, network_opts: bool = True) -> dict:
    if not mtu or str(mtu) in ("0", "None"):
        return {}
    settings: dict = {"mtu": int(mtu)}
    if network_opts:
        settings["default-network-opts"] = {"bridge": {"com.docker.network.driver.mtu": str(int(mtu))}}
    return settings


def mtu_override_error(value) -> str:
    """'' when the override is valid, else the rule it breaks (for the preflight's message)."""
    try:
        check_override(value)
    except ValueError as exc:
        return str(exc)
    return ""


class FilterModule:
    def filters(self):
        return {
            "engine_mtu": engine_mtu,
            "engine_mtu_settings": engine_mtu_settings,
            "mtu_override_error": mtu_override_error,
        }
