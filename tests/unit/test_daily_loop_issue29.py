"""Issue 29, the controller's part of the daily loop over a far link:

1. `homeport status` takes the latency from the SSH exchange of its own run (the kernel's round-trip estimate of
   the SSH master's TCP connection where the system shows it, else the fastest host call of the run) and makes no
   connection of its own (it made three TCP connects to the SSH port);
2. the quick verbs (ps, logs, exec, restart) open the same compressed SSH master as playbook runs (one place builds
   the options: homeport.runner), so a playbook run after a quick verb does not inherit an uncompressed master;
3. the CLI's start-up: importing the CLI loads neither ansible nor ansible-runner, a run prints no dependency
   warning, and the Mitogen fence is not recomputed (with ansible's imports) before every run.

Fast: no container. The SSH side is a fake `ssh` (and `ss`) on PATH that records its argv and exits 255.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from homeport import cli, contract, events, quick, runner, status

PY = sys.executable
HOMEPORT = str(Path(PY).with_name("homeport"))


def _doc(address: str, port: int) -> dict:
    return {"address": address, "port": port, "connection": "ssh", "containers": [], "memory": {}}


def _fake_bin(tmp_path: Path, master_pid: int | None = None, rtt: str = "151.25/3.1") -> Path:
    """A fake `ssh` that logs its argv (one JSON list a line) and fails as ssh does (255), answering `-O check` for a
    master with ``master_pid``; and a fake `ss` that shows that master's TCP connection with ``rtt``."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "ssh-argv.log"
    check = (
        f'printf "Master running (pid={master_pid})\\r\\n" >&2; exit 0'
        if master_pid
        else 'echo "Control socket connect(x): No such file or directory" >&2; exit 255'
    )
    (bindir / "ssh").write_text(
        "#!/bin/sh\n"
        f"{shlex.quote(PY)} -c 'import json,sys; print(json.dumps(sys.argv[1:]))' \"$@\" >> {shlex.quote(str(log))}\n"
        'for a in "$@"; do [ "$a" = "-O" ] && { ' + check + "; }; done\n"
        'echo "ssh: connect to host: Connection refused" >&2\nexit 255\n'
    )
    (bindir / "ss").write_text(
        "#!/bin/sh\n"
        "cat <<'EOF'\n"
        '0      0     10.0.0.5:40000  100.64.0.7:22 users:(("ssh",pid=999,fd=3))\n'
        "\t cubic wscale:7,7 rto:600 rtt:380.5/2 ato:40 mss:1228\n"
        f'0      0     10.0.0.5:40002  100.64.0.7:22 users:(("ssh",pid={master_pid},fd=3))\n'
        f"\t cubic wscale:7,7 rto:552 rtt:{rtt} ato:40 mss:1228 cwnd:10\n"
        "EOF\n"
    )
    for f in ("ssh", "ss"):
        (bindir / f).chmod((bindir / f).stat().st_mode | stat.S_IXUSR)
    return bindir


def _ssh_calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "ssh-argv.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


# ---- 1. status: latency from its own SSH exchange, no probe -------------------------------------------------


