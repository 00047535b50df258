"""What an investigation writes: `suspects.json` (contract.md "Investigation output"), `report.html`
(self-contained: each flagged cluster's graph and lockstep uptime strip as inline PNG), and the
rows of the terminal table.

`suspects.json` holds the contract's keys exactly in each cluster and signal; what else an
analyst needs (each signal's pairs and figures, the honest look-alikes near a cluster and why
they were not flagged, the fleets, outages and shared subnets seen) is under the top-level
extension key `details`, keyed by `cluster_id`.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from .investigate import Investigation
from .signals import lockstep_context

MAX_PICTURES = 12  # the strongest farm clusters get a picture; the rest their tables


def suspects(inv: Investigation) -> dict:
    ids = inv.features.nodes["node_id"].to_list()
    wallets = inv.features.nodes["wallet"].to_list()
    paid = inv.features.nodes["rewards_base_units"].to_list()
    clusters, details = [], {}
    for c in inv.clusters:
        clusters.append({
            "cluster_id": c.cluster_id,
            "kind": c.kind,
            "score": c.score,
            "strength": c.strength,
            "node_ids": [ids[i] for i in c.node_idx],
            "wallets": sorted({wallets[i] for i in c.node_idx if wallets[i]}),
            "signals": [{"name": s["name"], "value": s["value"], "event_ids": s["event_ids"]} for s in c.signals],
            "rewards_base_units": int(sum(paid[i] for i in c.node_idx)),
        })
        details[c.cluster_id] = {
            "flagged": c.score >= inv.min_score,
            "families": c.families,
            "signals": [{"name": s["name"], "family": s["family"], "strength": s["strength"], "pairs": s["pairs"]}
                        for s in c.signals],
            "lookalikes": c.lookalikes,
        }
    return {
        "ruleset_version": inv.src.ruleset_version,
        "up_to_reward_epoch": inv.src.up_to_epoch,
        "clusters": clusters,
        "min_score": inv.min_score,
        "details": details,
        "lookalikes": {
            "fleets": [{"operator_id": f["operator_id"], "nodes": len(f["node_idx"]), "region": f["region"],
                        "hardware": f["hardware"],
                        "why": "declared fleet: one operator_id, not a farm; links inside it are not counted; "
                               "its hardware checked like any node's"}
                       for f in inv.fleets],
            "outages": [{k: v for k, v in o.items() if k != "node_idx"} | {
                "why": "a region down together over many subnets: those slots are not lockstep evidence"}
                for o in inv.outages],
            "subnets": [{"subnet": s["subnet"], "nodes": len(s["node_idx"]), "wallets": s["wallets"],
                         "why": "many independent nodes in one /24: a /24 alone never makes a link"}
                        for s in inv.subnets],
        },
    }


def write_suspects(inv: Investigation, out_dir: Path) -> Path:
    p = out_dir / "suspects.json"
    p.write_text(json.dumps(suspects(inv), indent=1, sort_keys=False) + "\n")
    return p


def table_rows(inv: Investigation, limit: int = 30) -> list[tuple[str, ...]]:
    wallets = inv.features.nodes["wallet"].to_list()
    paid = inv.features.nodes["rewards_base_units"].to_list()
    rows = []
    for c in [c for c in inv.clusters if c.score >= inv.min_score][:limit]:
        sig = ", ".join(s["name"] for s in c.signals)
        rows.append((c.cluster_id, c.kind, f"{c.score:.2f}", c.strength, str(len(c.node_idx)),
                     str(len({wallets[i] for i in c.node_idx if wallets[i]})), sig,
                     f"{sum(paid[i] for i in c.node_idx):,}"))
    return rows


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def cluster_picture(inv: Investigation, c) -> str:
    """The cluster's link graph (edge width = weight) beside its members' uptime strip (rows =
    nodes, columns = minute slots; grey = regional outage slots, left out of lockstep)."""
    import matplotlib  # matplotlib and networkx take ~1 s to import: only the report's pictures need them

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # (see above)
    import networkx as nx  # (see above)

    ids = inv.features.nodes["node_id"].to_list()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1, 2.2]})
    g = nx.Graph()
    g.add_nodes_from(c.node_idx)
    g.add_weighted_edges_from(c.edges)
    # a force layout for small clusters; a circle for large ones (its cost grows with the square)
    pos = nx.spring_layout(g, seed=1, iterations=30) if len(c.node_idx) <= 40 else nx.circular_layout(g)
    nx.draw_networkx_edges(g, pos, ax=ax1, width=[1 + 2 * w for _, _, w in g.edges(data="weight")], edge_color="#888")
    nx.draw_networkx_nodes(g, pos, ax=ax1, node_size=60, node_color="#c0392b" if c.kind == "farm" else "#8e44ad")
    if len(c.node_idx) <= 12:
        nx.draw_networkx_labels(g, pos, ax=ax1, labels={i: ids[i][-6:] for i in c.node_idx}, font_size=7)
    ax1.set_title(f"{len(c.node_idx)} nodes, {len(c.edges)} links", fontsize=9)
    ax1.axis("off")
    up, mask, _ = lockstep_context(inv.features)
    rows = np.asarray(c.node_idx[:60])
    img = np.where(mask[rows], 0.5, up[rows].astype(float))
    ax2.imshow(img, aspect="auto", interpolation="nearest", cmap="RdYlGn", vmin=0, vmax=1)
    ax2.set_xlabel("minute slot since the first epoch (green up, red down, yellow: regional outage)", fontsize=8)
    ax2.set_ylabel("node", fontsize=8)
    ax2.set_yticks([])
    ax2.set_title("uptime strip", fontsize=9)
    s = _png(fig)
    plt.close(fig)
    return s


def write_html(inv: Investigation, out_dir: Path, *, quality: dict | None = None, leak: list[dict] | None = None,
               ablations: dict[str, dict] | None = None) -> Path:
    e = html.escape
    ids = inv.features.nodes["node_id"].to_list()
    flagged = [c for c in inv.clusters if c.score >= inv.min_score]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>epochal farming investigation</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
        ".c{border:1px solid #ddd;padding:1em;margin:1em 0}.why{color:#555;font-size:13px}</style></head><body>",
        f"<h1>Farming investigation up to reward epoch {inv.src.up_to_epoch}</h1>",
        f"<p>Read from the {e(inv.src.where)}; ruleset {e(inv.src.ruleset_version)}; "
        f"{inv.features.n:,} nodes; {len(flagged)} cluster(s) at score ≥ {inv.min_score} "
        f"({sum(len(c.node_idx) for c in flagged):,} nodes); signals left out: {e(', '.join(inv.disabled) or 'none')}.</p>",
    ]
    if leak:
        parts.append("<h2>Reward leaked to planted farms before they were flagged</h2>"
                     "<p>The investigation run at the end of each epoch; a farm counts as found once half its nodes are "
                     "flagged.</p><table><tr><th>farm</th><th>design</th><th>nodes</th><th>first flagged at epoch</th>"
                     "<th>epochs paid before</th><th>reward leaked (base units)</th></tr>")
        for r in leak:
            parts.append(f"<tr><td>{e(r['farm_id'])}</td><td>{e(str(r['design']))}</td><td>{r['nodes']}</td>"
                         f"<td>{r['first_flagged_epoch'] if r['first_flagged_epoch'] is not None else 'never'}</td>"
                         f"<td>{r['epochs_paid_before']}</td><td>{r['leaked_base_units']:,}</td></tr>")
        parts.append("</table>")
    if quality:
        parts.append(f"<h2>Quality against the simulator's truth</h2><pre>{e(json.dumps(quality, indent=1))}</pre>")
    if ablations:
        parts.append("<h2>Ablations: each signal left out</h2><table><tr><th>run</th><th>precision</th>"
                     "<th>recall</th><th>flagged</th></tr>")
        for k, v in ablations.items():
            parts.append(f"<tr><td>{e(k)}</td><td>{v['precision']:.4f}</td><td>{v['recall']:.4f}</td>"
                         f"<td>{v['flagged']}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Flagged clusters</h2><table><tr><th>cluster</th><th>kind</th><th>score</th><th>strength</th>"
                 "<th>nodes</th><th>wallets</th><th>signals</th><th>rewards (base units)</th></tr>")
    for r in table_rows(inv, limit=10_000):
        parts.append("<tr>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>")
    parts.append("</table>")
    pictures = 0
    for c in flagged:
        if c.kind != "farm":
            continue
        parts.append(f"<div class='c'><h3>{e(c.cluster_id)}: score {c.score:.2f} ({e(c.strength)})</h3>")
        if pictures < MAX_PICTURES:
            parts.append(f"<img alt='graph and uptime strip of {e(c.cluster_id)}' src='data:image/png;base64,"
                         f"{cluster_picture(inv, c)}'>")
            pictures += 1
        parts.append("<p>nodes: " + e(", ".join(ids[i] for i in c.node_idx[:40]))
                     + (" …" if len(c.node_idx) > 40 else "") + "</p><table><tr><th>signal</th><th>strength</th>"
                     "<th>figures</th><th>event ids (first 8)</th></tr>")
        for s in c.signals:
            parts.append(f"<tr><td>{e(s['name'])}</td><td>{e(s['strength'])}</td><td>{e(json.dumps(s['value']))}</td>"
                         f"<td>{e(', '.join(s['event_ids'][:8]))}</td></tr>")
        parts.append("</table>")
        if c.lookalikes:
            parts.append("<p><b>Honest look-alikes near it, not flagged:</b></p><ul>"
                         + "".join(f"<li class='why'>{e(x['why'])}</li>" for x in c.lookalikes) + "</ul>")
        parts.append("</div>")
    parts.append("<h2>Honest look-alikes in the network</h2><ul>")
    for f in inv.fleets[:50]:
        parts.append(f"<li class='why'>declared fleet {e(f['operator_id'])}: {len(f['node_idx'])} nodes, "
                     f"{f['wallets']} wallet(s), {e(', '.join(f['subnets'][:3]))}: not a farm; hardware {e(f['hardware'])}</li>")
    for o in inv.outages:
        parts.append(f"<li class='why'>regional outage {e(o['region'])} slots {o['from_slot']}..{o['to_slot']}: "
                     f"{o['nodes']} nodes on {o['subnets']} subnets: not lockstep evidence</li>")
    for s in inv.subnets[:50]:
        parts.append(f"<li class='why'>shared subnet {e(s['subnet'])}: {len(s['node_idx'])} nodes, "
                     f"{s['wallets']} wallets: a /24 alone never makes a link</li>")
    parts.append("</ul></body></html>")
    p = out_dir / "report.html"
    p.write_text("\n".join(parts))
    return p
