"""Attaching a pod's delegates: ADD, DEL and CHECK of one primary plus N secondaries.

ADD attaches the primary first (the secondaries may route through it), then
every secondary at once: each is its own interface, its own plugin calls and
its own namespace handles, so they cannot interfere. Any failure detaches
everything attached so far, in reverse, and removes the record, leaving
nothing. The runtime gets the primary's result, as from Multus.

DEL walks the record ADD wrote (:mod:`multinic.meta.records`), never the API:
every delegate is deleted even when one fails, and the record keeps exactly
the ones that failed, so a retry finishes the job and a repeated DEL succeeds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

from multinic.cni.config import (
    Attachment,
    NetworkConfigList,
    parse_network_config,
    parse_network_config_list,
)
from multinic.cni.errors import CNIError, InvalidConfigError
from multinic.cni.runtime import Runtime, RuntimeConf
from multinic.cni.types import Result
from multinic.meta.records import PodAttachment, PodRecord, PodRef, RecordStore
from multinic.meta.routing import steer_default_routes, verify_requested_ips
from multinic.meta.status import status_entry

T = TypeVar("T")


class Attached(NamedTuple):
    """What ADD made: the primary's result (for the runtime) and every attachment's status."""

    result: Result
    network_status: list[dict[str, Any]]


class Attacher:
    """Runs delegates through ``runtime`` and keeps their records in ``records``.

    ``parallel`` bounds the secondaries attached (or deleted) at once for one pod.
    """

    def __init__(self, runtime: Runtime, records: RecordStore, parallel: int = 8) -> None:
        self.runtime = runtime
        self.records = records
        self.parallel = parallel

    # -- ADD -------------------------------------------------------------------

    def add(
        self, pod: PodRef, container_id: str, netns: str, delegates: Sequence[PodAttachment]
    ) -> Attached:
        """Attach ``delegates`` (the primary first) to the pod; all of them, or none."""
        networks = _parse_all(delegates)
        record = PodRecord(container_id, netns, pod, tuple(delegates))
        with contextlib.ExitStack() as undo:
            self.records.save(record)  # before anything attaches: DEL can always finish
            undo.callback(self.records.remove, container_id)
            results = self._add_all(record, networks, undo)
            for attachment, result in zip(delegates, results, strict=True):
                verify_requested_ips(attachment, result)
            steer_default_routes(netns, delegates)
            undo.pop_all()
        statuses = [status_entry(d, r) for d, r in zip(delegates, results, strict=True)]
        return Attached(results[0], statuses)

    def _add_all(
        self, record: PodRecord, networks: list[NetworkConfigList], undo: contextlib.ExitStack
    ) -> list[Result]:
        def add_one(index: int) -> Result:
            return self.runtime.add(networks[index], _conf(record, record.delegates[index]))

        def detach(index: int) -> None:
            self._detach_quietly(record, record.delegates[index], networks[index])

        primary = add_one(0)
        undo.callback(detach, 0)
        outcomes = self._at_once(add_one, range(1, len(networks)))
        for index, outcome in zip(range(1, len(networks)), outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                undo.callback(detach, index)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        return [primary, *(o for o in outcomes if isinstance(o, Result))]

    def _detach_quietly(
        self, record: PodRecord, delegate: PodAttachment, net: NetworkConfigList
    ) -> None:
        # Rollback is best effort: one DEL failing must not stop the others, and
        # the ADD's own error is what the runtime needs to see.
        with contextlib.suppress(CNIError):
            self.runtime.delete(net, _conf(record, delegate))

    # -- DEL / CHECK -------------------------------------------------------------

    def delete(self, container_id: str) -> None:
        """Detach everything the record holds; keep the record of what failed."""
        record = self.records.load(container_id)
        if record is None:
            return  # never attached, or already deleted: DEL succeeds again
        secondaries = list(range(len(record.delegates) - 1, 0, -1))
        outcomes = self._at_once(lambda i: self._delete_one(record, i), secondaries)
        failed = {i: o for i, o in zip(secondaries, outcomes, strict=True) if o is not None}
        if (primary := self._delete_one(record, 0)) is not None:
            failed[0] = primary
        if not failed:
            self.records.remove(container_id)
            return
        kept = tuple(d for i, d in enumerate(record.delegates) if i in failed)
        self.records.save(record._replace(delegates=kept))
        raise _combined("DEL", [(record.delegates[i], failed[i]) for i in sorted(failed)])

    def _delete_one(self, record: PodRecord, index: int) -> BaseException | None:
        delegate = record.delegates[index]
        try:
            self.runtime.delete(_parse(delegate), _conf(record, delegate))
        except CNIError as err:
            return err
        return None

    def collect_garbage(self, keep: frozenset[str]) -> None:
        """DEL every recorded container not in ``keep``, then GC each delegate network.

        The delegates' GC gets the attachments still recorded on its network as
        the valid ones, so their IPAM releases what no record explains (an ADD
        cut off between its reservation and its record, say). All are tried;
        failures are reported together.
        """
        failures: list[str] = []
        networks = self._recorded_networks()
        for container_id in list(self.records.container_ids()):
            if container_id not in keep:
                failures.extend(self._try(f"DEL {container_id}", self.delete, container_id))
        valid = self._valid_attachments()
        for name, attachment in sorted(networks.items()):
            net = _parse(attachment)
            failures.extend(self._try(f"GC {name}", self.runtime.gc, net, valid.get(net.name, [])))
        if failures:
            raise CNIError("GC incomplete", "; ".join(failures))

    def _recorded_networks(self) -> dict[str, PodAttachment]:
        """Every delegate network some record names, with one attachment of it."""
        networks: dict[str, PodAttachment] = {}
        for record in self._records():
            for attachment in record.delegates:
                networks.setdefault(attachment.name, attachment)
        return networks

    def _valid_attachments(self) -> dict[str, list[Attachment]]:
        """Per delegate network (by its config's name), the attachments still recorded."""
        valid: dict[str, list[Attachment]] = {}
        for record in self._records():
            for attachment in record.delegates:
                name = _parse(attachment).name
                valid.setdefault(name, []).append(
                    Attachment(record.container_id, attachment.ifname)
                )
        return valid

    def _records(self) -> list[PodRecord]:
        """The readable records; a corrupt one is reported by the DEL that reads it."""
        found = []
        for container_id in list(self.records.container_ids()):
            with contextlib.suppress(CNIError):
                if (record := self.records.load(container_id)) is not None:
                    found.append(record)
        return found

    @staticmethod
    def _try(what: str, work: Callable[..., object], *args: object) -> list[str]:
        try:
            work(*args)
        except CNIError as err:
            return [f"{what}: {err}"]
        return []

    def check(self, container_id: str) -> None:
        """CHECK every recorded delegate; the first drift found is the error."""
        record = self.records.load(container_id)
        if record is None:
            raise InvalidConfigError(
                "nothing to check", f"no attachment record for container {container_id}"
            )
        for delegate in record.delegates:
            self.runtime.check(_parse(delegate), _conf(record, delegate))

    # -- helpers -----------------------------------------------------------------

    def _at_once(
        self, work: Callable[[int], T], indexes: Sequence[int] | range
    ) -> list[T | BaseException]:
        """``work(i)`` for every index at once (bounded); each outcome or its exception."""
        if not indexes:
            return []
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(indexes))) as pool:
            futures = [pool.submit(work, i) for i in indexes]
        outcomes: list[T | BaseException] = []
        for future in futures:
            error = future.exception()
            outcomes.append(error if error is not None else future.result())
        return outcomes


