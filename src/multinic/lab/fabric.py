"""The data-plane fabric's part for ipvlan l3 secondaries: routes to the pods of other nodes.

An ipvlan slave in l3 mode answers no ARP (the kernel marks it NOARP) and its
traffic leaves through the master's namespace, routed there. So pods on one
master reach each other inside the kernel, but a pod on another node is
reachable only if something routes its address to that node: in a data
centre the fabric's routers, in the lab this module. Each node gets, per
ipvlan l3 (or l3s) network, a /32 route for every pod of every other node,
via that node's management address, on-link out of the network's master: the
other node answers ARP for its own address on that segment, and its ipvlan
port hands the packet to the pod by destination address.
"""

from __future__ import annotations

from multinic.lab import netns as nsutil
from multinic.lab.topology import LabLayout

#: ipvlan modes whose slaves answer no ARP: traffic between nodes must be routed.
ROUTED_MODES = ("l3", "l3s")


def l3_networks(lab: LabLayout) -> list[str]:
    """The lab's secondaries attached as ipvlan l3 or l3s."""
    return [
        s.name
        for s in lab.secondaries
        if lab.link(s)[0] == "ipvlan" and lab.link(s)[1] in ROUTED_MODES
    ]


def route_l3_pods(lab: LabLayout, addresses: dict[str, dict[str, str]]) -> int:
    """Route every pod's ipvlan l3 address from every other node; how many routes were added.

    ``addresses`` is pod -> network -> address (the pods' network-status).
    """
    masters = {s.name: s.master for s in lab.secondaries}
    added = 0
    for network in l3_networks(lab):
        for node, pod in lab.all_pods():
            address = addresses.get(pod, {}).get(network)
            if address is None:
                continue
            for other in lab.nodes:
                if other.name != node.name:
                    nsutil.ip(
                        "route", "replace", f"{address}/32", "via", str(node.address.ip),
                        "dev", masters[network], "onlink", netns=other.netns,
                    )  # fmt: skip
                    added += 1
    return added
