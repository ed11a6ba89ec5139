"""macos_runtime (macOS-sim lane): what homebrew + colima did on the simulated Mac, checked through the doubles'
state and call log; then the drift protection (refuse, recreate, Broken recovery) with extra ansible-playbook runs."""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
from pathlib import Path

import pytest
from homeport_testinfra import run_ok, sim_calls, sim_state

ADMIN_HOME = "/home/admin"
PREFIX = "/opt/homebrew"
PLIST = "/Library/LaunchDaemons/com.homeport.colima.plist"
WRAPPER = "/usr/local/libexec/homeport/colima-launchd"
SCENARIO_DIR = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO_DIR.parents[1]


def as_admin(host, cmd: str) -> str:
    return run_ok(host, f"su - admin -c {json.dumps(cmd)}")


def vm(host) -> dict:
    return json.loads(sim_state(host, "colima", "default.json") or "null")


# --- homebrew ---------------------------------------------------------------------------------------------------


def test_clt_installed_non_interactively(host):
    assert host.file("/Library/Developer/CommandLineTools/usr/bin").is_directory
    calls = sim_calls(host, "softwareupdate")
    assert ["softwareupdate", "-l"] in calls
    assert ["softwareupdate", "-i", "Command Line Tools for Xcode-16.2", "--verbose"] in calls
    assert not host.file("/tmp/.com.apple.dt.CommandLineTools.installondemand.in-progress").exists


def test_homebrew_installed_as_admin_without_prompt(host):
    installs = [c for c in sim_calls(host) if c and c[0] == "homebrew-install.sh"]
    assert installs == [["homebrew-install.sh", "NONINTERACTIVE=1", "USER=admin"]]
    brew = host.file(f"{PREFIX}/bin/brew")
    assert brew.exists and brew.user == "admin"


def test_packages(host):
    state = json.loads(sim_state(host, "brew", "state.json"))
    assert {"colima", "docker", "docker-compose", "docker-buildx", "jq"} <= set(state["formulae"])
    assert state["taps"] == ["homeport/tools"]
    assert set(state["casks"]) == {"iterm2"}
    # brew ran as the admin user only (the double refuses root for changing commands)
    assert all(c[1] in {"--version", "info", "list", "tap", "install", "outdated"} for c in sim_calls(host, "brew"))


def test_path_for_non_interactive_ssh(host):
    assert host.file("/etc/paths.d/homebrew").content_string.splitlines()[-2:] == [f"{PREFIX}/bin", f"{PREFIX}/sbin"]
    zshenv = host.file(f"{ADMIN_HOME}/.zshenv").content_string
    assert f'eval "$({PREFIX}/bin/brew shellenv)"' in zshenv
    assert "export COLIMA_SAVE_CONFIG=0" in zshenv
    # a non-interactive shell that reads .zshenv finds docker and colima
    out = run_ok(host, f"su admin -s /bin/bash -c '. {ADMIN_HOME}/.zshenv; command -v docker colima'")
    assert out.split() == [f"{PREFIX}/bin/docker", f"{PREFIX}/bin/colima"]


# --- colima -----------------------------------------------------------------------------------------------------


def test_colima_yaml(host):
    import yaml

    f = host.file(f"{ADMIN_HOME}/.colima/default/colima.yaml")
    assert f.user == "admin"
    conf = yaml.safe_load(f.content_string)
    assert conf["cpu"] == 4 and conf["memory"] == 8 and conf["disk"] == 60
    assert conf["arch"] == "aarch64" and conf["vmType"] == "vz" and conf["mountType"] == "virtiofs"
    assert conf["runtime"] == "docker" and conf["rosetta"] is True
    assert conf["docker"] == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "20m", "max-file": "3"},
        "live-restore": True,
    }
    assert "Ansible" in f.content_string.splitlines()[0] or "ansible" in f.content_string[:200].lower()


