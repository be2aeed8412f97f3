"""Every rule, each with a fabric that breaks it; the seed's example fabric breaks none."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

from multinic.plan.allocate import plan_fabric
from multinic.plan.model import BlockKind, Fabric
from multinic.plan.parse import load_fabric, parse_fabric
from multinic.plan.validate import PLAN_RULES, validate

from .fabrics import cluster, dual_stack, fabric, network, plan_of, rules

EXAMPLE = Path(__file__).parents[3] / "examples" / "fabric.yaml"


def messages(plan, rule: str) -> list[str]:
    return [f.message for f in plan.findings if f.rule == rule]


def test_example_fabric_plans_cleanly() -> None:
    plan = validate(plan_fabric(load_fabric(EXAMPLE)))

    assert plan.findings == []
    assert not plan.shortfalls


def test_the_base_fabrics_of_these_tests_are_clean() -> None:
    assert plan_of(fabric()).findings == []
    assert plan_of(dual_stack(cluster("a"), cluster("b"))).findings == []


def test_overlapping_blocks_are_named_both() -> None:
    doc = fabric(blocks={"node": "10.10.0.0/20", "pod": "10.0.0.0/11", "multus": "10.10.8.0/21"})

    plan = plan_of(doc)

    assert ("error", "block-overlap") in rules(plan)
    found = messages(plan, "block-overlap")
    assert "node block 10.10.0.0/20 overlaps pod block 10.0.0.0/11" in found
    assert "node block 10.10.0.0/20 overlaps multus block 10.10.8.0/21" in found
    assert "pod block 10.0.0.0/11 overlaps multus block 10.10.8.0/21" in found


def test_pod_and_service_space_must_not_be_routable() -> None:
    plan = plan_of(fabric(routable=["10.0.0.0/8", "100.64.0.0/16"]))

    found = messages(plan, "routable")
    assert len(found) == 2
    assert found[0].startswith("pod block 10.32.0.0/11 overlaps routable prefix 10.0.0.0/8")
    assert found[1].startswith("service block 100.64.0.0/10 overlaps routable prefix 100.64.0.0/16")


def test_pod_space_must_not_shadow_in_use_addresses() -> None:
    plan = plan_of(fabric(in_use=["10.40.1.0/24"]))

    assert messages(plan, "in-use") == [
        "pod block 10.32.0.0/11 overlaps in-use prefix 10.40.1.0/24: "
        "pods would not reach those addresses"
    ]


def test_in_use_inside_node_and_multus_blocks_is_allocated_around() -> None:
    plan = plan_of(fabric(in_use=["10.10.0.0/24", "10.100.0.0/24"]))

    assert plan.findings == []
    assert plan.clusters[0].node[4] == ip_network("10.10.1.0/24")
    assert plan.clusters[0].networks[0].ranges[4] == ip_network("10.100.1.0/26")


def test_node_block_should_be_routable() -> None:
    plan = plan_of(fabric(routable=["192.168.0.0/16"]))

    assert rules(plan) == {("warning", "node-routable")}


def test_more_data_plane_interfaces_than_vnics_left() -> None:
    nics = [f"eth{n}" for n in range(1, 11)]
    doc = fabric(cluster("a", interfaces={"management": "eth0", "data_plane": nics}))

    plan = plan_of(doc)

    assert messages(plan, "interfaces") == [
        "cluster a asks for 10 data-plane interfaces, but its nodes have 10 vNICs of which "
        "management eth0 takes one: 9 left"
    ]


def test_nine_data_plane_interfaces_fit_and_vnics_is_configurable() -> None:
    nics = [f"eth{n}" for n in range(1, 10)]
    assert (
        plan_of(
            fabric(cluster("a", interfaces={"management": "eth0", "data_plane": nics}))
        ).findings
        == []
    )

    small = {"management": "eth0", "data_plane": ["eth1", "eth2"], "vnics": 2}
    assert ("error", "interfaces") in rules(plan_of(fabric(cluster("a", interfaces=small))))


def test_management_interface_listed_as_data_plane() -> None:
    ifs = {"management": "eth0", "data_plane": ["eth0", "eth1"]}

    plan = plan_of(fabric(cluster("a", interfaces=ifs)))

    assert "cluster a: eth0 is both the management interface and a data-plane interface" in (
        messages(plan, "interfaces")
    )


def test_secondary_network_on_the_management_interface() -> None:
    plan = plan_of(fabric(cluster("a", networks=[network("n3", master="eth0")])))

    assert messages(plan, "management") == [
        "secondary network a/n3 has parent eth0, the management interface of cluster a"
    ]
    assert "parent" not in {f.rule for f in plan.findings}


def test_secondary_network_on_an_interface_the_nodes_lack() -> None:
    plan = plan_of(fabric(cluster("a", networks=[network("n3", master="eth7")])))

    assert messages(plan, "parent") == [
        "secondary network a/n3 has parent eth7, which is not a data-plane interface of "
        "cluster a (eth1, eth2)"
    ]


def test_pods_per_node_must_fit_a_per_node_slash_24() -> None:
    plan = plan_of(fabric(cluster("a", pods_per_node=254)))

    assert messages(plan, "pods-per-node") == [
        "cluster a runs 254 pods per node, but a per-node IPv4 pod CIDR /24 holds 253"
    ]
    assert plan_of(fabric(cluster("a", pods_per_node=253))).findings == []


def test_pod_and_service_families_must_match() -> None:
    doc = dual_stack(cluster("a"))
    doc["blocks"]["service"] = "100.64.0.0/10"

    plan = plan_of(doc)

    assert messages(plan, "dual-stack") == [
        "pod block families (IPv4, IPv6) differ from service block families (IPv4): "
        "Kubernetes needs the same in both"
    ]


def test_pod_block_exhausted_names_the_cluster_and_what_is_left() -> None:
    big = {"expected": 200, "max": 200}  # a /16 of pod space each; a /15 holds two
    doc = fabric(
        cluster("a", nodes=big),
        cluster("b", nodes=big),
        cluster("c", nodes=big),
        blocks={"node": "10.10.0.0/20", "pod": "10.32.0.0/15", "multus": "10.100.0.0/16"},
    )

    plan = plan_of(doc)

    assert messages(plan, "exhausted") == [
        "pod block 10.32.0.0/15 has no room for the /16 pod CIDR of cluster c: 0 addresses left"
    ]
    assert plan.clusters[2].pod == {}


def test_node_block_fragmentation_limits_cluster_size() -> None:
    # In-use /25s in the upper half of every /24 of a /22: 512 addresses free, no /24.
    in_use = [f"10.10.{n}.128/25" for n in range(4)]
    doc = fabric(
        cluster("a"),
        blocks={"node": "10.10.0.0/22", "pod": "10.32.0.0/11", "multus": "10.100.0.0/16"},
        in_use=in_use,
    )

    plan = plan_of(doc)

    assert messages(plan, "fragmented") == [
        "node block 10.10.0.0/22 has 512 free addresses but no free /24 for the node subnet "
        "of cluster a: the largest free prefix is /25, which limits cluster a to 125 nodes"
    ]


def test_fragmented_node_block_warns_about_the_next_cluster() -> None:
    in_use = [f"10.10.{n}.128/25" for n in range(4)]
    doc = fabric(
        cluster("a", fixed_size=True, nodes={"expected": 20, "max": 20}),
        blocks={"node": "10.10.0.0/22", "pod": "10.32.0.0/11", "multus": "10.100.0.0/16"},
        in_use=in_use,
    )

    plan = plan_of(doc)

    assert plan.clusters[0].node[4] == ip_network("10.10.0.0/27")
    assert messages(plan, "node-fragmentation") == [
        "node block 10.10.0.0/22 has 480 free addresses but no free /24: the largest free "
        "prefix /25 limits the next cluster to 125 nodes"
    ]
    assert rules(plan) == {("warning", "node-fragmentation")}


def test_fixed_size_clusters_get_a_smaller_node_subnet() -> None:
    plan = plan_of(fabric(cluster("a", fixed_size=True, nodes={"expected": 5, "max": 5})))

    assert plan.clusters[0].node[4].prefixlen == 29  # 5 nodes + network, gateway, broadcast
    assert plan.findings == []


def test_node_subnet_too_small_for_the_nodes() -> None:
    plan = plan_of(fabric(cluster("a", node_prefix=28)))

    assert messages(plan, "node-capacity") == [
        "cluster a may grow to 20 nodes, but its node subnet 10.10.0.0/28 holds 13"
    ]


def test_cluster_larger_than_the_seeds_slash_24_gets_more_and_a_warning() -> None:
    plan = plan_of(fabric(cluster("a", nodes={"expected": 300, "max": 300})))

    assert plan.clusters[0].node[4] == ip_network("10.10.0.0/23")
    assert rules(plan) == {("warning", "node-subnet-size")}


def test_pod_cidr_from_a_previous_plan_too_small_after_growth() -> None:
    before = plan_of(fabric(cluster("a")))
    prior = {(a.kind, a.owner, a.prefix.version): a.prefix for a in before.allocations()}

    grown = plan_of(fabric(cluster("a", nodes={"expected": 40, "max": 40})), prior)

    assert grown.clusters[0].pod == before.clusters[0].pod  # kept: nothing moves
    assert messages(grown, "pod-capacity") == [
        "cluster a may grow to 40 nodes, but its pod CIDR 10.32.0.0/19 holds 32 per-node /24 CIDRs"
    ]


def test_multus_range_smaller_than_expected() -> None:
    plan = plan_of(
        fabric(cluster("a", networks=[network("n3", expected_addresses=100, prefix=26)]))
    )

    assert messages(plan, "multus-capacity") == [
        "Multus range 10.100.0.0/26 of a/n3 holds 61 addresses, 100 expected"
    ]


def test_per_node_multus_range_gives_each_node_its_share() -> None:
    net = network("n3", ipam="per-node", expected_addresses=100, prefix=26)  # 10 per node

    plan = plan_of(fabric(cluster("a", networks=[net])))

    assert messages(plan, "multus-capacity") == [
        "Multus range 10.100.0.0/26 of a/n3 gives each of 20 nodes 3 addresses, "
        "10 expected per node (100 over 10 nodes)"
    ]
    sized = plan_of(
        fabric(cluster("a", networks=[network("n3", ipam="per-node", expected_addresses=100)]))
    )
    assert sized.findings == []
    assert sized.clusters[0].networks[0].ranges[4].prefixlen == 24  # 20 nodes x 10 + 3 reserved


def test_service_cidr_larger_than_kubernetes_accepts_is_clamped_and_said() -> None:
    plan = plan_of(fabric(cluster("a", service_prefix=11)))

    assert plan.clusters[0].service[4].prefixlen == 12
    assert messages(plan, "service-size") == [
        "cluster a asks for an IPv4 service CIDR of /11, larger than Kubernetes accepts "
        "(kube-apiserver: at most /12): planned a /12"
    ]


def test_ipv6_service_cidr_limit_is_slash_108() -> None:
    doc = dual_stack(cluster("a", service_prefix={"ipv4": 16, "ipv6": 100}))

    plan = plan_of(doc)

    assert plan.clusters[0].service[6].prefixlen == 108
    assert len(messages(plan, "service-size")) == 1


def test_previous_allocation_no_longer_free_is_moved_and_said() -> None:
    prior = {(BlockKind.NODE, "a", 4): ip_network("10.10.5.0/24")}

    plan = plan_of(fabric(cluster("a"), in_use=["10.10.5.0/24"]), prior)

    # Best fit: the /24 beside the in-use one, not a fresh split of a larger prefix.
    assert plan.clusters[0].node[4] == ip_network("10.10.4.0/24")
    assert messages(plan, "previous-moved") == [
        "node 10.10.5.0/24 of a from the previous plan is no longer free in the node block "
        "(outside it, in use or taken): allocated anew"
    ]


def test_overlapping_allocations_name_both_owners() -> None:
    # A plan edited by hand (or a bug): the rule checks the plan, not the allocator.
    plan = plan_fabric(fabric_model(fabric()))
    plan.clusters[1].pod[4] = ip_network("10.32.16.0/20")  # inside cluster a's /19

    found = [f.message for rule in PLAN_RULES for f in rule(plan) if f.rule == "overlap"]

    assert found == [
        "pod CIDR 10.32.16.0/20 of cluster b overlaps pod CIDR 10.32.0.0/19 of cluster a"
    ]


def test_allocation_overlapping_an_in_use_prefix() -> None:
    plan = plan_fabric(fabric_model(fabric(in_use=["10.100.200.0/24", "10.100.200.0/25"])))
    plan.clusters[0].networks[0].ranges[4] = ip_network("10.100.200.64/26")

    found = [f.message for f in validate(plan).findings if f.rule == "overlap"]

    assert found == ["Multus range 10.100.200.64/26 of a/n3 overlaps in-use prefix 10.100.200.0/24"]


def test_allocation_outside_its_block() -> None:
    plan = plan_fabric(fabric_model(fabric()))
    plan.clusters[0].service[4] = ip_network("192.168.0.0/20")

    assert [f.message for f in validate(plan).findings if f.rule == "outside"] == [
        "service CIDR 192.168.0.0/20 of cluster a is outside the service block (100.64.0.0/10)"
    ]


def fabric_model(doc: dict) -> Fabric:
    return parse_fabric(doc)
