"""The farming investigation: signals → a graph of suspicious links → scored clusters.

**Edges.** Each pair's signals are grouped by family; a family counts with its strongest signal
(the network signals are one family: the same place gives the same /24 and the same round
trips, so they do not add up). The edge's weight is the noisy-or over families,
`1 − Π (1 − w_family)`. An edge enters the graph at `EDGE_MIN` (0.5): any hard link alone, a strong
circumstantial signal alone (clones, lockstep, same-second pings, wash jobs), or two weaker ones;
the network family (≤ 0.25) and registration bursts (≤ 0.45) never make an edge alone.

**Declared fleets** (an `operator_id` declared by two or more nodes) are not farms: links between
two nodes of one declared fleet are dropped (kept in the report as why the fleet was not
flagged). Their hardware is still checked: the spoofing clusters below ignore declarations.

**Regional outages** are found in the uptime itself (a region's share of down nodes jumps, over
many subnets at once) and their slots are left out of the lockstep signal.

**Clusters** are the connected components of the graph; a component larger than 30 nodes that is
sparse (density < 0.3) is split into Louvain communities (networkx, fixed seed). A cluster's
score is `1 − Π_f (1 − w_f · c_f)` over the families present, `w_f` the family's strongest edge
inside, `c_f` the share of the cluster's nodes its edges touch; a cluster held together by
circumstantial signals only is scaled by its size (0.6 for a pair, 0.85 for three nodes), since
chance pairs exist in any large network. `strength` is `hard` when a hard link is inside.

**Per-node signals** (`NODE_SIGNALS`: a move to a wallet never seen before; job outcomes no
honest supplier produces) describe a node, not a tie between two: they are listed with the
clusters of the nodes they concern and kept out of the graph and of the scores.

**Spoofing** (kind `spoofing`): one cluster per node whose latest benchmark at the cut is
`impossible` or `mismatch` against its claim (the close's own verdict), or that reported a GPU
fingerprint another node had reported first (ruleset §10's binding; the first holder is the
victim, not a suspect). Two nodes tied by nothing but one fingerprint are that case, not a farm.

The whole investigation is a pure function of the cut archive (`analytics.source`): sorted
inputs, fixed seeds, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import polars as pl

from scoring.ruleset import RULESET_V1
from scoring.timing import get_epoch_start_us

from .features import Features, load_features
from .signals import NODE_SIGNALS, SIGNALS, Signal, lockstep_context
from .source import Source

EDGE_MIN = 0.5
DEFAULT_MIN_SCORE = 0.5
SPLIT_SIZE = 30
SPOOF_SCORES = {"impossible": 0.95, "fingerprint_reuse": 0.9, "mismatch": 0.7}


@dataclass
class Cluster:
    cluster_id: str
    kind: str
    score: float
    strength: str
    node_idx: list[int]
    signals: list[dict]
    families: dict[str, float]
    edges: list[tuple[int, int, float]] = field(default_factory=list)
    lookalikes: list[dict] = field(default_factory=list)


@dataclass
class Investigation:
    src: Source
    features: Features
    pairs: pl.DataFrame  # a, b, signal, family, strength, value, weight, evidence
    edges: pl.DataFrame  # a, b, weight, families
    clusters: list[Cluster]
    fleets: list[dict]
    outages: list[dict]
    subnets: list[dict]
    min_score: float
    disabled: tuple[str, ...]
    node_signals: pl.DataFrame | None = None  # idx, signal, value, evidence, detail (per-node signals)

    def node_id(self, i: int) -> str:
        return self.features.nodes["node_id"][i]

    def flagged(self, kind: str | None = None) -> set[str]:
        ids = self.features.nodes["node_id"].to_list()
        return {ids[i] for c in self.clusters if c.score >= self.min_score and (kind is None or c.kind == kind)
                for i in c.node_idx}


def collect_pairs(f: Features, signals: tuple[Signal, ...]) -> pl.DataFrame:
    frames = []
    for s in signals:
        p = s.fn(f)
        if p.height:
            frames.append(p.with_columns(pl.lit(s.name).alias("signal"), pl.lit(s.family).alias("family"),
                                         pl.lit(s.strength).alias("strength")))
    if not frames:
        return pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64, "value": pl.Float64, "weight": pl.Float64,
                                    "evidence": pl.List(pl.Utf8), "signal": pl.Utf8, "family": pl.Utf8,
                                    "strength": pl.Utf8})
    return pl.concat(frames).sort(["a", "b", "signal"])


def collect_node_signals(f: Features, signals: tuple[Signal, ...]) -> pl.DataFrame:
    frames = [s.fn(f).with_columns(pl.lit(s.name).alias("signal")) for s in signals]
    frames = [x for x in frames if x.height]
    if not frames:
        return pl.DataFrame(schema={"idx": pl.Int64, "value": pl.Float64, "evidence": pl.List(pl.Utf8),
                                    "detail": pl.Utf8, "signal": pl.Utf8})
    return pl.concat(frames).sort(["idx", "signal"])


def _add_node_signals(clusters: list[Cluster], per_node: pl.DataFrame, ids: list[str]) -> None:
    """Each cluster's members' per-node signals, summarised beside its pair signals (they
    describe the members; they tie no node to another, so they neither form nor score a
    cluster)."""
    if per_node.is_empty():
        return
    by_node: dict[int, list[dict]] = {}
    for r in per_node.iter_rows(named=True):
        by_node.setdefault(r["idx"], []).append(r)
    for c in clusters:
        rows = [r for i in c.node_idx for r in by_node.get(i, [])]
        for name in sorted({r["signal"] for r in rows}):
            g = [r for r in rows if r["signal"] == name]
            c.signals.append({
                "name": name,
                "value": {"nodes": len(g), "node_ids": [ids[r["idx"]] for r in g[:50]],
                          "min": round(min(r["value"] for r in g), 6), "max": round(max(r["value"] for r in g), 6),
                          "detail": g[0]["detail"]},
                "event_ids": sorted({e for r in g for e in r["evidence"]})[:MAX_CITED],
                "family": "node", "strength": "circumstantial", "pairs": [],
            })


def _fleet_pairs(f: Features, pairs: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split pairs into (farm evidence, links inside one declared fleet)."""
    fl = f.nodes.select(pl.col("idx"), pl.col("fleet"))
    p = pairs.join(fl.rename({"idx": "a", "fleet": "fa"}), on="a", how="left").join(
        fl.rename({"idx": "b", "fleet": "fb"}), on="b", how="left")
    inside = (pl.col("fa").is_not_null() & (pl.col("fa") == pl.col("fb"))).fill_null(False)
    return p.filter(~inside).drop("fa", "fb"), p.filter(inside).drop("fb").rename({"fa": "fleet"})


