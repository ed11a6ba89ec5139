"""The `homeport` command line: one verb per playbook, every run through execute() -> runner.run_playbook."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from homeport import contract, events, paths, safe_text
from homeport import drift as drift_summary
from homeport import inventory as inventory_files
from homeport import report as report_rows
from homeport import sandbox as sandbox_host
from homeport import status as status_summary
from homeport.runner import RunOptions, run_playbook  # ansible_runner itself is imported by a run (issue 29)

try:
    from typer._click.exceptions import UsageError
except ImportError:  # typer releases that use click directly
    from click.exceptions import UsageError  # type: ignore[assignment]

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 failure (a task failed, see the message); 2 drift found (`homeport drift`); "
    "3 invalid input (the preflight refused the configuration before anything changed, or a usage error); "
    "4 a host was unreachable; 130 interrupted (Ctrl-C or SIGTERM: the run and its children were stopped; the "
    "deploy lock it left is stale at once for the next run from this machine)."
)


class HomeportGroup(TyperGroup):
    """Usage errors exit with 3 (invalid input) like a configuration the preflight refuses."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            exc.exit_code = events.EXIT_INVALID
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            exc.exit_code = events.EXIT_INVALID
            raise


app = typer.Typer(
    cls=HomeportGroup,
    help="homeport: turn an idle Mac Mini (or a Debian box) into your remote Docker host.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
backup_app = typer.Typer(cls=HomeportGroup, help="Backups with restic: run, list, check, restore, verify.")
sandbox_app = typer.Typer(cls=HomeportGroup, help="A throwaway local Debian host in Docker to try homeport on.")
app.add_typer(backup_app, name="backup")
app.add_typer(sandbox_app, name="sandbox")

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

InventoryOpt = Annotated[
    Path | None,
    typer.Option("--inventory", "-i", help="Inventory file or directory (default: ./inventory)."),
]
SandboxOpt = Annotated[bool, typer.Option("--sandbox", help="Target the sandbox host (`homeport sandbox up`).")]
LimitOpt = Annotated[str | None, typer.Option("--limit", "-l", help="Only these hosts (Ansible host pattern).")]
TagsOpt = Annotated[list[str] | None, typer.Option("--tags", "-t", help="Only tasks with these tags (repeatable).")]
CheckOpt = Annotated[bool, typer.Option("--check", help="Dry run: report what would change, change nothing.")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More output (-v, -vv, -vvv).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result instead.")]
ReleaseOpt = Annotated[int, typer.Option("--release", help="Debian release of the sandbox host (12 or 13).")]


def fail(message: str, code: int = events.EXIT_INVALID) -> typer.Exit:
    # messages quote the host (ssh's and docker's stderr) and the inventory: never markup, no control characters
    err.print(f"[bold red]error:[/] {safe_text.markup(message)}")
    return typer.Exit(code)


def default_inventory() -> Path | None:
    """./inventory when it holds an inventory (a checkout's inventory/ with only example/ does not count)."""
    default = paths.default_inventory()
    if default.is_file() or (default.is_dir() and any(p.is_file() for p in default.iterdir())):
        return default
    return None


def resolve_inventory(inventory: Path | None, sandbox: bool) -> Path:
    if sandbox:
        if inventory:
            raise fail("use either --inventory or --sandbox, not both")
        sandbox_inv = paths.sandbox_inventory()
        if not sandbox_inv.is_file():
            raise fail("no sandbox host: run `homeport sandbox up` first")
        return sandbox_inv
    if inventory:
        if not inventory.exists():
            raise fail(f"--inventory {inventory}: no such file or directory")
        return inventory.resolve()
    default = default_inventory()
    if default:
        return default
    raise fail(
        "no inventory: ./inventory does not exist. Run `homeport init --host ADDR --user NAME` to create one, "
        "pass --inventory PATH, or use --sandbox."
    )


Report = Callable[[events.RunRecord, bool], int]
"""What a verb prints after its run, and its exit code: ``report(record, as_json) -> code``."""


def run_report(record: events.RunRecord, as_json: bool) -> int:
    """The report of most verbs: the recap and the failures in plain words (or the record as JSON)."""
    if as_json:
        events.print_json(record)
    else:
        events.render_result(console, record)
    return record.exit_code()


def drift_report(fix: bool) -> Report:
    """`homeport drift`: per host, role and task what would change (or changed, with --fix), secrets masked."""

    def report(record: events.RunRecord, as_json: bool) -> int:
        summary = drift_summary.summarise(record, fix=fix)
        if as_json:
            print(drift_summary.to_json(summary))
        else:
            drift_summary.render(console, summary)
        return summary["exit_code"]

    return report


def drift_state_report(inventory: Path | None, sandbox: bool, limit: str | None, as_json: bool) -> None:
    """`homeport drift` without --deep: each host's host-state check over one SSH call (src/homeport/drift.py)."""
    # imported here: they load ansible's inventory machinery, which only these verbs need
    from homeport import inventory_check, quick  # noqa: PLC0415

    inv = resolve_inventory(inventory, sandbox)
    # the same refusal as every playbook verb (homeport.runner.check_inventory): a misspelled variable, exit 3
    problems = inventory_check.check(inv) if inv.exists() else []
    for problem in problems:
        if not problem.error and not as_json:
            err.print(f"[yellow]warning:[/yellow] {safe_text.markup(str(problem))}")
    errors = [str(p) for p in problems if p.error]
    if errors:
        raise fail("; ".join(errors))
    try:
        hosts = quick.load_hosts(inv)
    except quick.QuickError as exc:
        raise fail(str(exc), exc.code) from None
    if limit:
        hosts = [h for h in hosts if limit in (h.name, h.address)]
        if not hosts:
            raise fail(f"--limit {limit}: no such host (the summary takes a host name; --deep takes any pattern)")
    if not hosts:
        raise fail("the inventory has no host in the group homeport")
    summary = drift_summary.summarise_state(drift_summary.check_hosts(hosts))
    if as_json:
        print(drift_summary.to_json(summary))
    else:
        drift_summary.render(console, summary)
    if summary["exit_code"]:
        raise typer.Exit(summary["exit_code"])


def status_report(service_mb: float) -> Report:
    """`homeport status`: one screen per host; exit 5 when an alert fires on a host's Prometheus (issue 16)."""

    def report(record: events.RunRecord, as_json: bool) -> int:
        docs = record.stats.get(contract.STATUS_STAT) or {}
        summary = status_summary.summarise(docs, service_mb=service_mb, calls=record.host_calls)
        if as_json:
            print(json.dumps({**record.as_dict(), "summary": summary["hosts"]}, indent=2, sort_keys=True, default=str))
        else:
            events.render_result(console, record)
            status_summary.render(console, summary)
        if record.exit_code():
            return record.exit_code()
        return status_summary.EXIT_ALERTS if status_summary.alerts_firing(summary) else events.EXIT_OK

    return report


def report_report(html_file: Path | None) -> Report:
    """`homeport report`: one row per target of the plan and host (src/homeport/report.py); ``--html`` writes the
    same rows as a self-contained page."""

    def report(record: events.RunRecord, as_json: bool) -> int:
        docs = record.stats.get(contract.STATUS_STAT) or {}
        latency = {h: status_summary.latency_ms(d, record.host_calls.get(h)) for h, d in docs.items()}
        doc = report_rows.report({h: d.get("report") or {} for h, d in docs.items()}, latency)
        if html_file is not None and doc["hosts"]:
            html_file.write_text(report_rows.to_html(doc), encoding="utf-8")
        if as_json:
            print(json.dumps({**record.as_dict(), "report": doc["hosts"]}, indent=2, sort_keys=True, default=str))
        else:
            events.render_result(console, record)
            report_rows.render(console, doc)
            if html_file is not None and doc["hosts"]:
                console.print(f"page written: {html_file}")
        return record.exit_code()

    return report


def execute(
    playbook: str,
    inventory: Path | None,
    sandbox: bool,
    *,
    limit: str | None = None,
    tags: list[str] | None = None,
    check: bool = False,
    diff: bool = False,
    verbose: int = 0,
    as_json: bool = False,
    extravars: dict | None = None,
    report: Report = run_report,
    intervention: str | None = None,
) -> events.RunRecord:
    """Run a playbook (every verb that runs one comes here), show progress, then its report; exit with the
    report's homeport exit code when not 0. ``intervention``: the verb's name when its changes are manual
    interventions (issue 30): each host the run changed records it (homeport.interventions)."""
    opts = RunOptions(
        playbook=playbook,
        inventory=resolve_inventory(inventory, sandbox),
        limit=limit,
        tags=list(tags or []),
        check=check,
        diff=diff,
        verbosity=verbose,
        extravars=extravars or {},
    )
    handler = events.EventHandler(console, json_mode=as_json, verbosity=verbose, check=check)
    record = run_playbook(opts, handler)
    notes = []
    if intervention and not check:
        from homeport import interventions  # noqa: PLC0415 - loads the inventory, only when a host changed

        notes = interventions.record_run(opts.inventory, record, intervention)
    code = report(record, as_json)
    for note in notes:
        err.print(safe_text.text(note, style="yellow" if note.startswith("warning") else "dim"))
    if code:
        raise typer.Exit(code)
    return record


@app.command()
def init(
    host: Annotated[
        str | None, typer.Option("--host", help="Address of the Mac Mini (name, IP, tailnet name).")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="SSH login on the host (an admin account).")] = None,
    directory: Annotated[Path, typer.Option("--dir", help="Project directory to write inventory/ into.")] = Path(),
    non_interactive: Annotated[bool, typer.Option("--non-interactive", help="Never prompt; fail instead.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing inventory files.")] = False,
) -> None:
    """Write inventory/ (hosts, every tunable with its default, an encrypted vault of fresh secrets)."""
    if not host:
        if non_interactive:
            raise fail("--host is required with --non-interactive")
        host = typer.prompt("Address of the host (name or IP)")
    if not user:
        if non_interactive:
            raise fail("--user is required with --non-interactive")
        user = typer.prompt("SSH user on the host")
    try:
        result = inventory_files.init_project(directory, host=host, user=user, force=force)
    except inventory_files.InitError as exc:
        raise fail(str(exc)) from None
    for path in result.files:
        console.print(f"wrote {path}")
    console.print(f"vault password: stored in {result.password_source} (not shown)")
    console.print("next: `homeport doctor`, then `homeport bootstrap`")


@app.command()
def doctor(
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check local prerequisites and every host (SSH, python3, round-trip time)."""
    # without any inventory the doctor checks this machine only
    inv = resolve_inventory(inventory, sandbox) if (inventory or sandbox or default_inventory()) else None
    # imported here: it loads ansible's inventory machinery (~0.8 s), which no other verb needs in this process
    from homeport import doctor as doctor_checks  # noqa: PLC0415

    rows = doctor_checks.run_checks(inv)
    if as_json:
        print(json.dumps({"checks": [r.as_dict() for r in rows]}, indent=2))
    else:
        doctor_checks.render(console, rows)
    if any(r.status == "fail" for r in rows):
        raise typer.Exit(events.EXIT_FAILED)


@app.command()
def bootstrap(
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    tags: TagsOpt = None,
    check: CheckOpt = False,
    verbose: VerboseOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Set up the whole host (playbooks/site.yml). Rerunning repairs drift."""
    execute(
        contract.SITE.file,
        inventory,
        sandbox,
        limit=limit,
        tags=tags,
        check=check,
        diff=check,
        verbose=verbose,
        as_json=as_json,
        intervention="bootstrap",
    )


@app.command()
def drift(
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    tags: TagsOpt = None,
    fix: Annotated[bool, typer.Option("--fix", help="Apply the changes instead of only reporting them.")] = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Run the whole site playbook in check+diff mode (each task's diff) instead of the host-state check "
            "(one SSH call per host: what the last converge recorded against what the host holds). --fix and "
            "--tags imply it.",
        ),
    ] = False,
    verbose: VerboseOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Report what differs from the configuration (exit 2 on drift): by default the host-state check in one SSH
    call per host; --deep the check+diff playbook; --fix applies the playbook."""
    if not (deep or fix or tags):
        drift_state_report(inventory, sandbox, limit, as_json)
        return
    execute(
        contract.DRIFT.file,
        inventory,
        sandbox,
        limit=limit,
        tags=tags,
        check=not fix,
        diff=True,
        verbose=verbose,
        as_json=as_json,
        report=drift_report(fix),
        intervention="drift --fix" if fix else None,
    )


@app.command()
def deploy(
    services: Annotated[list[str] | None, typer.Argument(help="Services to deploy (default: all).")] = None,
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    check: CheckOpt = False,
    verbose: VerboseOpt = 0,
    as_json: JsonOpt = False,
    attach: Annotated[
        bool,
        typer.Option(
            "--attach",
            help="Only follow the release the host is carrying out (after a dropped link) to its end and report how "
            "it ended; exit 1 when it failed and the last good release was restored.",
        ),
    ] = False,
) -> None:
    """Deploy the compose stack (playbooks/deploy.yml); rolls back by itself when health checks fail. The host
    carries out the switch on its own: a dropped link does not stop it (see --attach)."""
    if attach and (services or check):
        raise fail("--attach follows the host's release: give it no services and no --check")
    execute(
        contract.DEPLOY.file,
        inventory,
        sandbox,
        limit=limit,
        check=check,
        diff=check,
        verbose=verbose,
        as_json=as_json,
        extravars=contract.deploy_vars(services, attach=attach),
    )


@app.command()
def rollback(
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    verbose: VerboseOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Bring back the previous release of the compose stack (playbooks/rollback.yml)."""
    execute(contract.ROLLBACK.file, inventory, sandbox, limit=limit, verbose=verbose, as_json=as_json,
            intervention="rollback")  # fmt: skip


def _backup(action: str, inventory, sandbox, *, limit, verbose, as_json, extravars: dict | None = None) -> None:
    record = execute(
        contract.BACKUP.file,
        inventory,
        sandbox,
        limit=limit,
        verbose=verbose,
        as_json=as_json,
        extravars=extravars or contract.backup_vars(action),
        intervention="backup restore" if action == "restore" else None,
    )
    data = {k: v for k, v in record.stats.items() if k != contract.STATUS_STAT}
    if data and not as_json:
        console.print_json(json.dumps(data, default=str))


def _backup_verb(action: str, doc: str) -> None:
    """Register `homeport backup ACTION` (run, list, check, verify share the same options)."""

    def command(
        inventory: InventoryOpt = None,
        sandbox: SandboxOpt = False,
        limit: LimitOpt = None,
        verbose: VerboseOpt = 0,
        as_json: JsonOpt = False,
    ) -> None:
        _backup(action, inventory, sandbox, limit=limit, verbose=verbose, as_json=as_json)

    command.__doc__ = doc
    command.__name__ = f"backup_{action}"
    backup_app.command(action)(command)


_BACKUP_HELP = {
    "run": "Take a backup now.",
    "list": "List the snapshots in the repository.",
    "check": "Check the repository's integrity.",
    "verify": "Restore the latest snapshot into a scratch place and check it (a tested restore).",
}
for _action in contract.BACKUP_ACTIONS:
    if _action in _BACKUP_HELP:  # restore has options of its own (below)
        _backup_verb(_action, _BACKUP_HELP[_action])


@backup_app.command("restore")
def backup_restore(
    snapshot: Annotated[str, typer.Option("--snapshot", help="Snapshot id to restore.")] = "latest",
    target: Annotated[str | None, typer.Option("--target", help="Directory on the host to restore into.")] = None,
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    verbose: VerboseOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Restore a snapshot (latest by default)."""
    extra = contract.backup_vars("restore", snapshot=snapshot, target=target)
    _backup("restore", inventory, sandbox, limit=limit, verbose=verbose, as_json=as_json, extravars=extra)


@app.command()
def status(
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    verbose: VerboseOpt = 0,
    as_json: JsonOpt = False,
    service_size: Annotated[
        str, typer.Option("--service-size", help="Headroom: how many more services of this memory limit fit.")
    ] = "2g",
) -> None:
    """Show each host's status: memory against the budget, containers, last backup, disk, uptime, tailnet."""
    service_mb = status_summary.parse_service_size(service_size)
    if service_mb is None:
        raise fail(f"--service-size {service_size!r}: not a memory size above zero (use e.g. 2g or 512m)")
    execute(
        contract.STATUS.file,
        inventory,
        sandbox,
        limit=limit,
        verbose=verbose,
        as_json=as_json,
        report=status_report(service_mb),
    )


@app.command("report")
def report_command(
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    verbose: VerboseOpt = 0,
    as_json: JsonOpt = False,
    days: Annotated[int, typer.Option("--days", min=1, max=90, help="The window, in days (Prometheus keeps 30).")] = 7,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the rows as a phone-sized page.")] = None,
) -> None:
    """Check the plan's targets on each host: availability, latency, memory, deploys, starts, backups, cost."""
    execute(
        contract.STATUS.file,
        inventory,
        sandbox,
        limit=limit,
        verbose=verbose,
        as_json=as_json,
        extravars=contract.report_vars(days),
        report=report_report(html),
    )


def _inventory_loads(inv: Path) -> None:
    """Exit 3 with the reason when the inventory does not load (a verb that reads it itself, not ansible-playbook)."""
    from homeport import doctor as inventory_loading  # noqa: PLC0415 - loads ansible's inventory machinery

    try:
        inventory_loading.inventory_vars(inv)
    except inventory_loading.InventoryError as exc:
        raise fail(f"the inventory does not load: {exc}") from None


def _quick_host(inventory: Path | None, sandbox: bool, limit: str | None):
    """The one host a quick verb (ps, logs, exec, restart) talks to, straight over SSH."""
    from homeport import quick  # noqa: PLC0415 - loads ansible's inventory machinery, only these verbs need it

    inv = resolve_inventory(inventory, sandbox)
    try:
        return quick, quick.pick_host(quick.load_hosts(inv), limit)
    except quick.QuickError as exc:
        raise fail(str(exc), exc.code) from None


@app.command()
def ps(
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The stack's containers: state, health, memory against the limit, restarts (one SSH call, no playbook)."""
    quick, host = _quick_host(inventory, sandbox, limit)
    try:
        rows = quick.ps(host)
    except quick.QuickError as exc:
        raise fail(str(exc), exc.code) from None
    if as_json:
        print(json.dumps({"host": host.name, "project": host.project, "containers": rows}, indent=2))
    else:
        quick.render_ps(console, host, rows)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="The stack service whose logs to show.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C ends).")] = False,
    since: Annotated[str | None, typer.Option("--since", help="Only lines since: 10m, 2h, an RFC 3339 time.")] = None,
    tail: Annotated[str | None, typer.Option("--tail", "-n", help="Only the last N lines.")] = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Pass the container's output through byte for byte, terminal escape sequences included (by "
            "default control characters are shown escaped, e.g. \\x1b[31m, so a container cannot drive your "
            "terminal: clipboard, title, hidden links).",
        ),
    ] = False,
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
) -> None:
    """A service's logs (docker logs of its first running container), straight over SSH."""
    quick, host = _quick_host(inventory, sandbox, limit)
    try:
        code = quick.logs(host, service, quick.logs_args(follow=follow, since=since, tail=tail), raw=raw)
    except quick.QuickError as exc:
        raise fail(str(exc), exc.code) from None
    raise typer.Exit(code)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_command(
    service: Annotated[str, typer.Argument(help="The stack service to run the command in.")],
    command: Annotated[list[str] | None, typer.Argument(help="The command, after --.")] = None,
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
) -> None:
    """Run a command in a service's container (interactive with a TTY when this terminal is one)."""
    quick, host = _quick_host(inventory, sandbox, limit)
    try:
        code = quick.exec_(host, service, list(command or []))
    except quick.QuickError as exc:
        raise fail(str(exc), exc.code) from None
    raise typer.Exit(code)


