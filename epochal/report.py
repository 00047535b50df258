"""The demo's report: one self-contained HTML page of a published folder and what the demo found.

Self-contained: inline SVG charts and one inline PNG (the uptime heat map, a pixel per node and
slot, encoded here with zlib), inline CSS, no scripts, no fonts or images fetched: it opens offline
from a file. Every figure on the page comes from the published folder (the epochs, scores,
rewards, slashes, registry, read through `store.published.attach`, so no lock on the store is
needed) or from what the demo's stages hand over in `ReportData` (the planted truth, the
verification, and, where those stages ran, validation, settlement and the farming investigation);
a section whose stage did not run is left out, never filled with made-up figures.

Sections, in order: the run (one line per stage), inputs, emission and allocation per epoch,
reputation by class, the uptime heat map, slashes, suspect clusters (precision and recall against
the truth, the reward they leaked), settlement (transactions with signatures and memos, the
reconciliation), verification, top earners, why nodes were not paid, the planted truth.
"""

from __future__ import annotations

import base64
import html
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from store.published import attach

SLOTS_PER_EPOCH = 60
TOKEN = 10**6  # base units per token (ruleset §6: 6 decimals)

# colours: pools, planted roles, rules (colour-blind safe where they meet)
C_ENTERPRISE, C_COMMUNITY, C_UNKNOWN, C_UNALLOC = "#2f6db5", "#e08a2c", "#8c8c8c", "#d5d5d5"
ROLE_COLOURS = {"honest": "#9fb3c8", "fleet": "#3a9a6a", "farm": "#c0392b", "spoofer": "#8e44ad", "outage": "#d4a017"}
RULE_COLOURS = {"hardware_fraud": "#8e44ad", "downtime_during_job": "#d4a017"}
ROLE_ORDER = ("farm", "spoofer", "fleet", "outage", "honest")


@dataclass
class ReportData:
    """What the page shows besides the store's own tables (each part optional)."""

    title: str = "epochal report"
    ingest: tuple[int, int, int, int, int] | None = None  # (inputs, accepted, duplicates, rejected, late) of the replay
    truth: dict | None = None  # the simulator's truth.json
    stages: list[tuple[int, str, str, float]] = field(default_factory=list)  # (number, key, summary line, seconds)
    verified: list[int] | None = None  # epochs recomputed identically from the store's archive
    verified_published: list[int] | None = None  # epochs re-derived identically from the published folder alone
    published_root: Path | None = None
    validations: list[dict] | None = None  # {"reward_epoch", "passed", "checks": [(name, ok, detail)]}
    settlements: list[dict] | None = None  # {"reward_epoch", "batch", "signature", "memo", "recipients", "amount_base_units", "status"}
    reconciliation: dict | None = None  # {"ok", "recipients", "batches", "differences": [str]}
    investigation: dict | None = None  # {"clusters": [...], "quality": {...}, "min_score", "suspects_path"}


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------

def esc(v) -> str:
    return html.escape(str(v), quote=True)


def fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.3f}"
    return "–" if v is None else str(v)


def tokens(base_units: int) -> str:
    """Base units as tokens, for people (the tables keep exact base units)."""
    t = base_units / TOKEN
    return f"{t:,.0f}" if abs(t) >= 100 else f"{t:,.2f}"


def table(headers: list[str], rows: list, cls: str = "", limit: int | None = None) -> str:
    shown = rows if limit is None else rows[:limit]
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in shown)
    more = (f'<p class="note">… and {len(rows) - len(shown):,} more rows.</p>'
            if limit is not None and len(rows) > limit else "")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}'


def _cell(c) -> str:
    if isinstance(c, Markup):
        return f"<td>{c}</td>"
    if isinstance(c, (int, float)) and not isinstance(c, bool):
        return f'<td class="n">{esc(fmt(c))}</td>'
    text = fmt(c)
    if len(text) > 90:  # long free text (a slash's detail): the start, all of it on hover
        return f'<td class="txt" title="{esc(text)}">{esc(text[:90])}…</td>'
    return f'<td class="txt">{esc(text)}</td>' if len(text) > 40 else f"<td>{esc(text)}</td>"


class Markup(str):
    """A table cell that is already HTML (built here from escaped parts)."""


def mono(text: str, short: int | None = None) -> Markup:
    shown = text if short is None or len(text) <= short else text[:short] + "…"
    return Markup(f'<code title="{esc(text)}">{esc(shown)}</code>')


def nice_ticks(top: float, n: int = 4) -> list[float]:
    """Round axis ticks from 0 to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(top / step)) + 1)]


def svg_open(w: int, h: int, label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
            f'aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">')


def legend(items: list[tuple[str, str]], x: float, y: float) -> str:
    parts = []
    for label, colour in items:
        parts.append(f'<rect x="{x:.0f}" y="{y - 9:.0f}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14:.0f}" y="{y:.0f}" class="lg">{esc(label)}</text>')
        x += 24 + 6.5 * len(label)
    return "".join(parts)


def png_rgb(pixels: np.ndarray) -> bytes:
    """A PNG of an (h, w, 3) uint8 array: signature, IHDR, one zlib IDAT, IEND."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))  # filter 0 on each row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def roles_of(truth: dict | None) -> dict[str, str]:
    """node_id -> planted role (the first in ROLE_ORDER that names it); others are honest."""
    roles: dict[str, str] = {}
    if not truth:
        return roles
    for role in ROLE_ORDER:
        for p in truth.get("plants", []):
            if p.get("kind") == role:
                for n in p.get("node_ids", []):
                    roles.setdefault(n, role)
    return roles


