"""`homeport sandbox up|down|ssh`: a throwaway local Debian host in Docker, reached over real SSH.

The container ``homeport-sandbox`` runs systemd as PID 1 with the explicit capabilities of a docker-in-docker
host (never --privileged), so the runtime role can run an engine inside. User ``homeport`` (passwordless sudo)
logs in with a fresh ed25519 key kept in ``.homeport/sandbox/``; sshd is published on 127.0.0.1:<free port> and
its host key is pinned in ``.homeport/sandbox/known_hosts`` (host key checking stays on).
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console, JustifyMethod

from homeport import contract, paths

CONTAINER = os.environ.get("HOMEPORT_SANDBOX_NAME", "homeport-sandbox")  # the tests use their own name
LABEL = "io.homeport.sandbox=1"
RELEASES = (12, 13)
USER = "homeport"
# Roles that make sense inside a container (no tailnet, no stack images to pull).
SANDBOX_ROLES = ["runtime", "hardening", "backup"]
SANDBOX_BACKUP_REPOSITORY = "/var/backups/homeport-restic"
RUN_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE", "--cap-add", "MKNOD",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp:exec",  # noqa: S108 - a tmpfs inside the container
    "--tmpfs", "/var/lib/docker:exec",
]  # fmt: skip
BOOT_TIMEOUT = 90
SSH_TIMEOUT = 60


class SandboxError(Exception):
    pass


def image(release: int) -> str:
    return f"homeport/debian:{release}"


def key_path() -> Path:
    return paths.sandbox_dir() / "id_ed25519"


def known_hosts_path() -> Path:
    return paths.sandbox_dir() / "known_hosts"


def _docker(*args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, input=input_text, check=False)
    if check and r.returncode != 0:
        raise SandboxError(f"docker {' '.join(args[:2])} failed: {(r.stderr or r.stdout).strip()}")
    return r


def _exec(script: str, input_text: str | None = None) -> str:
    return _docker("exec", "-i", CONTAINER, "sh", "-euc", script, input_text=input_text).stdout


def _require_docker() -> None:
    if (
        not shutil.which("docker")
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0
    ):
        raise SandboxError("Docker is not reachable: start the Docker engine (`homeport doctor` checks it)")


BUILD_SH = Path(__file__).resolve().parent / "images" / "build.sh"


def _build(what: str, console: Console, missing: list[str]) -> None:
    """src/homeport/images/build.sh WHAT: it takes Debian's official image when a registry answers, else
    debootstrap, and says what to install when neither works (one message)."""
    console.print(f"building {', '.join(missing)} (src/homeport/images/build.sh {what}; a few minutes the first time)")
    r = subprocess.run(["bash", str(BUILD_SH), what], check=False, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        said = [line for line in (r.stderr or "").splitlines() if line.strip() and not line.startswith("[images]")]
        raise SandboxError(said[-1] if said else f"{BUILD_SH} {what} failed (exit {r.returncode})")


def _missing(images: list[str]) -> list[str]:
    return [img for img in images if _docker("image", "inspect", img, check=False).returncode != 0]


def _ensure_image(release: int, console: Console) -> None:
    missing = _missing([image(release)])
    if missing:
        _build(f"base{release}", console, missing)  # only the release the sandbox needs


def _state() -> str | None:
    r = _docker("inspect", "-f", "{{.State.Status}}", CONTAINER, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def _ssh_port() -> int:
    out = _docker("port", CONTAINER, "22/tcp").stdout.strip().splitlines()
    for line in out:
        host, _, port = line.rpartition(":")
        if host in ("127.0.0.1", "0.0.0.0"):  # noqa: S104 - parsing docker's output, not binding
            return int(port)
    raise SandboxError(f"sshd of {CONTAINER} is not published: {out}")


def _wait_for_systemd() -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        r = _docker("exec", CONTAINER, "systemctl", "is-system-running", check=False)
        if r.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(1)
    raise SandboxError(f"systemd in {CONTAINER} did not finish booting within {BOOT_TIMEOUT}s")


def _ensure_key() -> str:
    key = key_path()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "homeport-sandbox", "-f", str(key)],
            check=True,
        )
    return key.with_suffix(".pub").read_text(encoding="utf-8").strip()


def _provision(pubkey: str) -> None:
    _exec(
        f"""
