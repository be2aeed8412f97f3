"""ICMP echo between lab pods, from inside their namespaces, many targets per socket.

One raw ICMP (ICMPv6) socket per source pod and family (created in the pod's namespace by a
short-lived thread, as the data plane does), every target sent an echo
request at once, replies matched by identifier and sequence. A target that
does not answer is asked again (the first packet may wait for ARP), up to
``attempts`` times. Only ever sent to addresses of the lab's own pods.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Sequence

from multinic import dataplane as dp

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, version: int = 4) -> bytes:
    """An echo request; ICMPv6's checksum is the kernel's (it covers the IPv6 addresses)."""
    payload = b"multinic-lab"
    if version == 6:
        return struct.pack("!BBHHH", ICMPV6_ECHO_REQUEST, 0, 0, ident, seq) + payload
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, checksum, ident, seq) + payload


def _answer(packet: bytes, version: int, ident: int) -> int | None:
    """The sequence number of an echo reply to us, else None. An ICMPv6 raw socket gets no
    IP header; an ICMP one does."""
    header = 0 if version == 6 else (packet[0] & 0x0F) * 4
    kind, _, _, got_ident, seq = struct.unpack_from("!BBHHH", packet, header)
    reply = ICMPV6_ECHO_REPLY if version == 6 else ICMP_ECHO_REPLY
    return seq if kind == reply and got_ident == ident else None


def ping_many(
    netns_path: str, targets: Sequence[str], *, attempts: int = 6, wait: float = 0.4
) -> list[bool]:
    """For each target (IPv4 or IPv6), whether it answered an echo from the namespace at
    ``netns_path``."""
    answered = [False] * len(targets)
    addresses = [ipaddress.ip_address(t) for t in targets]
    for version in (4, 6):
        mine = [i for i, a in enumerate(addresses) if a.version == version]
        if mine:
            got = _ping_family(
                netns_path, [str(addresses[i]) for i in mine], version, attempts, wait
            )
            for i, ok in zip(mine, got, strict=True):
                answered[i] = ok
    return answered


def _ping_family(
    netns_path: str, addresses: list[str], version: int, attempts: int, wait: float
) -> list[bool]:
    family, proto = (
        (socket.AF_INET6, socket.IPPROTO_ICMPV6)
        if version == 6
        else (socket.AF_INET, socket.IPPROTO_ICMP)
    )
    answered = [False] * len(addresses)
    with dp.open_netns(netns_path) as ns:
        sock = dp.run_in_netns(ns, lambda: socket.socket(family, socket.SOCK_RAW, proto))
    ident = (os.getpid() ^ id(addresses)) & 0xFFFF
    with sock:
        for attempt in range(attempts):
            for seq, address in enumerate(addresses):
                if not answered[seq]:
                    sock.sendto(echo_request(ident, seq, version), (address, 0))
            deadline = time.monotonic() + wait * (attempt + 1)
            while not all(answered) and (left := deadline - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                got = _answer(sock.recv(2048), version, ident)
                if got is not None and got < len(addresses):
                    answered[got] = True
            if all(answered):
                break
    return answered
