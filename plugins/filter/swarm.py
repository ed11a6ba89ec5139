"""Filters of the `swarm` role: the pure decisions of a Docker Swarm across the tailnet.

- ``swarm_membership``: the inventory groups (``swarm_managers`` / ``swarm_workers``) judged: an odd number of
  managers, no host in both groups, at least one manager; the first manager inits the swarm.
- ``swarm_stack``: the same ``stack_services`` the compose path uses (merged by the stack role's
  ``stack_merge_services``) rendered into a ``docker stack deploy`` file: memory limits/reservations,
  placement constraints from node labels, start-first updates with automatic rollback, healthchecks, the
  endpoint mode, Swarm secrets instead of env files, one overlay network with an MTU that fits the tailnet.
- ``swarm_stack_record`` / ``swarm_previous_release``: the stack file kept as the record of what runs (a deploy of
  some services replaces only their entries) and the earlier copy of it ``homeport rollback`` goes back to.
- ``swarm_stack_errors``: what the swarm path cannot do with a service description (build on a node, a port
  bound to one address, dnsrr with ingress ports, ...), one message per problem.
- ``swarm_placement``: each node's worst-case memory (the limits of every service that may be placed on it)
  against that node's budget and RAM; a constraint that no active node satisfies.
- ``swarm_mtu_errors`` / ``swarm_gro_check`` / ``swarm_colima_address``: the tailnet pitfalls (overlay MTU over
  tailscale0's 1280, UDP GRO on kernels < 6.8.5: tailscale#11026, a Colima VM without a reachable address).
- ``swarm_service_report`` / ``swarm_converged``: what `docker service inspect` / `docker service ps` say
  after an update: converged, or which service was rolled back, which task failed and why.
"""

from __future__ import annotations

import copy
import json
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.homeport.homeport.plugins.filter.sizes import to_bytes as _size
from ansible_collections.homeport.homeport.plugins.filter.stack import (
    compose_literal,
    human,
    stack_port_spec,
    stack_secret_bindings,
)

#: bytes VXLAN adds to every packet (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14)
VXLAN_OVERHEAD = 50
#: the MTU of tailscale0 (Tailscale's fixed default)
TAILSCALE_MTU = 1280
#: the first kernel in which coalesced UDP (GRO) from a TUN device through VXLAN is no longer dropped
#: (tailscale/tailscale#11026: fails on 6.8.4 and earlier, passes on 6.8.5)
GRO_FIXED_KERNEL = (6, 8, 5)
ENDPOINT_MODES = ("vip", "dnsrr")
PUBLISH_MODES = ("host", "ingress")
UPDATE_ORDERS = ("start-first", "stop-first")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DURATION_RE = re.compile(r"^\d+(\.\d+)?(ns|us|ms|s|m|h)$")


# ---------------------------------------------------------------------------------------------------------------
# membership
# ---------------------------------------------------------------------------------------------------------------
def swarm_membership(managers, workers):
    """Judge the groups. Returns {managers, workers, members, first_manager, errors}."""
    managers = list(dict.fromkeys(managers or []))
    workers = list(dict.fromkeys(workers or []))
    errors = []
    both = [h for h in managers if h in workers]
    errors.extend(
        f"swarm_workers: host {h} is also in swarm_managers; put each host in one of the two groups" for h in both
    )
    if workers and not managers:
        errors.append(
            f"swarm_managers: is empty while swarm_workers has {', '.join(workers)}; a swarm needs at least one manager"
        )
    if managers and len(managers) % 2 == 0:
        errors.append(
            f"swarm_managers: {len(managers)} managers ({', '.join(managers)}) must be an odd number (1, 3, 5): "
            f"Raft needs a majority, so an even count tolerates no more failures than one manager fewer"
        )
    members = managers + [w for w in workers if w not in managers]
    return {
        "managers": managers,
        "workers": [w for w in workers if w not in managers],
        "members": members,
        "first_manager": managers[0] if managers else None,
        "errors": errors,
    }


