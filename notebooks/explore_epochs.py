# %% [markdown]
# # Exploring a store: epochs, pools and why nodes were not paid
#
# A percent-format notebook (open it in Jupyter with jupytext, or run it as a script):
# `python notebooks/explore_epochs.py demo-out/epochal.duckdb`.
# It only reads the store; every figure here is also in `epochal epoch show` / `node show`.

# %%
import sys

import duckdb
import polars as pl

db = sys.argv[1] if len(sys.argv) > 1 else "demo-out/epochal.duckdb"
con = duckdb.connect(db, read_only=True)


def q(sql: str) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql).to_arrow_table())


# %% [markdown]
# ## Epochs: emission, what was allocated, how many earned

# %%
print(q("SELECT reward_epoch, emission_base_units, allocated_base_units, unallocated_base_units,"
        " eligible_nodes, scored_nodes FROM reward_epochs ORDER BY reward_epoch"))

# %% [markdown]
# ## Why nodes were not paid, epoch by epoch (first failing reason)

# %%
print(q("SELECT reward_epoch, ineligible_reason, count(*) AS nodes FROM node_epoch_scores"
        " WHERE NOT eligible GROUP BY ALL ORDER BY reward_epoch, nodes DESC"))

# %% [markdown]
# ## Reputation components of the best-paid nodes

# %%
print(q("SELECT s.node_id, s.reward_epoch, s.reputation, s.rep_availability, s.rep_jobs, s.rep_hardware,"
        " s.rep_tenure, s.rep_penalty, r.amount_base_units FROM epoch_rewards r"
        " JOIN node_epoch_scores s USING (reward_epoch, node_id)"
        " ORDER BY r.amount_base_units DESC LIMIT 10"))
