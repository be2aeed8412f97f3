"""The planner must not quietly move or duplicate live address space, nor plan public space.

A hand-edited ``--previous`` plan whose allocations overlap is an error (exit 1,
nothing exported); pod and service blocks outside private space are a warning.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from multinic.plan.export import export_cluster
from multinic.plan.model import BlockKind

from .fabrics import cluster, dual_stack, fabric, network, plan_of, rules
from .test_cli import run, write

KINDS = ("node", "pod", "service")


def planned(tmp_path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    done = run(str(write(tmp_path, doc)), "--json")
    assert done.exit_code == 0, done.output
    return dict(json.loads(done.stdout))


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    taker=st.integers(0, 2),
    victim=st.integers(0, 2),
    grow=st.integers(0, 3),
)
def test_a_previous_plan_whose_allocations_overlap_is_an_error(
    tmp_path_factory: Any, kind: str, taker: int, victim: int, grow: int
) -> None:
    tmp_path = tmp_path_factory.mktemp("prev")
    doc = fabric(cluster("a"), cluster("b"), cluster("c"))
    plan = planned(tmp_path, doc)
    if taker == victim:
        victim = (victim + 1) % 3
    # The taker claims the victim's prefix, or a larger one holding it (edited by hand).
    target = ip_network(plan["clusters"][victim][kind][0])
    plan["clusters"][taker][kind] = [str(target.supernet(min(grow, target.prefixlen - 11)))]
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(plan))
    export = tmp_path / "out"

    done = run(str(write(tmp_path, doc)), "--previous", str(previous), "--export", str(export))

    assert done.exit_code == 1, done.output
    assert "error overlap the previous plan gives" in " ".join(done.stdout.split())
    assert not export.exists()


def test_a_previous_plan_with_overlapping_multus_ranges_names_both_networks() -> None:
    first = plan_of(fabric(cluster("a"), cluster("b")))
    previous = {(a.kind, a.owner, a.prefix.version): a.prefix for a in first.allocations()}
    previous[BlockKind.MULTUS, "b/n3", 4] = previous[BlockKind.MULTUS, "a/n3", 4]

    plan = plan_of(fabric(cluster("a"), cluster("b")), previous)

    errors = [f.message for f in plan.errors if f.rule == "overlap"]
    assert len(errors) == 1 and "of b/n3" in errors[0] and "of a/n3" in errors[0]


def test_a_previous_plan_without_overlaps_is_no_error() -> None:
    first = plan_of(dual_stack(cluster("a"), cluster("b")))
    previous = {(a.kind, a.owner, a.prefix.version): a.prefix for a in first.allocations()}

    assert plan_of(dual_stack(cluster("b"), cluster("a")), previous).errors == []


PRIVATE = [
    ip_network(p) for p in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
]


@settings(max_examples=60, deadline=None)
@given(
    address=st.integers(0, 2**32 - 1),
    length=st.integers(8, 16),
    kind=st.sampled_from(["pod", "service"]),
)
def test_public_pod_or_service_space_is_a_warning(address: int, length: int, kind: str) -> None:
    block = IPv4Network((address >> (32 - length) << (32 - length), length))
    doc = fabric(cluster("a"), routable=[])
    doc["blocks"] = {"node": "10.10.0.0/20", "multus": "10.100.0.0/16", "pod": "10.32.0.0/11"}
    doc["blocks"][kind] = str(block)
    if any(
        block.overlaps(b)
        for b in map(ip_network, ("10.10.0.0/20", "10.100.0.0/16", "10.32.0.0/11"))
    ):
        return  # block-overlap's finding, not this rule's
    private = any(block.subnet_of(p) for p in PRIVATE)  # type: ignore[arg-type]

    plan = plan_of(doc)

    assert (("warning", "public-space") in rules(plan)) is not private
    if not private:
        (finding,) = (f for f in plan.findings if f.rule == "public-space")
        assert f"{kind} block {block} is outside private address space" in finding.message


def test_public_space_declared_routable_is_the_routable_error_only() -> None:
    doc = fabric(cluster("a"), routable=["10.10.0.0/16", "10.100.0.0/16", "8.0.0.0/8"])
    doc["blocks"]["pod"] = "8.0.0.0/11"

    found = rules(plan_of(doc))

    assert ("error", "routable") in found and ("warning", "public-space") not in found


def test_ipv6_pods_outside_unique_local_space_are_a_warning() -> None:
    doc = dual_stack(cluster("a"))
    doc["blocks"]["pod"] = ["10.32.0.0/11", "2001:db8::/48"]

    messages = [f.message for f in plan_of(doc).findings if f.rule == "public-space"]

    assert messages and "pod block 2001:db8::/48" in messages[0] and "fc00::/7" in messages[0]


@settings(max_examples=30, deadline=None)
@given(
    expected=st.integers(1, 40),
    grow=st.integers(0, 30),
    addresses=st.integers(1, 2000),
    dual=st.booleans(),
)
def test_no_two_node_slots_of_a_per_node_network_share_an_address(
    expected: int, grow: int, addresses: int, dual: bool
) -> None:
    net = network("sig", ipam="per-node", expected_addresses=addresses)
    one = cluster("a", nodes={"expected": expected, "max": expected + grow}, networks=[net])
    plan = plan_of(dual_stack(one) if dual else fabric(one))
    if plan.errors:
        return  # a range too small is multus-capacity's error, and nothing is exported
    files = export_cluster(plan, plan.clusters[0])
    nad = yaml.safe_load(files["network-attachment-definitions.yaml"])
    assert "spec" not in nad  # never one range for every node
    configs = [json.loads(text) for name, text in files.items() if name.startswith("multus-net.d/")]
    assert len(configs) == expected + grow
    seen: set[tuple[int, int]] = set()
    for config in configs:
        for (r,) in config["ipam"]["ranges"]:
            version = ip_network(r["subnet"]).version
            first, last = (int(ip_address(r[k])) for k in ("rangeStart", "rangeEnd"))
            assert last - first + 1 >= -(-addresses // expected)  # each node's share fits
            mine = {(version, a) for a in range(first, last + 1)}
            assert not mine & seen
            seen |= mine
