"""``multinic-ipam``: cluster-wide IPAM with Whereabouts' config fields, on SQLite, etcd or
the Kubernetes API.

The ``ipam`` section reads as Whereabouts' does (``range`` also as
``a-b/cidr``, ``range_start``, ``range_end``, ``exclude``, ``gateway``,
``ipRanges``, ``network_name``, ``enable_overlapping_ranges``, ``routes``,
``dns``) plus a ``store`` section: ``{"type": "sqlite", "path": ...}`` (the
default, embedded), ``{"type": "etcd", "endpoints": [...], "timeout": ...}`` or
``{"type": "kubernetes", "kubeconfig": ...}`` (also Whereabouts' spellings:
``datastore``/``etcd_*``, ``kubernetes.kubeconfig``, ``configuration_path``).
Addresses come from per-node blocks (:mod:`multinic.ipam.blocks`).

Lean on purpose: the etcd and Kubernetes clients are imported only when the
config names that store.
"""

from __future__ import annotations

import os
import re
import time
from _thread import allocate_lock
from collections.abc import Mapping, Sequence

from multinic.cni import skel
from multinic.cni.errors import (
    CNIError,
    InvalidConfigError,
    IOFailureError,
    PluginNotAvailableError,
    TryAgainLaterError,
    UnknownContainerError,
    UnsupportedFieldError,
)
from multinic.cni.types import DNS, IPConfig, Result, Route
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.ipam import blocks
from multinic.ipam.allocator import AddressUnavailableError
from multinic.ipam.doc_cache import DocumentCache
from multinic.ipam.netconf import parse_dns, parse_routes, plain_address, requested_ips
from multinic.ipam.ranges import (
    IPAddress,
    IPRange,
    RangeConfigError,
    RangeSet,
    check_no_overlap,
    parse_whereabouts_range,
)
from multinic.ipam.store import Store, StoreError, StoreUnavailableError, deadline_after
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any, NoReturn

PLUGIN_TYPE = "multinic-ipam"
DEFAULT_DB_PATH = "/var/lib/multinic/ipam.db"
DEFAULT_DEADLINE = 10.0
DEFAULT_ETCD_TIMEOUT = 2.0
DEFAULT_KUBE_TIMEOUT = 5.0
NODE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

#: Whereabouts fields we do not implement and must not silently ignore:
#: static-plugin style extra addresses.
UNSUPPORTED_FIELDS = ("addresses",)

#: etcd TLS and authentication: our store field -> Whereabouts' top-level name.
ETCD_SECURITY_FIELDS = {
    "ca_file": "etcd_ca_cert_file",
    "cert_file": "etcd_cert_file",
    "key_file": "etcd_key_file",
    "username": "etcd_username",
    "password": "etcd_password",
}


class StoreConfig(NamedTuple):
    """Where reservations live, and how long one operation may take."""

    type: str
    path: str = DEFAULT_DB_PATH
    endpoints: tuple[str, ...] = ()
    timeout: float = DEFAULT_ETCD_TIMEOUT
    prefix: str = "/multinic/ipam/"
    deadline: float = DEFAULT_DEADLINE
    #: (etcd) TLS files and credentials, by ETCD_SECURITY_FIELDS' names
    security: tuple[tuple[str, str], ...] = ()
    #: (kubernetes) the kubeconfig; None: the pod's service account (in-cluster)
    kubeconfig: str | None = None
    #: (kubernetes) a label that keeps independent stores on one API server apart
    scope: str = ""


class IPAMConfig(NamedTuple):
    """The ``ipam`` section of a ``multinic-ipam`` network, parsed."""

    network: str
    node: str
    pools: tuple[blocks.Pool, ...]
    routes: tuple[Route, ...]
    dns: DNS
    store: StoreConfig


# --- config ------------------------------------------------------------------------


