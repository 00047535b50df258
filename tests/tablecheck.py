"""Read the output tables of a store in a canonical order, without the columns outside the
bit-for-bit promise (wall-clock times and arrival order, ruleset §9)."""

from __future__ import annotations

import duckdb

OUTSIDE_PROMISE = {"closed_at", "received_at", "input_arrival_seq", "engine_version"}
OUTPUT_TABLES = {
    "node_epoch_scores": "reward_epoch, node_id",
    "epoch_rewards": "reward_epoch, node_id",
    "reward_epochs": "reward_epoch",
    "ledger_entries": "entry_id",
    "slash_decisions": "decision_id",
}


def output_tables(db_path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        out = {}
        for table, order in OUTPUT_TABLES.items():
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in OUTSIDE_PROMISE]
            out[table] = con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}").fetchall()
        return out
    finally:
        con.close()


def replayed_tables(kit, tmp_dir, cache: dict) -> dict[str, list[tuple]]:
    """The output tables of a clean replay of `kit`'s events, computed once per `cache`."""
    if "tables" not in cache:
        from epochal.replay import replay

        db = tmp_dir / "reference.duckdb"
        replay([kit.write(tmp_dir / "reference.jsonl")], db)
        cache["tables"] = output_tables(db)
    return cache["tables"]
