"""The laptop side of the Mac Mini journey: `homeport connect` and `homeport tunnel`.

``homeport connect`` creates (idempotently) a Docker context on this laptop whose endpoint is the host over SSH,
``ssh://USER@ADDRESS[:PORT]`` with the inventory's ``ansible_host`` (after the first bootstrap: the Mac's
tailnet/MagicDNS name), so ``docker --context homeport ps`` runs against the host's engine. The docker CLI then
runs ``ssh ... USER@ADDRESS docker system dial-stdio``: on macOS that finds docker only because the hardening
role's sshd drop-in sets ``SetEnv PATH=<Homebrew>/bin:...`` (sshd's default PATH for commands is
/usr/bin:/bin:/usr/sbin:/sbin, docker/cli#3045), and the remote docker talks to Colima through the ``colima``
context the colima role selects. A context name that already points at another endpoint is refused (exit 3),
naming it; the same name and endpoint is left alone. The docker CLI's ssh uses ~/.ssh (keys, known_hosts,
config) like any ssh: host key checking stays on.

``homeport tunnel [SERVICE...]`` forwards the published TCP ports of the stack's containers to 127.0.0.1 on this
laptop with one ``ssh -N -L ...`` (the runner's SSH settings, host key checking on, ExitOnForwardFailure). Ports
published on 127.0.0.1 on the host (the default on the Mac: Colima forwards them to the Mac's 127.0.0.1) are
reached through the SSH connection, so nothing needs to listen on the LAN. A local port already in use is
reported with the service that wanted it before anything starts (``--offset N`` moves every local port by N).
Ctrl-C closes the tunnel and exits 0.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

from homeport import quick

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 3
EXIT_UNREACHABLE = 4
DEFAULT_CONTEXT = "homeport"
_LOOPBACK = {"", "0.0.0.0", "::", "127.0.0.1", "::1"}  # noqa: S104 - addresses reached as the host's loopback


class ConnectError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


# ---- homeport connect --------------------------------------------------------------------------------------


def endpoint(host: quick.Host) -> str:
    """The docker endpoint of the host over SSH (docker's ssh:// form: ssh://[user@]host[:port])."""
    address = f"[{host.address}]" if ":" in host.address else host.address
    user = f"{host.user}@" if host.user else ""
    port = f":{host.port}" if host.port and host.port != 22 else ""
    return f"ssh://{user}{address}{port}"


def context_endpoints(docker: str = "docker") -> dict[str, str]:
    """Name -> docker endpoint of every context on this laptop (``docker context ls --format json``)."""
    r = subprocess.run([docker, "context", "ls", "--format", "{{json .}}"], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise ConnectError(f"docker context ls failed: {r.stderr.strip()}", EXIT_FAILED)
    out = {}
    for raw in r.stdout.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            row = json.loads(line)
            out[row.get("Name", "")] = row.get("DockerEndpoint", "")
    return out


def context_plan(name: str, wanted: str, existing: dict[str, str]) -> str:
    """``create`` | ``unchanged``; a name already used for another endpoint raises ConnectError (exit 3)."""
    if name == "default":
        raise ConnectError("--name default: that is Docker's own context; choose another name", EXIT_INVALID)
    if name not in existing:
        return "create"
    if existing[name] == wanted:
        return "unchanged"
    raise ConnectError(
        f"--name {name}: the docker context {name!r} already points at {existing[name]}, not {wanted}; "
        f"choose another name with --name, or remove it with `docker context rm {name}`",
        EXIT_INVALID,
    )


def create_argv(name: str, host: quick.Host, docker: str = "docker") -> list[str]:
    return [
        docker,
        "context",
        "create",
        name,
        "--description",
        f"homeport: {host.name} over SSH",
        "--docker",
        f"host={endpoint(host)}",
    ]


def check_argv(name: str, docker: str = "docker") -> list[str]:
    return [docker, "--context", name, "version", "--format", "{{.Server.Version}}"]


def connect(host: quick.Host, name: str = DEFAULT_CONTEXT, check: bool = True) -> dict[str, Any]:
    """Create the context when missing; then (``check``) ask the host's engine for its version through it."""
    docker = shutil.which("docker")
    if not docker:
        raise ConnectError("the docker CLI is not installed on this laptop (it is what uses the context)", EXIT_FAILED)
    wanted = endpoint(host)
    action = context_plan(name, wanted, context_endpoints(docker))
    if action == "create":
        r = subprocess.run(create_argv(name, host, docker), capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise ConnectError(f"docker context create {name} failed: {r.stderr.strip()}", EXIT_FAILED)
    result: dict[str, Any] = {"context": name, "endpoint": wanted, "action": action, "server_version": None}
    if check:
        r = subprocess.run(check_argv(name, docker), capture_output=True, text=True, check=False, timeout=120)
        if r.returncode != 0:
            hint = ""
            if "dial-stdio" in r.stderr or "command not found" in r.stderr or "exit status 127" in r.stderr:
                hint = (
                    " The host's sshd did not find docker for a non-interactive command (docker/cli#3045): run "
                    "`homeport bootstrap` (the hardening role sets sshd's SetEnv PATH on macOS)."
                )
            raise ConnectError(
                f"the context {name} was {'created' if action == 'create' else 'kept'}, but docker could not reach "
                f"the engine on {host.name} through it: {r.stderr.strip()[-500:]}{hint}",
                EXIT_FAILED,
            )
        result["server_version"] = r.stdout.strip()
    return result


# ---- homeport tunnel ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forward:
    service: str
    local_port: int
    remote_address: str
    remote_port: int

    def spec(self) -> str:
        remote = f"[{self.remote_address}]" if ":" in self.remote_address else self.remote_address
        return f"127.0.0.1:{self.local_port}:{remote}:{self.remote_port}"


def published_ports(inspect: list[dict]) -> list[tuple[str, str, int]]:
    """(service, host address, published port) of every running container's published TCP port, from
    ``docker inspect`` (NetworkSettings.Ports: {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}]})."""
    out = []
    for c in inspect:
        if not (c.get("State") or {}).get("Running"):
            continue
        service = ((c.get("Config") or {}).get("Labels") or {}).get(quick.SERVICE_LABEL) or c.get("Name", "")
        ports = ((c.get("NetworkSettings") or {}).get("Ports")) or {}
        for key in sorted(ports):
            if not key.endswith("/tcp"):
                continue
            for binding in ports[key] or []:
                port = str(binding.get("HostPort") or "")
                if port.isdigit():
                    out.append((service.lstrip("/"), str(binding.get("HostIp") or ""), int(port)))
    return out


def plan_forwards(ports: list[tuple[str, str, int]], services: list[str], offset: int = 0) -> list[Forward]:
    """One forward per published port (an IPv4 and an IPv6 binding of the same port count once). Ports on the
    host's loopback or on every address are reached as 127.0.0.1 on the host; others (the tailnet address on
    Debian) as that address. Unknown services raise ConnectError (exit 3) naming the known ones."""
    known = sorted({s for s, _a, _p in ports})
    unknown = [s for s in services if s not in known]
    if unknown:
        raise ConnectError(
            f"unknown service(s) {', '.join(unknown)}: the stack publishes ports for "
            + (", ".join(known) if known else "no service (homeport deploy first)"),
            EXIT_INVALID,
        )
    chosen: dict[int, Forward] = {}
    for service, address, port in ports:
        if services and service not in services:
            continue
        remote = "127.0.0.1" if address in _LOOPBACK else address
        if port in chosen and chosen[port].remote_address == "127.0.0.1":
            continue
        chosen[port] = Forward(service, port + offset, remote, port)
    if not chosen:
        raise ConnectError("no published port to forward: the stack has no running container with ports", 1)
    for f in chosen.values():
        if not 0 < f.local_port < 65536:
            raise ConnectError(f"--offset {offset}: local port {f.local_port} for {f.service} is out of range", 3)
    return sorted(chosen.values(), key=lambda f: (f.local_port, f.service))


def busy_ports(forwards: list[Forward]) -> list[Forward]:
    """The forwards whose local port 127.0.0.1:PORT cannot be bound here (something listens on it)."""
    busy = []
    for f in forwards:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", f.local_port))
            except OSError:
                busy.append(f)
    return busy


def tunnel_argv(host: quick.Host, forwards: list[Forward]) -> list[str]:
    """``ssh -N`` with one ``-L`` per forward: quick.py's SSH settings (host key checking on, BatchMode, the
    inventory's port, key and common args), but its own connection, not the shared ControlMaster: forwards added
    through a master would outlive the tunnel (ControlPersist) and keep the local ports busy after Ctrl-C."""
    full = quick.ssh_argv(host, "true")  # [ssh, options..., -T, [-p P], [-i K], TARGET, sh, -c, 'true']
    target = full[-4]
    kept = []  # the -o options without the ControlMaster settings (ssh keeps the FIRST value of an option)
    it = iter(full[1:-4])
    for arg in it:
        if arg == "-o":
            value = next(it)
            if not value.startswith(("ControlMaster=", "ControlPersist=", "ControlPath=")):
                kept += ["-o", value]
        elif arg != "-T":
            kept.append(arg)
    forwards_args = [arg for f in forwards for arg in ("-L", f.spec())]
    return ["ssh", "-o", "ControlMaster=no", "-o", "ControlPath=none", *kept, "-N", "-T",
            "-o", "ExitOnForwardFailure=yes", *forwards_args, target]  # fmt: skip


def discover(host: quick.Host) -> list[dict]:
    """``docker inspect`` of the stack's containers on the host (one SSH call, quick.py's engine choice)."""
    quick._prepare()
    r = subprocess.run(
        quick.ssh_argv(host, quick.remote_script(host, "ps")), capture_output=True, text=True, check=False
    )
    try:
        quick._check(host, r)
    except quick.QuickError as exc:
        raise ConnectError(str(exc), exc.code) from None
    if r.returncode != 0:
        raise ConnectError(f"{host.name}: docker ps failed: {r.stderr.strip()[-400:]}", EXIT_FAILED)
    return json.loads(r.stdout.partition(quick.SEPARATOR)[0].strip() or "[]")


def run_tunnel(argv: list[str], on_ready=None) -> int:
    """Run ssh until it ends or Ctrl-C (SIGINT) / SIGTERM: then close it and return 0."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def _term(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _term)
    try:
        if on_ready:
            on_ready()
        rc = proc.wait()
    except KeyboardInterrupt:
        quick._stop(proc)
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)
    if rc == 255:
        return EXIT_UNREACHABLE
    return EXIT_OK if rc == 0 else EXIT_FAILED


def tunnel_plan(host: quick.Host, services: list[str], offset: int = 0) -> list[Forward]:
    """Forwards for the stack's published ports, refused (exit 3) when a local port is busy, naming it."""
    forwards = plan_forwards(published_ports(discover(host)), services, offset)
    busy = busy_ports(forwards)
    if busy:
        names = "; ".join(f"127.0.0.1:{f.local_port} (service {f.service})" for f in busy)
        raise ConnectError(
            f"local port already in use on this laptop: {names}. Stop what listens there, or move every local "
            f"port with --offset N (e.g. --offset 10000)",
            EXIT_INVALID,
        )
    return forwards
