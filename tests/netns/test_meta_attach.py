"""The meta plugin's attach engine: a primary plus secondaries, their records, DEL from them.

A scratch node holds the primary's bridge and two veth "data NICs" the
secondaries (macvlan) sit on; our plugins run in-process, a reference plugin
where a test says so. Every test ends with nothing left in the node (checked
by plugin_node), the pod, the IPAM data or the records.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from multinic.cni.errors import CNIError
from multinic.cni.runtime import Runtime
from multinic.lab import netns as lab
from multinic.meta.attach import Attacher
from multinic.meta.records import PodAttachment, PodRef, RecordStore
from multinic.plugins.inprocess import InProcessExecutor
from tests.netns.conftest import REFERENCE_PLUGIN_DIR, unique
from tests.support.lower_plugins import CheckedNode, on_node

POD = PodRef("cnf", "upf-0", "8d9a2f4e-0000-4000-8000-000000000001")


class Node:
    """The node side: a bridge for the primary, two data NICs, state dirs."""

    def __init__(self, checked: CheckedNode, root: Path) -> None:
        self.root = root
        self.bridge = unique("mnmb")
        checked.keep.add(self.bridge)
        self.nics = [unique("mnmd") for _ in range(2)]
        for nic in self.nics:
            lab.ip(
                "link", "add", nic, "type", "veth", "peer", "name", f"{nic}p", netns=checked.name
            )
            lab.ip("link", "set", nic, "up", netns=checked.name)
            lab.ip("link", "set", f"{nic}p", "up", netns=checked.name)
            checked.keep.update({nic, f"{nic}p"})
        self.records = RecordStore(root / "meta")
        runtime = Runtime(
            [REFERENCE_PLUGIN_DIR], cache_dir=root / "cache", executor=InProcessExecutor()
        )
        self.attacher = Attacher(runtime, self.records)

    def ipam(self, subnet: str) -> dict[str, Any]:
        return {
            "type": "multinic-host-local",
            "ranges": [[{"subnet": subnet}]],
            "dataDir": str(self.root / "ipam"),
        }

    def primary(self) -> PodAttachment:
        conf = {
            "cniVersion": "1.1.0",
            "name": "cluster",
            "plugins": [
                {
                    "type": "multinic-bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipam": {
                        **self.ipam("198.18.50.0/24"),
                        "routes": [{"dst": "0.0.0.0/0"}],  # via the gateway: the pod's default
                    },
                }
            ],
        }
        return PodAttachment("cluster", "eth0", json.dumps(conf).encode(), default=True)

    def secondary(self, index: int, master: str | None = None) -> PodAttachment:
        conf = {
            "cniVersion": "1.1.0",
            "name": f"data-{index}",
            "type": "multinic-macvlan",
            "master": master or self.nics[index - 1],
            "mode": "bridge",
            "ipam": self.ipam(f"198.18.{50 + index}.0/24"),
        }
        return PodAttachment(f"cnf/data-{index}", f"net{index}", json.dumps(conf).encode())

    def reservations(self) -> list[str]:
        directory = self.root / "ipam"
        return (
            sorted(p.name for p in directory.glob("*/198.18.*") if p.is_file())
            if directory.exists()
            else []
        )


@pytest.fixture
def node(plugin_node: CheckedNode, tmp_path: Path) -> Node:
    return Node(plugin_node, tmp_path)


def pod_links(pod: str) -> set[str]:
    return lab.link_names(pod) - {"lo"}


def test_add_attaches_primary_and_secondaries_and_del_removes_all(node: Node, pod: str) -> None:
    cid = unique("ctr-")
    delegates = [node.primary(), node.secondary(1), node.secondary(2)]

    attached = on_node(lambda: node.attacher.add(POD, cid, str(lab.netns_path(pod)), delegates))

    assert pod_links(pod) == {"eth0", "net1", "net2"}
    assert [str(ip.address) for ip in attached.result.ips] == lab.addresses("eth0", pod)
    status = attached.network_status
    assert [(s["name"], s["interface"], s["default"]) for s in status] == [
        ("cluster", "eth0", True),
        ("cnf/data-1", "net1", False),
        ("cnf/data-2", "net2", False),
    ]
    for entry in status:
        assert entry["ips"] == [a.split("/")[0] for a in lab.addresses(entry["interface"], pod)]
        link = lab.ip_json("link", "show", entry["interface"], netns=pod)[0]
        assert entry["mac"] == link["address"]
    assert status[0]["gateway"] == ["198.18.50.1"]
    assert len(node.reservations()) == 3

    record_file = node.records.path(cid)
    assert stat.S_IMODE(record_file.stat().st_mode) == 0o600
    on_node(lambda: node.attacher.check(cid))

    on_node(lambda: node.attacher.delete(cid))
    assert pod_links(pod) == set()
    assert node.reservations() == []
    assert not record_file.exists()
    on_node(lambda: node.attacher.delete(cid))  # DEL again succeeds


def test_del_needs_nothing_but_the_record(node: Node, pod: str, tmp_path: Path) -> None:
    """No API, no NAD, no config dir: the record alone holds each delegate's config."""
    cid = unique("ctr-")
    on_node(
        lambda: node.attacher.add(
            POD, cid, str(lab.netns_path(pod)), [node.primary(), node.secondary(1)]
        )
    )
    record = node.records.load(cid)
    assert record is not None
    assert [d.name for d in record.delegates] == ["cluster", "cnf/data-1"]
    assert record.pod == POD

    # A fresh attacher (a restarted daemon) with only the state directory.
    runtime = Runtime(
        [tmp_path / "empty"], cache_dir=tmp_path / "cache", executor=InProcessExecutor()
    )
    restarted = Attacher(runtime, RecordStore(tmp_path / "meta"))
    on_node(lambda: restarted.delete(cid))
    assert pod_links(pod) == set()
    assert node.reservations() == []


