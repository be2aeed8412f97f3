"""A lean rtnetlink socket: requests with acks, dumps, and the attribute codec.

Stdlib only (socket + struct) on purpose: ``import pyroute2`` costs 117-210 ms,
more than a whole plugin run is allowed to take (docs/dataplane.md).
"""

from __future__ import annotations

# _socket, not socket: socket.py costs ~2 ms at import (enums, selectors), about as
# much as the whole data plane; the C module has everything used here.
import _socket
import contextlib
import errno
import struct
from collections.abc import Iterable, Iterator

from multinic.dataplane.errors import NetlinkError
from multinic.records import NamedTuple

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6

# <linux/netlink.h>
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
# Flags of an NLMSG_ERROR message (the ack).
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3

NLMSGERR_ATTR_MSG = 1

NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

_NLMSGHDR = struct.Struct("=IHHII")
_NLATTR = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")

#: Dumps come in datagrams of at most 32 KiB; leave room so nothing is truncated.
_RECV_BUFFER = 1 << 18
_DUMP_RETRIES = 5


class KernelError(NetlinkError):
    """The kernel answered a request with an error; operations re-raise it more specifically.

    Left untranslated (a failed dump, a socket error) it is still a DataplaneError
    naming the namespace.
    """

    errno: int  # always set, unlike the base class

    def __init__(self, errno: int, message: str, netns: str | None = None) -> None:
        super().__init__("netlink request failed", netns=netns, errno=errno, kernel_msg=message)
        self.message = message


class Message(NamedTuple):
    """One netlink message: its type, flags and payload (everything after nlmsghdr)."""

    type: int
    flags: int
    payload: bytes


# -- attribute encoding ----------------------------------------------------------------


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(type_: int, payload: bytes) -> bytes:
    """One attribute (type, length, payload) padded to 4 bytes."""
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, type_) + payload + b"\0" * (_align(length) - length)


def attr_u8(type_: int, value: int) -> bytes:
    return attr(type_, struct.pack("=B", value))


def attr_u16(type_: int, value: int) -> bytes:
    return attr(type_, struct.pack("=H", value))


def attr_be16(type_: int, value: int) -> bytes:
    return attr(type_, struct.pack("!H", value))


def attr_u32(type_: int, value: int) -> bytes:
    return attr(type_, struct.pack("=I", value))


def attr_s32(type_: int, value: int) -> bytes:
    return attr(type_, struct.pack("=i", value))


def attr_str(type_: int, value: str) -> bytes:
    """A NUL-terminated string attribute (names, kinds)."""
    return attr(type_, value.encode() + b"\0")


def nested(type_: int, *children: bytes) -> bytes:
    """A nested attribute holding already-encoded children, flagged NLA_F_NESTED."""
    return attr(type_ | NLA_F_NESTED, b"".join(children))


# -- attribute decoding ----------------------------------------------------------------


def iter_attrs(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type, payload) pairs from offset on; the nested/byte-order flags are masked off."""
    end = len(data)
    while offset + _NLATTR.size <= end:
        length, type_ = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size or offset + length > end:
            raise ValueError(f"malformed netlink attribute at offset {offset}")
        yield type_ & NLA_TYPE_MASK, data[offset + _NLATTR.size : offset + length]
        offset += _align(length)


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attributes by type (a repeated type keeps its last value)."""
    return dict(iter_attrs(data, offset))


def get_u8(attrs: dict[int, bytes], type_: int) -> int | None:
    raw = attrs.get(type_)
    return None if raw is None else int(raw[0])


def get_u16(attrs: dict[int, bytes], type_: int) -> int | None:
    raw = attrs.get(type_)
    return None if raw is None else int(struct.unpack_from("=H", raw)[0])


def get_be16(attrs: dict[int, bytes], type_: int) -> int | None:
    raw = attrs.get(type_)
    return None if raw is None else int(struct.unpack_from("!H", raw)[0])


def get_u32(attrs: dict[int, bytes], type_: int) -> int | None:
    raw = attrs.get(type_)
    return None if raw is None else int(struct.unpack_from("=I", raw)[0])


def get_s32(attrs: dict[int, bytes], type_: int) -> int | None:
    raw = attrs.get(type_)
    return None if raw is None else int(struct.unpack_from("=i", raw)[0])


def get_str(attrs: dict[int, bytes], type_: int) -> str | None:
    raw = attrs.get(type_)
    return None if raw is None else raw.split(b"\0", 1)[0].decode(errors="replace")


def get_nested(attrs: dict[int, bytes], type_: int) -> dict[int, bytes]:
    raw = attrs.get(type_)
    return {} if raw is None else parse_attrs(raw)


