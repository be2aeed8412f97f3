"""The primary network inside the node daemon: join at start, then reconcile as nodes change.

From the cluster store the node list is polled every ``resync`` seconds (the
store has no watch API shared by SQLite and etcd; one small read a second per
node is cheap). From the API server the agent watches Nodes from the last
list's resourceVersion, one watch request of up to WATCH_SECONDS (or
``resync``, if longer) at a time: a Node added or deleted is reconciled at
once, and the end of a quiet watch is a round too (it repairs what changed
in the kernel meanwhile). A failed round is logged and retried at the next,
never fatal to the daemon; stopping interrupts a watch in progress.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from multinic.cni.errors import CNIError
from multinic.ipam.store import Store
from multinic.plugins.cluster_ipam import open_store, parse_store
from multinic.podnet.config import PodNetConfig
from multinic.podnet.network import PodNetwork
from multinic.podnet.registry import KubeNodeList, StoreRegistry

#: With the API: the longest wait for a Node to change before a round anyway.
WATCH_SECONDS = 30.0


class PodNetAgent:
    """Joins, writes the cluster network's conflist, and keeps routes in step with the nodes."""

    def __init__(self, network: PodNetwork, conf_dir: Path, store: Store | None = None) -> None:
        self.network = network
        self.conf_dir = conf_dir
        self.store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    @classmethod
    def from_config(
        cls, config: PodNetConfig, conf_dir: Path, netns: str | None = None
    ) -> PodNetAgent:
        if config.store is not None:
            store_config = parse_store({"store": dict(config.store)}, "podnet")
            registry = StoreRegistry(
                lambda: open_store(store_config),
                config.cluster,
                config.pod_block,
                config.node_prefix,
            )
            return cls(PodNetwork(config, registry, registry, netns), conf_dir)
        from multinic.kube.nodes import NodeWatch

        nodes = KubeNodeList(NodeWatch.connect(config.kubeconfig))
        return cls(PodNetwork(config, nodes, None, netns), conf_dir)

    def start(self) -> None:
        """Join and write the conflist now (errors raise: this node cannot host pods), then
        reconcile with the other nodes, now and in a thread (failures there are logged: a
        peer that cannot be reached yet must not keep this node's pods from starting)."""
        self.network.join()
        self._round()
        self.network.write_conflist(self.conf_dir)
        self._thread = threading.Thread(target=self._loop, name="podnet", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._pause():
            self._round()

    def _round(self) -> None:
        try:
            for change in self.network.reconcile():
                print(f"multinic node: podnet: {change}", file=sys.stderr, flush=True)
        except (CNIError, OSError) as exc:
            print(f"multinic node: podnet: reconcile failed: {exc}", file=sys.stderr)
        self.rounds += 1

    def _pause(self) -> bool:
        """Until the node list may have changed (a watch event, or ``resync`` seconds);
        whether the agent is stopping."""
        resync = self.network.config.resync
        nodes = self.network.nodes
        if not isinstance(nodes, KubeNodeList):
            return self._stop.wait(resync)
        began = time.monotonic()
        try:
            if nodes.wait_for_change(max(resync, WATCH_SECONDS)):
                return self._stop.is_set()
        except (CNIError, OSError) as exc:
            print(f"multinic node: podnet: watching nodes failed: {exc}", file=sys.stderr)
        # No event (or a failed watch): never look again sooner than resync seconds.
        return self._stop.wait(max(0.0, resync - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + 10
        while self._thread is not None and self._thread.is_alive():
            if isinstance(self.network.nodes, KubeNodeList):
                self.network.nodes.interrupt()  # a watch may have begun just before the stop
            self._thread.join(timeout=0.2)
            if time.monotonic() > deadline:
                break
        if self.store is not None:
            self.store.close()
        if isinstance(self.network.nodes, KubeNodeList):
            self.network.nodes.close()