id -u {USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {USER}
printf '%s\\n' '{USER} ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/{USER}
chmod 0440 /etc/sudoers.d/{USER}
install -d -m 0700 -o {USER} -g {USER} /home/{USER}/.ssh
cat >/home/{USER}/.ssh/authorized_keys
chown {USER}:{USER} /home/{USER}/.ssh/authorized_keys
chmod 0600 /home/{USER}/.ssh/authorized_keys
ssh-keygen -A >/dev/null
systemctl enable --now ssh >/dev/null 2>&1 || systemctl enable --now sshd >/dev/null
# the engine the bootstrap installs runs inside a container whose /proc/sys is read-only: dockerd must not insist
# on disabling IPv6 on its containers' interfaces (as in the homeport/dind images; a real host does not need this)
dropin=/etc/systemd/system/docker.service.d/homeport-sandbox.conf
if [ ! -f "$dropin" ]; then
  install -d "${{dropin%/*}}"
  printf '[Service]\nEnvironment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1\n' >"$dropin"
  systemctl daemon-reload
  if systemctl is-active -q docker; then systemctl restart docker; fi
fi
""",
        input_text=pubkey + "\n",
    )


def ssh_base(port: int) -> list[str]:
    return [
        "ssh", "-i", str(key_path()), "-p", str(port),
        "-o", f"UserKnownHostsFile={known_hosts_path()}", "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        f"{USER}@127.0.0.1",
    ]  # fmt: skip


def _write_state(port: int) -> Path:
    hostkey = _exec("cat /etc/ssh/ssh_host_ed25519_key.pub").split()
    known_hosts_path().write_text(f"[127.0.0.1]:{port} {hostkey[0]} {hostkey[1]}\n", encoding="utf-8")
    common = (
        f"-o UserKnownHostsFile={shlex.quote(str(known_hosts_path()))} -o StrictHostKeyChecking=yes "
        "-o IdentitiesOnly=yes"
    )
    doc = {
        "homeport": {
            "hosts": {
                "sandbox": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": port,
                    "ansible_user": USER,
                    "ansible_become": True,
                    "ansible_ssh_private_key_file": str(key_path()),
                    "ansible_ssh_common_args": common,
                    "ansible_python_interpreter": "/usr/bin/python3",
                }
            },
            "vars": {
                "homeport_roles": SANDBOX_ROLES,
                # backups go to a local restic repository inside the container
                "backup_repository": SANDBOX_BACKUP_REPOSITORY,
                "backup_paths": [f"/home/{USER}"],
                # the published SSH port reaches the container from the Docker bridge gateway: let the
                # hardening firewall (tailnet-only by default) accept SSH from there
                "hardening_ssh_allowed_networks": [f"{_gateway()}/32"],
                "backup_restic_password": _sandbox_secret("restic-password"),
                **demo_stack_vars(),
            },
        }
    }
    inv = paths.sandbox_inventory()
    inv.touch(mode=0o600)
    inv.chmod(0o600)  # holds the sandbox's throwaway restic password
    inv.write_text(
        f"---\n# Written by `homeport sandbox up` for container {CONTAINER}; rewritten on every `up`.\n"
        + yaml.safe_dump(doc, sort_keys=False),
        encoding="utf-8",
    )
    return inv


DEMO_STACK = Path("tests") / "stack" / "vars.yml"  # the test stack: PostgreSQL + pgvector and a small vector API
DEMO_PROJECT = "demo"
DEMO_IMAGES = ["homeport/pgvector:17", "homeport/testapi:1"]


def demo_stack_vars() -> dict:
    """The stack `homeport deploy --sandbox` runs: the test stack of tests/stack (in a checkout), with its API as
    the image homeport/testapi:1 built here, both images shipped from this machine's engine (stack_ship_images: no
    registry needed), and the sandbox's own generated secrets. Empty outside a checkout."""
    path = paths.content_root() / DEMO_STACK
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    services = doc["stack_services"]
    api = {k: v for k, v in services["api"].items() if k != "source"}
    services["api"] = {"image": "homeport/testapi:1", "pull_policy": "never", **api}
    return {
        "stack_project_name": DEMO_PROJECT,
        "stack_services": services,
        "stack_keep_releases": doc.get("stack_keep_releases", 3),
        "stack_wait_timeout": 180,
        "stack_ship_images": list(DEMO_IMAGES),
        "stack_ship_compress": False,  # loopback: gzip would only cost CPU
        "stack_postgres_password": _sandbox_secret("postgres-password"),
        "stack_api_token": _sandbox_secret("api-token"),
    }


def _gateway() -> str:
    gateway = _docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.Gateway}} {{end}}", CONTAINER).stdout
    if not gateway.split():
        raise SandboxError(f"{CONTAINER} has no network gateway")
    return gateway.split()[0]


def _sandbox_secret(name: str) -> str:
    """A secret of the sandbox, generated once and kept (0600) in .homeport/sandbox/ so reruns reuse it."""
    path = paths.sandbox_dir() / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip()