def test_launchdaemon_plist(host):
    f = host.file(PLIST)
    assert f.user == "root" and f.mode == 0o644
    data = plistlib.loads(f.content)
    assert data["Label"] == "com.homeport.colima"
    assert data["ProgramArguments"] == ["/bin/sh", WRAPPER, "default", f"{PREFIX}/bin/colima"]
    assert data["UserName"] == "admin"
    assert data["RunAtLoad"] is True and data["KeepAlive"] == {"SuccessfulExit": False}
    env = data["EnvironmentVariables"]
    assert env["HOME"] == ADMIN_HOME and env["PATH"].startswith(f"{PREFIX}/bin:") and env["COLIMA_SAVE_CONFIG"] == "0"
    assert data["StandardErrorPath"] == f"{ADMIN_HOME}/Library/Logs/homeport/colima.err.log"


def test_launchdaemon_loaded_and_vm_running(host):
    out = run_ok(host, "launchctl print system/com.homeport.colima")
    assert "state = running" in out and "username = admin" in out
    state = vm(host)
    assert state["status"] == "Running"
    assert state["config"]["vmType"] == "vz" and state["config"]["cpu"] == 4
    # the VM was started by launchd running the plist's program as admin, not by the role directly
    execs = [c for c in sim_calls(host) if c and c[0] == "launchd-exec" and c[1] == "system/com.homeport.colima"]
    assert execs and execs[-1][1:] == [
        "system/com.homeport.colima",
        "/bin/sh",
        WRAPPER,
        "default",
        f"{PREFIX}/bin/colima",
    ]
    assert host.file(WRAPPER).user == "root" and host.file(WRAPPER).mode == 0o755
    starts = [c for c in sim_calls(host, "colima") if c[1] == "start"]
    assert starts and all("--foreground" in c for c in starts)


def test_idempotent_run_did_not_restart(host):
    # converge + idempotence: the VM was created once and started once
    assert vm(host)["starts"] == 1
    assert len([c for c in sim_calls(host, "launchctl") if c[1] == "bootstrap" and c[-1] == PLIST]) == 1


def test_docker_context_and_plugins(host):
    assert as_admin(host, f"{PREFIX}/bin/docker context show").strip() == "colima"
    cfg = json.loads(host.file(f"{ADMIN_HOME}/.docker/config.json").content_string)
    assert f"{PREFIX}/lib/docker/cli-plugins" in cfg["cliPluginsExtraDirs"]
    assert "Docker Compose version v2" in as_admin(host, f"{PREFIX}/bin/docker compose version")
    assert "Docker Buildx version" in as_admin(host, f"{PREFIX}/bin/docker buildx version")
    info = json.loads(as_admin(host, f"{PREFIX}/bin/docker info --format '{{{{json .}}}}'"))
    assert info["LoggingDriver"] == "json-file" and info["LiveRestoreEnabled"] is True


# --- monitoring: Homebrew formulae run as LaunchDaemons on the Mac (the brew double's stand-ins, see its docstring)

MONITORING = {  # label -> (the formula's binary under the prefix, the port it must listen on, 127.0.0.1 only)
    "com.homeport.monitoring.prometheus": (f"{PREFIX}/bin/prometheus", 9090),
    "com.homeport.monitoring.alertmanager": (f"{PREFIX}/bin/alertmanager", 9093),
    "com.homeport.monitoring.node-exporter": (f"{PREFIX}/bin/node_exporter", 9100),
    "com.homeport.monitoring.blackbox-exporter": (f"{PREFIX}/bin/blackbox_exporter", 9115),
}
COLLECTOR = "com.homeport.monitoring.collector"
TEXTFILE = f"{PREFIX}/var/homeport-monitoring/textfile/homeport.prom"


