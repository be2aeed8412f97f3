"""One real node (containerd, kubelet, multinic node) per test module, on the run's cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.kube import KubeCluster
from tests.support.kubelet_node import KubeletNode


@pytest.fixture(scope="module")
def kubelet_node(kube_cluster: KubeCluster) -> Iterator[KubeletNode]:
    with KubeletNode(kube_cluster) as node:
        yield node
