"""A one-page HTML report of a store: epochs, pools, earners, why nodes were not paid.

Self-contained (inline SVG, no scripts, no network), so it opens anywhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import duckdb


def _svg_epochs(rows: list[tuple]) -> str:
    """Stacked bars: allocated vs unallocated per epoch; a line of eligible nodes."""
    if not rows:
        return "<p>No closed epochs.</p>"
    w, h, pad = 760, 240, 40
    n = len(rows)
    bw = max(2.0, (w - 2 * pad) / n * 0.8)
    top = max(r[1] for r in rows) or 1
    max_elig = max(r[4] for r in rows) or 1
    parts = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             f'aria-label="allocated and unallocated base units per reward epoch">']
    pts = []
    for i, (e, emission, alloc, unalloc, elig) in enumerate(rows):
        x = pad + i * (w - 2 * pad) / n
        ha = (h - 2 * pad) * alloc / top
        hu = (h - 2 * pad) * unalloc / top
        base = h - pad
        parts.append(f'<rect x="{x:.1f}" y="{base - ha:.1f}" width="{bw:.1f}" height="{ha:.1f}" fill="#2f7d4f">'
                     f'<title>epoch {e}: allocated {alloc:,}</title></rect>')
        parts.append(f'<rect x="{x:.1f}" y="{base - ha - hu:.1f}" width="{bw:.1f}" height="{hu:.1f}" fill="#c9c9c9">'
                     f'<title>epoch {e}: unallocated {unalloc:,}</title></rect>')
        pts.append(f"{x + bw / 2:.1f},{base - (h - 2 * pad) * elig / max_elig:.1f}")
    parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#1f4e9c" stroke-width="2"/>')
    parts.append(f'<text x="{pad}" y="{pad - 12}" font-size="12">bars: allocated (green) / unallocated (grey) '
                 f'base units per epoch; line: eligible nodes (max {max_elig:,})</text>')
    parts.append(f'<text x="{pad}" y="{h - 10}" font-size="11">epoch {rows[0][0]}</text>')
    parts.append(f'<text x="{w - pad - 60}" y="{h - 10}" font-size="11">epoch {rows[-1][0]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[tuple]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(f'{v:,}' if isinstance(v, int) else str(v))}</td>" for v in r) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(db: Path, out: Path, title: str = "epochal report", truth: Path | None = None,
                 extra_sections: list[tuple[str, str]] | None = None) -> Path:
    con = duckdb.connect(str(db), read_only=True)
    try:
        epochs = con.execute(
            "SELECT reward_epoch, emission_base_units, allocated_base_units, unallocated_base_units, eligible_nodes"
            " FROM reward_epochs ORDER BY reward_epoch").fetchall()
        manifests = con.execute(
            "SELECT reward_epoch, scored_nodes, eligible_nodes, allocated_base_units, unallocated_base_units,"
            " left(manifest_sha256, 16) || '…' FROM reward_epochs ORDER BY reward_epoch").fetchall()
        earners = con.execute(
            "SELECT r.node_id, any_value(s.gpu_model_claimed), any_value(s.gpu_count), sum(r.amount_base_units) AS total,"
            " count(*) FROM epoch_rewards r JOIN node_epoch_scores s USING (reward_epoch, node_id)"
            " GROUP BY r.node_id ORDER BY total DESC, r.node_id LIMIT 15").fetchall()
        reasons = con.execute(
            "SELECT ineligible_reason, count(*), count(DISTINCT node_id) FROM node_epoch_scores"
            " WHERE NOT eligible GROUP BY 1 ORDER BY 2 DESC").fetchall()
        verdicts = con.execute(
            "SELECT hw_verdict, count(DISTINCT node_id) FROM node_epoch_scores"
            " WHERE reward_epoch = (SELECT max(reward_epoch) FROM reward_epochs) GROUP BY 1 ORDER BY 2 DESC").fetchall()
        ingest = con.execute("SELECT sum(inputs), sum(accepted), sum(duplicates), sum(rejected), sum(late)"
                             " FROM ingest_runs").fetchall()[0]
        rejected = con.execute("SELECT reason, count(*) FROM rejected_events GROUP BY 1 ORDER BY 2 DESC").fetchall()
    finally:
        con.close()
    total_alloc = sum(r[2] for r in epochs)
    total_unalloc = sum(r[3] for r in epochs)
    sections = [
        ("Inputs", f"<p>{(ingest[0] or 0):,} inputs = {(ingest[1] or 0):,} accepted + {(ingest[2] or 0):,} exact "
                   f"duplicates + {(ingest[3] or 0):,} rejected; {(ingest[4] or 0):,} arrived late.</p>"
                   + _table(["rejection reason", "count"], rejected)),
        ("Reward epochs", f"<p>{len(epochs)} epochs closed; {total_alloc:,} base units allocated, "
                          f"{total_unalloc:,} unallocated.</p>" + _svg_epochs(epochs)
                          + _table(["epoch", "scored", "eligible", "allocated", "unallocated", "manifest"], manifests)),
        ("Top earners", _table(["node", "claimed model", "GPUs", "base units", "epochs paid"], earners)),
        ("Why nodes were not paid", _table(["first failing reason", "node-epochs", "nodes"], reasons)),
        ("Hardware verdicts (last epoch)", _table(["hw_verdict", "nodes"], verdicts)),
    ]
    if truth is not None and truth.exists():
        plants = json.loads(truth.read_text()).get("plants", [])
        kinds: dict[str, int] = {}
        for p in plants:
            kinds[p.get("kind", "?")] = kinds.get(p.get("kind", "?"), 0) + len(p.get("node_ids", []))
        sections.append(("Planted truth (simulator)", _table(["kind", "nodes"], sorted(kinds.items()))))
    sections += extra_sections or []
    body = "".join(f"<section><h2>{html.escape(t)}</h2>{c}</section>" for t, c in sections)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}}
table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}td,th{{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}}
th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}h2{{border-bottom:1px solid #eee}}</style>
</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"""
    out.write_text(page, encoding="utf-8")
    return out
