"""`make demo` (= `homeport sandbox demo`) end to end on a sandbox of its own, then the quick verbs against the
sandbox's real engine and the stack the demo deployed.

The demo: sandbox up -> bootstrap -> deploy the test stack (PostgreSQL + pgvector, the API; both images shipped
from this machine's engine with stack_ship_images) -> status (containers healthy, memory against the budget) -> a
backup. Run twice (the second run last, after the verbs): it changes nothing (bootstrap and deploy changed=0, the
same containers, not restarted) and nothing is shipped again (same image IDs).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sandbox_checks
from conftest import missing
from typer.testing import CliRunner

pytestmark = [pytest.mark.docker, pytest.mark.slow]
NAME = "homeport-sandbox-demotest"
HOMEPORT = str(Path(sys.executable).parent / "homeport")


def _docker_reachable() -> bool:
    return bool(shutil.which("docker")) and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not _docker_reachable():
        missing("a reachable Docker engine", ".ci/run starts one")
    home = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(home)
        mp.setenv("HOMEPORT_HOME", str(home / ".homeport"))
        mp.setenv("XDG_CONFIG_HOME", str(home / "config"))
        mp.delenv("HOMEPORT_VAULT_PASSWORD", raising=False)
        mp.setenv("HOMEPORT_SANDBOX_NAME", NAME)
        from homeport import cli, sandbox

        importlib.reload(sandbox)  # picks up the container name
        mp.setattr(cli, "sandbox_host", sandbox)
        runner = CliRunner()
        runs: list[dict] = []

        def run_demo() -> dict:
            r = runner.invoke(cli.app, ["sandbox", "demo", "--json"])
            assert r.exit_code == 0, r.output[-6000:]
            runs.append(json.loads(r.stdout))
            for step in runs[-1]["steps"]:  # the per-step times (shown with pytest -s)
                print(f"demo run {len(runs)}: {step['seconds']:7.1f} s  changed={step['changed']}  {step['name']}")
            return runs[-1]

        env = {**os.environ, "HOMEPORT_HOME": str(home / ".homeport"), "XDG_CONFIG_HOME": str(home / "config")}
        try:
            runner.invoke(cli.app, ["sandbox", "down"])  # a sandbox left by an interrupted run holds other secrets
            run_demo()
            yield {"runs": runs, "run_demo": run_demo, "env": env, "home": home, "cli": cli, "runner": runner}
        finally:
            runner.invoke(cli.app, ["sandbox", "down"])
            mp.delenv("HOMEPORT_SANDBOX_NAME")
            importlib.reload(sandbox)
    assert subprocess.run(["docker", "inspect", NAME], capture_output=True).returncode != 0


def _steps(run: dict) -> dict:
    return {s["name"].split(" (")[0]: s for s in run["steps"]}


def _homeport(demo, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [HOMEPORT, *args], capture_output=True, text=True, env=demo["env"], cwd=demo["home"], timeout=120, **kw
    )


def test_ps_shows_the_stack_with_health_memory_and_restarts(demo):
    r = _homeport(demo, "ps", "--sandbox", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["project"] == "demo"
    rows = {c["service"]: c for c in doc["containers"]}
    assert set(rows) == {"api", "db"}
    assert all(c["state"] == "running" and c["health"] == "healthy" for c in rows.values()), rows
    assert (rows["db"]["memory_limit_mb"], rows["api"]["memory_limit_mb"]) == (512.0, 256.0)
    assert all(0 < c["memory_usage_mb"] < c["memory_limit_mb"] for c in rows.values()), rows
    assert all(c["restarts"] == 0 for c in rows.values())
    table = _homeport(demo, "ps", "--sandbox")
    assert table.returncode == 0 and "demo-api-1" in table.stdout and "healthy" in table.stdout


def test_exec_runs_in_the_service_and_passes_the_exit_code(demo):
    r = _homeport(
        demo, "exec", "db", "--sandbox", "--", "psql", "-U", "brain", "-d", "brain", "-tAc",
        "select extname from pg_extension where extname = 'vector'",
    )  # fmt: skip
    assert (r.returncode, r.stdout.strip()) == (0, "vector"), r.stderr  # the API created the pgvector extension
    r = _homeport(demo, "exec", "api", "--sandbox", "--", "sh", "-c", "echo in-api; exit 7")
    assert (r.returncode, r.stdout.strip()) == (7, "in-api")


def test_unknown_service_is_refused_with_the_known_ones(demo):
    for verb in (
        ["logs", "web", "--sandbox"],
        ["restart", "web", "--sandbox"],
        ["exec", "web", "--sandbox", "--", "true"],
    ):
        r = _homeport(demo, *verb)  # options before `--`: what follows it is the command
        assert r.returncode == 3, (verb, r.stdout, r.stderr)
        assert "unknown service 'web' in the stack 'demo'; known services: api, db" in " ".join(r.stderr.split())


def test_logs_and_restart(demo):
    r = _homeport(demo, "logs", "api", "--sandbox", "--tail", "3")
    assert r.returncode == 0, r.stderr
    assert 0 < len(r.stdout.splitlines()) <= 3  # the API's request log (its stderr, merged in order)
    before = json.loads(_homeport(demo, "ps", "--sandbox", "--json").stdout)
    r = _homeport(demo, "restart", "api", "--sandbox")
    assert r.returncode == 0, r.stderr
    after = json.loads(_homeport(demo, "ps", "--sandbox", "--json").stdout)
    started = {c["service"]: c["started_at"] for c in before["containers"]}
    restarted = {c["service"]: c["started_at"] for c in after["containers"]}
    assert restarted["api"] != started["api"] and restarted["db"] == started["db"]
    since = _homeport(demo, "logs", "db", "--sandbox", "--since", "1s")
    assert since.returncode == 0, since.stderr


def test_logs_follow_ends_cleanly_on_ctrl_c(demo):
    proc = subprocess.Popen(
        [HOMEPORT, "logs", "api", "--sandbox", "-f", "--tail", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo["env"],
        cwd=demo["home"],
        start_new_session=True,  # its own process group: the terminal's Ctrl-C reaches homeport and ssh alike
    )
    assert proc.stdout.readline()  # following
    remote = f"docker exec {NAME} pgrep -f 'docker logs --follow'"
    assert subprocess.run(remote, shell=True, capture_output=True).returncode == 0
    os.killpg(proc.pid, signal.SIGINT)
    rc = proc.wait(timeout=15)
    stderr = proc.stderr.read()
    assert rc == 0 and "Traceback" not in stderr, stderr
    deadline = time.monotonic() + 10
    while subprocess.run(remote, shell=True, capture_output=True).returncode == 0:  # the remote side ended too
        assert time.monotonic() < deadline, "docker logs --follow still runs on the host"
        time.sleep(0.5)


def test_demo_does_the_main_job_and_reruns_change_nothing(demo):
    first = _steps(demo["runs"][0])
    second = _steps(demo["run_demo"]())  # last: it compares the containers just before and after its deploy
    assert list(first) == ["images", "sandbox up", "bootstrap", "deploy the stack", "status", "backup run", "report"]
    assert first["report"]["ok"] and first["report"]["detail"].startswith("10 targets ("), first["report"]
    assert 'id="availability"' in Path(first["report"]["detail"].split("page: ")[1]).read_text()
    assert all(s["ok"] for s in first.values()), first
    assert first["deploy the stack"]["changed"] > 0
    assert first["status"]["detail"].startswith("2/2 containers healthy; limits 768.0 MiB of the 14336 MiB budget")
    for name in ("bootstrap", "deploy the stack"):
        assert second[name]["changed"] == 0, (name, second[name])
    assert second["deploy the stack"]["detail"] == "stack untouched (same containers, not restarted)"
    assert second["status"]["ok"] and second["status"]["detail"].startswith("2/2 containers healthy")
    assert second["images"]["detail"] == "all present"
    # the printed times: one figure per step
    assert all(isinstance(s["seconds"], float) for s in second.values())

    # the shipped images: the host has exactly the controller's image IDs (the second deploy sent nothing)
    for ref in ("homeport/pgvector:17", "homeport/testapi:1"):
        local = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True)
        remote = subprocess.run(
            ["docker", "exec", NAME, "docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True
        )
        assert remote.stdout.strip() == local.stdout.strip() != ""


def test_the_sandbox_keeps_ssh_strict_and_reruns_ask_systemd_once(demo):
    """What test_sandbox::test_sandbox_bootstrap_is_idempotent checks (the compat lane runs it on the oldest
    versions), here on the demo's sandbox after its no-change bootstrap (the second demo run, above)."""
    assert len(demo["runs"]) == 2, "runs after test_demo_does_the_main_job_and_reruns_change_nothing"
    sandbox_checks.assert_strict_ssh_and_one_master(demo["home"] / ".homeport" / "sandbox")
    ssh = _homeport(demo, "sandbox", "ssh", "--", "sudo", "-n", "true")
    assert ssh.returncode == 0, ssh.stderr
    sandbox_checks.assert_systemd_asked_once(demo["home"] / ".homeport" / "artifacts")