def test_monitoring_formulae_installed_as_admin(host):
    state = json.loads(sim_state(host, "brew", "state.json"))
    assert {"prometheus", "alertmanager", "node_exporter", "blackbox_exporter"} <= set(state["formulae"])
    for exe in ("prometheus", "promtool", "alertmanager", "amtool", "node_exporter", "blackbox_exporter"):
        assert host.file(f"{PREFIX}/bin/{exe}").is_symlink
    # the configuration files went through promtool / amtool (the role's validate:)
    assert [c for c in sim_calls(host, "promtool") if c[1:3] == ["check", "rules"]]
    assert [c for c in sim_calls(host, "promtool") if c[1:3] == ["check", "config"]]
    assert [c for c in sim_calls(host, "amtool") if c[1] == "check-config"]


def test_monitoring_launchdaemons_parse_and_pass_plutil(host):
    paths = [f"/Library/LaunchDaemons/{label}.plist" for label in [*MONITORING, COLLECTOR]]
    out = run_ok(host, "plutil -lint " + " ".join(paths))
    assert out.splitlines() == [f"{p}: OK" for p in paths]
    for label, path in zip([*MONITORING, COLLECTOR], paths, strict=True):
        f = host.file(path)
        assert f.user == "root" and f.mode == 0o644
        data = plistlib.loads(f.content)
        assert data["Label"] == label and data["UserName"] == "admin" and data["RunAtLoad"] is True
        if label in MONITORING:
            binary, port = MONITORING[label]
            argv = data["ProgramArguments"]
            if label.endswith(".alertmanager"):  # issue 27: its log goes through the redactor, which execs it
                assert argv[:3] == ["/usr/bin/python3", "/usr/local/libexec/homeport-log-redact", "--"], argv
                argv = argv[3:]
            assert argv[0] == binary and data["KeepAlive"] is True
            assert f"--web.listen-address=127.0.0.1:{port}" in data["ProgramArguments"]
        else:
            assert data["ProgramArguments"][1:2] == ["/usr/local/libexec/homeport-metrics"]
            assert data["StartInterval"] == 30 and data["EnvironmentVariables"]["HOME"] == ADMIN_HOME


def test_monitoring_daemons_loaded_running_as_admin_on_localhost_only(host):
    for label in MONITORING:
        out = run_ok(host, f"launchctl print system/{label}")
        assert "state = running" in out and "username = admin" in out, out
    # the processes launchd started: the admin's, one per daemon
    procs = [ln.split(None, 1) for ln in run_ok(host, "ps -eo user:20,args").splitlines() if "--sim-standin" in ln]
    daemons = {args.split("--sim-standin ", 1)[1].split()[0]: user for user, args in procs}
    assert daemons == {b.rsplit("/", 1)[1]: "admin" for b, _ in MONITORING.values()}
    listening = {}
    for line in run_ok(host, "ss -Hltn").splitlines():
        local = line.split()[3]
        addr, _, port = local.rpartition(":")
        listening.setdefault(int(port), set()).add(addr)
    for _binary, port in MONITORING.values():
        assert listening.get(port) == {"127.0.0.1"}, (port, listening.get(port))


def test_collector_runs_as_admin_and_reports_the_vm_memory_pressure(host):
    out = run_ok(host, f"launchctl print system/{COLLECTOR}")
    assert "username = admin" in out and "last exit code = 0" in out, out
    # the VM comes under memory pressure; launchd's next StartInterval run (kickstart) exports it
    run_ok(
        host,
        "python3 -c \"import json; p='/var/lib/homeport-sim/colima/default.json'; d=json.load(open(p)); "
        "d['pressure_memory']={'some': [12.5, 30.1, 8, 42000000], 'full': [0, 0.5, 0, 1500000]}; "
        "json.dump(d, open(p, 'w'))\"",
    )
    run_ok(host, f"launchctl kickstart -k system/{COLLECTOR}")
    metrics = ""
    for _ in range(60):  # poll: the collector runs detached under the launchd double
        metrics = run_ok(
            host,
            "python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:9100/metrics').read().decode())\"",
        )
        if 'homeport_colima_memory_pressure_waiting_seconds_total{profile="default"} 42.0' in metrics:
            break
        host.run("sleep 0.5")
    assert 'homeport_colima_memory_pressure_waiting_seconds_total{profile="default"} 42.0' in metrics, metrics
    assert 'homeport_colima_memory_pressure_stalled_seconds_total{profile="default"} 1.5' in metrics
    assert 'homeport_colima_running{profile="default"} 1' in metrics
    assert host.file(TEXTFILE).user == "admin"
    assert ["colima", "ssh", "-p", "default", "--", "cat", "/proc/pressure/memory"] in sim_calls(host, "colima")


