"""Pure parts of the mac_journey lane's doubles: Colima's port-forwarding rule as the forwarder applies it to the
VM's /proc/net/tcp{,6}, and launchd's KeepAlive decision (launchd.plist(5))."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[2] / "tests" / "doubles" / "bin"


def load(name: str):
    sys.path.insert(0, str(BIN))
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(BIN / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4690 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 00000000:3C28 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0F05A8C0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1
   3: 0100007F:4690 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4 1
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:3C28 00000000000000000000000000000000:0000 0A 0
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 0
"""


def test_forwarder_reads_listening_sockets(tmp_path):
    fwd = load("colima-forwarder")
    (tmp_path / "tcp").write_text(TCP)
    (tmp_path / "tcp6").write_text(TCP6)
    assert fwd.listening(str(tmp_path / "tcp"), False) == {
        ("127.0.0.1", 18064),  # 0100007F:4690
        ("0.0.0.0", 15400),  # 00000000:3C28
        ("192.168.5.15", 8080),  # the guest's own address: Colima forwards no such port
    }
    assert fwd.listening(str(tmp_path / "tcp6"), True) == {("0.0.0.0", 15400), ("127.0.0.1", 8081)}
    assert fwd.listening(str(tmp_path / "missing"), False) == set()


@pytest.mark.parametrize(
    ("keep_alive", "rc", "restart"),
    [
        (True, 0, True),
        (True, 1, True),
        (False, 1, False),
        ({"SuccessfulExit": False}, 1, True),  # the Colima wrapper failed: restart it
        ({"SuccessfulExit": False}, 0, False),  # it gave up loudly or the VM was stopped on purpose: leave it
        ({"SuccessfulExit": True}, 0, True),
        ({"SuccessfulExit": True}, 3, False),
    ],
)
def test_launchd_keepalive(keep_alive, rc, restart):
    assert load("launchd").restart_wanted(keep_alive, rc) is restart
