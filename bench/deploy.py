"""homeport deploy bench: time from `homeport deploy <service>` to healthy, for one changed service.

Starts its own docker-in-docker target (homeport/dind:13, the capabilities of ENVIRONMENT.md, systemd as PID 1),
loads the test stack's images into it (homeport/pgvector:17, homeport/stackbase:13), deploys the small real stack of
tests/stack (PostgreSQL + pgvector and the vector API built inside the target) once, then for each repetition
changes the API's source (a copy in a temp dir) and times

  deploy-changed    `homeport deploy api` (sync, build, recreate, wait until healthy) - the figure asked for
  deploy-unchanged  the same command again with nothing to change (the "is it still right?" run)

and checks after each that /health answers with the new build. Uses the homeport CLI (ansible-runner) when it
works; otherwise (CLI not installed or failing before the playbook runs) ansible-playbook playbooks/deploy.yml
with the repository's ansible.cfg settings. Prints the figures in seconds. Not part of `make test`.

  python bench/deploy.py [--reps 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET = "bench-stack-dind13"
IMAGES = ["homeport/pgvector:17", "homeport/stackbase:13"]
# tmpfs mounts of the target container (its own /run, /tmp and Docker storage)
TMPFS = ["/run", "/run/lock", "/tmp:exec", "/var/lib/docker:exec"]  # noqa: S108


def sh(cmd: list[str] | str, *, check: bool = True, capture: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=capture, shell=isinstance(cmd, str), **kw)


def start_target() -> None:
    sh(["docker", "rm", "-f", TARGET], check=False)
    sh(
        [
            "docker", "run", "-d", "--name", TARGET, "--hostname", TARGET,
            "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE", "--cap-add", "MKNOD",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            *[arg for fs in TMPFS for arg in ("--tmpfs", fs)],
            "homeport/dind:13", "/lib/systemd/systemd",
        ]
    )  # fmt: skip
    for _ in range(60):
        if sh(["docker", "exec", TARGET, "docker", "info"], check=False).returncode == 0:
            break
        time.sleep(1)
    else:
        sys.exit(f"{TARGET}: its Docker engine did not start")
    for image in IMAGES:
        sh(f"docker save {image} | docker exec -i {TARGET} docker load")


def write_inventory(workdir: Path, api_src: Path) -> Path:
    stack_vars = json.loads(json.dumps(_yaml_load(ROOT / "tests" / "stack" / "vars.yml")))
    host = {
        "ansible_connection": "community.docker.docker",
        "ansible_host": TARGET,
        "ansible_python_interpreter": "/usr/bin/python3",
        "homeport_admin_user": "root",
        **stack_vars,
        "stack_source_dirs": [{"name": "api", "src": str(api_src)}],
    }
    inv = workdir / "inventory" / "hosts.yml"
    inv.parent.mkdir(parents=True)
    inv.write_text(json.dumps({"homeport": {"hosts": {TARGET: host}}}, indent=2), encoding="utf-8")
    return inv


def _yaml_load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


class Deployer:
    """Runs a deploy through the homeport CLI, or ansible-playbook with the same settings as a fallback."""

    def __init__(self, inventory: Path, workdir: Path):
        self.inventory = inventory
        self.workdir = workdir
        self.mode = "homeport"
        self.log = workdir / "deploy.log"

    def _cmd(self, services: list[str]) -> tuple[list[str], dict]:
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", HOMEPORT_HOME=str(self.workdir / ".homeport"))
        if self.mode == "homeport":
            # the installed CLI, or the one in this checkout (python -m homeport with src/ on the path)
            if shutil.which("homeport"):
                return ["homeport", "deploy", *services, "--inventory", str(self.inventory)], env
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
            return [sys.executable, "-m", "homeport", "deploy", *services, "--inventory", str(self.inventory)], env
        env.update(
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
            ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"),
            ANSIBLE_PIPELINING="True",
        )
        extra = json.dumps({"stack_services_selected": services})
        return ["ansible-playbook", "-i", str(self.inventory), "-e", extra, str(ROOT / "playbooks" / "deploy.yml")], env

    def deploy(self, services: list[str]) -> float:
        cmd, env = self._cmd(services)
        start = time.monotonic()
        proc = subprocess.run(cmd, env=env, cwd=self.workdir, text=True, capture_output=True, check=False)
        elapsed = time.monotonic() - start
        with self.log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} deploy failed (rc={proc.returncode}); see {self.log}")
        return elapsed


def health_version() -> str:
    out = sh(["docker", "exec", TARGET, "curl", "-fsS", "http://127.0.0.1:18080/health"]).stdout
    return json.loads(out)["version"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="changed-service deploys to time (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the target container afterwards")
    args = ap.parse_args()
    link = ROOT / ".cache" / "collections" / "ansible_collections" / "homeport" / "homeport"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(ROOT, target_is_directory=True)

    workdir = Path(tempfile.mkdtemp(prefix="homeport-bench-deploy-"))
    api_src = workdir / "api"
    shutil.copytree(ROOT / "tests" / "stack" / "api", api_src)
    inventory = write_inventory(workdir, api_src)
    results: dict[str, list[float]] = {"deploy-changed": [], "deploy-unchanged": []}
    try:
        t0 = time.monotonic()
        start_target()
        print(f"target {TARGET} up with images loaded in {time.monotonic() - t0:.1f}s", flush=True)
        d = Deployer(inventory, workdir)
        try:
            first = d.deploy([])
        except RuntimeError as exc:
            if d.mode != "homeport":
                raise
            print(f"homeport CLI deploy failed ({exc}); falling back to ansible-playbook", flush=True)
            d.mode = "ansible-playbook"
            first = d.deploy([])
        print(f"first deploy of the whole stack ({d.mode}, builds the API image): {first:.1f}s", flush=True)
        for rep in range(1, args.reps + 1):
            version = f"bench-{rep}"
            (api_src / "api.py").write_text(
                (api_src / "api.py").read_text(encoding="utf-8") + f"\n# bench change {rep}\n", encoding="utf-8"
            )
            inv = json.loads(inventory.read_text(encoding="utf-8"))
            inv["homeport"]["hosts"][TARGET]["stack_services"]["api"]["environment"]["API_VERSION"] = version
            inventory.write_text(json.dumps(inv, indent=2), encoding="utf-8")
            changed = d.deploy(["api"])
            served = health_version()
            if served != version:
                raise RuntimeError(f"after the deploy /health serves version {served!r}, expected {version!r}")
            unchanged = d.deploy(["api"])
            results["deploy-changed"].append(changed)
            results["deploy-unchanged"].append(unchanged)
            print(f"rep {rep}: deploy-changed {changed:.1f}s (healthy, serves {served}), "
                  f"deploy-unchanged {unchanged:.1f}s", flush=True)  # fmt: skip
    finally:
        if not args.keep:
            sh(["docker", "rm", "-f", TARGET], check=False)
    print(f"\nhomeport deploy api -> healthy, one changed service ({d.mode}, log {d.log}):")
    for name, values in results.items():
        print(
            f"  {name:17s} median {statistics.median(values):6.1f}s  min {min(values):6.1f}s  "
            f"max {max(values):6.1f}s  (n={len(values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
