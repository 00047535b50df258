"""The store layer: what epochal keeps on disk, below the app, the payouts and the streams.

`store.published` writes and reads the published folder (every closed epoch as immutable
Parquet files, manifest last), which every reader uses instead of the writer's DuckDB file.
"""