def _edges(pairs: pl.DataFrame) -> pl.DataFrame:
    fam = pairs.group_by(["a", "b", "family"]).agg(pl.col("weight").max())
    return (fam.group_by(["a", "b"]).agg((1 - (1 - pl.col("weight")).product()).alias("weight"),
                                          pl.col("family").sort().alias("families"))
            .sort(["a", "b"]))


def _spoofing(f: Features, pairs: pl.DataFrame) -> tuple[list[tuple[int, str, list[str], str]], set[tuple[int, int]]]:
    """(node, reason, evidence, detail) per spoofing suspect; and the fingerprint-only pairs
    that are a theft (victim, thief), to keep out of the farm graph."""
    out: dict[int, tuple[int, str, list[str], str]] = {}
    v = f.verdicts.filter(pl.col("hw_verdict").is_in(["impossible", "mismatch"])).sort("idx")
    for i, verdict, ev in zip(v["idx"].to_list(), v["hw_verdict"].to_list(), v["benchmark_event_id"].to_list()):
        out[i] = (i, verdict, [ev] if ev else [], f"latest benchmark judged {verdict} against its claim")
    # fingerprints: bound to their first reporter (by occurred_at, then event id)
    fp = (f.benchmarks.select("idx", "event_id", "occurred_at_us", "fingerprints").explode("fingerprints")
          .drop_nulls("fingerprints").sort(["occurred_at_us", "event_id"]))
    first = fp.group_by("fingerprints", maintain_order=True).first().rename({"idx": "owner", "event_id": "owner_ev"})
    thefts = fp.join(first.select("fingerprints", "owner", "owner_ev"), on="fingerprints").filter(
        pl.col("idx") != pl.col("owner"))
    th = thefts.group_by("idx").agg(pl.col("event_id").unique().sort(), pl.col("owner_ev").unique().sort(),
                                    pl.col("owner").unique().sort()).sort("idx")
    for i, evs, oevs in zip(th["idx"].to_list(), th["event_id"].to_list(), th["owner_ev"].to_list()):
        if i not in out or out[i][1] != "impossible":
            out[i] = (i, "fingerprint_reuse", sorted(set(evs) | set(oevs)),
                      "reported a GPU fingerprint another node had reported first")
    # a pair tied by one fingerprint and nothing else: a theft of one card, not a farm
    fam = pairs.group_by(["a", "b"]).agg(pl.col("signal").unique())
    only_fp = fam.filter(pl.col("signal").list.len() == 1).filter(pl.col("signal").list.first() == "shared_fingerprint")
    deg = pairs.filter(pl.col("signal") == "shared_fingerprint")
    deg = pl.concat([deg.select(pl.col("a").alias("i")), deg.select(pl.col("b").alias("i"))]).group_by("i").len()
    lone = set(deg.filter(pl.col("len") == 1)["i"].to_list())
    theft_pairs = {(a, b) for a, b in zip(only_fp["a"].to_list(), only_fp["b"].to_list()) if a in lone and b in lone}
    return [out[i] for i in sorted(out)], theft_pairs


