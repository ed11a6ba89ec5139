"""The ONE contract between the CLI and the playbooks: every name one side writes and the other reads.

The CLI (cli.py, runner.py, status.py, drift.py, events.py) takes these names from here and never spells them
itself; tests/unit/test_contract.py checks each against the other side (the roles' ``meta/argument_specs.yml``,
the playbooks, the role tasks that publish a ``set_stats`` key), so a rename on one side fails a test instead of
silently passing a variable nobody reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# -- roles -----------------------------------------------------------------------------------------------------
# the global homeport_* settings and the shared host facts (also the status gatherer: tasks_from=status)
HOMEPORT_ROLE: Final = "homeport"
# the checks of the whole configuration, first in every playbook (depends on HOMEPORT_ROLE)
PREFLIGHT_ROLE: Final = "preflight"
# a failed check of these roles, before anything changed, means "invalid input" (exit 3): the preflight's own checks
# and the homeport role's argument spec (the global homeport_* settings), which runs as the preflight's dependency
VALIDATION_ROLES: Final = frozenset({PREFLIGHT_ROLE, HOMEPORT_ROLE})


# -- playbooks: one per verb -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Playbook:
    file: str  # in playbooks/
    verbs: tuple[str, ...]  # the `homeport` verbs that run it


SITE: Final = Playbook("site.yml", ("bootstrap",))
DRIFT: Final = Playbook("drift.yml", ("drift",))
DEPLOY: Final = Playbook("deploy.yml", ("deploy",))
ROLLBACK: Final = Playbook("rollback.yml", ("rollback",))
BACKUP: Final = Playbook("backup.yml", ("backup run", "backup list", "backup check", "backup restore", "backup verify"))
# `homeport report` (issue 30) runs the status play with REPORT_DAYS: one host round trip gathers both
STATUS: Final = Playbook("status.yml", ("status", "report"))
PLAYBOOKS: Final = (SITE, DRIFT, DEPLOY, ROLLBACK, BACKUP, STATUS)


# -- extravars the CLI passes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtraVar:
    """A variable the CLI passes with ``--extra-vars`` and where the other side reads it: ``role`` declares it in
    its argument_specs, or ``playbook`` (a file in playbooks/) reads it, or ``tasks`` (roles/<role>/tasks/<file>)
    reads it."""

    name: str
    role: str | None = None
    playbook: str | None = None
    tasks: str | None = None


# the deploy lock records this process: a lock whose owner is gone is stale at once (roles/stack/tasks/lock.yml)
CONTROLLER_PID: Final = ExtraVar("homeport_controller_pid", tasks="stack/lock.yml")
# `homeport deploy SERVICE...`: only these services (empty: the whole stack)
STACK_SERVICES_SELECTED: Final = ExtraVar("stack_services_selected", role="stack")
# `homeport deploy --attach`: only follow the release the host is carrying out (issue 28)
STACK_ATTACH: Final = ExtraVar("stack_attach", role="stack")
# `homeport backup ACTION`: backup.yml hands it to the backup role as backup_action
BACKUP_ACTION: Final = ExtraVar("homeport_backup_action", playbook=BACKUP.file)
BACKUP_RESTORE_SNAPSHOT: Final = ExtraVar("backup_restore_snapshot", role="backup")
BACKUP_RESTORE_TARGET: Final = ExtraVar("backup_restore_target", role="backup")
# `homeport report --days N`: the status play also gathers the raw figures of the plan's targets over N days
REPORT_DAYS: Final = ExtraVar("homeport_report_days", playbook=STATUS.file)
EXTRAVARS: Final = (
    CONTROLLER_PID,
    STACK_SERVICES_SELECTED,
    STACK_ATTACH,
    BACKUP_ACTION,
    BACKUP_RESTORE_SNAPSHOT,
    BACKUP_RESTORE_TARGET,
    REPORT_DAYS,
)

# the backup verbs, each the value of BACKUP_ACTION (choices of the backup role's backup_action)
BACKUP_ACTIONS: Final = ("run", "list", "check", "restore", "verify")

# -- names the playbooks set for the roles (not the CLI), checked by the same test -------------------------------
# every playbook's hosts: "{{ homeport_target_hosts | default('homeport') }}"
TARGET_HOSTS: Final = "homeport_target_hosts"
# deploy.yml and rollback.yml set it for the stack role (choices of its argument spec)
STACK_ACTION: Final = "stack_action"
STACK_ACTIONS: Final = {DEPLOY.file: "deploy", ROLLBACK.file: "rollback"}

# -- set_stats keys the CLI reads --------------------------------------------------------------------------------
# the status document per host, published by roles/homeport/tasks/status.yml
STATUS_STAT: Final = "homeport_status"


def deploy_vars(services: list[str] | None, attach: bool = False) -> dict[str, object]:
    """The extravars of `homeport deploy [SERVICE...]` (`--attach`: only follow the host's release)."""
    out: dict[str, object] = {STACK_SERVICES_SELECTED.name: list(services or [])}
    if attach:
        out[STACK_ATTACH.name] = True
    return out


def backup_vars(action: str, snapshot: str | None = None, target: str | None = None) -> dict[str, object]:
    """The extravars of `homeport backup ACTION` (restore: the snapshot and the target directory)."""
    if action not in BACKUP_ACTIONS:
        raise ValueError(f"backup action {action!r}: choose from {', '.join(BACKUP_ACTIONS)}")
    out: dict[str, object] = {BACKUP_ACTION.name: action}
    if snapshot is not None:
        out[BACKUP_RESTORE_SNAPSHOT.name] = snapshot
    if target:
        out[BACKUP_RESTORE_TARGET.name] = target
    return out


def report_vars(days: int) -> dict[str, object]:
    """The extravars of `homeport report --days N` (N >= 1)."""
    if days < 1:
        raise ValueError(f"--days {days}: must be at least 1")
    return {REPORT_DAYS.name: days}


def run_vars(pid: int) -> dict[str, object]:
    """The extravars every run gets (runner.run_playbook)."""
    return {CONTROLLER_PID.name: pid}
