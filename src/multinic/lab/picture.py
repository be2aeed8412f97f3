"""The lab as a picture (SVG, or an HTML page around it): nodes, uplinks, networks, pods."""

from __future__ import annotations

from html import escape
from typing import Any

NODE_W, POD_H, GAP = 300, 62, 24
COLOURS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def render_svg(status: dict[str, Any]) -> str:
    lab = status["lab"]
    nodes = lab["nodes"]
    networks = ["primary", *(s["name"] for s in lab["secondaries"])]
    colour = {n: COLOURS[i % len(COLOURS)] for i, n in enumerate(networks)}
    most = max((len(n["pods"]) for n in nodes), default=0)
    height = 150 + most * (POD_H + 8) + 90
    width = GAP + len(nodes) * (NODE_W + GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{GAP}" y="22" font-size="16" font-weight="bold">lab {escape(lab["name"])}: '
        f"cluster {escape(lab['cluster'])} of {escape(lab['fabric'])}, "
        f"{escape(lab['underlay'])} underlay</text>",
    ]
    underlay_y = height - 50
    for i, node in enumerate(nodes):
        x = GAP + i * (NODE_W + GAP)
        box_h = underlay_y - 60 - 40
        out.append(
            f'<rect x="{x}" y="40" width="{NODE_W}" height="{box_h}" rx="8" fill="#f4f4f4" '
            'stroke="#555"/>'
        )
        cidrs = ", ".join(node["podCIDRs"])
        out.append(
            f'<text x="{x + 10}" y="60" font-weight="bold">{escape(node["name"])}</text>'
            f'<text x="{x + 10}" y="76">'
            f"{escape(lab['management'])} {escape(node['address'])}</text>"
            f'<text x="{x + 10}" y="92">pods {escape(cidrs)}</text>'
        )
        for j, (pod, addrs) in enumerate(sorted(node["pods"].items())):
            y = 104 + j * (POD_H + 8)
            out.append(
                f'<rect x="{x + 10}" y="{y}" width="{NODE_W - 20}" height="{POD_H}" rx="5" '
                'fill="white" stroke="#999"/>'
                f'<text x="{x + 18}" y="{y + 15}" font-weight="bold">{escape(pod)}</text>'
            )
            for k, net in enumerate(networks):
                out.append(
                    f'<text x="{x + 18}" y="{y + 30 + k * 13}" fill="{colour[net]}">'
                    f"{escape(net)}: {escape(addrs.get(net, '-'))}</text>"
                )
        uplinks = [lab["management"], *lab["dataPlane"]]
        for k, ifname in enumerate(uplinks):
            ux = x + 30 + k * (NODE_W - 60) / max(1, len(uplinks) - 1)
            out.append(
                f'<line x1="{ux}" y1="{40 + box_h}" x2="{ux}" y2="{underlay_y}" stroke="#555"/>'
                f'<text x="{ux + 3}" y="{40 + box_h + 14}">{escape(ifname)}</text>'
            )
    out.append(
        f'<rect x="{GAP}" y="{underlay_y}" width="{width - 2 * GAP}" height="26" fill="#ddd"/>'
        f'<text x="{GAP + 8}" y="{underlay_y + 17}">underlay: management '
        f"({escape(lab['nodeSubnet'])}) and data-plane segments "
        f"{escape(', '.join(lab['dataPlane']))}</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


def render_html(status: dict[str, Any]) -> str:
    lab = status["lab"]
    rows = "".join(
        f"<tr><td>{escape(s['name'])}</td><td>{escape(s['plannedType'])} {escape(s['mode'])}"
        f"</td><td>{escape(s['master'])}</td><td>{escape(s['ipam'])}</td>"
        f"<td>{escape(', '.join(s['ranges']))}</td></tr>"
        for s in lab["secondaries"]
    )
    planned = lab.get("secondaryType") == "planned"
    attached = "the plan's link types" if planned else "macvlan bridge"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>multinic lab "
        f"{escape(lab['name'])}</title></head><body>{render_svg(status)}"
        f"<h3>Secondary networks (attached as: {escape(attached)})</h3><table border='1'>"
        "<tr><th>network</th><th>planned</th><th>master</th><th>IPAM</th><th>range</th></tr>"
        f"{rows}</table><p>pod block {escape(', '.join(lab['podBlock']))}, service block "
        f"{escape(', '.join(lab['serviceBlock']))}</p></body></html>\n"
    )
