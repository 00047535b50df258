"""How well the investigation does against a simulation's `truth.json`.

- **Node-level precision and recall**: a planted farm's or spoofer's node is a true suspect;
  a flagged node is one in a cluster at score ≥ min_score (any kind).
- **Look-alikes**: no node of a regional outage, declared fleet or shared honest subnet may be
  flagged unless it was planted as a suspect too.
- **Ablations**: the same figures with each signal left out.
- **Leak timeline**: the investigation run at the end of each epoch (the archive cut there); for
  each planted farm the first epoch at which half its nodes were flagged, the epochs it was paid
  up to then and the reward it earned meanwhile.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from .features import load_features
from .investigate import DEFAULT_MIN_SCORE, Investigation, run
from .signals import SIGNALS
from .source import Source, closed_epochs, recut


def load_truth(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def suspects_of(truth: dict) -> set[str]:
    return {n for p in truth["plants"] if p["kind"] in ("farm", "spoofer") for n in p["node_ids"]}


def lookalikes_of(truth: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"outage": set(), "fleet": set(), "subnet": set()}
    for p in truth["plants"]:
        if p["kind"] == "outage" and p["params"].get("scope") == "region":
            out["outage"] |= set(p["node_ids"])
        elif p["kind"] in ("fleet", "subnet"):
            out[p["kind"]] |= set(p["node_ids"])
    return out


def score(inv: Investigation, truth: dict) -> dict:
    bad = suspects_of(truth)
    flagged = inv.flagged()
    tp = len(flagged & bad)
    looks = lookalikes_of(truth)
    wrongly = {k: sorted((v - bad) & flagged) for k, v in looks.items()}
    return {
        "flagged": len(flagged),
        "true_suspects": len(bad),
        "precision": round(tp / len(flagged), 4) if flagged else 1.0,
        "recall": round(tp / len(bad), 4) if bad else 1.0,
        "lookalikes_flagged": {k: len(v) for k, v in wrongly.items()},
        "false_positives": sorted(flagged - bad)[:20],
        "missed": sorted(bad - flagged)[:20],
    }


def ablations(src: Source, truth: dict, min_score: float = DEFAULT_MIN_SCORE) -> dict[str, dict]:
    f = load_features(src)
    out = {"(all signals)": score(run(src, min_score=min_score, features=f, cite=False), truth)}
    for s in SIGNALS:
        out[f"without {s.name}"] = score(run(src, min_score=min_score, disabled=(s.name,), features=f, cite=False), truth)
    return out


def leak_timeline(src: Source, truth: dict, min_score: float = DEFAULT_MIN_SCORE) -> list[dict]:
    epochs = [e for e in closed_epochs(src) if e <= src.up_to_epoch]
    farms = [p for p in truth["plants"] if p["kind"] == "farm"]
    first: dict[str, int | None] = {p["params"].get("farm_id", str(i)): None for i, p in enumerate(farms)}
    for e in epochs:
        inv = run(recut(src, e), min_score=min_score, cite=False)
        fl = inv.flagged()
        for i, p in enumerate(farms):
            fid = p["params"].get("farm_id", str(i))
            if first[fid] is None and len(fl & set(p["node_ids"])) * 2 >= len(p["node_ids"]):
                first[fid] = e
    recut(src, src.up_to_epoch)
    paid = src.con.execute(
        "SELECT node_id, reward_epoch, sum(amount_base_units)::BIGINT FROM inv_rewards GROUP BY ALL").fetchall()
    per = pl.DataFrame(paid, schema=["node_id", "reward_epoch", "amount"], orient="row")
    rows = []
    for i, p in enumerate(farms):
        fid = p["params"].get("farm_id", str(i))
        upto = first[fid] if first[fid] is not None else src.up_to_epoch
        mine = per.filter(pl.col("node_id").is_in(p["node_ids"]) & (pl.col("reward_epoch") <= upto))
        rows.append({
            "farm_id": fid,
            "design": p["params"].get("design") or p["params"].get("hiding"),
            "nodes": len(p["node_ids"]),
            "first_flagged_epoch": first[fid],
            "epochs_paid_before": int(mine.filter(pl.col("amount") > 0)["reward_epoch"].n_unique()),
            "leaked_base_units": int(mine["amount"].sum() or 0),
        })
    return rows