class CountingListener:
    """A TCP listener standing in for the host's sshd: counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _status_record(address: str, port: int, calls: dict[str, float] | None = None) -> events.RunRecord:
    record = events.RunRecord(status="successful", rc=0)
    record.recap = {"mini": {"ok": 14, "changed": 0, "failed": 0, "unreachable": 0}}
    record.stats = {contract.STATUS_STAT: {"mini": _doc(address, port)}}
    for host, seconds in (calls or {}).items():
        record.note_host_call(host, "ansible.builtin.command", seconds, {})
    return record


def test_status_opens_no_connection_of_its_own(tmp_path, monkeypatch, capsys):
    """The report of `homeport status` after its run: not one TCP connection to the host's SSH port (today's code
    made three, one a sample, to time a TCP connect)."""
    monkeypatch.setenv("PATH", f"{_fake_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    listener = CountingListener()
    try:
        record = _status_record("127.0.0.1", listener.port, calls={"mini": 0.162})
        code = cli.status_report(2048)(record, True)
    finally:
        listener.close()
    assert code == events.EXIT_OK
    assert listener.accepted == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["mini"]["tailnet"]["latency_ms"] == 162.0  # the run's fastest host call
    # the only ssh started is the local question to the master's control socket (no remote exchange)
    assert all("-O" in argv for argv in _ssh_calls(tmp_path))


def test_status_latency_is_the_fastest_host_call_of_its_own_run(tmp_path, monkeypatch):
    """Without a master the system can tell about, the latency is the fastest call of the run that went to the host:
    controller-only actions (set_fact, assert, include_role, set_stats) and delegated tasks do not count."""
    monkeypatch.setenv("PATH", f"{_fake_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    handler = events.EventHandler(Console(file=StringIO()), json_mode=True)
    results = [
        ("ansible.builtin.set_fact", 0.002, {}),
        ("ansible.builtin.assert", 0.001, {}),
        ("ansible.builtin.include_role", 0.003, {}),
        ("ansible.builtin.command", 0.004, {"_ansible_delegated_vars": {"ansible_host": "localhost"}}),
        ("ansible.builtin.command", 0.1734, {"rc": 0}),
        ("homeport.homeport.homeport_status", 1.9, {}),
    ]
    for action, duration, res in results:
        handler({"event": "runner_on_ok", "event_data": {"host": "mini", "task_action": action,
                                                         "duration": duration, "res": res}})  # fmt: skip
    assert handler.record.host_calls == {"mini": 0.1734}
    handler.record.stats = {contract.STATUS_STAT: {"mini": _doc("mini.tail1234.ts.net", 22)}}
    summary = status.summarise(handler.record.stats[contract.STATUS_STAT], calls=handler.record.host_calls)
    assert summary["hosts"]["mini"]["tailnet"]["latency_ms"] == 173.4
    assert "173 ms from here" in _rendered(summary)


def test_status_latency_prefers_the_kernels_round_trip_of_the_ssh_master(tmp_path, monkeypatch):
    """Where `ss` shows the TCP connection of the run's SSH master (Linux), its smoothed round-trip time is the
    latency: measured by TCP on the run's own traffic. The master is asked for its pid over its control socket
    (``ssh -O check``, local), at the ControlPath the runs use; nothing goes to the host."""
    if not sys.platform.startswith("linux"):
        pytest.skip("ss is Linux's")  # platform: the fastest host call is used elsewhere
    monkeypatch.setenv("PATH", f"{_fake_bin(tmp_path, master_pid=4242)}{os.pathsep}{os.environ['PATH']}")
    docs = {"mini": _doc("mini.tail1234.ts.net", 2222)}
    summary = status.summarise(docs, calls={"mini": 0.2})
    assert summary["hosts"]["mini"]["tailnet"]["latency_ms"] == 151.2
    (argv,) = _ssh_calls(tmp_path)
    assert argv[argv.index("-O") + 1] == "check"
    path = runner.control_path("mini.tail1234.ts.net", 2222, None)
    assert f"ControlPath={path}" in argv


def test_status_latency_of_a_local_host_or_an_unknown_one_is_none(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{_fake_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    docs = {"mini": _doc("mini.tail1234.ts.net", 22), "here": {**_doc("localhost", 22), "connection": "local"}}
    summary = status.summarise(docs, calls={"here": 0.01})
    assert summary["hosts"]["mini"]["tailnet"]["latency_ms"] is None
    assert summary["hosts"]["here"]["tailnet"]["latency_ms"] is None
    assert _ssh_calls(tmp_path) == [] or all("-O" in a for a in _ssh_calls(tmp_path))


def _rendered(summary: dict) -> str:
    buf = StringIO()
    status.render(Console(file=buf, width=140, force_terminal=False), summary)
    return buf.getvalue()


# ---- 2. quick verbs: the same compressed master as playbook runs ---------------------------------------------


def _master_options(argv: list[str]) -> dict[str, str]:
    """The -o options of an ssh argv that decide the master a session joins or starts (``Compression yes`` as Mitogen
    writes it and ``Compression=yes`` alike), lower-cased names."""
    out: dict[str, str] = {}
    words = list(argv)
    for i, word in enumerate(words):
        if word == "-o" and i + 1 < len(words):
            name, _, value = words[i + 1].replace(" ", "=", 1).partition("=")
            out.setdefault(name.lower(), value.strip('"'))  # ansible-core quotes the ControlPath
        elif word == "-C":
            out.setdefault("compression", "yes")
    return {k: v for k, v in out.items() if k.startswith(("control", "compression"))}


@pytest.fixture
def far_inventory(tmp_path, monkeypatch):
    inv = tmp_path / "inventory" / "hosts.yml"
    inv.parent.mkdir()
    inv.write_text(
        "homeport:\n  hosts:\n    mini:\n      ansible_host: 127.0.0.1\n      ansible_port: 2299\n"
        "      ansible_user: admin\n"
    )
    monkeypatch.setenv("HOMEPORT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("HOMEPORT_VAULT_PASSWORD", raising=False)
    monkeypatch.setenv("PATH", f"{_fake_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    return inv


@pytest.mark.parametrize("mitogen", ["1", "0"], ids=["mitogen", "ansible-core-ssh"])
def test_quick_verbs_join_the_compressed_master_of_playbook_runs(far_inventory, tmp_path, monkeypatch, mitogen):
    """A real playbook run (status.yml, through the runner) and `homeport ps` against the same host: both start ssh
    with compression and the same ControlPath/ControlMaster/ControlPersist, so whichever comes first starts the
    master the other joins, compressed. (A quick verb's uncompressed master made the next playbook run upload
    1.22 MB instead of 0.34 MB.) Host key checking stays on in both."""
    monkeypatch.setenv("HOMEPORT_MITOGEN", mitogen)
    handler = events.EventHandler(Console(file=StringIO()), json_mode=True)
    record = runner.run_playbook(runner.RunOptions(playbook=contract.STATUS.file, inventory=far_inventory), handler)
    assert record.exit_code() == events.EXIT_UNREACHABLE, record.as_dict()
    playbook_argvs = [a for a in _ssh_calls(tmp_path) if "-O" not in a]
    assert playbook_argvs, "the playbook run started no ssh"
    (tmp_path / "ssh-argv.log").unlink()

    host = quick.pick_host(quick.load_hosts(far_inventory), None)
    with pytest.raises(quick.QuickError):
        quick.ps(host)
    (quick_argv,) = _ssh_calls(tmp_path)

    wanted = _master_options(quick_argv)
    assert wanted.get("compression") == "yes", quick_argv
    assert wanted.get("controlmaster") == "auto" and wanted.get("controlpersist") == "600s"
    assert wanted.get("controlpath", "").startswith(str(runner.control_path_dir()))
    for argv in playbook_argvs:
        assert _master_options(argv) == wanted, (argv, quick_argv)
    for argv in [*playbook_argvs, quick_argv]:
        joined = " ".join(argv)
        assert "StrictHostKeyChecking=no" not in joined and "UserKnownHostsFile=/dev/null" not in joined


def test_the_runs_ssh_settings_come_from_one_place(tmp_path):
    """runner.SSH_ARGS (ANSIBLE_SSH_ARGS of every run) asks for compression, and the quick verbs' argv holds it."""
    assert "Compression=yes" in shlex.split(runner.SSH_ARGS)
    assert runner.build_env(tmp_path)["ANSIBLE_SSH_ARGS"] == runner.SSH_ARGS
    host = quick.Host(name="mini", address="mini.tail1234.ts.net", user="admin", port=2222)
    argv = quick.ssh_argv(host, "true")
    assert argv[1 : 1 + len(runner.ssh_master_args("mini.tail1234.ts.net", 2222, "admin"))] == (
        runner.ssh_master_args("mini.tail1234.ts.net", 2222, "admin")
    )


