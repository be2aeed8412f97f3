"""``multinic-host-local``: addresses from local ranges, in host-local's files.

Config fields are the reference host-local's (``ranges``, the old single-range
form, ``routes``, ``dataDir``, ``resolvConf``; the ``ips`` and ``ipRanges``
capabilities, ``IP=`` in CNI_ARGS and ``args.cni.ips``) plus ``exclude`` per
range. The data dir is byte-compatible, locking included, so this plugin and
the reference can serve one network on one node side by side.

Where it differs from the reference, on purpose:

* a repeated ADD for the same (container, ifname) returns the addresses it
  already holds instead of failing with "duplicate allocation";
* a failed ADD removes what it reserved and restores ``last_reserved_ip``;
* DEL needs only ``dataDir`` from the config, so a network whose ranges were
  edited into something invalid can still be torn down;
* GC and STATUS are implemented (the reference leaves them unimplemented): GC
  releases every reservation whose attachment is not in
  ``cni.dev/valid-attachments``; STATUS fails with code 50 when the data dir
  cannot be written or a range set has no free address left;
* unknown CNI_ARGS keys are ignored (the reference fails unless
  ``IgnoreUnknown=1``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from multinic.cni import skel
from multinic.cni.config import Attachment
from multinic.cni.errors import (
    CNIError,
    InvalidConfigError,
    IOFailureError,
    PluginNotAvailableError,
    UnknownContainerError,
)
from multinic.cni.types import DNS, IPConfig, Result, Route
from multinic.cni.version import SUPPORTED_VERSIONS
from multinic.ipam.allocator import AddressAllocator, AddressUnavailableError, AllocationError
from multinic.ipam.hostlocal_store import HostLocalStore, owned_by
from multinic.ipam.netconf import (
    ipam_section,
    parse_routes,
    plain_address,
    read_resolv_conf,
    requested_ips,
)
from multinic.ipam.ranges import (
    IPAddress,
    RangeSet,
    check_no_overlap,
    parse_hostlocal_ranges,
    parse_range_set,
)
from multinic.plugins.fields import Fields
from multinic.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any, NoReturn

NAME = "multinic-host-local"


class HostLocalConfig(NamedTuple):
    """What one request asks of host-local, parsed and checked."""

    network: str
    range_sets: tuple[RangeSet, ...]
    routes: tuple[Route, ...]
    data_dir: str
    resolv_conf: str
    requested: tuple[IPAddress, ...]


def load_config(request: skel.Request) -> HostLocalConfig:
    ipam = ipam_section(request.config)
    fields = Fields(ipam, "ipam")
    return HostLocalConfig(
        network=request.config.name,
        range_sets=_range_sets(ipam, request.config.runtime_config),
        routes=parse_routes(ipam.get("routes"), "ipam.routes"),
        data_dir=fields.path("dataDir"),
        resolv_conf=fields.path("resolvConf"),
        requested=tuple(plain_address(ip) for ip in requested_ips(request.config, request.args)),
    )


def _range_sets(ipam: Mapping[str, Any], runtime: Mapping[str, Any]) -> tuple[RangeSet, ...]:
    """The ``ipRanges`` capability's sets first, then the configured ones (as host-local)."""
    raw = runtime.get("ipRanges") or []
    if not isinstance(raw, list):
        raise InvalidConfigError("invalid IPAM config", "runtimeConfig.ipRanges must be a list")
    sets = [parse_range_set(item, f"runtimeConfig.ipRanges[{n}]") for n, item in enumerate(raw)]
    if ipam.get("ranges") or ipam.get("subnet") or not sets:
        sets.extend(parse_hostlocal_ranges(ipam))
    check_no_overlap(sets)
    return tuple(sets)


