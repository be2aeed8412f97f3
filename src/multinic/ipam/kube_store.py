"""The Store protocol on the Kubernetes API: documents as custom objects of ``ipam.multinic.io/v1``.

Each key is one cluster-scoped object whose kind follows the key's first part
(``pools/`` an IPAMPool, ``blocks/`` an IPAMNodeBlock, ``handles/`` an
IPAMReservation, ``ips/`` an IPAMAddressClaim, anything else an IPAMDocument).
The document is ``spec.data`` (its JSON text); the revision is the object's
``resourceVersion`` (etcd's revision under the API server: it only grows, so a
deleted and re-created object never matches a stale snapshot). A few fields
lifted from the document (``spec.range``, ``spec.node``, ``spec.used`` ...)
are for ``kubectl get``'s columns only; the store never reads them back.

The API server compares-and-swaps one object at a time, and a commit changes
several (a reservation, the node's blocks, a claim) all or nothing. A commit of
one key is one request. A commit of more is a small transaction:

1. *lock*: every key, in key order, gets ``spec.lock`` = {txn, the new value,
   expiry} by a merge patch guarded by the revision the caller expected (a key
   expected absent is created holding only the lock). A guard that fails means
   the race is lost: the locks taken so far are removed and commit is False.
2. *decide*: create the IPAMTransaction ``txn`` with ``state: committed``. That
   create is the commit point; it is refused when the name exists.
3. *apply*: every locked key gets its new value and loses the lock (or is
   deleted), guarded by the revision the lock got; then the transaction goes.

A reader that meets a lock settles it before using the object: a transaction
recorded as committed is rolled forward, one recorded as aborted is rolled
back, and one with no record is still running, so the reader retries (the
store is "busy") until the lock's expiry; after that the reader records the
transaction aborted itself, by creating its record. Committer and reader
cannot both win that create, so a transaction is wholly applied or wholly
undone whoever finishes it, and a process killed at any step leaves locks that
the next reader settles (and ``multinic ipam gc`` sweeps).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping

from multinic.cni.errors import KubeRequestError, KubeUnavailableError
from multinic.ipam.store import (
    ABSENT,
    StoreError,
    StoreUnavailableError,
    Versioned,
    Written,
    check_commit,
)
from multinic.kube.rest import CustomObjects, RestClient, load_access
from multinic.records import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias, TypeVar

    _T = TypeVar("_T")
    #: A lock this process took: the revision it got, the lock, whether the key was absent.
    Locked: TypeAlias = tuple[int, dict[str, Any], bool]

GROUP = "ipam.multinic.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

#: The first part of a key -> (plural, kind) of the objects holding such keys.
KINDS = {
    "pools": ("ipampools", "IPAMPool"),
    "blocks": ("ipamnodeblocks", "IPAMNodeBlock"),
    "handles": ("ipamreservations", "IPAMReservation"),
    "ips": ("ipamaddressclaims", "IPAMAddressClaim"),
}
OTHER = ("ipamdocuments", "IPAMDocument")
TXNS = ("ipamtransactions", "IPAMTransaction")

#: Label holding the hash of a key's first ``n`` parts (``<group>/p<n>``): a scan
#: of a prefix ending in "/" is one list by label.
LABEL = GROUP + "/p{}"
#: Label naming the store's scope (several independent stores on one API server).
SCOPE_LABEL = GROUP + "/scope"
SCOPE_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")

#: Seconds a lock outlives its committer's deadline before readers may abort it.
LOCK_GRACE = 5.0
#: Seconds an aborted or stranded transaction record is kept after its lock expiry.
RECORD_KEEP = 120.0

_NAME_PART = re.compile(r"[^a-z0-9]+")


def kind_of(key: str) -> tuple[str, str]:
    return KINDS.get(key.partition("/")[0], OTHER)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def object_name(key: str) -> str:
    """A readable, valid, unique object name: the key's tail as a slug, and a hash of it."""
    tail = key.partition("/")[2] or key
    slug = _NAME_PART.sub("-", tail.lower()).strip("-")[:200].strip("-")
    return f"{slug}-{digest(key)}" if slug else digest(key)


