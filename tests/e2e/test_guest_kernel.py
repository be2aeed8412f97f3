"""The guest kernel has the link types this machine's kernel lacks, and they carry traffic.

One boot for everything (boots cost seconds under software emulation): iproute2
creates dummy, ipvlan l2/l3/l3s, vlan and macvlan links, then for each ipvlan
mode two namespaces whose ipvlan slaves share one dummy parent ping each other.
The script only reports; the assertions are here.
"""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.guest.run import Guest

MODES = ("l2", "l3", "l3s")

# Links are reported as "LINK <netns or -> <ip -d -j link show output>", pings as
# "PING <mode> <ping's statistics line>". The ipvlan mode belongs to the parent,
# so every mode gets its own dummy parent.
SCRIPT = r"""
set -eu
report() {  # NETNS|- LINK
    if [ "$1" = - ]; then
        json=$(ip -d -j link show "$2")
    else
        json=$(ip -n "$1" -d -j link show "$2")
    fi
    echo "LINK $1 $json"
}
echo "KERNEL $(uname -r)"
for m in l2 l3 l3s; do
    ip link add dum-$m type dummy
    ip link set dum-$m up
    ip link add link dum-$m name ipv-$m type ipvlan mode $m
    report - ipv-$m
done
ip link add eth-x type dummy
ip link add link eth-x name eth-x.100 type vlan id 100
ip link add eth-y type dummy
ip link add link eth-y name mv0 type macvlan mode bridge
for l in eth-x eth-x.100 eth-y mv0; do report - $l; done
for m in l2 l3 l3s; do
    ip link add par-$m type dummy
    ip link set par-$m up
    for side in a b; do
        ip netns add $side-$m
        ip -n $side-$m link set lo up
        ip link add link par-$m name ip$side-$m type ipvlan mode $m
        ip link set ip$side-$m netns $side-$m
    done
    ip -n a-$m addr add 10.77.0.1/24 dev ipa-$m
    ip -n b-$m addr add 10.77.0.2/24 dev ipb-$m
    ip -n a-$m link set ipa-$m up
    ip -n b-$m link set ipb-$m up
    report a-$m ipa-$m
    stats=$(ip netns exec a-$m ping -c 3 -i 0.2 -W 2 10.77.0.2 | grep 'packets transmitted' || true)
    echo "PING $m $stats"
done
"""


def _parse(output: str) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, str]]:
    links: dict[tuple[str, str], dict[str, Any]] = {}
    pings: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith("LINK "):
            _, netns, body = line.split(" ", 2)
            (link,) = json.loads(body)
            links[(netns, link["ifname"])] = link
        elif line.startswith("PING "):
            _, mode, stats = line.split(" ", 2)
            pings[mode] = stats
    return links, pings


def _kind(link: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    info = link.get("linkinfo", {})
    return info.get("info_kind", ""), info.get("info_data", {})


def test_guest_kernel_creates_ipvlan_vlan_macvlan_and_pings_between_ipvlan_slaves(
    guest: Guest,
) -> None:
    result = guest(["/bin/bash", "-c", SCRIPT], timeout=300)

    assert result.returncode == 0, result.output
    assert "KERNEL " in result.output, result.output
    links, pings = _parse(result.output)
    for mode in MODES:
        kind, data = _kind(links[("-", f"ipv-{mode}")])
        assert (kind, data.get("mode")) == ("ipvlan", mode), result.output
        pod_link = links[(f"a-{mode}", f"ipa-{mode}")]
        assert pod_link["link_netnsid"] is not None  # the parent stayed on the host
        assert _kind(pod_link)[1].get("mode") == mode
        assert pings[mode].startswith("3 packets transmitted, 3 received"), result.output
    vlan_kind, vlan = _kind(links[("-", "eth-x.100")])
    assert (vlan_kind, vlan.get("protocol"), vlan.get("id")) == ("vlan", "802.1Q", 100)
    macvlan_kind, macvlan = _kind(links[("-", "mv0")])
    assert (macvlan_kind, macvlan.get("mode")) == ("macvlan", "bridge")
    assert _kind(links[("-", "eth-x")])[0] == "dummy"
    assert _kind(links[("-", "eth-y")])[0] == "dummy"