@app.command()
def restart(
    service: Annotated[str, typer.Argument(help="The stack service to restart.")],
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
) -> None:
    """Restart a service's containers (docker restart), straight over SSH."""
    quick, host = _quick_host(inventory, sandbox, limit)
    try:
        quick.restart(host, service)
    except quick.QuickError as exc:
        raise fail(str(exc), exc.code) from None
    console.print(safe_text.text(f"{host.name}: restarted {service}"))


@app.command()
def connect(
    name: Annotated[str, typer.Option("--name", help="Name of the Docker context on this laptop.")] = "homeport",
    no_check: Annotated[bool, typer.Option("--no-check", help="Do not ask the engine for its version after.")] = False,
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a Docker context on this laptop for the host over SSH (idempotent): docker --context NAME ps."""
    from homeport import connect as laptop  # noqa: PLC0415 - only this verb needs it

    _quick, host = _quick_host(inventory, sandbox, limit)
    try:
        result = laptop.connect(host, name, check=not no_check)
    except laptop.ConnectError as exc:
        raise fail(str(exc), exc.code) from None
    if as_json:
        print(json.dumps(result, indent=2))
        return
    verb = "created" if result["action"] == "create" else "already set up"
    console.print(f"docker context {result['context']} ({result['endpoint']}): {verb}")
    if result["server_version"]:
        console.print(safe_text.text(f"engine on {host.name}: Docker {result['server_version']}"))
    console.print(f"next: docker --context {result['context']} ps")


@app.command()
def tunnel(
    services: Annotated[list[str] | None, typer.Argument(help="Only these stack services (default: all).")] = None,
    offset: Annotated[int, typer.Option("--offset", help="Add N to every local port (when one is busy).")] = 0,
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
) -> None:
    """Forward the stack's published ports to localhost on this laptop over SSH until Ctrl-C."""
    from homeport import connect as laptop  # noqa: PLC0415 - only this verb needs it

    _quick, host = _quick_host(inventory, sandbox, limit)
    try:
        forwards = laptop.tunnel_plan(host, list(services or []), offset)
    except laptop.ConnectError as exc:
        raise fail(str(exc), exc.code) from None

    def ready() -> None:
        for f in forwards:
            console.print(f"{f.service}: localhost:{f.local_port} -> {host.name} {f.remote_address}:{f.remote_port}")
        console.print("tunnel open; Ctrl-C closes it")

    code = laptop.run_tunnel(laptop.tunnel_argv(host, forwards), on_ready=ready)
    console.print("tunnel closed" if code == 0 else f"tunnel ended: ssh to {host.address} failed")
    raise typer.Exit(code)


@app.command()
def audit(
    inventory: InventoryOpt = None,
    sandbox: SandboxOpt = False,
    limit: LimitOpt = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this check (ssh, ports, lan, lynis, debsecan, macos).")
    ] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Leave this check out (repeatable).")] = None,
    lan_address: Annotated[
        str | None, typer.Option("--lan-address", help="Address to port-scan (default: ansible_host).")
    ] = None,
    scan_from_container: Annotated[
        str | None,
        typer.Option("--scan-from-container", help="Scan from this container's network namespace (tests)."),
    ] = None,
    scan_ports: Annotated[str, typer.Option("--scan-ports", help="TCP ports nmap scans.")] = "1-65535",
    lynis_min: Annotated[int, typer.Option("--lynis-min", help="Fail below this Lynis hardening index.")] = 0,
    lynis_accept: Annotated[
        list[str] | None, typer.Option("--lynis-accept", help="A Lynis warning ID accepted (repeatable).")
    ] = None,
    lynis_dir: Annotated[
        Path | None, typer.Option("--lynis-dir", help="Untarred Lynis release (default: this machine's package).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check each host with tools homeport did not write: ssh-audit, nmap, a LAN neighbour's probe, Lynis, debsecan
    (macOS: firewall, stealth, FileVault, updates, SIP). Exit 1 when a check fails."""
    from homeport import audit as audit_checks  # noqa: PLC0415 - only this verb needs it

    inv = resolve_inventory(inventory, sandbox)
    _inventory_loads(inv)
    checks = tuple(only or audit_checks.ALL_CHECKS)
    checks = tuple(c for c in checks if c not in set(skip or []))
    opts = audit_checks.Options(
        checks=checks,
        scan_from=scan_from_container,
        scan_ports=scan_ports,
        lynis_min=lynis_min,
        lynis_accept={i: "accepted with --lynis-accept" for i in lynis_accept or []},
        lynis_dir=lynis_dir,
    )
    try:
        for name in [*(only or []), *(skip or [])]:
            if name not in audit_checks.ALL_CHECKS:
                raise audit_checks.AuditError(f"--only/--skip {name}: choose from {', '.join(audit_checks.ALL_CHECKS)}")
        summary = audit_checks.run_audit(audit_checks.targets_from_inventory(inv, limit, lan_address), opts)
    except audit_checks.AuditError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        audit_checks.render(console, summary)
    if not summary["passed"]:
        raise typer.Exit(events.EXIT_FAILED)


@sandbox_app.command("up")
def sandbox_up(
    release: ReleaseOpt = 13,
) -> None:
    """Start the sandbox host (container homeport-sandbox) and write its inventory."""
    if release not in sandbox_host.RELEASES:
        raise fail(f"--release {release}: choose one of {', '.join(map(str, sandbox_host.RELEASES))}")
    try:
        inv = sandbox_host.up(release, console)
    except sandbox_host.SandboxError as exc:
        raise fail(str(exc), events.EXIT_FAILED) from None
    console.print(f"sandbox ready; inventory: {inv}")
    console.print("next: `homeport bootstrap --sandbox`")


@sandbox_app.command("demo")
def sandbox_demo(
    release: ReleaseOpt = 13,
    as_json: JsonOpt = False,
) -> None:
    """The main job on the sandbox, each step timed: up, bootstrap, deploy a small stack, status, a backup."""
    if release not in sandbox_host.RELEASES:
        raise fail(f"--release {release}: choose one of {', '.join(map(str, sandbox_host.RELEASES))}")
    out = err if as_json else console
    try:
        steps = sandbox_host.demo(out, release, json_mode=as_json)
    except sandbox_host.SandboxError as exc:
        raise fail(str(exc), events.EXIT_FAILED) from None
    ok = all(s.ok for s in steps)
    if as_json:
        print(json.dumps({"ok": ok, "steps": [s.as_dict() for s in steps]}, indent=2))
    else:
        sandbox_host.render_steps(console, steps)
        if ok:
            console.print("next: `homeport ps --sandbox`, `homeport logs api --sandbox -f`, `homeport sandbox down`")
    if not ok:
        raise typer.Exit(events.EXIT_FAILED)


@sandbox_app.command("down")
def sandbox_down() -> None:
    """Remove the sandbox container (and only it)."""
    removed = sandbox_host.down()
    console.print("sandbox removed" if removed else "no sandbox running")


@sandbox_app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox_ssh(
    command: Annotated[list[str] | None, typer.Argument(help="Command to run (after --); default: a shell.")] = None,
) -> None:
    """Open a shell on the sandbox host, or run the command given after --."""
    try:
        code = sandbox_host.ssh(list(command or []))
    except sandbox_host.SandboxError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(code)


def main() -> None:
    app(prog_name="homeport")