def _conf(record: PodRecord, delegate: PodAttachment) -> RuntimeConf:
    return RuntimeConf(
        record.container_id,
        record.netns,
        delegate.ifname,
        delegate.cni_args,
        delegate.capability_args,
    )


def _parse(delegate: PodAttachment) -> NetworkConfigList:
    """The delegate's config: a conflist, or a single config read as a list of one."""
    try:
        return parse_network_config_list(delegate.config)
    except CNIError:
        return parse_network_config(delegate.config)


def _parse_all(delegates: Sequence[PodAttachment]) -> list[NetworkConfigList]:
    """Every delegate's config, checked before anything is attached."""
    if not delegates:
        raise InvalidConfigError("no networks to attach", "the pod needs a primary network")
    seen: dict[str, str] = {}
    for delegate in delegates:
        if delegate.ifname in seen:
            raise InvalidConfigError(
                f"interface {delegate.ifname} requested twice",
                f"by {seen[delegate.ifname]} and {delegate.name}",
            )
        seen[delegate.ifname] = delegate.name
    networks = []
    for delegate in delegates:
        try:
            networks.append(_parse(delegate))
        except CNIError as err:
            err.msg = f"network {delegate.name}: {err.msg}"
            raise
    return networks


def _combined(verb: str, failures: list[tuple[PodAttachment, BaseException]]) -> CNIError:
    """One error for several delegates: the first one's code, every message in details."""
    first = failures[0][1]
    code = first.code if isinstance(first, CNIError) else 999
    details = "; ".join(f"{d.name} ({d.ifname}): {err}" for d, err in failures)
    return CNIError(f"{verb} failed for {len(failures)} attachment(s)", details, code=code)
