"""The address-space map: one bar per block prefix, allocations coloured by cluster.

Free prefixes are drawn one by one with an outline, so fragmentation shows as
many small grey boxes; in-use prefixes are dark. Every box has a hover title.
The HTML page wraps the SVG with a legend and the findings.
"""

from __future__ import annotations

from html import escape

from multinic.plan.model import BlockKind, IPNetwork
from multinic.plan.result import Plan
from multinic.plan.validate import ALLOCATED_AS

WIDTH = 960
MARGIN = 12
BAR = 34
ROW = 78
FREE_FILL = "#eeeeee"
IN_USE_FILL = "#555555"
FONT = "font-family='sans-serif' font-size='11'"


def cluster_colours(plan: Plan) -> dict[str, str]:
    """A colour per cluster, spread around the hue circle (golden angle), stable by order."""
    return {
        cp.name: f"hsl({(i * 137.508) % 360:.0f}, 62%, 58%)" for i, cp in enumerate(plan.clusters)
    }


def render_svg(plan: Plan) -> str:
    """The map as a standalone SVG document."""
    colours = cluster_colours(plan)
    rows = [(block.kind, prefix) for block in plan.fabric.blocks for prefix in block.prefixes]
    parts = [
        _bar(plan, kind, prefix, MARGIN + n * ROW, colours) for n, (kind, prefix) in enumerate(rows)
    ]
    legend_y = MARGIN + len(rows) * ROW
    parts.append(_legend(colours, legend_y))
    height = legend_y + 22 * (len(colours) // 6 + 2)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH + 2 * MARGIN}' "
        f"height='{height}' viewBox='0 0 {WIDTH + 2 * MARGIN} {height}'>\n"
        f"<title>{escape(plan.fabric.name)}: address plan</title>\n" + "".join(parts) + "</svg>\n"
    )


def _bar(plan: Plan, kind: BlockKind, block: IPNetwork, top: int, colours: dict[str, str]) -> str:
    free = plan.free.get((kind, block.version), [])
    allocated = [
        a for a in plan.allocations() if a.kind is kind and a.prefix.version == block.version
    ]
    used = sum(a.prefix.num_addresses for a in allocated)
    largest = min((p.prefixlen for p in free), default=None)
    heading = (
        f"{kind} block {block}: {used:,} of {block.num_addresses:,} addresses allocated, "
        f"{len(free)} free prefixes" + (f", largest /{largest}" if largest is not None else "")
    )
    out = [
        f"<text x='{MARGIN}' y='{top + 14}' {FONT} font-weight='bold'>{escape(heading)}</text>\n"
    ]
    y = top + 22
    out.append(
        f"<rect x='{MARGIN}' y='{y}' width='{WIDTH}' height='{BAR}' fill='{IN_USE_FILL}'>"
        f"<title>{escape(str(block))}: in use or reserved outside the plan</title></rect>\n"
    )
    for prefix in free:
        out.append(
            _box(
                block,
                prefix,
                y,
                FREE_FILL,
                f"free {prefix} ({prefix.num_addresses:,} addresses)",
                dashed=True,
            )
        )
    for alloc in allocated:
        cluster = alloc.owner.split("/", 1)[0]
        size = alloc.prefix.num_addresses
        title = f"{ALLOCATED_AS[alloc.kind]} {alloc.prefix} of {alloc.owner} ({size:,} addresses)"
        out.append(
            _box(
                block,
                alloc.prefix,
                y,
                colours[cluster],
                title,
                label=f"{alloc.owner} {alloc.prefix}",
            )
        )
    return "".join(out)


def _box(
    block: IPNetwork,
    prefix: IPNetwork,
    y: int,
    fill: str,
    title: str,
    *,
    dashed: bool = False,
    label: str = "",
) -> str:
    scale = WIDTH / block.num_addresses
    x = MARGIN + (int(prefix.network_address) - int(block.network_address)) * scale
    width = max(prefix.num_addresses * scale, 1.0)
    stroke = "stroke='#999' stroke-dasharray='3,2'" if dashed else "stroke='white'"
    text = ""
    if label and width > 6.2 * len(label):
        text = (
            f"<text x='{x + width / 2:.2f}' y='{y + BAR / 2 + 4}' text-anchor='middle' "
            f"{FONT}>{escape(label)}</text>"
        )
    return (
        f"<g><rect x='{x:.2f}' y='{y}' width='{width:.2f}' height='{BAR}' fill='{fill}' "
        f"{stroke} stroke-width='0.6'><title>{escape(title)}</title></rect>{text}</g>\n"
    )


def _legend(colours: dict[str, str], top: int) -> str:
    entries = [("free", FREE_FILL), ("in use / reserved", IN_USE_FILL), *colours.items()]
    out = []
    for n, (name, fill) in enumerate(entries):
        x = MARGIN + (n % 6) * 160
        y = top + (n // 6) * 22
        out.append(
            f"<rect x='{x}' y='{y}' width='14' height='14' fill='{fill}' stroke='#999'/>"
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
            ("in use / reserved", IN_USE_FILL),
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
