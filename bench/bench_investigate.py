"""Benchmark of the farming investigation (issue 18): time and memory, and quality.

**Time** (`run`, in the suite): `epochal investigate farming` on 100,000 nodes × 24 h (quick:
600 × 6 h). The store is built once, untimed, by `bench/investigate_store.py` (the archive's
tables written directly, then closed by the engine's own close: replaying 126 M simulated
events would take the engine tens of minutes here before anything is measured) and kept in
`bench-data/investigate-<N>x<H>/`. Then, each in a fresh process, the whole investigation
(archive → signals → clusters → suspects.json + report.html) with its peak RSS, against a floor
measured in the same run: a bare DuckDB scan of the same archive (every ping grouped per node
and checker, every other event read once). Budget: ≤ 120 s at 100,000 × 24 h.

**Quality** (`--quality`, not in the suite: it simulates and replays a network per seed):
node-level precision and recall against truth.json per seed, the honest look-alikes flagged,
the same with each signal left out (ablations), and for each planted farm the epoch at which
the investigation run at each epoch's end first flagged it and the reward it earned until then.

Usage:
  python bench/bench_investigate.py [--nodes 100000 --hours 24] [--data DIR]
  python bench/bench_investigate.py --quality [--seeds 1 2 3 4 5 6 7 8] [--nodes 400 --hours 12]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, Row, log, run_child  # noqa: E402

FULL = (100_000, 24)
QUICK = (600, 6)
BUDGET_S = 120.0


def build_direct(nodes: int, hours: int, data: Path, seed: int = 1) -> dict:
    """The timing benchmark's store, written directly once into `data/` (a marker says it is complete)."""
    done = data / "built.json"
    if done.exists():
        return json.loads(done.read_text())
    from bench.investigate_store import build as build_store

    data.mkdir(parents=True, exist_ok=True)
    (data / "store.duckdb").unlink(missing_ok=True)
    t0 = time.perf_counter()
    info = build_store(str(data / "store.duckdb"), nodes, hours, seed)
    info["build_s"] = time.perf_counter() - t0
    done.write_text(json.dumps(info))
    return info


def build(nodes: int, hours: int, data: Path, seed: int = 1) -> dict:
    """Simulate and replay once into `data/` (a marker file says it is complete)."""
    done = data / "built.json"
    if done.exists():
        return json.loads(done.read_text())
    from epochal.replay import replay
    from epochal.sim import simulate

    data.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    simulate(nodes, hours, seed, data / "events")
    t1 = time.perf_counter()
    (data / "store.duckdb").unlink(missing_ok=True)
    replay([data / "events"], data / "store.duckdb")
    t2 = time.perf_counter()
    info = {"nodes": nodes, "hours": hours, "seed": seed, "simulate_s": t1 - t0, "replay_s": t2 - t1}
    done.write_text(json.dumps(info))
    return info


def investigate_child(db: str, out: str) -> dict:
    """The subject: the investigation end to end, as the command runs it."""
    from analytics.investigate import cite_ping_evidence, run
    from analytics.report import write_html, write_suspects
    from analytics.source import open_source

    t0 = time.perf_counter()
    src = open_source(db)
    from analytics.features import load_features

    f = load_features(src)
    t1 = time.perf_counter()
    inv = run(src, features=f, cite=False)
    t2 = time.perf_counter()
    cite_ping_evidence(inv)
    t2c = time.perf_counter()
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    write_suspects(inv, o)
    write_html(inv, o)
    t3 = time.perf_counter()
    pings = src.con.execute("SELECT count(*) FROM inv_pings").fetchall()[0][0]
    src.close()
    # node-level quality against the store's planted roles (its farms are the suspects)
    from bench.investigate_store import truth
    roles = truth(f.n)
    flagged = inv.flagged()
    tp = len(flagged & roles["farm"])
    quality = {"precision": round(tp / len(flagged), 4) if flagged else 1.0,
               "recall": round(tp / len(roles["farm"]), 4) if roles["farm"] else 1.0,
               "fleet_flagged": len(flagged & roles["fleet"]), "subnet_flagged": len(flagged & roles["subnet"])}
    return {"seconds": t3 - t0, "read_s": t1 - t0, "signals_clusters_s": t2 - t1,
            "cite_s": t2c - t2, "write_s": t3 - t2c, "ping_rate": f.ping_rate,
            "nodes": f.n, "pings": int(pings), "pairs": inv.pairs.height,
            "clusters_flagged": sum(1 for c in inv.clusters if c.score >= inv.min_score),
            "nodes_flagged": len(flagged), **quality}


def scan_child(db: str) -> dict:
    """The floor: a bare DuckDB scan of the same archive."""
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect(db, read_only=True)
    con.execute("SET memory_limit = '4GB'")
    a = con.execute("SELECT node_id, checker_id, count(*), avg(rtt_ms) FROM archive_pings GROUP BY ALL").to_arrow_table()
    b = con.execute("SELECT event_type, node_id, payload FROM archive_events").to_arrow_table()
    con.close()
    return {"seconds": time.perf_counter() - t0, "groups": a.num_rows, "events": b.num_rows}


