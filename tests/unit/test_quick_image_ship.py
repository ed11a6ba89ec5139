"""homeport.homeport.image_ship (plugins/action/image_ship.py): which images are sent, the remote script, the archive.

The decision is the point of the feature: an image whose ID on the host equals the controller's is never sent.
The whole action runs against the sandbox's real engine in tests/unit/test_demo.py (the demo ships its images).
"""

from __future__ import annotations

import gzip
import importlib.util
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("homeport_image_ship", ROOT / "plugins" / "action" / "image_ship.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ship = _load()


def test_same_id_sends_nothing():
    ids = {"homeport/pgvector:17": "sha256:aaa", "homeport/testapi:1": "sha256:bbb"}
    assert ship.images_to_ship(ids, dict(ids)) == []


def test_a_different_or_missing_id_is_sent():
    local = {"db:1": "sha256:aaa", "api:1": "sha256:bbb", "web:1": "sha256:ccc"}
    remote = {"db:1": "sha256:aaa", "api:1": "sha256:old", "web:1": None}
    assert ship.images_to_ship(local, remote) == ["api:1", "web:1"]


def test_remote_ids_are_read_in_one_call_and_parsed_in_order():
    script = ship.remote_inspect_script(["db:1", "my api:2"], "/opt/homebrew/bin/docker")
    assert script.count("image inspect --format '{{.Id}}'") == 2
    assert "'my api:2' 2>/dev/null || echo missing" in script
    assert "DOCKER_HOST" not in script
    colima = ship.remote_inspect_script(["db:1"], "docker", "unix:///Users/me/.colima/default/docker.sock")
    assert colima.startswith("DOCKER_HOST=unix:///Users/me/.colima/default/docker.sock docker image inspect")
    assert ship.parse_remote_ids(["db:1", "api:1"], "sha256:aaa\nmissing\n") == {"db:1": "sha256:aaa", "api:1": None}
    with pytest.raises(ValueError, match="expected 2 lines"):
        ship.parse_remote_ids(["db:1", "api:1"], "sha256:aaa\n")


def test_the_remote_script_runs_against_a_stand_in_docker(tmp_path):
    fake = tmp_path / "docker"
    fake.write_text('#!/bin/sh\n[ "$5" = "db:1" ] && { echo sha256:aaa; exit 0; }\necho "No such image" >&2; exit 1\n')
    fake.chmod(0o755)
    r = subprocess.run(["sh", "-c", ship.remote_inspect_script(["db:1", "api:1"], str(fake))], capture_output=True)
    assert r.returncode == 0
    assert ship.parse_remote_ids(["db:1", "api:1"], r.stdout.decode()) == {"db:1": "sha256:aaa", "api:1": None}


def test_a_missing_local_image_names_the_variable(tmp_path):
    from ansible.errors import AnsibleActionFail

    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(AnsibleActionFail, match=r"stack_ship_images: nosuch:1 not found on the controller"):
        ship.local_ids(["nosuch:1"], str(fake))


def test_archive_is_docker_save_output_gzipped_or_plain(tmp_path):
    # a stand-in docker whose `save` writes a small tar to stdout, like the real one
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "manifest.json").write_text("[]")
    tar = tmp_path / "save.tar"
    with tarfile.open(tar, "w") as t:
        t.add(payload / "manifest.json", arcname="manifest.json")
    fake = tmp_path / "docker"
    fake.write_text(f'#!/bin/sh\n[ "$1" = save ] || exit 2\necho "$*" > {tmp_path}/argv\ncat {tar}\n')
    fake.chmod(0o755)
    out = tmp_path / "images.tar.gz"
    size = ship.save_archive(["db:1", "api:1"], str(out), str(fake), compress=True)
    assert size == out.stat().st_size
    assert gzip.decompress(out.read_bytes()) == tar.read_bytes()
    assert (tmp_path / "argv").read_text().split() == ["save", "db:1", "api:1"]  # one save: shared layers once
    plain = tmp_path / "images.tar"
    ship.save_archive(["db:1"], str(plain), str(fake), compress=False)
    assert plain.read_bytes() == tar.read_bytes()


def test_ssh_argv_from_the_inventory_keeps_host_key_checking_and_the_runner_master(tmp_path):
    from ansible.plugins.connection.ssh import Connection

    hostvars = {
        "inventory_hostname": "mini",
        "ansible_host": "mini.tail.ts.net",
        "ansible_port": 2222,
        "ansible_user": "admin",
        "ansible_ssh_private_key_file": "~/.ssh/id_mini",
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/k/known_hosts",
    }
    env = {
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=600s",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path),
    }
    argv = ship.ssh_argv(hostvars, env)
    control = Connection._create_control_path("mini.tail.ts.net", 2222, "admin") % {"directory": str(tmp_path)}
    assert argv[:5] == ["ssh", "-o", "ControlMaster=auto", "-o", "ControlPersist=600s"]
    assert f"ControlPath={control}" in argv
    assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv
    assert "UserKnownHostsFile=/k/known_hosts" in argv
    assert argv[argv.index("-p") + 1] == "2222" and argv[-1] == "admin@mini.tail.ts.net"
    assert ship.ssh_argv({**hostvars, "ansible_connection": "docker"}, env) is None
    assert ship.ssh_argv({"inventory_hostname": "box"}, env)[-1] == "box"


def test_load_command_under_become():
    assert ship.load_command("docker", None, sudo=False) == "docker load --quiet"
    assert ship.load_command("docker", None, sudo=True) == "sudo -n docker load --quiet"
    assert ship.load_command("/opt/homebrew/bin/docker", "unix:///s.sock", sudo=True, become_user="admin") == (
        "sudo -n -u admin DOCKER_HOST=unix:///s.sock /opt/homebrew/bin/docker load --quiet"
    )


def test_stream_pipes_docker_save_through_gzip_into_ssh(tmp_path):
    # stand-ins: `docker save` prints a payload; `ssh ... HOST CMD` runs CMD here (like sshd would, with stdin)
    payload = b"layer-bytes " * 1000
    (tmp_path / "payload").write_bytes(payload)
    docker = tmp_path / "docker"
    docker.write_text(f'#!/bin/sh\n[ "$1" = save ] || exit 2\ncat {tmp_path}/payload\n')
    docker.chmod(0o755)
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text('#!/bin/sh\nfor last; do :; done\nexec sh -c "$last"\n')
    fake_ssh.chmod(0o755)
    received = tmp_path / "received.gz"
    ship.stream(["db:1"], [str(fake_ssh), "-o", "BatchMode=yes", "host"], f"cat > {received}", str(docker), True)
    assert gzip.decompress(received.read_bytes()) == payload
    ship.stream(["db:1"], [str(fake_ssh), "host"], f"cat > {tmp_path}/plain", str(docker), False)
    assert (tmp_path / "plain").read_bytes() == payload
    with pytest.raises(ship.StreamFailed, match="a password is required"):
        refused = "cat >/dev/null; echo 'sudo: a password is required' >&2; exit 1"
        ship.stream(["db:1"], [str(fake_ssh), "host"], refused, str(docker), False)
