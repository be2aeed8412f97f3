"""The pod's network selection: ``k8s.v1.cni.cncf.io/networks`` in both of its forms.

Comma form: ``a, ns/b@eth5`` (``[namespace/]name[@interface]`` per entry).
JSON form: a list of objects with ``name`` and, optionally, ``namespace``,
``interface``, ``ips``, ``mac``, ``infiniband-guid``, ``deviceID``,
``default-route``, ``cni-args``, ``portMappings`` and ``bandwidth``. As Multus,
an annotation containing ``[``, ``{`` or ``"`` is the JSON form.

Every problem is an :class:`~multinic.cni.errors.AnnotationError` (code 7)
naming the pod and the annotation; nothing else leaves this module.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from multinic.cni import jsontext
from multinic.cni.args import ifname_problem
from multinic.cni.errors import AnnotationError
from multinic.kube.objects import namespace_problem, object_name_problem

#: 6 octets as two hex digits each, separated all by ':' or all by '-'.
MAC_RE = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}")
#: An InfiniBand GUID: 8 octets (EUI-64), colon-separated.
GUID_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){7}")
PORT_RANGE = range(1, 65536)
BANDWIDTH_KEYS = ("ingressRate", "ingressBurst", "egressRate", "egressBurst")


class Where(NamedTuple):
    """Which pod and annotation an error is about."""

    pod: str
    annotation: str

    def error(self, details: str) -> AnnotationError:
        return AnnotationError(f"pod {self.pod}: invalid annotation {self.annotation}", details)


class NetworkSelection(NamedTuple):
    """One network a pod asks for, and what it asks of it."""

    name: str
    namespace: str
    interface: str = ""
    ips: tuple[str, ...] = ()
    mac: str = ""
    infiniband_guid: str = ""
    device_id: str = ""
    gateways: tuple[str, ...] = ()
    cni_args: Mapping[str, Any] | None = None
    port_mappings: tuple[Mapping[str, Any], ...] = ()
    bandwidth: Mapping[str, Any] | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_networks(text: str, default_namespace: str, where: Where) -> tuple[NetworkSelection, ...]:
    """The selections in an annotation's value; blank means none."""
    if not text.strip():
        return ()
    if any(c in text for c in '[{"'):
        return _parse_json(text, default_namespace, where)
    return tuple(_parse_item(item, default_namespace, where) for item in text.split(","))


def _parse_item(item: str, default_namespace: str, where: Where) -> NetworkSelection:
    """``[namespace/]name[@interface]``, whitespace around each part ignored (as Multus)."""
    entry = item.strip()
    if not entry:
        raise where.error(f"empty entry in the list {where.annotation!r}")
    namespace, slash, rest = entry.rpartition("/")
    if slash and "/" in namespace:
        raise where.error(f"{entry!r}: more than one '/'")
    name, at, interface = rest.partition("@")
    if "@" in interface:
        raise where.error(f"{entry!r}: more than one '@'")
    if at and not interface.strip():
        raise where.error(f"{entry!r}: nothing after '@'")
    namespace = namespace.strip() if slash else default_namespace
    return _checked(name.strip(), namespace, interface.strip(), entry, where)


def _checked(
    name: str, namespace: str, interface: str, entry: str, where: Where
) -> NetworkSelection:
    problem = object_name_problem(name)
    if problem:
        raise where.error(f"{entry!r}: network name {name!r} is {problem}")
    problem = namespace_problem(namespace)
    if problem:
        raise where.error(f"{entry!r}: namespace {namespace!r} is {problem}")
    if interface:
        problem = ifname_problem(interface)
        if problem:
            raise where.error(f"{entry!r}: {problem}: {interface!r}")
    return NetworkSelection(name=name, namespace=namespace, interface=interface)