# ---------------------------------------------------------------------------------------------------------------
# stack file
# ---------------------------------------------------------------------------------------------------------------
def _named_volumes(spec):
    out = []
    for vol in spec.get("volumes") or []:
        text = str(vol)
        source = text.split(":", 1)[0]
        if ":" in text and source and not source.startswith(("/", ".", "~", "$")):
            out.append(source)
    return out


def _secret_key(service, env):
    return f"{service}-{env}".lower()


def swarm_secret_plan(services, project):
    """[{key, name, service, env, var, format}]: one Swarm secret per (service, variable) binding. ``name`` is the
    base name (docker_secret's rolling versions add ``_v<N>``)."""
    out = []
    for b in stack_secret_bindings(services):
        key = _secret_key(b["service"], b["env"])
        out.append({**b, "key": key, "name": f"{project}_{b['service']}_{b['env']}".lower()})
    return out


def _constraints(labels):
    return [f"node.labels.{k} == {v}" for k, v in sorted((labels or {}).items())]


def _shim(envs, argv):
    """entrypoint + command that export the service's secrets from /run/secrets into its environment and then run
    ``argv`` ($ doubled: docker stack deploy interpolates variables)."""
    exports = "; ".join(f'export {e}="$$(cat /run/secrets/{e})"' for e in envs)
    return ["/bin/sh", "-c", f'{exports}; exec "$$@"', "sh"], list(argv)


