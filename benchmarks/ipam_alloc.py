"""The pure allocator's cost per operation as the pool fills: /24, /16 and /10 at 0, 50, 99 %.

The pool is filled at random (the worst case for the free-interval lists: a
random 50 % fill leaves about a quarter as many intervals as addresses), then
rebuilt from that held list as a store would. Timed per operation, as the
median of batches:

* ``next``: allocate the next free address after the cursor, then release it
  again (so the fill level stays put), counted as one allocation;
* ``specific``: allocate a given free address, then release it;
* ``is_free``: ask whether a random address is free.

Ratios are against the empty /24. Run:  .venv/bin/python benchmarks/ipam_alloc.py
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import statistics
import time

from multinic.cni.config import Attachment
from multinic.ipam.allocator import AddressAllocator
from multinic.ipam.ranges import make_range, make_range_set

SUBNETS = ("10.0.0.0/24", "10.0.0.0/16", "10.0.0.0/10")
FILLS = (0.0, 0.5, 0.99)
BATCH = 200


def filled(subnet: str, fill: float, rng: random.Random) -> tuple[AddressAllocator, float, int]:
    """An allocator over ``subnet`` with ``fill`` of it held; seconds to rebuild; intervals."""
    rs = make_range_set([make_range(ipaddress.ip_network(subnet))])
    empty = AddressAllocator(rs)
    lo, hi = int(rs.ranges[0].range_start) + 1, int(rs.ranges[0].range_end)  # past the gateway
    count = int(empty.size * fill)
    owner = Attachment("fill", "eth0")
    held = [(ipaddress.IPv4Address(i), owner) for i in rng.sample(range(lo, hi + 1), count)]
    start = time.perf_counter()
    alloc = AddressAllocator(rs, held)
    rebuild = time.perf_counter() - start
    return alloc, rebuild, alloc.fragments


def per_op_ns(alloc: AddressAllocator, op: str, rounds: int, rng: random.Random) -> float:
    owner = Attachment("bench", "eth0")
    first = alloc.range_set.ranges[0].range_start
    free_sample = [first + k for k in range(1, 4000) if alloc.is_free(first + k)]
    span = int(alloc.range_set.ranges[0].range_end) - int(alloc.range_set.ranges[0].range_start)
    probes = [alloc.range_set.ranges[0].range_start + rng.randrange(span) for _ in range(BATCH)]
    samples = []
    for _ in range(rounds + 1):  # the first batch warms caches up and is dropped
        start = time.perf_counter_ns()
        if op == "next":
            for _ in range(BATCH):
                alloc.release(alloc.allocate(owner).address)
        elif op == "specific":
            for k in range(BATCH):
                alloc.release(alloc.allocate(owner, free_sample[k % len(free_sample)]).address)
        else:
            for address in probes:
                alloc.is_free(address)
        samples.append((time.perf_counter_ns() - start) / BATCH)
    return statistics.median(samples[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    rng = random.Random(4)  # noqa: S311 -- a reproducible fill, not a secret
    rows = []
    for subnet in SUBNETS:
        for fill in FILLS:
            alloc, rebuild, intervals = filled(subnet, fill, rng)
            gc.collect()
            costs = {
                op: per_op_ns(alloc, op, rounds, rng) for op in ("next", "specific", "is_free")
            }
            rows.append((subnet, fill, alloc.size, intervals, rebuild, costs))
            del alloc
            gc.collect()
    base = rows[0][5]
    print(
        "| pool | full | addresses | free intervals | rebuild s | next ns | specific ns "
        "| is_free ns | next / empty /24 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for subnet, fill, size, intervals, rebuild, costs in rows:
        print(
            f"| {subnet} | {fill:.0%} | {size} | {intervals} | {rebuild:.2f} "
            f"| {costs['next']:.0f} | {costs['specific']:.0f} | {costs['is_free']:.0f} "
            f"| {costs['next'] / base['next']:.2f} |"
        )


if __name__ == "__main__":
    main()
