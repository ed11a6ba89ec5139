"""Issue 28 (first part): the host owns the release transaction. A real link cut during the switch.

One Debian 13 host with its own Docker engine (homeport/dind:13, systemd as PID 1, sshd) reached over real SSH
through a user-space TCP proxy. A deploy of a changed API is started with the real CLI; while `docker compose up`
runs on the host the proxy cuts the link: every proxied connection is reset (no FIN) and new ones are refused. Then:

- the CLI exits 4 and says in plain words that the host carries on and how to see the outcome (never Mitogen's raw
  "Mitogen was disconnected ..." text);
- the host finishes (or rolls back) by itself within stack_wait_timeout: the API answers, the release recorded as
  `current` is the one that runs, the transaction is done and no deploy lock is left;
- a rerun through the restored link exits 0 with the new release serving; `homeport deploy --attach` reports it.

And, without the link: a transaction whose process died (kill -9, as a power cut) is finished by the next follow.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import missing

pytestmark = [pytest.mark.docker, pytest.mark.slow]
NAME = "homeport-sandbox-linkcut"
HOMEPORT = str(Path(sys.executable).parent / "homeport")
WAIT_TIMEOUT = 60
PROJECT = "/var/lib/homeport/stack"


class CutProxy:
    """A TCP proxy (threads) that can cut the link: reset every connection (SO_LINGER 0: RST, no FIN) and refuse new
    ones (the listener closed), then be restored on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.listen()

    def listen(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self) -> None:
        assert self.listener is not None
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of its thread; a bare close() would not
        self.listener.close()  # new connections: refused
        with self.lock:
            for s in self.socks:
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()  # RST, never a FIN
            self.socks.clear()

    def restore(self) -> None:
        self.listen()


def _docker(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, **kw)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def on_host(script: str, check: bool = True) -> str:
    return _docker("exec", NAME, "bash", "-c", script, check=check).stdout


def api_version() -> str:
    out = on_host("curl -fsS --max-time 2 http://127.0.0.1:18080/ || true", check=False)
    return out.strip().removeprefix("VERSION=")


def stack_vars(version: str) -> dict:
    run = (
        "/bin/busybox mkdir -p /www && /bin/busybox env | /bin/busybox grep ^VERSION= > /www/index.html"
        " && /bin/busybox sleep 4 && exec /bin/busybox httpd -f -p 8080 -h /www"
    )
    return {
        "stack_project_name": "linkcut",
        "stack_wait_timeout": WAIT_TIMEOUT,
        "stack_liveness_seconds": 2,
        "stack_keep_releases": 3,
        "stack_services": {
            "api": {
                "image": "homeport/busybox:1",
                "pull_policy": "never",
                "memory": "32m",
                "command": ["/bin/busybox", "sh", "-c", run],
                "environment": {"VERSION": version},
                "ports": ["127.0.0.1:18080:8080"],
                "healthcheck": {
                    "test": ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"],
                    # every second until healthy, then every 30 s (start_interval, Docker Engine 25+): the
                    # release only waits for the first healthy answer; a probe is a docker exec (issue 34)
                    "interval": "30s",
                    "timeout": "2s",
                    "retries": 3,
                    "start_period": "60s",
                    "start_interval": "1s",
                },
            }
        },
    }


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        missing("a reachable Docker engine", ".ci/run starts one")
    for img in ("homeport/dind:13", "homeport/busybox:1"):
        if subprocess.run(["docker", "image", "inspect", img], capture_output=True).returncode != 0:
            missing(f"the image {img}", "make images builds it (src/homeport/images/build.sh)")
    home = tmp_path_factory.mktemp("linkcut")
    t0 = time.monotonic()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOMEPORT_HOME", str(home / ".homeport"))
        mp.setenv("HOMEPORT_SANDBOX_NAME", NAME)
        from homeport import sandbox

        importlib.reload(sandbox)
        _docker("rm", "-f", "-v", NAME, check=False)
        try:
            _docker(
                "run", "-d", "--name", NAME, "--hostname", NAME, "--label", sandbox.LABEL, *sandbox.RUN_FLAGS,
                "-p", "127.0.0.1::22", "homeport/dind:13", "/lib/systemd/systemd",
            )  # fmt: skip
            sandbox._wait_for_systemd()
            sandbox._provision(sandbox._ensure_key())
            for _ in range(60):
                if _docker("exec", NAME, "docker", "info", check=False).returncode == 0:
                    break
                time.sleep(1)
            subprocess.run(
                f"docker save homeport/busybox:1 | docker exec -i {NAME} docker load", shell=True, check=True,
                capture_output=True,
            )  # fmt: skip
            proxy = CutProxy(("127.0.0.1", sandbox._ssh_port()))
            hostkey = on_host("cat /etc/ssh/ssh_host_ed25519_key.pub").split()
            known = home / "known_hosts"
            known.write_text(f"[127.0.0.1]:{proxy.port} {hostkey[0]} {hostkey[1]}\n", encoding="utf-8")
            inventory = home / "hosts.yml"

            def write_inventory(version: str) -> Path:
                host_vars = {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": proxy.port,
                    "ansible_user": sandbox.USER,
                    "ansible_become": True,
                    "ansible_ssh_private_key_file": str(sandbox.key_path()),
                    "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
                    "-o IdentitiesOnly=yes",
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "homeport_roles": ["stack"],
                    **stack_vars(version),
                }
                inventory.write_text(yaml.safe_dump({"homeport": {"hosts": {"linkcut": host_vars}}}), "utf-8")
                return inventory

            env = {**os.environ, "HOMEPORT_HOME": str(home / ".homeport"), "XDG_CONFIG_HOME": str(home / "config")}
            env.pop("HOMEPORT_VAULT_PASSWORD", None)

            def homeport(*args: str, **kw) -> subprocess.Popen:
                return subprocess.Popen(
                    [HOMEPORT, *args, "--inventory", str(inventory)], cwd=home, env=env, text=True,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw,
                )  # fmt: skip

            print(f"\nlinkcut host ready in {time.monotonic() - t0:.1f} s")
            yield {"proxy": proxy, "write_inventory": write_inventory, "homeport": homeport, "home": home}
        finally:
            _docker("rm", "-f", "-v", NAME, check=False)
            mp.delenv("HOMEPORT_SANDBOX_NAME")
            importlib.reload(sandbox)
    assert subprocess.run(["docker", "inspect", NAME], capture_output=True).returncode != 0


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def host_record() -> dict:
    """What runs and what is recorded on the host, in one exchange."""
    doc = on_host(
        f"""cd {PROJECT}
        printf '{{"journal": %s, ' "$(cat .transaction.json 2>/dev/null || echo null)"
        printf '"lock": %s, ' "$(test -e .deploy.lock && echo true || echo false)"
        printf '"live": "%s", ' "$(grep -o 'VERSION: .*' compose.yaml | tr -d '\\"' )"
        printf '"current": "%s", ' "$(grep -o 'VERSION: .*' current/compose.yaml | tr -d '\\"')"
        printf '"same": %s}}' "$(cmp -s compose.yaml current/compose.yaml && echo true || echo false)"
        """
    )
    record = json.loads(doc)
    for key in ("live", "current"):
        record[key] = record[key].replace("'", "")
    return record


