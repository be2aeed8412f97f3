"""Selection rules: which attachments a pod gets, in which order, with which delegate config."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multinic.cni.errors import (
    AnnotationError,
    DecodingError,
    ErrorCode,
    InvalidEnvironmentError,
    IsolationError,
    NetworkNotFoundError,
    PodNotFoundError,
)
from multinic.kube.directory import DirectorySource
from multinic.kube.objects import DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, Pod
from multinic.meta.config import MetaConfig
from multinic.meta.plan import Plan, plan_pod, pod_request

PODNET = b'{"cniVersion": "1.0.0", "name": "podnet", "plugins": [{"type": "bridge"}]}\n'
ARGS = (
    ("K8S_POD_NAMESPACE", "telco"),
    ("K8S_POD_NAME", "upf-0"),
    ("K8S_POD_UID", "uid-1"),
    ("K8S_POD_INFRA_CONTAINER_ID", "c0ffee"),
)


def macvlan(name: str, *caps: str, **extra: Any) -> str:
    plugin = {"type": "macvlan", "master": "eth1", "capabilities": dict.fromkeys(caps, True)}
    return json.dumps({"cniVersion": "1.0.0", "name": name, **plugin, **extra})


class MemorySource:
    """The KubeSource interface over dicts: the selection logic needs nothing more."""

    def __init__(self, annotations: Mapping[str, str] = (), namespace: str = "telco") -> None:
        self.pod = Pod(namespace, "upf-0", "uid-1", "node-a", dict(annotations))
        self.nads: dict[tuple[str, str], str] = {}

    def get_pod(self, namespace: str, name: str) -> Pod:
        if (namespace, name) != (self.pod.namespace, self.pod.name):
            raise PodNotFoundError(f"no pod {namespace}/{name}")
        return self.pod

    def get_network_config(self, namespace: str, name: str) -> str | None:
        return self.nads.get((namespace, name))

    def set_network_status(
        self, namespace: str, name: str, status: Sequence[Mapping[str, Any]], uid: str = ""
    ) -> None:
        raise AssertionError("selection never writes")


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "net.d"
    directory.mkdir()
    (directory / "10-podnet.conflist").write_bytes(PODNET)
    return directory


def plan(
    conf_dir: Path,
    source: MemorySource,
    namespace: str = "telco",
    **config: Any,
) -> Plan:
    meta = MetaConfig(**{"cluster_network": "podnet", "conf_dir": conf_dir, **config})
    args = tuple((k, namespace if k == "K8S_POD_NAMESPACE" else v) for k, v in ARGS)
    return plan_pod(meta, source, pod_request(args, "eth0"))


def summary(p: Plan) -> list[tuple[str, str, bool]]:
    return [(a.network, a.interface, a.default_route) for a in p.attachments]


# -- the primary ----------------------------------------------------------------------


def test_primary_only_runs_the_config_dir_conflist_byte_for_byte(conf_dir: Path) -> None:
    (primary,) = plan(conf_dir, MemorySource()).attachments

    assert primary.network == "podnet"
    assert primary.namespace == ""
    assert primary.interface == "eth0"
    assert primary.config == PODNET
    assert primary.primary and primary.default_route
    assert primary.capability_args == {}
    assert primary.cni_args == (("IgnoreUnknown", "true"), *ARGS)
    assert primary.source.endswith("10-podnet.conflist")


def test_cluster_network_as_a_file_a_relative_path_or_a_directory(
    conf_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "a.conf").write_text(macvlan("from-file"))
    (conf_dir / "sub").mkdir()
    (conf_dir / "sub" / "b.conflist").write_bytes(PODNET.replace(b"podnet", b"relative"))

    for reference, name in [
        (str(other / "a.conf"), "from-file"),
        ("sub/b.conflist", "relative"),
        (str(other), "from-file"),
    ]:
        (primary,) = plan(conf_dir, MemorySource(), cluster_network=reference).attachments
        assert primary.network == name
        assert json.loads(primary.config)["plugins"][0]["type"] in ("macvlan", "bridge")


def test_cluster_network_as_a_nad_in_the_meta_namespace(conf_dir: Path) -> None:
    source = MemorySource()
    source.nads["netops", "calico"] = macvlan("calico")

    (primary,) = plan(
        conf_dir, source, cluster_network="calico", multus_namespace="netops"
    ).attachments

    assert primary.network == "netops/calico"
    assert json.loads(primary.config) == {
        "cniVersion": "1.0.0",
        "name": "calico",
        "plugins": [json.loads(macvlan("calico"))],
    }


def test_an_unknown_cluster_network_names_both_places_looked(conf_dir: Path) -> None:
    with pytest.raises(NetworkNotFoundError, match=r"network 'nope' not found") as caught:
        plan(conf_dir, MemorySource(), cluster_network="nope")
    assert str(conf_dir) in caught.value.details
    assert "'kube-system'" in caught.value.details


def test_default_network_annotation_overrides_the_primary(conf_dir: Path) -> None:
    source = MemorySource({DEFAULT_NETWORK_ANNOTATION: "fast@eth9"})
    source.nads["kube-system", "fast"] = macvlan("fast")

    (primary,) = plan(conf_dir, source).attachments

    assert (primary.network, primary.interface, primary.primary) == (
        "kube-system/fast",
        "eth9",
        True,
    )


def test_a_default_network_override_of_two_networks_is_refused(conf_dir: Path) -> None:
    with pytest.raises(AnnotationError, match=DEFAULT_NETWORK_ANNOTATION):
        plan(conf_dir, MemorySource({DEFAULT_NETWORK_ANNOTATION: "a,b"}))


# -- secondaries ----------------------------------------------------------------------


def test_default_networks_then_annotation_networks_numbered_by_position(conf_dir: Path) -> None:
    (conf_dir / "mgmt.conf").write_text(macvlan("mgmt"))
    source = MemorySource({NETWORKS_ANNOTATION: "data, shared/oam@oam0, data"})
    source.nads["telco", "data"] = macvlan("data")
    source.nads["shared", "oam"] = macvlan("oam")

    got = plan(conf_dir, source, default_networks=("mgmt",))

    assert summary(got) == [
        ("podnet", "eth0", True),
        ("mgmt", "net1", False),
        ("telco/data", "net2", False),
        ("shared/oam", "oam0", False),
        ("telco/data", "net4", False),
    ]
    assert [a.primary for a in got.attachments] == [True, False, False, False, False]


def test_system_namespaces_get_no_default_networks_but_what_they_ask_for(conf_dir: Path) -> None:
    (conf_dir / "mgmt.conf").write_text(macvlan("mgmt"))
    source = MemorySource({NETWORKS_ANNOTATION: "data"}, namespace="kube-system")
    source.nads["kube-system", "data"] = macvlan("data")

    got = plan(conf_dir, source, namespace="kube-system", default_networks=("mgmt",))

    assert summary(got) == [("podnet", "eth0", True), ("kube-system/data", "net1", False)]


def test_an_unknown_nad_is_a_clear_error(conf_dir: Path) -> None:
    with pytest.raises(NetworkNotFoundError, match=r"network telco/ghost not found") as caught:
        plan(conf_dir, MemorySource({NETWORKS_ANNOTATION: "ghost"}))
    assert caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert "namespace 'telco'" in caught.value.details


def test_a_nad_without_config_names_a_network_in_the_config_dir(conf_dir: Path) -> None:
    (conf_dir / "20-data.conflist").write_bytes(PODNET.replace(b"podnet", b"data"))
    source = MemorySource({NETWORKS_ANNOTATION: "data, empty"})
    source.nads["telco", "data"] = ""
    source.nads["telco", "empty"] = ""

    with pytest.raises(NetworkNotFoundError, match=r"telco/empty: its spec.config is empty"):
        plan(conf_dir, source)
    source.pod.annotations[NETWORKS_ANNOTATION] = "data"  # type: ignore[index]
    secondary = plan(conf_dir, source).attachments[1]
    assert secondary.config == PODNET.replace(b"podnet", b"data")
    assert secondary.network == "telco/data"


def test_a_nad_config_without_a_name_is_named_after_the_nad(conf_dir: Path) -> None:
    source = MemorySource({NETWORKS_ANNOTATION: "data"})
    source.nads["telco", "data"] = '{"cniVersion": "1.0.0", "plugins": [{"type": "macvlan"}]}'

    assert json.loads(plan(conf_dir, source).attachments[1].config)["name"] == "data"


def test_a_broken_nad_config_keeps_its_code_and_names_the_nad(conf_dir: Path) -> None:
    source = MemorySource({NETWORKS_ANNOTATION: "data"})
    source.nads["telco", "data"] = "{not json"

    with pytest.raises(DecodingError, match=r"NetworkAttachmentDefinition telco/data") as caught:
        plan(conf_dir, source)
    assert caught.value.code == ErrorCode.DECODING_FAILURE


def test_duplicate_interface_names_are_refused(conf_dir: Path) -> None:
    source = MemorySource({NETWORKS_ANNOTATION: "a, b@net1"})
    source.nads["telco", "a"] = macvlan("a")
    source.nads["telco", "b"] = macvlan("b")

    with pytest.raises(AnnotationError, match=r"interface 'net1' asked for twice") as caught:
        plan(conf_dir, source)
    assert "pod telco/upf-0" in caught.value.msg
    with pytest.raises(AnnotationError, match=r"'eth0' asked for twice"):
        source.pod.annotations[NETWORKS_ANNOTATION] = "a@eth0"  # type: ignore[index]
        plan(conf_dir, source)


def test_a_default_network_on_the_runtimes_interface_name_is_an_environment_error(
    conf_dir: Path,
) -> None:
    (conf_dir / "mgmt.conf").write_text(macvlan("mgmt"))
    meta = MetaConfig("podnet", ("mgmt",), conf_dir=conf_dir)
    with pytest.raises(InvalidEnvironmentError, match=r"'net1' asked for twice"):
        plan_pod(meta, MemorySource(), pod_request(ARGS, "net1"))


def test_a_malformed_annotation_names_pod_and_annotation(conf_dir: Path) -> None:
    with pytest.raises(AnnotationError) as caught:
        plan(conf_dir, MemorySource({NETWORKS_ANNOTATION: '[{"name": "a", "mac": 1}]'}))
    assert caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert caught.value.msg == f"pod telco/upf-0: invalid annotation {NETWORKS_ANNOTATION}"


# -- namespace isolation --------------------------------------------------------------


def test_isolation_allows_own_and_global_namespaces_and_refuses_others(conf_dir: Path) -> None:
    source = MemorySource({NETWORKS_ANNOTATION: "own, default/shared, other/secret"})
    for key in [("telco", "own"), ("default", "shared"), ("other", "secret")]:
        source.nads[key] = macvlan(key[1])

    assert len(plan(conf_dir, source).attachments) == 4  # isolation off: anything goes
    with pytest.raises(IsolationError, match=r"forbids network other/secret") as caught:
        plan(conf_dir, source, namespace_isolation=True)
    assert caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert "'telco'" in caught.value.details

    got = plan(conf_dir, source, namespace_isolation=True, global_namespaces=("default", "other"))
    assert len(got.attachments) == 4


def test_isolation_applies_to_the_default_network_override(conf_dir: Path) -> None:
    source = MemorySource({DEFAULT_NETWORK_ANNOTATION: "other/fast"})
    source.nads["other", "fast"] = macvlan("fast")

    with pytest.raises(IsolationError, match=DEFAULT_NETWORK_ANNOTATION):
        plan(conf_dir, source, namespace_isolation=True)
    source.pod.annotations[DEFAULT_NETWORK_ANNOTATION] = "fast"  # type: ignore[index]
    source.nads["kube-system", "fast"] = macvlan("fast")
    assert plan(conf_dir, source, namespace_isolation=True).attachments[0].network == (
        "kube-system/fast"
    )


# -- what reaches a delegate ----------------------------------------------------------


def test_requests_reach_a_delegate_only_through_declared_capabilities(conf_dir: Path) -> None:
    request = [{"name": "data", "ips": ["10.0.0.5/24"], "mac": "02:00:00:00:00:01"}]
    source = MemorySource({NETWORKS_ANNOTATION: json.dumps(request)})
    source.nads["telco", "data"] = macvlan("data", "ips", "mac", "bandwidth")

    secondary = plan(conf_dir, source).attachments[1]
    assert secondary.capability_args == {"ips": ["10.0.0.5/24"], "mac": "02:00:00:00:00:01"}

    source.nads["telco", "data"] = macvlan("data", "ips")
    with pytest.raises(AnnotationError, match=r"cannot take mac: no plugin .* declares"):
        plan(conf_dir, source)


def test_every_request_maps_to_its_capability(conf_dir: Path) -> None:
    request = {
        "name": "data",
        "infiniband-guid": "00:11:22:33:44:55:66:77",
        "deviceID": "0000:3b:00.1",
        "portMappings": [{"hostPort": 80, "containerPort": 8080}],
        "bandwidth": {"egressRate": 10},
    }
    caps = ("infinibandGUID", "deviceID", "portMappings", "bandwidth")
    source = MemorySource({NETWORKS_ANNOTATION: json.dumps([request])})
    source.nads["telco", "data"] = macvlan("data", *caps)

    assert plan(conf_dir, source).attachments[1].capability_args == {
        "infinibandGUID": "00:11:22:33:44:55:66:77",
        "deviceID": "0000:3b:00.1",
        "portMappings": [{"hostPort": 80, "containerPort": 8080}],
        "bandwidth": {"egressRate": 10},
    }


def test_cni_args_go_into_every_plugin_merged_over_its_own(conf_dir: Path) -> None:
    conflist = {
        "cniVersion": "1.0.0",
        "name": "data",
        "plugins": [
            {"type": "macvlan", "args": {"cni": {"keep": 1, "vlan": 1}}},
            {"type": "tuning"},
        ],
    }
    request = [{"name": "data", "cni-args": {"vlan": 5}}]
    source = MemorySource({NETWORKS_ANNOTATION: json.dumps(request)})
    source.nads["telco", "data"] = json.dumps(conflist)

    plugins = json.loads(plan(conf_dir, source).attachments[1].config)["plugins"]

    assert [p["args"]["cni"] for p in plugins] == [{"keep": 1, "vlan": 5}, {"vlan": 5}]


def test_a_nad_conflist_without_requests_runs_as_written(conf_dir: Path) -> None:
    text = '{"cniVersion":"1.0.0", "name":"data",  "plugins":[{"type":"macvlan"}]}'
    source = MemorySource({NETWORKS_ANNOTATION: "data"})
    source.nads["telco", "data"] = text

    assert plan(conf_dir, source).attachments[1].config == text.encode()


def test_default_route_moves_to_the_attachment_that_asks(conf_dir: Path) -> None:
    request = [{"name": "data", "default-route": ["10.0.0.1", "2001:db8::1"]}, {"name": "oam"}]
    source = MemorySource({NETWORKS_ANNOTATION: json.dumps(request)})
    source.nads["telco", "data"] = macvlan("data")
    source.nads["telco", "oam"] = macvlan("oam")

    got = plan(conf_dir, source)

    assert summary(got) == [
        ("podnet", "eth0", False),
        ("telco/data", "net1", True),
        ("telco/oam", "net2", False),
    ]
    assert got.attachments[1].gateways == ("10.0.0.1", "2001:db8::1")


def test_two_gateways_of_one_family_are_refused(conf_dir: Path) -> None:
    request = [
        {"name": "a", "default-route": ["10.0.0.1"]},
        {"name": "b", "default-route": ["10.1.0.1"]},
    ]
    source = MemorySource({NETWORKS_ANNOTATION: json.dumps(request)})
    source.nads["telco", "a"] = macvlan("a")
    source.nads["telco", "b"] = macvlan("b")

    with pytest.raises(AnnotationError, match=r"two IPv4 gateways"):
        plan(conf_dir, source)


# -- the pod ----------------------------------------------------------------------------


def test_cni_args_must_name_the_pod() -> None:
    with pytest.raises(InvalidEnvironmentError) as caught:
        pod_request((("K8S_POD_NAMESPACE", "telco"),), "eth0")
    assert caught.value.code == ErrorCode.INVALID_ENVIRONMENT


def test_a_pod_replaced_under_the_same_name_is_not_planned(conf_dir: Path) -> None:
    source = MemorySource()
    source.pod = source.pod._replace(uid="uid-2")
    with pytest.raises(PodNotFoundError, match=r"with uid uid-1"):
        plan(conf_dir, source)

    # A static pod's mirror in the API has its own uid: not a replacement.
    source.pod = source.pod._replace(annotations={"kubernetes.io/config.source": "file"})
    assert len(plan(conf_dir, source).attachments) == 1


def test_the_directory_source_plans_the_same(conf_dir: Path, tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    objects.mkdir()
    (objects / "pod.yaml").write_text(
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: upf-0, namespace: telco, annotations: {{{NETWORKS_ANNOTATION}: "data@n3"}}}}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: data, namespace: telco}}
spec: {{config: '{macvlan("data")}'}}
"""
    )
    meta = MetaConfig("podnet", conf_dir=conf_dir)

    got = plan_pod(meta, DirectorySource(objects), pod_request(ARGS, "eth0"))

    assert summary(got) == [("podnet", "eth0", True), ("telco/data", "n3", False)]


# -- property: interface naming -------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
ASKED = st.one_of(st.just(""), st.sampled_from(["net1", "net2", "net3", "n3", "eth0"]))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(NAMES, ASKED), max_size=5))
def test_interfaces_are_unique_positional_and_as_asked(
    conf_dir: Path, items: list[tuple[str, str]]
) -> None:
    text = ",".join(f"{name}@{asked}" if asked else name for name, asked in items)
    source = MemorySource({NETWORKS_ANNOTATION: text})
    for name in "abc":
        source.nads["telco", name] = macvlan(name)
    expected = ["eth0"] + [asked or f"net{i}" for i, (_, asked) in enumerate(items, start=1)]

    if len(set(expected)) < len(expected):
        with pytest.raises(AnnotationError, match="asked for twice"):
            plan(conf_dir, source)
        return
    got = plan(conf_dir, source)
    assert [a.interface for a in got.attachments] == expected
    assert [a.network for a in got.attachments] == ["podnet"] + [f"telco/{n}" for n, _ in items]
