"""The Store contract (tests/unit/ipam_cluster) run against the Kubernetes store.

One clause differs, by design (docs/ipam-cluster.md): a multi-key commit that
loses may have locked and unlocked some keys first, which moves their
resourceVersion (never their value), so it is checked here in its own words.
"""

from __future__ import annotations

from multinic.ipam.store import ABSENT, Store
from tests.unit.ipam_cluster.test_store_contract import (  # noqa: F401 - collected here
    soon,
    test_a_check_guards_a_key_it_does_not_change,
    test_a_commit_answers_the_revisions_it_wrote,
    test_absent_keys_read_as_revision_zero,
    test_concurrent_increments_lose_nothing,
    test_create_only_when_absent,
    test_delete_and_recreate_never_matches_a_stale_revision,
    test_scan_by_prefix_and_by_range,
    test_two_handles_see_each_others_commits,
    test_unguarded_writes_are_refused,
    test_update_needs_the_current_revision,
)


def test_a_commit_is_all_or_nothing(store: Store) -> None:
    store.commit({"a": 0}, {"a": b"1"}, deadline=soon())
    rev = store.snapshot(["a"], deadline=soon())["a"].revision
    # "b" is expected to exist but does not: neither key changes.
    assert not store.commit({"a": rev, "b": 5}, {"a": b"2", "b": b"x"}, deadline=soon())
    after = store.snapshot(["a", "b"], deadline=soon())
    assert after["a"].value == b"1" and after["a"].revision >= rev
    assert after["b"] == ABSENT
