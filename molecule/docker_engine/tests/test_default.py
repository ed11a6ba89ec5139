"""docker_engine: the engine the role installed runs a container, compose v2 answers, daemon.json is applied."""

from __future__ import annotations

import json

from homeport_testinfra import run_ok, unit_active, unit_enabled

# A tiny image made inside the target (no registry): /bin/sh and /bin/echo with their libraries.
MAKE_TINY_IMAGE = r"""
set -e
d=$(mktemp -d)
for b in /bin/sh /bin/echo /bin/cat; do
  cp --parents -L "$b" "$d"
  for l in $(ldd "$b" | grep -o '/[^ ]*'); do cp --parents -L "$l" "$d"; done
done
tar -C "$d" -c . | docker import - homeport/tiny:test >/dev/null
rm -rf "$d"
"""


def test_docker_service_enabled_and_running(host):
    assert unit_enabled(host, "docker.service")
    assert unit_active(host, "docker.service")


def test_daemon_json_rendered(host):
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert cfg["log-driver"] == "json-file"
    assert cfg["log-opts"] == {"max-size": "20m", "max-file": "4"}
    assert cfg["live-restore"] is True
    assert cfg["default-address-pools"] == [{"base": "10.201.0.0/16", "size": 24}]


def test_daemon_settings_visible_in_docker_info(host):
    info = json.loads(run_ok(host, "docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is True


def test_engine_runs_a_container(host):
    run_ok(host, MAKE_TINY_IMAGE)
    out = run_ok(host, "docker run --rm --network none homeport/tiny:test /bin/echo hello-from-homeport")
    assert out.strip() == "hello-from-homeport"
    # the container logs with the daemon's driver (the daemon applies its log-opts; older engines do not copy
    # them into HostConfig, newer ones do)
    cid = run_ok(host, "docker create --network none homeport/tiny:test /bin/echo x").strip()
    try:
        cfg = json.loads(run_ok(host, f"docker inspect --format '{{{{json .HostConfig.LogConfig}}}}' {cid}"))
        assert cfg["Type"] == "json-file"
        assert cfg.get("Config") in ({}, None, {"max-file": "4", "max-size": "20m"}), cfg
    finally:
        host.run(f"docker rm -f {cid}")


def test_compose_v2(host):
    out = run_ok(host, "docker compose version --short").strip().lstrip("v")
    assert out.split(".")[0] == "2", out


def test_compose_source_matches_release(host):
    major = int(host.system_info.release.split(".")[0])
    if major >= 13:
        assert host.package("docker-compose").is_installed
        assert not host.file("/opt/homeport/compose").exists
    else:
        link = host.file("/usr/local/lib/docker/cli-plugins/docker-compose")
        assert link.is_symlink
        assert link.linked_to.startswith("/opt/homeport/compose/")


def test_admin_in_docker_group(host):
    assert "docker" in host.user("admin").groups


# curl with its libraries and the CA bundle, for the MTU test below (issue 13)
MAKE_FETCH_IMAGE = r"""
set -e
d=$(mktemp -d)
for b in /bin/sh /bin/cat /usr/bin/curl; do
  cp --parents -L "$b" "$d"
  for l in $(ldd "$b" | grep -o '/[^ ]*'); do cp --parents -L "$l" "$d"; done
done
cp --parents -rL /etc/ssl/certs "$d"
tar -C "$d" -c . | docker import - homeport/fetch:test >/dev/null
rm -rf "$d"
"""
# about 9 MB: far more than a path-MTU black hole lets through (TCP connects, large segments are lost)
LARGE_FILE = "http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz"


def _uplink_mtu(host) -> int:
    iface = run_ok(host, "ip -o route show default | awk '{print $5; exit}'").strip()
    return int(host.file(f"/sys/class/net/{iface}/mtu").content_string)


def test_engine_mtu_follows_the_uplink(host):
    uplink = _uplink_mtu(host)
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    if uplink < 1500:
        assert cfg["mtu"] == uplink, cfg
    else:
        assert "mtu" not in cfg, cfg
    run_ok(host, MAKE_FETCH_IMAGE)
    inner = run_ok(host, "docker run --rm homeport/fetch:test /bin/cat /sys/class/net/eth0/mtu").strip()
    assert int(inner) == min(uplink, 1500)
    # dockerd >= 24 (Debian 13) also gives new bridge networks (compose's) the same MTU
    if "--default-network-opt" in run_ok(host, "dockerd --help"):
        host.run("docker network rm homeport-mtu-test")
        run_ok(host, "docker network create homeport-mtu-test")
        try:
            inner = run_ok(
                host, "docker run --rm --network homeport-mtu-test homeport/fetch:test /bin/cat /sys/class/net/eth0/mtu"
            ).strip()
            assert int(inner) == min(uplink, 1500)
        finally:
            host.run("docker network rm homeport-mtu-test")


def test_a_container_can_fetch_a_large_file(host):
    out = run_ok(
        host,
        "docker run --rm homeport/fetch:test /usr/bin/curl -fsS --retry 3 -m 120 -o /dev/null"
        f" -w '%{{size_download}}' {LARGE_FILE}",
    )
    assert int(out.strip()) > 1_000_000, out
