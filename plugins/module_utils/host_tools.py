"""The host's command-line tools, found and run in one way by the read-only modules (homeport_status, homeport_facts).

sshd's non-interactive PATH on macOS is /usr/bin:/bin:/usr/sbin:/sbin: Homebrew's bin (the ``extra`` directories) and
/usr/local/bin are not on it, so a tool is looked up on PATH, then those, then the usual system directories. A tool
that is missing, fails or hangs gives ``None`` (and an entry in ``Host.errors``), never an exception: the modules
only read, and one missing tool must not hide what the others report. Python 3.9 compatible, stdlib only.
"""

from __future__ import annotations

import os
import shutil
import subprocess

DEFAULT_PATH = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]


def search_path(environ, extra=()):
    """PATH, then the extra directories (Homebrew's bin), then the usual system directories."""
    return os.pathsep.join([p for p in [environ.get("PATH", ""), *extra, *DEFAULT_PATH] if p])


class Host:
    """The commands of the host: found on ``path``, their failures recorded in ``errors`` (never raised)."""

    def __init__(self, path):
        self.path = path
        self.errors = []

    def which(self, name):
        return shutil.which(name, path=self.path)

    def run(self, *args, timeout=30):
        exe = self.which(args[0])
        if not exe:
            return None
        try:
            p = subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            self.errors.append(f"{args[0]} {args[1] if len(args) > 1 else ''}: {exc}")
            return None
        if p.returncode != 0:
            self.errors.append(f"{' '.join(args[:2])}: {(p.stderr or p.stdout).strip()[:300]}")
            return None
        return p.stdout
