"""Leaks in Kubernetes terms: reservations whose pod no longer exists.

An ADD whose runtime passed ``K8S_POD_NAMESPACE``/``K8S_POD_NAME``/``K8S_POD_UID``
records the pod (and when) in its reservation. A reservation is a leak when
that pod is gone, or exists with another UID (deleted and created again under
the same name), and it is older than a grace period: a pod still starting is
never collected. Only the Kubernetes store can ask the API server; the CLI
(``multinic ipam gc --pods``) and the node daemon's reconciler use this.
"""

from __future__ import annotations

import time

from multinic.ipam import blocks
from multinic.ipam.kube_store import KubeStore

#: Seconds a reservation is left alone after its ADD.
DEFAULT_GRACE = 300.0


def pods_gone(store: KubeStore, grace: float, deadline: float) -> list[blocks.Found]:
    """Attachments whose recorded pod is gone, their reservation older than ``grace``."""
    now = time.time()
    out = []
    for found in blocks.scan_attachments(store, deadline).values():
        pod = found.pod
        if not isinstance(pod, dict) or not pod.get("name") or not pod.get("namespace"):
            continue  # no pod recorded: left to CNI GC and `gc --network`
        try:
            since = float(pod.get("since", now))
        except (TypeError, ValueError):
            since = now
        if now - since < grace:
            continue
        uid = str(pod.get("uid", ""))
        if store.pod_exists(str(pod["namespace"]), str(pod["name"]), uid, deadline):
            continue
        out.append(found)
    return sorted(out, key=lambda found: found.owner)


def reclaim(store: KubeStore, grace: float, deadline: float) -> list[blocks.Owner]:
    """Release what :func:`pods_gone` finds, then sweep stranded transaction records."""
    gone = pods_gone(store, grace, deadline)
    for found in gone:
        blocks.release(store, found.owner, deadline, found.keys)
    store.sweep(deadline=deadline)
    return [found.owner for found in gone]
