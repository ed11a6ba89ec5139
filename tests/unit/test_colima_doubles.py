"""The macOS-sim doubles the runtime roles rely on behave like the documented tools (run on the host with a
private state dir): colima's silent immutability, COLIMA_SAVE_CONFIG, Broken VMs, `colima list --json` lines;
the docker double's contexts and plugin lookup; launchctl's modern and legacy verbs and the table format that
community.general.launchd parses."""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[2] / "tests" / "doubles" / "bin"
GIB = 1024**3


@pytest.fixture
def sim(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".colima" / "default").mkdir(parents=True)
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "HOMEPORT_SIM_STATE": str(tmp_path / "state"),
        "COLIMA_SAVE_CONFIG": "0",
    }

    def run(*argv, check=True, **extra):
        r = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, env={**env, **extra}, check=False
        )
        if check:
            assert r.returncode == 0, r.stderr
        return r

    run.home = home
    run.state = tmp_path / "state"
    return run


CONFIG = """# managed
cpu: 4
memory: 8
disk: 60
arch: aarch64
runtime: docker
vmType: vz
rosetta: true
mountType: virtiofs
autoActivate: true
docker: {"log-driver": "json-file", "live-restore": true}
"""


def write_config(sim, text):
    (sim.home / ".colima" / "default" / "colima.yaml").write_text(text)


def listing(sim):
    return [json.loads(line) for line in sim("colima", "list", "--json").stdout.splitlines()]


def test_colima_create_list_and_docker_context(sim):
    write_config(sim, CONFIG)
    sim("colima", "start")
    (vm,) = listing(sim)
    assert vm["name"] == "default" and vm["status"] == "Running" and vm["arch"] == "aarch64"
    assert vm["cpus"] == 4 and vm["memory"] == 8 * GIB and vm["disk"] == 60 * GIB and vm["runtime"] == "docker"
    assert sim("docker", "context", "show").stdout.strip() == "colima"
    info = json.loads(sim("docker", "info", "--format", "{{json .}}").stdout)
    assert info["LoggingDriver"] == "json-file" and info["LiveRestoreEnabled"] is True
    assert sim("colima", "status").returncode == 0


def test_colima_existing_vm_silently_keeps_immutable_settings(sim):
    write_config(sim, CONFIG)
    sim("colima", "start")
    sim("colima", "stop")
    write_config(
        sim,
        CONFIG.replace("vmType: vz", "vmType: qemu")
        .replace("mountType: virtiofs", "mountType: sshfs")
        .replace("rosetta: true", "rosetta: false")
        .replace("disk: 60", "disk: 40")
        .replace("cpu: 4", "cpu: 6"),
    )
    sim("colima", "start")  # exit 0: no error, no warning about what it ignored
    (vm,) = listing(sim)
    assert vm["cpus"] == 6, "mutable settings apply"
    assert vm["disk"] == 60 * GIB, "a smaller disk is ignored"
    state = (sim.home / ".colima" / "_lima" / "colima" / "colima.yaml").read_text()
    assert 'vmType: "vz"' in state and 'mountType: "virtiofs"' in state


def test_colima_running_vm_ignores_a_start(sim):
    write_config(sim, CONFIG)
    sim("colima", "start")
    write_config(sim, CONFIG.replace("cpu: 4", "cpu: 2"))
    r = sim("colima", "start")
    assert "already running" in r.stderr
    assert listing(sim)[0]["cpus"] == 4


def test_colima_rewrites_config_unless_save_config_is_off(sim):
    write_config(sim, CONFIG)
    sim("colima", "start", COLIMA_SAVE_CONFIG="1")
    assert (sim.home / ".colima" / "default" / "colima.yaml").read_text() != CONFIG


def test_colima_broken_vm_needs_force_stop(sim):
    write_config(sim, CONFIG)
    sim("colima", "start")
    f = sim.state / "colima" / "default.json"
    data = json.loads(f.read_text())
    data["status"] = "Broken"
    f.write_text(json.dumps(data))
    assert listing(sim)[0]["status"] == "Broken" and "runtime" not in listing(sim)[0]
    assert sim("colima", "start", check=False).returncode == 1
    assert sim("colima", "stop", check=False).returncode == 1
    sim("colima", "stop", "--force")
    sim("colima", "start")
    assert listing(sim)[0]["status"] == "Running"