def run(quick: bool, workdir: Path, data: Path | None = None, sizes: tuple[int, int] | None = None) -> list[Row]:
    nodes, hours = sizes or (QUICK if quick else FULL)
    if data is None:  # the full size is kept between runs; the quick one lives in the scratch dir
        data = (workdir if quick else ROOT / "bench-data") / f"investigate-{nodes}x{hours}"
    log(f"building {nodes:,} nodes × {hours} h in {data} (once)")
    info = build_direct(nodes, hours, data)
    db = str(data / "store.duckdb")
    log("bare DuckDB scan (floor)")
    floor = run_child("bench.bench_investigate:scan_child", {"db": db})
    log("investigation")
    subj = run_child("bench.bench_investigate:investigate_child", {"db": db, "out": str(workdir / "inv")})
    name = "investigation"
    budgeted = quick or (nodes, hours) == FULL
    return [
        Row(name, f"investigate {nodes:,} nodes × {hours} h ({subj['pings']:,} pings)", round(subj["seconds"], 2), "s",
            baseline=round(floor["seconds"], 2), baseline_label="bare DuckDB scan of the archive",
            ratio=round(subj["seconds"] / floor["seconds"], 2),
            # the budget is the full size's; quick mode reports it against its small network, never enforced
            budget=f"≤ {BUDGET_S:.0f} s at 100,000 × 24 h" if budgeted else "",
            limit=BUDGET_S if budgeted else None, compare="value" if budgeted else "",
            extra={**subj, "floor": floor, "build": info}).check(quick),
        Row(name, "investigation peak RSS", round(subj["peak_rss_mb"], 1), "MB",
            baseline=round(floor["peak_rss_mb"], 1), baseline_label="bare scan peak RSS",
            ratio=round(subj["peak_rss_mb"] / floor["peak_rss_mb"], 2)),
        Row(name, f"node precision / recall against the store's {info.get('farm_nodes', '?')} planted farm nodes "
                  f"({subj['nodes_flagged']:,} flagged; fleet / shared-subnet nodes flagged: "
                  f"{subj['fleet_flagged']} / {subj['subnet_flagged']})",
            subj["precision"], "precision", note=f"recall {subj['recall']}"),
    ]


def quality(seeds: list[int], nodes: int, hours: int, workdir: Path) -> dict:
    from analytics.investigate import run as investigate
    from analytics.quality import ablations, leak_timeline, load_truth, score
    from analytics.source import open_source

    out: dict = {"nodes": nodes, "hours": hours, "seeds": {}, "ablations": {}, "leak": {}}
    sums: dict[str, list[tuple[float, float]]] = {}
    for seed in seeds:
        data = workdir / f"q-{nodes}x{hours}-{seed}"
        build(nodes, hours, data, seed)
        truth = load_truth(data / "events" / "truth.json")
        src = open_source(data / "store.duckdb")
        try:
            q = score(investigate(src, cite=False), truth)
            out["seeds"][seed] = q
            for k, v in ablations(src, truth).items():
                sums.setdefault(k, []).append((v["precision"], v["recall"]))
            out["leak"][seed] = leak_timeline(src, truth)
        finally:
            src.close()
        log(f"seed {seed}: precision {q['precision']}, recall {q['recall']}, look-alikes {q['lookalikes_flagged']}")
    for k, v in sums.items():
        out["ablations"][k] = {"precision_mean": round(sum(p for p, _ in v) / len(v), 4),
                               "recall_mean": round(sum(r for _, r in v) / len(v), 4),
                               "precision_min": min(p for p, _ in v), "recall_min": min(r for _, r in v)}
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=None)
    ap.add_argument("--hours", type=int, default=None)
    ap.add_argument("--data", type=Path, default=None, help="where the simulated store is built and kept")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--quality", action="store_true", help="precision/recall per seed, ablations, leaked reward")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench-data" / "investigate-quality")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args(argv)
    if a.quality:
        res = quality(a.seeds, a.nodes or 400, a.hours or 12, a.workdir)
        print(f"{'seed':>6} {'precision':>10} {'recall':>8} {'flagged':>8} {'suspects':>9}  look-alikes flagged")
        for s, q in res["seeds"].items():
            print(f"{s:>6} {q['precision']:>10.4f} {q['recall']:>8.4f} {q['flagged']:>8} {q['true_suspects']:>9}  "
                  f"{q['lookalikes_flagged']}")
        print(f"\n{'ablation':<32} {'precision (mean/min)':>22} {'recall (mean/min)':>20}")
        for k, v in res["ablations"].items():
            print(f"{k:<32} {v['precision_mean']:>12.4f}/{v['precision_min']:<9.4f} {v['recall_mean']:>10.4f}/{v['recall_min']:.4f}")
        print(f"\n{'seed':>4} {'farm':<8} {'design':<22} {'nodes':>5} {'flagged at':>10} {'epochs paid':>11} {'leaked (base units)':>20}")
        for s, rows in res["leak"].items():
            for r in rows:
                fe = "never" if r["first_flagged_epoch"] is None else str(r["first_flagged_epoch"])
                print(f"{s:>4} {r['farm_id']:<8} {str(r['design']):<22} {r['nodes']:>5} {fe:>10} "
                      f"{r['epochs_paid_before']:>11} {r['leaked_base_units']:>20,}")
        if a.json:
            a.json.write_text(json.dumps(res, indent=1, default=str))
        return 0
    sizes = (a.nodes, a.hours) if a.nodes and a.hours else None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="epochal-bench-investigate-") as tmp:
        rows = run(a.quick, Path(tmp), a.data, sizes)
    for r in rows:
        print(f"{r.metric}: {r.value} {r.unit} | {r.baseline_label}: {r.baseline} {r.unit} | ratio {r.ratio} "
              f"| {r.budget} {'' if r.passed is None else ('pass' if r.passed else 'FAIL')}")
        if r.extra:
            print("  " + json.dumps({k: v for k, v in r.extra.items() if k not in ("floor", "build")}))
            print("  floor: " + json.dumps(r.extra.get("floor")) + " build: " + json.dumps(r.extra.get("build")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
