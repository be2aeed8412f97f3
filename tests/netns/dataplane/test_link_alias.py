"""Link aliases (IFLA_IFALIAS), observed with `ip -j link`."""

from __future__ import annotations

import pytest

from multinic.dataplane import LinkNotFoundError, create_veth, move_link
from multinic.dataplane.alias import get_alias, link_aliases, set_alias
from multinic.lab import netns as lab
from tests.netns.dataplane.conftest import Space, ip_link


def test_set_get_clear_and_list(node: Space) -> None:
    first, second = create_veth(node.ns, "a0", "b0")
    set_alias(node.ns, first, "uplink to the fabric")
    set_alias(node.ns, "b0", "b0-original")
    assert ip_link(node, "a0")["ifalias"] == "uplink to the fabric"
    assert get_alias(node.ns, "a0") == "uplink to the fabric"
    assert link_aliases(node.ns) == {
        first.ifindex: "uplink to the fabric",
        second.ifindex: "b0-original",
    }
    set_alias(node.ns, first, "")
    assert "ifalias" not in ip_link(node, "a0")
    assert get_alias(node.ns, first) == ""
    assert link_aliases(node.ns) == {second.ifindex: "b0-original"}


def test_alias_moves_with_the_link(node: Space, pod: Space) -> None:
    create_veth(node.ns, "a0", "b0")
    set_alias(node.ns, "a0", "a0")
    move_link(node.ns, "a0", pod.ns, new_name="net1")
    assert ip_link(pod, "net1")["ifalias"] == "a0"
    assert get_alias(pod.ns, "net1") == "a0"


def test_errors(node: Space) -> None:
    with pytest.raises(LinkNotFoundError) as caught:
        set_alias(node.ns, "nothere", "x")
    assert caught.value.interface == "nothere"
    with pytest.raises(LinkNotFoundError):
        get_alias(node.ns, "nothere")
    create_veth(node.ns, "a0", "b0")
    with pytest.raises(ValueError, match="alias over 255 bytes"):
        set_alias(node.ns, "a0", "x" * 256)
    set_alias(node.ns, "a0", "x" * 255)
    assert lab.ip_json("link", "show", "a0", netns=node.name)[0]["ifalias"] == "x" * 255
