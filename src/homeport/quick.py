"""Daily verbs that go straight over SSH, no playbook run: `homeport ps`, `logs`, `exec`, `restart`.

Each verb is one ``ssh`` call (``exec``: two, the service is resolved first so that the exit code of the user's
command is passed through untouched) with the runner's SSH settings (homeport.runner.ssh_master_args, the one place
that also builds the playbook runs' ssh options): host key checking on, the inventory's host/user/port/key and
common args, compression, ControlPersist 600 s at the ControlPath ansible-core's ssh plugin uses, so a verb right
after a playbook run (or another verb) reuses that SSH master and costs one round trip, and a playbook run after a
verb joins a master as compressed as its own (issue 29).

The remote side is a short POSIX sh script built here (:func:`remote_script`). It talks to the stack's compose
project by its labels (``com.docker.compose.project`` = ``stack_project_name``, ``com.docker.compose.service``),
as ``docker compose`` itself finds a project's containers, so no compose file is needed on the way.

The engine: :func:`engine_prelude` is the ONE place that chooses it. macOS (Colima): ``DOCKER_HOST`` =
``unix://<home>/.colima/<profile>/docker.sock``, the socket Colima's FAQ tells Docker clients to use
(https://github.com/abiosoft/colima/blob/main/docs/FAQ.md, "Cannot connect to the Docker daemon"), and the
Homebrew docker CLI on PATH. Debian: the default socket, through ``sudo -n`` when the login user cannot write it
(a docker group added by the bootstrap counts only in new SSH sessions). An explicit ``docker_host`` (the shared
``homeport_docker_host`` fact of issue 15, when it exists) wins over both.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeport import paths, runner, safe_text
from homeport.runner import control_path_dir

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import JustifyMethod

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
UNKNOWN_SERVICE_RC = 97  # the remote script's "no such service" (ps, logs, restart, resolve)
NO_ENGINE_RC = 98  # the remote script's "no docker CLI / engine"
SEPARATOR = "--- homeport stats ---"
MIB = 1024 * 1024
SSH_CONNECT_TIMEOUT = 15
_LOGIN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")


class QuickError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class Host:
    """One inventory host with what the quick verbs need."""

    name: str
    address: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    common_args: str = ""
    os_family: str | None = None  # Darwin | Debian | None (decided on the host by uname)
    project: str = "homeport"
    colima_profile: str = "default"
    colima_user: str | None = None
    docker_host: str | None = None
    state_dir: str | None = None  # homeport_state_dir when the inventory sets it (`homeport drift`, issue 29)
    extra: dict[str, Any] = field(default_factory=dict)


def default_state_dir(os_family: Any) -> str | None:
    """The roles' homeport_state_dir for the inventory's homeport_os_family (roles/homeport/defaults/main.yml: the
    roles follow that variable, not the host's uname), or None when the inventory does not set it (then the host
    decides by its uname, as the roles' facts would). The intervention record and `homeport drift` use it: without
    it, a host whose homeport_os_family is Darwin but whose uname is not (the macOS simulation of
    molecule/mac_journey) was read and written where the roles never put their state."""
    if os_family in (None, ""):
        return None
    return "/usr/local/var/homeport" if str(os_family) == "Darwin" else "/var/lib/homeport"


# ---- the engine --------------------------------------------------------------------------------------------


def engine_prelude(host: Host) -> str:
    """Shell lines that leave ``$D`` holding the docker command for this host's engine (the one place to change)."""
    if host.docker_host:
        return f"export DOCKER_HOST={shlex.quote(host.docker_host)}\nD=docker\n"
    # tilde expansion in an assignment (POSIX) gives the Colima user's home; a name that is not a plain login name
    # is never put into the script
    user = host.colima_user if host.colima_user and _LOGIN_RE.match(host.colima_user) else None
    home = f"H=~{user}" if user else 'H="$HOME"'
    if not _NAME_RE.match(host.colima_profile):
        raise QuickError(f"colima_profile: {host.colima_profile!r} is not a Colima profile name ([A-Za-z0-9._-])", 3)
    sock = f"$H/.colima/{host.colima_profile}/docker.sock"
    darwin = f'PATH=/opt/homebrew/bin:/usr/local/bin:$PATH; {home}; export DOCKER_HOST="unix://{sock}"; D=docker'
    debian = 'D=docker; if [ "$(id -u)" != 0 ] && [ ! -w /var/run/docker.sock ]; then D="sudo -n docker"; fi'
    if host.os_family == "Darwin":
        return darwin + "\n"
    if host.os_family:
        return debian + "\n"
    return f'if [ "$(uname -s)" = Darwin ]; then {darwin}; else {debian}; fi\n'


# ---- remote scripts (pure: unit-tested) --------------------------------------------------------------------


def _filters(project: str, service: str | None = None) -> str:
    out = f"--filter label={shlex.quote(f'{PROJECT_LABEL}={project}')}"
    if service is not None:
        out += f" --filter label={shlex.quote(f'{SERVICE_LABEL}={service}')}"
    return out


def remote_script(host: Host, verb: str, service: str | None = None, args: list[str] | None = None) -> str:
    """The sh script one verb runs on the host.

    ``ps``: the project's containers as ``docker inspect`` JSON, the separator line, then ``docker stats`` rows.
    ``resolve``: the ID of the service's first running container (else its first container).
    ``logs``/``restart``: resolve, then ``docker logs ARGS ID`` / ``docker restart IDS``.
    An unknown service ends with exit 97 and, on stderr, the project's services (one ``known: a b`` line).
    """
    args = list(args or [])
    lines = [
        "set -u",
        engine_prelude(host).rstrip("\n"),
        f'command -v docker >/dev/null 2>&1 || {{ echo "homeport: no docker CLI on this host" >&2; '
        f"exit {NO_ENGINE_RC}; }}",
    ]
    project = _filters(host.project)
    if verb == "ps":
        lines += [
            f"ids=$($D ps -aq --no-trunc {project}) || exit {NO_ENGINE_RC}",
            'if [ -z "$ids" ]; then echo "[]"; else $D inspect $ids; fi',
            f"echo {shlex.quote(SEPARATOR)}",
            "if [ -n \"$(echo $ids)\" ]; then $D stats --no-stream --format '{{json .}}' $ids; fi",
        ]
        return "\n".join(lines) + "\n"
    if service is None:
        raise ValueError(f"{verb} needs a service")
    svc = _filters(host.project, service)
    lines += [
        f"ids=$($D ps -q --no-trunc {svc}) || exit {NO_ENGINE_RC}",
        f'[ -n "$ids" ] || ids=$($D ps -aq --no-trunc {svc})',
        'if [ -z "$ids" ]; then',
        f"  known=$($D ps -a {project} --format '{{{{.Label \"{SERVICE_LABEL}\"}}}}' | sort -u | tr '\\n' ' ')",
        f'  echo "known: $known" >&2; exit {UNKNOWN_SERVICE_RC}',
        "fi",
        'first=$(echo "$ids" | head -n 1)',
    ]
    if verb == "resolve":
        lines.append('echo "$first"')
    elif verb == "logs":
        follow = "--follow" in args
        # the container's stderr joins stdout (in order); the script's own stderr stays for its messages
        cmd = " ".join(["$D", "logs", *map(shlex.quote, args), '"$first"', "2>&1"])
        if follow:
            # ssh does not end a remote command without a TTY when the client goes away: end `docker logs -f`
            # when our stdin (the ssh channel) closes, i.e. when `homeport logs -f` is stopped with Ctrl-C
            lines += [f"{cmd} </dev/null & pid=$!", "cat >/dev/null; kill $pid 2>/dev/null; wait $pid 2>/dev/null",
                      "exit 0"]  # fmt: skip
        else:
            lines.append(f"exec {cmd}")
    elif verb == "restart":
        lines.append("exec $D restart $ids")
    else:
        raise ValueError(f"unknown verb {verb}")
    return "\n".join(lines) + "\n"


def exec_argv(container: str, command: list[str], tty: bool) -> str:
    """The remote ``docker exec`` of ``homeport exec`` (after the service was resolved to ``container``)."""
    flags = ["-it"] if tty else ["-i"]
    return " ".join(["$D", "exec", *flags, shlex.quote(container), *map(shlex.quote, command)])


def logs_args(follow: bool = False, since: str | None = None, tail: str | None = None) -> list[str]:
    args = []
    if follow:
        args.append("--follow")
    if since:
        args += ["--since", since]
    if tail:
        args += ["--tail", tail]
    return args


# ---- ssh ---------------------------------------------------------------------------------------------------


def control_path(host: Host) -> str:
    """The ControlPath ansible-core's ssh plugin uses for this host (so a verb reuses a playbook run's master)."""
    return runner.control_path(host.address, host.port, host.user)


def ssh_argv(host: Host, remote: str, tty: bool = False) -> list[str]:
    """ssh with the runner's settings (the master's options of playbook runs, host key checking on, BatchMode),
    running ``remote`` with sh."""
    cmd = ["ssh", *runner.ssh_master_args(host.address, host.port, host.user), "-o", "BatchMode=yes"]
    cmd += ["-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={SSH_CONNECT_TIMEOUT}"]
    cmd += shlex.split(host.common_args)
    cmd.append("-tt" if tty else "-T")
    if host.port:
        cmd += ["-p", str(host.port)]
    if host.key:
        cmd += ["-i", str(Path(host.key).expanduser())]
    cmd.append(f"{host.user}@{host.address}" if host.user else host.address)
    return [*cmd, "sh", "-c", shlex.quote(remote)]


# ---- inventory ---------------------------------------------------------------------------------------------


def load_hosts(inventory: Path) -> list[Host]:
    """The hosts of the group homeport (all hosts when it is empty) with their connection and stack settings."""
    from ansible.template import Templar  # noqa: PLC0415

    from homeport import doctor  # noqa: PLC0415 - shares the doctor's inventory loading (vault included)

    try:
        loaded = doctor.inventory_vars(inventory)
    except doctor.InventoryError as exc:
        raise QuickError(f"the inventory does not load: {exc}", 3) from None
    hosts = []
    for target, hv, loader in loaded:
        templar = Templar(loader=loader, variables=hv)

        def get(name: str, default: Any = None, hv=hv, templar=templar) -> Any:
            value = hv.get(name)
            if value in (None, ""):
                return default
            try:
                return templar.template(value)
            except Exception:  # an undefined variable in a template: leave the default
                return default

        hosts.append(
            Host(
                name=target.name,
                address=target.address,
                user=target.user,
                port=target.port,
                key=target.key,
                common_args=target.common_args,
                os_family=get("homeport_os_family"),
                project=str(get("stack_project_name", "homeport")),
                colima_profile=str(get("colima_profile", "default")),
                colima_user=get("colima_user"),
                docker_host=get("homeport_docker_host"),
                state_dir=get("homeport_state_dir"),
            )
        )
    return hosts


def pick_host(hosts: list[Host], limit: str | None) -> Host:
    if limit:
        chosen = [h for h in hosts if limit in (h.name, h.address)]
        if not chosen:
            raise QuickError(f"--limit {limit}: no such host; hosts: {', '.join(h.name for h in hosts)}", 3)
        return chosen[0]
    if not hosts:
        raise QuickError("the inventory has no host in the group homeport", 3)
    if len(hosts) > 1:
        raise QuickError(f"several hosts ({', '.join(h.name for h in hosts)}): choose one with --limit NAME", 3)
    return hosts[0]


# ---- parsing `ps` ------------------------------------------------------------------------------------------


def _bytes(text: str) -> int | None:
    """docker stats' MemUsage figure ("41.2MiB"): the abbreviation says binary or decimal (module_utils/sizes.py)."""
    return paths.sizes().display_bytes(text.strip())


def parse_ps(output: str) -> list[dict[str, Any]]:
    """Rows of ``homeport ps`` from the ``ps`` script's output (docker inspect JSON, separator, stats lines)."""
    inspect_text, _, stats_text = output.partition(SEPARATOR)
    containers = json.loads(inspect_text.strip() or "[]")
    usage = {}
    for raw in stats_text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            row = json.loads(line)
            used = _bytes(str(row.get("MemUsage", "")).split("/")[0])
            usage[str(row.get("ID", ""))[:12]] = used
    rows = []
    for c in containers:
        labels = c.get("Config", {}).get("Labels") or {}
        state = c.get("State", {})
        limit = (c.get("HostConfig") or {}).get("Memory") or 0
        used = usage.get(c.get("Id", "")[:12])
        rows.append(
            {
                "service": labels.get(SERVICE_LABEL),
                "name": c.get("Name", "").lstrip("/"),
                "image": c.get("Config", {}).get("Image"),
                "state": state.get("Status"),
                "health": (state.get("Health") or {}).get("Status"),
                "restarts": int(c.get("RestartCount") or 0),
                "started_at": state.get("StartedAt"),
                "memory_usage_mb": round(used / MIB, 1) if used is not None and state.get("Running") else None,
                "memory_limit_mb": round(limit / MIB, 1) if limit else None,
            }
        )
    return sorted(rows, key=lambda r: (r["service"] or "", r["name"]))


def unknown_service_message(service: str, stderr: str, project: str) -> str:
    known = ""
    for line in stderr.splitlines():
        if line.startswith("known:"):
            known = ", ".join(line.split(":", 1)[1].split())
    return f"unknown service {service!r} in the stack {project!r}; " + (
        f"known services: {known}" if known else "no service of this stack is deployed (homeport deploy)"
    )


# ---- running -----------------------------------------------------------------------------------------------


def _prepare() -> None:
    control_path_dir().mkdir(parents=True, exist_ok=True, mode=0o700)


def _check(host: Host, r: subprocess.CompletedProcess, service: str | None = None) -> None:
    if r.returncode == UNKNOWN_SERVICE_RC:
        raise QuickError(unknown_service_message(service or "", r.stderr, host.project), 3)
    if r.returncode == NO_ENGINE_RC:
        raise QuickError(f"{host.name}: the Docker engine did not answer: {r.stderr.strip()[-400:]}", 1)
    if r.returncode == 255:  # ssh's own failure
        raise QuickError(f"{host.name}: SSH to {host.address} failed: {r.stderr.strip()[-400:]}", 4)


def ps(host: Host) -> list[dict[str, Any]]:
    _prepare()
    r = subprocess.run(ssh_argv(host, remote_script(host, "ps")), capture_output=True, text=True, check=False)
    _check(host, r)
    if r.returncode != 0:
        raise QuickError(f"{host.name}: docker ps failed: {r.stderr.strip()[-400:]}", 1)
    return parse_ps(r.stdout)


def resolve(host: Host, service: str) -> str:
    _prepare()
    script = remote_script(host, "resolve", service)
    r = subprocess.run(ssh_argv(host, script), capture_output=True, text=True, check=False)
    _check(host, r, service)
    if r.returncode != 0 or not r.stdout.strip():
        raise QuickError(f"{host.name}: could not find the containers of {service}: {r.stderr.strip()[-400:]}", 1)
    return r.stdout.strip().splitlines()[-1]


def restart(host: Host, service: str) -> str:
    _prepare()
    r = subprocess.run(
        ssh_argv(host, remote_script(host, "restart", service)), capture_output=True, text=True, check=False
    )
    _check(host, r, service)
    if r.returncode != 0:
        raise QuickError(f"{host.name}: docker restart failed: {r.stderr.strip()[-400:]}", 1)
    return r.stdout


def _chunks(stream: Any) -> Iterator[bytes]:
    """What a pipe holds as soon as it holds anything (a followed log line shows at once), until its end."""
    while chunk := stream.read1(65536):
        yield chunk


def logs(host: Host, service: str, args: list[str], raw: bool = False) -> int:
    """Stream the logs to our stdout/stderr. With --follow, Ctrl-C ends it cleanly (exit 0) and the remote
    ``docker logs`` with it.

    The container's output is shown with its control characters escaped (homeport.safe_text: no OSC 52 clipboard
    write, title change, hidden link, concealed text or cursor move reaches the terminal); ``raw`` passes the bytes
    through untouched (for a pipe into a file, or colours the operator trusts)."""
    _prepare()
    argv = ssh_argv(host, remote_script(host, "logs", service, args))
    follow = "--follow" in args
    # stderr is the script's own (the unknown-service line) and ssh's: kept aside, printed at the end. With
    # --follow, stdin stays an open pipe: the remote script ends `docker logs -f` when it closes.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="backslashreplace") as err:
        stdin = subprocess.PIPE if follow else subprocess.DEVNULL
        stdout = None if raw else subprocess.PIPE
        if raw:
            sys.stdout.flush()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=err)
        try:
            if proc.stdout is not None:
                safe_text.copy_stream(_chunks(proc.stdout), sys.stdout)
            rc = proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            return 0
        err.seek(0)
        stderr = err.read()
    _check(host, subprocess.CompletedProcess(argv, rc, "", stderr), service)
    if stderr:
        sys.stderr.write(stderr if raw else safe_text.clean(stderr))
    return rc