def _deploy_with_compose_file(
    demo, tmp_path: Path, compose: str, cli_args: tuple[str, ...] = (), **stack_vars
) -> subprocess.CompletedProcess:
    """`homeport deploy` of the demo stack plus one compose file (issue 31), through an inventory of its own: the
    sandbox's, with stack_compose_files and the given variables; ``cli_args`` are more options of the command."""
    import yaml

    inventory = yaml.safe_load((demo["home"] / ".homeport" / "sandbox" / "inventory.yml").read_text())
    (tmp_path / "extra.yaml").write_text(compose)
    inventory["homeport"]["vars"].update({"stack_compose_files": ["extra.yaml"], **stack_vars})
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(yaml.safe_dump(inventory, sort_keys=False))
    hosts.chmod(0o600)
    t0 = time.monotonic()
    r = subprocess.run(
        [HOMEPORT, "deploy", "--inventory", str(hosts), *cli_args],
        capture_output=True, text=True, env=demo["env"], cwd=demo["home"], timeout=600,
    )  # fmt: skip
    print(
        f"deploy {' '.join(cli_args)} with {sorted(yaml.safe_load(compose)['services'])}: "
        f"{time.monotonic() - t0:.1f} s, rc {r.returncode}"
    )
    return r


def _current_release() -> str:
    return subprocess.run(
        ["docker", "exec", NAME, "readlink", "/var/lib/homeport/stack/current"], capture_output=True, text=True
    ).stdout.strip()


