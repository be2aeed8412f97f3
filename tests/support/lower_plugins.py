"""Driving macvlan/ipvlan/vlan/host-device plugins in tests: in-process and observed with ip.

Shared by tests/netns/plugins (this host) and tests/guest_kernel (the QEMU guest).

On this host the plugins' "host" side is a scratch namespace standing in for the
node (:func:`scratch_node`): the plugin runs in a thread that entered it, so its
masters and devices never sit in the real host's namespace. In the guest, a VM
of its own, the guest's namespace is the host.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from multinic.cni import skel
from multinic.dataplane import Netns, open_netns, run_in_netns
from multinic.lab import netns as lab
from multinic.plugins.nftables import TABLE
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique

T = TypeVar("T")


class Node(NamedTuple):
    """A namespace standing in for the node: its name for ``ip -n`` and our handle."""

    name: str
    ns: Netns


#: The node the plugin calls below run in (None: the calling thread's namespace).
ACTIVE_NODE: list[Node] = []


@contextlib.contextmanager
def scratch_node() -> Iterator[Node]:
    """A node namespace that plugin calls run in until the block ends."""
    name = unique("mnt-node-")
    with lab.scratch_netns(name) as path, open_netns(str(path)) as ns:
        node = Node(name, ns)
        ACTIVE_NODE.append(node)
        try:
            yield node
        finally:
            ACTIVE_NODE.remove(node)


def on_node(fn: Callable[[], T]) -> T:
    """Run ``fn`` in the active node's namespace (a thread that entered it), if any."""
    return run_in_netns(ACTIVE_NODE[-1].ns, fn) if ACTIVE_NODE else fn()


def node_name() -> str | None:
    """The active node's name for ``ip -n`` (None: this namespace)."""
    return ACTIVE_NODE[-1].name if ACTIVE_NODE else None


#: The families of nftables tables named ``multinic`` the bridge and ptp plugins write.
NFT_FAMILIES = ("inet", "bridge")


def nft_rule_count(family: str, netns: str | None = None) -> int | None:
    """Rules in multinic's ``family`` table (in ``netns``); None when the table does not exist."""
    where = ["ip", "netns", "exec", netns] if netns else []
    done = subprocess.run(
        [*where, "nft", "-j", "list", "table", family, TABLE], capture_output=True, check=False
    )
    if done.returncode != 0:
        return None
    items = json.loads(done.stdout or b"{}").get("nftables", [])
    return sum(1 for item in items if "rule" in item)


class CheckedNode(NamedTuple):
    """A scratch node; ``keep`` names the links (beside loopback) it may end with."""

    name: str
    keep: set[str]


def _links_left(netns: str, keep: set[str], patience: float = 3.0) -> set[str]:
    # The kernel removes a veth asynchronously when its peer's namespace goes
    # (a test that deletes its pod before DEL), so give it a moment.
    deadline = time.monotonic() + patience
    while (left := lab.link_names(netns) - keep) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@contextlib.contextmanager
def checked_node() -> Iterator[CheckedNode]:
    """:func:`scratch_node` that, when the block ends normally, fails on anything left in it.

    Left means a link beyond loopback and ``keep`` (a host veth DEL forgot) or a
    rule in multinic's nftables tables (a masquerade or spoof-check rule DEL
    forgot). Deleting the namespace then removes the rest. Make the pods before
    entering it, so their host veths are still there to be seen.
    """
    with scratch_node() as node:
        checked = CheckedNode(node.name, {"lo"})
        yield checked
        leaked = sorted(_links_left(node.name, checked.keep))
        details = lab.ip("-d", "link", "show", netns=node.name) if leaked else ""
        rules = {f: n for f in NFT_FAMILIES if (n := nft_rule_count(f, node.name))}
        assert not leaked and not rules, (
            f"left behind in the node: links {leaked}, nftables rules {rules}\n{details}"
        )


V4 = "v4"
V6 = "v6"
DUAL = "dual"


def ranges(stack: str, v4: str, v6: str) -> list[list[dict[str, str]]]:
    """host-local range sets for one stack."""
    sets = []
    if stack in (V4, DUAL):
        sets.append([{"subnet": v4}])
    if stack in (V6, DUAL):
        sets.append([{"subnet": v6}])
    return sets


def host_local(data_dir: Path, stack: str, v4: str, v6: str, **extra: Any) -> dict[str, Any]:
    """multinic-host-local (in-process delegation) on the test's subnets."""
    return {
        "type": "multinic-host-local",
        "dataDir": str(data_dir),
        "ranges": ranges(stack, v4, v6),
        **extra,
    }


def conf(
    plugin: str, name: str, ipam: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    obj: dict[str, Any] = {"cniVersion": "1.1.0", "name": name, "type": plugin, **fields}
    if ipam is not None:
        obj["ipam"] = ipam
    return obj


def call(
    plugin: skel.Plugin,
    command: str,
    config: dict[str, Any],
    pod: str | None,
    *,
    cid: str = "cid-1",
    ifname: str = "net1",
    args: str = "",
    netns: str | None = None,
) -> tuple[int, Any]:
    """One verb in-process through the plugin entry; (status, decoded stdout or None)."""
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns if netns is not None else (str(lab.netns_path(pod)) if pod else ""),
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(REFERENCE_PLUGIN_DIR),
        "CNI_ARGS": args,
    }
    status, out = on_node(lambda: skel.run(plugin, env, json.dumps(config).encode()))
    return status, json.loads(out) if out.strip() else None


def ok(
    plugin: skel.Plugin, command: str, config: dict[str, Any], pod: str | None, **kw: Any
) -> Any:
    status, out = call(plugin, command, config, pod, **kw)
    assert status == 0, out
    return out


def with_prev(config: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return {**config, "prevResult": result}


def link(netns: str | None, ifname: str) -> dict[str, Any]:
    """``ip -d -j link show`` of one link."""
    [found] = lab.ip_json("-d", "link", "show", "dev", ifname, netns=netns)
    return found


def kind_of(netns: str | None, ifname: str) -> tuple[str, dict[str, Any]]:
    info = link(netns, ifname).get("linkinfo", {})
    return info.get("info_kind", ""), info.get("info_data", {})


def reservations(data_dir: Path, network: str) -> set[str]:
    """host-local's reserved addresses (one file per address)."""
    directory = data_dir / network
    if not directory.exists():
        return set()
    return {p.name for p in directory.iterdir() if not p.name.startswith(("last_reserved", "lock"))}


def ping(pod: str, address: str) -> None:
    """One ping from ``pod``; raises LabError if it gets no answer."""
    lab.ip("netns", "exec", pod, "ping", "-c", "1", "-W", "5", address)


def pod_links(pod: str) -> set[str]:
    return lab.link_names(pod)


def address_only(cidr: str) -> str:
    return cidr.split("/")[0]