def _score(sub_pairs: pl.DataFrame, nodes: list[int]) -> tuple[float, dict[str, float], str]:
    n = len(nodes)
    fam_w: dict[str, float] = {}
    prod = 1.0
    for (family,), g in sub_pairs.group_by(["family"], maintain_order=True):
        w = float(g["weight"].max())
        touched = len(set(g["a"].to_list()) | set(g["b"].to_list()))
        c = touched / n
        fam_w[family] = round(w * c, 4)
        prod *= 1 - w * c
    score = 1 - prod
    hard = bool((sub_pairs["strength"] == "hard").any())
    if not hard:
        score *= {2: 0.6, 3: 0.85}.get(n, 1.0)
    return round(min(1.0, score), 4), dict(sorted(fam_w.items())), "hard" if hard else "circumstantial"


def _signal_summary(sub: pl.DataFrame, ids: list[str]) -> list[dict]:
    out = []
    for (name,), g in sub.sort("signal").group_by(["signal"], maintain_order=True):
        ev = sorted(set(g["evidence"].explode().drop_nulls().to_list()))
        out.append({
            "name": name,
            "value": {"pairs": g.height, "nodes": len(set(g["a"].to_list()) | set(g["b"].to_list())),
                      "min": round(float(g["value"].min()), 6), "max": round(float(g["value"].max()), 6),
                      "weight": round(float(g["weight"].max()), 4)},
            "event_ids": ev,
            "family": g["family"][0],
            "strength": g["strength"][0],
            "pairs": [[ids[a], ids[b], round(float(v), 6)] for a, b, v in
                      zip(g["a"].to_list()[:50], g["b"].to_list()[:50], g["value"].to_list()[:50])],
        })
    return out


def _lookalikes(f: Features) -> tuple[list[dict], list[dict]]:
    """Declared fleets and shared subnets of the network (honest look-alikes)."""
    nodes = f.nodes.join(f.verdicts.select("idx", "hw_verdict"), on="idx", how="left")
    fleets = []
    for (op,), g in nodes.filter(pl.col("fleet").is_not_null()).sort("idx").group_by(["fleet"], maintain_order=True):
        verdicts = g["hw_verdict"].fill_null("none").value_counts(sort=True)
        fleets.append({"operator_id": op, "node_idx": g["idx"].to_list(), "wallets": g["wallet"].n_unique(),
                       "subnets": sorted(set(g["subnet"].drop_nulls().to_list())), "region": g["region"][0],
                       "hardware": ", ".join(f"{n} {v}" for v, n in verdicts.iter_rows())})
    subs = []
    per = nodes.filter(pl.col("subnet").is_not_null()).group_by("subnet").agg(
        pl.col("idx").sort(), pl.col("wallet").n_unique().alias("wallets"), pl.col("fleet").n_unique().alias("fleets"),
        pl.col("ip").n_unique().alias("ips"), pl.col("region").first())
    for row in per.filter((pl.col("idx").list.len() >= 5) & (pl.col("wallets") >= 5)).sort("subnet").iter_rows(named=True):
        subs.append({"subnet": row["subnet"] + ".0/24", "node_idx": row["idx"], "wallets": row["wallets"],
                     "ips": row["ips"], "region": row["region"]})
    return fleets, subs


