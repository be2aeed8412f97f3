"""The lab's verbs: up, check, status, down, and the failure drills (remove a node, GC).

``up`` builds everything or, on any failure, removes what it made and raises
LabError; ``down`` works from the state file alone, from any process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multinic.cni.config import Attachment
from multinic.cni.errors import CNIError
from multinic.ipam import blocks
from multinic.ipam.store import Store
from multinic.kube.objects import namespace_problem
from multinic.lab import backends, cluster
from multinic.lab import netns as nsutil
from multinic.lab.cluster import LabPaths
from multinic.lab.errors import LabError
from multinic.lab.fabric import l3_networks, route_l3_pods
from multinic.lab.probe import ping_many
from multinic.lab.state import LabState
from multinic.lab.topology import (
    POD_NAMESPACE,
    STATE_ROOT,
    LabLayout,
    LabSpecError,
    NodeLayout,
    lab_layout,
)
from multinic.plan.errors import PlanError
from multinic.plan.result import ClusterPlan, Plan
from multinic.plugins.cluster_ipam import open_store, parse_store

__all__ = ["LabError", "LabSpec", "check", "down", "status", "up"]

DEFAULT_FABRIC = Path(__file__).resolve().parents[3] / "examples" / "fabric.yaml"
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class LabSpec:
    name: str = "mnlab"
    fabric: Path = DEFAULT_FABRIC
    cluster: str | None = None
    nodes: int = 3
    pods: int = 4
    secondaries: int = 2
    overlay: str = "host-gw"  # host-gw: one L2 management segment; vxlan: a routed underlay
    secondary_type: str = "macvlan"  # or "planned": the plan's link types (ipvlan l2/l3)
    store: str = "sqlite"  # or "etcd": a 3-member etcd of the lab's own
    #: An API server for Nodes, Pods and NADs (pod CIDRs from its controller-manager).
    kubeconfig: Path | None = None
    #: With ``kubeconfig``: the controller-manager's --cluster-cidr (default: the plan's).
    pod_block: str | None = None
    #: Run a control plane of the lab's own (etcd, apiserver, controller-manager) and use it.
    kube: bool = False


def load_plan(fabric: Path) -> Plan:
    from multinic.plan.allocate import plan_fabric
    from multinic.plan.parse import load_fabric
    from multinic.plan.validate import validate

    try:
        plan = validate(plan_fabric(load_fabric(fabric)))
    except (PlanError, OSError) as exc:
        raise LabError(f"cannot plan {fabric}: {exc}") from exc
    if plan.errors:
        raise LabError(f"the plan of {fabric} has errors: {plan.errors[0].message}")
    return plan


def choose_cluster(plan: Plan, name: str | None, secondaries: int) -> ClusterPlan:
    for cp in plan.clusters:
        if cp.name == name or (name is None and len(cp.networks) >= secondaries):
            return cp
    wanted = f"cluster {name}" if name else f"a cluster with {secondaries} secondary networks"
    raise LabError(f"the plan has no {wanted}")


def layout_for(spec: LabSpec) -> tuple[LabLayout, ClusterPlan]:
    plan = load_plan(spec.fabric)
    cp = choose_cluster(plan, spec.cluster, spec.secondaries)
    underlay = "routed" if spec.overlay == "vxlan" else "l2"
    try:
        layout = lab_layout(
            spec.name, cp, plan.fabric.name, nodes=spec.nodes, pods=spec.pods,
            secondaries=spec.secondaries, underlay=underlay, mode="auto",
            secondary_type=spec.secondary_type,
        )  # fmt: skip
    except LabSpecError as exc:
        raise LabError(str(exc)) from exc
    if spec.kube and spec.kubeconfig is not None:
        raise LabError("--kube (a control plane of the lab's own) or --kubeconfig, not both")
    if spec.pod_block is not None and spec.kubeconfig is None:
        raise LabError("--pod-block goes with --kubeconfig (otherwise the plan's is used)")
    if spec.kubeconfig is not None or spec.kube:
        layout = _in_api(layout, spec)
    return layout, cp


def _in_api(layout: LabLayout, spec: LabSpec) -> LabLayout:
    """In a shared API server every name is the lab's: the namespace is the lab's name, each
    Node's name starts with it."""
    if namespace_problem(layout.name):
        raise LabError(f"lab name {layout.name!r}: with --kubeconfig, lower case (a namespace)")
    nodes = tuple(dataclasses.replace(n, name=f"{layout.name}-{n.name}") for n in layout.nodes)
    pod_block = layout.pod_block
    if spec.pod_block is not None:
        try:
            pod_block = (str(ipaddress.ip_network(spec.pod_block)),)
        except ValueError as exc:
            raise LabError(f"--pod-block {spec.pod_block}: {exc}") from exc
    return dataclasses.replace(layout, nodes=nodes, namespace=layout.name, pod_block=pod_block)


