"""Issue 29, the host-state check in one call: each converge records on the host what the roles hardening,
docker_engine, monitoring and backup enforce (plugins/modules/homeport_host_state.py), a host program
(plugins/module_utils/host_state.py, plain python3, no Ansible) verifies the record, an hourly timer stores its
summary for the monitoring collector (DriftDetected), and `homeport drift` reads it in one SSH call.

Pure tests: the program against a temp dir, with fake `dpkg-query`, `systemctl` and `docker` on PATH that answer in
the documented formats (dpkg-query(1) ``-W -f``; systemctl(1) ``show``: one block of ``Property=value`` lines per unit,
blocks separated by an empty line; ``docker inspect``: a JSON list as the Engine API's ContainerInspect).
Real test: one homeport/dind:13 host (Debian 13, systemd, sshd, its own engine) converged by `homeport bootstrap`
with the runtime and hardening roles over real SSH; each kind of state changed by hand; `homeport drift` reports it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import plistlib
import shlex
import stat
import subprocess
import sys
import textwrap
import time
from io import StringIO
from pathlib import Path

import pytest
from conftest import ROOT, missing
from rich.console import Console

from homeport import drift, events

HS_PATH = ROOT / "plugins" / "module_utils" / "host_state.py"
_spec = importlib.util.spec_from_file_location("host_state", HS_PATH)
hs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hs)
PY = sys.executable


# ---- fakes of the host's tools ----------------------------------------------------------------------------------


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """Fake dpkg-query / systemctl / docker reading their answers from JSON files in ``tools.state``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    state = tmp_path / "tools"
    state.mkdir()
    (state / "packages.json").write_text("{}")
    (state / "units.json").write_text("{}")
    (state / "containers.json").write_text("[]")
    common = f"import json, sys\nS = {str(state)!r}\nargs = sys.argv[1:]\n"
    # dpkg-query -W -f '${Package}\t${db:Status-Status}\n' -- NAMES: one line per known package; exit 1 and a
    # message on stderr for a name dpkg never heard of (dpkg-query(1))
    _script(bindir / "dpkg-query", f"#!{PY}\n{common}" + textwrap.dedent("""
        pk = json.load(open(S + "/packages.json"))
        names = args[args.index("--") + 1:]
        rc = 0
        for n in names:
            if n in pk:
                print(f"{n}\\t{pk[n]}")
            else:
                print(f"dpkg-query: no packages found matching {n}", file=sys.stderr); rc = 1
        sys.exit(rc)
        """))  # fmt: skip
    # systemctl show --property=... -- UNITS: a block per unit in the asked order, properties in systemd's order
    _script(bindir / "systemctl", f"#!{PY}\n{common}" + textwrap.dedent("""
        un = json.load(open(S + "/units.json"))
        assert args[0] == "show", args
        names = args[args.index("--") + 1:]
        blocks = []
        for n in names:
            u = un.get(n, {"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""})
            keys = ("Id", "LoadState", "ActiveState", "UnitFileState")
            blocks.append("\\n".join(f"{k}={u.get(k, '')}" for k in keys))
        print("\\n\\n".join(blocks))
        """))  # fmt: skip
    _script(bindir / "docker", f"#!{PY}\n{common}" + textwrap.dedent("""
        cs = json.load(open(S + "/containers.json"))
        if args[0] == "ps":
            label = args[args.index("--filter") + 1].split("=", 1)[1]
            key, _, value = label.partition("=")
            print("\\n".join(c["Id"] for c in cs if c["Config"]["Labels"].get(key) == value))
        elif args[0] == "inspect":
            print(json.dumps([c for c in cs if c["Id"] in args[1:]]))
        """))  # fmt: skip
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    class Tools:
        pass

    t = Tools()
    t.state = state
    t.set = lambda name, doc: (state / f"{name}.json").write_text(json.dumps(doc))
    return t


def _container(name: str, env: list[str], created: str, cid: str, *, service: str = "app", image: str = "busybox:1"):
    return {
        "Id": cid,
        "Name": f"/{name}",
        "Created": created,
        "Config": {
            "Image": image,
            "Env": env,
            "Labels": {
                "com.docker.compose.project": "homeport",
                "com.docker.compose.service": service,
                "com.docker.compose.config-hash": f"hash-{cid}",
            },
        },
    }