# ---------------------------------------------------------------------------------------------
# the charts
# ---------------------------------------------------------------------------------------------

def chart_emission(rows: list[dict]) -> str:
    """Per epoch a bar of the emission split into enterprise paid, community paid, unallocated;
    a line of eligible nodes on the right axis."""
    if not rows:
        return "<p>No closed epochs.</p>"
    w, h, left, right, top, bottom = 860, 300, 70, 60, 30, 42
    pw, ph = w - left - right, h - top - bottom
    n = len(rows)
    step = pw / n
    bw = max(1.5, step * 0.72)
    ymax = nice_ticks(max(r["emission"] for r in rows) / TOKEN)
    yscale = ph / (ymax[-1] or 1)
    emax = nice_ticks(max(r["eligible"] for r in rows) or 1)
    escale = ph / (emax[-1] or 1)
    p = [svg_open(w, h, "emission and allocation per reward epoch")]
    for t in ymax:
        y = top + ph - t * yscale
        p.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                 f'<text x="{left - 6}" y="{y + 4:.1f}" class="ax" text-anchor="end">{t:,.0f}</text>')
    for t in emax:
        y = top + ph - t * escale
        p.append(f'<text x="{left + pw + 6}" y="{y + 4:.1f}" class="ax">{t:,.0f}</text>')
    p.append(f'<text x="14" y="{top + ph / 2:.0f}" class="ax" transform="rotate(-90 14 {top + ph / 2:.0f})" '
             f'text-anchor="middle">tokens per epoch</text>')
    p.append(f'<text x="{w - 8}" y="{top + ph / 2:.0f}" class="ax" transform="rotate(90 {w - 8} {top + ph / 2:.0f})" '
             f'text-anchor="middle">eligible nodes</text>')
    pts = []
    label_every = max(1, math.ceil(n / 16))
    for i, r in enumerate(rows):
        x = left + i * step + (step - bw) / 2
        y = top + ph
        for key, colour, name in (("enterprise_paid", C_ENTERPRISE, "enterprise pool paid"),
                                  ("community_paid", C_COMMUNITY, "community pool paid"),
                                  ("unallocated", C_UNALLOC, "unallocated")):
            hh = r[key] / TOKEN * yscale
            y -= hh
            p.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{hh:.1f}" fill="{colour}">'
                     f'<title>epoch {r["reward_epoch"]}: {name} {r[key]:,} base units</title></rect>')
        pts.append((x + bw / 2, top + ph - r["eligible"] * escale))
        if i % label_every == 0:
            p.append(f'<text x="{x + bw / 2:.1f}" y="{top + ph + 16}" class="ax" text-anchor="middle">'
                     f'{r["reward_epoch"]}</text>')
    p.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}" fill="none" stroke="#222" '
             f'stroke-width="1.8"/>')
    p += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="#222"/>' for x, y in pts]
    p.append(f'<text x="{left + pw / 2:.0f}" y="{h - 6}" class="ax" text-anchor="middle">reward epoch</text>')
    p.append(legend([("enterprise pool paid", C_ENTERPRISE), ("community pool paid", C_COMMUNITY),
                     ("unallocated", C_UNALLOC), ("eligible nodes (line)", "#222")], left, 16))
    p.append("</svg>")
    return "".join(p)


