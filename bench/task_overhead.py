"""The controller's CPU per task (issue 34): ansible-core's linear strategy against homeport_warm (the same strategy
with the main process's plugin caches warmed before each task's worker forks, homeport.ansible_warm, and a task whose
`when` is false skipped by the main process without a worker, homeport.ansible_skip), and homeport_warm with the
skip left to the workers (HOMEPORT_SKIP_IN_MAIN=0), so each of the two effects shows on its own.

Content: one local-connection playbook of N tasks shaped like homeport's roles: asserts whose conditions use
Ansible filters and tests (as every validate.yml does), set_fact with a filter, stat / command modules and a command
whose `when` is false (a role's branch for another OS). The three variants run the same playbook in turn, --reps
times each; for each run it prints the CPU seconds of the whole process tree (user + system, the workers included),
the minor page faults (the cost of each forked worker touching memory) and the wall time, then the medians and the
CPU saved per task start. Counts that noise cannot blur: the task starts and the page faults. Run on its own:
`python bench/task_overhead.py --reps 5 --tasks 120`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STRATEGY_DIR = ROOT / "src" / "homeport" / "ansible_plugins" / "strategy"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def playbook(tasks: int) -> list[dict]:
    shapes = [
        {
            "ansible.builtin.assert": {
                "that": ["bench_port | int > 0", "bench_name is match('^[a-z]+$')"],
                "quiet": True,
            }
        },
        {
            "ansible.builtin.assert": {
                "that": "bench_paths | select('search', '^/') | list | length == 2",
                "quiet": True,
            }
        },
        {"ansible.builtin.set_fact": {"_bench_json": "{{ bench_paths | to_json | b64encode }}"}},
        {"ansible.builtin.stat": {"path": "/etc/hostname"}},
        {"ansible.builtin.command": {"argv": ["true"]}, "changed_when": False},
        {"ansible.builtin.command": {"argv": ["true"]}, "when": "bench_name == 'darwin'"},
    ]
    body = [{"name": f"task {i}", **shapes[i % len(shapes)]} for i in range(tasks)]
    return [
        {
            "name": "bench",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"bench_port": 8080, "bench_name": "api", "bench_paths": ["/srv", "/etc"]},
            "tasks": body,
        }
    ]


VARIANTS = {  # name: (strategy, HOMEPORT_SKIP_IN_MAIN)
    "linear": ("linear", "1"),
    "warm, skip in worker": ("homeport_warm", "0"),
    "homeport_warm": ("homeport_warm", "1"),
}


def run_once(pb: Path, variant: str, workdir: Path) -> dict:
    strategy, skip_in_main = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        HOMEPORT_SKIP_IN_MAIN=skip_in_main,
        ANSIBLE_STRATEGY=strategy,
        ANSIBLE_STRATEGY_PLUGINS=str(STRATEGY_DIR),
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        PYTHONPATH=str(ROOT / "src"),
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(pb)],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{strategy}: ansible-playbook failed (rc={proc.returncode}):\n{proc.stdout[-2000:]}")
    recap = next(line for line in proc.stdout.splitlines() if line.startswith("localhost"))
    ok = int(recap.split("ok=")[1].split()[0])
    skipped = int(recap.split("skipped=")[1].split()[0])
    return {
        "starts": ok + skipped,
        "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "faults": after.ru_minflt - before.ru_minflt,
        "wall": wall,
        "ok": ok,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=120)
    args = ap.parse_args(argv)
    strategies = tuple(VARIANTS)
    results: dict[str, list[dict]] = {s: [] for s in strategies}
    with tempfile.TemporaryDirectory(prefix="homeport-bench-tasks.") as tmp:
        pb = Path(tmp) / "tasks.yml"
        pb.write_text(yaml.safe_dump(playbook(args.tasks), sort_keys=False), encoding="utf-8")
        for rep in range(args.reps):
            for s in strategies if rep % 2 == 0 else reversed(strategies):  # alternate: drift in the machine's load
                r = run_once(pb, s, Path(tmp))
                results[s].append(r)
                print(f"rep {rep + 1} {s:20} starts={r['starts']:4} ok={r['ok']:4}", end="")
                print(f"  cpu {r['cpu']:6.2f} s  faults {r['faults']:8}", end="")
                print(f"  wall {r['wall']:6.2f} s")
    med = {
        s: {k: statistics.median(r[k] for r in results[s]) for k in ("cpu", "faults", "wall", "ok", "starts")}
        for s in strategies
    }
    load = os.getloadavg()[0]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load:.2f}, {args.tasks} tasks, {args.reps} reps"
    )
    for s in strategies:
        m = med[s]
        print(
            f"{s:20} median cpu {m['cpu']:6.2f} s ({1000 * m['cpu'] / m['starts']:5.1f} ms/task start)  "
            f"faults {m['faults']:9.0f} ({m['faults'] / m['starts']:6.0f}/task start)  wall {m['wall']:6.2f} s"
        )
    for base, new in (("linear", "warm, skip in worker"), ("warm, skip in worker", "homeport_warm"),
                      ("linear", "homeport_warm")):  # fmt: skip
        saved = med[base]["cpu"] - med[new]["cpu"]
        per_start = 1000 * saved / med[base]["starts"]
        print(f"{new} against {base}: {saved:.2f} CPU-s per run saved, {per_start:.1f} ms per task start "
              f"({100 * saved / med[base]['cpu']:.0f} %)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
