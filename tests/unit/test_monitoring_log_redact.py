"""Alertmanager's log output through roles/monitoring/files/homeport-log-redact (issue 27, finding 2).

The sample lines are what Alertmanager writes for a failed Telegram notification: notify/retry_stage.go logs
`l.Warn("Notify attempt failed, will retry later", "attempts", i, "err", err)` and dispatch/dispatch.go
`logger.Error("Notify for alerts failed", ..., "err", err)`; the error is telebot's `telebot: <url.Error>`, whose
text is `Post "<URL>": <cause>` with the bot token in the URL's path (notify/telegram/telegram.go returns it as it
is). slog's text format (Alertmanager 0.27+, Debian 13, Homebrew) and go-kit's logfmt (0.25, Debian 12) escape the
quotes inside the err value.
"""

from __future__ import annotations

import os
import plistlib
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from ansible_local import ROOT, run_local_playbook

REDACT = ROOT / "roles" / "monitoring" / "files" / "homeport-log-redact"
TOKEN_SECRET = "AAHk-EXAMPLE_tok3n-value-0123456789abcd"
TOKEN = f"123456789:{TOKEN_SECRET}"
TELEGRAM_ERR = (
    f'telebot: Post \\"https://api.telegram.org/bot{TOKEN}/sendMessage\\": '
    "dial tcp 127.0.0.1:443: connect: connection refused"
)
SLOG_LINE = (
    'time=2026-12-06T15:00:00.000Z level=WARN source=retry_stage.go:165 msg="Notify attempt failed, will retry later" '
    'component=dispatcher receiver=homeport integration=telegram[0] aggrGroup="{}:{alertname=\\"StackServiceDown\\"}" '
    f'attempts=1 err="{TELEGRAM_ERR}"'
)
FINAL_LINE = (
    'time=2026-12-06T15:05:00.000Z level=ERROR source=dispatch.go:589 msg="Notify for alerts failed" '
    'component=dispatcher num_alerts=1 err="homeport/telegram[0]: notify retry canceled after 16 attempts: '
    f'{TELEGRAM_ERR}"'
)
HOOK_SECRET = "0f3a9c2e-5d1b-4c7a-9e8f-deadman-uuid"
LOGFMT_LINE = (
    "ts=2026-12-06T15:00:00.000Z caller=notify.go:732 level=warn component=dispatcher receiver=deadmans_switch "
    'integration=webhook[0] msg="Notify attempt failed, will retry later" attempts=1 '
    f'err="Post \\"https://user:***@hc-ping.example/{HOOK_SECRET}?t=x\\": context deadline exceeded"'
)


def filtered(text: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(REDACT)], input=text.encode(), capture_output=True, timeout=30, check=True
    )
    return proc.stdout.decode()


def test_the_telegram_token_is_masked_and_the_error_stays_useful():
    out = filtered(SLOG_LINE + "\n" + FINAL_LINE + "\n")
    assert TOKEN_SECRET not in out
    lines = out.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "https://api.telegram.org/<redacted>" in line
        assert "dial tcp 127.0.0.1:443: connect: connection refused" in line
    assert 'msg="Notify attempt failed, will retry later"' in lines[0] and "integration=telegram[0]" in lines[0]
    assert "notify retry canceled after 16 attempts" in lines[1]


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        (f"telegram token {TOKEN} in a debug line", "123456789:<redacted>"),
        (f"url=https://api.telegram.org/bot{TOKEN}/getMe", "bot123456789:<redacted>/getMe"),
        (f"url=https://api.telegram.org/bot{TOKEN.replace(':', '%3A')}/getMe", "bot123456789%3A<redacted>"),
        (LOGFMT_LINE, 'Post \\"https://hc-ping.example/<redacted>\\": context deadline exceeded'),
        ('err="Post \\"http://127.0.0.1:9099\\": connection refused"', 'Post \\"http://127.0.0.1:9099\\"'),
        ("level=INFO msg=Completed loading of configuration file file=/etc/prometheus/alertmanager.yml", None),
    ],
)
def test_other_shapes(line, kept):
    out = filtered(line + "\n")
    assert TOKEN_SECRET not in out and HOOK_SECRET not in out and "user:" not in out
    assert out == (line + "\n" if kept is None else out)
    if kept:
        assert kept in out, out


def test_bytes_that_are_not_utf8_pass_through():
    raw = b"\xff\xfe level=WARN err=x\n"
    proc = subprocess.run([sys.executable, str(REDACT)], input=raw, capture_output=True, timeout=30, check=True)
    assert proc.stdout == raw


DAEMON = textwrap.dedent(
    f"""
    import os, signal, sys, time
    def hup(*_):
        print({SLOG_LINE!r}.replace("attempts=1", "attempts=2"), file=sys.stderr, flush=True)
    def term(*_):
        print("last words before the exit: " + {TOKEN!r}, file=sys.stderr, flush=True)
        sys.exit(3)
    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGTERM, term)
    print("pid", os.getpid(), flush=True)
    print({SLOG_LINE!r}, file=sys.stderr, flush=True)
    while True:
        time.sleep(0.05)
    """
)


