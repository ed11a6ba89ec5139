"""A LAN neighbour's probe: hand-made TCP SYNs sent to a host's MAC address with any destination IP.

A machine on the same Ethernet segment as the host does not have to address its packets to the host's own IP. It can
put the host's MAC in the frame and 127.0.0.1 (or the host's tailnet address) as the IP destination: the host's
kernel takes the frame, and an engine's NAT rule for a port published on 127.0.0.1 DNATs it to the container (moby
issue 45610, closed only in Docker 28). ``connect()`` cannot send such a packet (the sender's own kernel would route
127.0.0.1 to its own loopback), so this module builds the Ethernet, IPv4 and TCP headers itself and sends them on an
``AF_PACKET`` socket (Linux, root or CAP_NET_RAW), then listens on the same socket for the host's answer:

- ``open``: a SYN-ACK came back (something accepts connections on that path: the finding);
- ``closed``: a RST came back (the packet reached a TCP stack, nothing listens there);
- ``filtered``: no answer within the timeout (dropped on the way: what a firewall that holds gives).

The answer is matched by the TCP ports (our random source port, the probed destination port), not by its source
address: after the engine's reverse NAT the SYN-ACK may come from 127.0.0.1, the container or the host.

Used by ``homeport audit`` (check ``lan``) and by the molecule verifiers (molecule/lan_attack) as the attacker.
Standard library only, so it runs in any Python 3 with ``python3 -m homeport.lanprobe`` or copied alone.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import re
import secrets
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

ETH_P_IP = 0x0800
TCP_SYN, TCP_RST, TCP_ACK = 0x02, 0x04, 0x10


@dataclass
class Answer:
    address: str
    port: int
    state: str  # open | closed | filtered
    source: str = ""  # where the answer came from (after the host's reverse NAT)
    seconds: float = 0.0


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


@dataclass
class Path:
    """Who sends to whom: our interface's MAC and IPv4, the host's MAC (the frame's destination)."""

    src_mac: str
    src_ip: str
    dst_mac: str


def syn_frame(path: Path, dst_ip: str, sport: int, dport: int, seq: int) -> bytes:
    """Ethernet II + IPv4 (no options, DF) + TCP SYN with an MSS option, checksums filled in."""
    src, dst = socket.inet_aton(path.src_ip), socket.inet_aton(dst_ip)
    options = struct.pack("!BBH", 2, 4, 1360)  # MSS: below the 1400 MTU some of these networks have
    offset = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, offset << 4, TCP_SYN, 64240, 0, 0) + options
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ident = secrets.randbelow(1 << 16)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ident, 0x4000, 64, socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return mac_bytes(path.dst_mac) + mac_bytes(path.src_mac) + struct.pack("!H", ETH_P_IP) + ip + tcp


def parse_tcp_answer(frame: bytes, our_ip: str) -> tuple[str, int, int, int] | None:
    """(source IP, source port, destination port, TCP flags) of an IPv4 TCP segment sent to our_ip, else None."""
    if len(frame) < 14 + 20 + 20 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP or len(ip) < ihl + 20:
        return None
    if socket.inet_ntoa(ip[16:20]) != our_ip:
        return None
    sport, dport = struct.unpack("!HH", ip[ihl : ihl + 4])
    return socket.inet_ntoa(ip[12:16]), sport, dport, ip[ihl + 13]


# ---- where to send from --------------------------------------------------------------------------------------------
def route_to(address: str) -> tuple[str, str]:
    """(interface, our source IPv4) of the route to address, from `ip route get` (Linux)."""
    out = subprocess.run(["ip", "-o", "-4", "route", "get", address], capture_output=True, text=True, check=False)
    dev = re.search(r"\bdev (\S+)", out.stdout)
    src = re.search(r"\bsrc (\S+)", out.stdout)
    if out.returncode != 0 or not dev or not src:
        raise ProbeError(f"no IPv4 route to {address}: {(out.stderr or out.stdout).strip()}")
    return dev.group(1), src.group(1)


def interface_mac(interface: str) -> str:
    with open(f"/sys/class/net/{interface}/address", encoding="ascii") as fh:
        return fh.read().strip()