def _demo_containers(demo) -> dict:
    """service -> container of the demo project (homeport ps), asserting api and db run healthy."""
    doc = json.loads(_homeport(demo, "ps", "--sandbox", "--json").stdout)
    rows = {c["service"]: c for c in doc["containers"]}
    assert all(rows[s]["state"] == "running" and rows[s]["health"] == "healthy" for s in ("api", "db")), rows
    return rows


BASE = "image: homeport/pgvector:17\n    pull_policy: never\n    mem_limit: 32m\n    stop_grace_period: 1s\n"
ONE_SHOT = (
    "services:\n  migrate:\n    " + BASE + "    entrypoint: [sh, -c, {migrate}]\n    restart: 'no'\n"
    "  web:\n    " + BASE + "    entrypoint: [sh, -c, 'exec sleep 3600']\n    restart: unless-stopped\n"
    "    depends_on: {{migrate: {{condition: service_completed_successfully}}}}\n"
)


def test_a_crash_looping_compose_service_fails_the_release_and_rolls_back(demo, tmp_path):
    """Issue 31, defect 1: up --wait counts a restarting container as running; the deploy exited 0 and the broken
    release became current."""
    before = _current_release()
    assert before.startswith("releases/"), before
    compose = (
        "services:\n  crash:\n    " + BASE
        + "    entrypoint: [sh, -c, 'echo crash-loop-marker $$(printf \"\\033[2K\"); exit 1']\n"
        + "    restart: unless-stopped\n"
    )  # fmt: skip
    r = _deploy_with_compose_file(demo, tmp_path, compose, stack_liveness_seconds=3, stack_wait_timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode not in (0, 3), out[-4000:]
    assert "service crash is crash-looping" in " ".join(out.split()), out[-4000:]
    assert "crash-loop-marker" in out and "\x1b[2K" not in out  # its last log lines, control codes escaped
    assert "was restored and is serving again" in " ".join(out.split())
    assert _current_release() == before
    assert "crash" not in _demo_containers(demo)  # the previous release serves, without the broken service


def test_stack_wait_timeout_bounds_the_whole_wait_then_rolls_back(demo, tmp_path):
    """Issue 31, defect 2: a one-shot that never ends hung `up` 17 minutes with stack_wait_timeout: 90 (compose
    waits for depends_on conditions without a bound)."""
    before = _current_release()
    t0 = time.monotonic()
    compose = ONE_SHOT.format(migrate="'exec sleep 3600'")
    r = _deploy_with_compose_file(demo, tmp_path, compose, stack_liveness_seconds=3, stack_wait_timeout=20)
    seconds = time.monotonic() - t0
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode not in (0, 3), out[-4000:]
    assert "not ready within stack_wait_timeout (20 s" in out and "migrate" in out, out[-4000:]
    assert seconds < 150, seconds  # the bound, the rollback and the run's own start, not 17 minutes
    assert _current_release() == before
    leftover = subprocess.run(["docker", "exec", NAME, "pgrep", "-f", "compose.*up"], capture_output=True)
    assert leftover.returncode != 0, "docker compose up still runs on the host"
    assert not {"migrate", "web"} & set(_demo_containers(demo))


# issue 31, defects 4 and 5: a compose service built on the host from a context of stack_source_dirs (synced to
# <project>/src/app), FROM an image the demo shipped (the sandbox reaches no registry)
BUILT = (
    "services:\n  built:\n    build: ./src/app\n    mem_limit: 32m\n    stop_grace_period: 1s\n"
    "    entrypoint: [sh, -c, 'exec sleep 3600']\n    restart: unless-stopped\n"
)


def _build_context(tmp_path: Path, marker: str) -> dict:
    """The build context `app` (its marker file says which source it was built from) as stack variables."""
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "Dockerfile").write_text("FROM homeport/pgvector:17\nCOPY marker /marker\n")
    (app / "marker").write_text(marker + "\n")
    return {"stack_source_dirs": [{"name": "app", "src": str(app)}], "stack_source_sync": "copy"}


