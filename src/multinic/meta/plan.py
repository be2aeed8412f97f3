"""Which networks a pod gets, in which order, on which interfaces: the plan ADD executes.

Rules (docs/meta.md has them with Multus' behaviour beside them):

1. The primary is ``clusterNetwork``, unless the pod's
   ``v1.multus-cni.io/default-network`` names a NAD instead. It gets the
   runtime's CNI_IFNAME unless the override names an interface.
2. Then ``defaultNetworks``, in order, except for pods in ``systemNamespaces``.
3. Then the pod's ``k8s.v1.cni.cncf.io/networks``, in order; with
   ``namespaceIsolation`` each must be in the pod's namespace or in
   ``globalNamespaces``.
4. Secondary ``i`` (counting from 1 after the primary) is ``net<i>`` unless it
   asks for a name; two attachments on one name are refused.
5. What a selection asks for (ips, mac, ...) reaches its delegate only as a
   capability the delegate declares; a request no plugin of it declares is
   refused rather than silently dropped.
6. At most one default-route gateway per IP family for the whole pod.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, NamedTuple

from multinic.cni.args import CniArgs
from multinic.cni.errors import (
    InvalidEnvironmentError,
    IsolationError,
    PodNotFoundError,
)
from multinic.kube.objects import (
    DEFAULT_NETWORK_ANNOTATION,
    NETWORKS_ANNOTATION,
    KubeSource,
    Pod,
)
from multinic.meta.annotations import NetworkSelection, Where, parse_default_network, parse_networks
from multinic.meta.config import MetaConfig
from multinic.meta.delegates import (
    Delegate,
    conflist_bytes,
    declared_capabilities,
    nad_delegate,
    reference_delegate,
    requested_capabilities,
)

#: kubelet's annotation on static pods; their mirror pod in the API has another uid.
CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"


class PodRequest(NamedTuple):
    """Which pod a CNI request is for (from its CNI_ARGS) and its interface for the primary."""

    namespace: str
    name: str
    uid: str
    ifname: str
    cni_args: CniArgs


class NetworkAttachment(NamedTuple):
    """One delegate to run for the pod: everything ADD needs and DEL must record."""

    network: str
    namespace: str
    interface: str
    #: The delegate conflist, byte for byte as it is to be run.
    config: bytes
    #: runtimeConfig by capability, only those the delegate declares.
    capability_args: Mapping[str, Any]
    cni_args: CniArgs
    primary: bool
    #: Where the pod's default route goes: the attachments that ask for a gateway,
    #: or the primary when none does.
    default_route: bool
    #: Gateways the pod asked this attachment to be the default route through.
    gateways: tuple[str, ...]
    source: str


class Plan(NamedTuple):
    """A pod's attachments in the order ADD runs them: the primary first."""

    pod: Pod
    attachments: tuple[NetworkAttachment, ...]


class _Choice(NamedTuple):
    """A network chosen for the pod, before interfaces are named."""

    delegate: Delegate
    selection: NetworkSelection | None
    where: Where | None  # the annotation it came from, for errors about it


def pod_request(cni_args: CniArgs, ifname: str) -> PodRequest:
    """The pod a request is for, from K8S_POD_NAMESPACE, K8S_POD_NAME and K8S_POD_UID."""
    values = dict(cni_args)
    namespace, name = values.get("K8S_POD_NAMESPACE", ""), values.get("K8S_POD_NAME", "")
    if not namespace or not name:
        raise InvalidEnvironmentError(
            "CNI_ARGS do not name a pod", "K8S_POD_NAMESPACE and K8S_POD_NAME are required"
        )
    return PodRequest(namespace, name, values.get("K8S_POD_UID", ""), ifname, cni_args)


def plan_pod(config: MetaConfig, source: KubeSource, request: PodRequest) -> Plan:
    """Decide the pod's attachments (reads the pod, its NADs and the config dir; no changes)."""
    pod = source.get_pod(request.namespace, request.name)
    _check_uid(pod, request.uid)
    choices = [_primary(config, source, pod), *_secondaries(config, source, pod)]
    interfaces = _interfaces(choices, request.ifname)
    gateways = _check_gateways(choices)
    cni_args = delegate_cni_args(request.cni_args)
    attachments = tuple(
        _attachment(choice, interface, index == 0, gateways, cni_args)
        for index, (choice, interface) in enumerate(zip(choices, interfaces, strict=True))
    )
    return Plan(pod, attachments)


def _check_uid(pod: Pod, uid: str) -> None:
    static = pod.annotations.get(CONFIG_SOURCE_ANNOTATION, "api") != "api"
    if uid and pod.uid and uid != pod.uid and not static:
        raise PodNotFoundError(
            f"no pod {pod.namespace}/{pod.name} with uid {uid}",
            f"the pod of that name has uid {pod.uid}: the sandbox belongs to one deleted since",
        )


