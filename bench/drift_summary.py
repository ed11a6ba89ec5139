"""`homeport drift` (the host-state summary, issue 29) against `homeport drift --deep` (the check-mode site
playbook) over an emulated far link: wall time, round trips counted in the delay proxy, controller CPU.

One homeport/dind:13 host (bench/host.py) is converged once with the runtime and hardening roles through a 0 ms
proxy (setting up is not what is measured), then each verb runs ``--reps`` times through a second proxy at
``--rtt-ms`` (150 by default), each run cold: this bench's own SSH master is closed before it.

    python bench/drift_summary.py [--rtt-ms 150] [--reps 3] [--out bench-drift.json]

Round trips: each time the client sends after the server last spoke, plus one per TCP handshake
(bench/proxy.py DelayProxy.round_trips).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from host import BenchHost  # noqa: E402
from proxy import DelayProxy  # noqa: E402

IMAGE = "homeport/dind:13"
HOMEPORT = str(Path(sys.executable).with_name("homeport"))


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def inventory(h: BenchHost, port: int, path: Path) -> Path:
    host = {
        "ansible_host": "127.0.0.1",
        "ansible_port": port,
        "ansible_user": "bench",
        "ansible_become": True,
        "ansible_ssh_private_key_file": str(h.key),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={h.known_hosts} -o StrictHostKeyChecking=yes "
        "-o IdentitiesOnly=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    group = {
        "homeport_roles": ["runtime", "hardening"],
        "homeport_admin_user": "bench",
        "hardening_ssh_allowed_networks": [f"{h.gateway()}/32"],
        "docker_engine_compose": False,
    }
    path.write_text(json.dumps({"homeport": {"hosts": {"bench": host}, "vars": group}}))
    return path


def close_master(port: int) -> None:
    """End this bench's SSH master to the far proxy (only its own control socket, homeport.runner.control_path):
    the next run is cold."""
    from homeport.runner import control_path  # noqa: PLC0415

    sock = control_path("127.0.0.1", port, "bench")
    subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-p", str(port), "-O", "exit", "bench@127.0.0.1"],
                   capture_output=True, check=False, timeout=10)  # fmt: skip


def run(args: list[str], home: Path) -> tuple[int, float, float, str]:
    env = {**os.environ, "HOMEPORT_HOME": str(home), "NO_COLOR": "1"}
    cpu0, t0 = _cpu(), time.monotonic()
    r = subprocess.run([HOMEPORT, *args], capture_output=True, text=True, env=env, check=False)
    return r.returncode, time.monotonic() - t0, _cpu() - cpu0, r.stdout[-2000:] + r.stderr[-2000:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtt-ms", type=float, default=150.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    h = BenchHost("homeport-bench-drift", work, rtt_ms=0, image=IMAGE, run_flags=None)
    from homeport import sandbox  # noqa: PLC0415 - the docker-in-docker flags of the sandbox host

    h.run_flags = list(sandbox.RUN_FLAGS)
    h.start()
    far = None
    try:
        h.exec("touch", "-d", "2000-01-01", "/var/lib/apt/lists")  # a fresh image's emptied lists are not "fresh"
        code, secs, _, log = run(["bootstrap", "-i", str(inventory(h, h.proxy.port, work / "near.json"))],
                                 work / "setup")  # fmt: skip
        if code:
            print(log, file=sys.stderr)
            return 1
        print(f"setup: bootstrap (runtime, hardening) at 0 ms in {secs:.0f} s", flush=True)
        far = DelayProxy(h.address, 22, args.rtt_ms).start()
        hk = h.known_hosts.read_text().split(maxsplit=1)[1]
        h.known_hosts.write_text(f"[127.0.0.1]:{h.proxy.port} {hk}[127.0.0.1]:{far.port} {hk}")
        inv = inventory(h, far.port, work / "far.json")
        rows = {}
        for name, verb in (("summary", ["drift", "-i", str(inv), "--json"]),
                           ("deep", ["drift", "--deep", "-i", str(inv), "--json"])):  # fmt: skip
            runs = []
            for rep in range(args.reps):
                close_master(far.port)
                before = far.round_trips
                code, secs, cpu, log = run(verb, work / f"{name}-{rep}")
                if code not in (0, 2):
                    print(log, file=sys.stderr)
                    return 1
                runs.append({"seconds": round(secs, 2), "round_trips": far.round_trips - before, "cpu": round(cpu, 2),
                             "exit": code})  # fmt: skip
                print(f"{name} rep {rep}: {runs[-1]}", flush=True)
            rows[name] = {
                "wall_median_s": round(statistics.median(r["seconds"] for r in runs), 2),
                "round_trips_median": statistics.median(r["round_trips"] for r in runs),
                "controller_cpu_median_s": round(statistics.median(r["cpu"] for r in runs), 2),
                "runs": runs,
            }
        print(f"\n`homeport drift` at {args.rtt_ms:.0f} ms RTT, SSH master cold, median of {args.reps}:")
        print(f"{'mode':<10}{'wall s':>10}{'round trips':>14}{'controller CPU s':>18}")
        for name, row in rows.items():
            print(f"{name:<10}{row['wall_median_s']:>10}{row['round_trips_median']:>14}"
                  f"{row['controller_cpu_median_s']:>18}")  # fmt: skip
        if args.out:
            args.out.write_text(json.dumps({"rtt_ms": args.rtt_ms, "reps": args.reps, "modes": rows}, indent=2))
        return 0
    finally:
        if far:
            far.stop()
        h.stop()


if __name__ == "__main__":
    sys.exit(main())
