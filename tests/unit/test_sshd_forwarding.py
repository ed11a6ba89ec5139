"""Issue 27, finding 9: the hardening role's sshd drop-in (roles/hardening/templates/100-homeport.conf.j2, rendered
by Ansible's template module as the role does) against a real sshd: a Debian 13 container (homeport/debian:13) whose
sshd reads only that drop-in's policy (Debian's sshd_config includes sshd_config.d first), an admin user with a key,
and a web server listening on every address of the container (so only sshd's policy decides).

`homeport tunnel`'s forward (connect.tunnel_argv: ssh -N -L 127.0.0.1:L:127.0.0.1:PORT) still works, as do commands
(`docker --context` runs `ssh HOST docker system dial-stdio`, a command); a forward through the host to another
address (the LAN), a remote forward and a Unix socket forward are refused."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ansible_local import render_sshd_dropin
from conftest import missing

from homeport import connect, quick

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "homeport/debian:13"
NAME = f"sshd-forwarding-{os.getpid()}"
WEB = 8080
pytestmark = pytest.mark.docker


def _docker_ok() -> bool:
    if not shutil.which("docker") or not shutil.which("ssh"):
        return False
    return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode == 0


def sh(script: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["docker", "exec", NAME, "sh", "-c", script], capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"{script}: {r.stdout}{r.stderr}")
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if not _docker_ok():
        missing(f"Docker with {IMAGE} and ssh", "make images builds the image; .ci/run installs openssh-client")
    work = tmp_path_factory.mktemp("sshd-forwarding")
    dropin = work / "100-homeport.conf"
    render_sshd_dropin(work, homeport_os_family="Debian")
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", NAME, "--entrypoint", "sleep", IMAGE, "infinity"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        key = work / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        subprocess.run(["docker", "cp", str(dropin), f"{NAME}:/etc/ssh/sshd_config.d/100-homeport.conf"], check=True)
        subprocess.run(["docker", "cp", f"{key}.pub", f"{NAME}:/tmp/admin.pub"], check=True)
        sh(
            "set -e; mkdir -p /run/sshd; useradd -m -s /bin/bash admin; install -d -m 0700 -o admin /home/admin/.ssh;"
            " install -m 0600 -o admin /tmp/admin.pub /home/admin/.ssh/authorized_keys; ssh-keygen -A >/dev/null;"
            " /usr/sbin/sshd -t && /usr/sbin/sshd;"
            f" cd /tmp && (nohup python3 -m http.server --bind 0.0.0.0 {WEB} >/dev/null 2>&1 &)"
        )
        address = subprocess.run(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", NAME],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        keys = sh("cat /etc/ssh/ssh_host_*_key.pub").stdout.splitlines()
        known = work / "known_hosts"
        known.write_text("".join(f"{address} {' '.join(k.split()[:2])}\n" for k in keys), encoding="utf-8")
        deadline = time.time() + 20
        while sh(f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {WEB}), 1)'", False).returncode:
            assert time.time() < deadline, "the web server did not start"
            time.sleep(0.2)
        ssh = ["ssh", "-F", "/dev/null", "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
               "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-i", str(key)]  # fmt: skip
        yield {"address": address, "key": str(key), "known": str(known), "ssh": ssh, "dropin": dropin.read_text()}
    finally:
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)


def get(port: int, timeout: float = 15) -> str:
    """The page behind 127.0.0.1:PORT on this machine, or '' when the forward gives none."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError):
                return ""
            time.sleep(0.2)  # the ssh client is not listening yet
        except OSError:
            return ""  # accepted by the ssh client, then closed: sshd refused the channel
    return ""


