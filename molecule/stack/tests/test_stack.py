"""Verify the stack scenario after converge, idempotence and the side effects (which end with release k3 rolled
back in by `homeport rollback`): the API is healthy and its data path works through PostgreSQL/pgvector, ports bind
to 127.0.0.1 only, limits and restart policies are applied, secrets stay in 0600 env files, releases are kept, volumes
survive."""

from __future__ import annotations

import json

from homeport_testinfra import run_ok

PROJECT = "/var/lib/homeport/stack"
API = "http://127.0.0.1:18080"
TOKEN = "tok-stack-test-5f1c8a"  # tests/stack/vars.yml
PG_PASSWORD = "Tq7-stack-test-pg-2b9e"  # tests/stack/vars.yml


def api(host, method: str, path: str, body: dict | None = None, token: str | None = TOKEN) -> tuple[int, dict]:
    cmd = f"curl -sS -o /tmp/api.out -w '%{{http_code}}' -X {method} '{API}{path}'"
    if body is not None:
        cmd += f" -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    if token:
        cmd += f" -H 'Authorization: Bearer {token}'"
    code = int(run_ok(host, cmd).strip())
    return code, json.loads(host.file("/tmp/api.out").content_string or "{}")


def containers(host) -> dict[str, dict]:
    ids = run_ok(host, "docker ps -q --filter label=com.docker.compose.project=teststack").split()
    info = json.loads(run_ok(host, "docker inspect " + " ".join(ids)))
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in info}


def test_api_healthy_serving_the_rolled_back_release(host):
    code, body = api(host, "GET", "/health")
    assert code == 200
    assert body == {"status": "ok", "version": "k3"}  # side_effect.yml: `homeport rollback` brought back release k3


def test_data_path_store_read_and_nearest_neighbour(host):
    code, created = api(host, "POST", "/vectors", {"name": "verify", "embedding": [9.0, 8.0, 7.0]})
    assert code == 201
    code, item = api(host, "GET", f"/vectors/{created['id']}")
    assert code == 200
    assert item == {"id": created["id"], "name": "verify", "embedding": [9.0, 8.0, 7.0]}
    code, near = api(host, "GET", "/nearest?v=8.9,8.1,7.0&k=1")
    assert code == 200
    assert near["items"][0]["id"] == created["id"]


def test_writes_need_the_token_from_the_vault(host):
    code, _ = api(host, "POST", "/vectors", {"name": "x", "embedding": [1, 2, 3]}, token="wrong")
    assert code == 401


def test_rows_from_before_the_failed_release_and_the_rollback_survive(host):
    code, near = api(host, "GET", "/nearest?v=0.5,0.25,0.125&k=1")
    assert code == 200
    assert near["items"][0]["name"] == "side-effect-marker"
    assert "teststack_pgdata" in run_ok(host, "docker volume ls -q").split()


def test_published_ports_bind_to_loopback_only(host):
    listening = run_ok(host, "ss -ltnH").splitlines()
    for port in ("15432", "18080"):
        addrs = {line.split()[3].rsplit(":", 1)[0] for line in listening if line.split()[3].endswith(f":{port}")}
        assert addrs == {"127.0.0.1"}, (port, addrs)
    for name, c in containers(host).items():
        for bindings in (c["HostConfig"]["PortBindings"] or {}).values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings), (name, bindings)


def test_memory_limits_and_restart_policies_applied(host):
    c = containers(host)
    assert set(c) == {"db", "api"}
    assert c["db"]["HostConfig"]["Memory"] == 512 * 1024**2
    assert c["api"]["HostConfig"]["Memory"] == 256 * 1024**2
    assert {x["HostConfig"]["RestartPolicy"]["Name"] for x in c.values()} == {"unless-stopped"}
    assert c["api"]["State"]["Health"]["Status"] == "healthy"


def test_secrets_only_in_0600_env_files(host):
    assert host.file(f"{PROJECT}/env").mode == 0o700
    for name in ("db", "api"):
        f = host.file(f"{PROJECT}/env/{name}.env")
        assert f.mode == 0o600
        assert f"='{PG_PASSWORD}'" in f.content_string
    assert PG_PASSWORD not in host.file(f"{PROJECT}/compose.yaml").content_string
    assert TOKEN not in host.file(f"{PROJECT}/compose.yaml").content_string


def test_releases_current_pointer_and_image_ids(host):
    current = host.file(f"{PROJECT}/current")
    assert current.is_symlink
    releases = run_ok(host, f"ls {PROJECT}/releases").split()
    assert 2 <= len(releases) <= 3  # stack_keep_releases: 3
    target = current.linked_to
    assert target.rsplit("/", 1)[-1] in releases
    images = json.loads(host.file(f"{target}/images.json").content_string)
    assert images["homeport/pgvector:17"].startswith("sha256:")
    api_ref = next(ref for ref in images if ref.startswith("teststack-api:"))
    running = containers(host)["api"]["Image"]
    assert images[api_ref] == running
    assert host.file(f"{target}/compose.yaml").content_string == host.file(f"{PROJECT}/compose.yaml").content_string


def test_no_lock_left_behind(host):
    assert not host.file(f"{PROJECT}/.deploy.lock").exists
