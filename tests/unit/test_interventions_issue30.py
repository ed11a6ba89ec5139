"""Issue 30, the last two gaps: manual interventions recorded on the host and shown as the plan's two rows, and the
status page's port let through the hardening firewall on the tailnet interface only.

- The rows come from a known record (plugins/module_utils/status_report.py, pure).
- The record is written by the chosen mechanism for real: after a run that changed a host, the CLI
  (homeport.interventions, called by cli.execute) sends status_report.py to the host's python3 over ssh; here a
  stand-in ``ssh`` on PATH does what OpenSSH does with a command - joins the words after the destination with spaces
  and runs them with the user's shell, stdin passed through (ssh(1): "If a command is specified, it is executed on
  the remote host instead of a login shell") - on this machine, so the real script, python3 and file are exercised.
- The hardening role's nftables.conf.j2 rendered by Ansible with the role's defaults and vars and the preflight's
  vars (where _preflight_proxy_enabled comes from in site.yml), checked with ``nft -c -f`` when it can run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_local import ROOT, run_local_playbook
from conftest import need_tool
from typer.testing import CliRunner

from homeport import cli, events, interventions
from homeport import report as report_rows

DAY = 86400.0
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
MOD = report_rows.shared()


def iso(t: float) -> str:
    return MOD._iso(t)


def rows_of(record, days=7, now=NOW, **raw):
    return {r["id"]: r for r in report_rows.rows({"now": now, "days": days, "interventions": record, **raw})}


# ------------------------------------------------------------------------------------------ rows from a known record
def test_no_record_is_not_enough_data_for_both_rows():
    rows = rows_of(None)
    for rid in ("unattended", "interventions"):
        assert rows[rid]["verdict"] == report_rows.NO_DATA
        assert "no record yet" in rows[rid]["detail"]
        assert rows[rid]["source"].startswith("homeport's record")


def test_a_quiet_week_after_the_setup_meets_both_targets():
    record = {"since": iso(NOW - 10 * DAY), "interventions": [
        {"time": iso(NOW - 10 * DAY), "verb": "bootstrap", "changed": 80, "by": "ana@laptop", "result": "ok",
         "setup": True},
    ]}  # fmt: skip
    rows = rows_of(record)
    assert rows["unattended"]["verdict"] == report_rows.MET
    assert rows["unattended"]["value"] == 7.0  # the whole window
    assert rows["unattended"]["days_of_data"] == 7.0
    assert rows["interventions"]["verdict"] == report_rows.MET
    assert rows["interventions"]["measured"] == "0 in 7 days (0.00 a week)"


def test_the_setup_starts_the_record_and_is_not_an_intervention():
    record = {"since": iso(NOW - 3 * DAY), "interventions": [
        {"time": iso(NOW - 3 * DAY), "verb": "bootstrap", "changed": 80, "by": "ana@laptop", "result": "ok",
         "setup": True},
    ]}  # fmt: skip
    rows = rows_of(record)
    # 3 days of data: no 7-day stretch fits yet, and no intervention so far
    assert rows["unattended"]["verdict"] == report_rows.NO_DATA
    assert rows["unattended"]["measured"] == "3.0 days (longest)"
    assert "3.0 days of data, 7 needed" in rows["unattended"]["detail"]
    assert rows["interventions"]["verdict"] == report_rows.NO_DATA
    assert rows["interventions"]["days_of_data"] == 3.0


def test_one_repair_in_a_week_is_not_met_at_once_and_breaks_the_unattended_stretch():
    record = {"since": iso(NOW - 20 * DAY), "interventions": [
        {"time": iso(NOW - 20 * DAY), "verb": "bootstrap", "changed": 80, "by": "ana@laptop", "setup": True},
        {"time": iso(NOW - 4 * DAY), "verb": "rollback", "changed": 2, "by": "ana@laptop", "result": "ok"},
    ]}  # fmt: skip
    rows = rows_of(record)
    assert rows["interventions"]["verdict"] == report_rows.NOT_MET
    assert rows["interventions"]["measured"] == "1 in 7 days (1.00 a week)"
    assert "rollback 1" in rows["interventions"]["detail"]
    assert "last: rollback by ana@laptop at 2027-01-11 08:00 UTC (2 changed)" in rows["interventions"]["detail"]
    # stretches in the window: 3 days before the rollback, 4 since
    assert rows["unattended"]["verdict"] == report_rows.NOT_MET
    assert rows["unattended"]["value"] == 4.0
    assert "current stretch 4.0 days" in rows["unattended"]["detail"]


def test_over_thirty_days_four_interventions_are_under_one_a_week_and_the_longest_stretch_counts():
    times = [NOW - 29 * DAY, NOW - 27 * DAY, NOW - 15 * DAY, NOW - 2 * DAY]
    verbs = ["drift --fix", "backup restore", "bootstrap", "drift --fix"]
    entries = [{"time": iso(t), "verb": v, "changed": 1, "by": "ana@laptop"} for t, v in zip(times, verbs, strict=True)]
    record = {"since": iso(NOW - 40 * DAY), "interventions": entries}
    rows = rows_of(record, days=30)
    assert rows["interventions"]["verdict"] == report_rows.MET  # 4 < 30/7
    assert rows["interventions"]["value"] == round(4 / 30 * 7, 2)
    assert "backup restore 1, bootstrap 1, drift --fix 2" in rows["interventions"]["detail"]
    assert rows["unattended"]["verdict"] == report_rows.MET
    assert rows["unattended"]["value"] == 13.0  # from the bootstrap 15 days ago to the fix 2 days ago
    # a fifth is one more than 30 days allow (4.29): not met
    record["interventions"].append({"time": iso(NOW - DAY), "verb": "rollback", "changed": 1, "by": "x@y"})
    assert rows_of(record, days=30)["interventions"]["verdict"] == report_rows.NOT_MET
    # the thresholds are the row's: 2 a week allow 8 in 30 days
    raw = {"now": NOW, "days": 30, "interventions": record, "thresholds": {"interventions_per_week": 2}}
    assert {r["id"]: r for r in report_rows.rows(raw)}["interventions"]["verdict"] == report_rows.MET


def test_the_hosts_own_recoveries_come_from_prometheus_and_are_not_counted():
    record = {"since": iso(NOW - 10 * DAY), "interventions": []}
    prom = {"error": None, "engine_restarts": 3.0}
    rows = rows_of(record, prometheus=prom)
    assert rows["interventions"]["verdict"] == report_rows.MET
    assert "3 container restarts by the engine" in rows["interventions"]["detail"]


def test_a_broken_record_says_so(tmp_path):
    (tmp_path / "interventions.json").write_text("{")
    raw = MOD.gather_raw("", 7, str(tmp_path), "", now=lambda: NOW)
    rows = {r["id"]: r for r in report_rows.rows(raw)}
    assert rows["interventions"]["verdict"] == report_rows.NO_DATA
    assert "interventions.json is unreadable" in rows["interventions"]["detail"]


def test_the_page_shows_the_rows(tmp_path):
    record = {"since": iso(NOW - 10 * DAY), "interventions": [
        {"time": iso(NOW - DAY), "verb": "drift --fix", "changed": 1, "by": "<b>ana</b>@laptop"}]}  # fmt: skip
    page = MOD.host_page({"now": NOW, "days": 7, "interventions": record}, "mini")
    assert re.search(r'id="interventions".*?not met.*?1 in 7 days', page, re.S)
    assert "&lt;b&gt;ana&lt;/b&gt;@laptop" in page and "<b>ana" not in page


# ------------------------------------------------------------------------------------ the writer on the host side
def test_the_writer_keeps_the_last_entries_and_marks_only_a_first_bootstrap_as_the_setup(tmp_path):
    clock = iter(NOW + i for i in range(10))
    first = MOD.append_intervention(str(tmp_path), {"verb": "bootstrap", "changed": 5, "by": "a@b"},
                                    keep=3, now=lambda: next(clock))  # fmt: skip
    assert first["since"] == iso(NOW) and first["interventions"][0]["setup"] is True
    for verb in ("rollback", "drift --fix", "backup restore"):
        doc = MOD.append_intervention(str(tmp_path), {"verb": verb, "changed": 1, "by": "a@b", "result": "failed"},
                                      keep=3, now=lambda: next(clock))  # fmt: skip
    assert [e["verb"] for e in doc["interventions"]] == ["rollback", "drift --fix", "backup restore"]
    assert doc["since"] == iso(NOW) and all("setup" not in e for e in doc["interventions"])
    assert doc["interventions"][-1]["result"] == "failed"
    assert json.loads((tmp_path / "interventions.json").read_text()) == doc
    assert oct((tmp_path / "interventions.json").stat().st_mode & 0o777) == "0o644"
    with pytest.raises(ValueError, match="deploy"):
        MOD.append_intervention(str(tmp_path), {"verb": "deploy", "changed": 1})
    with pytest.raises(ValueError, match="changed nothing"):
        MOD.append_intervention(str(tmp_path), {"verb": "rollback", "changed": 0})
    # a rollback that starts a record is counted: only a bootstrap is a setup
    other = MOD.append_intervention(str(tmp_path / "other"), {"verb": "rollback", "changed": 1}, now=lambda: NOW)
    assert "setup" not in other["interventions"][0]


def test_the_writer_runs_on_python_3_9_syntax():
    """status_report.py runs on the host (macOS' system Python is 3.9): it must parse as 3.9."""
    import ast

    ast.parse((ROOT / "plugins" / "module_utils" / "status_report.py").read_text(), feature_version=(3, 9))


# -------------------------------------------------------------------------- the mechanism: the CLI after the recap
FAKE_SSH = r'''#!PYTHON
"""Stand-in ssh: OpenSSH joins the command words after the destination with spaces and runs them with the user's
shell (ssh(1)); stdin goes to the command. Options with a value: -o -p -i -l -F -J; the rest are flags."""
import os, sys
args, with_value = sys.argv[1:], {"-o", "-p", "-i", "-l", "-F", "-J"}
i = 0
while i < len(args) and args[i].startswith("-"):
    i += 2 if args[i] in with_value else 1
dest, command = args[i], " ".join(args[i + 1:])
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(dest + "\n")
os.execvp("sh", ["sh", "-c", command])
'''


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ssh = bindir / "ssh"
    ssh.write_text(FAKE_SSH.replace("PYTHON", sys.executable))
    ssh.chmod(0o755)
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the ControlPath directory of the run
    return log


def inventory(tmp_path: Path, state_dirs: dict[str, Path], connection: str = "ssh") -> Path:
    hosts = {
        name: {"ansible_host": "127.0.0.1", "ansible_user": "admin", "ansible_port": 2222,
               "ansible_connection": connection, "homeport_state_dir": str(d)}
        for name, d in state_dirs.items()
    }  # fmt: skip
    inv = tmp_path / "hosts.json"
    inv.write_text(json.dumps({"homeport": {"hosts": hosts}}))
    return inv


def run_record(recap: dict[str, int], failures=()) -> events.RunRecord:
    keys = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
    record = events.RunRecord(status="successful", rc=0)
    record.recap = {h: {k: (n if k == "changed" else 0) for k in keys} for h, n in recap.items()}
    record.failures = list(failures)
    return record


def test_a_run_that_changed_a_host_is_recorded_there_over_ssh_and_read_by_the_report(tmp_path, fake_ssh):
    state = {"mini": tmp_path / "mini-state", "nas": tmp_path / "nas-state"}
    inv = inventory(tmp_path, state)
    record = run_record({"mini": 3, "nas": 0})
    lines = interventions.record_run(inv, record, "rollback", by="ana@laptop")
    assert lines == ["mini: recorded as a manual intervention (rollback, 3 changed)"]
    assert fake_ssh.read_text().splitlines() == ["admin@127.0.0.1"]  # one call, to the changed host only
    doc = json.loads((state["mini"] / "interventions.json").read_text())
    entry = doc["interventions"][0]
    assert {k: entry[k] for k in ("verb", "changed", "by", "result")} == {
        "verb": "rollback", "changed": 3, "by": "ana@laptop", "result": "ok"}  # fmt: skip
    assert abs(MOD._parse_time(entry["time"]) - __import__("time").time()) < 60  # the host's clock
    assert not (state["nas"] / "interventions.json").exists()
    # the report on that host reads it: one intervention today
    raw = MOD.gather_raw("", 7, str(state["mini"]), "")
    rows = {r["id"]: r for r in report_rows.rows(raw)}
    assert "last: rollback by ana@laptop" in rows["interventions"]["detail"]
    assert rows["interventions"]["verdict"] == report_rows.NOT_MET  # 1 in 7 days is not < 1 a week


def test_a_failed_host_is_recorded_as_failed_and_an_unwritable_record_is_a_warning(tmp_path, fake_ssh):
    blocker = tmp_path / "file"
    blocker.write_text("")
    inv = inventory(tmp_path, {"mini": tmp_path / "ok", "nas": blocker / "sub"})
    failure = events.Failure(host="mini", play="", role="stack", task="t", action="a", message="m")
    lines = interventions.record_run(inv, run_record({"mini": 1, "nas": 2}, [failure]), "bootstrap", by="a@b")
    assert lines[0] == "mini: recorded as a manual intervention (bootstrap, 1 changed)"
    assert lines[1].startswith("warning: nas: manual intervention not recorded (homeport: the intervention was not")
    entry = json.loads((tmp_path / "ok" / "interventions.json").read_text())["interventions"][0]
    assert entry["result"] == "failed" and entry["setup"] is True


def test_a_local_connection_host_is_recorded_without_ssh(tmp_path, fake_ssh):
    inv = inventory(tmp_path, {"here": tmp_path / "state"}, connection="local")
    assert interventions.record_run(inv, run_record({"here": 4}), "drift --fix", by="a@b") == [
        "here: recorded as a manual intervention (drift --fix, 4 changed)"]  # fmt: skip
    assert not fake_ssh.exists()
    assert json.loads((tmp_path / "state" / "interventions.json").read_text())["interventions"][0]["changed"] == 4


def test_the_remote_script_takes_root_else_sudo_else_the_login_user():
    script = interventions.remote_script({"verb": "rollback", "changed": 1}, None)
    assert 'uname -s)" = Darwin' in script and "/var/lib/homeport" in script and "/usr/local/var/homeport" in script
    assert 'exec sudo -n "$PY" - record-intervention' in script
    r = subprocess.run(["sh", "-n", "-c", script], capture_output=True, check=False)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    ("argv", "verb"),
    [(["rollback"], "rollback"), (["bootstrap"], "bootstrap"), (["drift", "--fix"], "drift --fix"),
     (["backup", "restore"], "backup restore"), (["deploy"], None), (["bootstrap", "--check"], None),
     (["drift", "--deep"], None), (["backup", "run"], None)],
)  # fmt: skip
def test_the_verbs_that_record_an_intervention(tmp_path, fake_ssh, monkeypatch, argv, verb):
    """Through the real CLI: the playbook run is replaced by its record (3 changed on mini); the write after it is
    real."""
    inv = inventory(tmp_path, {"mini": tmp_path / "state"})
    monkeypatch.setattr(cli, "run_playbook", lambda opts, handler: run_record({"mini": 3}))
    result = CliRunner().invoke(cli.app, [*argv, "--inventory", str(inv)])
    record = tmp_path / "state" / "interventions.json"
    if verb is None:
        assert not record.exists(), result.output
    else:
        assert result.exit_code == 0, result.output
        assert json.loads(record.read_text())["interventions"][-1]["verb"] == verb