def chart_reputation(groups: dict[str, list[tuple[int, str]]]) -> str:
    """One histogram per class of the latest reputation (0–1000, bins of 50), bars stacked by the
    node's planted role."""
    if not groups:
        return "<p>No reputations yet.</p>"
    panels = [(cls, vals) for cls, vals in groups.items() if vals]
    pw, ph, gap, left, top, bottom = 380, 170, 40, 46, 34, 40
    w = left + len(panels) * (pw + gap)
    h = top + ph + bottom
    bins = list(range(0, 1001, 50))
    p = [svg_open(w, h, "reputation distribution by class")]
    roles_seen: list[str] = []
    for k, (cls, vals) in enumerate(panels):
        x0 = left + k * (pw + gap)
        counts = {role: [0] * (len(bins) - 1) for role in ROLE_ORDER}
        for rep, role in vals:
            b = min(len(bins) - 2, max(0, rep // 50))
            counts[role][b] += 1
            if role not in roles_seen:
                roles_seen.append(role)
        tallest = max(sum(counts[r][b] for r in ROLE_ORDER) for b in range(len(bins) - 1)) or 1
        ticks = nice_ticks(tallest, 3)
        yscale = ph / ticks[-1]
        for t in ticks:
            y = top + ph - t * yscale
            p.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{x0 - 5}" y="{y + 4:.1f}" class="ax" text-anchor="end">{t:,.0f}</text>')
        bw = pw / (len(bins) - 1)
        for b in range(len(bins) - 1):
            y = top + ph
            for role in reversed(ROLE_ORDER):  # honest at the bottom, farms on top
                c = counts[role][b]
                if not c:
                    continue
                hh = c * yscale
                y -= hh
                p.append(f'<rect x="{x0 + b * bw + 1:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{hh:.1f}" '
                         f'fill="{ROLE_COLOURS[role]}"><title>{esc(cls)}, reputation {bins[b]}–{bins[b + 1] - 1}: '
                         f'{c} {role} nodes</title></rect>')
        for t in (0, 250, 500, 750, 1000):
            p.append(f'<text x="{x0 + t / 1000 * pw:.1f}" y="{top + ph + 15}" class="ax" text-anchor="middle">{t}</text>')
        reps = sorted(r for r, _ in vals)
        med = reps[len(reps) // 2]
        p.append(f'<text x="{x0}" y="{top - 8}" class="hd">{esc(cls)}: {len(vals):,} nodes, median {med}</text>')
        p.append(f'<text x="{x0 + pw / 2:.0f}" y="{top + ph + 32}" class="ax" text-anchor="middle">reputation R</text>')
    p.append("</svg>")
    items = [(role, ROLE_COLOURS[role]) for role in ROLE_ORDER if role in roles_seen]
    key = svg_open(60 + 110 * len(items), 22, "legend") + legend(items, 4, 15) + "</svg>"
    return "".join(p) + key


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


STRIP = 8  # pixels of the planted-role strip left of the heat map


def heatmap(bitmaps: np.ndarray, scored: np.ndarray, strip: list[str]) -> str:
    """An inline PNG: a row per node, a column per 1-minute slot; up slots dark, down slots light,
    epochs in which the node was not scored grey; a thin line between epochs; on the left a strip
    in the colour of the node's planted role."""
    nodes, epochs = bitmaps.shape
    cols = epochs * SLOTS_PER_EPOCH
    up = np.zeros((nodes, cols), dtype=bool)
    for e in range(epochs):
        b = bitmaps[:, e].astype(np.uint64)
        for s in range(SLOTS_PER_EPOCH):
            up[:, e * SLOTS_PER_EPOCH + s] = ((b >> np.uint64(s)) & np.uint64(1)).astype(bool)
    img = np.empty((nodes, cols, 3), dtype=np.uint8)
    img[:] = (246, 233, 214)  # down: pale sand
    img[up] = (27, 94, 75)  # up: deep green
    missing = np.repeat(~scored, SLOTS_PER_EPOCH, axis=1)
    img[missing] = (225, 225, 225)
    img[:, ::SLOTS_PER_EPOCH] = np.minimum(img[:, ::SLOTS_PER_EPOCH], 200)  # epoch boundaries
    left = np.array([_rgb(c) for c in strip], dtype=np.uint8)[:, None, :].repeat(STRIP, axis=1)
    left[:, -2:] = 255
    img = np.concatenate([left, img], axis=1)
    cols += STRIP
    data = base64.b64encode(png_rgb(img)).decode()
    return (f'<img class="heat" alt="uptime heat map: {nodes} nodes by {cols} one-minute slots" '
            f'width="{cols}" height="{nodes}" src="data:image/png;base64,{data}">')


def chart_slashes(rows: list[tuple[int, str, int]], first: int, last: int) -> str:
    """Slashing decisions per epoch in which they were decided, stacked by rule."""
    w, h, left, top, bottom = 860, 170, 50, 28, 36
    pw, ph = w - left - 20, h - top - bottom
    n = max(1, last - first + 1)
    step = pw / n
    bw = max(1.5, step * 0.7)
    per: dict[int, dict[str, int]] = {}
    for e, rule, c in rows:
        per.setdefault(e, {})[rule] = c
    tallest = max((sum(v.values()) for v in per.values()), default=1)
    ticks = nice_ticks(tallest, 3)
    yscale = ph / ticks[-1]
    p = [svg_open(w, h, "slashing decisions per epoch, by rule")]
    for t in ticks:
        y = top + ph - t * yscale
        p.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                 f'<text x="{left - 6}" y="{y + 4:.1f}" class="ax" text-anchor="end">{t:,.0f}</text>')
    label_every = max(1, math.ceil(n / 16))
    for i in range(n):
        e = first + i
        x = left + i * step + (step - bw) / 2
        y = top + ph
        for rule, c in sorted(per.get(e, {}).items()):
            hh = c * yscale
            y -= hh
            p.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{hh:.1f}" '
                     f'fill="{RULE_COLOURS.get(rule, "#555")}"><title>epoch {e}: {c} × {esc(rule)}</title></rect>')
        if i % label_every == 0:
            p.append(f'<text x="{x + bw / 2:.1f}" y="{top + ph + 15}" class="ax" text-anchor="middle">{e}</text>')
    p.append(legend([(r, c) for r, c in RULE_COLOURS.items()], left, 14))
    p.append(f'<text x="{left + pw / 2:.0f}" y="{h - 4}" class="ax" text-anchor="middle">epoch decided in</text>')
    p.append("</svg>")
    return "".join(p)


def chart_bars(items: list[tuple[str, float, str, str]], unit: str, label: str) -> str:
    """Horizontal bars: (name, value, colour, hover text)."""
    if not items:
        return ""
    w, row, left, top = 860, 22, 200, 8
    h = top + row * len(items) + 26
    vmax = nice_ticks(max(v for _, v, _, _ in items) or 1)
    scale = (w - left - 70) / (vmax[-1] or 1)
    p = [svg_open(w, h, label)]
    for t in vmax:
        x = left + t * scale
        p.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{h - 22}" class="grid"/>'
                 f'<text x="{x:.1f}" y="{h - 8}" class="ax" text-anchor="middle">{t:,.0f}</text>')
    for i, (name, v, colour, hover) in enumerate(items):
        y = top + i * row
        p.append(f'<text x="{left - 8}" y="{y + 15}" class="ax" text-anchor="end">{esc(name)}</text>'
                 f'<rect x="{left}" y="{y + 4}" width="{max(1.0, v * scale):.1f}" height="{row - 8}" fill="{colour}">'
                 f'<title>{esc(hover)}</title></rect>'
                 f'<text x="{left + v * scale + 6:.1f}" y="{y + 15}" class="ax">{v:,.0f} {esc(unit)}</text>')
    p.append("</svg>")
    return "".join(p)