def _parse_json(text: str, default_namespace: str, where: Where) -> tuple[NetworkSelection, ...]:
    try:
        items = jsontext.loads(text)
    except ValueError as exc:
        raise where.error(f"not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise where.error("the JSON form must be a list of objects")
    return tuple(_parse_element(item, n, default_namespace, where) for n, item in enumerate(items))


def _parse_element(item: object, n: int, default_namespace: str, where: Where) -> NetworkSelection:
    if not isinstance(item, dict):
        raise where.error(f"[{n}] is not an object")
    name = _text(item, "name", n, where)
    if not name:
        raise where.error(f"[{n}] has no 'name'")
    # Multus' pre-3.2 key, still read by Multus 4 when 'interface' is absent.
    interface = _text(item, "interface", n, where) or _text(item, "interfaceRequest", n, where)
    namespace = _text(item, "namespace", n, where) or default_namespace
    selection = _checked(name, namespace, interface, f"[{n}]", where)
    return selection._replace(
        ips=_addresses(item, "ips", n, where, prefix_allowed=True),
        mac=_matching(item, "mac", MAC_RE, "a MAC address like 02:00:00:00:00:01", n, where),
        infiniband_guid=_matching(
            item, "infiniband-guid", GUID_RE, "8 octets like 00:11:22:33:44:55:66:77", n, where
        ),
        device_id=_text(item, "deviceID", n, where),
        gateways=_addresses(item, "default-route", n, where, prefix_allowed=False),
        cni_args=_object(item, "cni-args", n, where),
        port_mappings=_port_mappings(item, n, where),
        bandwidth=_bandwidth(item, n, where),
    )


def _text(item: Mapping[str, Any], key: str, n: int, where: Where) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise where.error(f"[{n}].{key} must be a string")
    return value.strip()


def _matching(
    item: Mapping[str, Any], key: str, pattern: re.Pattern[str], form: str, n: int, where: Where
) -> str:
    value = _text(item, key, n, where)
    if value and not pattern.fullmatch(value):
        raise where.error(f"[{n}].{key} {value!r} is not {form}")
    return value


def _addresses(
    item: Mapping[str, Any], key: str, n: int, where: Where, *, prefix_allowed: bool
) -> tuple[str, ...]:
    value = item.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.error(f"[{n}].{key} must be a list of strings")
    for address in value:
        try:
            if prefix_allowed and "/" in address:
                ipaddress.ip_interface(address)
            else:
                ipaddress.ip_address(address)
        except ValueError as exc:
            form = "an IP address or address/prefix" if prefix_allowed else "an IP address"
            raise where.error(f"[{n}].{key}: {address!r} is not {form}") from exc
    return tuple(value)


def _object(item: Mapping[str, Any], key: str, n: int, where: Where) -> Mapping[str, Any] | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise where.error(f"[{n}].{key} must be an object")
    return value


def _port_mappings(item: Mapping[str, Any], n: int, where: Where) -> tuple[Mapping[str, Any], ...]:
    value = item.get("portMappings")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise where.error(f"[{n}].portMappings must be a list")
    for m, mapping in enumerate(value):
        at = f"[{n}].portMappings[{m}]"
        if not isinstance(mapping, dict):
            raise where.error(f"{at} must be an object")
        for key in ("hostPort", "containerPort"):
            if not _is_int(mapping.get(key)) or mapping[key] not in PORT_RANGE:
                raise where.error(f"{at}.{key} must be a port number (1-65535)")
        for key in ("protocol", "hostIP"):
            if key in mapping and not isinstance(mapping[key], str):
                raise where.error(f"{at}.{key} must be a string")
    return tuple(value)


def _bandwidth(item: Mapping[str, Any], n: int, where: Where) -> Mapping[str, Any] | None:
    value = _object(item, "bandwidth", n, where)
    if value is None:
        return None
    for key in BANDWIDTH_KEYS:
        if key in value and (not _is_int(value[key]) or value[key] < 0):
            raise where.error(f"[{n}].bandwidth.{key} must be a whole number, 0 or more")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_default_network(text: str, multus_namespace: str, where: Where) -> NetworkSelection:
    """The ``v1.multus-cni.io/default-network`` override: exactly one network, whose
    namespace defaults to the meta plugin's (``multusNamespace``), not the pod's."""
    selections = parse_networks(text, multus_namespace, where)
    if len(selections) != 1:
        raise where.error(f"names {len(selections)} networks; the primary is exactly one")
    return selections[0]