def _layout_doc(layout: LabLayout) -> dict[str, Any]:
    return {
        "name": layout.name,
        "fabric": layout.fabric,
        "cluster": layout.cluster,
        "underlay": layout.underlay,
        "mode": layout.mode,
        "management": layout.management,
        "dataPlane": list(layout.data_plane),
        "podBlock": list(layout.pod_block),
        "serviceBlock": list(layout.service_block),
        "nodeSubnet": str(layout.node_subnet),
        "secondaryType": layout.secondary_type,
        "namespace": layout.namespace,
        "secondaries": [
            {
                "name": s.name,
                "master": s.master,
                "plannedType": s.planned_type,
                "mode": s.mode,
                "ipam": s.ipam,
                "ranges": list(s.ranges),
            }
            for s in layout.secondaries
        ],
        "nodes": [
            {
                "index": n.index,
                "name": n.name,
                "netns": n.netns,
                "address": str(n.address),
                "gateway": None if n.gateway is None else str(n.gateway),
                "pods": list(n.pods),
                "address6": None if n.address6 is None else str(n.address6),
            }
            for n in layout.nodes
        ],
    }


def layout_from_state(state: LabState) -> LabLayout:
    from multinic.lab.topology import SecondaryLayout

    doc = state.data["layout"]
    return LabLayout(
        name=doc["name"],
        fabric=doc["fabric"],
        cluster=doc["cluster"],
        underlay=doc["underlay"],
        mode=doc["mode"],
        node_subnet=ipaddress.IPv4Network(doc["nodeSubnet"]),
        pod_block=tuple(doc["podBlock"]),
        service_block=tuple(doc["serviceBlock"]),
        management=doc["management"],
        data_plane=tuple(doc["dataPlane"]),
        secondaries=tuple(
            SecondaryLayout(
                s["name"], s["master"], s["plannedType"], s["mode"], s["ipam"], tuple(s["ranges"])
            )
            for s in doc["secondaries"]
        ),
        nodes=tuple(
            NodeLayout(
                n["index"],
                n["name"],
                n["netns"],
                ipaddress.IPv4Interface(n["address"]),
                None if n["gateway"] is None else ipaddress.IPv4Interface(n["gateway"]),
                tuple(n["pods"]),
                None if n.get("address6") is None else ipaddress.IPv6Interface(n["address6"]),
            )
            for n in doc["nodes"]
        ),
        secondary_type=doc.get("secondaryType", "macvlan"),
        namespace=doc.get("namespace", POD_NAMESPACE),
    )


@dataclass
class UpReport:
    layout: LabLayout
    seconds: dict[str, float] = field(default_factory=dict)
    #: Each pod's ADD time in seconds, as its runtime saw it.
    attach: dict[str, float] = field(default_factory=dict)
    #: Machine-wide settings the lab raised (neighbour table limits); ``down`` keeps them.
    host_changes: list[str] = field(default_factory=list)


def up(spec: LabSpec, progress: Progress = _quiet) -> UpReport:
    """Build the lab; on any failure remove everything it made and raise LabError."""
    layout, cp = layout_for(spec)
    if LabState.load(layout.name) is not None or layout.root.exists():
        raise LabError(f"lab {layout.name} already exists: run `multinic lab down {layout.name}`")
    taken = [n for n in _our_namespace_names(layout) if nsutil.netns_path(n).exists()]
    if taken:
        raise LabError(f"network namespace {taken[0]} already exists: not made by this lab")
    cluster.require_link_types(layout)
    report = UpReport(layout)
    state = LabState.create(layout.root, {"layout": _layout_doc(layout)})
    paths = LabPaths(layout.root)
    try:
        _build(spec, layout, cp, paths, state, report, progress)
    except (LabError, CNIError, OSError) as exc:
        progress("failed: removing what was made")
        down(layout.name)
        raise LabError(str(exc)) from exc
    except BaseException:
        down(layout.name)
        raise
    return report


def _our_namespace_names(layout: LabLayout) -> list[str]:
    names = [layout.underlay_netns]
    for node in layout.nodes:
        names.append(node.netns)
        names.extend(layout.pod_netns(p) for p in node.pods)
    return names