def neighbour_mac(address: str, interface: str, wait: float = 3.0) -> str | None:
    """The MAC of address on interface's segment, None when it is not a neighbour there (behind a router, a tunnel).
    A UDP datagram to the discard port makes the kernel resolve it (ARP) first."""
    deadline = time.monotonic() + wait
    while True:
        with open("/proc/net/arp", encoding="ascii") as fh:
            for line in fh.read().splitlines()[1:]:
                cols = line.split()
                if len(cols) >= 6 and cols[0] == address and cols[5] == interface and cols[2] != "0x0":
                    return cols[3]
        if time.monotonic() > deadline:
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, contextlib.suppress(OSError):
            udp.sendto(b"", (address, 9))
        time.sleep(0.2)


class ProbeError(Exception):
    """The probe cannot run from here (not Linux, no raw socket, the host is not on this segment)."""


def probe(
    host: str,
    destinations: list[tuple[str, int]],
    timeout: float = 2.0,
    interface: str | None = None,
    host_mac: str | None = None,
) -> list[Answer]:
    """Send one SYN per destination (IPv4 address, port) to host's MAC and collect the answers. host is the host's
    address on the shared segment (used to find the interface and the MAC); each destination is what the IP header
    says (127.0.0.1, the tailnet address, a container's address). Each SYN is sent twice (a lost frame is not a
    'filtered' port)."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "AF_PACKET"):
        raise ProbeError("the LAN probe sends raw Ethernet frames (AF_PACKET): it runs on Linux only")
    for address, _ in destinations:
        if ipaddress.ip_address(address).version != 4:
            raise ProbeError(f"{address}: the LAN probe sends IPv4 only")
    dev, our_ip = route_to(host)
    interface = interface or dev
    dst_mac = host_mac or neighbour_mac(host, interface)
    if not dst_mac:
        raise ProbeError(f"{host} is not a neighbour on {interface} (no ARP answer): run the probe from its LAN")
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    except PermissionError:
        raise ProbeError("raw sockets need root (or CAP_NET_RAW)") from None
    with sock:
        sock.bind((interface, 0))
        path = Path(interface_mac(interface), our_ip, dst_mac)
        pending: dict[int, tuple[str, int, float]] = {}
        answers: dict[int, Answer] = {}
        used: set[int] = set()
        for address, port in destinations:
            sport = 20000 + secrets.randbelow(40000)
            while sport in used:
                sport = 20000 + secrets.randbelow(40000)
            used.add(sport)
            pending[sport] = (address, port, time.monotonic())
            frame = syn_frame(path, address, sport, port, secrets.randbelow(1 << 32))
            for _ in range(2):
                sock.send(frame)
        deadline = time.monotonic() + timeout
        sock.settimeout(0.1)
        while pending.keys() - answers.keys() and time.monotonic() < deadline:
            try:
                frame = sock.recv(65535)
            except TimeoutError:
                continue
            seen = parse_tcp_answer(frame, our_ip)
            if not seen:
                continue
            source, sport_seen, dport_seen, flags = seen
            want = pending.get(dport_seen)
            if not want or sport_seen != want[1] or dport_seen in answers:
                continue
            if flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK:
                state = "open"
            elif flags & TCP_RST:
                state = "closed"
            else:
                continue
            answers[dport_seen] = Answer(want[0], want[1], state, source, round(time.monotonic() - want[2], 3))
    return [answers.get(sport) or Answer(address, port, "filtered") for sport, (address, port, _) in pending.items()]


def parse_destination(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    ipaddress.IPv4Address(address)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not ADDRESS:PORT: {text!r}")
    return address, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m homeport.lanprobe", description=__doc__.splitlines()[0])
    parser.add_argument("host", help="the host's address on this LAN segment")
    parser.add_argument("destinations", nargs="+", help="ADDRESS:PORT written into the IP/TCP headers")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--interface")
    parser.add_argument("--mac", help="the host's MAC (default: resolved by ARP)")
    args = parser.parse_args(argv)
    try:
        dests = [parse_destination(d) for d in args.destinations]
        found = probe(args.host, dests, args.timeout, args.interface, args.mac)
    except (ProbeError, ValueError, OSError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    print(json.dumps([asdict(a) for a in found]))
    return 1 if any(a.state == "open" for a in found) else 0


if __name__ == "__main__":
    sys.exit(main())
