"""The swarm role's release record (plugins/filter/swarm.py): `homeport deploy SERVICE...` deploys only the
selected services and keeps a stack file that records what runs (the others' entries unchanged), and
`homeport rollback` goes back to the newest earlier copy of that file that differs from the current one, with a
plain reason when there is none. The molecule scenario `swarm` runs both against a real swarm."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))
_spec = importlib.util.spec_from_file_location("swarm_filter_release", ROOT / "plugins" / "filter" / "swarm.py")
sw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sw)

STACK_VARS = yaml.safe_load((ROOT / "tests" / "stack" / "vars.yml").read_text())
SERVICES = {
    "db": STACK_VARS["stack_services"]["db"],
    "api": {**STACK_VARS["stack_services"]["api"], "source": "", "image": "homeport/testapi:1"},
}
OPTS = {"publish_ports": True, "env_from_secrets": {"api": ["python3", "/app/api.py"]}}
NAMES_V1 = {"db-postgres_password": "s_db_v1", "api-database_password": "s_api_db_v1", "api-api_token": "s_api_tok_v1"}


def _release(api_version: str, names: dict) -> dict:
    services = {**SERVICES, "api": {**SERVICES["api"], "environment": {"API_VERSION": api_version}}}
    return sw.swarm_stack(services, "teststack", OPTS, names)


def test_record_of_a_whole_stack_deploy_is_the_deployed_file():
    deployed = _release("2", NAMES_V1)
    assert sw.swarm_stack_record(_release("1", NAMES_V1), deployed, []) is deployed


def test_record_of_a_selected_deploy_replaces_only_the_selected_services():
    previous = yaml.safe_load(yaml.safe_dump(_release("1", NAMES_V1)))  # as read back from the file
    # the API's secrets rotated (new versions); the database's were not created again (not selected)
    only_api = {"api": {**SERVICES["api"], "environment": {"API_VERSION": "2"}}}
    deployed = sw.swarm_stack(
        only_api, "teststack", OPTS, {"api-database_password": "s_api_db_v2", "api-api_token": "s_api_tok_v2"}
    )
    record = sw.swarm_stack_record(previous, deployed, ["api"])
    assert record["services"]["api"] == deployed["services"]["api"]
    assert record["services"]["db"] == previous["services"]["db"]
    assert record["secrets"] == {
        "db-postgres_password": {"external": True, "name": "s_db_v1"},  # what the database still runs with
        "api-database_password": {"external": True, "name": "s_api_db_v2"},
        "api-api_token": {"external": True, "name": "s_api_tok_v2"},
    }
    assert record["volumes"] == {"pgdata": {}} and set(record["networks"]) == {"homeport"}
    assert "db" not in deployed["services"]  # docker stack deploy (no prune) leaves the database alone


def test_record_of_a_selected_first_deploy_holds_only_what_was_deployed():
    deployed = sw.swarm_stack({"api": SERVICES["api"]}, "teststack", OPTS, NAMES_V1)
    record = sw.swarm_stack_record(None, deployed, ["api"])
    assert set(record["services"]) == {"api"}
    assert set(record["secrets"]) == {"api-database_password", "api-api_token"}


def _copy(path: str, checksum: str, mtime: float) -> dict:
    return {"path": path, "checksum": checksum, "mtime": mtime}


def test_previous_release_is_the_newest_copy_that_differs():
    current = {"exists": True, "checksum": "c3"}
    copies = [_copy("/s/t.yaml.1~", "c1", 1.0), _copy("/s/t.yaml.2~", "c2", 2.0), _copy("/s/t.yaml.3~", "c3", 3.0)]
    # the newest copy is the running release (Swarm rolled a failed update back and its copy was put in place)
    assert sw.swarm_previous_release(current, copies) == {"path": "/s/t.yaml.2~", "reason": ""}


def test_second_rollback_goes_forward_again():
    # after a rollback to c1, the file that ran before (c2) is the newest copy
    current = {"exists": True, "checksum": "c1"}
    copies = [_copy("/s/t.yaml.1~", "c1", 1.0), _copy("/s/t.yaml.2~", "c2", 2.0)]
    assert sw.swarm_previous_release(current, copies)["path"] == "/s/t.yaml.2~"


def test_no_previous_release_says_why():
    assert sw.swarm_previous_release({"exists": False}, []) == {
        "path": "",
        "reason": "the stack was never deployed from here (no stack file)",
    }
    assert sw.swarm_previous_release({"exists": True, "checksum": "c1"}, []) == {
        "path": "",
        "reason": "it was deployed once, there is no earlier copy of the stack file",
    }
    only_same = [_copy("/s/t.yaml.1~", "c1", 1.0)]
    assert sw.swarm_previous_release({"exists": True, "checksum": "c1"}, only_same) == {
        "path": "",
        "reason": "its 1 earlier copy is the release that runs now",
    }