def _build(
    spec: LabSpec,
    layout: LabLayout,
    cp: ClusterPlan,
    paths: LabPaths,
    state: LabState,
    report: UpReport,
    progress: Progress,
) -> None:
    began = time.monotonic()
    cluster.install_binaries(paths)
    report.host_changes = cluster.size_neighbour_tables(layout)
    backends.start_store(spec.store, paths, state, progress)
    kubeconfig = spec.kubeconfig
    if spec.kube:
        kubeconfig = backends.start_control_plane(layout, paths, state, progress)
    if kubeconfig is not None:
        backends.use_api(kubeconfig, layout, paths, state, own=spec.kube)
    cluster.build_underlay(layout, state)
    for node in layout.nodes:
        cluster.build_node(layout, node, state)
    objects = cluster.write_objects(layout, cp, paths)
    if kubeconfig is not None:
        backends.make_objects(layout, paths, state, objects, progress)
    backends.start_relay(layout, paths, state)
    report.seconds["namespaces"] = time.monotonic() - began
    progress("nodes built")
    mark = time.monotonic()
    pids = {n.name: cluster.start_daemon(layout, n, paths, state) for n in layout.nodes}
    for node in layout.nodes:
        cluster.wait_daemon(node, paths, pids[node.name], cluster.DAEMON_START_TIMEOUT)
    report.seconds["daemons"] = time.monotonic() - mark
    progress("daemons ready")
    mark = time.monotonic()
    report.attach = cluster.add_pods(layout, layout.all_pods(), paths, state, progress)
    if l3_networks(layout):
        route_l3_pods(layout, addresses(layout, paths))
        progress("ipvlan l3 pods routed between nodes")
    report.seconds["pods"] = time.monotonic() - mark
    report.seconds["total"] = time.monotonic() - began


def require(name: str) -> tuple[LabState, LabLayout, LabPaths]:
    state = LabState.load(name)
    if state is None:
        raise LabError(f"no lab named {name} on this machine (see `multinic lab status`)")
    return state, layout_from_state(state), LabPaths(state.root)


def down(name: str, progress: Progress = _quiet) -> list[str]:
    """Remove the lab: DEL its pods, stop its daemons, delete its API objects, stop its
    helpers (etcd, the API relay), delete its namespaces and files.

    Returns the problems met on the way (nothing is left either way).
    """
    state = LabState.load(name)
    root = STATE_ROOT / name
    problems: list[str] = []
    if state is None:
        shutil.rmtree(root, ignore_errors=True)
        return problems
    paths = LabPaths(state.root)
    with contextlib.suppress(KeyError, ValueError, TypeError):
        layout = layout_from_state(state)
        alive = {n for n, pid in state.data["daemons"].items() if cluster.alive(pid)}
        pods = [
            (node, pod)
            for node, pod in layout.all_pods()
            if node.name in alive and nsutil.netns_path(layout.pod_netns(pod)).exists()
        ]
        problems += cluster.delete_pods(layout, pods, paths)
        progress("pods deleted")
    for node, pid in list(state.data["daemons"].items()):
        cluster.stop_daemon(pid, paths.config(node))
    progress("daemons stopped")
    problems += backends.remove_objects(state)
    backends.stop_helpers(state)
    for namespace in reversed(state.data["namespaces"]):
        try:
            nsutil.delete_netns(namespace)
        except LabError as exc:
            problems.append(str(exc))
    shutil.rmtree(root, ignore_errors=True)
    progress("namespaces removed")
    return problems


# --- checking -----------------------------------------------------------------------


@dataclass
class Probe:
    network: str
    source: str
    source_node: str
    target: str
    target_node: str
    address: str
    ok: bool = False


def addresses(layout: LabLayout, paths: LabPaths) -> dict[str, dict[str, str]]:
    """pod -> network -> its first address on it (from the network-status annotation); the
    IPv6 ones of a dual-stack network as the network ``<name> (IPv6)``."""
    found: dict[str, dict[str, str]] = {}
    for pod, status in cluster.pod_statuses(layout, paths).items():
        by_network: dict[str, str] = {}
        for entry in status:
            name = "primary" if entry.get("default") else entry["name"].split("/")[-1]
            for ip in entry.get("ips", []):
                by_network.setdefault(f"{name} (IPv6)" if ":" in ip else name, ip)
        found[pod] = by_network
    return found


def probes(layout: LabLayout, paths: LabPaths) -> list[Probe]:
    where = {pod: node.name for node, pod in layout.all_pods()}
    known = addresses(layout, paths)
    networks = list(dict.fromkeys(n for found in known.values() for n in found))
    out = []
    for network in networks:
        for source in where:
            for target in where:
                if source != target:
                    address = known.get(target, {}).get(network, "")
                    out.append(
                        Probe(network, source, where[source], target, where[target], address)
                    )
    return out


