"""What multinic-ipam keeps in a store, read back for the e2e checks (etcd and Kubernetes)."""

from __future__ import annotations

from typing import Any

from multinic.ipam import blocks
from multinic.ipam.store import Store, deadline_after


class StoreState:
    """The node and pool documents of one store, and checks across them."""

    def __init__(self, store: Store) -> None:
        deadline = deadline_after(60)
        self.nodes = self._docs(store.scan("blocks/", deadline=deadline))
        self.pools = self._docs(store.scan("pools/", deadline=deadline))

    @staticmethod
    def _docs(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {key: blocks.decode(key, item) or {} for key, item in found.items()}

    def held(self) -> list[tuple[str, list[str]]]:
        """(address, owner) of every reservation, in document order."""
        return [
            (address, owner)
            for doc in self.nodes.values()
            for block in doc["blocks"].values()
            for address, owner in block["ips"].items()
        ]

    def handle_addresses(self) -> dict[str, list[str]]:
        """Container ID -> the addresses its attachment holds."""
        out: dict[str, list[str]] = {}
        for address, owner in self.held():
            out.setdefault(owner[1], []).append(address)
        return out

    def block_addresses(self) -> list[str]:
        return [address for address, _ in self.held()]

    def assert_consistent(self) -> None:
        """No address held twice, no attachment holding two in one pool, no stray pointer."""
        addresses = self.block_addresses()
        assert len(addresses) == len(set(addresses)), "an address is held twice"
        per_pool = [
            (blocks.split_node_key(key)[0], tuple(owner))
            for key, doc in self.nodes.items()
            for block in doc["blocks"].values()
            for owner in block["ips"].values()
        ]
        assert len(per_pool) == len(set(per_pool)), "an attachment holds two addresses of a pool"
        for key, doc in self.nodes.items():
            for text, holders in doc.get("away", {}).items():
                owner = text.split("/", 2)
                for holder in holders:
                    held = self.nodes.get(holder, {"blocks": {}})["blocks"].values()
                    assert any(owner in b["ips"].values() for b in held), f"{key}: {text} dangles"