# --------------------------------------------------------------------------- the firewall lets the page in (tailnet)
NFT_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {root}/roles/homeport/defaults/main.yml
    - {root}/roles/preflight/vars/main.yml
    - {root}/roles/hardening/defaults/main.yml
    - {root}/roles/hardening/vars/main.yml
  tasks:
"""
NFT_TASK = """
    - ansible.builtin.template:
        src: {root}/roles/hardening/templates/nftables.conf.j2
        dest: {out}
        mode: "0644"
      vars: {variables}
"""


@pytest.fixture(scope="module")
def rulesets(tmp_path_factory):
    """The rulesets of the cases below, rendered by one ansible-playbook run (the role's filters on its path), each
    template task with the case's variables (task vars: above the files', as the inventory's are above defaults)."""
    work = tmp_path_factory.mktemp("nft")
    cases = {
        "proxy_enabled": {"proxy_enabled": True},
        "password": {"proxy_status_password": "a-long-enough-password"},
        "other_port": {"proxy_enabled": True, "proxy_status_port": 9443, "hardening_tailnet_interface": "ts1"},
        "off": {"proxy_enabled": False, "proxy_status_password": "a-long-enough-password"},
        "none": {},
    }
    play = NFT_PLAY.format(root=ROOT) + "".join(
        NFT_TASK.format(root=ROOT, out=work / f"{name}.nft", variables=json.dumps(v)) for name, v in cases.items()
    )
    base = {"homeport_os_family": "Debian", "_hardening_ssh_ports": [22], "homeport_tailnet_ipv4": "",
            "homeport_tailnet_ipv6": "", "hardening_ssh_allowed_networks": ["192.168.1.0/24"]}  # fmt: skip
    old = os.environ.get("ANSIBLE_FILTER_PLUGINS")
    os.environ["ANSIBLE_FILTER_PLUGINS"] = str(ROOT / "roles" / "hardening" / "filter_plugins")
    try:
        r = run_local_playbook(work, play, base)
    finally:
        if old is None:
            del os.environ["ANSIBLE_FILTER_PLUGINS"]
        else:
            os.environ["ANSIBLE_FILTER_PLUGINS"] = old
    assert r.returncode == 0, r.stdout + r.stderr
    return {name: (work / f"{name}.nft").read_text() for name in cases}


def accepts(ruleset: str, port: int) -> list[str]:
    return [line.strip() for line in ruleset.splitlines() if re.search(rf"dport (\{{[^}}]*\b{port}\b|{port}\b)", line)]


def nft_check(text: str, tmp_path: Path) -> None:
    """``nft -c``: the ruleset parses and every rule is valid for the kernel (checked, not applied)."""
    nft = need_tool("nft")
    f = tmp_path / "check.nft"
    f.write_text(text)
    r = subprocess.run([nft, "-c", "-f", str(f)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("case", ["proxy_enabled", "password"], ids=["proxy_enabled", "on-by-default-with-a-password"])
def test_the_status_page_port_is_open_on_the_tailnet_interface_only(rulesets, case, tmp_path):
    ruleset = rulesets[case]
    assert accepts(ruleset, 8088) == ['iifname "tailscale0" tcp dport 8088 accept']
    assert "eth0" not in ruleset
    nft_check(ruleset, tmp_path)


def test_the_port_and_the_interface_follow_the_inventory(rulesets):
    other = rulesets["other_port"]
    assert accepts(other, 9443) == ['iifname "ts1" tcp dport 9443 accept'] and not accepts(other, 8088)


@pytest.mark.parametrize("case", ["off", "none"])
def test_no_status_page_port_when_the_proxy_is_off(rulesets, case, tmp_path):
    assert accepts(rulesets[case], 8088) == []
    nft_check(rulesets[case], tmp_path)
