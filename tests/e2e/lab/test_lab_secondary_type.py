"""`multinic lab up --secondary-type planned` on a kernel without ipvlan: refused, nothing made.

This machine's kernel has no ipvlan (the QEMU guest's does, and
tests/guest_kernel/test_lab_ipvlan_guest.py runs the lab there). Whether the
kernel can make one is asked here independently of the lab, with iproute2 in a
scratch namespace, so on a kernel with ipvlan the test checks the lab comes up.
"""

from __future__ import annotations

import subprocess

from multinic.lab import cluster
from multinic.lab import netns as nsutil
from multinic.lab.errors import LabError
from tests.support.labs import leftovers, temporary_lab


def _kernel_makes_ipvlan(scratch: str) -> bool:
    with nsutil.scratch_netns(scratch):
        nsutil.ip("link", "add", "m0", "type", "veth", "peer", "name", "m1", netns=scratch)
        try:
            nsutil.ip("link", "add", "link", "m0", "name", "i0", "type", "ipvlan", netns=scratch)
        except LabError:
            return False
    return True


def test_planned_ipvlan_secondaries_need_a_kernel_with_ipvlan() -> None:
    with temporary_lab() as name:
        command = [cluster.multinic_executable(), "lab", "up", "--name", name, "--nodes", "1",
                   "--pods", "1", "--secondary-type", "planned", "--no-check"]  # fmt: skip
        has_ipvlan = _kernel_makes_ipvlan(f"{name}-k")
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        left = leftovers(name)  # before temporary_lab removes the lab

    if has_ipvlan:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == 1, done.stderr
        assert "cannot make ipvlan links, which the lab's secondary networks need" in done.stderr
        assert "--secondary-type macvlan" in done.stderr
        assert "Traceback" not in done.stderr
        assert left == []  # not even a state dir: refused before anything was made