def _wait_for_ssh(port: int) -> None:
    deadline = time.monotonic() + SSH_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        r = subprocess.run([*ssh_base(port), "true"], capture_output=True, text=True, check=False)
        if r.returncode == 0:
            return
        last = r.stderr.strip()
        time.sleep(1)
    raise SandboxError(f"SSH to the sandbox on 127.0.0.1:{port} failed: {last}")


def up(release: int, console: Console) -> Path:
    """Start (or reuse) the sandbox and return its inventory."""
    _require_docker()
    state = _state()
    if state is None:
        _ensure_image(release, console)
        console.print(f"starting {CONTAINER} from {image(release)}")
        _docker(
            "run", "-d", "--name", CONTAINER, "--hostname", CONTAINER, "--label", LABEL,
            *RUN_FLAGS, "-p", "127.0.0.1::22", image(release), "/lib/systemd/systemd",
        )  # fmt: skip
    elif state != "running":
        _docker("start", CONTAINER)
    _wait_for_systemd()
    _provision(_ensure_key())
    port = _ssh_port()
    inv = _write_state(port)
    _wait_for_ssh(port)
    return inv


def down() -> bool:
    """Remove the sandbox container (only a container carrying the sandbox label). True when one was removed."""
    r = _docker("ps", "-aq", "--filter", f"name=^{CONTAINER}$", "--filter", f"label={LABEL}", check=False)
    if not r.stdout.strip():
        return False
    _docker("rm", "-f", "-v", CONTAINER)
    return True


def ssh(command: list[str]) -> int:
    if _state() != "running":
        raise SandboxError("no sandbox running: run `homeport sandbox up` first")
    base = ssh_base(_ssh_port())
    if not command and sys.stdin.isatty():
        base.insert(1, "-t")
    return subprocess.run([*base, *command], check=False).returncode


# ---- `homeport sandbox demo` (make demo): the main job on the sandbox, each step timed ------------------------


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    ok: bool = True
    changed: int | None = None
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _playbook(playbook: str, console: Console, extravars: dict | None = None, json_mode: bool = False):
    from homeport import events  # noqa: PLC0415 - ansible-runner is imported only by the steps that need it
    from homeport.runner import RunOptions, run_playbook  # noqa: PLC0415

    opts = RunOptions(playbook=playbook, inventory=paths.sandbox_inventory(), extravars=extravars or {})
    record = run_playbook(opts, events.EventHandler(console, json_mode=json_mode))
    if record.exit_code() == events.EXIT_UNREACHABLE:
        # a loaded machine can make the local SSH handshake time out: the sandbox is right here, try once more
        console.print("the sandbox did not answer in time (SSH timed out): once more")
        record = run_playbook(opts, events.EventHandler(console, json_mode=json_mode))
    if not json_mode:
        events.render_result(console, record)
    return record


def _failures(record) -> str:
    said = [f"{f.task}: {f.message.splitlines()[0] if f.message else ''}" for f in record.failures]
    return "; ".join(said + list(record.errors)) or f"ansible-playbook ended {record.status}"


def _changed(record) -> int:
    return sum(int(r.get("changed", 0)) for r in record.recap.values())


def _quick_host():
    from homeport import quick  # noqa: PLC0415

    return quick, quick.pick_host(quick.load_hosts(paths.sandbox_inventory()), None)


