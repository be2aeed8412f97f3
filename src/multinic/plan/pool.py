"""Free space of one block as aligned free prefixes, kept by length.

The planner allocates prefixes, never single addresses, so the pool works on
integers: each prefix length has a sorted list of the free prefixes' start
addresses. Taking a prefix splits the smallest free prefix that holds it (best
fit, lowest address first), so the same requests in the same order always get
the same prefixes, and the free space left stays as few, large prefixes as it
can. No operation looks at single addresses.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Network, ip_network

from multinic.plan.model import IPNetwork


def network(start: int, length: int, version: int) -> IPNetwork:
    """The ``ipaddress`` network of an integer start and a prefix length."""
    if version == 4:
        return IPv4Network((start, length))
    return IPv6Network((start, length))


class PrefixPool:
    """The free prefixes of one block prefix."""

    def __init__(self, block: IPNetwork) -> None:
        self.block = block
        self.version = block.version
        self.bits = block.max_prefixlen
        self._free: dict[int, list[int]] = {block.prefixlen: [int(block.network_address)]}

    def _size(self, length: int) -> int:
        return 1 << (self.bits - length)

    def take(self, length: int) -> IPNetwork | None:
        """Allocate a free prefix of ``length``: best fit, lowest address; None when none fits."""
        for have in range(length, self.block.prefixlen - 1, -1):
            starts = self._free.get(have)
            if starts:
                start = starts.pop(0)
                self._carve(have, start, length)
                return network(start, length, self.version)
        return None

    def claim(self, prefix: IPNetwork) -> bool:
        """Allocate exactly ``prefix`` if all of it is free; otherwise change nothing."""
        if prefix.version != self.version or not prefix.subnet_of(self.block):  # type: ignore[arg-type]
            return False
        start = int(prefix.network_address)
        for have in range(prefix.prefixlen, self.block.prefixlen - 1, -1):
            owner = start & ~(self._size(have) - 1)
            starts = self._free.get(have, [])
            at = bisect_left(starts, owner)
            if at < len(starts) and starts[at] == owner:
                del starts[at]
                self._carve(have, start, prefix.prefixlen)
                return True
        return False

    def _carve(self, have: int, start: int, length: int) -> None:
        # Split a free prefix of length ``have`` down to (start, length): at each level
        # the half on the path is split further, its sibling becomes free.
        for sub in range(have + 1, length + 1):
            size = self._size(sub)
            insort(self._free.setdefault(sub, []), (start & ~(size - 1)) ^ size)

    def reserve(self, prefix: IPNetwork) -> None:
        """Take every free address of ``prefix`` (an in-use prefix may cover only part of it)."""
        if prefix.version != self.version or not prefix.overlaps(self.block):
            return
        if self.block.subnet_of(prefix):  # type: ignore[arg-type]
            self._free.clear()
            return
        if self.claim(prefix):
            return
        low = int(prefix.network_address)
        high = int(prefix.broadcast_address)
        for length, starts in self._free.items():
            if length > prefix.prefixlen:
                del starts[bisect_left(starts, low) : bisect_right(starts, high)]

    def free_prefixes(self) -> Iterator[IPNetwork]:
        """Every free prefix, lowest address first."""
        pairs = sorted((start, length) for length, ss in self._free.items() for start in ss)
        for start, length in pairs:
            yield network(start, length, self.version)

    def largest_free(self) -> int | None:
        """The shortest free prefix length (the largest free prefix), None when full."""
        lengths = [length for length, starts in self._free.items() if starts]
        return min(lengths) if lengths else None

    def free_addresses(self) -> int:
        return sum(len(starts) * self._size(length) for length, starts in self._free.items())


def parse_prefix(text: str) -> IPNetwork:
    """A strict prefix (no host bits), as the planner writes them."""
    return ip_network(text, strict=True)
