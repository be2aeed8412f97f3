"""What ``multinic ipam release`` and ``gc`` would free, checked before anything is freed.

The plugin's own GC gets its valid-attachments list from the runtime; a person
typing ``gc`` can mistype a network, a container ID or an interface. So a
network that holds nothing, and a keep entry that matches no attachment, are
errors here: a typo in ``--keep`` would otherwise release the very attachment
it meant to keep. Releasing is done attachment by attachment on the list that
was checked (and shown by ``--dry-run``), never on a fresh scan, so an
attachment added meanwhile is not released by surprise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from multinic.ipam.blocks import Owner
    from multinic.ipam.ranges import IPNetwork
    from multinic.ipam.store import Store


def parse_keep(items: Iterable[str]) -> set[tuple[str, str]]:
    """``CONTAINER_ID/IFNAME`` entries of ``--keep``."""
    keep = set()
    for item in items:
        container_id, slash, ifname = item.partition("/")
        if not slash or not container_id or not ifname:
            raise click.BadParameter(f"{item!r} is not CONTAINER_ID/IFNAME", param_hint="--keep")
        keep.add((container_id, ifname))
    return keep


def attachments_of(store: Store, network: str, deadline: float) -> list[Owner]:
    """The attachments of ``network``; an error naming the known networks when there are none."""
    from multinic.ipam import blocks

    found = blocks.attachments(store, network, deadline)
    if not found:
        known = ", ".join(blocks.networks(store, deadline)) or "none"
        raise click.ClickException(
            f"no attachment of network {network!r} holds an address "
            f"(networks holding addresses: {known})"
        )
    return found


def to_collect(
    store: Store, network: str, keep: set[tuple[str, str]], deadline: float
) -> list[Owner]:
    """The attachments of ``network`` not in ``keep``; every keep entry must name one."""
    found = attachments_of(store, network, deadline)
    present = {(o.container_id, o.ifname) for o in found}
    unknown = sorted(keep - present)
    if unknown:
        cid, ifname = unknown[0]
        raise click.ClickException(
            f"--keep {cid}/{ifname} is not an attachment of network {network!r} "
            f"({len(unknown)} such entries; a typo would release what it meant to keep): "
            "nothing released"
        )
    return [o for o in found if (o.container_id, o.ifname) not in keep]


def pods_gone(store: Store, grace: float, deadline: float) -> list[Owner]:
    """Attachments whose pod is gone (multinic.ipam.pod_gc); the Kubernetes store only."""
    from multinic.ipam import pod_gc
    from multinic.ipam.kube_store import KubeStore

    if not isinstance(store, KubeStore):
        raise click.UsageError("--pods needs the Kubernetes store (--kubeconfig)")
    return [found.owner for found in pod_gc.pods_gone(store, grace, deadline)]


def empty_blocks(store: Store, deadline: float) -> list[tuple[str, IPNetwork]]:
    """(pool, block) of every claimed block that holds no address: what gc would give back."""
    from multinic.ipam import blocks

    out = []
    for pool_id in blocks.pool_ids(store, deadline):
        state = blocks.pool_state(store, pool_id, deadline)
        if state is None:
            continue
        used = {h.block for h in state.held}
        out += [(pool_id, b) for b in sorted(state.blocks, key=_order) if b not in used]
    return out


def _order(block: IPNetwork) -> tuple[int, int]:
    return block.version, int(block.network_address)
