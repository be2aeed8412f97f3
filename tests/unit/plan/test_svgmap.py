"""The map: well-formed SVG, a bar per block prefix, every allocation and free prefix drawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # parsing our own output, not untrusted input

from multinic.plan.svgmap import cluster_colours, render_html, render_svg

from .fabrics import cluster, dual_stack, fabric, plan_of

SVG = "{http://www.w3.org/2000/svg}"


def titles(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # noqa: S314
    return [t.text or "" for t in root.iter(f"{SVG}title")]


def test_every_allocation_and_free_prefix_has_a_box_with_a_title() -> None:
    plan = plan_of(fabric(in_use=["10.10.2.0/24"]))

    found = titles(render_svg(plan))

    for alloc in plan.allocations():
        assert any(f" {alloc.prefix} of {alloc.owner} " in t for t in found), alloc
    free = {f"free {p} ({p.num_addresses:,} addresses)" for ps in plan.free.values() for p in ps}
    assert {t for t in found if t.startswith("free ")} == free
    bars = [t.split(":")[0] for t in found if t.endswith("in use outside the plan")]
    # A bar per block, and a zoomed one where the allocations fill a small corner.
    assert bars == [
        "10.10.0.0/20",
        "10.10.0.0/22",  # a, b and the in-use /24
        "10.32.0.0/11",
        "10.32.0.0/18",  # two /19s
        "100.64.0.0/10",
        "100.64.0.0/19",
        "10.100.0.0/16",
        "10.100.0.0/25",
    ]


def test_dual_stack_has_a_bar_per_family() -> None:
    plan = plan_of(dual_stack(cluster("a")))

    found = titles(render_svg(plan))

    bars = [t.split(": ")[0] for t in found if t.endswith("in use outside the plan")]
    assert bars[:4] == ["10.10.0.0/20", "10.10.0.0/24", "fd00:10::/56", "fd00:10::/64"]
    assert len(bars) == 16  # eight block prefixes, each zoomed to its one cluster


def test_colours_are_per_cluster_and_stable() -> None:
    plan = plan_of(fabric())

    assert cluster_colours(plan) == cluster_colours(plan_of(fabric()))
    assert len(set(cluster_colours(plan).values())) == 2


def test_html_wraps_the_svg_with_a_legend_and_findings() -> None:
    plan = plan_of(fabric(routable=["192.168.0.0/16"]))

    page = render_html(plan)

    assert page.startswith("<!doctype html>")
    assert "<svg" in page
    assert "class='legend'" in page
    assert "node block 10.10.0.0/20 is not inside any routable prefix" in page
    colour = cluster_colours(plan)["a"]
    assert f"<li><span style='background:{colour}'></span>a</li>" in page
