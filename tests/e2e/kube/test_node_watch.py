"""podnet's view of Nodes against the real apiserver: a list, then a watch from its version."""

from __future__ import annotations

import secrets
import threading

import pytest

from multinic.cni.errors import KubeUnavailableError
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


def test_a_waiting_watch_is_interrupted_at_once(kube_cluster: KubeCluster) -> None:
    """What the agent's stop does: the daemon never waits out a watch to exit."""
    watch = NodeWatch.connect(kube_cluster.kubeconfig)
    ended: list[object] = []

    def wait() -> None:
        try:
            ended.append(watch.wait_for_change(600))
        except KubeUnavailableError as exc:  # the TLS stream cut short: also an end
            ended.append(exc)

    try:
        watch.list_nodes()
        waiter = threading.Thread(target=wait)
        waiter.start()
        tries = 0
        # As PodNetAgent.stop: again until it ends (the first may come before the connection
        # exists); far fewer tries than the 600 s the watch would otherwise wait.
        while waiter.is_alive() and tries < 1500:
            watch.interrupt()
            waiter.join(timeout=0.2)
            tries += 1

        assert not waiter.is_alive()
        assert ended and ended[0] is not True  # interrupted: no event was seen
    finally:
        watch.close()
