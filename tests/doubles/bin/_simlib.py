"""Common code for the macOS-sim doubles (installed beside them as /usr/local/bin/_simlib.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STATE = Path(os.environ.get("HOMEPORT_SIM_STATE", "/var/lib/homeport-sim"))


def record(tool: str | None = None) -> list[str]:
    """Append this invocation (argv as JSON) to calls.log and return the arguments after the program name."""
    argv = [tool or Path(sys.argv[0]).name, *sys.argv[1:]]
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "calls.log").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(argv) + "\n")
    return sys.argv[1:]


def state_dir(tool: str) -> Path:
    d = STATE / tool
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_json(path: Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return default


def save_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def die(msg: str, code: int = 1) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.exit(code)