# ---- the program, pure ------------------------------------------------------------------------------------------


def test_files_content_mode_missing_and_secret(tmp_path):
    conf, secret, gone, d = tmp_path / "a.conf", tmp_path / "pw", tmp_path / "gone", tmp_path / "dir"
    conf.write_text("x = 1\n")
    secret.write_text("hunter2-very-secret\n")
    gone.write_text("soon gone\n")
    d.mkdir(mode=0o750)
    state = tmp_path / "state"
    spec = {"files": [str(conf), {"path": str(secret), "secret": True}, str(gone), str(d), str(tmp_path / "never")]}
    assert hs.record(str(state), "hardening", spec) is True
    assert hs.record(str(state), "hardening", spec) is False  # the same host: the same record, nothing written
    rec = json.loads((state / "hardening.json").read_text())
    assert stat.S_IMODE((state / "hardening.json").stat().st_mode) == 0o600
    assert str(tmp_path / "never") not in rec["files"]  # a file the role did not write is not recorded
    assert rec["files"][str(d)]["type"] == "directory" and rec["files"][str(d)]["mode"] == "0750"
    assert hs.check(str(state))["drifted"] == []

    conf.write_text("x = 2\n")
    conf.chmod(0o600)
    secret.write_text("another-secret\n")
    gone.unlink()
    summary = hs.check(str(state))
    got = {(i["item"], i["what"]): (i["expected"], i["found"]) for i in summary["drifted"]}
    assert set(got) == {(str(conf), "content"), (str(conf), "mode"), (str(secret), "content"), (str(gone), "exists")}
    assert got[(str(conf), "mode")] == (rec["files"][str(conf)]["mode"], "0600")
    assert (
        got[(str(conf), "content")][0].startswith("sha256:")
        and got[(str(conf), "content")][0] != got[(str(conf), "content")][1]
    )
    assert got[(str(secret), "content")] == ("(secret)", "(secret, changed)")
    assert "secret" not in json.dumps(summary).replace("(secret", "")  # no secret value, no checksum of it
    assert summary["roles"]["hardening"] == {"items": 4, "drifted": 4} and hs.exit_code(summary) == 2


def test_packages_units_sysctls(tmp_path, tools):
    proc = tmp_path / "proc"
    (proc / "net" / "ipv4").mkdir(parents=True)
    (proc / "net" / "ipv4" / "ip_nonlocal_bind").write_text("1\n")
    tools.set("packages", {"nftables": "installed", "fail2ban": "installed"})
    tools.set(
        "units",
        {
            "fail2ban": {"Id": "fail2ban.service", "LoadState": "loaded", "ActiveState": "active",
                         "UnitFileState": "enabled"},
            "apt-daily.timer": {"Id": "apt-daily.timer", "LoadState": "loaded", "ActiveState": "active",
                                "UnitFileState": "enabled"},
        },
    )  # fmt: skip
    state = tmp_path / "state"
    spec = {
        "packages": ["nftables", "fail2ban"],
        "units": ["fail2ban", "apt-daily.timer"],
        "sysctls": {"net.ipv4.ip_nonlocal_bind": 1},
    }
    hs.record(str(state), "docker_engine", spec)
    assert hs.check(str(state), proc_sys=str(proc))["drifted"] == []

    tools.set("packages", {"nftables": "config-files"})  # removed (dpkg -r); fail2ban purged: dpkg knows it no more
    tools.set(
        "units",
        {
            "fail2ban": {"Id": "fail2ban.service", "LoadState": "loaded", "ActiveState": "inactive",
                         "UnitFileState": "enabled"},
            "apt-daily.timer": {"Id": "apt-daily.timer", "LoadState": "loaded", "ActiveState": "active",
                                "UnitFileState": "disabled"},
        },
    )  # fmt: skip
    (proc / "net" / "ipv4" / "ip_nonlocal_bind").write_text("0\n")
    got = {(i["kind"], i["item"], i["what"]): (i["expected"], i["found"]) for i in hs.check(str(state), str(proc))[
        "drifted"]}  # fmt: skip
    assert got == {
        ("package", "nftables", "installed"): ("installed", "config-files"),
        ("package", "fail2ban", "installed"): ("installed", "not-installed"),
        ("unit", "fail2ban", "active"): ("active", "inactive"),
        ("unit", "apt-daily.timer", "enabled"): ("enabled", "disabled"),
        ("sysctl", "net.ipv4.ip_nonlocal_bind", "value"): ("1", "0"),
    }