def test_a_failing_secondary_rolls_back_everything(node: Node, pod: str) -> None:
    cid = unique("ctr-")
    broken = node.secondary(2, master=unique("nomaster"))  # no such link on the node
    delegates = [node.primary(), node.secondary(1), broken]

    with pytest.raises(CNIError) as caught:
        on_node(lambda: node.attacher.add(POD, cid, str(lab.netns_path(pod)), delegates))

    assert "nomaster" in str(caught.value)
    assert pod_links(pod) == set()
    assert node.reservations() == []
    assert node.records.load(cid) is None


def test_a_failing_primary_attaches_no_secondary(node: Node, pod: str) -> None:
    cid = unique("ctr-")
    primary = node.primary()._replace(config=node.secondary(1, master="missing0").config)

    with pytest.raises(CNIError):
        on_node(
            lambda: node.attacher.add(
                POD, cid, str(lab.netns_path(pod)), [primary, node.secondary(1)]
            )
        )

    assert pod_links(pod) == set()
    assert node.records.load(cid) is None


def test_bad_requests_are_refused_before_anything_attaches(node: Node, pod: str) -> None:
    cid = unique("ctr-")
    netns = str(lab.netns_path(pod))
    twice = [node.primary(), node.secondary(1)._replace(ifname="eth0")]
    garbage = [node.primary(), node.secondary(1)._replace(config=b"{not json")]

    for delegates, words in ((twice, "eth0 requested twice"), (garbage, "cnf/data-1"), ([], "no")):
        with pytest.raises(CNIError, match=words):
            on_node(lambda d=delegates: node.attacher.add(POD, cid, netns, d))
        assert pod_links(pod) == set()
        assert node.records.load(cid) is None


def test_a_failed_del_keeps_the_record_of_what_failed_and_a_retry_finishes(
    node: Node, pod: str, tmp_path: Path
) -> None:
    """A delegate whose DEL fails stays recorded; the others are deleted anyway."""
    cid = unique("ctr-")
    flaky_dir = tmp_path / "flaky"
    delegates = [node.primary(), node.secondary(1), _flaky(node, flaky_dir, tmp_path / "fail-del")]
    (tmp_path / "fail-del").write_text("")
    runtime = Runtime(
        [flaky_dir, REFERENCE_PLUGIN_DIR],
        cache_dir=tmp_path / "cache",
        executor=InProcessExecutor(),
    )
    attacher = Attacher(runtime, node.records)
    on_node(lambda: attacher.add(POD, cid, str(lab.netns_path(pod)), delegates))

    with pytest.raises(CNIError, match="flaky DEL refused"):
        on_node(lambda: attacher.delete(cid))

    assert pod_links(pod) == set()  # the others went, whatever the third did
    record = node.records.load(cid)
    assert record is not None and [d.name for d in record.delegates] == ["cnf/flaky"]
    (tmp_path / "fail-del").unlink()
    on_node(lambda: attacher.delete(cid))
    assert node.records.load(cid) is None
    assert node.reservations() == []


