"""homeport.lanprobe (the LAN neighbour's hand-made frames) and the audit's `lan` check over recorded host output.

The probe itself is exercised for real by molecule/lan_attack (Debian 12 and 13 engines, with a control run that gets
answers) and molecule/monitoring (the journey's stack after a boot); here: the frames are what the RFCs say, the
answer matching, and the audit's reading of `ss`, `docker ps` and `ip addr`.
"""

from __future__ import annotations

import socket
import struct

import pytest

from homeport import audit, lanprobe

PATH = lanprobe.Path(src_mac="02:42:ac:12:00:01", src_ip="172.18.0.1", dst_mac="02:42:ac:12:00:02")


def test_syn_frame_is_a_valid_ethernet_ipv4_tcp_syn():
    frame = lanprobe.syn_frame(PATH, "127.0.0.1", 40000, 15432, 12345)
    assert frame[:6] == bytes.fromhex("0242ac120002")  # the host's MAC is the destination
    assert frame[6:12] == bytes.fromhex("0242ac120001")
    assert struct.unpack("!H", frame[12:14])[0] == 0x0800
    ip = frame[14:34]
    assert lanprobe.checksum(ip) == 0  # a header with its checksum sums to 0xffff (RFC 1071)
    assert socket.inet_ntoa(ip[12:16]) == "172.18.0.1"
    assert socket.inet_ntoa(ip[16:20]) == "127.0.0.1"  # what connect() cannot send: loopback to another machine
    tcp = frame[34:]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
    assert lanprobe.checksum(pseudo + tcp) == 0
    sport, dport, seq = struct.unpack("!HHI", tcp[:8])
    assert (sport, dport, seq) == (40000, 15432, 12345)
    assert tcp[13] == lanprobe.TCP_SYN
    assert struct.unpack("!H", ip[2:4])[0] == len(frame) - 14


def answer(src: str, dst: str, sport: int, dport: int, flags: int) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 2, 5 << 4, flags, 1000, 0, 0)
    return b"\0" * 12 + struct.pack("!H", 0x0800) + ip + tcp


def test_answers_are_matched_by_ports_whatever_their_source():
    syn_ack = answer("127.0.0.1", "172.18.0.1", 15432, 40000, lanprobe.TCP_SYN | lanprobe.TCP_ACK)
    assert lanprobe.parse_tcp_answer(syn_ack, "172.18.0.1") == ("127.0.0.1", 15432, 40000, 0x12)
    assert lanprobe.parse_tcp_answer(syn_ack, "172.18.0.9") is None  # not to us
    assert lanprobe.parse_tcp_answer(b"\0" * 12 + b"\x86\xdd" + b"\0" * 60, "172.18.0.1") is None  # IPv6
    assert lanprobe.parse_tcp_answer(syn_ack[:30], "172.18.0.1") is None  # cut short


def test_the_cli_refuses_what_is_not_address_port():
    with pytest.raises(ValueError):
        lanprobe.parse_destination("localhost:80")
    with pytest.raises(ValueError):
        lanprobe.parse_destination("127.0.0.1:0")
    assert lanprobe.parse_destination("100.87.65.43:18080") == ("100.87.65.43", 18080)


def test_the_probe_refuses_ipv6_destinations():
    with pytest.raises(lanprobe.ProbeError, match="IPv4 only"):
        lanprobe.probe("127.0.0.1", [("::1", 80)])


# what LAN_LISTING prints on the Debian journey's host (ss -Hltn; docker ps; ip -o -4 addr), recorded
LISTING = """\
LISTEN 0      4096       127.0.0.1:9090       0.0.0.0:*
LISTEN 0      4096    100.87.65.43:18080      0.0.0.0:*
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*
LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*
LISTEN 0      4096            [::]:22            [::]:*
--- docker
journey-api-1 100.87.65.43:18080->8080/tcp
journey-db-1 100.87.65.43:15432->5432/tcp, 127.0.0.1:25432->5432/tcp
web 0.0.0.0:8000->80/tcp, :::8000->80/tcp
--- addresses
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 172.18.0.2/16 brd 172.18.255.255 scope global eth0\\       valid_lft forever preferred_lft forever
5: tailscale0    inet 100.87.65.43/32 scope global tailscale0\\       valid_lft forever preferred_lft forever
"""


def test_lan_destinations_are_the_loopback_and_tailnet_bindings():
    found = audit.lan_destinations(LISTING)
    assert set(found) == {
        ("127.0.0.1", 9090),
        ("100.87.65.43", 18080),
        ("100.87.65.43", 15432),
        ("127.0.0.1", 25432),
        ("127.0.0.53", 53),
    }
    assert found[("100.87.65.43", 18080)].startswith("container journey-api-1")
    assert found[("127.0.0.1", 9090)] == "a listening socket"


def test_grade_lan_fails_on_an_answer_and_names_the_path():
    dests = audit.lan_destinations(LISTING)
    answers = [
        {"address": "127.0.0.1", "port": 25432, "state": "open", "source": "127.0.0.1"},
        {"address": "100.87.65.43", "port": 18080, "state": "filtered", "source": ""},
    ]
    result = audit.grade_lan(answers, dests, "this machine")
    assert result.status == "fail"
    assert result.findings == [
        "127.0.0.1:25432 (container journey-db-1 (published 127.0.0.1:25432->5432/tcp)) answered a LAN neighbour's "
        "frame to the host's MAC (SYN-ACK from 127.0.0.1)"
    ]
    answers[0]["state"] = "filtered"
    assert audit.grade_lan(answers, dests, "this machine").status == "pass"


def test_audit_render_escapes_what_the_host_wrote(capsys):
    """Findings come from the host (Lynis, debsecan, the listing): an OSC 52 clipboard write or rich markup in them is
    shown, never obeyed."""
    from rich.console import Console

    summary = audit.summarise(
        {"h[/]": [audit.CheckResult("lynis", "fail", "x\x1b]52;c;cHduZWQ=\x07", ["[link=http://e]y[/link]\x1b[8m"])]}
    )
    console = Console(file=None, force_terminal=True, width=200)
    audit.render(console, summary)
    out = capsys.readouterr().out
    assert "\x1b]52" not in out and "\x07" not in out and "\x1b[8m" not in out
    assert "\\x1b]52;c;cHduZWQ=\\x07" in out and "[link=http://e]y[/link]" in out
