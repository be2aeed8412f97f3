"""``multinic lab``: a small cluster of network namespaces, built from the address plan.

Made, in order, each recorded in the lab's state before it exists:

* an underlay namespace with one bridge per segment: the management segment
  (``l2``: every node on it, so the primary network routes host-gw; or
  ``routed``: one /28 per node and the underlay routing between them, so it
  needs VXLAN) and one L2 segment per data-plane interface;
* per node a namespace with the plan's management interface and data-plane
  interfaces (veths into the underlay), and one ``multinic node`` daemon
  started inside it, running the primary network (``podnet`` on the embedded
  SQLite store) and the meta plugin on a directory of objects;
* per pod a namespace, a Pod object annotated with the secondary networks,
  and a CNI ADD through ``multinic-shim`` as a runtime would do it.

Nothing is made outside the lab's namespaces and its state directory; all
traffic stays inside them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from multinic.kube.directory import DirectorySource
from multinic.kube.objects import NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION
from multinic.lab import kube
from multinic.lab import netns as nsutil
from multinic.lab.errors import LabError
from multinic.lab.state import LabState
from multinic.lab.topology import LabLayout, NodeLayout
from multinic.plan.export import cni_config, node_network_configs
from multinic.plan.result import ClusterPlan
from multinic.plugins.install import install_plugins

#: How long a node daemon may take to join and announce its conflist. Generous: in the
#: QEMU guest (software emulation, ~20x slower Python) a start takes 10-30 s under load,
#: and a daemon that exits is noticed at once anyway.
DAEMON_START_TIMEOUT = 120.0
CONFLIST = "00-multinic.conflist"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class Backend(NamedTuple):
    """Where the lab's cluster state lives: the store of both IPAMs, and the objects' source."""

    #: The store section (``multinic-ipam``'s and ``podnet``'s): SQLite or etcd.
    store: dict[str, Any]
    #: The API server's kubeconfig; None: a directory of objects (``objectsDir``).
    kubeconfig: str | None = None


class LabPaths:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.objects = root / "objects"
        self.db = root / "cluster.db"
        self.backend_file = root / "backend.json"
        self.uids_file = root / "uids.json"

    @property
    def backend(self) -> Backend:
        """As ``lab up`` chose it (SQLite and a directory of objects when it wrote none)."""
        try:
            doc = json.loads(self.backend_file.read_text())
        except FileNotFoundError:
            return Backend({"type": "sqlite", "path": str(self.db)})
        return Backend(doc["store"], doc.get("kubeconfig"))

    def uid(self, lab: LabLayout, pod: str) -> str:
        """The pod's uid: the API server's when it made the Pod, else the lab's own."""
        if self.uids_file.exists():
            return str(json.loads(self.uids_file.read_text())[pod])
        return f"uid-{lab.name}-{pod}"

    def node(self, node: str) -> Path:
        return self.root / "nodes" / node

    def socket(self, node: str) -> Path:
        return self.node(node) / "run" / "cni.sock"

    def config(self, node: str) -> Path:
        return self.node(node) / "node.yaml"

    def log(self, node: str) -> Path:
        return self.node(node) / "daemon.log"


def multinic_executable() -> str:
    beside = Path(sys.executable).parent / "multinic"
    found = str(beside) if beside.exists() else shutil.which("multinic")
    if found is None:
        raise LabError("cannot find the multinic executable (install the package)")
    return found


# --- the underlay and the nodes ------------------------------------------------------


def _veth_to_underlay(lab: LabLayout, node: NodeLayout, ifname: str, bridge: str | None) -> str:
    """A veth from the node's ``ifname`` to the underlay (into ``bridge``, when given)."""
    far = f"n{node.index}-{ifname}"[:15]
    nsutil.ip(
        "link", "add", ifname, "netns", node.netns, "type", "veth", "peer", "name", far,
        netns=lab.underlay_netns,
    )  # fmt: skip
    if bridge is not None:
        nsutil.ip("link", "set", far, "master", bridge, netns=lab.underlay_netns)
    nsutil.ip("link", "set", far, "up", netns=lab.underlay_netns)
    nsutil.ip("link", "set", ifname, "up", netns=node.netns)
    return far


#: The machine's ARP and NDP tables (one each, shared by every namespace).
NEIGHBOUR_LIMITS = ("/proc/sys/net/ipv4/neigh/default", "/proc/sys/net/ipv6/neigh/default")
#: Entries one pod may need per network beyond the pods it shares a segment with.
NEIGHBOURS_BEYOND_NODE = 8