def check(name: str, progress: Callable[[int], None] | None = None) -> list[Probe]:
    """Every pod to every other pod on every network; ``progress(n)`` after n more probes."""
    _, layout, paths = require(name)
    todo = probes(layout, paths)
    by_source: dict[str, list[Probe]] = {}
    for probe in todo:
        # A pod whose namespace is gone (its node removed) cannot ping: its probes stay failed.
        if probe.address and nsutil.netns_path(layout.pod_netns(probe.source)).exists():
            by_source.setdefault(probe.source, []).append(probe)

    def run(source: str) -> None:
        mine = by_source[source]
        answers = ping_many(
            str(nsutil.netns_path(layout.pod_netns(source))), [p.address for p in mine]
        )
        for probe, ok in zip(mine, answers, strict=True):
            probe.ok = ok
        if progress is not None:
            progress(len(mine))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for outcome in [pool.submit(run, source) for source in by_source]:
            outcome.result()
    return todo


# --- drills -------------------------------------------------------------------------


def remove_node(name: str, node_name: str) -> None:
    """The node leaves: its pods DELeted, its daemon stopped, it leaves the primary network
    (deregistered, or its Node deleted in the API; its routes/FDB go from the others),
    namespaces gone."""
    from multinic.podnet.agent import PodNetAgent
    from multinic.podnet.config import parse_podnet_config

    state, layout, paths = require(name)
    node = _node(layout, node_name)
    pid = state.data["daemons"].get(node.name)
    problems = cluster.delete_pods(layout, [(node, p) for p in node.pods], paths)
    if problems:
        raise LabError("; ".join(problems))
    if pid is not None:
        cluster.stop_daemon(pid, paths.config(node.name))
        state.set_daemon(node.name, None)
    config = parse_podnet_config(cluster.node_config(layout, node, paths)["podnet"])
    agent = PodNetAgent.from_config(
        config, paths.node(node.name) / "net.d", str(nsutil.netns_path(node.netns))
    )
    try:
        agent.network.leave(paths.node(node.name) / "net.d")
    finally:
        agent.stop()
    backends.delete_node(state, node.name)
    for pod in node.pods:
        nsutil.delete_netns(layout.pod_netns(pod))
    nsutil.delete_netns(node.netns)


def _node(layout: LabLayout, name: str) -> NodeLayout:
    for node in layout.nodes:
        if node.name == name:
            return node
    raise LabError(f"lab {layout.name} has no node {name}")


def gc_secondaries(name: str) -> dict[str, list[str]]:
    """Release cluster-wide reservations of attachments whose pod namespace is gone.

    What the runtime's CNI GC does on a real node, for a node that is gone
    altogether (rebooted, its namespaces lost): nobody else will DEL them.
    """
    _, layout, paths = require(name)
    valid = [
        Attachment(f"{layout.name}-{pod}", ifname)
        for _, pod in layout.all_pods()
        if nsutil.netns_path(layout.pod_netns(pod)).exists()
        for ifname in _ifnames(layout)
    ]
    released: dict[str, list[str]] = {}
    store = open_lab_store(paths)
    try:
        for secondary in layout.secondaries:
            if secondary.ipam != "cluster-wide":
                continue
            owners = blocks.gc(store, secondary.name, valid, time.monotonic() + 30)
            released[secondary.name] = [f"{o.container_id}/{o.ifname}" for o in owners]
    finally:
        store.close()
    return released


def open_lab_store(paths: LabPaths) -> Store:
    """The lab's cluster store (SQLite or its etcd), as both IPAMs open it; close it after."""
    return open_store(parse_store({"store": paths.backend.store}, "lab"))


def _ifnames(layout: LabLayout) -> list[str]:
    return [f"net{i}" for i in range(1, len(layout.secondaries) + 1)]


def held(name: str) -> dict[str, list[str]]:
    """The cluster-wide IPAM's attachments per secondary network (for leak checks)."""
    _, layout, paths = require(name)
    store = open_lab_store(paths)
    try:
        return {
            s.name: sorted(
                f"{o.container_id}/{o.ifname}"
                for o in blocks.attachments(store, s.name, time.monotonic() + 30)
            )
            for s in layout.secondaries
            if s.ipam == "cluster-wide"
        }
    finally:
        store.close()


def status(name: str) -> dict[str, Any]:
    """Nodes (namespace, daemon, pod CIDR), pods and their addresses."""
    state, layout, paths = require(name)
    known = addresses(layout, paths)
    nodes = []
    for node in layout.nodes:
        pid = state.data["daemons"].get(node.name)
        conflist = paths.node(node.name) / "net.d" / "10-cluster.conflist"
        cidrs = json.loads(conflist.read_text())["podnet"]["podCIDRs"] if conflist.exists() else []
        nodes.append(
            {
                "name": node.name,
                "netns": node.netns,
                "address": str(node.address),
                "podCIDRs": cidrs,
                "daemon": pid if pid is not None and cluster.alive(pid) else None,
                "pods": {pod: known.get(pod, {}) for pod in node.pods},
            }
        )
    backend = paths.backend
    where = {"store": backend.store["type"], "kubeconfig": backend.kubeconfig}
    return {"lab": _layout_doc(layout) | where | {"nodes": nodes}}
