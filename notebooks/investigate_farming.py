# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Investigating farming on a simulated network
#
# A percent-format notebook (open it in Jupyter with jupytext, or run it as a script). It walks an
# analyst's investigation: open the archive with DuckDB, look at the raw facts that give farms
# away, run the investigation's signals, plot them, and drill into one cluster.
#
# It reads the store named by `$EPOCHAL_NOTEBOOK_DB` (read-only), or its published folder
# `$EPOCHAL_NOTEBOOK_PUBLISHED`; with neither, it simulates a small network (200 nodes × 8 h)
# and replays it into a temporary store first. The test suite executes it headless.

# %%
import json
import os
import tempfile
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

db = os.environ.get("EPOCHAL_NOTEBOOK_DB")
published = os.environ.get("EPOCHAL_NOTEBOOK_PUBLISHED")
truth_path = os.environ.get("EPOCHAL_NOTEBOOK_TRUTH")
if not db and not published:
    from epochal.replay import replay
    from epochal.sim import simulate

    work = Path(tempfile.mkdtemp(prefix="epochal-notebook-"))
    simulate(200, 8, 3, work / "events")
    db = str(work / "epochal.duckdb")
    replay([work / "events"], db)
    truth_path = str(work / "events" / "truth.json")
print("store:", db, "| published folder:", published)

# %% [markdown]
# ## 1. The archive, as DuckDB sees it
# The store holds every accepted event (`archive_events`, `archive_pings`) and each closed
# epoch's rows. We open it read-only: a writer could hold it meanwhile (then read the published
# folder instead, through `analytics.source.open_source(None, published)`).

# %%
if db:
    con = duckdb.connect(db, read_only=True)

    def q(sql: str) -> pl.DataFrame:
        return pl.from_arrow(con.sql(sql).to_arrow_table())

    print(q("SELECT event_type, count(*) AS events FROM archive_events GROUP BY 1 ORDER BY 2 DESC"))
    print(q("SELECT count(*) AS pings, count(DISTINCT node_id) AS nodes FROM archive_pings"))

# %% [markdown]
# ## 2. Raw facts that give a farm away
# Wallets and IPs registered by more than one node. Nodes that declare one `operator_id` are a
# fleet and may share both openly; the rest claim to be independent.

# %%
if db:
    regs = q("""SELECT node_id, payload->>'wallet' AS wallet, payload->>'ip' AS ip,
                       payload->>'operator_id' AS operator_id, payload->>'gpu_model' AS gpu_model
                FROM archive_events WHERE event_type = 'node.registered'""")
    shared = (regs.group_by("wallet").agg(pl.len().alias("nodes"), pl.col("operator_id").n_unique().alias("operators"))
              .filter(pl.col("nodes") > 1).sort("nodes", descending=True))
    print("wallets on several nodes:\n", shared.head(10))

# %% [markdown]
# ## 3. The investigation's signals
# `analytics.investigate.run` builds every pair signal (hard links and circumstantial ones),
# joins them into a graph and scores its clusters. Each pair carries its figure and the event
# ids behind it.

# %%
from analytics.investigate import run  # noqa: E402
from analytics.report import cluster_picture, suspects  # noqa: E402
from analytics.source import open_source  # noqa: E402

src = open_source(db, published)
inv = run(src)
per_signal = inv.pairs.group_by(["signal", "strength"]).agg(
    pl.len().alias("pairs"), pl.col("weight").max().alias("max_weight")).sort("pairs", descending=True)
print(per_signal)
flagged = [c for c in inv.clusters if c.score >= inv.min_score]
print(f"{len(flagged)} clusters flagged, {len(inv.flagged())} nodes")

# %% [markdown]
# ## 4. Plots: how strong the links are, and where clusters sit

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
ax1.hist(inv.edges["weight"].to_numpy(), bins=30, color="#2c7fb8")
ax1.axvline(0.5, color="red", linestyle="--", label="a link (0.5)")
ax1.set_xlabel("link weight (noisy-or over signal families)")
ax1.set_ylabel("pairs")
ax1.legend()
scores = [c.score for c in inv.clusters]
sizes = [len(c.node_idx) for c in inv.clusters]
ax2.scatter(sizes, scores, c=["#c0392b" if c.kind == "farm" else "#8e44ad" for c in inv.clusters])
ax2.axhline(inv.min_score, color="grey", linestyle=":")
ax2.set_xlabel("cluster size (nodes)")
ax2.set_ylabel("score")
ax2.set_title("red: farms, purple: spoofed hardware")
plt.show()

# %% [markdown]
# ## 5. Drill into the strongest farm cluster
# Its members, the signals that tie them with their figures and event ids, what it earned, its
# picture (link graph and uptime strip), and the honest look-alikes near it.

# %%
farms = [c for c in flagged if c.kind == "farm"]
assert farms, "a simulated network always holds a farm that the investigation finds"
top = max(farms, key=lambda c: (c.score, len(c.node_idx)))
doc = suspects(inv)
entry = next(c for c in doc["clusters"] if c["cluster_id"] == top.cluster_id)
print(json.dumps({k: entry[k] for k in ("cluster_id", "score", "strength", "node_ids", "wallets",
                                         "rewards_base_units")}, indent=1))
for s in entry["signals"]:
    print(f"  {s['name']}: {s['value']}  ({len(s['event_ids'])} event ids, e.g. {s['event_ids'][:2]})")
for la in doc["details"][top.cluster_id]["lookalikes"]:
    print("  not flagged:", la["why"])

# %%
import base64  # noqa: E402
import io  # noqa: E402

import matplotlib.image as mpimg  # noqa: E402

img = mpimg.imread(io.BytesIO(base64.b64decode(cluster_picture(inv, top))), format="png")
plt.figure(figsize=(12, 3.5))
plt.imshow(img)
plt.axis("off")
plt.show()

# %% [markdown]
# The members' registrations, straight from the archive: the evidence an operator would be shown.

# %%
members = entry["node_ids"]
if db:
    print(regs.filter(pl.col("node_id").is_in(members)).sort("node_id"))

# %% [markdown]
# ## 6. Against the simulator's truth (when there is one)

# %%
if truth_path:
    from analytics.quality import load_truth, score

    print(json.dumps(score(inv, load_truth(Path(truth_path))), indent=1))
src.close()