def size_neighbour_tables(lab: LabLayout) -> list[str]:
    """Raise (never lower) the kernel's neighbour table limits to what the lab needs.

    A real node has its own kernel; the lab's nodes and pods share one, whose
    ARP table holds ``gc_thresh3`` entries (1024 by default) across every
    namespace. A lab of 10 x 50 pods overflowed it: neighbours were refused
    (``table_fulls`` in /proc/net/stat/arp_cache) and pods did not answer.
    Returns what changed, as ``path: old -> new``.
    """
    per_node = max((len(n.pods) for n in lab.nodes), default=0)
    pods = sum(len(n.pods) for n in lab.nodes)
    # The matrix makes every pod resolve: on the primary network its node's pods and the
    # gateway; on a secondary (one L2 segment) every other pod. Nodes resolve their pods.
    primary = pods * (per_node + NEIGHBOURS_BEYOND_NODE)
    need = primary + len(lab.secondaries) * pods * (pods + NEIGHBOURS_BEYOND_NODE)
    changed = []
    for table in NEIGHBOUR_LIMITS:
        for name, wanted in (("gc_thresh3", need), ("gc_thresh2", need // 2)):
            path = Path(table) / name
            if not path.exists():
                continue  # not the machine's first namespace: its limits are not ours to see
            old = int(path.read_text())
            if old < wanted:
                path.write_text(str(wanted))
                changed.append(f"{path}: {old} -> {wanted}")
    return changed


def build_underlay(lab: LabLayout, state: LabState) -> None:
    state.add_namespace(lab.underlay_netns)
    nsutil.create_netns(lab.underlay_netns)
    bridges = [] if lab.underlay == "routed" else ["br-mgmt"]
    bridges += [f"br-{ifname}" for ifname in lab.data_plane]
    for bridge in bridges:
        nsutil.ip("link", "add", bridge, "type", "bridge", netns=lab.underlay_netns)
        nsutil.ip("link", "set", bridge, "up", netns=lab.underlay_netns)
    if lab.underlay == "routed":
        nsutil.ip("netns", "exec", lab.underlay_netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")


def build_node(lab: LabLayout, node: NodeLayout, state: LabState) -> None:
    state.add_namespace(node.netns)
    nsutil.create_netns(node.netns)
    mgmt_bridge = None if lab.underlay == "routed" else "br-mgmt"
    far = _veth_to_underlay(lab, node, lab.management, mgmt_bridge)
    nsutil.ip("addr", "add", str(node.address), "dev", lab.management, netns=node.netns)
    if node.address6 is not None:  # unique by construction: no duplicate detection to wait for
        nsutil.ip(
            "addr", "add", str(node.address6), "dev", lab.management, "nodad", netns=node.netns
        )
    if node.gateway is not None:
        nsutil.ip("addr", "add", str(node.gateway), "dev", far, netns=lab.underlay_netns)
        nsutil.ip(
            "route", "add", str(lab.node_subnet), "via", str(node.gateway.ip), netns=node.netns
        )
    for ifname in lab.data_plane:
        _veth_to_underlay(lab, node, ifname, f"br-{ifname}")


# --- configuration: NADs, pods, node configs -------------------------------------------


def _attached_as(lab: LabLayout, config: dict[str, Any]) -> dict[str, Any]:
    """The plan's config of a secondary with the link type and mode the lab attaches it with
    (macvlan bridge on a kernel without ipvlan, or the plan's own)."""
    (secondary,) = (s for s in lab.secondaries if s.name == config["name"])
    kind, mode = lab.link(secondary)
    return {**config, "type": f"multinic-{kind}", "mode": mode}


def require_link_types(lab: LabLayout) -> None:
    """Fail before the lab makes anything if this kernel cannot make a link type it attaches.

    Asked of the kernel itself (a link made in a scratch namespace): that also loads
    the module where the kernel has it as one.
    """
    probe = f"{lab.name}-probe"
    for kind in sorted({lab.link(s)[0] for s in lab.secondaries}):
        try:
            with nsutil.scratch_netns(probe):
                nsutil.ip("link", "add", "master0", "type", "veth", "peer", "name", "peer0",
                          netns=probe)  # fmt: skip
                nsutil.ip("link", "add", "link", "master0", "name", "probe0", "type", kind,
                          netns=probe)  # fmt: skip
        except LabError as exc:
            raise LabError(
                f"this kernel ({os.uname().release}) cannot make {kind} links, which the "
                f"lab's secondary networks need ({exc}): use --secondary-type macvlan, "
                f"or a kernel with {kind} (docs/podnet.md, the lab's secondary networks)"
            ) from exc


def pod_object(lab: LabLayout, node: str, pod: str) -> dict[str, Any]:
    """The Pod object of ``pod`` on ``node``, annotated with every secondary of the lab."""
    annotation = ",".join(s.name for s in lab.secondaries)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod,
            "namespace": lab.namespace,
            "uid": f"uid-{lab.name}-{pod}",  # an API server assigns its own
            "annotations": {NETWORKS_ANNOTATION: annotation} if annotation else {},
        },
        # A valid Pod for an API server too; nothing ever runs its container.
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "containers": [{"name": "pod", "image": "multinic-lab.invalid/none"}],
        },
    }


