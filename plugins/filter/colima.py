"""Colima drift decision: `homeport.homeport.colima_drift_action(desired, running)`.

Colima silently ignores a changed arch, vmType, runtime, mountType or a smaller disk when the VM already exists
(`colima start` keeps what the VM was created with). This filter compares what the role wants with what the VM
really is and says what to do, so the role can stop with a clear message instead of pretending it applied a change.

desired (built by the colima role):
    cpu (int), memory (GiB, int/float), disk (GiB, int), arch (aarch64|x86_64; "host" must be resolved first),
    vmType (vz|qemu), runtime (docker|containerd), mountType (virtiofs|sshfs|9p), rosetta (bool),
    docker (dict: the daemon.json settings inside the VM), allow_recreate (bool),
    host_memory (bytes, the Mac's RAM), host_reserve (bytes kept for macOS).
running (gathered from `colima list --json` merged with the VM's state colima.yaml), or {} / None when no VM:
    status (Running|Stopped|Broken|...), arch, cpus, memory (bytes, from `colima list --json`),
    disk (bytes, from `colima list --json`), runtime ("docker" or "docker+k3s"), and from the state colima.yaml:
    vmType, mountType, rosetta, docker, cpu / memory_gib / disk_gib (used when the list values are missing).

Returns {"action": none|start|restart|recreate|refuse, "reasons": [str], "force_stop": bool,
         "changes": {setting: {"desired": x, "running": y}}}.
  refuse    the request cannot be applied safely (memory over host RAM - reserve; an immutable setting changed while
            allow_recreate is false). Nothing must be changed on the host.
  recreate  `colima delete --force` then start: loses every image, container and volume inside the VM.
  restart   stop then start (cpu/memory/disk grow/rosetta/docker daemon settings; a Broken VM: force_stop=true).
  start     no VM yet, or a stopped VM (a start applies the mutable settings too).
  none      the VM runs with the desired settings.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - the filter is always used with ansible installed

    class AnsibleFilterError(Exception):  # type: ignore[no-redef]
        pass


GIB = 1024**3
MIB = 1024**2
IMMUTABLE = ("arch", "vmType", "runtime", "mountType")
# the inventory variable behind each setting, named in the refusal so the user knows what to edit
VARIABLE = {
    "arch": "colima_arch",
    "vmType": "colima_vm_type",
    "runtime": "colima_runtime",
    "mountType": "colima_mount_type",
    "disk": "colima_disk",
}
ARCH_ALIASES = {"arm64": "aarch64", "aarch64": "aarch64", "amd64": "x86_64", "x86_64": "x86_64"}
REQUIRED = ("cpu", "memory", "disk", "arch", "vmType", "runtime", "mountType")


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or value is None:
        raise AnsibleFilterError(f"colima_drift_action: {what} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"colima_drift_action: {what} must be a number, got {value!r}") from None


def _arch(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return ARCH_ALIASES.get(str(value).lower(), str(value).lower())


def _gib(n: float) -> str:
    return f"{n:g} GiB"


def _running_size_mib(running: dict, bytes_key: str, gib_key: str) -> float | None:
    """A size of the running VM in MiB: `colima list --json` bytes first, else the state file's GiB."""
    if running.get(bytes_key) not in (None, "", 0):
        return _num(running[bytes_key], f"running.{bytes_key}") / MIB
    if running.get(gib_key) not in (None, ""):
        return _num(running[gib_key], f"running.{gib_key}") * 1024
    return None