def parse_config(raw: Mapping[str, Any], network: str) -> IPAMConfig:
    """Parse the ``ipam`` section of network ``network``; code 2 or 7 on bad input."""
    where = "ipam"
    for field in UNSUPPORTED_FIELDS:
        if field in raw:
            raise UnsupportedFieldError(f"{PLUGIN_TYPE}: {where}.{field} is not supported", field)
    namespace = _optional_string(raw, "network_name", where) or blocks.DEFAULT_NAMESPACE
    if namespace != blocks.DEFAULT_NAMESPACE and not NODE_NAME_RE.fullmatch(namespace):
        raise InvalidConfigError(f"{PLUGIN_TYPE}: {where}.network_name {namespace!r} is invalid")
    protect = _boolean(raw, "enable_overlapping_ranges", where, True)
    prefixes = _block_prefixes(raw, where)
    ranges = _ranges(raw, where)
    return IPAMConfig(
        network=network,
        node=_node_name(raw, where),
        pools=tuple(
            blocks.Pool(namespace, r, max(prefixes[r.version], r.subnet.prefixlen), protect)
            for r in ranges
        ),
        routes=parse_routes(raw.get("routes"), f"{where}.routes"),
        dns=parse_dns(raw.get("dns"), f"{where}.dns"),
        store=_store(raw, where),
    )


def _ranges(raw: Mapping[str, Any], where: str) -> list[IPRange]:
    ranges = []
    gateway = raw.get("gateway")
    if raw.get("range") is not None:
        ranges.append(
            parse_whereabouts_range(
                raw.get("range"),
                raw.get("range_start"),
                raw.get("range_end"),
                raw.get("exclude"),
                gateway,
                where,
            )
        )
    extra = raw.get("ipRanges", [])
    if not isinstance(extra, list):
        raise RangeConfigError(f"{where}.ipRanges must be a list")
    for n, item in enumerate(extra):
        at = f"{where}.ipRanges[{n}]"
        if not isinstance(item, dict):
            raise RangeConfigError(f"{at} must be an object")
        item_gateway = item.get("gateway")
        if item_gateway is None and gateway is not None and not ranges:
            item_gateway = gateway  # the top-level gateway when there is no top-level range
        ranges.append(
            parse_whereabouts_range(
                item.get("range"),
                item.get("range_start"),
                item.get("range_end"),
                item.get("exclude"),
                item_gateway,
                at,
            )
        )
    if not ranges:
        raise RangeConfigError(f"{where}: no range given (set 'range' or 'ipRanges')")
    check_no_overlap([RangeSet((r,)) for r in ranges], f"{where} range %d")
    return ranges


def _block_prefixes(raw: Mapping[str, Any], where: str) -> dict[int, int]:
    out = dict(blocks.DEFAULT_BLOCK_PREFIX)
    for version, key, high in ((4, "block_prefix_v4", 32), (6, "block_prefix_v6", 128)):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= high:
            raise InvalidConfigError(
                f"{PLUGIN_TYPE}: {where}.{key} must be a prefix length 1-{high}, not {value!r}"
            )
        out[version] = value
    # Whereabouts' node_slice_size ("/28" or "28") is the same idea: a slice per node,
    # as a prefix length of the range's own family.
    size = raw.get("node_slice_size")
    if size is not None:
        text = str(size).lstrip("/")
        if not text.isdigit() or not 0 < int(text) <= 128:
            raise InvalidConfigError(f"{PLUGIN_TYPE}: {where}.node_slice_size {size!r} is invalid")
        if int(text) <= 32:
            out[4] = int(text)
        out[6] = int(text)
    return out


#: The node's name in the environment (Whereabouts' variable): the node daemon sets it to
#: its ``podnet.nodeName``, since nodes sharing one host (the lab) share its host name.
NODE_NAME_ENV = "NODENAME"


def _node_name(raw: Mapping[str, Any], where: str) -> str:
    node = (
        _optional_string(raw, "node_name", where)
        or os.environ.get(NODE_NAME_ENV, "").strip()
        or os.uname().nodename
    )
    if not NODE_NAME_RE.fullmatch(node):
        raise InvalidConfigError(f"{PLUGIN_TYPE}: node name {node!r} is invalid", where)
    return node


