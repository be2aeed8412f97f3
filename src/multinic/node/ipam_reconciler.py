"""The node daemon's periodic IPAM reconciler: reservations whose pod is gone are released.

Configured by the node config's ``ipamReconcile`` section (docs/node.md):
every ``interval`` seconds it opens the Kubernetes store, releases the
reservations whose pod no longer exists (by namespace, name and UID) and that
are older than ``grace`` seconds (:mod:`multinic.ipam.pod_gc`), sweeps stranded
transaction records, and closes the store. Every node may run it: releases are
compare-and-swap transactions, so two reconcilers releasing one reservation
cost a retry, never a double free. A failed round is remembered (``last_error``)
and the next round tries again.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from multinic.cni.errors import CNIError
from multinic.ipam import blocks
from multinic.ipam.store import StoreError, deadline_after


class ReconcileSettings(NamedTuple):
    kubeconfig: str | None = None
    scope: str = ""
    interval: float = 300.0
    grace: float = 300.0
    timeout: float = 5.0


class IpamReconciler:
    """Runs :meth:`run_once` every ``interval`` seconds on a thread of its own."""

    def __init__(self, settings: ReconcileSettings) -> None:
        self.settings = settings
        self.rounds = 0
        self.released = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[blocks.Owner]:
        from multinic.ipam import pod_gc
        from multinic.ipam.kube_store import KubeStore

        store = KubeStore.connect(
            self.settings.kubeconfig, timeout=self.settings.timeout, scope=self.settings.scope
        )
        try:
            gone = pod_gc.reclaim(store, self.settings.grace, deadline_after(120))
        finally:
            store.close()
        self.rounds += 1
        self.released += len(gone)
        return gone

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ipam-reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.interval):
            try:
                self.run_once()
                self.last_error = ""
            except (CNIError, StoreError) as exc:
                self.last_error = str(exc)