def _flaky(node: Node, directory: Path, fail_flag: Path) -> PodAttachment:
    """A delegate whose plugin (an executable) attaches nothing and refuses DEL while
    ``fail_flag`` exists: a stand-in for a delegate whose datastore is down."""
    directory.mkdir()
    plugin = directory / "flaky"
    plugin.write_text(
        "#!/bin/sh\n"
        "read -r _ || true\n"
        'case "$CNI_COMMAND" in\n'
        '  ADD) echo \'{"cniVersion": "1.1.0"}\' ;;\n'
        f"  DEL) if [ -e {fail_flag} ]; then\n"
        '         echo \'{"cniVersion": "1.1.0", "code": 11, "msg": "flaky DEL refused"}\'\n'
        "         exit 1\n"
        "       fi ;;\n"
        "esac\n"
    )
    plugin.chmod(0o755)
    conf = {"cniVersion": "1.1.0", "name": "flaky", "type": "flaky"}
    return PodAttachment("cnf/flaky", "net9", json.dumps(conf).encode())


def default_routes(pod: str, version: int = 4) -> list[tuple[str, str]]:
    routes = lab.ip_json(f"-{version}", "route", "show", "default", netns=pod)
    return sorted((r.get("gateway", ""), r["dev"]) for r in routes)


def test_a_default_route_request_moves_the_pods_default_route(node: Node, pod: str) -> None:
    cid = unique("ctr-")
    secondary = node.secondary(1)._replace(gateways=("198.18.51.1",), default=True)

    on_node(
        lambda: node.attacher.add(POD, cid, str(lab.netns_path(pod)), [node.primary(), secondary])
    )

    assert default_routes(pod) == [("198.18.51.1", "net1")]
    record = node.records.load(cid)
    assert record is not None and record.delegates[1].gateways == ("198.18.51.1",)
    on_node(lambda: node.attacher.delete(cid))
    assert pod_links(pod) == set()


def test_without_a_request_the_primary_keeps_the_default_route(node: Node, pod: str) -> None:
    cid = unique("ctr-")
    on_node(
        lambda: node.attacher.add(
            POD, cid, str(lab.netns_path(pod)), [node.primary(), node.secondary(1)]
        )
    )
    assert default_routes(pod) == [("198.18.50.1", "eth0")]
    on_node(lambda: node.attacher.delete(cid))


def with_ips_capability(attachment: PodAttachment, declared: bool) -> PodAttachment:
    conf = json.loads(attachment.config)
    if declared:
        conf["capabilities"] = {"ips": True}
    return attachment._replace(
        config=json.dumps(conf).encode(), capability_args={"ips": ["198.18.51.77/24"]}
    )


def test_a_requested_ip_is_given_when_the_delegate_takes_it(node: Node, pod: str) -> None:
    cid = unique("ctr-")
    secondary = with_ips_capability(node.secondary(1), declared=True)

    attached = on_node(
        lambda: node.attacher.add(POD, cid, str(lab.netns_path(pod)), [node.primary(), secondary])
    )

    assert attached.network_status[1]["ips"] == ["198.18.51.77"]
    on_node(lambda: node.attacher.delete(cid))
    assert node.reservations() == []


def test_a_requested_ip_the_delegate_ignored_fails_the_add_and_leaves_nothing(
    node: Node, pod: str
) -> None:
    cid = unique("ctr-")
    secondary = with_ips_capability(node.secondary(1), declared=False)

    with pytest.raises(CNIError, match="requested IPs not assigned") as caught:
        on_node(
            lambda: node.attacher.add(
                POD, cid, str(lab.netns_path(pod)), [node.primary(), secondary]
            )
        )

    assert caught.value.code == 7
    assert pod_links(pod) == set()
    assert node.reservations() == []
    assert node.records.load(cid) is None


def test_gc_detaches_containers_no_longer_valid_and_gcs_the_delegates(
    node: Node, pod: str, pod2: str
) -> None:
    kept, stale = unique("ctr-"), unique("ctr-")
    for cid, netns in ((kept, pod), (stale, pod2)):
        on_node(
            lambda c=cid, n=netns: node.attacher.add(
                POD, c, str(lab.netns_path(n)), [node.primary(), node.secondary(1)]
            )
        )
    # A reservation no record explains (an ADD cut off before its record was written).
    ghost = node.root / "ipam" / "cluster" / "198.18.50.200"
    ghost.write_bytes(b"ghost-container\r\neth0")

    on_node(lambda: node.attacher.collect_garbage(keep=frozenset({kept})))

    assert pod_links(pod) == {"eth0", "net1"}
    assert pod_links(pod2) == set()
    assert node.records.load(stale) is None and node.records.load(kept) is not None
    assert not ghost.exists()  # the delegate's IPAM got the valid list and released it
    assert len(node.reservations()) == 2  # the kept pod's two addresses
    on_node(lambda: node.attacher.delete(kept))
