"""Load test of the deployed test stack, through the path a user takes: an SSH tunnel to the host.

Against a Docker-in-Docker target that runs the test stack (tests/stack: PostgreSQL + pgvector and the vector API,
published on the host's 127.0.0.1:18080 only), this opens `ssh -N -L` to the target with a throwaway key and the
host key pinned (host key checking on), then

  phase "stack"            N concurrent HTTP clients for T seconds over the tunnel (keep-alive connections,
                           GET /nearest?k=5 with a random vector: a pgvector query per request, and 1 in 10
                           GET /health), while the target's engine is sampled (`docker stats`) for the memory of
                           the stack's containers;
  phase "stack + 2 agents" two more "agent" containers (the API's image, a memory limit each, calling the API in
                           a loop inside the stack's network) are started after checking that the stack's limits
                           plus theirs stay inside the memory budget, and the same clients run again.

Prints per phase: requests, requests/s, p50/p95/p99 latency in ms, errors, and the peak memory of the stack
(+ agents) against the sum of their limits and the budget. Exits 1 when a request failed or the peak went over the
budget. Bounded: at most --clients 64 and --seconds 600; only the target's loopback is loaded.

  python bench/load.py --container stack-dind13 --short          # the molecule stack scenario's target (CI)
  python bench/load.py --deploy                                  # its own target via bench/deploy.py (full mode)
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from homeport import paths

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "teststack"
API_PORT = 18080  # tests/stack/vars.yml: ports ["18080:8080"], bound to 127.0.0.1 by the stack role
BUDGET = "14g"  # homeport_memory_budget's default
AGENT_MEMORY = "256m"
AGENT_LABEL = "homeport.bench=load-agent"
MAX_CLIENTS, MAX_SECONDS = 64, 600
MODES = {"short": {"clients": 4, "seconds": 8}, "full": {"clients": 16, "seconds": 60}}
# an agent: calls the API in a loop from inside the stack's network (short enough to read here)
AGENT_CODE = (
    "import time, urllib.request\n"
    "while True:\n"
    "    try: urllib.request.urlopen('http://api:8080/nearest?v=1,2,3&k=5', timeout=5).read()\n"
    "    except Exception: time.sleep(1)\n"
    "    time.sleep(0.2)\n"
)


# ---- arithmetic (unit-tested) -----------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of the values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def to_bytes(text: str) -> int:
    """A size as docker prints it (docker stats: 123.4MiB binary, 512kB decimal, 0B) or as one configures it (256m,
    14g: binary, docker's RAMInBytes); parsed by homeport's one size parser (plugins/module_utils/sizes.py)."""
    sizes = paths.sizes()
    printed = sizes.display_bytes(text)
    if printed is not None and re.search(r"[0-9]\s*(?:[kmgtp]?i?b)\s*$", text.strip(), re.IGNORECASE):
        return printed  # ends in B: docker printed it, the abbreviation says the base
    try:
        return sizes.ram_bytes(text, "size")
    except ValueError:
        raise ValueError(f"not a size: {text!r}") from None


def stats_usage(lines: str, names: set[str]) -> int:
    """Sum of the memory in use of the named containers from `docker stats --format '{{.Name}}\t{{.MemUsage}}'`
    (MemUsage is "USAGE / LIMIT")."""
    total = 0
    for line in lines.splitlines():
        name, _, usage = line.partition("\t")
        if name.strip() in names and usage:
            total += to_bytes(usage.split("/")[0])
    return total


def phase_summary(name: str, latencies_ms: list[float], errors: int, seconds: float, *, peak: int, limits: int) -> dict:
    n = len(latencies_ms)
    return {
        "phase": name,
        "requests": n,
        "errors": errors,
        "seconds": round(seconds, 1),
        "rps": round(n / seconds, 1) if seconds else 0.0,
        "p50_ms": _round(percentile(latencies_ms, 50)),
        "p95_ms": _round(percentile(latencies_ms, 95)),
        "p99_ms": _round(percentile(latencies_ms, 99)),
        "peak_mib": round(peak / 1024**2, 1),
        "limits_mib": round(limits / 1024**2, 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def error_percent(phase: dict) -> float:
    total = phase["requests"] + phase["errors"]
    return 100.0 * phase["errors"] / total if total else 100.0


def fits_budget(limits: int, extra: int, budget: int) -> bool:
    return limits + extra <= budget


def format_report(phases: list[dict], budget: int) -> str:
    head = f"{'phase':18s} {'clients':>7s} {'req':>7s} {'req/s':>7s} {'p50 ms':>7s} {'p95 ms':>7s} {'p99 ms':>7s}"
    head += f" {'errors':>6s} {'peak MiB':>9s} {'limits MiB':>10s} {'budget MiB':>10s}"
    rows = [head]
    for p in phases:
        rows.append(
            f"{p['phase']:18s} {p['clients']:7d} {p['requests']:7d} {p['rps']:7.1f} {_f(p['p50_ms'])} {_f(p['p95_ms'])}"
            f" {_f(p['p99_ms'])} {p['errors']:6d} {p['peak_mib']:9.1f} {p['limits_mib']:10.1f} {budget / 1024**2:10.0f}"
        )
    return "\n".join(rows)


def _f(value: float | None) -> str:
    return f"{'-':>7s}" if value is None else f"{value:7.1f}"


# ---- the target -------------------------------------------------------------------------------------------------
def sh(cmd: list[str], *, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=check, timeout=300)


def inner(container: str, *cmd: str, check: bool = True) -> str:
    return sh(["docker", "exec", container, *cmd], check=check).stdout


def stack_containers(container: str) -> dict[str, dict]:
    ids = inner(container, "docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}").split()
    if not ids:
        sys.exit(f"{container}: no running container of the stack {PROJECT} (deploy it first)")
    info = json.loads(inner(container, "docker", "inspect", *ids))
    return {c["Name"].lstrip("/"): c for c in info}


class Tunnel:
    """`ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:18080 root@TARGET` with a throwaway key and the target's host key
    pinned; the key is removed from the target's authorized_keys afterwards."""

    def __init__(self, container: str, remote_port: int):
        self.container = container
        self.dir = Path(tempfile.mkdtemp(prefix="homeport-load-"))
        key = self.dir / "id_ed25519"
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "homeport-load", "-f", str(key)])
        self.pub = (self.dir / "id_ed25519.pub").read_text().strip()
        inner(container, "sh", "-c", "mkdir -p -m 700 /root/.ssh && touch /root/.ssh/authorized_keys")
        sh(["docker", "exec", "-i", container, "sh", "-c", "cat >> /root/.ssh/authorized_keys"], stdin=self.pub + "\n")
        # the target's address on the outer engine's network (inside, docker0 of its own engine comes first)
        address = sh(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container]
        ).stdout.split()[0]
        hostkey = inner(container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()
        (self.dir / "known_hosts").write_text(f"{address} {hostkey[0]} {hostkey[1]}\n")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            ["ssh", "-N", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={self.dir / 'known_hosts'}", "-o", "ExitOnForwardFailure=yes",
             "-o", "ControlPath=none", "-L", f"127.0.0.1:{self.port}:127.0.0.1:{remote_port}", f"root@{address}"],
            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for _ in range(100):
            if self.proc.poll() is not None:
                raise RuntimeError(f"ssh tunnel to {address} failed: {self.proc.stderr.read().strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the ssh tunnel did not open within 10 s")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        script = f"grep -vxF {shlex_quote(self.pub)} /root/.ssh/authorized_keys > /root/.ssh/ak.new; "
        script += "cat /root/.ssh/ak.new > /root/.ssh/authorized_keys; rm -f /root/.ssh/ak.new"
        inner(self.container, "sh", "-c", script, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def shlex_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class MemorySampler(threading.Thread):
    """Samples `docker stats` of the target's engine until stopped; keeps the peak of the named containers' sum."""

    def __init__(self, container: str, names: set[str]):
        super().__init__(daemon=True)
        self.container, self.names, self.peak, self.samples = container, names, 0, 0
        self._done = threading.Event()

    def run(self) -> None:
        fmt = "{{.Name}}\t{{.MemUsage}}"
        while not self._done.is_set():
            out = sh(["docker", "exec", self.container, "docker", "stats", "--no-stream", "--format", fmt], check=False)
            if out.returncode == 0:
                self.peak = max(self.peak, stats_usage(out.stdout, self.names))
                self.samples += 1
            self._done.wait(0.5)

    def stop(self) -> int:
        self._done.set()
        self.join(timeout=30)
        return self.peak


def client(port: int, deadline: float, latencies: list[float], errors: list[str], lock: threading.Lock) -> None:
    rng = random.Random()  # noqa: S311 - query vectors, not secrets
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    mine, errs = [], []
    while time.monotonic() < deadline:
        path = (
            "/health"
            if rng.random() < 0.1
            else "/nearest?v={:.3f},{:.3f},{:.3f}&k=5".format(*rng.choices(range(10), k=3))
        )
        t0 = time.perf_counter()
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                errs.append(f"HTTP {resp.status} {path}: {body[:160].decode(errors='replace')}")
            else:
                mine.append((time.perf_counter() - t0) * 1000)
        except (OSError, http.client.HTTPException) as exc:
            errs.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()
    with lock:
        latencies.extend(mine)
        errors.extend(errs)


def run_phase(name: str, tunnel: Tunnel, container: str, names: set[str], *, limits: int, clients: int, seconds: float):
    sampler = MemorySampler(container, names)
    sampler.start()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + seconds
    threads = [
        threading.Thread(target=client, args=(tunnel.port, deadline, latencies, errors, lock)) for _ in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    peak = sampler.stop()
    summary = phase_summary(name, latencies, len(errors), elapsed, peak=peak, limits=limits)
    summary.update(clients=clients, memory_samples=sampler.samples, first_errors=errors[:5])
    return summary


def start_agents(container: str, api: dict, count: int) -> list[str]:
    network = next(iter(api["NetworkSettings"]["Networks"]))
    names = []
    for i in range(1, count + 1):
        name = f"{PROJECT}-loadagent-{i}"
        inner(container, "docker", "rm", "-f", name, check=False)
        inner(
            container, "docker", "run", "-d", "--name", name, "--network", network, "--memory", AGENT_MEMORY,
            "--label", AGENT_LABEL, "--entrypoint", "python3", api["Image"], "-c", AGENT_CODE,
        )  # fmt: skip
        names.append(name)
    return names


def deploy_own_target() -> str:
    """A target of bench/deploy.py with the test stack deployed (its first deploy), left running."""
    sys.path.insert(0, str(ROOT / "bench"))
    import deploy  # noqa: PLC0415 - bench/deploy.py, only for --deploy

    workdir = Path(tempfile.mkdtemp(prefix="homeport-bench-load-"))
    api_src = workdir / "api"
    shutil.copytree(ROOT / "tests" / "stack" / "api", api_src)
    inventory = deploy.write_inventory(workdir, api_src)
    deploy.start_target()
    deployer = deploy.Deployer(inventory, workdir)
    try:
        deployer.deploy([])
    except RuntimeError:
        deployer.mode = "ansible-playbook"
        deployer.deploy([])
    return deploy.TARGET


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--container", help="running target with the test stack deployed (e.g. stack-dind13)")
    where.add_argument("--deploy", action="store_true", help="start and deploy bench/deploy.py's target, then remove")
    ap.add_argument("--short", action="store_true", help="CI mode: 4 clients, 8 s per phase")
    ap.add_argument("--clients", type=int, help=f"concurrent clients (full: 16, at most {MAX_CLIENTS})")
    ap.add_argument("--seconds", type=float, help=f"seconds per phase (full: 60, at most {MAX_SECONDS})")
    ap.add_argument("--agents", type=int, default=2, help="agents added in the second phase (default 2)")
    ap.add_argument("--budget", default=BUDGET, help="memory budget (default 14g, homeport_memory_budget)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON as well")
    ap.add_argument(
        "--max-error-percent", type=float, default=0.0, help="fail above this share of failed requests (default 0)"
    )
    args = ap.parse_args(argv)
    mode = MODES["short" if args.short else "full"]
    clients = args.clients or mode["clients"]
    seconds = args.seconds or mode["seconds"]
    if not (1 <= clients <= MAX_CLIENTS and 0 < seconds <= MAX_SECONDS and 0 <= args.agents <= 4):
        print(f"refused: --clients 1..{MAX_CLIENTS}, --seconds up to {MAX_SECONDS}, --agents 0..4", file=sys.stderr)
        return 3
    try:
        budget = to_bytes(args.budget)
    except ValueError as exc:
        print(f"refused: --budget {exc}", file=sys.stderr)
        return 3

    container = deploy_own_target() if args.deploy else args.container
    agents: list[str] = []
    tunnel = None
    try:
        stack = stack_containers(container)
        limits = sum(c["HostConfig"]["Memory"] or 0 for c in stack.values())
        api = next(c for c in stack.values() if c["Config"]["Labels"].get("com.docker.compose.service") == "api")
        tunnel = Tunnel(container, API_PORT)
        print(
            f"target {container}: stack {', '.join(sorted(stack))}, limits {limits / 1024**2:.0f} MiB, budget "
            f"{budget / 1024**2:.0f} MiB; {clients} clients x {seconds:g} s per phase over ssh -L",
            flush=True,
        )
        phases = [run_phase("stack", tunnel, container, set(stack), limits=limits, clients=clients, seconds=seconds)]
        if args.agents:
            extra = args.agents * to_bytes(AGENT_MEMORY)
            if not fits_budget(limits, extra, budget):
                print(f"refused: {args.agents} agents of {AGENT_MEMORY} do not fit the budget", file=sys.stderr)
                return 3
            agents = start_agents(container, api, args.agents)
            time.sleep(1)
            names = set(stack) | set(agents)
            phases.append(
                run_phase(
                    f"stack + {args.agents} agents",
                    tunnel,
                    container,
                    names,
                    limits=limits + extra,
                    clients=clients,
                    seconds=seconds,
                )
            )
    finally:
        if tunnel:
            tunnel.close()
        for name in agents:
            inner(container, "docker", "rm", "-f", name, check=False)
        if args.deploy:
            sh(["docker", "rm", "-f", container], check=False)
    print(format_report(phases, budget))
    if args.json:
        print(json.dumps({"budget_mib": budget / 1024**2, "phases": phases}, indent=2))
    failed = [
        p
        for p in phases
        if not p["requests"] or error_percent(p) > args.max_error_percent or p["peak_mib"] * 1024**2 > budget
    ]
    for p in failed:
        print(
            f"FAILED {p['phase']}: {p['errors']} error(s) {p['first_errors']}, peak {p['peak_mib']} MiB",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
