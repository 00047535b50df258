"""The store layer: what epochal keeps on disk, below the app, the payouts and the streams.

`store.db` is the DuckDB store (schema, connection, meta), `store.ingest` the ingest edge that
archives events into it, and `store.published` writes and reads the published folder (every
closed epoch as immutable Parquet files, manifest last), which every reader uses instead of the
writer's DuckDB file. Imports only scoring/ below it.
"""
