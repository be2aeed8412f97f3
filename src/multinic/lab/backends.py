"""Where a lab keeps its cluster state: the store (SQLite or a 3-member etcd) and the objects
(a directory, or a real API server).

``lab up`` records each part in the lab's state before it exists (an etcd
member's pid, the API namespace and Node names) and ``lab down`` removes it
from that record alone: API objects, the API relay, the etcd members.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multinic.kube.rest import load_access
from multinic.lab import cluster, control_plane, kube
from multinic.lab import etcd as lab_etcd
from multinic.lab import netns as nsutil
from multinic.lab.cluster import LabPaths
from multinic.lab.errors import LabError
from multinic.lab.state import LabState
from multinic.lab.topology import LabLayout

#: Seconds for the API relay to listen in every node namespace.
RELAY_START_TIMEOUT = 30.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
STORES = ("sqlite", "etcd")

Progress = Callable[[str], None]


def start_store(store: str, paths: LabPaths, state: LabState, progress: Progress) -> None:
    """The store section both IPAMs use, written where every part of the lab reads it."""
    if store not in STORES:
        raise LabError(f"store {store!r}: the lab runs on {' or '.join(STORES)}")
    section: dict[str, Any] = {"type": "sqlite", "path": str(paths.db)}
    if store == "etcd":
        endpoints = lab_etcd.start_cluster(paths.root / "etcd", state.set_helper)
        lab_etcd.wait_healthy(endpoints)
        section = {"type": "etcd", "endpoints": endpoints}
        progress("etcd ready")
    paths.backend_file.write_text(json.dumps({"store": section}))


def start_control_plane(
    layout: LabLayout, paths: LabPaths, state: LabState, progress: Progress
) -> Path:
    """The lab's own etcd, apiserver and controller-manager (``--kube``): Node pod CIDRs
    from the plan's pod block, services from its service block; the admin kubeconfig."""
    ipv4 = [b for b in layout.pod_block if ":" not in b]
    services = [b for b in layout.service_block if ":" not in b]
    if not ipv4 or not services:
        raise LabError(f"cluster {layout.cluster} has no IPv4 pod or service block in the plan")
    kubeconfig = control_plane.start(paths.root / "kube", ipv4[0], services[0], state.set_helper)
    progress("control plane ready")
    return kubeconfig


def use_api(
    kubeconfig: Path, layout: LabLayout, paths: LabPaths, state: LabState, *, own: bool = False
) -> None:
    """Check the API server has none of the lab's objects yet, then record what the lab will
    make there (so ``lab down`` removes exactly that; nothing when the control plane is the
    lab's ``own``, gone with it)."""
    api = kube.LabApi(str(kubeconfig))
    try:
        if api.get(kube.namespace_path(layout.namespace)) is not None:
            raise LabError(f"namespace {layout.namespace} already exists in the API server")
        for node in layout.nodes:
            if api.get(kube.node_path(node.name)) is not None:
                raise LabError(f"Node {node.name} already exists in the API server")
    finally:
        api.close()
    state.data["kube"] = {
        "own": own,
        "kubeconfig": str(kubeconfig),
        "namespace": layout.namespace,
        "nodes": [node.name for node in layout.nodes],
    }
    state.save()
    doc = json.loads(paths.backend_file.read_text())
    paths.backend_file.write_text(json.dumps({**doc, "kubeconfig": str(kubeconfig)}))


def make_objects(
    layout: LabLayout,
    paths: LabPaths,
    state: LabState,
    objects: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    progress: Progress,
) -> None:
    """Namespace, Nodes (until they have pod CIDRs), NADs and Pods in the API server."""
    kubeconfig = state.data["kube"]["kubeconfig"]
    api = kube.LabApi(kubeconfig)
    try:
        kube.create_namespace(api, layout.namespace)
        for node in layout.nodes:
            kube.register_node(api, layout.name, node.name, str(node.address.ip))
        cidrs = kube.wait_pod_cidrs(api, [node.name for node in layout.nodes])
        check_in_pod_block(layout, cidrs)
        progress("Nodes registered, pod CIDRs allocated")
        uids = kube.create_objects(api, layout.namespace, *objects)
    finally:
        api.close()
    paths.uids_file.write_text(json.dumps(uids))


def check_in_pod_block(layout: LabLayout, cidrs: dict[str, list[str]]) -> None:
    blocks = [ipaddress.ip_network(b) for b in layout.pod_block]
    for node, mine in cidrs.items():
        for cidr in map(ipaddress.ip_network, mine):
            if not any(cidr.version == b.version and cidr.subnet_of(b) for b in blocks):  # type: ignore[arg-type]
                raise LabError(
                    f"Node {node} got pod CIDR {cidr} outside the lab's pod block "
                    f"{', '.join(layout.pod_block)}: give --pod-block the controller-manager's "
                    "--cluster-cidr"
                )


def start_relay(layout: LabLayout, paths: LabPaths, state: LabState) -> None:
    """The loopback ports of the lab's etcd members and API server, in every node namespace
    (the daemons there have a loopback of their own)."""
    backend = paths.backend
    ports = [int(url.rsplit(":", 1)[1]) for url in backend.store.get("endpoints", [])]
    if backend.kubeconfig is not None:
        access = load_access(backend.kubeconfig)
        if access.host in LOOPBACK_HOSTS:
            ports.append(access.port)  # else the node namespaces must route to it themselves
    if not ports:
        return
    ready = paths.root / "relay.ready"
    command = [
        sys.executable, "-m", "multinic.lab.relay", *(f"--port={port}" for port in ports),
        "--ready", str(ready), *(str(nsutil.netns_path(n.netns)) for n in layout.nodes),
    ]  # fmt: skip
    with (paths.root / "relay.log").open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    state.set_helper("relay", process.pid)
    deadline = time.monotonic() + RELAY_START_TIMEOUT
    while not ready.exists():
        if not cluster.alive(process.pid) or time.monotonic() > deadline:
            raise LabError(f"the loopback relay did not start: {paths.root / 'relay.log'}")
        time.sleep(0.05)


def remove_objects(state: LabState) -> list[str]:
    """Every API object the lab recorded (none when it used no API server)."""
    recorded = state.data.get("kube")
    if not recorded or recorded.get("own"):
        return []
    try:
        api = kube.LabApi(recorded["kubeconfig"])
        try:
            kube.remove_all(api, recorded["namespace"], recorded["nodes"])
        finally:
            api.close()
    except LabError as exc:
        return [str(exc)]
    return []


def stop_helpers(state: LabState) -> None:
    """Last started, first stopped: the controller-manager and apiserver before their etcd."""
    for pid in reversed(list(state.data.get("helpers", {}).values())):
        cluster.stop_daemon(pid, state.root)


def delete_node(state: LabState, name: str) -> None:
    """The Node object, as an admin's ``kubectl delete node`` (no API server: nothing)."""
    recorded = state.data.get("kube")
    if recorded:
        api = kube.LabApi(recorded["kubeconfig"])
        try:
            api.delete(kube.node_path(name))
        finally:
            api.close()
