"""Tests that need the guest's kernel (ipvlan, vlan): they run only inside the QEMU guest.

Everything under this directory is marked ``guest_kernel`` and ``root`` (tests/conftest.py).
On the host they are deselected; tests/e2e/test_in_guest.py boots the guest once and
runs this directory there with pytest. Write them like tests/netns tests: the same
fixtures are available here.
"""

from __future__ import annotations

# The tests/netns fixtures, so a guest test is written exactly like a netns one.
from tests.netns.conftest import (  # noqa: F401
    host_links,
    pod,
    pod2,
    reference_plugins,
    runtime,
    unique,
)