def test_containers_environment_and_a_later_deploy(tmp_path, tools):
    deploys = tmp_path / "deploys.json"
    tools.set(
        "containers", [_container("homeport-app-1", ["A=1", "TOKEN=s3cret-value"], "2026-12-01T10:00:00.5Z", "c1")]
    )
    state = tmp_path / "state"
    spec = {"containers": {"project": "homeport", "docker": "docker", "deploys": str(deploys)}}
    hs.record(str(state), "docker_engine", spec)
    rec = json.loads((state / "docker_engine.json").read_text())
    assert "s3cret-value" not in json.dumps(rec)  # never an environment value
    assert hs.check(str(state))["drifted"] == []

    # recreated by hand with another environment (and a container of the project nobody recorded)
    tools.set(
        "containers",
        [
            _container("homeport-app-1", ["A=1", "TOKEN=other", "DEBUG=1"], "2026-12-01T11:00:00.123456789Z", "c2"),
            _container("homeport-extra-1", [], "2026-12-01T11:00:01Z", "c3", service="extra"),
        ],
    )
    got = {(i["item"], i["what"]): i for i in hs.check(str(state))["drifted"]}
    assert set(got) == {("homeport-app-1", "config-hash"), ("homeport-app-1", "environment"),
                        ("homeport-extra-1", "recorded")}  # fmt: skip
    env = got[("homeport-app-1", "environment")]
    assert env["expected"].startswith("2 variables, sha256:") and "added DEBUG" in env["found"]
    assert "s3cret" not in json.dumps(list(got.values())) and "other" not in json.dumps(list(got.values()))

    # the same containers made by a `homeport deploy` that ended after them: the deploy's work, not drift
    deploys.write_text(json.dumps([{"finished": "2026-12-01T11:00:05Z", "result": "ok"}]))
    assert hs.check(str(state))["drifted"] == []
    # a recorded container gone after a later deploy: the deploy removed it
    tools.set("containers", [])
    assert hs.check(str(state))["drifted"] == []
    deploys.unlink()
    assert [(i["item"], i["what"], i["found"]) for i in hs.check(str(state))["drifted"]] == [
        ("homeport-app-1", "exists", "missing")
    ]


def test_errors_and_no_record(tmp_path, tools):
    state = tmp_path / "state"
    summary = hs.check(str(state))
    assert summary["records"] == 0 and "no state record" in summary["errors"][0] and hs.exit_code(summary) == 1
    hs.record(str(state), "hardening", {"units": ["ssh"]})
    (tools.state / "units.json").write_text("not json")  # systemctl breaks: an error, not a drift
    summary = hs.check(str(state))
    assert summary["drifted"] == [] and summary["errors"] and hs.exit_code(summary) == 1
    with pytest.raises(ValueError, match="not a role name"):
        hs.record_path(str(state), "../etc")


def test_plain_python3_without_ansible(tmp_path):
    """The program as the timer runs it: /usr/bin/python3 (no venv, no Ansible), exit codes and the stored summary."""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else missing("/usr/bin/python3")
    f = tmp_path / "f.conf"
    f.write_text("a\n")
    state = tmp_path / "state"
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    run = lambda *a: subprocess.run([python, "-S", str(HS_PATH), *a], capture_output=True, text=True, env=env)  # noqa: E731
    r = run("record", "--state-dir", str(state), "--role", "backup", "--spec", json.dumps({"files": [str(f)]}))
    assert r.returncode == 0 and r.stdout.strip() == "changed", r.stderr
    summary = state / "summary.json"
    r = run("check", "--state-dir", str(state), "--write", str(summary))
    assert r.returncode == 0 and json.loads(r.stdout)["drifted"] == [], r.stderr
    f.write_text("b\n")
    r = run("check", "--state-dir", str(state), "--write", str(summary), "--quiet")
    assert r.returncode == 2 and r.stdout == ""
    assert stat.S_IMODE(summary.stat().st_mode) == 0o644
    r = run("summary", "--state-dir", str(state))  # what a user without root reads
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and doc["stored"] is True and doc["drifted"][0]["what"] == "content"