def forward(host, spec: str, port: int) -> tuple[str, str]:
    """ssh -N -L SPEC, one GET through it; the page and ssh's stderr."""
    proc = subprocess.Popen(
        [*host["ssh"], "-N", "-T", "-o", "ExitOnForwardFailure=yes", "-L", spec, f"admin@{host['address']}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        page = get(port)
    finally:
        err = stop(proc)
    return page, err


def stop(proc: subprocess.Popen) -> str:
    """End ssh and return its stderr: SIGTERM, then SIGKILL if it has not ended in 20 s (seen in a loaded CI run:
    ssh still in its handshake when the GET gave up)."""
    proc.terminate()
    try:
        return proc.communicate(timeout=20)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[1]


def test_the_tunnel_forward_of_homeport_tunnel_still_works(host) -> None:
    local = free_port()
    target = quick.Host(name="mini", address=host["address"], user="admin", key=host["key"],
                        common_args=f"-F /dev/null -o UserKnownHostsFile={host['known']}")  # fmt: skip
    argv = connect.tunnel_argv(target, [connect.Forward("web", local, "127.0.0.1", WEB)])
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        page = get(local)
    finally:
        err = stop(proc)
    assert "Directory listing" in page, err
    # `docker --context` over SSH runs a command (docker system dial-stdio), not a forward
    r = subprocess.run([*host["ssh"], f"admin@{host['address']}", "echo", "dial-ok"], capture_output=True, text=True)
    assert r.stdout.strip() == "dial-ok", r.stderr


def test_a_forward_through_the_host_to_another_address_is_refused(host) -> None:
    """The container's own eth0 address stands for the LAN: the web server answers there too (see the control)."""
    fetch = f"import urllib.request as u; print(u.urlopen('http://{host['address']}:{WEB}/').read().decode())"
    assert "Directory listing" in sh(f'python3 -c "{fetch}"').stdout
    local = free_port()
    page, err = forward(host, f"127.0.0.1:{local}:{host['address']}:{WEB}", local)
    assert page == "", "sshd forwarded to an address outside PermitOpen"
    assert "administratively prohibited" in err, err


def test_remote_and_socket_forwards_are_refused(host) -> None:
    r = subprocess.run(
        [*host["ssh"], "-N", "-T", "-o", "ExitOnForwardFailure=yes", "-R", f"127.0.0.1:{free_port()}:127.0.0.1:22",
         f"admin@{host['address']}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert r.returncode != 0 and "remote port forwarding failed" in r.stderr, r.stderr
    # a Unix socket server that counts its connections (the docker socket stands for it: a forward to it is root)
    server = (
        "import socket, os\n"
        "s = socket.socket(socket.AF_UNIX); s.bind('/tmp/app.sock'); os.chmod('/tmp/app.sock', 0o777); s.listen()\n"
        "while True:\n"
        "    c, _ = s.accept(); open('/tmp/app.count', 'a').write('x'); c.close()\n"
    )
    sh(f"cat > /tmp/app.py <<'EOF'\n{server}EOF\n(nohup python3 /tmp/app.py >/dev/null 2>&1 &); sleep 1")
    sh('su admin -c "python3 -c \'import socket; socket.socket(socket.AF_UNIX).connect(\\"/tmp/app.sock\\")\'"')
    assert sh("cat /tmp/app.count").stdout == "x"  # the control: the admin user can reach it on the host
    local = free_port()
    page, err = forward(host, f"127.0.0.1:{local}:/tmp/app.sock", local)
    assert page == "" and "open failed" in err, err
    assert sh("cat /tmp/app.count").stdout == "x", "sshd forwarded a connection to the Unix socket"


def test_sshd_in_effect_has_the_forwarding_policy(host) -> None:
    """What the molecule hardening verifier checks with `sshd -T` too."""
    lines = sh("/usr/sbin/sshd -T -C user=admin,host=laptop,addr=100.64.0.9").stdout.splitlines()
    effective = dict(line.split(" ", 1) for line in lines)
    assert effective["allowtcpforwarding"] == "local"
    assert effective["permitopen"].split() == ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    assert effective["permitlisten"] == "none"
    for key in ("allowstreamlocalforwarding", "allowagentforwarding", "permittunnel", "gatewayports"):
        assert effective[key] == "no", (key, effective[key])
