"""The homeport CLI's start-up (issue 29): CPU seconds and wall of `homeport --help`, and of the pre-task phase of
`homeport status` (the homeport process from its start until it hands the run to ansible-runner, i.e. everything
homeport itself does before ansible-playbook starts), each in a fresh process.

The pre-task phase runs the real CLI (`homeport status -i <a throwaway inventory>`) with ``ansible_runner.run``
replaced by a stop, so nothing reaches a host. Its first run in a fresh HOMEPORT_HOME is "cold" (the Mitogen fence
has no stored verdict yet), the others "warm", as on a laptop. CPU is user + system of the process (wait4).
It also prints each run's stderr lines (a dependency warning there is a defect) and which heavy packages the
process had loaded. Run on its own: `python bench/cli_startup.py --reps 5`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
HOMEPORT = str(Path(PY).with_name("homeport"))
HEAVY = ("ansible", "ansible_runner", "ansible_mitogen", "mitogen", "yaml", "jinja2", "rich", "typer")

STOP_BEFORE_ANSIBLE_PLAYBOOK = """
import sys, ansible_runner
from homeport import cli
heavy = set(sys.argv[2:])
def stop(**kw):
    print('LOADED=' + ' '.join(sorted({m.split('.')[0] for m in sys.modules} & heavy)))
    raise SystemExit(0)
ansible_runner.run = stop
inv = sys.argv[1]
sys.argv = ['homeport', 'status', '-i', inv]
cli.main()
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str, str]:
    """(CPU seconds, wall seconds, stdout, stderr) of one process."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    # communicate() reaped it; the usage of the last reaped child is in RUSAGE_CHILDREN's increase
    return _child_cpu_since(), wall, out, err


_last_children = 0.0


def _child_cpu_since() -> float:
    import resource  # noqa: PLC0415

    global _last_children
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = r.ru_utime + r.ru_stime
    spent, _last_children = total - _last_children, total
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    _child_cpu_since()
    with tempfile.TemporaryDirectory(prefix="homeport-startup-") as tmp:
        inv = Path(tmp, "inventory", "hosts.yml")
        inv.parent.mkdir()
        inv.write_text("homeport:\n  hosts:\n    far:\n      ansible_host: 192.0.2.1\n      ansible_user: admin\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(HOMEPORT_HOME=str(Path(tmp, "home")), XDG_CONFIG_HOME=str(Path(tmp, "config")))
        env.pop("HOMEPORT_VAULT_PASSWORD", None)

        helps = [timed([HOMEPORT, "--help"], env) for _ in range(args.reps)]
        phases = [timed([PY, "-c", STOP_BEFORE_ANSIBLE_PLAYBOOK, str(inv), *HEAVY], env) for _ in range(args.reps)]

    def row(name: str, runs: list[tuple[float, float, str, str]]) -> None:
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        print(f"{name:<44} cpu {cpu:6.3f} s   wall {wall:6.3f} s   (median of {len(runs)})")

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    row("homeport --help", helps)
    row("status, pre-task phase, cold (first run)", phases[:1])
    if len(phases) > 1:
        row("status, pre-task phase, warm", phases[1:])
    loaded = [line for line in phases[-1][2].splitlines() if line.startswith("LOADED=")]
    print("heavy packages loaded before ansible-playbook starts:", loaded[0][7:] if loaded else "?")
    warnings = sorted({line for r in helps + phases for line in r[3].splitlines() if line.strip()})
    print("stderr lines (warnings):", len(warnings))
    for line in warnings:
        print("  " + line)


if __name__ == "__main__":
    main()
