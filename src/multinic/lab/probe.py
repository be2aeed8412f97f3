"""ICMP echo between lab pods, from inside their namespaces, many targets per socket.

One raw ICMP socket per source pod (created in the pod's namespace by a
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


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    payload = b"multinic-lab"
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, checksum, ident, seq) + payload


def ping_many(
    netns_path: str, targets: Sequence[str], *, attempts: int = 6, wait: float = 0.4
) -> list[bool]:
    """For each IPv4 target, whether it answered an echo from the namespace at ``netns_path``."""
    answered = [False] * len(targets)
    if not targets:
        return answered
    with dp.open_netns(netns_path) as ns:
        sock = dp.run_in_netns(
            ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        )
    ident = (os.getpid() ^ id(targets)) & 0xFFFF
    addresses = [str(ipaddress.IPv4Address(t)) for t in targets]
    with sock:
        for attempt in range(attempts):
            for seq, address in enumerate(addresses):
                if not answered[seq]:
                    sock.sendto(echo_request(ident, seq), (address, 0))
            deadline = time.monotonic() + wait * (attempt + 1)
            while not all(answered) and (left := deadline - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                packet, _ = sock.recvfrom(2048)
                header = (packet[0] & 0x0F) * 4
                kind, _, _, got_ident, seq = struct.unpack_from("!BBHHH", packet, header)
                if kind == ICMP_ECHO_REPLY and got_ident == ident and seq < len(targets):
                    answered[seq] = True
            if all(answered):
                break
    return answered
