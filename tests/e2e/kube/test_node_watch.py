"""podnet's view of Nodes against the real apiserver: a list, then a watch from its version."""

from __future__ import annotations

import secrets
import threading

import pytest

from multinic.kube.nodes import NodeWatch
from tests.support.kube import KubeCluster

pytestmark = [pytest.mark.e2e, pytest.mark.kube]


def test_a_watch_ends_at_the_first_change_after_the_list(kube_cluster: KubeCluster) -> None:
    name = f"h13kube-watch-{secrets.token_hex(3)}"
    watch = NodeWatch.connect(kube_cluster.kubeconfig)
    try:
        assert name not in {n.name for n in watch.list_nodes()}
        assert watch.version
        seen: list[bool] = []
        waiter = threading.Thread(target=lambda: seen.append(watch.wait_for_change(120)))
        waiter.start()
        kube_cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.10.2.99"}]},
            }
        )
        waiter.join(timeout=180)

        assert seen == [True]  # an event, not the end of the wait
        listed = {n.name: n for n in watch.list_nodes()}
        assert name in listed
    finally:
        kube_cluster.kubectl("delete", "node", name, "--ignore-not-found", check=False)
        watch.close()
