"""After the delegates ran: the pod's default routes, and the addresses it asked for.

Each delegate configures its own interface and knows nothing of the others:
a primary on a bridge installs a default route, and a secondary may install
one too. The pod's ``default-route`` request (an attachment's gateways) says
which interface carries the default route of each IP family; that one gets
it and every other default route of that family goes, as Multus does. With no
such request the delegates' routes stay as they are.

Requested addresses (``ips`` in the selection) reach a delegate as
runtimeConfig; an IPAM that ignores them would give the pod other addresses
than the ones its users configured elsewhere (firewalls, peers), so every
requested address must be in the delegate's result.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from multinic.cni.errors import InvalidConfigError
from multinic.cni.types import Result
from multinic.dataplane import get_link, list_routes, open_netns, replace_route
from multinic.dataplane.routes import delete_route
from multinic.meta.records import PodAttachment

_DEFAULT = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


def verify_requested_ips(attachment: PodAttachment, result: Result) -> None:
    """Code 7 when an address the pod asked for is not among the delegate's."""
    requested = attachment.capability_args.get("ips") or []
    given = {ip.address.ip for ip in result.ips}
    missing = [ip for ip in requested if ipaddress.ip_interface(str(ip)).ip not in given]
    if missing:
        raise InvalidConfigError(
            f"network {attachment.name}: requested IPs not assigned",
            f"{attachment.ifname} asked for {missing}, the delegate gave "
            f"{sorted(str(ip) for ip in given)}: does its IPAM take the 'ips' capability?",
        )


def steer_default_routes(netns: str, attachments: Sequence[PodAttachment]) -> None:
    """Give each family's default route to the attachment whose gateways name it."""
    wanted = {
        ipaddress.ip_address(gateway).version: (a.ifname, ipaddress.ip_address(gateway))
        for a in attachments
        for gateway in a.gateways
    }
    if not wanted:
        return
    with open_netns(netns) as pod:
        for version, (ifname, gateway) in sorted(wanted.items()):
            keep = get_link(pod, ifname).ifindex
            for route in list_routes(pod, version=version):
                if route.dst.prefixlen == 0 and route.oif != keep:
                    delete_route(
                        pod,
                        route.dst,
                        gateway=route.gateway,
                        oif=route.oif,
                        priority=route.priority,
                        missing_ok=True,
                    )
            replace_route(pod, _DEFAULT[version], gateway=gateway, oif=ifname)