def test_timer_and_launchd_job():
    units = hs.systemd_units("/usr/bin/python3", hs.PROGRAM, "/var/lib/homeport/state")
    service, timer = units["homeport-host-state.service"], units["homeport-host-state.timer"]
    assert "Type=oneshot" in service and "SuccessExitStatus=2" in service
    assert f"ExecStart=/usr/bin/python3 {hs.PROGRAM} check --state-dir /var/lib/homeport/state" in service
    assert "OnCalendar=hourly" in timer and "Persistent=true" in timer and "WantedBy=timers.target" in timer
    plist = plistlib.loads(hs.launchd_plist("/usr/bin/python3", hs.PROGRAM, "/usr/local/var/homeport/state").encode())
    assert plist["Label"] == "com.homeport.host-state" and plist["StartInterval"] == 3600
    assert plist["ProgramArguments"][:3] == ["/usr/bin/python3", hs.PROGRAM, "check"]
    assert plist["ProgramArguments"][-3:] == ["--write", "/usr/local/var/homeport/state/summary.json", "--quiet"]


# ---- the monitoring export --------------------------------------------------------------------------------------


def test_collector_exports_the_summary(tmp_path):
    summary = tmp_path / "summary.json"
    cfg = tmp_path / "collector.json"
    cfg.write_text(json.dumps({"output": str(tmp_path / "out.prom"), "state_file": str(tmp_path / "st.json"),
                               "host_state_summary_file": str(summary)}))  # fmt: skip
    script = ROOT / "roles" / "monitoring" / "files" / "homeport-metrics"

    def metrics() -> str:
        r = subprocess.run([PY, str(script), "--config", str(cfg), "--stdout"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "homeport_host_state" not in metrics()  # never checked: nothing
    summary.write_text(json.dumps({
        "checked_at_epoch": 1764583200, "errors": [],
        "drifted": [{"role": "hardening", "kind": "unit"}, {"role": "hardening", "kind": "file"},
                    {"role": "docker_engine", "kind": "file"}],
    }))  # fmt: skip
    text = metrics()
    assert "homeport_host_state_drifted_items 3" in text
    assert "homeport_host_state_last_check_timestamp_seconds 1764583200" in text
    assert 'homeport_host_state_drifted{kind="unit",role="hardening"} 1' in text
    assert 'homeport_host_state_drifted{kind="file",role="docker_engine"} 1' in text


def test_drift_detected_fires_from_the_host_state_summary(tmp_path):
    """promtool runs the role's rendered rules: DriftDetected fires from homeport_host_state_drifted_items."""
    from test_monitoring_rules import render, tool  # the role's rules, rendered as there

    promtool = tool("promtool")
    out = render(tmp_path / "rendered")
    tests = {
        "rule_files": [str(out / "homeport-rules.yml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1h",
            "input_series": [{"series": 'homeport_host_state_drifted_items{job="node"}', "values": "0 2 2"}],
            "alert_rule_test": [
                {"eval_time": "0h", "alertname": "DriftDetected", "exp_alerts": []},
                {"eval_time": "1h", "alertname": "DriftDetected", "exp_alerts": [{
                    "exp_labels": {"job": "node", "severity": "warning", "check": "host_state"},
                    "exp_annotations": {"summary": "The hourly host-state check found 2 recorded items that differ "
                                        "from the last converge; `homeport drift` lists them, `homeport drift --fix` "
                                        "repairs."},
                }]},
            ],
        }],
    }  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(tests))
    r = subprocess.run([promtool, "test", "rules", str(tmp_path / "t.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- homeport drift: the report ---------------------------------------------------------------------------------


def test_drift_report_from_the_summaries():
    doc = {
        "checked_at": "2026-12-01T10:00:00Z", "items": 20, "errors": [],
        "drifted": [{"role": "hardening", "kind": "file", "item": "/etc/nftables.conf", "what": "mode",
                     "expected": "0755", "found": "0600"}],
    }  # fmt: skip
    summary = drift.summarise_state({"mini": doc, "clean": {**doc, "drifted": []}})
    assert summary["mode"] == "summary" and summary["exit_code"] == events.EXIT_DRIFT and summary["changed_tasks"] == 1
    task = summary["hosts"]["mini"]["roles"]["hardening"][0]
    assert task["task"] == "file /etc/nftables.conf: mode" and (task["expected"], task["found"]) == ("0755", "0600")
    buf = StringIO()
    drift.render(Console(file=buf, width=200, force_terminal=False), summary)
    text = buf.getvalue()
    assert "mini: 1 item(s) differ from the last converge" in text and "clean: no drift" in text
    assert "-found:    0600" in text and "+expected: 0755" in text
    unreachable = drift.summarise_state({"mini": drift.parse_state("mini", 255, "", "ssh: connect refused")})
    assert unreachable["exit_code"] == events.EXIT_UNREACHABLE
    none = drift.parse_state("mini", drift.NO_PROGRAM_RC, "", "")
    assert "homeport bootstrap" in none["failure"] and drift.summarise_state({"mini": none})["exit_code"] == 1


# ---- the real host ----------------------------------------------------------------------------------------------

IMAGE = "homeport/dind:13"
NAME = "homeport-hoststate-test"
COMPOSE = """services:
  app:
    image: homeport/busybox:1
    command: ["/bin/busybox", "sleep", "1d"]
    environment:
      APP_MODE: "{mode}"
"""


def _docker(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False, **kw)


def _homeport(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOMEPORT_HOME": str(home / ".homeport"), "NO_COLOR": "1"}
    return subprocess.run([str(Path(PY).with_name("homeport")), *args], capture_output=True, text=True,
                          env=env, cwd=home, timeout=timeout, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """One homeport/dind:13 host behind bench/host.py's proxy (0 ms), converged by `homeport bootstrap` with the
    runtime (docker_engine) and hardening roles; a compose project `homeport` runs one small container."""
    for image in (IMAGE, "homeport/busybox:1"):
        if _docker("image", "inspect", image).returncode != 0:
            missing(f"docker image {image}", "make images builds it")
    sys.path.insert(0, str(ROOT / "bench"))
    from host import BenchHost  # bench/host.py: the far-link bench's test host

    from homeport import sandbox

    work = tmp_path_factory.mktemp("hoststate")
    h = BenchHost(NAME, work, rtt_ms=0, image=IMAGE, run_flags=sandbox.RUN_FLAGS)
    h.start()
    try:
        # as on a real host (Docker mounts /proc/sys read-only: molecule's homeport-sim-procsys does the same)
        h.exec("mount", "-o", "remount,rw", "/proc/sys")
        # the image's build emptied the package lists moments ago: apt's cache_valid_time must not take that as fresh
        h.exec("touch", "-d", "2000-01-01", "/var/lib/apt/lists")
        load = subprocess.run(
            "docker save homeport/busybox:1 | docker exec -i " + NAME + " docker load", shell=True,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert load.returncode == 0, load.stderr
        compose = shlex.quote(COMPOSE.format(mode="a"))
        up = "docker compose -p homeport -f /root/app/compose.yml up -d"
        h.exec("sh", "-c", f"mkdir -p /root/app && printf '%s' {compose} > /root/app/compose.yml && {up}")
        inv = work / "inventory.yml"
        hostvars = {
            "ansible_host": "127.0.0.1",
            "ansible_port": h.proxy.port,
            "ansible_user": "bench",
            "ansible_become": True,
            "ansible_ssh_private_key_file": str(h.key),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={h.known_hosts} -o StrictHostKeyChecking=yes "
            "-o IdentitiesOnly=yes",
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        groupvars = {
            "homeport_roles": ["runtime", "hardening", "stack"],  # stack: its containers are recorded, not deployed
            "homeport_admin_user": "bench",
            "hardening_ssh_allowed_networks": [f"{h.gateway()}/32"],
            "docker_engine_compose": False,  # the image has compose v2
            "docker_engine_nonlocal_bind": True,
            # the stack the preflight validates (never deployed here: the compose project above stands for it)
            "stack_services": {
                "app": {
                    "image": "homeport/busybox:1",
                    "pull_policy": "never",
                    "memory": "32m",
                    "healthcheck_exempt": "a test stand-in that sleeps",
                }
            },
        }
        inv.write_text(json.dumps({"homeport": {"hosts": {"hs": hostvars}, "vars": groupvars}}))
        home = work / "project"
        home.mkdir()
        t0 = time.monotonic()
        r = _homeport(home, "bootstrap", "-i", str(inv), "--tags", "runtime,hardening", "--json")
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
        yield h, home, inv, json.loads(r.stdout), time.monotonic() - t0
    finally:
        h.stop()


def _tasks(record: dict, name: str) -> list[dict]:
    return [t for t in record.get("tasks", []) if t.get("task") == name]


def test_drift_summary_reports_each_kind_of_hand_change(host):
    h, home, inv, _bootstrap, seconds = host
    print(f"bootstrap (runtime, hardening) took {seconds:.0f} s")
    # the record: installed and written by the roles, the timer on, a summary for the monitoring
    assert h.exec("systemctl", "is-enabled", "homeport-host-state.timer").strip() == "enabled"
    assert h.exec("systemctl", "is-active", "homeport-host-state.timer").strip() == "active"
    recorded = json.loads(h.exec("cat", "/var/lib/homeport/state/docker_engine.json"))
    assert "homeport-app-1" in recorded["containers"]["items"]
    assert recorded["sysctls"] == {"net.ipv4.ip_nonlocal_bind": "1", "net.ipv6.ip_nonlocal_bind": "1"}
    h.exec("systemctl", "start", "homeport-host-state.service")  # the timer's job, once: exit 0 (clean)
    stored = json.loads(h.exec("cat", "/var/lib/homeport/state/summary.json"))
    assert stored["drifted"] == [] and stored["records"] == 2, stored

    # an untouched host: no drift, in one call
    r = _homeport(home, "drift", "-i", str(inv), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    clean = json.loads(r.stdout)
    assert clean["mode"] == "summary" and clean["hosts"]["hs"]["changed"] == 0 and clean["hosts"]["hs"]["items"] > 10

    # a second converge changes nothing (the record tasks included: writing a record is bookkeeping)
    r = _homeport(home, "bootstrap", "-i", str(inv), "--tags", "runtime,hardening", "--json")
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    rerun = json.loads(r.stdout)
    assert rerun["recap"]["hs"]["changed"] == 0, [c["task"] for c in rerun["changes"]]

    # by hand: a file's content, a mode, a package removed, a unit stopped, a sysctl, a container's environment
    h.exec("sh", "-c", textwrap.dedent(f"""
        set -e
        echo '# edited by hand' >> /etc/nftables.conf
        chmod 0600 /etc/fail2ban/jail.d/homeport-sshd.local
        dpkg -r unattended-upgrades >/dev/null
        systemctl stop fail2ban
        sysctl -qw net.ipv4.ip_nonlocal_bind=0
        printf '%s' {shlex.quote(COMPOSE.format(mode='b'))} > /root/app/compose.yml
        docker compose -p homeport -f /root/app/compose.yml up -d 2>/dev/null
        """))  # fmt: skip
    r = _homeport(home, "drift", "-i", str(inv), "--json")
    assert r.returncode == events.EXIT_DRIFT, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    found = {
        (role, t["kind"], t["item"], t["what"]): t["found"]
        for role, tasks in doc["hosts"]["hs"]["roles"].items()
        for t in tasks
    }
    assert ("hardening", "file", "/etc/nftables.conf", "content") in found
    assert found[("hardening", "file", "/etc/fail2ban/jail.d/homeport-sshd.local", "mode")] == "0600"
    assert found[("hardening", "package", "unattended-upgrades", "installed")] == "config-files"
    assert found[("hardening", "unit", "fail2ban", "active")] == "inactive"
    assert found[("docker_engine", "sysctl", "net.ipv4.ip_nonlocal_bind", "value")] == "0"
    assert "a value changed" in found[("docker_engine", "container", "homeport-app-1", "environment")]
    assert "a" not in {t["found"] for t in doc["hosts"]["hs"]["roles"]["docker_engine"]} - {"0"}  # no env value
    # the human report: the same items, and the stored summary for the monitoring was refreshed by the call
    text = _homeport(home, "drift", "-i", str(inv)).stdout
    assert "hs: " in text and "item(s) differ from the last converge" in text and "unit fail2ban: active" in text
    stored = json.loads(h.exec("cat", "/var/lib/homeport/state/summary.json"))
    assert len(stored["drifted"]) == doc["changed_tasks"]