# ---- 3. start-up -------------------------------------------------------------------------------------------


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [PY, "-c", f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {m.split(".")[0] for m in out.split()}


def test_importing_the_cli_loads_neither_ansible_nor_ansible_runner():
    """`homeport --help`, `homeport ps` and the rest of the CLI start without ansible's 0.2 CPU s of imports (the
    vault module loaded ansible's vault for `homeport init` only); a playbook verb loads ansible-runner when it runs."""
    loaded = _modules_after("import homeport.cli")
    assert not loaded & {"ansible", "ansible_runner", "ansible_mitogen", "mitogen"}, sorted(loaded)


def test_a_run_prints_no_dependency_warning_and_the_fence_is_kept(far_inventory, tmp_path):
    """`homeport status` up to ansible-playbook, twice in fresh processes: no warning of a dependency on stderr
    (cryptography's DSA deprecation came from the Mitogen fence importing ansible's SSH agent), and the second run
    reads the fence's verdict instead of importing ansible_mitogen's connection machinery again."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["HOMEPORT_MITOGEN"] = "1"
    probe = (
        "import sys, ansible_runner\n"
        "from homeport import cli\n"
        "def stop(**kw):\n"
        "    print('ANSIBLE_STRATEGY=' + kw['envvars'].get('ANSIBLE_STRATEGY', ''))\n"
        "    print('LOADED=' + ' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "    raise SystemExit(0)\n"
        "ansible_runner.run = stop\n"
        f"sys.argv = ['homeport', 'status', '-i', {str(far_inventory)!r}]\n"
        "cli.main()\n"
    )
    outs = []
    for _ in range(2):
        r = subprocess.run([PY, "-W", "default", "-c", probe], env=env, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        assert "Warning" not in r.stderr and "warning:" not in r.stdout, r.stderr
        assert "ANSIBLE_STRATEGY=homeport_linear" in r.stdout
        outs.append(r.stdout)
    second = next(line for line in outs[1].splitlines() if line.startswith("LOADED="))
    assert "ansible_mitogen" not in second.split(), second
