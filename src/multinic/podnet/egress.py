"""Egress SNAT: pods' traffic leaving the pod and service blocks goes out as the node.

One nftables table of ours, ``inet multinic_podnet``, written as a whole in
one transaction (create, flush by delete, write), so a change never leaves a
half table; :func:`remove_egress` deletes it when the node leaves. The
plugins' per-attachment table (``multinic``) is a different one and is never
touched here.
"""

from __future__ import annotations

from collections.abc import Sequence

from multinic.plugins.nftables import NftError, run_nft
from multinic.podnet.config import IPNetwork
from multinic.podnet.registry import IPAddress

TABLE = "multinic_podnet"


def egress_script(
    pod_cidrs: Sequence[IPNetwork],
    keep_inside: Sequence[IPNetwork],
    addresses: Sequence[IPAddress],
) -> str:
    """The table: per pod CIDR, what leaves ``keep_inside`` is SNATed to the node's address
    of its family, or masqueraded (the outgoing interface's address) when the node has
    none of that family (an IPv6 pod CIDR on an IPv4 underlay)."""
    rules = []
    for cidr in pod_cidrs:
        family = "ip" if cidr.version == 4 else "ip6"
        node = [a for a in addresses if a.version == cidr.version]
        inside = [str(p) for p in keep_inside if p.version == cidr.version]
        match = f"{family} saddr {cidr}"
        if inside:
            match += f" {family} daddr != {{ {', '.join(inside)} }}"
        action = f"snat {family} to {node[0]}" if node else "masquerade"
        rules.append(f'    {match} {action} comment "podnet egress"')
    return "\n".join(
        [
            f"table inet {TABLE}",
            f"delete table inet {TABLE}",
            f"table inet {TABLE} {{",
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            *rules,
            "  }",
            "}",
            "",
        ]
    )


def ensure_egress(
    pod_cidrs: Sequence[IPNetwork],
    keep_inside: Sequence[IPNetwork],
    addresses: Sequence[IPAddress],
) -> None:
    """Write the table (in the calling thread's namespace)."""
    script = egress_script(pod_cidrs, keep_inside, addresses)
    try:
        run_nft(script=script)
    except NftError as exc:
        raise NftError(f"cannot write nftables table inet {TABLE}", exc.details) from exc


def remove_egress() -> bool:
    """Delete the table; False when there was none."""
    try:
        run_nft(("list", "table", "inet", TABLE))
    except NftError:
        return False
    run_nft(script=f"delete table inet {TABLE}\n")
    return True
