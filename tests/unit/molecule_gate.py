"""Issue 34: open the molecule gate when the unit tests no longer fill the machine.

`make test` runs the molecule stage beside the unit tests, one scenario at a time while the file MOLECULE_GATE names
exists (tests/stage-times.sh creates it while the unit tests run and removes it when they end; tests/run-molecule.sh
counts its slots from it). The unit tests' end is a poor signal: pytest-xdist hands out whole files (--dist loadfile)
and shuts a worker down once no file is left for it (xdist/scheduler/loadscope.py, ``_reschedule``: ``if not
self.workqueue: node.shutdown()``), so at the end a single worker may run its last file while the other cores idle
(about a minute in the clean-clone run of c2b5960). These hooks run in pytest-xdist's controller: when every worker
but one is down, the gate file is removed and the scenarios go to their full count.

tests/unit/conftest.py imports the two hooks; they are optional hooks (no error without pytest-xdist).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_GATE = os.environ.get("MOLECULE_GATE")
GATE = Path(_GATE).resolve() if _GATE else None  # resolved at start-up: relative to `make`'s directory
_WORKERS = {"up": 0, "down": 0}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node: object) -> None:
    _WORKERS["up"] += 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    _WORKERS["down"] += 1
    left = _WORKERS["up"] - _WORKERS["down"]
    if GATE is not None and left <= 1 and GATE.exists():
        GATE.unlink(missing_ok=True)
        print(f"\nunit: {_WORKERS['down']} of {_WORKERS['up']} workers done, {left} left: molecule gate {GATE} opened")