# --- drift protection (extra playbook runs; keep these last, the final one restores the converged state) -------


def _playbook(extra: dict) -> subprocess.CompletedProcess:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or str(
        Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    )
    env = dict(os.environ)
    env.update(
        ANSIBLE_ROLES_PATH=str(PROJECT / "roles"),
        ANSIBLE_COLLECTIONS_PATH=str(PROJECT / ".cache" / "collections"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_PIPELINING="true",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",  # one line per message: no wrapped needles
    )
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, str(SCENARIO_DIR / "drift.yml"), "-e", json.dumps(extra)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (
            {
                "colima_vm_type": "qemu",
                "colima_mount_type": "sshfs",
                "colima_rosetta": False,
                "colima_arch": "x86_64",
                "colima_runtime": "containerd",
                "colima_disk": 40,
            },
            [
                "vmType: desired qemu, running vz",
                "mountType: desired sshfs, running virtiofs",
                "arch: desired x86_64, running aarch64",
                "runtime: desired containerd, running docker",
                "disk: desired 40 GiB, running 60 GiB",
                "colima_allow_recreate: true",
            ],
        ),
        ({"colima_memory": 15}, ["15 GiB requested", "colima_host_reserve"]),
    ],
    ids=["every-immutable-setting", "memory-over-budget"],
)
def test_changed_immutable_setting_is_refused(host, extra, names):
    before = host.file(f"{ADMIN_HOME}/.colima/default/colima.yaml").content_string
    calls_before = len(sim_calls(host))
    r = _playbook(extra)
    assert r.returncode != 0, r.stdout[-3000:]
    out = r.stdout + r.stderr  # ansible-core 2.19 prints task errors on stderr
    for name in names:
        assert name in out, out[-3000:]
    # refused before anything changed: same config, no colima/launchctl action recorded
    assert host.file(f"{ADMIN_HOME}/.colima/default/colima.yaml").content_string == before
    new = sim_calls(host)[calls_before:]
    assert not [c for c in new if c[0] in {"launchctl", "colima"} and c[1] not in {"list", "print"}], new
    assert vm(host)["status"] == "Running"


def test_broken_vm_is_recovered(host):
    run_ok(
        host,
        "python3 -c \"import json; p='/var/lib/homeport-sim/colima/default.json'; d=json.load(open(p)); "
        "d['status']='Broken'; json.dump(d, open(p, 'w'))\"",
    )
    n = len(sim_calls(host))
    r = _playbook({})
    assert r.returncode == 0, r.stdout[-3000:]
    new = sim_calls(host)[n:]
    assert ["colima", "stop", "default", "--force"] in new
    assert vm(host)["status"] == "Running"


def test_allow_recreate_recreates_then_restores(host):
    n = len(sim_calls(host))
    r = _playbook(
        {"colima_vm_type": "qemu", "colima_mount_type": "sshfs", "colima_rosetta": False, "colima_allow_recreate": True}
    )
    assert r.returncode == 0, r.stdout[-3000:]
    assert "every image, container and volume inside the VM is lost" in r.stdout
    new = sim_calls(host)[n:]
    assert ["colima", "delete", "default", "--force", "--data"] in new
    state = vm(host)
    assert state["status"] == "Running" and state["created"] is True
    assert state["config"]["vmType"] == "qemu" and state["config"]["mountType"] == "sshfs"
    # back to the converged settings (recreate again), so a rerun of verify starts from the same place
    r = _playbook({"colima_allow_recreate": True})
    assert r.returncode == 0, r.stdout[-3000:]
    assert vm(host)["config"]["vmType"] == "vz"
