"""The address-space map: one bar per block prefix, allocations coloured by cluster.

Free prefixes are drawn one by one with a dashed outline, so fragmentation
shows as many small grey boxes; in-use space is dark. Every box has a hover
title. When the allocations fill only a small corner of a block (a /11 pod
block early in its life), a zoomed bar under it shows that corner: the
smallest prefix holding every allocation. The HTML page wraps the SVG with a
legend and the findings.
"""

from __future__ import annotations

import colorsys
from html import escape
from ipaddress import IPv4Network, IPv6Network

from multinic.plan.model import BlockKind, IPNetwork
from multinic.plan.result import Allocation, Plan
from multinic.plan.validate import ALLOCATED_AS

WIDTH = 960
MARGIN = 12
BAR = 34
ROW = 64
FREE_FILL = "#eeeeee"
IN_USE_FILL = "#555555"
FONT = "font-family='sans-serif' font-size='11'"
#: Zoom when the allocations span less than this share of the block.
ZOOM_BELOW = 0.5


def cluster_colours(plan: Plan) -> dict[str, str]:
    """A colour per cluster, around the hue circle by the golden angle, stable by order."""
    colours = {}
    for i, cp in enumerate(plan.clusters):
        red, green, blue = colorsys.hls_to_rgb((i * 0.381966) % 1.0, 0.6, 0.62)
        colours[cp.name] = f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
    return colours


def render_svg(plan: Plan) -> str:
    """The map as a standalone SVG document."""
    colours = cluster_colours(plan)
    parts: list[str] = []
    top = MARGIN
    for block in plan.fabric.blocks:
        for prefix in block.prefixes:
            views = _views(plan, block.kind, prefix)
            for view in views:
                parts.append(_bar(plan, block.kind, prefix, view, top, colours))
                top += ROW
    parts.append(_legend(colours, top))
    height = top + 22 * ((len(colours) + 2) // 6 + 1) + MARGIN
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH + 2 * MARGIN}' "
        f"height='{height}' viewBox='0 0 {WIDTH + 2 * MARGIN} {height}'>\n"
        f"<title>{escape(plan.fabric.name)}: address plan</title>\n"
        f"<rect width='100%' height='100%' fill='white'/>\n" + "".join(parts) + "</svg>\n"
    )


def _allocated(plan: Plan, kind: BlockKind, version: int) -> list[Allocation]:
    return [a for a in plan.allocations() if a.kind is kind and a.prefix.version == version]


def _views(plan: Plan, kind: BlockKind, block: IPNetwork) -> list[IPNetwork]:
    """The block, and the corner holding its allocations when they are small in it."""
    inside = [a.prefix for a in _allocated(plan, kind, block.version)]
    inside += [p for p in plan.fabric.in_use if p.version == block.version and p.subnet_of(block)]  # type: ignore[arg-type]
    if not inside:
        return [block]
    low = min(int(p.network_address) for p in inside)
    high = max(int(p.broadcast_address) for p in inside)
    length = block.max_prefixlen - (low ^ high).bit_length()
    cls = IPv4Network if block.version == 4 else IPv6Network
    corner = cls((low >> (block.max_prefixlen - length) << (block.max_prefixlen - length), length))
    if corner.num_addresses >= block.num_addresses * ZOOM_BELOW:
        return [block]
    return [block, corner]


def _bar(
    plan: Plan,
    kind: BlockKind,
    block: IPNetwork,
    view: IPNetwork,
    top: int,
    colours: dict[str, str],
) -> str:
    free = [p for p in plan.free.get((kind, block.version), []) if p.subnet_of(view)]  # type: ignore[arg-type]
    allocated = [a for a in _allocated(plan, kind, block.version) if a.prefix.subnet_of(view)]  # type: ignore[arg-type]
    out = [_heading(kind, block, view, allocated, free, top)]
    y = top + 20
    out.append(
        f"<rect x='{MARGIN}' y='{y}' width='{WIDTH}' height='{BAR}' fill='{IN_USE_FILL}'>"
        f"<title>{escape(str(view))}: in use outside the plan</title></rect>\n"
    )
    for prefix in free:
        title = f"free {prefix} ({prefix.num_addresses:,} addresses)"
        out.append(_box(view, prefix, y, FREE_FILL, title, dashed=True))
    for alloc in allocated:
        size = alloc.prefix.num_addresses
        title = f"{ALLOCATED_AS[alloc.kind]} {alloc.prefix} of {alloc.owner} ({size:,} addresses)"
        colour = colours[alloc.owner.split("/", 1)[0]]
        labels = (f"{alloc.owner} {alloc.prefix}", alloc.owner, alloc.owner.rsplit("/", 1)[-1])
        out.append(_box(view, alloc.prefix, y, colour, title, labels=labels))
    return "".join(out)