class HostLocal:
    """The plugin object; the executable and an in-process caller use the same one."""

    name = NAME
    supported_versions = SUPPORTED_VERSIONS

    def add(self, request: skel.Request) -> Result:
        conf = load_config(request)
        dns = read_resolv_conf(conf.resolv_conf) if conf.resolv_conf else DNS()
        owner = Attachment(request.container_id, request.ifname)
        with HostLocalStore(conf.network, conf.data_dir).locked() as store:
            ips = reserve(store, conf, owner)
        return Result(request.config.cni_version, ips=ips, routes=conf.routes, dns=dns)

    def delete(self, request: skel.Request) -> None:
        ipam = ipam_section(request.config)
        store = HostLocalStore(request.config.name, Fields(ipam, "ipam").string("dataDir"))
        if not store.exists():
            return  # nothing was ever reserved here: DEL of an unknown attachment succeeds
        owner = Attachment(request.container_id, request.ifname)
        with store.locked():
            held = store.held()
            # As host-local: the exact attachment's files, else files of the old format
            # that name the container alone.
            mine = [a for a, o in held if o == owner] or [a for a, o in held if owned_by(o, owner)]
            for address in mine:
                store.release(address)

    def check(self, request: skel.Request) -> None:
        conf = load_config(request)
        owner = Attachment(request.container_id, request.ifname)
        store = HostLocalStore(conf.network, conf.data_dir)
        held = []
        if store.exists():
            with store.locked():
                held = store.held()
        for index, range_set in enumerate(conf.range_sets):
            if not any(a in range_set and owned_by(o, owner) for a, o in held):
                raise UnknownContainerError(
                    f"{NAME}: failed to find address added by container {request.container_id}",
                    f"ifname {request.ifname}, range set {index} ({range_set})",
                )

    def gc(self, request: skel.Request) -> None:
        valid = request.config.valid_attachments
        if valid is None:
            raise InvalidConfigError(
                f"{NAME}: GC needs the list of valid attachments",
                "cni.dev/valid-attachments is missing; refusing to release everything",
            )
        ipam = ipam_section(request.config)
        store = HostLocalStore(request.config.name, Fields(ipam, "ipam").string("dataDir"))
        if not store.exists():
            return
        keep = set(valid)
        keep_containers = {a.container_id for a in valid}
        with store.locked():
            for address, holder in store.held():
                old_format_kept = holder.ifname == "" and holder.container_id in keep_containers
                if holder not in keep and not old_format_kept:
                    store.release(address)

    def status(self, request: skel.Request) -> None:
        conf = load_config(request)
        store = HostLocalStore(conf.network, conf.data_dir)
        try:
            with store.locked():
                problem = store.writable() or _exhausted(store, conf)
        except IOFailureError as exc:
            problem = str(exc)
        if problem:
            raise PluginNotAvailableError(f"{NAME}: plugin not available", problem)


def reserve(
    store: HostLocalStore, conf: HostLocalConfig, owner: Attachment
) -> tuple[IPConfig, ...]:
    """One address per range set for ``owner``, the ones it holds already reused."""
    held = store.held()
    requested = list(conf.requested)
    ips = []
    with contextlib.ExitStack() as undo:
        for index, range_set in enumerate(conf.range_sets):
            want = next((ip for ip in requested if ip in range_set), None)
            if want is not None:
                requested.remove(want)
            allocator = AddressAllocator(
                range_set, [(a, o) for a, o in held if a in range_set], store.last_reserved(index)
            )
            try:
                ips.append(_one(store, allocator, owner, want, index, undo))
            except AllocationError as exc:
                raise type(exc)(
                    f"failed to allocate for range {index}: {exc.msg}", exc.details
                ) from exc
        if requested:
            raise AddressUnavailableError(
                "failed to allocate all requested IPs: " + " ".join(str(ip) for ip in requested),
                "no configured range set contains them",
            )
        undo.pop_all()
    return tuple(ips)


def _one(
    store: HostLocalStore,
    allocator: AddressAllocator,
    owner: Attachment,
    want: IPAddress | None,
    index: int,
    undo: contextlib.ExitStack,
) -> IPConfig:
    existing = allocator.lookup(owner)
    if existing:
        if want is None or want == existing[0].address:
            return existing[0].ip_config()  # a repeated ADD: the same address again
        raise AddressUnavailableError(
            f"{owner.container_id}/{owner.ifname} already holds {existing[0].address}",
            f"not the requested {want}",
        )
    undo.callback(_quietly, store.restore_last_reserved, index, store.last_reserved_bytes(index))
    while True:
        got = allocator.allocate(owner, want)
        if store.reserve(got.address, owner, index):
            undo.callback(_quietly, store.release, got.address)
            return got.ip_config()
        # A file this snapshot did not show (not readable as a reservation): skip it.
        if want is not None:
            raise AddressUnavailableError(f"requested IP address {want} is not available")
        allocator.release(got.address)
        allocator.allocate(Attachment("", ""), got.address)


def _quietly(undo: Callable[..., None], *args: Any) -> None:
    # Rollback is best effort: its own failure must not hide the error that caused it.
    with contextlib.suppress(OSError, CNIError):
        undo(*args)


def _exhausted(store: HostLocalStore, conf: HostLocalConfig) -> str:
    held = store.held()
    for index, range_set in enumerate(conf.range_sets):
        allocator = AddressAllocator(range_set, [(a, o) for a, o in held if a in range_set])
        if allocator.free_count == 0:
            return f"range set {index} ({range_set}) has no free address"
    return ""


PLUGIN = HostLocal()


def main() -> NoReturn:
    skel.main(PLUGIN)
