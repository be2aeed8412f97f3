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
    free = [p for prefixes in plan.free.values() for p in prefixes]
    assert sum(t.startswith("free ") for t in found) == len(free)
    # One bar (its background) per block prefix.
    assert sum(t.endswith("in use or reserved outside the plan") for t in found) == 4


def test_dual_stack_has_a_bar_per_family() -> None:
    plan = plan_of(dual_stack(cluster("a")))

    found = titles(render_svg(plan))

    assert sum(t.endswith("in use or reserved outside the plan") for t in found) == 8


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
    assert "<li><span style='background:hsl(0, 62%, 58%)'></span>a</li>" in page
