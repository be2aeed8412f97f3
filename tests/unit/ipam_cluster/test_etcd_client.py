"""The etcd client's reading of answers, and a member that accepts but never answers."""

from __future__ import annotations

import socket

import pytest

from multinic.ipam.etcd_client import EtcdClient, _decode_answer, parse_endpoint
from multinic.ipam.store import StoreError, StoreUnavailableError, deadline_after
from tests.support import third_party
from tests.support.etcd_cluster import EtcdCluster


def test_the_member_is_the_built_etcd(etcd_member: EtcdCluster) -> None:
    """The store's tests run against the etcd of third_party/programs, not Debian's 3.4."""
    (member,) = etcd_member.members
    assert member.server_version() == third_party.version("etcd").removeprefix("v")
    assert member.server_version().startswith("3.6.")


def test_endpoints_parse_with_or_without_scheme() -> None:
    assert str(parse_endpoint("http://10.0.0.1:2379")) == "10.0.0.1:2379"
    assert str(parse_endpoint("10.0.0.1:12379")) == "10.0.0.1:12379"
    assert str(parse_endpoint("etcd-0")) == "etcd-0:2379"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, b'{"error": "etcdserver: leader changed", "code": 14}'),
        (504, b'{"error": "etcdserver: request timed out", "code": 4}'),
        (500, b'{"error": "etcdserver: leader changed", "code": 2}'),
        (502, b"<html>bad gateway</html>"),
    ],
)
def test_cluster_trouble_is_unavailable(status: int, body: bytes) -> None:
    with pytest.raises(StoreUnavailableError):
        _decode_answer(status, body)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b'{"error": "invalid character", "code": 3}'),
        (404, b"Not Found"),
        (200, b"[]"),
    ],
)
def test_a_refused_request_is_a_store_error_not_retried(status: int, body: bytes) -> None:
    with pytest.raises(StoreError) as caught:
        _decode_answer(status, body)
    assert not isinstance(caught.value, StoreUnavailableError)


def test_a_member_that_never_answers_costs_one_timeout_then_the_next_answers(
    etcd_member: EtcdCluster,
) -> None:
    # A listening socket nobody serves: connect succeeds, the answer never comes,
    # as with a frozen (SIGSTOPped) member.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = EtcdClient([f"127.0.0.1:{port}", *etcd_member.endpoints], timeout=0.3)
        try:
            assert client.range(b"/nothing/here", deadline=deadline_after(10)) == []
            # It stays on the member that answered.
            assert client.range(b"/nothing/here", deadline=deadline_after(0.2)) == []
        finally:
            client.close()


def test_a_spent_deadline_is_unavailable_without_a_request(etcd_member: EtcdCluster) -> None:
    client = EtcdClient(etcd_member.endpoints)
    try:
        with pytest.raises(StoreUnavailableError, match="deadline"):
            client.range(b"k", deadline=deadline_after(-1))
    finally:
        client.close()
