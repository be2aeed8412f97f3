"""Thin mode: the installed ``multinic-meta`` executed per call, on a directory of objects.

No daemon and no API server: the pod and its NADs are YAML files in an
objects directory (the standalone source), the runtime is ours executing the
plugin as any runtime would. DEL works from the records alone, even after the
objects directory is gone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from multinic.cni.config import parse_network_config_list
from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.kube.directory import DirectorySource
from multinic.lab import netns as lab
from multinic.plugins.install import install_plugins
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.lower_plugins import CheckedNode, on_node


def write_node(root: Path, checked: CheckedNode, pod: str, annotation: str) -> Path:
    """Conf dir, objects dir, bin dir; returns the meta conflist's path."""
    bridge, nic = unique("mntb"), unique("mntd")
    lab.ip("link", "add", nic, "type", "veth", "peer", "name", f"{nic}p", netns=checked.name)
    lab.ip("link", "set", nic, "up", netns=checked.name)
    checked.keep.update({bridge, nic, f"{nic}p"})
    ipam = {"type": "multinic-host-local", "dataDir": str(root / "ipam")}
    (root / "net.d").mkdir()
    cluster = {
        "cniVersion": "1.1.0",
        "name": "cluster",
        "plugins": [
            {
                "type": "multinic-bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipam": {**ipam, "ranges": [[{"subnet": "198.18.90.0/24"}]]},
            }
        ],
    }
    (root / "net.d" / "10-cluster.conflist").write_text(json.dumps(cluster))
    data = {
        "cniVersion": "1.1.0",
        "name": "data",
        "type": "multinic-macvlan",
        "master": nic,
        "ipam": {**ipam, "ranges": [[{"subnet": "198.18.91.0/24"}]]},
    }
    (root / "objects").mkdir()
    objects = [
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "data", "namespace": "cnf"},
            "spec": {"config": json.dumps(data)},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "namespace": "cnf",
                "uid": "uid-1",
                "annotations": {"k8s.v1.cni.cncf.io/networks": annotation},
            },
        },
    ]
    (root / "objects" / "cnf.yaml").write_text(yaml.safe_dump_all(objects))
    meta = {
        "cniVersion": "1.1.0",
        "name": "multinic",
        "plugins": [
            {
                "type": "multinic-meta",
                "clusterNetwork": "cluster",
                "confDir": str(root / "net.d"),
                "objectsDir": str(root / "objects"),
                "stateDir": str(root / "state"),
            }
        ],
    }
    path = root / "meta.conflist"
    path.write_text(json.dumps(meta))
    install_plugins(str(root / "bin"))
    return path


def conf(pod: str) -> RuntimeConf:
    args = (("K8S_POD_NAMESPACE", "cnf"), ("K8S_POD_NAME", pod), ("K8S_POD_UID", "uid-1"))
    return RuntimeConf(f"cid-{pod}", str(lab.netns_path(pod)), "eth0", args)


def test_thin_mode_attaches_reports_and_dels_from_records(
    tmp_path: Path, plugin_node: CheckedNode, pod: str
) -> None:
    conflist = write_node(tmp_path, plugin_node, pod, "data@n3")
    net = parse_network_config_list(conflist.read_bytes())
    runtime = Runtime([tmp_path / "bin", REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")

    on_node(lambda: runtime.add(net, conf(pod)))

    assert lab.link_names(pod) - {"lo"} == {"eth0", "n3"}
    annotations = DirectorySource(tmp_path / "objects").get_pod("cnf", pod).annotations
    status = json.loads(annotations["k8s.v1.cni.cncf.io/network-status"])
    assert [(s["name"], s["interface"]) for s in status] == [
        ("cluster", "eth0"),
        ("cnf/data", "n3"),
    ]
    on_node(lambda: runtime.check(net, conf(pod)))

    shutil.rmtree(tmp_path / "objects")  # no source any more: DEL needs only the records
    on_node(lambda: runtime.delete(net, conf(pod)))
    assert lab.link_names(pod) - {"lo"} == set()
    assert sorted((tmp_path / "ipam").glob("*/198.18.*")) == []
    assert list((tmp_path / "state" / "records").glob("*.json")) == []


def test_thin_mode_refuses_a_malformed_annotation_and_attaches_nothing(
    tmp_path: Path, plugin_node: CheckedNode, pod: str
) -> None:
    conflist = write_node(tmp_path, plugin_node, pod, "data@@n3,")
    net = parse_network_config_list(conflist.read_bytes())
    runtime = Runtime([tmp_path / "bin", REFERENCE_PLUGIN_DIR], cache_dir=tmp_path / "cache")

    try:
        on_node(lambda: runtime.add(net, conf(pod)))
    except CNIError as err:
        assert err.code == 7
        assert f"cnf/{pod}" in str(err)
    else:
        raise AssertionError("a malformed annotation was accepted")
    assert lab.link_names(pod) - {"lo"} == set()
