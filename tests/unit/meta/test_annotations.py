"""The networks annotation in both forms: what it means, and that nothing malformed escapes."""

from __future__ import annotations

import contextlib
import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multinic.cni.errors import AnnotationError, ErrorCode
from multinic.meta.annotations import (
    NetworkSelection,
    Where,
    parse_default_network,
    parse_networks,
)

WHERE = Where("telco/upf-0", "k8s.v1.cni.cncf.io/networks")


def parse(text: str) -> tuple[NetworkSelection, ...]:
    return parse_networks(text, "telco", WHERE)


def test_comma_form() -> None:
    assert parse("a, other/b@eth5 ,c@n3") == (
        NetworkSelection("a", "telco"),
        NetworkSelection("b", "other", interface="eth5"),
        NetworkSelection("c", "telco", interface="n3"),
    )


def test_blank_is_no_networks() -> None:
    assert parse("") == ()
    assert parse("  \n") == ()


def test_json_form_with_every_field() -> None:
    element = {
        "name": "data",
        "namespace": "other",
        "interface": "n3",
        "ips": ["10.0.0.5/24", "2001:db8::5"],
        "mac": "02:00:00:00:00:01",
        "infiniband-guid": "00:11:22:33:44:55:66:77",
        "deviceID": "0000:3b:00.1",
        "default-route": ["10.0.0.1"],
        "cni-args": {"vlan": 5, "mode": "x"},
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 100},
        "somethingNew": "ignored, as Multus ignores unknown keys",
    }

    assert parse(json.dumps([element, {"name": "b", "interfaceRequest": "x1"}])) == (
        NetworkSelection(
            name="data",
            namespace="other",
            interface="n3",
            ips=("10.0.0.5/24", "2001:db8::5"),
            mac="02:00:00:00:00:01",
            infiniband_guid="00:11:22:33:44:55:66:77",
            device_id="0000:3b:00.1",
            gateways=("10.0.0.1",),
            cni_args={"vlan": 5, "mode": "x"},
            port_mappings=({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},),
            bandwidth={"ingressRate": 1000, "ingressBurst": 100},
        ),
        NetworkSelection("b", "telco", interface="x1"),  # Multus' pre-3.2 key
    )


def test_default_network_override_is_one_network_in_the_meta_namespace() -> None:
    where = Where("telco/upf-0", "v1.multus-cni.io/default-network")
    assert parse_default_network("calico", "kube-system", where) == NetworkSelection(
        "calico", "kube-system"
    )
    assert parse_default_network("telco/own@eth0", "kube-system", where).namespace == "telco"
    for text in ("a,b", "", "[]"):
        with pytest.raises(AnnotationError, match="default-network"):
            parse_default_network(text, "kube-system", where)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a,,b", "empty entry"),
        ("a,", "empty entry"),
        ("x/y/z", "more than one '/'"),
        ("a@b@c", "more than one '@'"),
        ("a@", "nothing after '@'"),
        ("UPPER", "network name 'UPPER'"),
        ("-a", "network name"),
        ("bad_ns/a", "namespace 'bad_ns'"),
        ("/a", "namespace ''"),
        ("a@" + "x" * 16, "interface name is too long"),
        ("a@eth 0", "nothing after|invalid character"),  # whitespace is trimmed; inner stays
        ("a@e/0", "namespace 'a@e'"),  # the last '/' ends the namespace
        ("a@..", "interface name is . or .."),
        ("a@e:1", "invalid character in interface name"),
        ("[", "not JSON"),
        ('{"name": "a"}', "must be a list of objects"),
        ("[1]", r"\[0\] is not an object"),
        ('[{"namespace": "x"}]', "has no 'name'"),
        ('[{"name": 5}]', r"\[0\].name must be a string"),
        ('[{"name": "a", "ips": "10.0.0.1"}]', "ips must be a list of strings"),
        ('[{"name": "a", "ips": ["10.0.0.300"]}]', "is not an IP address"),
        ('[{"name": "a", "mac": "02:00:00:00:00"}]', "is not a MAC address"),
        ('[{"name": "a", "mac": "02:00-00:00:00:01"}]', "is not a MAC address"),
        ('[{"name": "a", "infiniband-guid": "00:11"}]', "infiniband-guid"),
        ('[{"name": "a", "default-route": ["10.0.0.0/8"]}]', "default-route.*not an IP address"),
        ('[{"name": "a", "cni-args": [1]}]', "cni-args must be an object"),
        ('[{"name": "a", "portMappings": {}}]', "portMappings must be a list"),
        ('[{"name": "a", "portMappings": [{"hostPort": 0, "containerPort": 80}]}]', "hostPort"),
        ('[{"name": "a", "portMappings": [{"hostPort": 1, "containerPort": true}]}]', "container"),
        ('[{"name": "a", "bandwidth": {"ingressRate": -1}}]', "ingressRate"),
        ('[{"name": "a", "bandwidth": {"egressBurst": 1.5}}]', "egressBurst"),
        ("[" * 100 + "]" * 100, "nested deeper"),
    ],
)
def test_malformed_annotations_name_pod_annotation_and_problem(text: str, problem: str) -> None:
    with pytest.raises(AnnotationError, match=problem) as caught:
        parse(text)
    assert caught.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert caught.value.msg == "pod telco/upf-0: invalid annotation k8s.v1.cni.cncf.io/networks"


# -- properties -----------------------------------------------------------------------

LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
IFNAME = st.text(
    alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=15
).filter(lambda s: s not in (".", ".."))
SELECTION = st.builds(
    lambda name, namespace, interface: NetworkSelection(name, namespace, interface=interface),
    LABEL,
    LABEL,
    st.one_of(st.just(""), IFNAME),
)


def comma_item(selection: NetworkSelection, explicit_namespace: bool) -> str:
    text = f"{selection.namespace}/{selection.name}" if explicit_namespace else selection.name
    return f"{text}@{selection.interface}" if selection.interface else text


@given(st.lists(st.tuples(SELECTION, st.booleans()), min_size=1, max_size=6))
def test_comma_form_round_trips(items: list[tuple[NetworkSelection, bool]]) -> None:
    text = " , ".join(comma_item(s, explicit) for s, explicit in items)
    expected = tuple(s if explicit else s._replace(namespace="telco") for s, explicit in items)
    assert parse(text) == expected


@given(st.lists(SELECTION, min_size=1, max_size=6))
def test_json_form_round_trips(selections: list[NetworkSelection]) -> None:
    text = json.dumps(
        [
            {
                "name": s.name,
                "namespace": s.namespace,
                **({"interface": s.interface} if s.interface else {}),
            }
            for s in selections
        ]
    )
    assert parse(text) == tuple(selections)


@given(st.text(max_size=80))
def test_any_text_parses_or_is_our_error(text: str) -> None:
    try:
        parse(text)
    except AnnotationError as err:
        assert err.msg.startswith("pod telco/upf-0")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "name", "namespace", "interface", "interfaceRequest", "ips", "mac", "infiniband-guid",
        "deviceID", "default-route", "cni-args", "portMappings", "bandwidth",
    ]
)  # fmt: skip


@given(st.lists(st.dictionaries(KEYS, JSON_VALUES, max_size=6) | JSON_VALUES, max_size=4))
def test_any_json_parses_or_is_our_error(items: list[object]) -> None:
    with contextlib.suppress(AnnotationError):
        parse(json.dumps(items))