def _components(edges: pl.DataFrame, exclude: set[int]) -> list[list[int]]:
    g = nx.Graph()
    g.add_weighted_edges_from((a, b, w) for a, b, w in zip(edges["a"].to_list(), edges["b"].to_list(),
                                                           edges["weight"].to_list())
                              if a not in exclude and b not in exclude)
    groups: list[list[int]] = []
    for comp in sorted((sorted(c) for c in nx.connected_components(g)), key=lambda c: c[0]):
        if len(comp) > SPLIT_SIZE and nx.density(g.subgraph(comp)) < 0.3:
            parts = nx.community.louvain_communities(g.subgraph(comp), weight="weight", seed=0)
            groups += sorted((sorted(p) for p in parts if len(p) >= 2), key=lambda c: c[0])
        else:
            groups.append(comp)
    return groups


def run(src: Source, *, min_score: float = DEFAULT_MIN_SCORE, disabled: tuple[str, ...] = (),
        features: Features | None = None, cite: bool = True) -> Investigation:
    f = features if features is not None else load_features(src)
    ids = f.nodes["node_id"].to_list()
    signals = tuple(s for s in SIGNALS if s.name not in disabled)
    pairs_all = collect_pairs(f, signals)
    pairs, in_fleet = _fleet_pairs(f, pairs_all)
    spoof, theft_pairs = _spoofing(f, pairs_all)
    if theft_pairs:
        tp = pl.DataFrame(sorted(theft_pairs), schema=["a", "b"], orient="row")
        pairs = pairs.join(tp, on=["a", "b"], how="anti")
    edges = _edges(pairs)
    strong = edges.filter(pl.col("weight") >= EDGE_MIN)
    # Two passes: links made by a registration burst alone (the weakest kind that can make a
    # link) only form clusters among nodes no other evidence placed, never attach a node to a
    # cluster held by other evidence (a node that registered inside a farm's burst is not one
    # of its members for that alone).
    burst_only = pl.col("families").list.len().eq(1) & pl.col("families").list.first().eq("registration")
    groups = _components(strong.filter(~burst_only), set())
    placed = {i for c in groups for i in c}
    groups += _components(strong.filter(burst_only), placed)
    strong_edges = strong
    clusters: list[Cluster] = []
    for comp in groups:
        cs = set(comp)
        sub = pairs.filter(pl.col("a").is_in(comp) & pl.col("b").is_in(comp))
        sub_edges = strong_edges.filter(pl.col("a").is_in(comp) & pl.col("b").is_in(comp))
        score, fam, strength = _score(sub, comp)
        clusters.append(Cluster("", "farm", score, strength, sorted(cs), _signal_summary(sub, ids), fam,
                                list(zip(sub_edges["a"].to_list(), sub_edges["b"].to_list(), sub_edges["weight"].to_list()))))
    for i, reason, ev, detail in spoof:
        clusters.append(Cluster("", "spoofing", SPOOF_SCORES[reason], "hard", [i],
                                [{"name": f"hardware_{reason}", "value": {"detail": detail}, "event_ids": ev,
                                  "family": "hardware", "strength": "hard", "pairs": []}], {"hardware": SPOOF_SCORES[reason]}))
    clusters.sort(key=lambda c: (-c.score, c.kind, ids[c.node_idx[0]]))
    for k, c in enumerate(clusters):
        c.cluster_id = f"{c.kind}-{k + 1:03d}-{ids[c.node_idx[0]]}"
    fleets, subnets = _lookalikes(f)
    _, _, outages = lockstep_context(f)
    per_node = collect_node_signals(f, tuple(s for s in NODE_SIGNALS if s.name not in disabled))
    _add_node_signals(clusters, per_node, ids)
    inv = Investigation(src, f, pairs, edges, clusters, fleets, outages, subnets, min_score, tuple(disabled), per_node)
    _attach_lookalikes(inv, in_fleet)
    if cite:
        cite_ping_evidence(inv)
    return inv