def swarm_stack(services, project, opts, secret_names=None):
    """The stack file (a dict for to_nice_yaml). ``opts``: endpoint_mode, publish_mode, network {name, mtu,
    encrypted, attachable}, placement {service: {label: value}}, replicas {service: n}, update {parallelism, delay,
    monitor, order, max_failure_ratio}, rollback {parallelism, delay, monitor, order}, stateful_order,
    env_from_secrets {service: argv}, overrides {service: raw keys}. ``secret_names``: secret key -> the name of the
    Swarm secret holding it (from docker_secret)."""
    opts = opts or {}
    secret_names = secret_names or {}
    net = opts.get("network") or {}
    net_name = net.get("name", "homeport")
    update = opts.get("update") or {}
    rollback = opts.get("rollback") or {}
    plan = swarm_secret_plan(services, project)
    out_services, volumes, secrets = {}, {}, {}
    for name, spec in services.items():
        where = f"stack_services.{name}"
        svc = {"image": spec.get("image")}
        if not svc["image"]:
            raise AnsibleFilterError(f"{where}: the swarm path needs an image (Swarm cannot build on a node)")
        if spec.get("command") is not None:
            svc["command"] = spec["command"]
        # docker stack deploy interpolates like compose: every $ of a value doubled so it arrives as written
        env = {str(k): compose_literal(v) for k, v in (spec.get("environment") or {}).items()}
        mine = [p for p in plan if p["service"] == name]
        if mine:
            svc["secrets"] = []
            for p in mine:
                if p["key"] not in secret_names:
                    raise AnsibleFilterError(f"{where}.secrets.{p['env']}: no Swarm secret was created for it")
                secrets[p["key"]] = {"external": True, "name": secret_names[p["key"]]}
                svc["secrets"].append({"source": p["key"], "target": p["env"]})
            shim = (opts.get("env_from_secrets") or {}).get(name)
            if shim:
                svc["entrypoint"], svc["command"] = _shim([p["env"] for p in mine], shim)
            else:
                # the official images' convention (postgres, neo4j, ...): VARIABLE_FILE names the file
                env.update({f"{p['env']}_FILE": f"/run/secrets/{p['env']}" for p in mine})
        if env:
            svc["environment"] = env
        if spec.get("ports"):
            svc["ports"] = []
            for entry in spec["ports"]:
                port = stack_port_spec(entry, "", f"{where}.ports")
                row = {"target": int(port["target"]), "protocol": port.get("protocol", "tcp")}
                if port.get("published") not in (None, ""):
                    row["published"] = int(port["published"])
                row["mode"] = opts.get("publish_mode", "host")
                svc["ports"].append(row)
        if spec.get("volumes"):
            svc["volumes"] = list(spec["volumes"])
            for vol in _named_volumes(spec):
                volumes[vol] = {}
        if spec.get("healthcheck"):
            svc["healthcheck"] = dict(spec["healthcheck"])
        svc["networks"] = [net_name]
        order = update.get("order", "start-first")
        if _named_volumes(spec):
            # two tasks must never share a data directory (PostgreSQL would corrupt it)
            order = opts.get("stateful_order", "stop-first")
        # the stack file's schema wants sizes as strings (a plain number string is bytes)
        resources = {"limits": {"memory": str(_size(spec["memory"], f"{where}.memory"))}}
        if spec.get("memory_reservation"):
            reservation = _size(spec["memory_reservation"], f"{where}.memory_reservation")
            resources["reservations"] = {"memory": str(reservation)}
        deploy = {
            "mode": "replicated",
            "replicas": int((opts.get("replicas") or {}).get(name, 1)),
            "endpoint_mode": opts.get("endpoint_mode", "dnsrr"),
            "resources": resources,
            "restart_policy": {"condition": "any", "delay": "5s"},
            "update_config": {
                "parallelism": int(update.get("parallelism", 1)),
                "delay": str(update.get("delay", "5s")),
                "order": order,
                "failure_action": "rollback",
                "monitor": str(update.get("monitor", "30s")),
                "max_failure_ratio": float(update.get("max_failure_ratio", 0)),
            },
            "rollback_config": {
                "parallelism": int(rollback.get("parallelism", 1)),
                "delay": str(rollback.get("delay", "0s")),
                "order": order,
                "failure_action": "pause",
                "monitor": str(rollback.get("monitor", update.get("monitor", "30s"))),
            },
        }
        constraints = _constraints((opts.get("placement") or {}).get(name))
        if constraints:
            deploy["placement"] = {"constraints": constraints}
        svc["deploy"] = deploy
        for key, value in ((opts.get("overrides") or {}).get(name) or {}).items():
            svc[key] = copy.deepcopy(value)
        out_services[name] = svc
    driver_opts = {"com.docker.network.driver.mtu": str(int(net.get("mtu", TAILSCALE_MTU - VXLAN_OVERHEAD)))}
    if net.get("encrypted", True):
        driver_opts["encrypted"] = ""
    stack = {
        "version": "3.9",
        "services": out_services,
        "networks": {
            net_name: {
                "driver": "overlay",
                "attachable": bool(net.get("attachable", False)),
                "driver_opts": driver_opts,
            }
        },
    }
    if volumes:
        stack["volumes"] = volumes
    if secrets:
        stack["secrets"] = secrets
    return stack


def swarm_stack_record(previous, deployed, selected=None):
    """The stack file kept on the manager as the record of what runs (``homeport rollback`` goes back to an earlier
    copy of it). ``deployed``: the stack file this deploy hands to ``docker stack deploy``; ``selected``: the
    services ``homeport deploy SERVICE...`` named (``stack_services_selected``; empty = the whole stack);
    ``previous``: the record before this deploy (parsed, None when there is none).

    The whole stack: the record is the deployed file. Some services: only they are deployed (without prune, the
    others keep their spec and version), so the record is the previous one with the selected services (and the
    secrets they reference) replaced; the others keep the entries they run with."""
    if not selected:
        return deployed
    previous = previous if isinstance(previous, dict) else {}
    record = {"version": deployed.get("version", previous.get("version", "3.9"))}
    services = {**(previous.get("services") or {}), **(deployed.get("services") or {})}
    record["services"] = services
    for key in ("networks", "volumes"):
        merged = {**(previous.get(key) or {}), **(deployed.get(key) or {})}
        if merged:
            record[key] = merged
    secrets = {**(previous.get("secrets") or {}), **(deployed.get("secrets") or {})}
    used = {s.get("source") for svc in services.values() for s in svc.get("secrets") or [] if isinstance(s, dict)}
    secrets = {k: v for k, v in secrets.items() if k in used}
    if secrets:
        record["secrets"] = secrets
    return record


