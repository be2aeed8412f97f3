"""Choosing the lab's store and API server: names, pod block, and what is refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from multinic.lab import backends, run
from multinic.lab.cluster import LabPaths
from multinic.lab.errors import LabError
from multinic.lab.topology import POD_NAMESPACE

KUBECONFIG = Path("/nonexistent/admin.kubeconfig")  # layout_for never reads it


def test_against_an_api_server_every_name_is_the_lab_s() -> None:
    layout, _ = run.layout_for(
        run.LabSpec(name="lab7", nodes=2, kubeconfig=KUBECONFIG, pod_block="10.32.0.0/16")
    )
    assert layout.namespace == "lab7"
    assert [n.name for n in layout.nodes] == ["lab7-node-1", "lab7-node-2"]
    assert layout.pod_block == ("10.32.0.0/16",)
    standalone, _ = run.layout_for(run.LabSpec(name="lab7", nodes=2))
    assert standalone.namespace == POD_NAMESPACE
    assert [n.name for n in standalone.nodes] == ["node-1", "node-2"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (run.LabSpec(name="Lab7", kubeconfig=KUBECONFIG), "lower case"),
        (run.LabSpec(name="lab7", kubeconfig=KUBECONFIG, pod_block="10.32.0.1/16"), "pod-block"),
        (run.LabSpec(name="lab7", pod_block="10.32.0.0/16"), "goes with --kubeconfig"),
    ],
)
def test_refused_before_anything_is_made(spec: run.LabSpec, match: str) -> None:
    with pytest.raises(LabError, match=match):
        run.layout_for(spec)


def test_pod_cidrs_outside_the_pod_block_name_the_fix() -> None:
    layout, _ = run.layout_for(
        run.LabSpec(name="lab7", nodes=1, kubeconfig=KUBECONFIG, pod_block="10.32.0.0/16")
    )
    backends.check_in_pod_block(layout, {"lab7-node-1": ["10.32.3.0/24"]})
    with pytest.raises(LabError, match="--cluster-cidr"):
        backends.check_in_pod_block(layout, {"lab7-node-1": ["10.244.0.0/24"]})


def test_an_unknown_store_is_refused_and_nothing_written(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    with pytest.raises(LabError, match="sqlite or etcd"):
        backends.start_store("consul", paths, None, lambda _: None)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    assert paths.backend.store == {"type": "sqlite", "path": str(tmp_path / "cluster.db")}