def labels(key: str) -> dict[str, str]:
    parts = key.split("/")
    return {LABEL.format(n): digest("/".join(parts[:n]) + "/") for n in range(1, len(parts))}


def columns(key: str, value: str | None) -> dict[str, Any]:
    """What ``kubectl get`` shows: fields lifted from the document, best effort, never failing."""
    try:
        doc = json.loads(value) if value else {}
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    part = key.split("/")
    try:
        if part[0] == "pools":
            return {
                "range": f"{doc['start']}-{doc['end']}",
                "subnet": doc["subnet"],
                "blockSize": f"/{doc['prefixlen']}",
                "blocks": len(doc.get("blocks", {})),
            }
        if part[0] == "blocks":
            held = doc.get("blocks", {})
            capacity = sum(2 ** (_bits(b) - int(b.rpartition("/")[2])) for b in held)
            used = sum(len(entry.get("ips", {})) for entry in held.values())
            return {
                "pool": "/".join(part[1:3]),
                "node": part[-1],
                "range": ",".join(sorted(held)),
                "used": used,
                "capacity": capacity,
            }
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return {}
    return {}


def _bits(block: str) -> int:
    return 128 if ":" in block else 32


def _revision(obj: Mapping[str, Any]) -> int:
    text = obj.get("metadata", {}).get("resourceVersion", "")
    try:
        return int(text)
    except ValueError as exc:  # opaque by contract; every API server backed by etcd uses integers
        raise StoreError(f"resourceVersion {text!r} is not a number") from exc