def parse_store(raw: Mapping[str, Any], where: str) -> StoreConfig:
    """The ``store`` section of ``raw`` (or Whereabouts' fields), as multinic-ipam reads it."""
    return _store(raw, where)


def _store(raw: Mapping[str, Any], where: str) -> StoreConfig:
    section = raw.get("store")
    if section is None:
        return _whereabouts_store(raw, where)
    at = f"{where}.store"
    if not isinstance(section, dict):
        raise InvalidConfigError(f"{PLUGIN_TYPE}: {at} must be an object")
    kind = section.get("type", "sqlite")
    deadline = _seconds(section, "deadline", at, DEFAULT_DEADLINE)
    if kind == "sqlite":
        path = _optional_string(section, "path", at) or DEFAULT_DB_PATH
        if not path.startswith("/"):
            raise InvalidConfigError(f"{PLUGIN_TYPE}: {at}.path must be an absolute path")
        return StoreConfig("sqlite", path=path, deadline=deadline)
    if kind == "etcd":
        endpoints = section.get("endpoints")
        if (
            not isinstance(endpoints, list)
            or not endpoints
            or not all(isinstance(e, str) and e for e in endpoints)
        ):
            raise InvalidConfigError(f"{PLUGIN_TYPE}: {at}.endpoints must be a list of URLs")
        return StoreConfig(
            "etcd",
            endpoints=tuple(endpoints),
            security=_etcd_security(section, at, {k: k for k in ETCD_SECURITY_FIELDS}),
            timeout=_seconds(section, "timeout", at, DEFAULT_ETCD_TIMEOUT),
            prefix=_optional_string(section, "prefix", at) or "/multinic/ipam/",
            deadline=deadline,
        )
    if kind == "kubernetes":
        return _kube_store(section, at, deadline)
    raise InvalidConfigError(
        f"{PLUGIN_TYPE}: {at}.type must be 'sqlite', 'etcd' or 'kubernetes', not {kind!r}"
    )


def _kube_store(section: Mapping[str, Any], at: str, deadline: float) -> StoreConfig:
    kubeconfig = _optional_string(section, "kubeconfig", at) or None
    if kubeconfig is not None and not kubeconfig.startswith("/"):
        raise InvalidConfigError(f"{PLUGIN_TYPE}: {at}.kubeconfig must be an absolute path")
    return StoreConfig(
        "kubernetes",
        kubeconfig=kubeconfig,
        scope=_optional_string(section, "scope", at),
        timeout=_seconds(section, "timeout", at, DEFAULT_KUBE_TIMEOUT),
        deadline=deadline,
    )


def _whereabouts_store(raw: Mapping[str, Any], where: str) -> StoreConfig:
    """Whereabouts' own spelling: ``"datastore": "etcd", "etcd_host": "host:port"``, or
    ``"kubernetes": {"kubeconfig": PATH}`` (with ``"datastore": "kubernetes"`` or none)."""
    datastore = raw.get("datastore")
    kube = raw.get("kubernetes")
    if kube is not None and datastore in (None, "kubernetes"):
        if not isinstance(kube, dict):
            raise InvalidConfigError(f"{PLUGIN_TYPE}: {where}.kubernetes must be an object")
        return _kube_store(kube, f"{where}.kubernetes", DEFAULT_DEADLINE)
    if datastore == "kubernetes":
        return StoreConfig("kubernetes")  # no kubeconfig: the pod's service account
    if datastore is None:
        return StoreConfig("sqlite")
    if datastore != "etcd":
        raise UnsupportedFieldError(
            f"{PLUGIN_TYPE}: {where}.datastore {datastore!r} is not supported", "datastore"
        )
    host = _optional_string(raw, "etcd_host", where)
    if not host:
        raise InvalidConfigError(f"{PLUGIN_TYPE}: {where}.etcd_host is required with etcd")
    return StoreConfig(
        "etcd",
        endpoints=tuple(h.strip() for h in host.split(",")),
        security=_etcd_security(raw, where, ETCD_SECURITY_FIELDS),
    )