# ---------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------

def _dicts(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def gather(con, data: ReportData) -> dict:
    """Every figure the page shows from the store, in one place."""
    g: dict = {}
    g["epochs"] = _dicts(con, """
        SELECT e.reward_epoch, e.emission_base_units AS emission, e.unallocated_base_units AS unallocated,
               e.allocated_base_units AS allocated, e.eligible_nodes AS eligible, e.scored_nodes AS scored,
               e.manifest_sha256,
               coalesce(sum(r.amount_base_units) FILTER (WHERE r.pool = 'enterprise'), 0)::BIGINT AS enterprise_paid,
               coalesce(sum(r.amount_base_units) FILTER (WHERE r.pool = 'community'), 0)::BIGINT AS community_paid
        FROM reward_epochs e LEFT JOIN epoch_rewards r USING (reward_epoch)
        GROUP BY ALL ORDER BY e.reward_epoch""")
    if data.ingest is not None:
        g["ingest"] = tuple(data.ingest)
    else:  # the folder alone knows what was archived and what was rejected, not the duplicates
        acc, rej = con.execute("SELECT (SELECT count(*) FROM inputs), (SELECT count(*) FROM rejected_events)").fetchone()
        g["ingest"] = (acc + rej, acc, None, rej, None)
    g["rejected"] = con.execute("SELECT reason, count(*) FROM rejected_events GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    last = g["epochs"][-1]["reward_epoch"] if g["epochs"] else None
    g["latest"] = con.execute(
        "SELECT node_id, coalesce(pool, 'unknown model') AS cls, reputation FROM node_epoch_scores"
        " WHERE reward_epoch = ? AND reputation IS NOT NULL ORDER BY node_id", [last]).fetchall()
    g["regions"] = dict(con.execute("SELECT node_id, region FROM nodes").fetchall())
    g["bitmaps"] = con.execute(
        "SELECT node_id, reward_epoch, slot_bitmap FROM node_epoch_scores ORDER BY node_id, reward_epoch").fetchall()
    g["slashes"] = _dicts(con, """
        SELECT decision_id, node_id, rule, amount_base_units, status, decided_in_epoch, len(evidence) AS evidence,
               detail FROM slash_decisions ORDER BY decided_at_us, decision_id""")
    g["earners"] = con.execute(
        "SELECT r.node_id, any_value(s.gpu_model_claimed), any_value(s.gpu_count), any_value(r.pool),"
        " sum(r.amount_base_units)::BIGINT AS total, count(*)"
        " FROM epoch_rewards r JOIN node_epoch_scores s USING (reward_epoch, node_id)"
        " GROUP BY r.node_id ORDER BY total DESC, r.node_id LIMIT 12").fetchall()
    g["reasons"] = con.execute(
        "SELECT ineligible_reason, count(*), count(DISTINCT node_id) FROM node_epoch_scores"
        " WHERE NOT eligible GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    g["verdicts"] = con.execute(
        "SELECT hw_verdict, count(*) FROM node_epoch_scores WHERE reward_epoch = ? GROUP BY 1 ORDER BY 2 DESC, 1",
        [last]).fetchall()
    return g


MAX_HEAT_ROWS = 400


def _heat_section(g: dict, roles: dict[str, str]) -> str:
    rows = g["bitmaps"]
    if not rows:
        return "<p>No scores.</p>"
    epochs = sorted({e for _, e, _ in rows})
    col = {e: i for i, e in enumerate(epochs)}
    every = sorted({n for n, _, _ in rows})
    # every planted node, and honest ones up to MAX_HEAT_ROWS: the first by node_id, which is a
    # uniform sample (ids are random hex)
    room = max(0, MAX_HEAT_ROWS - sum(1 for n in every if n in roles))
    honest = [n for n in every if n not in roles]
    nodes = [n for n in every if n in roles] + honest[:room]
    rows = [r for r in rows if r[0] in set(nodes)]
    # grouped by region (a regional outage shows as one band), planted roles first inside a region
    order = sorted(nodes, key=lambda n: (g["regions"].get(n) or "~unregistered",
                                         ROLE_ORDER.index(roles.get(n, "honest")), n))
    pos = {n: i for i, n in enumerate(order)}
    bitmaps = np.zeros((len(order), len(epochs)), dtype=np.uint64)
    scored = np.zeros((len(order), len(epochs)), dtype=bool)
    for n, e, b in rows:
        bitmaps[pos[n], col[e]] = int(b or 0)
        scored[pos[n], col[e]] = True
    bands, start = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or g["regions"].get(order[i]) != g["regions"].get(order[start]):
            bands.append((g["regions"].get(order[start]) or "unregistered", start, i))
            start = i
    labels = "".join(f'<div class="band" style="top:{a / len(order) * 100:.3f}%;height:{(b - a) / len(order) * 100:.3f}%">'
                     f'<span>{esc(name)} ({b - a})</span></div>' for name, a, b in bands)
    strip = [ROLE_COLOURS[roles.get(n, "honest")] if n in roles else "#ffffff" for n in order]
    sampled = (f" ({len(honest) - room:,} honest nodes not shown)" if len(honest) > room else "")
    items = [(role, ROLE_COLOURS[role]) for role in ROLE_ORDER if role != "honest" and role in set(roles.values())]
    key = (svg_open(60 + 110 * len(items), 22, "legend") + legend(items, 4, 15) + "</svg>") if items else ""
    return (f'<div class="heatwrap"><div class="bands">{labels}</div>{heatmap(bitmaps, scored, strip)}</div>'
            f'<p class="note">Epochs {epochs[0]}–{epochs[-1]} left to right, one column per one-minute slot '
            f'(dark: up, at least one reachable ping; pale: down; grey: not scored). Rows: {len(order):,} nodes '
            f'grouped by region{sampled}, planted ones first, marked on the left:</p>{key}')


def _planted_table(truth: dict) -> str:
    kinds: dict[str, list[int]] = {}
    for p in truth.get("plants", []):
        k = kinds.setdefault(p.get("kind", "?"), [0, 0])
        k[0] += 1
        k[1] += len(p.get("node_ids", []))
    return table(["planted kind", "plants", "nodes"], [(k, v[0], v[1]) for k, v in sorted(kinds.items())])


def render(g: dict, data: ReportData) -> str:
    roles = roles_of(data.truth)
    epochs = g["epochs"]
    total_alloc = sum(r["allocated"] for r in epochs)
    total_emission = sum(r["emission"] for r in epochs)
    tiles = [
        ("reward epochs closed", f"{len(epochs):,}"),
        ("tokens emitted", tokens(total_emission)),
        ("paid to nodes", f"{total_alloc / total_emission * 100:.1f} %" if total_emission else "–"),
        ("nodes scored", f"{len({n for n, _, _ in g['bitmaps']}):,}"),
        ("slashing decisions", f"{len(g['slashes']):,}"),
    ]
    inv = data.investigation
    if inv and inv.get("quality"):
        q = inv["quality"]
        tiles.append(("farm precision / recall", f"{q.get('precision', 0):.2f} / {q.get('recall', 0):.2f}"))
    if data.settlements is not None:
        tiles.append(("settlement transactions", f"{len(data.settlements):,}"))
    if data.reconciliation is not None:
        tiles.append(("on-chain reconciliation", "passed" if data.reconciliation.get("ok") else "FAILED"))
    if data.verified_published is not None:
        tiles.append(("re-derived from the published folder", f"{len(data.verified_published):,} / {len(epochs):,}"))
    elif data.verified is not None:
        tiles.append(("epochs verified", f"{len(data.verified):,} / {len(epochs):,}"))
    sections: list[tuple[str, str, str]] = []  # (id, title, html)

    if data.stages:
        sections.append(("run", "The run", "<ol class=\"stages\">" + "".join(
            f"<li><b>{esc(key)}</b> <span class=\"note\">({seconds:.1f} s)</span>: {esc(line)}</li>"
            for _, key, line, seconds in data.stages) + "</ol>"))

    i = g["ingest"]
    sections.append(("inputs", "Inputs",
                     (f"<p>{i[0]:,} inputs = {i[1]:,} accepted + {i[2]:,} exact duplicates + {i[3]:,} rejected; "
                      f"{i[4]:,} arrived late." if i[2] is not None else
                      f"<p>{i[1]:,} events archived, {i[3]:,} rejected.")
                     + " Nothing is dropped silently: every rejection keeps its reason.</p>"
                     + (table(["rejection reason", "count"], g["rejected"]) if g["rejected"] else "")))

    sections.append(("emission", "Emission and allocation per epoch",
                     "<p>Each bar is one hourly epoch's emission (ruleset §6), split into what the enterprise and "
                     "community pools paid out and what stayed unallocated (a pool nobody was eligible for). "
                     f"{tokens(total_alloc)} of {tokens(total_emission)} tokens were allocated.</p>"
                     + chart_emission(epochs)
                     + table(["epoch", "scored", "eligible", "emission", "enterprise paid", "community paid",
                              "unallocated", "manifest"],
                             [(r["reward_epoch"], r["scored"], r["eligible"], r["emission"], r["enterprise_paid"],
                               r["community_paid"], r["unallocated"], mono(r["manifest_sha256"], 16)) for r in epochs],
                             cls="num")))

    groups: dict[str, list[tuple[int, str]]] = {}
    for node, cls, rep in g["latest"]:
        groups.setdefault(cls, []).append((int(rep), roles.get(node, "honest")))
    order = {"enterprise": 0, "community": 1}
    groups = dict(sorted(groups.items(), key=lambda kv: order.get(kv[0], 2)))
    sections.append(("reputation", "Reputation by class",
                     "<p>The reputation R (0–1000, ruleset §4) of every registered node at the last epoch, one "
                     "histogram per GPU class; colours mark what the simulator planted.</p>" + chart_reputation(groups)))

    sections.append(("uptime", "Uptime heat map", _heat_section(g, roles)))

    sl = g["slashes"]
    if epochs:
        slash_counts = {}
        for d in sl:
            k = (d["decided_in_epoch"], d["rule"])
            slash_counts[k] = slash_counts.get(k, 0) + 1
        chart = chart_slashes([(e, r, c) for (e, r), c in slash_counts.items()],
                              epochs[0]["reward_epoch"], epochs[-1]["reward_epoch"])
    else:
        chart = ""
    by_status: dict[str, int] = {}
    for d in sl:
        by_status[d["status"]] = by_status.get(d["status"], 0) + 1
    sections.append(("slashes", "Slashes",
                     f"<p>{len(sl):,} slashing decisions (ruleset §8): "
                     + (", ".join(f"{v} {k}" for k, v in sorted(by_status.items())) or "none")
                     + "; a decision becomes final 24 h after it was decided unless an appeal is upheld.</p>"
                     + chart + table(["node", "planted as", "rule", "amount", "status", "epoch", "evidence events",
                                      "why"],
                                     [(mono(d["node_id"]), roles.get(d["node_id"], "–"), d["rule"],
                                       d["amount_base_units"], d["status"], d["decided_in_epoch"], d["evidence"],
                                       d["detail"]) for d in sl], limit=40)))

    if inv is not None:
        first, last = (epochs[0]["reward_epoch"], epochs[-1]["reward_epoch"]) if epochs else (0, 0)
        sections.append(("suspects", "Suspect clusters", _suspects_section(inv, first, last)))

    if data.settlements is not None or data.validations is not None or data.reconciliation is not None:
        sections.append(("settlement", "Settlement on Solana", _settlement_section(data, epochs)))

    if data.verified is not None or data.verified_published is not None:
        sections.append(("verification", "Every epoch, checked", _checks_section(data, epochs)))

    sections.append(("earners", "Top earners",
                     table(["node", "claimed model", "GPUs", "pool", "base units", "epochs paid"],
                           [(mono(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in g["earners"]], cls="num")))
    sections.append(("unpaid", "Why nodes were not paid",
                     table(["first failing reason", "node-epochs", "nodes"], g["reasons"])
                     + table(["hardware verdict (last epoch)", "nodes"], g["verdicts"])))
    if data.truth:
        sections.append(("truth", "Planted truth (simulator)", _planted_table(data.truth)))

    nav = " · ".join(f'<a href="#{sid}">{esc(t)}</a>' for sid, t, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{esc(t)}</h2>{c}</section>' for sid, t, c in sections)
    tile_html = "".join(f'<div class="tile"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
                        for k, v in tiles)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(data.title)}</title>
<style>{CSS}</style></head><body><header><h1>{esc(data.title)}</h1><nav>{nav}</nav>
<div class="tiles">{tile_html}</div></header>{body}
<footer>Written by epochal from the published folder; every epoch in it can be re-derived with
<code>epochal epoch verify N --published DIR</code>. Self-contained: no scripts, nothing fetched.</footer></body></html>"""


def chart_leaks(leak: list[dict], first: int, last: int) -> str:
    """One row per planted farm over the epochs: red while it was paid and not yet caught, a ring
    at the epoch whose end-of-epoch investigation first flagged half its nodes, and what it was
    paid until then."""
    w, row, left, top = 860, 26, 150, 26
    right = 230
    h = top + row * len(leak) + 30
    n = max(1, last - first + 1)
    step = (w - left - right) / n
    p = [svg_open(w, h, "planted farms: when the investigation first caught each, and what it was paid until then")]
    for i in range(n):
        x = left + i * step
        if i % max(1, math.ceil(n / 12)) == 0:
            p.append(f'<text x="{x + step / 2:.1f}" y="{h - 10}" class="ax" text-anchor="middle">{first + i}</text>')
    for k, f in enumerate(leak):
        y = top + k * row
        caught = f.get("first_flagged_epoch")
        upto = caught if caught is not None else last
        p.append(f'<text x="{left - 8}" y="{y + 16}" class="ax" text-anchor="end">{esc(f["farm_id"])} '
                 f'({f["nodes"]} nodes)</text>')
        p.append(f'<rect x="{left}" y="{y + 8}" width="{n * step:.1f}" height="10" fill="#eef0f2"/>')
        p.append(f'<rect x="{left}" y="{y + 8}" width="{(upto - first + 1) * step:.1f}" height="10" '
                 f'fill="{ROLE_COLOURS["farm"]}" opacity="0.8"><title>{esc(f["farm_id"])}: epochs {first}..{upto} '
                 f'before it was caught; paid in {f.get("epochs_paid_before", 0)} of them</title></rect>')
        if caught is not None:
            cx = left + (caught - first + 0.5) * step
            p.append(f'<circle cx="{cx:.1f}" cy="{y + 13}" r="7" fill="#fff" stroke="#222" stroke-width="2"/>')
        what = (f"caught at epoch {caught}" if caught is not None else "never caught") + \
            f", paid {tokens(f.get('leaked_base_units', 0))} tokens"
        p.append(f'<text x="{left + n * step + 10:.1f}" y="{y + 16}" class="ax">{esc(what)}</text>')
    p.append(legend([("paid while not yet caught", ROLE_COLOURS["farm"]), ("first caught (ring)", "#222")], left, 14))
    p.append("</svg>")
    return "".join(p)


def _suspects_section(inv: dict, first: int, last: int) -> str:
    q = inv.get("quality") or {}
    clusters = inv.get("clusters") or []
    leak = inv.get("leak") or []
    leaked = q.get("leaked_base_units")
    if leaked is None and leak:
        leaked = sum(f.get("leaked_base_units", 0) for f in leak)
    kinds: dict[str, int] = {}
    for c in clusters:
        kinds[c.get("kind") or "?"] = kinds.get(c.get("kind") or "?", 0) + 1
    parts = [f"<p>The farming investigation flagged {len(clusters):,} clusters "
             f"with a score of at least {inv.get('min_score', '?')} ("
             + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) + "). Scored against what the simulator "
             f"planted (farm and spoofer nodes): precision <b>{q.get('precision', 0):.2f}</b>, recall "
             f"<b>{q.get('recall', 0):.2f}</b>"
             + (f" ({q['flagged']:,} nodes flagged, {q['true_suspects']:,} planted)" if "flagged" in q else "")
             + (f"; the planted farms were paid <b>{tokens(leaked)}</b> tokens ({leaked:,} base units) before "
                "the investigation caught them" if leaked is not None else "") + ".</p>"]
    if leak:
        parts.append(chart_leaks(leak, first, last))
    missed = q.get("missed") or []
    wrong = q.get("false_positives") or []
    if missed or wrong:
        parts.append(f'<p class="note">Missed planted nodes: {esc(", ".join(missed)) or "none"}. '
                     f'Flagged but not planted: {esc(", ".join(wrong)) or "none"}.</p>')
    shown = clusters[:30]
    bars = [(c["cluster_id"], c.get("score", 0) * 100,
             ROLE_COLOURS.get(c.get("planted") or "", ROLE_COLOURS["honest"]),
             f"{c['cluster_id']}: {len(c.get('node_ids', []))} nodes, score {c.get('score', 0):.2f}, "
             f"planted as {c.get('planted') or 'nothing'}") for c in shown]
    if bars:
        parts.append('<p class="note">Each flagged cluster\'s score (×100), coloured by what its nodes were '
                     'planted as (red: farm, purple: spoofer, grey: nothing planted).</p>')
        parts.append(chart_bars(bars, "", "score of each suspect cluster"))
    parts.append(table(["cluster", "kind", "score", "strength", "nodes", "planted as", "reward earned (base units)",
                        "signals"],
                       [(c["cluster_id"], c.get("kind"), c.get("score"), c.get("strength"), len(c.get("node_ids", [])),
                         c.get("planted") or "–", c.get("rewards_base_units"),
                         ", ".join(s["name"] for s in c.get("signals", []))) for c in clusters], limit=40))
    if inv.get("suspects_path"):
        parts.append(f'<p class="note">Every cluster\'s evidence (event ids): <code>{esc(inv["suspects_path"])}</code></p>')
    return "".join(parts)


def _checks_section(data: ReportData, epochs: list[dict]) -> str:
    """One row per epoch: its manifest and every check the run made of it (a column per check
    that ran)."""
    valid = {v["reward_epoch"]: v for v in (data.validations or [])}
    txs: dict[int, list[dict]] = {}
    for t in data.settlements or []:
        txs.setdefault(t["reward_epoch"], []).append(t)

    def paid(r: dict) -> str:
        mine = txs.get(r["reward_epoch"], [])
        p = sum(int(t["amount_base_units"]) for t in mine if t.get("status") == "confirmed")
        return ("✓ " if p == r["allocated"] else "✗ ") + f"{p:,} in {len(mine)} transactions"

    columns = [("epoch", lambda r: r["reward_epoch"]), ("manifest", lambda r: mono(r["manifest_sha256"], 16))]
    said = []
    if data.verified is not None:
        arch = set(data.verified)
        columns.append(("from the archive", lambda r: "✓" if r["reward_epoch"] in arch else "✗"))
        said.append("recomputed from the archive in the store (every row, the manifest)")
    if data.verified_published is not None:
        pub = set(data.verified_published)
        columns.append(("from the published folder", lambda r: "✓" if r["reward_epoch"] in pub else "✗"))
        said.append("re-derived from the published folder alone, with no store (every file against its manifest, "
                    "the manifests' hash chain, every row and the manifest recomputed from the published inputs)")
    if data.validations is not None:
        def check(r):
            v = valid.get(r["reward_epoch"])
            return "–" if v is None else (f"✓ {len(v['checks'])} checks" if v["passed"] else "✗")
        columns.append(("validation", check))
        said.append("validated by the great-expectations gate before any payment")
    if data.settlements is not None:
        columns.append(("paid on chain (base units)", paid))
        said.append("paid on chain: its transactions' confirmed transfers against what it allocated")
    return ("<p>Each epoch " + "; ".join(said) + ".</p>"
            + table([c for c, _ in columns], [tuple(f(r) for _, f in columns) for r in epochs]))


def _settlement_section(data: ReportData, epochs: list[dict]) -> str:
    parts = []
    if data.validations is not None:
        ok = sum(1 for v in data.validations if v.get("passed"))
        parts.append(f"<p>Validation (great-expectations) before paying: {ok} of {len(data.validations)} epochs passed.</p>")
        failed = [v for v in data.validations if not v.get("passed")]
        if failed:
            parts.append(table(["epoch", "failed checks"], [(v["reward_epoch"], "; ".join(
                f"{n}: {d}" for n, okc, d in v.get("checks", []) if not okc)) for v in failed]))
    if data.settlements is not None:
        txs = data.settlements
        paid_by_epoch: dict[int, int] = {}
        for t in txs:
            paid_by_epoch[t["reward_epoch"]] = paid_by_epoch.get(t["reward_epoch"], 0) + int(t["amount_base_units"])
        parts.append(f"<p>{len(txs):,} transactions on the in-process Solana runtime paid "
                     f"{sum(paid_by_epoch.values()):,} base units over {len(paid_by_epoch)} epochs; each carries a "
                     "memo naming its epoch, batch and manifest.</p>")
        bars = [(f"epoch {r['reward_epoch']}", paid_by_epoch.get(r["reward_epoch"], 0) / TOKEN, C_ENTERPRISE,
                 f"epoch {r['reward_epoch']}: paid {paid_by_epoch.get(r['reward_epoch'], 0):,} of "
                 f"{r['allocated']:,} allocated") for r in epochs]
        parts.append(chart_bars(bars, "tokens", "tokens paid on chain per epoch"))
        parts.append(table(["epoch", "batch", "signature", "memo", "recipients", "amount", "status"],
                           [(t["reward_epoch"], t["batch"], mono(t["signature"], 24), mono(t.get("memo") or "–"),
                             t["recipients"], int(t["amount_base_units"]), t.get("status")) for t in txs],
                           limit=500))
    if data.reconciliation is not None:
        r = data.reconciliation
        diffs = r.get("differences") or []
        parts.append(f"<p>Reconciliation: every recipient's on-chain token balance against the sum of its "
                     f"settled rewards ({r.get('recipients', 0):,} recipients, {r.get('batches', 0):,} batches): "
                     f"<b>{'no difference' if r.get('ok') else f'{len(diffs)} differences'}</b>.</p>")
        if diffs:
            parts.append("<ul>" + "".join(f"<li>{esc(d)}</li>" for d in diffs[:20]) + "</ul>")
    return "".join(parts)


CSS = """
:root{--ink:#1d232a;--muted:#5d6b78;--line:#e3e7eb}
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--ink);margin:0;background:#fafbfc}
header,section,footer{max-width:1100px;margin:0 auto;padding:0 24px}
header{padding-top:28px}h1{font-size:26px;margin:0 0 6px}nav{font-size:13px;color:var(--muted)}
nav a{color:#2f6db5;text-decoration:none}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:18px 0 8px}
.tile{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:120px}
.tile .v{font-size:22px;font-weight:600}.tile .k{font-size:12px;color:var(--muted)}
section{background:#fff;border:1px solid var(--line);border-radius:10px;margin-top:18px;padding:6px 24px 18px}
h2{font-size:19px;margin:14px 0 6px}
table{border-collapse:collapse;margin:10px 0;font-size:13px}
td,th{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f3f5f7;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
td code{white-space:nowrap}td.txt{overflow-wrap:anywhere;min-width:160px}td.n{white-space:nowrap}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f3f5f7;padding:1px 4px;border-radius:3px}
.note{font-size:12px;color:var(--muted)}
svg.chart{display:block;max-width:100%;height:auto;margin:8px 0}
svg text{font:11px system-ui,sans-serif;fill:#333}svg text.hd{font-weight:600;font-size:12px}
svg text.lg{font-size:11px}svg .grid{stroke:#e6e6e6;stroke-width:1}
.heatwrap{position:relative;margin:10px 0 4px 130px}
.heat{display:block;width:100%;height:auto;min-height:200px;image-rendering:pixelated;border:1px solid var(--line)}
.bands{position:absolute;left:-130px;top:0;bottom:0;width:124px}
.band{position:absolute;left:0;right:0;border-top:1px solid #ccd;font-size:11px;color:var(--muted);overflow:hidden}
.band span{position:absolute;top:2px;right:4px;white-space:nowrap}
ol.stages li{margin:2px 0}
footer{font-size:12px;color:var(--muted);padding:18px 24px 40px}
"""


def write_report(published: Path, out: Path, data: ReportData | None = None) -> Path:
    """Write the page for the published folder `published` (read through `store.published`'s
    views, so it needs no lock on the store) to `out`; return `out`."""
    data = data or ReportData()
    con = duckdb.connect()
    try:
        attach(con, published)
        g = gather(con, data)
    finally:
        con.close()
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(g, data), encoding="utf-8")
    tmp.replace(out)  # a reader never sees half a page
    return out