def _host_state(project_dir: str) -> str:
    """What a check run must leave as it is: the project directory's files (path, type, mode, size, content hash),
    the engine's containers (ID, name, state, start time, image) and images, the staging directories in /tmp."""
    script = (
        f"cd {project_dir} 2>/dev/null && find . -printf '%p %y %m %s\\n' | sort"
        f" && find . -type f -exec sha256sum {{}} + | sort; echo ---;"
        " docker ps -aq | xargs -r docker inspect -f"
        " '{{.Id}} {{.Name}} {{.State.Status}} {{.State.StartedAt}} {{.Image}}' | sort;"
        " docker images -q --no-trunc | sort; ls -a /tmp | grep staging || true"
    )
    r = subprocess.run(["docker", "exec", NAME, "sh", "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_check_judges_the_staged_release_on_a_first_deploy_and_with_an_added_compose_file(demo, tmp_path):
    """Issue 31, defect 4: `homeport deploy --check` ran compose's dry run in the live project directory - "is not a
    directory" before the first deploy, "Cannot find Compose file overrides/..." when the deploy adds one - then said
    the previous release "was restored". It judges the staged release and changes nothing on the host."""
    stack = _build_context(tmp_path, "one")
    first_dir = "/var/lib/homeport/i31-first"  # a project this host never had: a first deploy
    before = {d: _host_state(d) for d in ("/var/lib/homeport/stack", first_dir)}
    cases = {
        "first deploy": {"stack_project_dir": first_dir, "stack_project_name": "i31first"},
        "an added compose file": {},
    }
    runs = {
        case: _deploy_with_compose_file(
            demo, tmp_path, BUILT, ("--check", "--json"), stack_liveness_seconds=3, **stack, **extra
        )
        for case, extra in cases.items()
    }  # fmt: skip

    def said(r: subprocess.CompletedProcess) -> str:
        try:
            return "\n".join(f"{f['task']}: {f['message']}" for f in json.loads(r.stdout)["failures"])
        except (ValueError, KeyError):
            return (r.stdout + r.stderr)[-2500:]

    problems = [
        f"{case}: exit {r.returncode}: {said(r)}"
        for case, r in runs.items()
        if r.returncode != 0 or "restored" in r.stdout + r.stderr
    ]
    assert not problems, "\n".join(problems)
    for case, r in runs.items():
        record = json.loads(r.stdout)
        assert record["check_mode"] and not record["failures"], (case, record["failures"])
        tasks = {c["task"] for c in record["changes"]}
        # the dry run of the staged release would create the new service (and build its image)
        assert "Build, start and wait for healthy services (check mode)" in tasks, (case, sorted(tasks))
    # the demo stack as deployed: the dry run of its staged release (other paths, same files) would change nothing
    same = _homeport(demo, "deploy", "--sandbox", "--check", "--json")
    assert same.returncode == 0, same.stdout[-3000:] + same.stderr[-2000:]
    unchanged = {c["task"] for c in json.loads(same.stdout)["changes"]}
    assert "Build, start and wait for healthy services (check mode)" not in unchanged, unchanged
    after = {d: _host_state(d) for d in before}
    assert after == before
    assert "No such file" not in after[first_dir] and after[first_dir].startswith("---"), after[first_dir]


def test_a_changed_build_context_rebuilds_the_image_and_an_unchanged_one_does_not(demo, tmp_path):
    """Issue 31, defect 5: `up` builds an image only when it is missing, so a build service whose source changed kept
    its old image. A changed context is built again and the container recreated; an unchanged one is left alone."""

    def built() -> tuple[str, str, str]:
        """(image ID, container ID, the marker in the running container) of the service `built`."""
        cid = subprocess.run(
            ["docker", "exec", NAME, "docker", "ps", "-q", "--no-trunc", "--filter",
             "label=com.docker.compose.service=built"], capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        image = subprocess.run(
            ["docker", "exec", NAME, "docker", "inspect", "-f", "{{.Image}}", cid], capture_output=True, text=True
        ).stdout.strip()
        marker = subprocess.run(
            ["docker", "exec", NAME, "docker", "exec", cid, "cat", "/marker"], capture_output=True, text=True
        ).stdout.strip()
        return image, cid, marker

    def deploy(marker: str, *cli_args: str) -> subprocess.CompletedProcess:
        r = _deploy_with_compose_file(
            demo, tmp_path, BUILT, cli_args, stack_liveness_seconds=3, **_build_context(tmp_path, marker)
        )  # fmt: skip
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        return r

    deploy("one")
    image1, container1, marker1 = built()
    assert marker1 == "one" and image1.startswith("sha256:"), (image1, container1, marker1)
    others = {s: c["started_at"] for s, c in _demo_containers(demo).items() if s in ("api", "db")}

    deploy("two")  # the source changed: a new image, a new container
    image2, container2, marker2 = built()
    assert marker2 == "two", "the old image kept serving after its build context changed"
    assert image2 != image1 and container2 != container1

    again = json.loads(deploy("two", "--json").stdout)  # nothing changed: nothing built, nothing restarted
    assert again["recap"]["sandbox"]["changed"] == 0, again["changes"]
    assert built() == (image2, container2, "two")
    rows = _demo_containers(demo)
    assert {s: rows[s]["started_at"] for s in others} == others


def test_a_one_shot_migration_runs_once_and_the_deploy_succeeds(demo, tmp_path):
    """Issue 31, defect 2: restart "no" was refused after staging, even for a one-shot another service waits for.
    Then a plain deploy brings the demo stack back (the later tests expect it)."""
    compose = ONE_SHOT.format(migrate="'echo migrated'")
    r = _deploy_with_compose_file(demo, tmp_path, compose, stack_liveness_seconds=3, stack_wait_timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    rows = _demo_containers(demo)
    assert rows["web"]["state"] == "running", rows
    status = subprocess.run(
        ["docker", "exec", NAME, "docker", "ps", "-a", "--filter", "label=com.docker.compose.service=migrate",
         "--format", "{{.Status}}"], capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert status.startswith("Exited (0)") and len(status.splitlines()) == 1, status
    started = {s: rows[s]["started_at"] for s in ("api", "db")}

    t0 = time.monotonic()
    r = subprocess.run(
        [HOMEPORT, "deploy", "--sandbox"],
        capture_output=True,
        text=True,
        env=demo["env"],
        cwd=demo["home"],
        timeout=600,
    )
    print(f"plain deploy back to the demo stack: {time.monotonic() - t0:.1f} s")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    rows = _demo_containers(demo)
    assert set(rows) == {"api", "db"}, rows
    print("api/db restarted by the two deploys:", {s: rows[s]["started_at"] != started[s] for s in started})


def test_drift_by_tag_checks_that_role_only(demo):
    """Last in this file: it leaves drift behind."""

    def drift(tag: str) -> tuple[int, str]:
        r = _homeport(demo, "drift", "--sandbox", "--tags", tag, "--json")
        return r.returncode, r.stdout + r.stderr[-2000:]

    sandbox_checks.assert_drift_by_tag(NAME, drift)
