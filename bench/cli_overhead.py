"""The homeport CLI's own overhead: `homeport bootstrap` against plain `ansible-playbook` on the same content with
the same settings (homeport.runner.build_env plus the fact cache), on this machine (local connection, so the
network does not blur the difference).

Content: playbooks/site.yml with `homeport_roles: []` (the preflight role only: it runs on any Debian box
without changing it), so what differs between the two is only what homeport adds around ansible-playbook:
Python start-up and imports (typer, rich, ansible-runner), ansible-runner's event stream and artifacts, and the
event handler. Run on its own: `python bench/cli_overhead.py --reps 3`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _env_without_ansible() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:3])} failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        )
    return seconds


def measure(reps: int) -> dict:
    """Median seconds of `homeport bootstrap` and of `ansible-playbook site.yml` (same env), alternating."""
    sys.path.insert(0, str(ROOT / "src"))
    from homeport import runner  # noqa: PLC0415

    homeport_bin = shutil.which("homeport") or str(Path(sys.executable).parent / "homeport")
    with tempfile.TemporaryDirectory(prefix="homeport-cli-bench-") as tmp:
        work = Path(tmp)
        inventory = work / "hosts.yml"
        host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "homeport_roles": []}
        inventory.write_text(yaml.safe_dump({"homeport": {"hosts": {"local": host}}}))
        base = _env_without_ansible()
        base["HOMEPORT_HOME"] = str(work / ".homeport")
        base["XDG_CONFIG_HOME"] = str(work / "config")
        base.pop("HOMEPORT_VAULT_PASSWORD", None)
        # the plain run gets exactly the environment the runner builds, and the same fact cache
        plain_env = {**base, **runner.build_env(work / "plain-runner")}
        plain_env["ANSIBLE_CACHE_PLUGIN"] = "jsonfile"
        plain_env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(work / "plain-facts")
        if Path(homeport_bin).exists():
            cli = [homeport_bin]
        else:  # not installed as a console script: the module does the same
            cli = [sys.executable, "-m", "homeport"]
            base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), base.get("PYTHONPATH")]))
        cli_cmd = [*cli, "bootstrap", "-i", str(inventory)]
        plain_cmd = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "site.yml")]
        # one warm-up each (fact cache filled, imports in the page cache), then alternate
        _timed(cli_cmd, base, work)
        _timed(plain_cmd, plain_env, work)
        cli_times, plain_times = [], []
        for _ in range(reps):
            cli_times.append(_timed(cli_cmd, base, work))
            plain_times.append(_timed(plain_cmd, plain_env, work))
    cli_s, plain_s = statistics.median(cli_times), statistics.median(plain_times)
    return {
        "homeport_bootstrap_seconds": round(cli_s, 2),
        "ansible_playbook_seconds": round(plain_s, 2),
        "overhead_seconds": round(cli_s - plain_s, 2),
        "overhead_percent": round(100 * (cli_s - plain_s) / plain_s, 1),
        "reps": reps,
    }


def print_result(result: dict) -> None:
    print(
        f"cli overhead: homeport bootstrap {result['homeport_bootstrap_seconds']:.2f} s vs ansible-playbook "
        f"{result['ansible_playbook_seconds']:.2f} s (same content and settings, local connection, median of "
        f"{result['reps']}): {result['overhead_seconds']:+.2f} s ({result['overhead_percent']:+.1f} %)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description="homeport CLI overhead against plain ansible-playbook")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    print_result(measure(args.reps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