def test_the_launcher_runs_the_daemon_as_itself_and_filters_to_the_end(tmp_path: Path):
    """`homeport-log-redact -- DAEMON`: the daemon replaces the launcher (same PID: a reload signal reaches it), its
    output arrives masked, a SIGTERM to the whole process group (systemd's stop, launchd's) stops the daemon with its
    own exit status while the filter still writes the daemon's last line."""
    daemon = tmp_path / "daemon.py"
    daemon.write_text(DAEMON)
    log = tmp_path / "journal.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(REDACT), "--", sys.executable, str(daemon)],
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 20
            while "attempts=1" not in log.read_text(errors="replace") and time.monotonic() < deadline:
                time.sleep(0.05)
            text = log.read_text(errors="replace")
            assert f"pid {proc.pid}" in text, text  # the daemon is the process the service manager started
            proc.send_signal(signal.SIGHUP)  # ExecReload=kill -HUP $MAINPID
            while "attempts=2" not in log.read_text(errors="replace") and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=20) == 3
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while "last words" not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.05)
    text = log.read_text(errors="replace")
    assert TOKEN_SECRET not in text, text
    assert "attempts=1" in text and "attempts=2" in text
    assert "last words before the exit: 123456789:<redacted>" in text


def test_a_daemon_that_cannot_start_is_reported(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, str(REDACT), "--", str(tmp_path / "missing")], capture_output=True, timeout=30, check=False
    )
    assert proc.returncode == 127
    assert b"cannot run" in proc.stderr


def render_service_files(tmp_path: Path, os_family: str) -> Path:
    """The role's drop-in (Debian) or LaunchDaemon (macOS) for Alertmanager, from its own templates and vars."""
    role = ROOT / "roles" / "monitoring"
    out = tmp_path / os_family
    out.mkdir()
    playbook = textwrap.dedent(
        f"""
        - hosts: localhost
          connection: local
          gather_facts: false
          vars_files: ["{role}/defaults/main.yml", "{role}/vars/main.yml"]
          tasks:
            - ansible.builtin.template:
                src: "{role}/templates/memory.conf.j2"
                dest: "{out}/{{{{ item.value }}}}.conf"
              loop: "{{{{ _monitoring_units | dict2items }}}}"
            - ansible.builtin.template:
                src: "{role}/templates/launchd.plist.j2"
                dest: "{out}/{{{{ _monitoring_job }}}}.plist"
              loop: [alertmanager, prometheus]
              loop_control:
                loop_var: _monitoring_job
        """
    )
    variables = {"homeport_os_family": os_family, "homeport_admin_user": "admin", "homeport_roles": ["monitoring"]}
    proc = run_local_playbook(out, playbook, variables)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


def test_the_service_files_run_alertmanager_through_the_filter(tmp_path: Path):
    debian = render_service_files(tmp_path, "Debian")
    dropin = (debian / "prometheus-alertmanager.conf").read_text()
    starts = [line for line in dropin.splitlines() if line.startswith("ExecStart=")]
    assert len(starts) == 2, dropin
    assert starts[0] == "ExecStart="  # the package's ExecStart is replaced, not added to
    argv = starts[1].removeprefix("ExecStart=").split()
    assert argv == ["/usr/bin/python3", "/usr/local/libexec/homeport-log-redact", "--",
                    "/usr/bin/prometheus-alertmanager", "$ARGS"]  # fmt: skip
    assert "SyslogIdentifier=prometheus-alertmanager" in dropin  # the journal names the daemon, not python3
    assert "ExecStart" not in (debian / "prometheus.conf").read_text()

    mac = render_service_files(tmp_path, "Darwin")
    am = plistlib.loads((mac / "alertmanager.plist").read_bytes())
    args = am["ProgramArguments"]
    assert args[:4] == ["/usr/bin/python3", "/usr/local/libexec/homeport-log-redact", "--",
                        "/opt/homebrew/bin/alertmanager"]  # fmt: skip
    assert any(a.startswith("--config.file=") for a in args[4:])
    assert am["StandardErrorPath"] == am["StandardOutPath"]
    prom = plistlib.loads((mac / "prometheus.plist").read_bytes())
    assert "homeport-log-redact" not in " ".join(prom["ProgramArguments"])


def test_the_receivers_file_is_readable_by_the_daemon_only_on_macos():
    """alertmanager.yml holds the tokens: on macOS its group would be staff (every local user), so 0600 there."""
    tasks = yaml.safe_load((ROOT / "roles" / "monitoring" / "tasks" / "configure.yml").read_text())
    task = next(t for t in tasks if t["name"].startswith("Write Alertmanager's configuration"))
    assert task["no_log"] is True
    mode = task["homeport.homeport.template"]["mode"]
    playbook = textwrap.dedent(
        f"""
        - hosts: localhost
          connection: local
          gather_facts: false
          vars_files: ["{ROOT}/roles/monitoring/defaults/main.yml", "{ROOT}/roles/monitoring/vars/main.yml"]
          tasks:
            - ansible.builtin.debug:
                msg: "MODE={mode}"
        """
    )
    modes = {}
    for os_family in ("Debian", "Darwin"):
        work = Path(os.environ.get("TMPDIR", "/tmp")) / f"am-mode-{os.getpid()}-{os_family}"
        work.mkdir(exist_ok=True)
        proc = run_local_playbook(work, playbook, {"homeport_os_family": os_family, "homeport_admin_user": "admin"})
        assert proc.returncode == 0, proc.stdout[-2000:]
        modes[os_family] = proc.stdout.split("MODE=")[1].split('"')[0]
    assert modes == {"Debian": "0640", "Darwin": "0600"}, modes
