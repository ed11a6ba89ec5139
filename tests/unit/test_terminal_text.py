"""Issue 27, finding 4: text that comes from the host or its containers (a failed deploy's last log lines, `homeport
logs`, `ps`, `status`, `drift` diffs, the doctor's details, error messages with the host's stderr) never reaches the
operator's terminal as control sequences or as rich markup. Every path goes through homeport.safe_text.clean: control
characters are shown escaped (``\\x1b]52;...``), the printable text stays.

The attack strings are the real ones: OSC 52 (write the clipboard), OSC 8 (a hyperlink whose target is hidden),
OSC 0 (window title), SGR 8 (concealed text), CSI cursor moves and screen erase, the 8-bit C1 CSI, and a carriage
return that overwrites the line before it.
"""

from __future__ import annotations

import re
import subprocess
from io import StringIO

import pytest
from rich.console import Console
from test_status import NOW, mac_doc
from typer.testing import CliRunner

from homeport import doctor, drift, events, quick, status
from homeport.cli import app

OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # puts "rm -rf ~" into the clipboard
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click here\x1b]8;;\x1b\\"
TITLE = "\x1b]0;pwned\x07"
CONCEAL = "\x1b[8mhidden text\x1b[0m"
CURSOR = "\x1b[2A\x1b[2K\x1b[2J"
C1_CSI = "\x9b2J"
OVERWRITE = "ERROR real problem\rall good         "
MARKUP = "[link=https://evil.example]docs[/link] [/] [bold]"
ATTACKS = [OSC52, OSC8, TITLE, CONCEAL, CURSOR, C1_CSI, OVERWRITE]
LOG = "\n".join(f"line {i}: {a}" for i, a in enumerate(ATTACKS))

# rich's own styling (SGR colours/bold/dim) is allowed in a terminal; SGR 8 (conceal) never is
_RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")
_CONCEAL = re.compile(r"\x1b\[(?:[0-9;]*;)?8(?:;[0-9;]*)?m")


def unsafe(output: str) -> list[str]:
    """Control characters in ``output`` that did not come from rich's own SGR styling (empty: safe)."""
    found = [m.group() for m in _CONCEAL.finditer(output)]
    rest = _RICH_SGR.sub("", output)
    found += [repr(c) for c in rest if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]
    return found


def terminal() -> tuple[Console, StringIO]:
    buf = StringIO()
    return Console(file=buf, width=400, force_terminal=True, color_system="standard", highlight=False), buf


# -- the one sanitiser ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (OSC52, "\\x1b]52;c;cm0gLXJmIH4K\\x07"),
        (OSC8, "\\x1b]8;;https://evil.example/\\x1b\\click here\\x1b]8;;\\x1b\\"),
        (TITLE, "\\x1b]0;pwned\\x07"),
        (CONCEAL, "\\x1b[8mhidden text\\x1b[0m"),
        (CURSOR, "\\x1b[2A\\x1b[2K\\x1b[2J"),
        (C1_CSI, "\\x9b2J"),
        (OVERWRITE, "ERROR real problem\\x0dall good         "),
        ("tab\tand\nnewline, unicode é ✓ 日本", "tab\tand\nnewline, unicode é ✓ 日本"),
        ("windows line\r\nnext", "windows line\nnext"),
        ("NUL\x00 BEL\x07 BS\x08 DEL\x7f VT\x0b FF\x0c", "NUL\\x00 BEL\\x07 BS\\x08 DEL\\x7f VT\\x0b FF\\x0c"),
        ("bidi \u202eevil\u202c \u2066x\u2069", "bidi \\u202eevil\\u202c \\u2066x\\u2069"),
    ],
)
def test_clean_shows_control_characters_escaped_and_keeps_the_text(raw, shown):
    from homeport import safe_text

    assert safe_text.clean(raw) == shown
    assert not unsafe(safe_text.clean(raw))


def test_stream_copy_escapes_across_chunks_and_bad_utf8():
    from homeport import safe_text

    out = StringIO()
    chunks = [b"a\xc2", b"\x9b2J b\r", b"\nc \x1b]0;t\x07 \xff end"]  # C1 split across chunks, \r\n split too
    safe_text.copy_stream(iter(chunks), out)
    assert out.getvalue() == "a\\x9b2J b\nc \\x1b]0;t\\x07 \\xff end"


# -- every path that prints host-provided text ------------------------------------------------------------------------
def test_failed_deploy_report_shows_the_container_log_lines_escaped():
    """roles/stack/tasks/failed.yml puts `docker compose logs` output into the failure message; the CLI prints it."""
    record = events.RunRecord(status="failed")
    message = f"Deploy failed: api is unhealthy\nLast log lines:\n  {LOG}\n  {MARKUP}"
    record.failures.append(events.Failure("mini", "deploy", "stack", "Fail with the report", "fail", message))
    record.errors.append(f"ERROR! {TITLE}")
    console, buf = terminal()
    events.render_result(console, record)
    out = buf.getvalue()
    assert not unsafe(out), unsafe(out)
    assert "\\x1b]52;c;cm0gLXJmIH4K\\x07" in out and "\\x9b2J" in out and MARKUP in out