def _primary(config: MetaConfig, source: KubeSource, pod: Pod) -> _Choice:
    text = pod.annotations.get(DEFAULT_NETWORK_ANNOTATION)
    if text is None:
        delegate = reference_delegate(
            source, config.cluster_network, config.multus_namespace, config.conf_dir
        )
        return _Choice(delegate, None, None)
    where = Where(f"{pod.namespace}/{pod.name}", DEFAULT_NETWORK_ANNOTATION)
    selection = parse_default_network(text, config.multus_namespace, where)
    # The override comes from the meta plugin's namespace unless isolation allows more.
    _check_isolation(config, pod, selection, where, also=(config.multus_namespace,))
    delegate = nad_delegate(source, selection.namespace, selection.name, config.conf_dir)
    return _Choice(delegate, selection, where)


def _secondaries(config: MetaConfig, source: KubeSource, pod: Pod) -> list[_Choice]:
    choices = []
    if pod.namespace not in config.system_namespaces:
        for reference in config.default_networks:
            delegate = reference_delegate(
                source, reference, config.multus_namespace, config.conf_dir
            )
            choices.append(_Choice(delegate, None, None))
    where = Where(f"{pod.namespace}/{pod.name}", NETWORKS_ANNOTATION)
    for selection in parse_networks(
        pod.annotations.get(NETWORKS_ANNOTATION, ""), pod.namespace, where
    ):
        _check_isolation(config, pod, selection, where)
        delegate = nad_delegate(source, selection.namespace, selection.name, config.conf_dir)
        choices.append(_Choice(delegate, selection, where))
    return choices


def _check_isolation(
    config: MetaConfig,
    pod: Pod,
    selection: NetworkSelection,
    where: Where,
    also: tuple[str, ...] = (),
) -> None:
    allowed = (pod.namespace, *config.global_namespaces, *also)
    if config.namespace_isolation and selection.namespace not in allowed:
        raise IsolationError(
            f"pod {where.pod}: namespace isolation forbids network {selection.ref} "
            f"({where.annotation})",
            f"a pod in namespace {pod.namespace!r} may use networks of its own namespace and of "
            f"globalNamespaces {list(config.global_namespaces)}",
        )


def _interfaces(choices: list[_Choice], ifname: str) -> list[str]:
    """Each attachment's interface: asked for, the runtime's for the primary, else net<i>."""
    names: list[str] = []
    taken: dict[str, str] = {}
    for index, choice in enumerate(choices):
        asked = choice.selection.interface if choice.selection is not None else ""
        name = asked or (ifname if index == 0 else f"net{index}")
        if name in taken:
            where = choice.where or choices[0].where
            message = (
                f"interface {name!r} asked for twice: by {taken[name]} and "
                f"{choice.delegate.network}"
            )
            if where is None:
                raise InvalidEnvironmentError("duplicate interface names", message)
            raise where.error(message)
        taken[name] = choice.delegate.network
        names.append(name)
    return names


def _check_gateways(choices: list[_Choice]) -> bool:
    """Refuse two default-route gateways of one family; whether any was asked for."""
    seen: dict[int, str] = {}
    for choice in choices:
        if choice.selection is None or choice.where is None:
            continue
        for gateway in choice.selection.gateways:
            version = ipaddress.ip_address(gateway).version
            if version in seen:
                raise choice.where.error(
                    f"default-route: two IPv{version} gateways ({seen[version]} and {gateway}); "
                    "one default route per IP family (no ECMP)"
                )
            seen[version] = gateway
    return bool(seen)


def _attachment(
    choice: _Choice, interface: str, primary: bool, any_gateway: bool, cni_args: CniArgs
) -> NetworkAttachment:
    selection, delegate = choice.selection, choice.delegate
    capability_args = _capability_args(choice)
    gateways = selection.gateways if selection is not None else ()
    return NetworkAttachment(
        network=delegate.network,
        namespace=delegate.namespace,
        interface=interface,
        config=conflist_bytes(delegate.netlist, selection.cni_args if selection else None),
        capability_args=capability_args,
        cni_args=cni_args,
        primary=primary,
        default_route=bool(gateways) if any_gateway else primary,
        gateways=gateways,
        source=delegate.source,
    )


def _capability_args(choice: _Choice) -> dict[str, Any]:
    requested = requested_capabilities(choice.selection)
    declared = declared_capabilities(choice.delegate.netlist)
    refused = sorted(set(requested) - declared)
    if refused and choice.where is not None:
        raise choice.where.error(
            f"network {choice.delegate.network} cannot take {', '.join(refused)}: no plugin of "
            f"its config declares the capabilit{'y' if len(refused) == 1 else 'ies'} "
            f"(it declares {sorted(declared) or 'none'})"
        )
    return requested


def delegate_cni_args(cni_args: CniArgs) -> CniArgs:
    """The request's CNI_ARGS for every delegate, with IgnoreUnknown=true first (as Multus):
    delegates that know no K8S_* keys must not fail on them."""
    rest = tuple((key, value) for key, value in cni_args if key != "IgnoreUnknown")
    return (("IgnoreUnknown", "true"), *rest)