def test_colima_delete_needs_force_and_removes_everything(sim):
    write_config(sim, CONFIG)
    sim("colima", "start")
    r = subprocess.run(
        [str(BIN / "colima"), "delete"],
        input="n\n",
        capture_output=True,
        text=True,
        env={"HOME": str(sim.home), "HOMEPORT_SIM_STATE": str(sim.state), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert r.returncode == 0 and listing(sim)
    sim("colima", "delete", "--force", "--data")
    assert listing(sim) == []
    assert not (sim.home / ".colima" / "default" / "colima.yaml").exists()


def test_docker_plugins_need_cli_plugins_extra_dirs(sim, tmp_path):
    plugins = tmp_path / "brew" / "lib" / "docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    p = plugins / "docker-compose"
    p.write_text('#!/bin/sh\n[ "$1" = compose ] && shift\necho "Docker Compose version v2.30.3"\n')
    p.chmod(0o755)
    assert sim("docker", "compose", "version", check=False).returncode == 1
    (sim.home / ".docker").mkdir(exist_ok=True)
    (sim.home / ".docker" / "config.json").write_text(json.dumps({"cliPluginsExtraDirs": [str(plugins)]}))
    assert sim("docker", "compose", "version").stdout.strip() == "Docker Compose version v2.30.3"


def _plist(tmp_path, label="com.example.job", **extra):
    path = tmp_path / f"{label}.plist"
    with path.open("wb") as fh:
        plistlib.dump({"Label": label, "ProgramArguments": ["/bin/true"], "RunAtLoad": True, **extra}, fh)
    return str(path)


def test_launchctl_modern_verbs(sim, tmp_path):
    plist = _plist(tmp_path, KeepAlive=True, UserName="admin")
    r = sim("launchctl", "print", "system/com.example.job", check=False)
    assert r.returncode == 113 and 'Could not find service "com.example.job"' in r.stderr
    sim("launchctl", "bootstrap", "system", plist)
    r = sim("launchctl", "bootstrap", "system", plist, check=False)
    assert r.returncode == 5 and "Bootstrap failed: 5: Input/output error" in r.stderr
    out = sim("launchctl", "print", "system/com.example.job").stdout
    assert "state = running" in out and "pid = " in out and "username = admin" in out
    pid = int(out.split("pid = ")[1].split()[0])
    sim("launchctl", "kickstart", "-k", "system/com.example.job")
    assert f"pid = {pid}" not in sim("launchctl", "print", "system/com.example.job").stdout
    sim("launchctl", "bootout", "system/com.example.job")
    assert sim("launchctl", "bootout", "system/com.example.job", check=False).returncode == 113
    assert sim("launchctl", "bootout", "system", plist, check=False).returncode == 3
    sim("launchctl", "disable", "system/com.example.job")
    assert '"com.example.job" => disabled' in sim("launchctl", "print-disabled", "system").stdout
    assert sim("launchctl", "bootstrap", "system", plist, check=False).returncode == 5
    sim("launchctl", "enable", "system/com.example.job")
    sim("launchctl", "bootstrap", "system", plist)


def test_launchctl_legacy_list_is_what_community_general_launchd_parses(sim, tmp_path):
    plist = _plist(tmp_path)
    sim("launchctl", "load", "-w", plist)
    table = sim("launchctl", "list").stdout
    rows = [line.split("\t") for line in table.splitlines() if line.strip()]
    assert rows[0] == ["PID", "Status", "Label"]
    assert all(len(row) == 3 for row in rows), "launchd.py does pid, last_exit_code, label = line.split('\\t')"
    (row,) = [r for r in rows if r[2] == "com.example.job"]
    assert row[0].isdigit() and row[1] == "0"
    sim("launchctl", "stop", "com.example.job")
    (row,) = [r.split("\t") for r in sim("launchctl", "list").stdout.splitlines() if "com.example.job" in r]
    assert row[:2] == ["-", "-15"]
    sim("launchctl", "start", "com.example.job")
    sim("launchctl", "unload", plist)
    r = sim("launchctl", "unload", plist)  # legacy verbs report on stderr and exit 0
    assert "Could not find specified service" in r.stderr
    assert sim("launchctl", "list", "com.example.job", check=False).returncode == 113


def test_launchctl_runs_opted_in_jobs_as_launchd_would(sim, tmp_path):
    out = tmp_path / "logs"
    out.mkdir()
    marker = tmp_path / "ran"
    plist = _plist(
        tmp_path,
        label="com.example.exec",
        ProgramArguments=["/bin/sh", "-c", f'echo "$HOME" > {marker}'],
        EnvironmentVariables={"HOME": "/somewhere"},
        StandardErrorPath=str(out / "err.log"),
    )
    (sim.state / "launchctl").mkdir(parents=True, exist_ok=True)
    (sim.state / "launchctl" / "exec-labels").write_text("com.example.exec\n")
    sim("launchctl", "bootstrap", "system", plist)
    assert marker.read_text().strip() == "/somewhere"
    calls = [json.loads(x) for x in (sim.state / "calls.log").read_text().splitlines()]
    assert ["launchd-exec", "system/com.example.exec", "/bin/sh", "-c", f'echo "$HOME" > {marker}'] in calls


def test_sysctl_sw_vers_profiles(sim):
    assert sim("sysctl", "-n", "hw.memsize").stdout.strip() == "17179869184"
    assert sim("sysctl", "-n", "hw.optional.arm64").stdout.strip() == "1"
    assert sim("sw_vers", "-productVersion").stdout.strip().startswith("15.")
    (sim.state / "sysctl").mkdir(parents=True, exist_ok=True)
    (sim.state / "sysctl" / "profile").write_text("intel\n")
    (sim.state / "sysctl" / "hw.memsize").write_text("8589934592\n")
    r = sim("sysctl", "-n", "hw.optional.arm64", check=False)
    assert r.returncode == 1 and "unknown oid 'hw.optional.arm64'" in r.stderr
    assert sim("sysctl", "-n", "hw.memsize").stdout.strip() == "8589934592"
    assert "Intel" in sim("sysctl", "-n", "machdep.cpu.brand_string").stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="brew refuses root; checked as root only")
def test_brew_refuses_root_for_changes(sim):
    r = sim("brew", "install", "jq", check=False)
    assert r.returncode == 1 and "Running Homebrew as root" in r.stderr
    assert sim("brew", "--version").stdout.startswith("Homebrew 4.")