def test_drift_report_shows_the_host_file_content_escaped():
    summary = {
        "fix": False,
        "hosts": {
            "mini": {
                "changed": 1,
                "roles": {"stack": [{"task": "Write the compose file", "action": "copy", "diff": [{"unified": LOG}]}]},
            }
        },
        "failures": [{"host": "mini", "role": "", "task": "t", "unreachable": False, "message": OSC8 + MARKUP}],
        "errors": [TITLE],
        "exit_code": drift.EXIT_DRIFT,
        "changed_tasks": 1,
    }
    console, buf = terminal()
    drift.render(console, summary)
    out = buf.getvalue()
    assert not unsafe(out), unsafe(out)
    assert "\\x1b[8mhidden text" in out and MARKUP in out


def test_status_screen_shows_container_names_and_errors_escaped():
    doc = mac_doc(errors=[f"docker ps: {OSC52}"])
    doc["containers"][0]["name"] = f"evil{TITLE}{MARKUP}"
    console, buf = terminal()
    status.render(console, status.summarise({"mini": doc}, now=NOW, measure=False))
    out = buf.getvalue()
    assert not unsafe(out), unsafe(out)
    assert "\\x1b]0;pwned\\x07" in out and "[link=https://evil.example]" in out


def test_ps_table_shows_host_labels_literally():
    """Compose service labels are whatever the container was created with: neither markup nor escapes apply."""
    rows = [
        {
            "service": f"{MARKUP}{OSC8}",
            "name": f"api-1{C1_CSI}",
            "state": "running",
            "health": "healthy",
            "restarts": 0,
            "memory_usage_mb": 1.0,
            "memory_limit_mb": 2.0,
        }
    ]
    console, buf = terminal()
    quick.render_ps(console, quick.Host(name="mini", address="10.0.0.5"), rows)
    out = buf.getvalue()
    assert not unsafe(out), unsafe(out)
    assert "[link=https://evil.example]docs[/link]" in out and "\\x9b2J" in out


def test_cli_error_with_the_hosts_stderr_is_shown_literally(monkeypatch, project, tmp_path):
    """An error that quotes the host's stderr (ssh, docker) is neither rich markup nor terminal control."""
    inv = tmp_path / "hosts.yml"
    inv.write_text("homeport:\n  hosts:\n    mini:\n      ansible_host: 10.0.0.5\n")

    def failing_ps(host):
        raise quick.QuickError(f"mini: docker ps failed: {MARKUP} {TITLE}", 1)

    monkeypatch.setattr(quick, "ps", failing_ps)
    r = CliRunner().invoke(app, ["ps", "-i", str(inv)])
    assert r.exit_code == 1, (r.output, r.exception)
    assert MARKUP in r.output and "\\x1b]0;pwned\\x07" in r.output
    assert not unsafe(r.output)


def test_doctor_shows_the_hosts_answers_escaped():
    rows = [doctor.Check(f"mini: python3{TITLE}", "ok", f"3.11 {OSC52}{MARKUP}", f"fix {CONCEAL}")]
    console, buf = terminal()
    doctor.render(console, rows)
    out = buf.getvalue()
    assert not unsafe(out), unsafe(out)
    assert "\\x1b]52;c;" in out


def _printf_argv(payload: bytes) -> list[str]:
    octal = "".join(f"\\{b:03o}" for b in payload)
    return ["sh", "-c", f"printf '{octal}'; printf 'ssh: {TITLE}\\n' >&2"]


@pytest.fixture
def local_logs(monkeypatch):
    """quick.logs with ssh replaced by a local printf of ``payload`` (stdout) and an escape on stderr."""
    monkeypatch.setattr(quick, "_prepare", lambda: None)

    def run(payload: bytes, **kw) -> int:
        monkeypatch.setattr(quick, "ssh_argv", lambda host, script, tty=False: _printf_argv(payload))
        return quick.logs(quick.Host(name="mini", address="10.0.0.5"), "api", [], **kw)

    return run


def test_logs_show_the_containers_escapes_escaped_by_default(local_logs, capfd):
    assert local_logs(LOG.encode() + b"\n\xc2\x9b6n done\n") == 0
    out, err = capfd.readouterr()
    assert not unsafe(out + err), unsafe(out + err)
    assert "line 0: \\x1b]52;c;cm0gLXJmIH4K\\x07" in out and "\\x9b6n done" in out
    assert "ssh: \\x1b]0;pwned\\x07" in err


def test_logs_raw_passes_the_bytes_through_on_request(local_logs, capfd):
    assert local_logs(LOG.encode() + b"\n", raw=True) == 0
    out, _err = capfd.readouterr()
    assert out == LOG + "\n"


def test_cli_logs_has_a_raw_switch(monkeypatch, project, tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text("homeport:\n  hosts:\n    mini:\n      ansible_host: 10.0.0.5\n")
    seen = {}

    def fake_logs(host, service, args, raw=False):
        seen.update(service=service, raw=raw)
        return 0

    monkeypatch.setattr(quick, "logs", fake_logs)
    assert CliRunner().invoke(app, ["logs", "api", "-i", str(inv)]).exit_code == 0
    assert seen == {"service": "api", "raw": False}
    assert CliRunner().invoke(app, ["logs", "api", "--raw", "-i", str(inv)]).exit_code == 0
    assert seen == {"service": "api", "raw": True}


def test_subprocess_run_of_a_real_terminal_sequence_is_escaped(local_logs, capfd):
    """The escapes a real program writes (printf through sh, as `docker logs` relays them) arrive escaped."""
    r = subprocess.run(["sh", "-c", "printf '\\033]52;c;eA==\\007'"], capture_output=True, check=True)
    assert local_logs(r.stdout) == 0
    out, _err = capfd.readouterr()
    assert out == "\\x1b]52;c;eA==\\x07"