def swarm_previous_release(current, backups):
    """The copy of the stack file ``homeport rollback`` goes back to: the newest earlier copy whose content differs
    from the current file (after Swarm rolled a failed update back, the newest copy is the release that runs, so it
    is skipped). ``current``: ansible.builtin.stat's ``stat`` of the stack file; ``backups``: ansible.builtin.find's
    ``files`` of its copies (both with checksums). Returns {path, reason}: path '' when there is none."""
    current = current or {}
    if not current.get("exists"):
        return {"path": "", "reason": "the stack was never deployed from here (no stack file)"}
    mine = current.get("checksum")
    earlier = sorted(backups or [], key=lambda f: float(f.get("mtime") or 0), reverse=True)
    for f in earlier:
        if f.get("checksum") and f.get("checksum") != mine:
            return {"path": f["path"], "reason": ""}
    if earlier:
        reason = f"its {len(earlier)} earlier cop{'y is' if len(earlier) == 1 else 'ies are'} the release that runs now"
    else:
        reason = "it was deployed once, there is no earlier copy of the stack file"
    return {"path": "", "reason": reason}


def swarm_stack_errors(services, opts):
    """What the swarm path refuses in the (merged, already stack-validated) services and the swarm options."""
    opts = opts or {}
    errors = []
    endpoint = opts.get("endpoint_mode", "dnsrr")
    publish = opts.get("publish_mode", "host")
    if endpoint not in ENDPOINT_MODES:
        errors.append(f"swarm_endpoint_mode: {endpoint!r} must be one of {', '.join(ENDPOINT_MODES)}")
    if publish not in PUBLISH_MODES:
        errors.append(f"swarm_publish_mode: {publish!r} must be one of {', '.join(PUBLISH_MODES)}")
    if endpoint == "dnsrr" and publish == "ingress":
        errors.append(
            "swarm_publish_mode: ingress needs swarm_endpoint_mode vip (Swarm refuses dnsrr with ingress ports); "
            "use host, or vip where the kernel has IPVS"
        )
    update = opts.get("update") or {}
    if update.get("order", "start-first") not in UPDATE_ORDERS:
        errors.append(f"swarm_update_order: {update.get('order')!r} must be one of {', '.join(UPDATE_ORDERS)}")
    for key in ("monitor", "delay"):
        value = str(update.get(key, "5s"))
        if not _DURATION_RE.match(value):
            errors.append(f"swarm_update_{key}: {value!r} is not a duration such as 30s or 1m")
    for name, argv in (opts.get("env_from_secrets") or {}).items():
        if name not in services:
            errors.append(f"swarm_env_from_secrets.{name}: is not an enabled service")
        elif not isinstance(argv, list) or not argv:
            errors.append(f"swarm_env_from_secrets.{name}: must be the service's command as a list (argv)")
    for key in ("placement", "replicas", "overrides"):
        for name in opts.get(key) or {}:
            if name not in services:
                errors.append(f"swarm_{key}.{name}: is not an enabled service")
    for name, labels in (opts.get("placement") or {}).items():
        if not isinstance(labels, dict):
            errors.append(f"swarm_placement.{name}: must be a dict of node label -> value")
            continue
        errors.extend(
            f"swarm_placement.{name}: {k!r} is not a node label name" for k in labels if not _LABEL_RE.match(str(k))
        )
    for name, n in (opts.get("replicas") or {}).items():
        try:
            if int(n) < 0:
                raise ValueError
        except (TypeError, ValueError):
            errors.append(f"swarm_replicas.{name}: {n!r} must be a whole number >= 0")
    for name, spec in services.items():
        where = f"stack_services.{name}"
        if not spec.get("image"):
            errors.append(
                f"{where}: has no image; Swarm cannot build on a node: build it, load or push it to every node "
                "that may run it, and set image"
            )
        for entry in spec.get("ports") or []:
            try:
                port = stack_port_spec(entry, "", f"{where}.ports")
            except (AnsibleFilterError, ValueError) as exc:
                errors.append(str(exc))
                continue
            if port.get("host_ip"):
                errors.append(
                    f"{where}.ports: {entry!r} binds to {port['host_ip']}; Swarm publishes a port on every address of "
                    "the node (guard it with the firewall), so a per-port address cannot be kept"
                )
        health = spec.get("healthcheck") or {}
        if isinstance(health, dict) and "start_interval" in health:
            # the stack file is compose 3.9: the docker CLI's schema for it (cli/compose/schema/data/config_schema_v3.9
            # .json) has no start_interval, so `docker stack deploy` would refuse it after the secrets were created
            errors.append(
                f"{where}.healthcheck.start_interval: the swarm path writes a compose 3.9 stack file, whose schema has "
                "no start_interval (docker stack deploy refuses it); remove it or set a shorter interval"
            )
        if spec.get("ports") and not opts.get("publish_ports", False):
            errors.append(
                f"{where}.ports: Swarm publishes ports on every interface of the node; set swarm_publish_ports: true "
                "once the nodes' firewall admits only the tailnet (hardening role)"
            )
    return errors