def _stop(proc: subprocess.Popen) -> None:
    """End ssh (which closes the channel: the remote script then stops `docker logs -f`)."""
    if proc.stdin:
        proc.stdin.close()
    for sig, wait in ((None, 3), (signal.SIGTERM, 3), (signal.SIGKILL, 3)):
        if sig is not None and proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:
            continue


def exec_(host: Host, service: str, command: list[str], tty: bool | None = None) -> int:
    """Run COMMAND in the service's first running container; interactive with a TTY when ours is a terminal."""
    if not command:
        raise QuickError("homeport exec SERVICE -- COMMAND: no command given", 3)
    container = resolve(host, service)
    if tty is None:
        tty = sys.stdin.isatty() and sys.stdout.isatty()
    script = engine_prelude(host) + "exec " + exec_argv(container, command, tty) + "\n"
    return subprocess.run(ssh_argv(host, script, tty=tty), check=False).returncode


def render_ps(console, host: Host, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    # labels and names come from the host (any container can carry the compose labels): Text, never markup, and
    # control characters shown escaped (homeport.safe_text)
    if not rows:
        console.print(safe_text.text(f"{host.name}: no container of the stack {host.project!r} (homeport deploy)"))
        return
    title = safe_text.text(f"{host.name} · stack {host.project}")
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("service", "left"), ("container", "left"), ("state", "left"), ("health", "left"), ("memory", "right"),
        ("limit", "right"), ("restarts", "right"))  # fmt: skip
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for r in rows:
        good = r["state"] == "running" and r["health"] in (None, "healthy")
        table.add_row(
            safe_text.text(r["service"] or "-"),
            safe_text.text(r["name"]),
            safe_text.text(r["state"] or "?", style="green" if r["state"] == "running" else "red"),
            safe_text.text(r["health"] or "-", style="green" if good else "red"),
            "-" if r["memory_usage_mb"] is None else f"{r['memory_usage_mb']:.0f} MiB",
            "-" if r["memory_limit_mb"] is None else f"{r['memory_limit_mb']:.0f} MiB",
            Text(str(r["restarts"]), style="yellow" if r["restarts"] else ""),
        )
    console.print(table)
