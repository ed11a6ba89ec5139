"""Data-aware rollback (issue 17): which database services a release changes the image of.

``backup_predeploy_changes(ps_lines, staged_services, db_containers, extra_services)`` takes the lines of
``docker ps --format '{{.Names}}\\t{{.Label "com.docker.compose.service"}}\\t{{.Image}}'`` (the running project),
the ``services`` mapping of the staged ``docker compose config --format json`` and the database containers
(``backup_database_dumps[*].container``) or service names (``backup_predeploy_services``); it returns one
``{service, container, from, to}`` per running database service whose image reference the release changes.
A service the release drops, or one that is not running yet (a first deploy has no data to lose), is not a change.
"""

from __future__ import annotations


def backup_predeploy_changes(ps_lines, staged_services, db_containers=None, extra_services=None) -> list[dict]:
    dbs, extra = set(db_containers or []), set(extra_services or [])
    changes = []
    for line in ps_lines or []:
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        container, service, image = fields
        if not (container in dbs or service in extra):
            continue
        staged = (staged_services or {}).get(service) or {}
        target = staged.get("image")
        if target and target != image:
            changes.append({"service": service, "container": container, "from": image, "to": target})
    return sorted(changes, key=lambda c: c["service"])


class FilterModule:
    def filters(self):
        return {"backup_predeploy_changes": backup_predeploy_changes}