def _heading(
    kind: BlockKind,
    block: IPNetwork,
    view: IPNetwork,
    allocated: list[Allocation],
    free: list[IPNetwork],
    top: int,
) -> str:
    if view == block:
        used = sum(a.prefix.num_addresses for a in allocated)
        largest = min((p.prefixlen for p in free), default=None)
        text = (
            f"{kind} block {block}: {used:,} of {block.num_addresses:,} addresses allocated, "
            f"{len(free)} free prefixes" + (f", largest /{largest}" if largest is not None else "")
        )
        weight = "bold"
    else:
        text = f"{kind} block {block}, zoomed to {view} (where the allocations are)"
        weight = "normal"
    return (
        f"<text x='{MARGIN}' y='{top + 14}' {FONT} font-weight='{weight}'>{escape(text)}</text>\n"
    )


def _box(
    view: IPNetwork,
    prefix: IPNetwork,
    y: int,
    fill: str,
    title: str,
    *,
    dashed: bool = False,
    labels: tuple[str, ...] = (),
) -> str:
    scale = WIDTH / view.num_addresses
    x = MARGIN + (int(prefix.network_address) - int(view.network_address)) * scale
    width = max(prefix.num_addresses * scale, 1.0)
    stroke = "stroke='#999999' stroke-dasharray='3,2'" if dashed else "stroke='white'"
    text = ""
    # The longest label that fits the box (about 6.2 px per character at 11 px).
    label = next((t for t in labels if width > 6.2 * len(t) + 4), "")
    if label:
        text = (
            f"<text x='{x + width / 2:.2f}' y='{y + BAR / 2 + 4}' text-anchor='middle' "
            f"{FONT}>{escape(label)}</text>"
        )
    return (
        f"<g><rect x='{x:.2f}' y='{y}' width='{width:.2f}' height='{BAR}' fill='{fill}' "
        f"{stroke} stroke-width='0.6'><title>{escape(title)}</title></rect>{text}</g>\n"
    )


def _legend(colours: dict[str, str], top: int) -> str:
    entries = [("free", FREE_FILL), ("in use outside the plan", IN_USE_FILL), *colours.items()]
    out = []
    for n, (name, fill) in enumerate(entries):
        x = MARGIN + (n % 6) * 160
        y = top + (n // 6) * 22
        out.append(
            f"<rect x='{x}' y='{y}' width='14' height='14' fill='{fill}' stroke='#999999'/>"
            f"<text x='{x + 20}' y='{y + 11}' {FONT}>{escape(name)}</text>\n"
        )
    return "".join(out)


def render_html(plan: Plan) -> str:
    """The map in a page with a legend of clusters and the findings."""
    colours = cluster_colours(plan)
    legend = "".join(
        f"<li><span style='background:{fill}'></span>{escape(name)}</li>"
        for name, fill in [
            ("free", FREE_FILL),
            ("in use outside the plan", IN_USE_FILL),
            *colours.items(),
        ]
    )
    findings = (
        "".join(
            f"<li class='{f.severity.value}'>{f.severity.value}: {escape(f.message)} "
            f"<em>({f.rule})</em></li>"
            for f in plan.findings
        )
        or "<li>none</li>"
    )
    title = escape(f"{plan.fabric.name}: address plan")
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title>\n"
        "<style>body{font-family:sans-serif} ul.legend{list-style:none;padding:0}"
        "ul.legend li{display:inline-block;margin-right:1.5em}"
        "ul.legend span{display:inline-block;width:1em;height:1em;margin-right:.4em;"
        "border:1px solid #999;vertical-align:middle}"
        ".error{color:#b00020}.warning{color:#8a6d00}</style></head><body>\n"
        f"<h1>{title}</h1>\n<p>Hover a box for its prefix and owner. Grey dashed boxes are free "
        "prefixes: many small ones mean a fragmented block.</p>\n"
        f"<ul class='legend'>{legend}</ul>\n{render_svg(plan)}"
        f"<h2>Findings</h2><ul>{findings}</ul>\n</body></html>\n"
    )
