"""Which prefixes of a list overlap, in n log n: a large fabric has ten thousand allocations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from multinic.plan.model import IPNetwork


def overlapping_pairs(prefixes: Sequence[IPNetwork]) -> Iterator[tuple[int, int]]:
    """Index pairs ``(i, j)``: prefix ``i`` overlaps the earlier prefix ``j``.

    A sweep over start addresses: each prefix is compared with the open one
    reaching furthest, so a prefix that overlaps several is reported once, with
    the one that covers most of what came before it.
    """
    for version in (4, 6):
        spans = sorted(
            (int(p.network_address), int(p.network_address) + p.num_addresses - 1, n)
            for n, p in enumerate(prefixes)
            if p.version == version
        )
        open_end, open_n = -1, 0
        for start, end, n in spans:
            if start <= open_end:
                yield n, open_n
            if end > open_end:
                open_end, open_n = end, n
