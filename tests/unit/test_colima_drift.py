"""The Colima drift decision (plugins/filter/colima.py) as a table: (desired, running) -> action."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("homeport_colima_filter", ROOT / "plugins" / "filter" / "colima.py")
colima = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colima)

GIB = 1024**3
DOCKER = {"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}, "live-restore": True}
DESIRED = {
    "cpu": 4,
    "memory": 8,
    "disk": 60,
    "arch": "aarch64",
    "vmType": "vz",
    "runtime": "docker",
    "mountType": "virtiofs",
    "rosetta": True,
    "docker": DOCKER,
    "allow_recreate": False,
    "host_memory": 16 * GIB,
    "host_reserve": 2 * GIB,
}
# what colima_running_state builds: `colima list --json` merged over the VM's state colima.yaml
RUNNING = {
    "name": "default",
    "status": "Running",
    "arch": "aarch64",
    "cpus": 4,
    "memory": 8 * GIB,
    "disk": 60 * GIB,
    "runtime": "docker",
    "vmType": "vz",
    "mountType": "virtiofs",
    "rosetta": True,
    "docker": DOCKER,
}


def d(**kw):
    return {**DESIRED, **kw}


def r(**kw):
    return {**RUNNING, **kw}


TABLE = [
    # id, desired, running, action, force_stop, changed settings
    ("no-vm", d(), {}, "start", False, set()),
    ("no-vm-none", d(), None, "start", False, set()),
    ("in-sync", d(), r(), "none", False, set()),
    ("stopped", d(), r(status="Stopped"), "start", False, set()),
    ("stopped-cpu-change", d(cpu=6), r(status="Stopped"), "start", False, {"cpu"}),
    ("broken", d(), r(status="Broken"), "restart", True, set()),
    ("broken-memory-change", d(memory=10), r(status="Broken"), "restart", True, {"memory"}),
    ("cpu-change", d(cpu=6), r(), "restart", False, {"cpu"}),
    ("memory-change", d(memory=12), r(), "restart", False, {"memory"}),
    ("memory-fractional", d(memory=8.5), r(), "restart", False, {"memory"}),
    ("disk-grow", d(disk=100), r(), "restart", False, {"disk"}),
    ("disk-shrink", d(disk=40), r(), "refuse", False, {"disk"}),
    ("disk-shrink-recreate", d(disk=40, allow_recreate=True), r(), "recreate", True, {"disk"}),
    ("arch", d(arch="x86_64", rosetta=False), r(rosetta=False), "refuse", False, {"arch"}),
    ("arch-recreate", d(arch="x86_64", allow_recreate=True), r(), "recreate", True, {"arch"}),
    ("arch-alias", d(arch="arm64"), r(), "none", False, set()),
    ("vmType", d(vmType="qemu", mountType="virtiofs"), r(), "refuse", False, {"vmType"}),
    ("vmType-recreate", d(vmType="qemu", allow_recreate=True), r(), "recreate", True, {"vmType"}),
    ("runtime", d(runtime="containerd"), r(), "refuse", False, {"runtime"}),
    ("runtime-recreate", d(runtime="containerd", allow_recreate=True), r(), "recreate", True, {"runtime"}),
    ("runtime-k3s-suffix", d(), r(runtime="docker+k3s"), "none", False, set()),
    ("mountType", d(mountType="sshfs"), r(), "refuse", False, {"mountType"}),
    ("mountType-recreate", d(mountType="sshfs", allow_recreate=True), r(), "recreate", True, {"mountType"}),
    ("two-immutable", d(vmType="qemu", mountType="9p"), r(), "refuse", False, {"vmType", "mountType"}),
    ("immutable-beats-broken", d(mountType="sshfs"), r(status="Broken"), "refuse", False, {"mountType"}),
    ("immutable-on-stopped", d(runtime="containerd"), r(status="Stopped"), "refuse", False, {"runtime"}),
    ("rosetta-change", d(rosetta=False), r(), "restart", False, {"rosetta"}),
    ("docker-settings", d(docker={**DOCKER, "live-restore": False}), r(), "restart", False, {"docker"}),
    (
        "no-state-file",
        d(),
        {k: v for k, v in r().items() if k not in {"vmType", "mountType", "docker"}},
        "none",
        False,
        set(),
    ),
    (
        "list-without-sizes-uses-yaml",
        d(),
        {
            **{k: v for k, v in r().items() if k not in {"memory", "disk", "cpus"}},
            "cpu": 4,
            "memory_gib": 8,
            "disk_gib": 60,
        },
        "none",
        False,
        set(),
    ),
    ("memory-over-budget", d(memory=15), r(), "refuse", False, set()),
    ("memory-over-budget-no-vm", d(memory=15), {}, "refuse", False, set()),
    ("memory-over-budget-even-with-recreate", d(memory=15, allow_recreate=True), r(), "refuse", False, set()),
    ("memory-bigger-reserve", d(memory=12, host_reserve=6 * GIB), r(memory=12 * GIB), "refuse", False, set()),
    ("memory-at-budget", d(memory=14), r(), "restart", False, {"memory"}),
    ("small-mac", d(memory=8, host_memory=8 * GIB), {}, "refuse", False, set()),
]


@pytest.mark.parametrize(
    ("desired", "running", "action", "force", "changed"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE]
)
def test_decision_table(desired, running, action, force, changed):
    out = colima.colima_drift_action(desired, running)
    assert out["action"] == action, out
    assert out["force_stop"] is force, out
    assert set(out["changes"]) == changed, out
    if action != "none":
        assert out["reasons"], "every action but none explains itself"


def test_refusal_names_each_setting_desired_vs_running_and_how_to_recreate():
    out = colima.colima_drift_action(d(vmType="qemu", mountType="sshfs", disk=40), r())
    text = " ".join(out["reasons"])
    assert "vmType: desired qemu, running vz" in text
    assert "mountType: desired sshfs, running virtiofs" in text
    assert "disk: desired 40 GiB, running 60 GiB" in text
    # each refused setting names the inventory variable to edit (issue 14: the message names the variable)
    assert "(colima_vm_type; fixed when the VM was created)" in text
    assert "(colima_mount_type; fixed when the VM was created)" in text
    assert "(colima_disk; a VM disk can only grow, never shrink)" in text
    assert "colima_allow_recreate: true" in text and "loses every image, container and volume" in text


def test_recreate_warns_about_data_loss():
    out = colima.colima_drift_action(d(arch="x86_64", allow_recreate=True), r())
    assert any("every image, container and volume inside the VM is lost" in x for x in out["reasons"])


def test_memory_refusal_says_what_to_change():
    out = colima.colima_drift_action(d(memory=15), {})
    assert "15 GiB" in out["reasons"][0] and "at most 14 GiB" in out["reasons"][0]
    assert "colima_memory" in out["reasons"][0]


@pytest.mark.parametrize(
    ("desired", "msg"),
    [
        ({k: v for k, v in DESIRED.items() if k != "vmType"}, "desired lacks vmType"),
        (d(arch="host"), "resolve arch 'host'"),
        (d(cpu="four"), "must be a number"),
        ("not a dict", "desired must be a dict"),
    ],
)
def test_bad_input_is_an_error(desired, msg):
    with pytest.raises(AnsibleFilterError, match=msg):
        colima.colima_drift_action(desired, r())


LIST_OUTPUT = (
    '{"name":"work","status":"Stopped","arch":"x86_64","cpus":2,"memory":2147483648,"disk":107374182400}\n'
    '{"name":"default","status":"Running","arch":"aarch64","cpus":4,"memory":8589934592,"disk":64424509440,'
    '"dir":"/Users/admin/.colima/_lima/colima","address":"192.168.106.2","runtime":"docker"}\n'
)
STATE_YAML = """
cpu: 2
memory: 4
disk: 60
arch: aarch64
runtime: docker
vmType: vz
mountType: virtiofs
rosetta: true
docker: {"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}, "live-restore": true}
"""


def test_running_state_merges_list_over_state_file():
    running = colima.colima_running_state(LIST_OUTPUT, STATE_YAML, "default")
    assert running["status"] == "Running" and running["cpus"] == 4 and running["memory"] == 8 * GIB
    assert running["vmType"] == "vz" and running["mountType"] == "virtiofs" and running["docker"] == DOCKER
    assert running["memory_gib"] == 4  # the file's value is kept aside, the list wins
    assert colima.colima_drift_action(d(), running)["action"] == "none"


def test_running_state_absent_profile_and_garbage():
    assert colima.colima_running_state(LIST_OUTPUT, STATE_YAML, "other") == {}
    assert colima.colima_running_state("", "", "default") == {}
    assert colima.colima_running_state('time="x" level=warning msg="No instance found"\n', "", "default") == {}
    with pytest.raises(AnsibleFilterError, match="invalid JSON"):
        colima.colima_running_state("{not json\n", "", "default")
    with pytest.raises(AnsibleFilterError, match="not valid YAML"):
        colima.colima_running_state(LIST_OUTPUT, "cpu: [unclosed", "default")


def test_filter_plugin_exports():
    assert set(colima.FilterModule().filters()) == {"colima_drift_action", "colima_running_state"}
