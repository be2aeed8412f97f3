"""Policy-routing rules for source-based routing, observed with `ip -j rule`."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest

from multinic import dataplane as dp
from multinic.lab import netns as lab
from tests.netns.dataplane.conftest import Space


def ip_rules(space: Space, version: str) -> list[dict[str, Any]]:
    return lab.ip_json(version, "rule", "show", netns=space.name)


@pytest.mark.parametrize(("text", "flag"), [("10.50.0.5/32", "-4"), ("fd00:50::5/128", "-6")])
def test_rule_from_source_to_table(pod: Space, text: str, flag: str) -> None:
    src = ip_network(text)
    dp.add_rule(pod.ns, src=src, table=100, priority=1000)
    [seen] = [r for r in ip_rules(pod, flag) if r.get("src") == str(src.network_address)]
    assert (seen["table"], seen["priority"]) == ("100", 1000)
    [ours] = [r for r in dp.list_rules(pod.ns, version=src.version) if r.src == src]
    assert (ours.table, ours.priority) == (100, 1000)
    with pytest.raises(dp.RuleExistsError) as caught:
        dp.add_rule(pod.ns, src=src, table=100, priority=1000)
    assert caught.value.netns == pod.path and "lookup 100" in str(caught.value)
    assert dp.delete_rule(pod.ns, src=src, table=100, priority=1000) is True
    assert not [r for r in ip_rules(pod, flag) if r.get("src") == str(src.network_address)]
    assert dp.delete_rule(pod.ns, src=src, table=100, priority=1000, missing_ok=True) is False
    with pytest.raises(dp.RuleNotFoundError):
        dp.delete_rule(pod.ns, src=src, table=100, priority=1000)


def test_rule_with_interfaces_and_destination(pod: Space) -> None:
    dp.add_rule(pod.ns, dst=ip_network("10.60.0.0/16"), iif="eth1", table=300, priority=2000)
    [seen] = [r for r in ip_rules(pod, "-4") if r.get("priority") == 2000]
    assert (seen["dst"], seen["dstlen"], seen["iif"], seen["table"]) == (
        "10.60.0.0", 16, "eth1", "300",
    )  # fmt: skip


def test_listed_rules_match_ip(pod: Space) -> None:
    dp.add_rule(pod.ns, src=ip_network("10.50.0.6/32"), table=101)
    ours = sorted(r.priority or 0 for r in dp.list_rules(pod.ns, version=4))
    assert ours == sorted(r["priority"] for r in ip_rules(pod, "-4"))


def test_mixed_versions_are_refused(pod: Space) -> None:
    with pytest.raises(dp.DataplaneError, match="one IP version"):
        dp.add_rule(pod.ns, src=ip_network("10.0.0.1/32"), dst=ip_network("fd00::/64"), table=5)
    assert not [r for r in ip_rules(pod, "-4") if r.get("table") == "5"]
