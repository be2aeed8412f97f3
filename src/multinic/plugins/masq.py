"""ipMasq and macspoofchk as nftables rules, one set per attachment.

ipMasq (bridge, ptp): as the reference's ``ip.SetupIPMasq``, traffic from the
pod's address to anything outside its subnet is masqueraded, except multicast
(pods may talk multicast on their own network). One rule per address in the
``postrouting`` NAT chain of ``inet multinic``.

macspoofchk (bridge): as the reference's spoof checker, frames entering the
bridge from the pod's host-side veth with a source MAC other than the pod's
are dropped; one rule in the ``prerouting`` filter chain of ``bridge multinic``.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Interface, IPv6Interface

from multinic.plugins.nftables import (
    TABLE,
    Tag,
    TaggedRule,
    apply,
    delete_rules,
    delete_tagged,
    list_rules,
    stale_rules,
)

MASQ_FAMILY, MASQ_CHAIN = "inet", "postrouting"
SPOOF_FAMILY, SPOOF_CHAIN = "bridge", "prerouting"
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


def _masq_chain() -> list[str]:
    return [
        f"add table {MASQ_FAMILY} {TABLE}",
        f"add chain {MASQ_FAMILY} {TABLE} {MASQ_CHAIN} "
        "{ type nat hook postrouting priority srcnat; policy accept; }",
    ]


def masq_rule(address: IPv4Interface | IPv6Interface, tag: Tag) -> str:
    """The rule masquerading ``address``'s traffic that leaves its subnet."""
    proto = "ip" if address.version == 4 else "ip6"
    outside = f"{{ {address.network}, {MULTICAST[address.version]} }}"
    return (
        f"add rule {MASQ_FAMILY} {TABLE} {MASQ_CHAIN} {proto} saddr {address.ip} "
        f'{proto} daddr != {outside} masquerade comment "{tag.comment()}"'
    )


def setup_masq(addresses: Iterable[IPv4Interface | IPv6Interface], tag: Tag) -> None:
    """Masquerade each of the pod's ``addresses`` (one transaction)."""
    apply([*_masq_chain(), *(masq_rule(a, tag) for a in addresses)])


def teardown_masq(tag: Tag) -> int:
    """Remove the masquerade rules of one attachment; how many there were."""
    return delete_tagged(MASQ_FAMILY, MASQ_CHAIN, tag)


def masq_rules(tag: Tag) -> list[TaggedRule]:
    """The masquerade rules of one attachment."""
    comment = tag.comment()
    return [r for r in list_rules(MASQ_FAMILY, MASQ_CHAIN) if r.comment == comment]


def setup_spoofcheck(host_veth: str, mac: str, tag: Tag) -> None:
    """Drop frames from ``host_veth`` (the pod's port) whose source MAC is not ``mac``."""
    apply(
        [
            f"add table {SPOOF_FAMILY} {TABLE}",
            f"add chain {SPOOF_FAMILY} {TABLE} {SPOOF_CHAIN} "
            "{ type filter hook prerouting priority -300; policy accept; }",
            f'add rule {SPOOF_FAMILY} {TABLE} {SPOOF_CHAIN} iifname "{host_veth}" '
            f'ether saddr != {mac} drop comment "{tag.comment()}"',
        ]
    )


def teardown_spoofcheck(tag: Tag) -> int:
    """Remove the MAC spoof check of one attachment."""
    return delete_tagged(SPOOF_FAMILY, SPOOF_CHAIN, tag)


def spoofcheck_rules(tag: Tag) -> list[TaggedRule]:
    """The spoof-check rules of one attachment."""
    comment = tag.comment()
    return [r for r in list_rules(SPOOF_FAMILY, SPOOF_CHAIN) if r.comment == comment]


def gc_rules(network: Tag, keep: set[Tag]) -> int:
    """Remove ``network``'s masquerade and spoof-check rules of attachments not in ``keep``."""
    removed = 0
    for family, chain in ((MASQ_FAMILY, MASQ_CHAIN), (SPOOF_FAMILY, SPOOF_CHAIN)):
        removed += delete_rules(stale_rules(family, chain, network, keep))
    return removed