def demo(console: Console, release: int = 13, json_mode: bool = False) -> list[Step]:
    """sandbox up -> bootstrap -> deploy the test stack (images shipped from here) -> status -> a backup -> the
    report of the plan's targets and its page (issue 30). Stops at the first failed step. Rerunning it changes
    nothing (bootstrap and deploy report changed=0, the containers are the same, not restarted); the backup step
    takes a new snapshot each time (that is its job)."""
    from homeport import status as status_report  # noqa: PLC0415

    if not demo_stack_vars():
        raise SandboxError(f"the demo stack {DEMO_STACK} is not here: run the demo from a checkout of homeport")
    steps: list[Step] = []

    def step(name: str):
        s = Step(name)
        steps.append(s)
        console.print(f"\n[bold]== {name}[/]")
        return s, time.monotonic()

    s, t0 = step("images (built once, skipped when present)")
    missing = _missing([image(release), *DEMO_IMAGES])
    if missing:
        _build("demo" if release == 13 else "all", console, missing)
    s.detail = f"built {', '.join(missing)}" if missing else "all present"
    s.seconds = round(time.monotonic() - t0, 1)

    s, t0 = step("sandbox up")
    up(release, console)
    s.seconds = round(time.monotonic() - t0, 1)

    for name, playbook, extra in (
        ("bootstrap (runtime, hardening, backup)", contract.SITE.file, None),
        ("deploy the stack (PostgreSQL + pgvector, the API; images shipped)", contract.DEPLOY.file, None),
    ):
        before = None
        if playbook == contract.DEPLOY.file:
            quick, host = _quick_host()
            before = quick.ps(host)
        s, t0 = step(name)
        record = _playbook(playbook, console, extra, json_mode)
        s.seconds = round(time.monotonic() - t0, 1)
        s.changed, s.ok = _changed(record), record.exit_code() == 0
        if not s.ok:
            s.detail = _failures(record)
            return steps
        if before is not None:
            after = quick.ps(host)
            same = [(r["name"], r["started_at"]) for r in before] == [(r["name"], r["started_at"]) for r in after]
            s.detail = "stack untouched (same containers, not restarted)" if before and same else "stack deployed"

    s, t0 = step("status")
    record = _playbook(contract.STATUS.file, console, None, json_mode)
    summary = status_report.summarise(record.stats.get(contract.STATUS_STAT) or {}, measure=False)
    s.seconds = round(time.monotonic() - t0, 1)
    if not json_mode:
        status_report.render(console, summary)
    host_summary: dict[str, Any] = next(iter(summary["hosts"].values()), {})
    containers = [c for c in host_summary.get("containers", []) if c.get("project") == DEMO_PROJECT]
    healthy = [c for c in containers if c["state"] == "running" and c["health"] == "healthy"]
    mem = host_summary.get("memory", {})
    s.ok = record.exit_code() == 0 and bool(containers) and len(healthy) == len(containers)
    s.detail = (
        f"{len(healthy)}/{len(containers)} containers healthy; limits {mem.get('limits_mb')} MiB of the "
        f"{mem.get('budget_mb')} MiB budget, in use {mem.get('usage_mb')} MiB"
    )
    if record.exit_code() != 0:
        s.detail += "; the status run failed: " + _failures(record)
    if not s.ok:
        return steps

    s, t0 = step("backup run")
    record = _playbook(contract.BACKUP.file, console, contract.backup_vars("run"), json_mode)
    s.seconds = round(time.monotonic() - t0, 1)
    s.changed, s.ok = _changed(record), record.exit_code() == 0
    s.detail = (
        "a snapshot in the sandbox's restic repository"
        if s.ok
        else "; ".join(f.message.splitlines()[0] for f in record.failures)
    )
    if not s.ok:
        return steps

    s, t0 = step("report (the plan's targets) and its page")
    s.ok, s.detail = report_step(console, json_mode)
    s.seconds = round(time.monotonic() - t0, 1)
    return steps


DEMO_REPORT_DAYS = 7  # `homeport report`'s default window


def demo_page() -> Path:
    """Where the demo writes the report's page (`homeport report --html`, the page the host's proxy serves)."""
    return paths.sandbox_dir() / "report.html"


def report_step(console: Console, json_mode: bool = False) -> tuple[bool, str]:
    """`homeport report --sandbox --html <sandbox dir>/report.html`: the status play with the report's window (one
    round trip), the rows as a table, the same rows as the phone-sized page. The verdicts do not fail the step (a
    fresh sandbox has not enough data for most); a failed run or no row does."""
    from homeport import report as report_rows  # noqa: PLC0415
    from homeport import status as status_report  # noqa: PLC0415

    record = _playbook(contract.STATUS.file, console, contract.report_vars(DEMO_REPORT_DAYS), json_mode)
    docs = record.stats.get(contract.STATUS_STAT) or {}
    latency = {h: status_report.latency_ms(d, record.host_calls.get(h)) for h, d in docs.items()}
    doc = report_rows.report({h: d.get("report") or {} for h, d in docs.items()}, latency)
    rows = [r for h in doc["hosts"].values() for r in h["rows"]]
    if record.exit_code() != 0 or not rows:
        return False, ("the report run failed: " + _failures(record)) if record.exit_code() else "no report rows"
    page = demo_page()
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(report_rows.to_html(doc), encoding="utf-8")
    if not json_mode:
        report_rows.render(console, doc)
    verdicts: dict[str, int] = {}
    for r in rows:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    counts = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items(), key=lambda kv: -kv[1]))
    return True, f"{len(rows)} targets ({counts}); page: {page}"


def render_steps(console: Console, steps: list[Step]) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="homeport demo: time per step", title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("step", "left"),
        ("seconds", "right"),
        ("changed", "right"),
        ("result", "left"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for s in steps:
        result = ("ok" if s.ok else "FAILED") + (f": {s.detail}" if s.detail else "")
        table.add_row(s.name, f"{s.seconds:.1f}", "-" if s.changed is None else str(s.changed), result)
    table.add_row("total", f"{sum(s.seconds for s in steps):.1f}", "", "")
    table.add_row("total after the images exist", f"{sum(s.seconds for s in steps[1:]):.1f}", "", "")
    console.print(table)
