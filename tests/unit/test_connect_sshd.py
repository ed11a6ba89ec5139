"""homeport connect / tunnel against a real sshd and a real Docker engine: a throwaway docker-in-docker host
(homeport/dind:13, container mac-journey-sshd-<pid>, removed at the end) with the admin user, key-only SSH and a
stack container publishing a port on the host's 127.0.0.1 only (as on the Mac). This machine plays the laptop:
its docker CLI uses the context `homeport connect` created, and `homeport tunnel` forwards the port.

The laptop's SSH configuration (key, pinned host key, host key checking on) lives in a temporary ssh_config: the
docker CLI runs plain `ssh`, which reads ~/.ssh of the passwd entry, not $HOME, so a one-line `ssh` wrapper on PATH
adds `-F <that file>` (what a user's ~/.ssh/config does on a real laptop)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import missing

pytestmark = pytest.mark.docker

IMAGE = "homeport/dind:13"
NAME = f"mac-journey-sshd-{os.getpid()}"
HOMEPORT = str(Path(sys.executable).with_name("homeport"))


def _docker_ok() -> bool:
    if not shutil.which("docker"):
        return False
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return False
    return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode == 0


def sh(*args: str, input_bytes: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["docker", "exec", "-i", NAME, *args], input=input_bytes, capture_output=True, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"{args}: {r.stderr.decode(errors='replace')}")
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def busybox_rootfs(work: Path) -> bytes:
    """A 2 MB image rootfs from Debian's busybox-static (apt-get download, dpkg -x) with a page to serve."""
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "busybox-static"], cwd=work, check=True, capture_output=True)
    deb = next(work.glob("busybox-static_*.deb"))
    root = work / "rootfs"
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    (root / "www").mkdir()
    (root / "www" / "index.html").write_text("hello from the host\n", encoding="utf-8")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root, arcname=".")
    return buf.getvalue()


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if not _docker_ok() or not shutil.which("apt-get") or not shutil.which("dpkg"):
        missing("Docker with homeport/dind:13, apt-get and dpkg", "make images builds the image")
    work = tmp_path_factory.mktemp("mac-journey")
    caps = [a for c in ("SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "MKNOD") for a in ("--cap-add", c)]
    subprocess.run(
        ["docker", "run", "-d", "--name", NAME, "--hostname", NAME, *caps,
         "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
         "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--cgroupns=host", "--tmpfs", "/run", "--tmpfs", "/run/lock",
         "--tmpfs", "/var/lib/docker:exec", IMAGE, "/lib/systemd/systemd"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while sh("docker", "info", check=False).returncode != 0:
            assert time.time() < deadline, "the engine in the target did not start"
            time.sleep(1)
        key = work / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        sh("useradd", "-m", "-s", "/bin/bash", "-G", "docker", "admin")
        sh("install", "-d", "-m", "0700", "-o", "admin", "-g", "admin", "/home/admin/.ssh")
        sh("sh", "-c", "cat > /home/admin/.ssh/authorized_keys && chown admin:admin /home/admin/.ssh/authorized_keys",
           input_bytes=(work / "id_ed25519.pub").read_bytes())  # fmt: skip
        address = json.loads(subprocess.run(["docker", "inspect", NAME], capture_output=True, check=True).stdout)[0][
            "NetworkSettings"
        ]["IPAddress"]
        hostkey = sh("cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.decode().split()[:2]
        known = work / "known_hosts"
        known.write_text(f"{address} {' '.join(hostkey)}\n", encoding="utf-8")
        # the stack: one container of the compose project `homeport`, its port on the host's loopback only
        port = free_port()
        sh("docker", "import", "-", "mac-journey/busybox:1", input_bytes=busybox_rootfs(work / "busybox"))
        sh("docker", "run", "-d", "--name", "homeport-web-1", "--label", "com.docker.compose.project=homeport",
           "--label", "com.docker.compose.service=web", "-p", f"127.0.0.1:{port}:8080", "mac-journey/busybox:1",
           "/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www")  # fmt: skip
        # the laptop: ssh settings, an ssh wrapper for the docker CLI, its own docker config, the inventory
        ssh_config = work / "ssh_config"
        ssh_config.write_text(
            f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n",
            encoding="utf-8",
        )
        bindir = work / "bin"
        bindir.mkdir()
        (bindir / "ssh").write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {ssh_config} "$@"\n', encoding="utf-8")
        (bindir / "ssh").chmod(0o755)
        inventory = work / "hosts.yml"
        hostvars = {
            "ansible_host": address,
            "ansible_user": "admin",
            "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={known}",
            "homeport_os_family": "Debian",
        }
        inventory.write_text(yaml.safe_dump({"homeport": {"hosts": {"mini": hostvars}}}), encoding="utf-8")
        env = {
            **os.environ,
            "PATH": f"{bindir}:{os.environ['PATH']}",
            "DOCKER_CONFIG": str(work / "docker-config"),
            "HOMEPORT_HOME": str(work / "homeport-home"),
            "HOMEPORT_VAULT_PASSWORD": "unused",
        }
        yield {"work": work, "inventory": inventory, "env": env, "port": port, "address": address}
    finally:
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)


def homeport(host, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [HOMEPORT, *args, "-i", str(host["inventory"])], env=host["env"], capture_output=True, text=True, check=False
    )


CTX = f"mac-journey-ctx-{os.getpid()}"


def test_connect_creates_a_working_context_idempotently(host):
    r = homeport(host, "connect", "--name", CTX)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"docker context {CTX} (ssh://admin@{host['address']}): created" in r.stdout
    assert "engine on mini: Docker" in r.stdout
    again = homeport(host, "connect", "--name", CTX)
    assert again.returncode == 0 and "already set up" in again.stdout, again.stdout + again.stderr
    ps = subprocess.run(
        ["docker", "--context", CTX, "ps", "--format", "{{.Names}}"],
        env=host["env"], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ps.returncode == 0, ps.stderr
    assert "homeport-web-1" in ps.stdout.split()


def test_connect_refuses_a_context_name_of_another_host(host):
    other = host["work"] / "other.yml"
    doc = yaml.safe_load(host["inventory"].read_text())
    doc["homeport"]["hosts"]["mini"]["ansible_host"] = "other-mac.tail1234.ts.net"
    other.write_text(yaml.safe_dump(doc), encoding="utf-8")
    homeport(host, "connect", "--name", CTX)  # make sure it exists (test order independent)
    r = subprocess.run(
        [HOMEPORT, "connect", "--name", CTX, "-i", str(other)], env=host["env"], capture_output=True, text=True
    )
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"already points at ssh://admin@{host['address']}" in r.stdout + r.stderr
    ls = subprocess.run(["docker", "context", "ls", "--format", "{{json .}}"], env=host["env"], capture_output=True,
                        text=True, check=True)  # fmt: skip
    endpoints = {json.loads(x)["Name"]: json.loads(x)["DockerEndpoint"] for x in ls.stdout.splitlines()}
    assert endpoints[CTX] == f"ssh://admin@{host['address']}"  # nothing changed


def test_tunnel_forwards_the_port_and_closes_on_ctrl_c(host):
    port = host["port"]
    proc = subprocess.Popen(
        [HOMEPORT, "tunnel", "-i", str(host["inventory"])],
        env=host["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "tunnel open" in line:
                break
        assert f"web: localhost:{port} -> mini 127.0.0.1:{port}" in "".join(lines), lines
        body = ""
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.3)
        assert body == "hello from the host\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert "tunnel closed" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    # the local port is free again: nothing was left listening (SO_REUSEADDR: the request's closed connection may
    # sit in TIME_WAIT on this port, which is not a listener; a listener would still make bind fail)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_tunnel_refuses_a_busy_local_port(host):
    port = host["port"]
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the previous test's connection may be in TIME_WAIT
        s.bind(("127.0.0.1", port))
        s.listen()
        r = homeport(host, "tunnel")
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"127.0.0.1:{port} (service web)" in r.stdout + r.stderr