def test_a_link_cut_during_the_switch_leaves_the_host_to_finish_the_release(host):
    timings = {}
    t = time.monotonic()
    rc, out = finish(host["homeport"]("deploy"), 600) if host["write_inventory"]("1") else (None, "")
    timings["first deploy"] = time.monotonic() - t
    assert rc == 0, out[-4000:]
    assert api_version() == "1"

    # release 2; cut the link while `docker compose up` runs on the host
    host["write_inventory"]("2")
    t = time.monotonic()
    proc = host["homeport"]("deploy")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if on_host("pgrep -f '[c]ompose.* up --detach' >/dev/null && echo up || true", check=False).strip() == "up":
            break
        time.sleep(0.1)
    else:
        pytest.fail("docker compose up never ran on the host: " + (proc.communicate()[0] or "")[-4000:])
    host["proxy"].cut()
    cut_at = time.monotonic()
    rc, out = finish(proc, 300)
    timings["deploy until the CLI gave up"] = time.monotonic() - t
    assert rc == 4, out[-4000:]
    text = " ".join(out.split())
    assert "Mitogen was disconnected" not in out, out[-4000:]
    assert "the host carries on by itself" in text and "homeport deploy --attach" in text, out[-4000:]

    # the host finishes (or rolls back) by itself within stack_wait_timeout
    while time.monotonic() - cut_at < WAIT_TIMEOUT:
        record = host_record()
        if (record["journal"] or {}).get("status") == "done" and not record["lock"]:
            break
        time.sleep(1)
    else:
        pytest.fail(f"the host did not finish within stack_wait_timeout ({WAIT_TIMEOUT} s): {host_record()}")
    timings["host finished after the cut"] = time.monotonic() - cut_at
    serving = api_version()
    assert serving in ("1", "2"), f"the API does not answer after the cut: {serving!r}; {record}"
    assert record["same"] and record["current"] == f"VERSION: {serving}", record  # the record is what runs
    assert record["journal"]["result"] == ("ok" if serving == "2" else "failed"), record

    # the restored link: --attach reports the outcome, a rerun exits 0 with release 2 serving
    host["proxy"].restore()
    rc, out = finish(host["homeport"]("deploy", "--attach", "-v"), 300)
    assert rc == (0 if serving == "2" else 1), out[-4000:]
    assert "release transaction" in out, out[-4000:]
    t = time.monotonic()
    rc, out = finish(host["homeport"]("deploy"), 600)
    timings["rerun"] = time.monotonic() - t
    assert rc == 0, out[-4000:]
    assert api_version() == "2"
    record = host_record()
    assert record["same"] and record["current"] == "VERSION: 2" and not record["lock"], record
    for what, seconds in timings.items():
        print(f"linkcut: {seconds:6.1f} s  {what}")


def test_a_transaction_whose_process_died_is_finished_by_the_next_run(host):
    """A power cut in the middle of `up`: the host process is killed (-9); the next run finishes the release."""
    host["write_inventory"]("3")
    proc = host["homeport"]("deploy", "-v")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if on_host("pgrep -f '[c]ompose.* up --detach' >/dev/null && echo up || true", check=False).strip() == "up":
            break
        time.sleep(0.1)
    host["proxy"].cut()  # the laptop is gone too
    # the power cut: every process of the deploy on the host dies at once (the run's Mitogen contexts first: a
    # follower that saw the transaction's process gone would resume it at once, as it should)
    on_host(
        "pkill -9 -f '[m]itogen:' ; pkill -9 -f '[h]omeport-stack-txn run' ; pkill -9 -f '[c]ompose.* up --detach' ;"
        " true",
        check=False,
    )
    finish(proc, 300)
    record = host_record()
    assert record["journal"]["status"] == "running", record  # died mid-way: nobody finished it
    host["proxy"].restore()
    rc, out = finish(host["homeport"]("deploy"), 600)
    assert rc == 0, out[-4000:]
    units = on_host("journalctl --no-pager -o cat -u 'homeport-stack-txn-*' 2>/dev/null || true", check=False)
    assert "resuming the release after its process died" in units, units[-3000:]
    assert api_version() == "3"
    record = host_record()
    assert record["same"] and record["journal"]["status"] == "done" and not record["lock"], record
