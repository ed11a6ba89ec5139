"""The bench's test host: a systemd + sshd container from homeport/debian:13 reached over ssh through the
delay proxy (bench/proxy.py), with key auth, a strict known_hosts file and a sudo user (so `become` is real).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from proxy import DelayProxy

IMAGE = "homeport/debian:13"
USER = "bench"
_SYSTEMD_ARGS = [
    "--cap-add",
    "SYS_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "--cgroupns",
    "host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:ro",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--tmpfs",
    "/tmp:exec",  # noqa: S108 - a tmpfs inside the test container, not a path on this machine
]
_SETUP = f"""
set -eu
id {USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {USER}
install -d -m 0700 -o {USER} -g {USER} /home/{USER}/.ssh
cat > /home/{USER}/.ssh/authorized_keys
chown {USER}:{USER} /home/{USER}/.ssh/authorized_keys
chmod 0600 /home/{USER}/.ssh/authorized_keys
echo '{USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{USER}
chmod 0440 /etc/sudoers.d/{USER}
visudo -cq
# every bench connection reaches sshd from the delay proxy's one address: keep OpenSSH >= 9.8's per-source
# penalties (the link check's banner-only connections count as "noauth") from refusing a later phase
if sshd -T 2>/dev/null | grep -qi '^persourcepenalties'; then
  echo 'PerSourcePenalties no' > /etc/ssh/sshd_config.d/00-bench.conf
  sshd -t
  systemctl reload ssh
fi
"""


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def ensure_key(workdir: Path) -> Path:
    key = workdir / "id_ed25519"
    if not key.exists():
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "homeport-bench", "-f", str(key)])
    return key


class BenchHost:
    """One disposable target host behind its own delay proxy."""

    def __init__(self, name: str, workdir: Path, rtt_ms: float, image: str = IMAGE,
                 run_flags: list[str] | None = None) -> None:  # fmt: skip
        self.name = name
        self.run_flags = list(_SYSTEMD_ARGS if run_flags is None else run_flags)
        self.workdir = workdir
        self.rtt_ms = rtt_ms
        self.image = image
        self.key = ensure_key(workdir)
        self.known_hosts = workdir / f"known_hosts-{name}"
        self.proxy: DelayProxy | None = None
        self.address = ""

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> BenchHost:
        if shutil.which("docker") is None:
            raise RuntimeError("docker is not installed: the bench needs a Docker engine")
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False)
        _run(["docker", "run", "-d", "--name", self.name, "--hostname", "bench", *self.run_flags, self.image])
        self._wait_for_sshd()
        pub = (self.key.with_suffix(".pub")).read_text()
        _run(["docker", "exec", "-i", self.name, "sh", "-c", _SETUP], input=pub)
        self.check_sudo_without_tty()
        info = json.loads(_run(["docker", "inspect", self.name]).stdout)[0]
        self.address = info["NetworkSettings"]["IPAddress"]
        if not self.address:
            raise RuntimeError(f"container {self.name} has no IP address on the default bridge")
        hostkey = _run(["docker", "exec", self.name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()
        self.proxy = DelayProxy(self.address, 22, self.rtt_ms).start()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.proxy.port} {hostkey[0]} {hostkey[1]}\n")
        return self

    def stop(self) -> None:
        if self.proxy:
            self.proxy.stop()
            self.proxy = None
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False)

    def __enter__(self) -> BenchHost:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_for_sshd(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(
                ["docker", "exec", self.name, "systemctl", "is-active", "ssh.service"],
                capture_output=True,
                text=True,
                check=False,
            )
            if r.stdout.strip() == "active":
                return
            time.sleep(0.5)
        raise RuntimeError(f"sshd did not start in {self.name} within {timeout:.0f} s")

    # -- checks ---------------------------------------------------------------------------------------------
    def check_sudo_without_tty(self) -> None:
        """Pipelining with become needs sudo to work without a tty: fail loudly if `requiretty` is set."""
        r = subprocess.run(
            ["docker", "exec", self.name, "sh", "-c", "grep -rhs '^[^#]*requiretty' /etc/sudoers /etc/sudoers.d"],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.stdout.strip():
            raise RuntimeError(f"sudoers sets requiretty on {self.name} ({r.stdout.strip()}): pipelining would break")

    def gateway(self) -> str:
        """The address this host sees the proxy's connections come from (the Docker bridge gateway)."""
        out = _run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.Gateway}} {{end}}", self.name])
        if not out.stdout.split():
            raise RuntimeError(f"container {self.name} has no network gateway")
        return out.stdout.split()[0]

    def exec(self, *cmd: str) -> str:
        return _run(["docker", "exec", self.name, *cmd]).stdout

    # -- inventory ------------------------------------------------------------------------------------------
    def inventory(self, path: Path, extra_vars: dict | None = None) -> Path:
        assert self.proxy is not None, "start() the host first"
        host = {
            "ansible_host": "127.0.0.1",
            "ansible_port": self.proxy.port,
            "ansible_user": USER,
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_extra_args": (
                f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
            ),
            **(extra_vars or {}),
        }
        path.write_text(json.dumps({"all": {"hosts": {"bench": host}}}, indent=2) + "\n")
        return path