def write_objects(
    lab: LabLayout, cp: ClusterPlan, paths: LabPaths
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """NADs for the secondaries, Pods annotated with them (files, and returned for an API
    server); per-node network files."""
    paths.objects.mkdir(parents=True)
    chosen = {s.name for s in lab.secondaries}
    store = paths.backend.store
    nads = []
    for np in cp.networks:
        if np.network.name not in chosen:
            continue
        nad: dict[str, Any] = {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": np.network.name, "namespace": lab.namespace},
        }
        if np.network.ipam.value == "cluster-wide":
            config = _attached_as(lab, cni_config(np))
            config["ipam"] = {**config["ipam"], "store": store}
            nad["spec"] = {"config": json.dumps(config)}
        nads.append(nad)
    pods = [pod_object(lab, node.name, pod) for node, pod in lab.all_pods()]
    (paths.objects / "nads.yaml").write_text(yaml.safe_dump_all(nads))
    (paths.objects / "pods.yaml").write_text(yaml.safe_dump_all(pods))
    per_node = node_network_configs(cp)
    for node in lab.nodes:
        conf_dir = paths.node(node.name) / "net.d"
        conf_dir.mkdir(parents=True)
        for name in chosen:
            text = per_node.get(f"multus-net.d/node-{node.index - 1}/{name}.conf")
            if text is not None:
                config = _attached_as(lab, json.loads(text))
                config["ipam"]["dataDir"] = str(paths.node(node.name) / "host-local")
                (conf_dir / f"{name}.conf").write_text(json.dumps(config, indent=2))
    return nads, pods


def node_config(lab: LabLayout, node: NodeLayout, paths: LabPaths) -> dict[str, Any]:
    home = paths.node(node.name)
    backend = paths.backend
    # Against an API server, Pods, NADs and Nodes (their pod CIDRs) come from it.
    source = {"kubeconfig": backend.kubeconfig} if backend.kubeconfig else {}
    return {
        "clusterNetwork": "cluster",
        **(source or {"objectsDir": str(paths.objects)}),
        "confDir": str(home / "net.d"),
        "cniConfigDir": str(home / "runtime-net.d"),
        "socketPath": str(paths.socket(node.name)),
        "stateDir": str(home / "meta"),
        "binDir": str(paths.bin),
        "healthAddress": "127.0.0.1:9489",  # the node namespace's own loopback
        "podnet": {
            "nodeName": node.name,
            "cluster": lab.cluster,
            "podBlock": list(lab.pod_block),
            "serviceBlock": list(lab.service_block),
            "uplink": lab.management,
            "mode": lab.mode,
            **(source or {"store": backend.store}),
            "dataDir": str(home / "podnet"),
            "resync": 0.5,
        },
    }


# --- daemons -------------------------------------------------------------------------


def start_daemon(lab: LabLayout, node: NodeLayout, paths: LabPaths, state: LabState) -> int:
    """``multinic node`` inside the node's namespace; its pid (recorded)."""
    config = paths.config(node.name)
    config.write_text(yaml.safe_dump(node_config(lab, node, paths)))
    # A restarted daemon finds its conflist still there (docs/node.md): shims meanwhile
    # keep trying to connect until it answers.
    command = ["ip", "netns", "exec", node.netns, multinic_executable(), "node", "--config"]
    with paths.log(node.name).open("ab") as log:
        process = subprocess.Popen(
            [*command, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    state.set_daemon(node.name, process.pid)
    return process.pid


def wait_daemon(node: NodeLayout, paths: LabPaths, pid: int, timeout: float) -> None:
    """Until the daemon has written its conflist (it answers then), or it died."""
    conflist = paths.node(node.name) / "runtime-net.d" / CONFLIST
    deadline = time.monotonic() + timeout
    while not conflist.exists():
        if not alive(pid) or time.monotonic() > deadline:
            tail = _tail(paths.log(node.name))
            why = "exited" if not alive(pid) else f"not ready after {timeout:.0f} s"
            raise LabError(f"the daemon of {node.name} {why}; its log ends:\n{tail}")
        time.sleep(0.05)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (reaped first when it is our child, so a zombie counts as gone)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass  # not our child (another process started it): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _is_lab_daemon(pid: int, config: Path) -> bool:
    """The pid still runs our daemon with this config, or a helper with a path under this
    directory in its command line (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(str(config).encode() in arg for arg in cmdline)


def stop_daemon(pid: int, config: Path, *, kill: bool = False, timeout: float = 10.0) -> None:
    if not _is_lab_daemon(pid, config):
        return
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.02)


# --- pods: the runtime's part ---------------------------------------------------------


def cni_env(lab: LabLayout, pod: str, command: str, paths: LabPaths) -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": f"{lab.name}-{pod}",
        "CNI_NETNS": str(nsutil.netns_path(lab.pod_netns(pod))),
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(paths.bin),
        "CNI_ARGS": (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={lab.namespace};K8S_POD_NAME={pod};"
            f"K8S_POD_INFRA_CONTAINER_ID={lab.name}-{pod};K8S_POD_UID={paths.uid(lab, pod)}"
        ),
    }


def shim(lab: LabLayout, node: NodeLayout, pod: str, command: str, paths: LabPaths) -> Any:
    """One CNI call through ``multinic-shim``, with the conflist the daemon wrote."""
    conflist = json.loads((paths.node(node.name) / "runtime-net.d" / CONFLIST).read_text())
    config = {"cniVersion": conflist["cniVersion"], "name": conflist["name"]}
    config.update(conflist["plugins"][0])
    done = subprocess.run(
        [str(paths.bin / "multinic-shim")],
        input=json.dumps(config).encode(),
        env=cni_env(lab, pod, command, paths),
        capture_output=True,
        timeout=120,
        check=False,
    )
    out = json.loads(done.stdout) if done.stdout.strip() else None
    if done.returncode != 0:
        error = out if isinstance(out, dict) else {}
        raise LabError(
            f"{command} of pod {pod} on {node.name} failed: code {error.get('code')}: "
            f"{error.get('msg', done.stderr.decode(errors='replace').strip())}"
            + (f" ({error['details']})" if error.get("details") else "")
        )
    return out


def add_pods(
    lab: LabLayout,
    pods: Iterable[tuple[NodeLayout, str]],
    paths: LabPaths,
    state: LabState,
    progress: Progress = _quiet,
) -> dict[str, float]:
    """Namespaces first (recorded), then every ADD at once, as kubelets on N nodes would.

    Returns each pod's ADD time in seconds (the shim's whole call, as a runtime sees it).
    """
    todo = list(pods)
    for _, pod in todo:
        state.add_namespace(lab.pod_netns(pod))
        nsutil.create_netns(lab.pod_netns(pod))
    seconds: dict[str, float] = {}

    def add(item: tuple[NodeLayout, str]) -> None:
        began = time.monotonic()
        shim(lab, item[0], item[1], "ADD", paths)
        seconds[item[1]] = time.monotonic() - began
        progress(item[1])

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(todo)))) as pool:
        for outcome in [pool.submit(add, item) for item in todo]:
            outcome.result()
    return seconds


def delete_pods(
    lab: LabLayout, pods: Iterable[tuple[NodeLayout, str]], paths: LabPaths
) -> list[str]:
    """DEL through the daemons (best effort: a DEL that fails is reported, not fatal)."""
    problems = []

    def delete(item: tuple[NodeLayout, str]) -> None:
        node, pod = item
        if (paths.node(node.name) / "runtime-net.d" / CONFLIST).exists():
            shim(lab, node, pod, "DEL", paths)

    todo = list(pods)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(todo)))) as pool:
        for (_, pod), outcome in zip(todo, [pool.submit(delete, i) for i in todo], strict=True):
            try:
                outcome.result()
            except (LabError, OSError, subprocess.SubprocessError, ValueError) as exc:
                problems.append(f"{pod}: {exc}")
    return problems


def pod_statuses(lab: LabLayout, paths: LabPaths) -> dict[str, list[dict[str, Any]]]:
    """Every pod's network-status annotation, as the meta plugin wrote it (one source, or one
    API connection, for all of them)."""
    kubeconfig = paths.backend.kubeconfig
    texts: dict[str, str | None] = {}
    if kubeconfig is None:
        source = DirectorySource(paths.objects)
        for _, pod in lab.all_pods():
            found = source.get_pod(lab.namespace, pod)
            texts[pod] = found.annotations.get(NETWORK_STATUS_ANNOTATION)
    else:
        api = kube.LabApi(kubeconfig)
        try:
            for _, pod in lab.all_pods():
                texts[pod] = kube.network_status(api, lab.namespace, pod)
        finally:
            api.close()
    return {pod: json.loads(text) if text else [] for pod, text in texts.items()}


def install_binaries(paths: LabPaths) -> None:
    install_plugins(str(paths.bin))