class KubeStore:
    """Documents as custom objects; multi-key commits as lock / decide / apply transactions."""

    def __init__(
        self, objects: CustomObjects, *, scope: str = "", clock: Callable[[], float] = time.time
    ) -> None:
        if scope and not SCOPE_RE.fullmatch(scope):
            raise StoreError(f"kubernetes store scope {scope!r}: lowercase letters, digits, '-'")
        self.objects = objects
        self.scope = scope
        self.clock = clock
        #: Transactions this process gave up on (an ambiguous failure): it may settle
        #: their locks at once instead of waiting for the expiry.
        self._abandoned: set[str] = set()

    @classmethod
    def connect(cls, kubeconfig: str | None, *, timeout: float, scope: str = "") -> KubeStore:
        """A store on the cluster ``kubeconfig`` names (None: the pod's service account)."""
        client = RestClient(load_access(kubeconfig), timeout=timeout)
        return cls(CustomObjects(client, GROUP, VERSION), scope=scope)

    def _name(self, key: str) -> str:
        return f"{self.scope}.{object_name(key)}" if self.scope else object_name(key)

    def _txn_name(self, txn: str) -> str:
        return f"{self.scope}.{txn}" if self.scope else txn

    def _selector(self, *terms: str) -> str:
        scope = f"{SCOPE_LABEL}={self.scope}" if self.scope else f"!{SCOPE_LABEL}"
        return ",".join([*terms, scope])

    @property
    def round_trips(self) -> int:
        return self.objects.client.requests

    def close(self) -> None:
        self.objects.client.close()

    # --- reads ---------------------------------------------------------------------

    def snapshot(self, keys: Iterable[str], *, deadline: float) -> dict[str, Versioned]:
        return {key: self._versioned(key, self._get(key, deadline)) for key in dict.fromkeys(keys)}

    def scan(self, prefix: str, *, deadline: float) -> dict[str, Versioned]:
        return self._scan(prefix, lambda key: key.startswith(prefix), deadline)

    def scan_range(self, start: str, end: str, *, deadline: float) -> dict[str, Versioned]:
        # Ranges never cross kinds in multinic-ipam (claims of one block); a range
        # reaching past the start's kind is cut at the kind's end.
        first = start.partition("/")[0]
        return self._scan(first + "/", lambda key: start <= key < end, deadline)

    def _scan(
        self, prefix: str, wanted: Callable[[str], bool], deadline: float
    ) -> dict[str, Versioned]:
        plural, _ = kind_of(prefix)
        depth = prefix.count("/")
        terms = []
        if prefix.endswith("/") and depth:
            terms.append(f"{LABEL.format(depth)}={digest(prefix)}")
        selector = self._selector(*terms)
        found = self._guard(
            lambda: self.objects.list(plural, label_selector=selector, deadline=deadline)
        )
        out = {}
        for obj in found:
            key = obj.get("spec", {}).get("key")
            if not isinstance(key, str) or not wanted(key):
                continue
            current = self._get(key, deadline) if obj["spec"].get("lock") else obj
            item = self._versioned(key, current)
            if item.value is not None:
                out[key] = item
        return dict(sorted(out.items()))

    def _get(self, key: str, deadline: float) -> dict[str, Any] | None:
        """The object holding ``key``, with any lock on it settled first."""
        plural, _ = kind_of(key)
        name = self._name(key)
        while True:
            obj = self._guard(lambda: self.objects.get(plural, name, deadline=deadline))
            if obj is None:
                return None
            spec = obj.get("spec", {})
            if spec.get("key") != key:
                raise StoreError(
                    f"object {plural}/{name} holds key {spec.get('key')!r}, not {key!r}"
                )
            if not spec.get("lock"):
                return obj
            self._settle(key, obj, deadline)

    @staticmethod
    def _versioned(key: str, obj: Mapping[str, Any] | None) -> Versioned:
        if obj is None:
            return ABSENT
        data = obj.get("spec", {}).get("data")
        if data is not None and not isinstance(data, str):
            raise StoreError(f"corrupt IPAM object for {key!r}: spec.data is not a string")
        return Versioned(_revision(obj), None if data is None else data.encode())

    # --- commits -------------------------------------------------------------------

    def commit(
        self,
        expected: Mapping[str, int],
        changes: Mapping[str, bytes | None],
        *,
        deadline: float,
    ) -> Written | None:
        check_commit(expected, changes)
        keys = sorted(expected)
        if not keys:
            return {}
        if len(keys) == 1:
            return self._swap_one(keys[0], expected[keys[0]], changes, deadline)
        return self._transaction(keys, expected, changes, deadline)

    def _swap_one(
        self, key: str, revision: int, changes: Mapping[str, bytes | None], deadline: float
    ) -> Written | None:
        plural, _ = kind_of(key)
        name = self._name(key)
        if key not in changes:  # a compare with nothing to write
            held = self._versioned(key, self._get(key, deadline)).revision == revision
            return {} if held else None
        value = changes[key]
        text = None if value is None else value.decode()
        if value is None:
            if revision == 0:
                return {key: 0} if self._get(key, deadline) is None else None
            deleted = self._guard(
                lambda: self.objects.delete(
                    plural, name, deadline=deadline, resource_version=str(revision)
                )
            )
            return {key: 0} if deleted else None
        if revision == 0:
            written = self._guard(
                lambda: self.objects.create(plural, self._new(key, text, None), deadline=deadline)
            )
        else:
            patch = {"metadata": {"resourceVersion": str(revision)}, "spec": self._spec(key, text)}
            written = self._guard(
                lambda: self.objects.patch(plural, name, patch, deadline=deadline)
            )
        return None if written is None else {key: _revision(written)}

    def _transaction(
        self,
        keys: list[str],
        expected: Mapping[str, int],
        changes: Mapping[str, bytes | None],
        deadline: float,
    ) -> Written | None:
        # os.urandom, not secrets: the same bytes without secrets' imports on every start.
        txn = self._txn_name("t" + os.urandom(10).hex())
        expires = self.clock() + max(deadline - time.monotonic(), 0.0) + LOCK_GRACE
        locked: dict[str, Locked] = {}
        try:
            for key in keys:
                lock = {"txn": txn, "expires": expires, "keys": len(keys)}
                if key in changes:
                    value = changes[key]
                    lock["op"] = "delete" if value is None else "put"
                    if value is not None:
                        lock["value"] = value.decode()
                else:
                    lock["op"] = "keep"
                got = self._lock(key, expected[key], lock, deadline)
                if got is None:
                    self._unlock_all(locked, deadline)
                    return None
                locked[key] = (got, lock, expected[key] == 0)
            if self.clock() >= expires - LOCK_GRACE / 2:
                self._unlock_all(locked, deadline)
                raise StoreUnavailableError("no time left to commit before the locks expire")
            record = {"state": "committed", "keys": keys, "expires": expires}
            if self._record(txn, record, deadline) is None:
                return None  # a reader aborted it first: its locks are rolled back by readers
        except StoreUnavailableError:
            self._abandoned.add(txn)
            raise
        return self._apply_all(txn, locked, deadline)

    def _lock(self, key: str, revision: int, lock: dict[str, Any], deadline: float) -> int | None:
        plural, _ = kind_of(key)
        if revision == 0:
            got = self._guard(
                lambda: self.objects.create(plural, self._new(key, None, lock), deadline=deadline)
            )
        else:
            patch = {"metadata": {"resourceVersion": str(revision)}, "spec": {"lock": lock}}
            got = self._guard(
                lambda: self.objects.patch(plural, self._name(key), patch, deadline=deadline)
            )
        return None if got is None else _revision(got)

    def _unlock_all(self, locked: Mapping[str, Locked], deadline: float) -> None:
        """Best effort: a lock left behind expires, and readers roll it back then."""
        for key, (revision, lock, placeholder) in locked.items():
            try:
                self._release_lock(key, revision, lock, placeholder, False, deadline)
            except StoreError:
                return

    def _apply_all(self, txn: str, locked: Mapping[str, Locked], deadline: float) -> Written:
        """The committer applies its own locks without reading them again (it knows them);
        the revisions of the keys it wrote (those it could not apply are left out)."""
        written: Written = {}
        try:
            for key, (revision, lock, placeholder) in locked.items():
                now = self._release_lock(key, revision, lock, placeholder, True, deadline)
                if now is not None and lock["op"] != "keep":
                    written[key] = now
            plural, _ = TXNS
            self._guard(lambda: self.objects.delete(plural, txn, deadline=deadline))
        except StoreError:
            # Committed all the same: readers roll the rest forward, gc removes the record.
            pass
        return written

    def _settle_object(self, key: str, obj: dict[str, Any], apply: bool, deadline: float) -> None:
        spec = obj.get("spec", {})
        placeholder = spec.get("data") is None
        self._release_lock(
            key, _revision(obj), spec.get("lock") or {}, placeholder, apply, deadline
        )

    def _release_lock(
        self,
        key: str,
        revision: int,
        lock: Mapping[str, Any],
        placeholder: bool,
        apply: bool,
        deadline: float,
    ) -> int | None:
        """Apply or undo ``lock``, held by ``key`` at ``revision``: the key's revision after
        (0 when deleted), or None when a lost race means someone else settled it already."""
        plural, _ = kind_of(key)
        name = self._name(key)
        rv = str(revision)
        op = lock.get("op") if apply else "undo"
        if op == "delete" or (op in ("undo", "keep") and placeholder):
            deleted = self._guard(
                lambda: self.objects.delete(plural, name, deadline=deadline, resource_version=rv)
            )
            return 0 if deleted else None
        if op == "put":
            new_spec = {**self._spec(key, lock.get("value")), "lock": None}
        else:
            new_spec = {"lock": None}
        patch = {"metadata": {"resourceVersion": rv}, "spec": new_spec}
        patched = self._guard(lambda: self.objects.patch(plural, name, patch, deadline=deadline))
        return None if patched is None else _revision(patched)

    def _settle(self, key: str, obj: dict[str, Any], deadline: float) -> None:
        """Roll ``obj``'s lock forward or back as its transaction's record says.

        No record yet: the transaction is running (busy) until the lock expires."""
        lock = obj["spec"]["lock"]
        txn = str(lock.get("txn", ""))
        plural, _ = TXNS
        record = self._guard(lambda: self.objects.get(plural, txn, deadline=deadline))
        if record is None:
            expires = float(lock.get("expires", 0))
            if txn not in self._abandoned and self.clock() < expires:
                raise StoreUnavailableError(f"{key!r} is being changed by transaction {txn}")
            record = self._record(txn, {"state": "aborted", "expires": expires}, deadline)
            if record is None:  # its committer (or another reader) decided first: read that
                record = self._guard(lambda: self.objects.get(plural, txn, deadline=deadline))
                if record is None:
                    return  # decided and already finished: the next read sees the result
        committed = record.get("spec", {}).get("state") == "committed"
        self._settle_object(key, obj, committed, deadline)

    def _record(self, txn: str, spec: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        plural, kind = TXNS
        body = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {"name": txn, "labels": self._labels(None)},
            "spec": spec,
        }
        return self._guard(lambda: self.objects.create(plural, body, deadline=deadline))

    # --- upkeep ------------------------------------------------------------------------

    def pod_exists(self, namespace: str, name: str, uid: str, deadline: float) -> bool:
        """Whether the pod is there (and, when ``uid`` is given, is that pod, not a new one)."""
        pod = self._guard(lambda: self.objects.get_pod(namespace, name, deadline=deadline))
        if pod is None:
            return False
        return not uid or pod.get("metadata", {}).get("uid") == uid

    def sweep(self, *, deadline: float) -> int:
        """Settle the keys of transactions whose locks expired long ago, and drop their records."""
        plural, _ = TXNS
        swept = 0
        selector = self._selector()
        listed = self._guard(
            lambda: self.objects.list(plural, label_selector=selector, deadline=deadline)
        )
        for record in listed:
            spec = record.get("spec", {})
            if self.clock() < float(spec.get("expires", 0)) + RECORD_KEEP:
                continue
            for key in spec.get("keys", []):
                self._get(str(key), deadline)
            self._drop_record(str(record["metadata"]["name"]), deadline)
            swept += 1
        return swept

    def _labels(self, key: str | None) -> dict[str, str]:
        found = {} if key is None else labels(key)
        if self.scope:
            found[SCOPE_LABEL] = self.scope
        return found

    def _drop_record(self, txn: str, deadline: float) -> None:
        plural, _ = TXNS
        self._guard(lambda: self.objects.delete(plural, txn, deadline=deadline))

    # --- objects -------------------------------------------------------------------------

    def _spec(self, key: str, text: str | None) -> dict[str, Any]:
        return {"key": key, "data": text, **columns(key, text)}

    def _new(self, key: str, text: str | None, lock: dict[str, Any] | None) -> dict[str, Any]:
        _, kind = kind_of(key)
        spec: dict[str, Any] = self._spec(key, text) if text is not None else {"key": key}
        if lock is not None:
            spec["lock"] = lock
        return {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {"name": self._name(key), "labels": self._labels(key)},
            "spec": spec,
        }

    @staticmethod
    def _guard(call: Callable[[], _T]) -> _T:
        """The Kubernetes errors as the store's: unavailable (retry) or failed (do not)."""
        try:
            return call()
        except KubeUnavailableError as exc:
            raise StoreUnavailableError(f"{exc.msg}: {exc.details}") from exc
        except KubeRequestError as exc:
            raise StoreError(f"{exc.msg}: {exc.details}") from exc