# -- messages --------------------------------------------------------------------------


def encode_message(type_: int, flags: int, seq: int, payload: bytes) -> bytes:
    """One message, padded so another may follow it in the same datagram."""
    length = _NLMSGHDR.size + len(payload)
    header = _NLMSGHDR.pack(length, type_, flags, seq, 0)
    return header + payload + b"\0" * (_align(length) - length)


def iter_messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload) of every message in one datagram."""
    offset = 0
    end = len(data)
    while offset + _NLMSGHDR.size <= end:
        length, type_, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > end:
            raise ValueError(f"malformed netlink message at offset {offset}")
        yield type_, flags, seq, data[offset + _NLMSGHDR.size : offset + length]
        offset += _align(length)


def decode_error(flags: int, payload: bytes) -> tuple[int, str]:
    """(errno, extended-ack message) of an NLMSG_ERROR; errno 0 is a plain ack."""
    (error,) = _ERRNO.unpack_from(payload)
    if not error or not flags & NLM_F_ACK_TLVS:
        return -error, ""
    # The request's header follows (its payload too, unless the ack is capped).
    orig_len = _NLMSGHDR.unpack_from(payload, _ERRNO.size)[0]
    offset = _ERRNO.size + (_NLMSGHDR.size if flags & NLM_F_CAPPED else _align(orig_len))
    text = get_str(parse_attrs(payload, offset), NLMSGERR_ATTR_MSG) or ""
    return -error, text


class Rtnl:
    """An rtnetlink socket; it stays in the namespace it was created in."""

    def __init__(self, sock: _socket.socket, netns: str | None = None) -> None:
        self._sock = sock
        #: The namespace's name for error messages.
        self.netns = netns
        self._seq = 0
        self._buffer = bytearray(_RECV_BUFFER)

    @classmethod
    def open(cls, netns: str | None = None) -> Rtnl:
        """A socket in the calling thread's network namespace (``netns`` names it in errors)."""
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, 0)
        try:
            # Ask for the kernel's reason text in errors and short acks; older kernels
            # without these options still work, just less chatty.
            for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_NETLINK, option, 1)
            sock.bind((0, 0))
        except BaseException:
            sock.close()
            raise
        return cls(sock, netns)

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def request(self, type_: int, payload: bytes, flags: int = 0) -> list[Message]:
        """Send one request and wait for its ack; a negative ack raises KernelError.

        Returns the replies that came before the ack (the object, for a GET).
        """
        seq = self._send(type_, flags | NLM_F_REQUEST | NLM_F_ACK, payload)
        return list(self._replies(seq))

    def dump(self, type_: int, payload: bytes) -> list[Message]:
        """All messages of a dump; an interrupted dump (the set changed) is retried."""
        for _ in range(_DUMP_RETRIES):
            seq = self._send(type_, NLM_F_REQUEST | NLM_F_DUMP, payload)
            messages = list(self._replies(seq))
            if not any(m.flags & NLM_F_DUMP_INTR for m in messages):
                return messages
        raise KernelError(errno.EINTR, "netlink dump kept being interrupted", self.netns)

    def _send(self, type_: int, flags: int, payload: bytes) -> int:
        self._seq += 1
        try:
            self._sock.send(encode_message(type_, flags, self._seq, payload))
        except OSError as exc:
            raise KernelError(exc.errno or errno.EIO, str(exc), self.netns) from exc
        return self._seq

    def _replies(self, seq: int) -> Iterator[Message]:
        while True:
            for message in self._receive():
                type_, flags, msg_seq, payload = message
                if msg_seq != seq:
                    continue  # a late answer to an earlier request
                if type_ == NLMSG_ERROR:
                    errno, text = decode_error(flags, payload)
                    if errno:
                        raise KernelError(errno, text, self.netns)
                    return
                if type_ == NLMSG_DONE:
                    return
                if type_ != NLMSG_NOOP:
                    yield Message(type_, flags, payload)

    def _receive(self) -> Iterable[tuple[int, int, int, bytes]]:
        try:
            n = self._sock.recv_into(self._buffer, 0, _socket.MSG_TRUNC)
        except OSError as exc:  # ENOBUFS: the kernel dropped messages we were too slow for
            raise KernelError(exc.errno or errno.EIO, str(exc), self.netns) from exc
        if n > len(self._buffer):
            raise KernelError(errno.EMSGSIZE, f"datagram of {n} bytes truncated", self.netns)
        return list(iter_messages(bytes(self._buffer[:n])))