def _attach_lookalikes(inv: Investigation, in_fleet: pl.DataFrame) -> None:
    """For each cluster, the honest look-alikes near it and why they were not flagged."""
    f = inv.features
    ids = f.nodes["node_id"].to_list()
    subnet = f.nodes["subnet"].to_list()
    region = f.nodes["region"].to_list()
    fleet_links = in_fleet.group_by("fleet").agg(pl.col("signal").unique().sort(), pl.len().alias("pairs"))
    fleet_links = {r["fleet"]: r for r in fleet_links.iter_rows(named=True)}
    flagged_idx = {i for c in inv.clusters if c.score >= inv.min_score for i in c.node_idx}
    for c in inv.clusters:
        nets = {subnet[i] for i in c.node_idx if subnet[i]}
        regs = {region[i] for i in c.node_idx if region[i]}
        members = set(c.node_idx)
        near = []
        for fl in inv.fleets:
            if set(fl["node_idx"]) & members or ({s.rsplit(".", 1)[0] for s in fl["subnets"]}
                                                & {s.rsplit(".", 1)[0] for s in nets}) or fl["region"] in regs and len(near) < 3:
                links = fleet_links.get(fl["operator_id"])
                why = (f"declared fleet {fl['operator_id']} ({len(fl['node_idx'])} nodes, {fl['wallets']} wallet(s)): "
                       + (f"{links['pairs']} link(s) inside it ({', '.join(links['signal'])}) are not farm evidence; "
                          if links else "")
                       + f"its hardware was checked like any node's ({fl['hardware']})")
                near.append({"kind": "fleet", "what": fl["operator_id"], "why": why,
                             "node_ids": [ids[i] for i in fl["node_idx"][:20]]})
        for o in inv.outages:
            if o["region"] in regs:
                why = (f"regional outage in {o['region']} over slots {o['from_slot']}..{o['to_slot']} of the window: "
                       f"{o['nodes']} nodes on {o['subnets']} subnets went down together; those slots are not lockstep evidence")
                near.append({"kind": "outage", "what": o["region"], "why": why, "node_ids": []})
        for s in inv.subnets:
            if s["subnet"][:-5] in nets:
                inside = [i for i in s["node_idx"] if i not in flagged_idx]
                why = (f"shared subnet {s['subnet']}: {len(s['node_idx'])} nodes, {s['wallets']} wallets, {s['ips']} IPs; "
                       f"{len(inside)} of them share nothing else with this cluster (a /24 alone is circumstantial "
                       "and never makes a link)")
                near.append({"kind": "subnet", "what": s["subnet"], "why": why,
                             "node_ids": [ids[i] for i in inside[:20]]})
        c.lookalikes = near[:8]


PING_SIGNALS = ("lockstep_uptime", "same_second_pings", "rtt_twins")
MAX_CITED = 60  # event ids cited per signal and cluster (the figures count them all)


EVIDENCE_MINUTES = 30  # the window after a cluster's last registration its ping evidence is cited from
CITED_RISES = 8  # slots per cluster where members came back up together, cited for lockstep


