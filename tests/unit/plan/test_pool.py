"""The prefix pool: best fit at the lowest address, exact claims, in-use reservations."""

from __future__ import annotations

from ipaddress import ip_network

from multinic.plan.pool import PrefixPool


def test_takes_lowest_address_first_and_splits() -> None:
    pool = PrefixPool(ip_network("10.0.0.0/22"))

    assert pool.take(24) == ip_network("10.0.0.0/24")
    assert pool.take(24) == ip_network("10.0.1.0/24")
    assert pool.take(23) == ip_network("10.0.2.0/23")
    assert pool.take(24) is None
    assert pool.free_addresses() == 0


def test_best_fit_fills_a_small_hole_before_splitting_a_large_block() -> None:
    pool = PrefixPool(ip_network("10.0.0.0/16"))
    pool.take(25)  # leaves 10.0.0.128/25 free, and larger halves above it

    assert pool.take(25) == ip_network("10.0.0.128/25")
    assert pool.take(17) == ip_network("10.0.128.0/17")


def test_claim_takes_exactly_that_prefix_and_refuses_taken_space() -> None:
    pool = PrefixPool(ip_network("10.0.0.0/16"))

    assert pool.claim(ip_network("10.0.77.0/24"))
    assert not pool.claim(ip_network("10.0.77.128/25"))  # inside what was claimed
    assert not pool.claim(ip_network("10.0.64.0/18"))  # contains what was claimed
    assert not pool.claim(ip_network("10.1.0.0/24"))  # outside the block
    assert not pool.claim(ip_network("fd00::/64"))  # another family
    assert pool.free_addresses() == 65536 - 256
    taken = [pool.take(24) for _ in range(255)]
    assert ip_network("10.0.77.0/24") not in taken
    assert pool.take(24) is None


def test_reserve_covers_part_of_a_block_or_all_of_it() -> None:
    pool = PrefixPool(ip_network("10.0.0.0/24"))
    pool.take(26)  # 10.0.0.0/26
    pool.reserve(ip_network("10.0.0.0/25"))  # in use, overlapping what was taken

    assert [str(p) for p in pool.free_prefixes()] == ["10.0.0.128/25"]
    pool.reserve(ip_network("10.0.0.0/8"))
    assert pool.free_addresses() == 0
    assert pool.largest_free() is None


def test_reserving_fragments_and_largest_free_reports_it() -> None:
    pool = PrefixPool(ip_network("10.0.0.0/24"))
    for host in range(0, 256, 64):
        pool.reserve(ip_network(f"10.0.0.{host + 32}/27"))

    assert pool.free_addresses() == 128
    assert pool.largest_free() == 27
    assert pool.take(25) is None


def test_ipv6_prefixes() -> None:
    pool = PrefixPool(ip_network("fd00::/48"))

    assert pool.take(64) == ip_network("fd00::/64")
    assert pool.take(56) == ip_network("fd00:0:0:100::/56")
    assert pool.take(64) == ip_network("fd00:0:0:1::/64")