def colima_drift_action(desired: dict, running: dict | None) -> dict:
    if not isinstance(desired, dict):
        raise AnsibleFilterError("colima_drift_action: desired must be a dict")
    missing = [k for k in REQUIRED if k not in desired]
    if missing:
        raise AnsibleFilterError(f"colima_drift_action: desired lacks {', '.join(missing)}")
    if desired["arch"] == "host":
        raise AnsibleFilterError("colima_drift_action: resolve arch 'host' to aarch64 or x86_64 before comparing")
    running = dict(running or {})
    reasons: list[str] = []
    changes: dict[str, dict[str, Any]] = {}

    # 1. Memory budget: checked first, whatever the VM state, so nothing changes when it does not fit.
    want_mem_mib = _num(desired["memory"], "desired.memory") * 1024
    host_mem = desired.get("host_memory")
    if host_mem not in (None, ""):
        reserve = _num(desired.get("host_reserve", 2 * GIB), "desired.host_reserve")
        limit_mib = (_num(host_mem, "desired.host_memory") - reserve) / MIB
        if want_mem_mib > limit_mib:
            reasons.append(
                f"memory: {_gib(want_mem_mib / 1024)} requested for the VM but the host has "
                f"{_gib(_num(host_mem, 'host_memory') / GIB)} and colima_host_reserve keeps {_gib(reserve / GIB)} "
                f"for macOS (at most {_gib(max(limit_mib, 0) / 1024)}); lower colima_memory or colima_host_reserve"
            )
            return {"action": "refuse", "reasons": reasons, "force_stop": False, "changes": {}}

    status = str(running.get("status") or "")
    if not running or not status:
        return {
            "action": "start",
            "reasons": ["no VM for this profile yet: colima start creates it"],
            "force_stop": False,
            "changes": {},
        }

    # 2. Immutable settings (colima keeps what the VM was created with).
    want = {
        "arch": _arch(desired["arch"]),
        "vmType": desired["vmType"],
        "runtime": desired["runtime"],
        "mountType": desired["mountType"],
    }
    have = {
        "arch": _arch(running.get("arch")),
        "vmType": running.get("vmType") or None,
        "runtime": (str(running["runtime"]).split("+", 1)[0] if running.get("runtime") else None),
        "mountType": running.get("mountType") or None,
    }
    immutable_diffs = []
    for key in IMMUTABLE:
        if have[key] is not None and have[key] != want[key]:
            changes[key] = {"desired": want[key], "running": have[key]}
            immutable_diffs.append(
                f"{key}: desired {want[key]}, running {have[key]} ({VARIABLE[key]}; fixed when the VM was created)"
            )
    want_disk_mib = _num(desired["disk"], "desired.disk") * 1024
    have_disk_mib = _running_size_mib(running, "disk", "disk_gib")
    if have_disk_mib is not None and want_disk_mib < have_disk_mib - 1:
        changes["disk"] = {"desired": _gib(want_disk_mib / 1024), "running": _gib(have_disk_mib / 1024)}
        immutable_diffs.append(
            f"disk: desired {_gib(want_disk_mib / 1024)}, running {_gib(have_disk_mib / 1024)} "
            f"({VARIABLE['disk']}; a VM disk can only grow, never shrink)"
        )
    if immutable_diffs:
        if desired.get("allow_recreate"):
            return {
                "action": "recreate",
                "reasons": [
                    *immutable_diffs,
                    "colima_allow_recreate is true: the VM is deleted and created again "
                    "(every image, container and volume inside the VM is lost)",
                ],
                "force_stop": True,
                "changes": changes,
            }
        return {
            "action": "refuse",
            "reasons": [
                *immutable_diffs,
                "Colima would silently ignore these on the existing VM. Either put the running values back in the "
                "inventory, or set colima_allow_recreate: true to delete and recreate the VM "
                "(this loses every image, container and volume inside the VM).",
            ],
            "force_stop": False,
            "changes": changes,
        }

    # 3. Mutable settings: applied by a (re)start.
    mutable = []
    have_cpu = running.get("cpus", running.get("cpu"))
    if have_cpu not in (None, "") and int(_num(have_cpu, "running.cpus")) != int(_num(desired["cpu"], "cpu")):
        changes["cpu"] = {"desired": int(desired["cpu"]), "running": int(_num(have_cpu, "running.cpus"))}
        mutable.append(f"cpu: desired {int(desired['cpu'])}, running {int(_num(have_cpu, 'running.cpus'))}")
    have_mem_mib = _running_size_mib(running, "memory", "memory_gib")
    if have_mem_mib is not None and abs(have_mem_mib - want_mem_mib) >= 1:
        changes["memory"] = {"desired": _gib(want_mem_mib / 1024), "running": _gib(have_mem_mib / 1024)}
        mutable.append(f"memory: desired {_gib(want_mem_mib / 1024)}, running {_gib(have_mem_mib / 1024)}")
    if have_disk_mib is not None and want_disk_mib > have_disk_mib + 1:
        changes["disk"] = {"desired": _gib(want_disk_mib / 1024), "running": _gib(have_disk_mib / 1024)}
        mutable.append(f"disk: grows from {_gib(have_disk_mib / 1024)} to {_gib(want_disk_mib / 1024)}")
    if "rosetta" in desired and "rosetta" in running and bool(desired["rosetta"]) != bool(running["rosetta"]):
        changes["rosetta"] = {"desired": bool(desired["rosetta"]), "running": bool(running["rosetta"])}
        mutable.append(f"rosetta: desired {bool(desired['rosetta'])}, running {bool(running['rosetta'])}")
    if "docker" in desired and "docker" in running and (desired["docker"] or {}) != (running["docker"] or {}):
        changes["docker"] = {"desired": desired["docker"], "running": running["docker"]}
        mutable.append("docker: the daemon settings inside the VM differ")

    if status == "Broken":
        return {
            "action": "restart",
            "reasons": ["the VM is Broken: colima stop --force, then start", *mutable],
            "force_stop": True,
            "changes": changes,
        }
    if status != "Running":
        return {
            "action": "start",
            "reasons": [f"the VM is {status}", *mutable],
            "force_stop": False,
            "changes": changes,
        }
    if mutable:
        return {"action": "restart", "reasons": mutable, "force_stop": False, "changes": changes}
    return {"action": "none", "reasons": [], "force_stop": False, "changes": {}}


def colima_running_state(list_output: str, config_text: str = "", profile: str = "default") -> dict:
    """`colima list --json` output (one JSON object per line) + the VM's state colima.yaml -> `running` for
    colima_drift_action. {} when the profile has no VM. The list wins over the file (it is what runs)."""
    entry = None
    for raw in (list_output or "").splitlines():
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise AnsibleFilterError(
                f"colima_running_state: colima list --json printed invalid JSON: {line!r}"
            ) from exc
        if item.get("name") == profile:
            entry = item
    if entry is None:
        return {}
    conf: Any = {}
    if config_text and config_text.strip():
        try:
            conf = yaml.safe_load(config_text)
        except yaml.YAMLError as exc:
            raise AnsibleFilterError(f"colima_running_state: the VM's colima.yaml is not valid YAML: {exc}") from exc
    conf = conf if isinstance(conf, dict) else {}
    running: dict[str, Any] = {
        k: conf[k] for k in ("vmType", "mountType", "rosetta", "docker", "runtime", "arch") if k in conf
    }
    for src, dst in (("cpu", "cpu"), ("memory", "memory_gib"), ("disk", "disk_gib")):
        if src in conf:
            running[dst] = conf[src]
    running.update(entry)
    return running


class FilterModule:
    def filters(self):
        return {"colima_drift_action": colima_drift_action, "colima_running_state": colima_running_state}