def _time_ranges(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Disjoint [lo, hi) ranges covering every span (merged when they touch)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def cite_ping_evidence(inv: Investigation) -> None:
    """Give the ping-based signals of the flagged farm clusters the event ids behind them, read
    from a few minutes of the archive only (a scan of every ping would cost the investigation
    as much again): for each cluster, the pings of the `EVIDENCE_MINUTES` after its last member
    registered (two or more members' pings taken in one second by one checker: same-second;
    each member's first ping from each checker: round trips), and the pings that ended a gap
    in the first `CITED_RISES` minutes members came back up together (lockstep). Each minute
    range is its own pruned scan (the archive is stored in time order)."""
    con = inv.src.con
    f = inv.features
    ids = f.nodes["node_id"].to_list()
    want = [c for c in inv.clusters if c.kind == "farm" and c.score >= inv.min_score
            and any(s["name"] in PING_SIGNALS for s in c.signals)]
    if not want:
        return
    member = pl.DataFrame({"node_id": [ids[i] for c in want for i in c.node_idx],
                           "cluster": [k for k, c in enumerate(want) for _ in c.node_idx]})
    t0 = get_epoch_start_us(inv.src.first_epoch, RULESET_V1)
    minute = 60_000_000
    reg = f.nodes["registered_at_us"].to_list()
    windows = []
    for k, c in enumerate(want):
        last = max([reg[i] for i in c.node_idx if reg[i] is not None] or [t0])
        lo = max(t0, last // minute * minute)
        windows.append((k, lo, min(lo + EVIDENCE_MINUTES * minute, inv.src.end_us)))
    # the slots where two or more members of a cluster came back up together (lockstep)
    up, mask, _ = lockstep_context(f)
    rises = []
    for k, c in enumerate(want):
        rows = np.asarray(c.node_idx)
        r = up[rows, 1:] & ~up[rows, :-1] & ~mask[rows, 1:]
        slots = np.flatnonzero(r.sum(axis=0) >= 2) + 1
        for s in slots[:CITED_RISES].tolist():
            for i in rows[r[:, s - 1]].tolist():
                rises.append((k, ids[i], t0 + s * minute))
    ranges = _time_ranges([(lo, hi) for _, lo, hi in windows if hi > lo] + [(t, t + minute) for _, _, t in rises])
    scan = " UNION ALL ".join(
        f"""SELECT node_id, event_id, checker_id, occurred_at_us FROM inv_pings
            WHERE reachable AND occurred_at_us >= {lo} AND occurred_at_us < {hi}""" for lo, hi in ranges)
    rise = pl.DataFrame(rises, schema={"cluster": pl.Int64, "node_id": pl.Utf8, "t": pl.Int64}, orient="row")
    win = pl.DataFrame(windows, schema={"cluster": pl.Int64, "lo": pl.Int64, "hi": pl.Int64}, orient="row")
    con.register("inv_members", member.to_arrow())
    con.register("inv_rises", rise.to_arrow())
    con.register("inv_windows", win.to_arrow())
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE inv_member_pings AS
                       SELECT m.cluster, q.node_id, q.event_id, q.checker_id, q.occurred_at_us
                       FROM ({scan}) q JOIN inv_members m USING (node_id)""")
        con.execute("""CREATE OR REPLACE TEMP TABLE inv_window_pings AS
                       SELECT p.* FROM inv_member_pings p JOIN inv_windows w ON p.cluster = w.cluster
                         AND p.occurred_at_us >= w.lo AND p.occurred_at_us < w.hi""")
        same = con.execute(
            f"""WITH p AS (SELECT cluster, node_id, event_id, checker_id, occurred_at_us // 1000000 AS sec
                           FROM inv_window_pings),
                     s AS (SELECT cluster, checker_id, sec FROM p GROUP BY ALL HAVING count(DISTINCT node_id) >= 2)
                SELECT cluster, list(event_id ORDER BY event_id) FROM (
                  SELECT p.cluster, p.event_id FROM p JOIN s USING (cluster, checker_id, sec)
                  QUALIFY row_number() OVER (PARTITION BY p.cluster ORDER BY p.event_id) <= {MAX_CITED})
                GROUP BY cluster""").fetchall()
        rtt = con.execute(
            f"""SELECT cluster, list(event_id ORDER BY event_id) FROM (
                  SELECT cluster, event_id FROM (
                    SELECT cluster, event_id, row_number() OVER (PARTITION BY node_id, checker_id
                                                                 ORDER BY occurred_at_us, event_id) AS r
                    FROM inv_window_pings) WHERE r = 1
                  QUALIFY row_number() OVER (PARTITION BY cluster ORDER BY event_id) <= {MAX_CITED})
                GROUP BY cluster""").fetchall()
        lock = []
        if rises:
            lock = con.execute(
                f"""SELECT cluster, list(event_id ORDER BY event_id)[1:{MAX_CITED}] FROM (
                      SELECT r.cluster, q.event_id, row_number() OVER (PARTITION BY r.cluster, r.node_id, r.t
                                                                       ORDER BY q.occurred_at_us, q.event_id) AS n
                      FROM inv_rises r JOIN inv_member_pings q ON q.node_id = r.node_id AND q.cluster = r.cluster
                        AND q.occurred_at_us >= r.t AND q.occurred_at_us < r.t + 60000000)
                    WHERE n = 1 GROUP BY cluster""").fetchall()
    finally:
        for name in ("inv_rises", "inv_members", "inv_windows"):
            con.unregister(name)
        con.execute("DROP TABLE IF EXISTS inv_member_pings")
        con.execute("DROP TABLE IF EXISTS inv_window_pings")
    cited = {"same_second_pings": dict(same), "rtt_twins": dict(rtt), "lockstep_uptime": dict(lock)}
    for k, c in enumerate(want):
        for s in c.signals:
            if s["name"] in cited:
                s["event_ids"] = sorted(cited[s["name"]].get(k) or [])