def _labels_match(node_labels, wanted):
    node_labels = node_labels or {}
    return all(str(node_labels.get(k)) == str(v) for k, v in (wanted or {}).items())


def swarm_nodes(members, hostvars):
    """[{name, labels, availability, budget, ram_bytes}] of the swarm members from their host variables and facts
    (the input of swarm_placement)."""
    out = []
    for host in members or []:
        hv = hostvars[host]
        facts = hv.get("ansible_facts") or {}
        out.append(
            {
                "name": host,
                "labels": dict(hv.get("swarm_node_labels") or {}),
                "availability": hv.get("swarm_node_availability") or "active",
                "budget": hv.get("homeport_memory_budget") or "14g",
                "ram_bytes": int(facts.get("memtotal_mb") or 0) * 1024 * 1024 or None,
            }
        )
    return out


def swarm_placement(services, opts, nodes):
    """Worst-case memory per node. ``nodes``: [{name, labels, budget, ram_bytes, availability}]. A service may land
    on any active node its constraints allow, so each eligible node is charged ceil(replicas / eligible) times the
    service's limit. Returns {nodes: [{name, total, budget, ram, services}], errors}."""
    opts = opts or {}
    placement = opts.get("placement") or {}
    replicas = opts.get("replicas") or {}
    rows = {}
    for n in nodes:
        rows[n["name"]] = {
            "name": n["name"],
            "labels": dict(n.get("labels") or {}),
            "availability": n.get("availability") or "active",
            "budget": _size(n.get("budget") or "14g", f"{n['name']}: homeport_memory_budget"),
            "ram": int(n["ram_bytes"]) if n.get("ram_bytes") else None,
            "total": 0,
            "services": [],
        }
    errors = []
    for name in sorted(services):
        spec = services[name]
        want = placement.get(name) or {}
        count = int(replicas.get(name, 1))
        if count == 0:
            continue
        eligible = [r for r in rows.values() if r["availability"] == "active" and _labels_match(r["labels"], want)]
        if not eligible:
            shown = "; ".join(
                f"{r['name']} ({r['availability']}: "
                + (", ".join(f"{k}={v}" for k, v in sorted(r["labels"].items())) or "no labels")
                + ")"
                for r in rows.values()
            )
            errors.append(
                f"swarm_placement.{name}: {', '.join(_constraints(want)) or 'no constraint'} matches no active node "
                f"(nodes: {shown or 'none'}); set swarm_node_labels on a node"
            )
            continue
        limit = _size(spec["memory"], f"stack_services.{name}.memory")
        per_node = -(-count // len(eligible))
        for r in eligible:
            r["total"] += limit * per_node
            r["services"].append(f"{name}={human(limit)}" + (f"x{per_node}" if per_node != 1 else ""))
    for r in rows.values():
        listing = ", ".join(r["services"])
        if r["total"] > r["budget"]:
            errors.append(
                f"node {r['name']}: the services that may run there ({listing}) need up to {human(r['total'])}, over "
                f"its homeport_memory_budget {human(r['budget'])}"
            )
        if r["ram"] is not None and r["total"] > r["ram"]:
            errors.append(
                f"node {r['name']}: the services that may run there ({listing}) need up to {human(r['total'])}, over "
                f"its RAM {human(r['ram'])}"
            )
    return {"nodes": [rows[k] for k in sorted(rows)], "errors": errors}


# ---------------------------------------------------------------------------------------------------------------
# tailnet pitfalls
# ---------------------------------------------------------------------------------------------------------------
def swarm_mtu_errors(overlay_mtu, underlays):
    """``underlays``: host -> {interface, mtu}. The overlay MTU plus VXLAN's overhead must fit every node's
    underlay (tailscale0: 1280)."""
    errors = []
    try:
        mtu = int(overlay_mtu)
    except (TypeError, ValueError):
        return [f"swarm_overlay_mtu: {overlay_mtu!r} must be a whole number"]
    if mtu < 576:
        errors.append(f"swarm_overlay_mtu: {mtu} must be at least 576")
    for host in sorted(underlays or {}):
        u = underlays[host] or {}
        under = int(u.get("mtu") or TAILSCALE_MTU)
        if mtu + VXLAN_OVERHEAD > under:
            errors.append(
                f"swarm_overlay_mtu: {mtu} + {VXLAN_OVERHEAD} bytes of VXLAN does not fit the MTU {under} of "
                f"{u.get('interface') or 'the underlay'} on {host}; use at most {under - VXLAN_OVERHEAD}"
            )
    return errors


def swarm_kernel_version(release):
    """'6.1.0-28-amd64' -> [6, 1, 0]; unknown parts are 0."""
    m = re.match(r"^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(release or ""))
    if not m:
        return [0, 0, 0]
    return [int(x or 0) for x in m.groups()]


def swarm_gro_check(host, system, kernel, uses_tailscale, workaround):
    """tailscale#11026: on Linux kernels before 6.8.5, UDP GRO on the TUN device coalesces VXLAN packets that the
    kernel then drops (overlay traffic stalls). The documented knob is tailscaled's environment variable
    TS_TUN_DISABLE_UDP_GRO=true. Returns {needed, apply, errors}."""
    needed = str(system) == "Linux" and bool(uses_tailscale) and tuple(swarm_kernel_version(kernel)) < GRO_FIXED_KERNEL
    errors = []
    if needed and not workaround:
        errors.append(
            f"swarm_tailscale_udp_gro_workaround: false on {host}, whose kernel {kernel} is older than 6.8.5: UDP GRO "
            "on tailscale0 drops VXLAN (overlay) packets there (tailscale/tailscale#11026); set it to true "
            "(tailscaled runs with TS_TUN_DISABLE_UDP_GRO=true) or upgrade the kernel"
        )
    return {"needed": needed, "apply": bool(needed and workaround), "errors": errors}


def swarm_colima_address(colima_list_output, profile="default"):
    """The VM address `colima list --json` reports for ``profile`` (one JSON object per line; ``address`` is set
    only when the VM was started with --network-address), or ''."""
    for line in str(colima_list_output or "").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("name") == profile and row.get("status") == "Running":
            return str(row.get("address") or "")
    return ""


# ---------------------------------------------------------------------------------------------------------------
# after a deploy: convergence and rollback reports
# ---------------------------------------------------------------------------------------------------------------
_TASK_RE = re.compile(r"task ([a-z0-9]{6,})")
ROLLED_BACK = ("rollback_started", "rollback_paused", "rollback_completed", "paused")


def _replica_counts(text):
    m = re.match(r"^\s*(\d+)/(\d+)", str(text or ""))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def swarm_converged(service_rows, inspected):
    """``service_rows``: `docker service ls --format json` rows of the stack; ``inspected``: `docker service
    inspect` of the same. Converged when every service runs all its replicas and no update or rollback is in
    progress. Returns {converged, services: [{name, running, desired, update_state}]}."""
    states = {}
    for s in inspected or []:
        states[(s.get("Spec") or {}).get("Name")] = ((s.get("UpdateStatus") or {}).get("State")) or ""
    out, ok = [], True
    for row in service_rows or []:
        running, desired = _replica_counts(row.get("Replicas"))
        state = states.get(row.get("Name"), "")
        if running != desired or state in ("updating", "rollback_started"):
            ok = False
        out.append({"name": row.get("Name"), "running": running, "desired": desired, "update_state": state})
    return {"converged": ok and bool(out), "services": out}


def swarm_update_marks(inspected):
    """service name -> UpdateStatus.StartedAt ('' when the service was never updated): read before a deploy, so
    that only updates this deploy started are reported."""
    return {
        (s.get("Spec") or {}).get("Name"): str((s.get("UpdateStatus") or {}).get("StartedAt") or "")
        for s in inspected or []
    }


def swarm_service_report(inspected, tasks, before=None):
    """Which services Swarm rolled back (or paused) and why. ``tasks``: `docker service ps --no-trunc --format json`
    rows (ID, Name, Node, CurrentState, DesiredState, Error); ``before``: swarm_update_marks read before this deploy
    (an older rollback of a service is not reported again). Returns [{service, state, message, tasks, text}]."""
    out = []
    before = before or {}
    for s in inspected or []:
        name = (s.get("Spec") or {}).get("Name")
        status = s.get("UpdateStatus") or {}
        state = status.get("State") or ""
        if state not in ROLLED_BACK:
            continue
        if name in before and before[name] == str(status.get("StartedAt") or ""):
            continue
        message = status.get("Message") or ""
        ids = _TASK_RE.findall(message)
        prefix = f"{name}."
        mine = [t for t in tasks or [] if str(t.get("Name", "")).startswith(prefix)]
        failed = [
            t for t in mine if any(str(t.get("ID", "")).startswith(i) or i.startswith(str(t.get("ID"))) for i in ids)
        ]
        if not failed:
            # once the rollback completed, Swarm's message no longer names the task: take the newest failed task of
            # each slot (docker service ps lists a slot's tasks newest first)
            seen = set()
            for t in mine:
                if t.get("Error") and t.get("Name") not in seen:
                    seen.add(t.get("Name"))
                    failed.append(t)
        described = [
            f"task {t.get('Name')} ({str(t.get('ID'))[:12]}) on {t.get('Node') or '?'}: "
            f"{t.get('Error') or t.get('CurrentState') or 'no error recorded'}"
            for t in failed
        ]
        text = f"service {name}: Swarm {state.replace('_', ' ')}: {message}"
        if described:
            text += "; " + "; ".join(described)
        out.append({"service": name, "state": state, "message": message, "tasks": failed, "text": text})
    return out


def swarm_json_lines(text):
    """`docker ... --format '{{json .}}'` output (one object per line) -> list."""
    out = []
    for raw in str(text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


class FilterModule:
    def filters(self):
        return {
            "swarm_membership": swarm_membership,
            "swarm_secret_plan": swarm_secret_plan,
            "swarm_stack": swarm_stack,
            "swarm_stack_errors": swarm_stack_errors,
            "swarm_stack_record": swarm_stack_record,
            "swarm_previous_release": swarm_previous_release,
            "swarm_nodes": swarm_nodes,
            "swarm_placement": swarm_placement,
            "swarm_mtu_errors": swarm_mtu_errors,
            "swarm_kernel_version": swarm_kernel_version,
            "swarm_gro_check": swarm_gro_check,
            "swarm_colima_address": swarm_colima_address,
            "swarm_converged": swarm_converged,
            "swarm_update_marks": swarm_update_marks,
            "swarm_service_report": swarm_service_report,
            "swarm_json_lines": swarm_json_lines,
        }