def _etcd_security(
    raw: Mapping[str, Any], where: str, names: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """TLS files (absolute paths) and credentials, as (our name, value) pairs."""
    out = []
    for ours, field in names.items():
        value = _optional_string(raw, field, where)
        if not value:
            continue
        if ours.endswith("_file") and not value.startswith("/"):
            raise InvalidConfigError(f"{PLUGIN_TYPE}: {where}.{field} must be an absolute path")
        out.append((ours, value))
    return tuple(out)


def _seconds(raw: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidConfigError(
            f"{PLUGIN_TYPE}: {where}.{key} must be a positive number of seconds"
        )
    return float(value)


def _optional_string(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidConfigError(f"{PLUGIN_TYPE}: {where}.{key} must be a string")
    if "\0" in value:
        raise InvalidConfigError(f"{PLUGIN_TYPE}: {where}.{key} must not contain a NUL character")
    return value


def _boolean(raw: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise InvalidConfigError(f"{PLUGIN_TYPE}: {where}.{key} must be true or false")
    return value


# --- requested addresses ------------------------------------------------------------


def requested_addresses(request: skel.Request) -> list[IPAddress]:
    """Addresses asked for by ``IP=`` in CNI_ARGS, ``args.cni.ips`` or the ``ips`` capability."""
    return [plain_address(ip) for ip in requested_ips(request.config, request.args)]


def match_requested(
    pools: Sequence[blocks.Pool], wanted: Sequence[IPAddress]
) -> tuple[IPAddress | None, ...]:
    """Each pool's requested address (None: allocate one); refuses one that fits no range."""
    out: list[IPAddress | None] = [None] * len(pools)
    for address in wanted:
        index = next((i for i, p in enumerate(pools) if address in p.range), None)
        if index is None:
            raise AddressUnavailableError(
                f"requested IP address {address} is not in any configured range",
                ", ".join(str(p.range) for p in pools),
            )
        if out[index] is not None:
            raise AddressUnavailableError(
                f"requested IP addresses {out[index]} and {address} are in the same range"
            )
        out[index] = address
    return tuple(out)


# --- the plugin ------------------------------------------------------------------------


def open_store(config: StoreConfig) -> Store:
    """The configured store; the etcd and Kubernetes modules are imported only when named."""
    if config.type == "kubernetes":
        from multinic.ipam.kube_store import KubeStore

        try:
            return KubeStore.connect(config.kubeconfig, timeout=config.timeout, scope=config.scope)
        except StoreError as exc:
            raise InvalidConfigError(
                f"{PLUGIN_TYPE}: bad kubernetes store config", str(exc)
            ) from exc
    if config.type == "etcd":
        from multinic.ipam.etcd_client import Security
        from multinic.ipam.etcd_store import EtcdStore

        try:
            return EtcdStore(
                list(config.endpoints),
                timeout=config.timeout,
                prefix=config.prefix,
                security=Security(**dict(config.security)),
            )
        except StoreError as exc:
            raise InvalidConfigError(f"{PLUGIN_TYPE}: bad etcd store config", str(exc)) from exc
    from multinic.ipam.sqlite_store import SQLiteStore

    try:
        return SQLiteStore(config.path)
    except StoreUnavailableError as exc:  # other processes held the file all along
        raise TryAgainLaterError(f"{PLUGIN_TYPE}: cannot open the IPAM store", str(exc)) from exc
    except StoreError as exc:
        raise IOFailureError(f"{PLUGIN_TYPE}: cannot open the IPAM store", str(exc)) from exc


def ipam_section(request: skel.Request) -> Mapping[str, Any]:
    raw = request.config.ipam
    if raw is None:
        raise InvalidConfigError(f"{PLUGIN_TYPE}: the network config has no ipam section")
    return with_flat_file(raw)


def with_flat_file(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """Whereabouts' ``configuration_path``: a JSON file of defaults (typically its
    ``kubernetes.kubeconfig`` or ``datastore``) under the ``ipam`` section's own fields."""
    path = raw.get("configuration_path")
    if path is None:
        return raw
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidConfigError(f"{PLUGIN_TYPE}: ipam.configuration_path must be an absolute path")
    import json

    try:
        with open(path, "rb") as handle:
            flat = json.load(handle)
    except (OSError, ValueError) as exc:
        raise InvalidConfigError(
            f"{PLUGIN_TYPE}: cannot read ipam.configuration_path {path}", str(exc)
        ) from exc
    if not isinstance(flat, dict):
        raise InvalidConfigError(f"{PLUGIN_TYPE}: {path} must hold a JSON object")
    merged = {**flat, **raw}
    del merged["configuration_path"]
    return merged


def load(request: skel.Request) -> IPAMConfig:
    return parse_config(ipam_section(request), request.config.name)


def pod_of(request: skel.Request) -> dict[str, Any] | None:
    """The pod an ADD is for (K8S_POD_* in CNI_ARGS), recorded so GC can tell when it is gone."""
    args = dict(request.args)
    if not args.get("K8S_POD_NAME") or not args.get("K8S_POD_NAMESPACE"):
        return None
    return {
        "namespace": args["K8S_POD_NAMESPACE"],
        "name": args["K8S_POD_NAME"],
        "uid": args.get("K8S_POD_UID", ""),
        "since": round(time.time(), 3),
    }


def _owner(config: IPAMConfig, request: skel.Request) -> blocks.Owner:
    return blocks.Owner(config.network, request.container_id, request.ifname)


def build_result(
    config: IPAMConfig, held: Sequence[blocks.Reservation], cni_version: str
) -> Result:
    by_pool = {p.id: p for p in config.pools}
    ips = []
    for r in held:
        pool = by_pool[r.pool]
        ips.append(IPConfig(pool.range.interface(r.address), pool.range.gateway))
    return Result(cni_version=cni_version, ips=tuple(ips), routes=config.routes, dns=config.dns)


class ClusterIPAM:
    """The ``multinic-ipam`` plugin object (the executable and the node daemon share it)."""

    name = PLUGIN_TYPE
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        config = load(request)
        wanted = match_requested(config.pools, requested_addresses(request))
        owner = _owner(config, request)
        ask = blocks.Request(owner, config.node, config.pools, wanted, pod_of(request))
        with _opened(config.store) as store:
            deadline = deadline_after(config.store.deadline)
            cache = _copies(config.store)
            held = blocks.allocate(store, ask, deadline, cache)
            if not _fits(config, held, wanted):
                # Held with another requested address: start afresh.
                homes = blocks.homes(config.pools, config.node)
                blocks.release(store, owner, deadline, homes, cache)
                held = blocks.allocate(store, ask, deadline, cache)
        return build_result(config, held, request.config.cni_version)

    def delete(self, request: skel.Request) -> None:
        # The store section is what must parse: a network whose ranges were broken
        # after its pods were added must not leave those pods stuck in DEL. With the
        # ranges, the node's own documents say what the attachment holds (one read);
        # without them, a scan of every node document does.
        raw = ipam_section(request)
        where = _store(raw, "ipam")
        owner = blocks.Owner(request.config.name, request.container_id, request.ifname)
        try:
            config = parse_config(raw, request.config.name)
            homes: list[str] | None = blocks.homes(config.pools, config.node)
        except CNIError:
            homes = None
        with _opened(where) as store:
            blocks.release(store, owner, deadline_after(where.deadline), homes, _copies(where))

    def check(self, request: skel.Request) -> None:
        config = load(request)
        with _opened(config.store) as store:
            held = blocks.lookup(
                store,
                _owner(config, request),
                deadline_after(config.store.deadline),
                blocks.homes(config.pools, config.node),
            )
        if not held:
            raise UnknownContainerError(
                f"{PLUGIN_TYPE}: no reservation for {request.container_id}/{request.ifname}",
                f"network {config.network}",
            )
        prev = request.config.prev_result
        if prev is not None:
            expected = {ip.address.ip for ip in prev.ips}
            missing = sorted(str(r.address) for r in held if r.address not in expected)
            if missing:
                raise CNIError(
                    f"{PLUGIN_TYPE}: reserved addresses are not in prevResult", ", ".join(missing)
                )

    def status(self, request: skel.Request) -> None:
        config = load(request)
        try:
            with _opened(config.store) as store:
                store.snapshot(["status"], deadline=deadline_after(config.store.deadline))
        except (CNIError, StoreError) as exc:
            raise PluginNotAvailableError(
                f"{PLUGIN_TYPE}: the IPAM store is not reachable", str(exc)
            ) from exc

    def gc(self, request: skel.Request) -> None:
        config = load(request)
        valid = request.config.valid_attachments
        if valid is None:
            return  # no list from the runtime: never release what might be in use
        with _opened(config.store) as store:
            blocks.gc(store, config.network, valid, deadline_after(config.store.deadline))


def _fits(
    config: IPAMConfig, held: Sequence[blocks.Reservation], wanted: Sequence[IPAddress | None]
) -> bool:
    ids = [p.id for p in config.pools]
    if sorted(r.pool for r in held) != sorted(ids):
        return False
    by_pool = {r.pool: r.address for r in held}
    return all(w is None or by_pool[p] == w for p, w in zip(ids, wanted, strict=True))


#: Store types whose connections are worth keeping between calls of one process (the
#: node daemon): a Kubernetes or etcd store costs a connection (a TLS handshake) and
#: its credentials to open. SQLite is opened per call: its file locks are per process.
_POOLED = frozenset({"etcd", "kubernetes"})
#: Idle stores kept per config; more concurrent calls open more and close the extra.
_IDLE_MAX = 4
_idle: dict[StoreConfig, list[Store]] = {}
_idle_lock = allocate_lock()
#: The node's documents as this process last read or wrote them, per store config of a
#: pooled type (multinic.ipam.doc_cache): a warm ADD or DEL of the daemon then commits
#: without reading first. An executable makes one call, so its copies are never used.
_caches: dict[StoreConfig, DocumentCache] = {}


def _copies(config: StoreConfig) -> DocumentCache | None:
    """The document cache of ``config``'s store (None for a store opened per call)."""
    if config.type not in _POOLED:
        return None
    with _idle_lock:
        return _caches.setdefault(config, DocumentCache())


class _opened:  # noqa: N801 - used as a context manager, reads like `with open(...)`
    """A store for one request (an idle one of this process when there is one), given back
    or closed after it, and store errors mapped to CNI ones."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        with _idle_lock:
            idle = _idle.get(config)
            store = idle.pop() if idle else None
        self.store = store if store is not None else open_store(config)

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        kept = False
        if (exc is None or isinstance(exc, CNIError)) and self.config.type in _POOLED:
            with _idle_lock:
                idle = _idle.setdefault(self.config, [])
                kept = len(idle) < _IDLE_MAX
                if kept:
                    idle.append(self.store)
        if not kept:
            self.store.close()
        if isinstance(exc, StoreUnavailableError):
            raise TryAgainLaterError(
                f"{PLUGIN_TYPE}: the IPAM store is unavailable", str(exc)
            ) from exc
        if isinstance(exc, StoreError):
            raise IOFailureError(f"{PLUGIN_TYPE}: the IPAM store failed", str(exc)) from exc


PLUGIN = ClusterIPAM()


def main() -> NoReturn:
    skel.main(PLUGIN)
