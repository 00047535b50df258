"""`epochal epoch verify N --published DIR`: re-derive epoch N from the published folder alone.

No store is opened. The folder holds the inputs of every epoch (`store/published.py`), so:
1. every file of the epochs up to N is checked against its manifest (sha256, bytes, rows), and
   the manifests against each other (the hash chain `previous_manifest_sha256`, contiguous
   arrival ranges) and against the epoch's own published row;
2. the inputs of epochs ≤ N, the rejections, the rows of the closes before N and the rows
   published for N go into an in-memory DuckDB with the store's schema, exactly where the store
   keeps them (`store.published.load_store`);
3. `epochal.verify.verify_epoch` runs on it: the same gather, compute and compare as
   `epochal epoch verify N` on a store (there is no second copy of the close), so every score,
   reward, ledger entry, slash decision and the manifest hash are recomputed from the inputs and
   compared with the published ones;
4. the registry (`nodes.parquet`) is derived again by the writer's own query from the loaded
   archive and compared, and every input lies in its epoch's arrival range.
Any difference is named: the epoch, the file or the table and column, the node.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

import store.db as store
from epochal.verify import verify_epoch
from scoring.ruleset import RULESET_V1, RulesetConfig
from store import published as pub


def verify_published_epoch(root, n: int, cfg: RulesetConfig = RULESET_V1) -> list[str]:
    """The differences between epoch n as published in `root` and its re-derivation from the
    folder's inputs (empty: identical). LookupError when the folder cannot re-derive n at all
    (n not published, or an earlier epoch missing)."""
    root = Path(root)
    epochs = pub.list_epochs(root)
    if n not in epochs:
        raise LookupError(f"epoch {n} is not published in {root} (no reward_epoch={n}/manifest.json)")
    need = list(range(epochs[0], n + 1))
    missing = [k for k in need if k not in epochs]
    if missing:
        raise LookupError(f"the folder {root} lacks the manifests of epoch(s) {missing}, which epoch {n} builds on")

    diffs: list[str] = []
    manifests, broken = read_manifests(root, need)
    if broken:
        return broken + [f"epoch {n} is not re-derived: the manifests above cannot be read"]
    unreadable = check_files(root, manifests, diffs)
    check_manifests(root, manifests, diffs)
    if unreadable:
        return diffs + [f"epoch {n} is not re-derived: {', '.join(unreadable)} cannot be read"]

    con = store.connect(":memory:")
    try:
        try:
            pub.load_store(con, root, n)
        except Exception as exc:  # noqa: BLE001 - a folder's damage is a difference, named (REDERIVE)
            return diffs + [not_rederived(n, "its files do not load as the store's tables", exc)]
        try:
            diffs += check_against_manifests(con, manifests)
            diffs += check_arrival_ranges(root, manifests)
            diffs += [f"{d} (published, re-derived from the folder's inputs)" for d in verify_epoch(con, n, cfg)]
            diffs += check_nodes(con, root, manifests[n])
        except Exception as exc:  # noqa: BLE001 - as above
            diffs.append(not_rederived(n, "the close failed on the folder's inputs", exc))
    finally:
        con.close()
    return diffs


# REDERIVE: a folder is data from outside. One whose files were forged consistently with their
# manifests (a column dropped or retyped, a NULL where the store has NOT NULL, a payload that
# is not JSON) can make the load or the close fail in DuckDB, Polars, Arrow or the engine's own
# invariants; that is a difference, named with the error's first line, never a traceback.
def not_rederived(n: int, what: str, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"epoch {n} is not re-derived: {what} ({type(exc).__name__}: {first})"


def verify_published_epochs(root, epochs: list[int] | None = None, cfg: RulesetConfig = RULESET_V1,
                            progress=None) -> dict[int, list[str]]:
    """Every epoch of `epochs` (default: all published) re-derived from the folder alone, as
    `verify_published_epoch` does for one, but with the folder checked and loaded once: the
    files and manifests of the epochs up to the last one checked once, one in-memory store loaded
    through the last one, then each epoch recomputed from its own recorded inputs in it (exactly
    as `epoch verify N` does on a store that has closed later epochs; the slash decisions swapped
    for the epoch's own file, as its close left them) and its registry re-derived. Returns {epoch: differences}; a difference of the folder as a whole (a changed
    file, a broken manifest chain) is reported under the first epoch it concerns. `progress(1)`
    after each epoch. LookupError as `verify_published_epoch`."""
    root = Path(root)
    published = pub.list_epochs(root)
    chosen = sorted(published if epochs is None else epochs)
    if not chosen:
        return {}
    absent = [n for n in chosen if n not in published]
    if absent:
        raise LookupError(f"epoch(s) {absent} are not published in {root}")
    need = list(range(published[0], chosen[-1] + 1))
    missing = [k for k in need if k not in published]
    if missing:
        raise LookupError(f"the folder {root} lacks the manifests of epoch(s) {missing}, which later epochs build on")

    manifests, broken = read_manifests(root, need)
    if broken:
        return {n: broken + [f"epoch {n} is not re-derived: the manifests above cannot be read"] for n in chosen}
    folder: list[str] = []
    unreadable = check_files(root, manifests, folder)
    check_manifests(root, manifests, folder)
    out: dict[int, list[str]] = {n: [] for n in chosen}

    def concerns(d: str) -> int:  # "epoch K: ..." belongs to K (or the first chosen epoch after it)
        k = int(d.split(":", 1)[0].split()[1]) if d.startswith("epoch ") else chosen[0]
        return next((n for n in chosen if n >= k), chosen[-1])

    if unreadable:
        for n in chosen:
            out[n].append(f"epoch {n} is not re-derived: {', '.join(unreadable)} cannot be read")
    con = store.connect(":memory:")
    try:
        if not unreadable:
            try:
                pub.load_store(con, root, chosen[-1])
            except Exception as exc:  # noqa: BLE001 - a folder's damage is a difference, named (REDERIVE)
                unreadable = ["the folder"]
                for n in chosen:
                    out[n].append(not_rederived(n, "its files do not load as the store's tables", exc))
        if not unreadable:
            try:
                folder += check_against_manifests(con, manifests)
                folder += check_arrival_ranges(root, manifests)
            except Exception as exc:  # noqa: BLE001 - as above
                folder.append(not_rederived(chosen[0], "the folder's rows cannot be checked", exc))
        for d in folder:
            out[concerns(d)].append(d)
        for n in chosen:
            if not unreadable:
                try:
                    pub.load_slash_decisions(con, root, n)  # as the close of n left them, as one epoch's check does
                    out[n] += [f"{d} (published, re-derived from the folder's inputs)"
                               for d in verify_epoch(con, n, cfg)]
                    out[n] += check_nodes(con, root, manifests[n])
                except Exception as exc:  # noqa: BLE001 - as above
                    out[n].append(not_rederived(n, "the close failed on the folder's inputs", exc))
            if progress is not None:
                progress(1)
    finally:
        con.close()
    return out


MANIFEST_KEYS = {"reward_epoch": int, "ruleset_version": str, "params_sha256": str, "engine_version": str,
                 "manifest_sha256": str, "arrival_range": dict, "input_event_count": int,
                 "input_events_sha256": str, "files": list}


def read_manifests(root: Path, epochs: list[int]) -> tuple[dict[int, dict], list[str]]:
    """The manifests, and what is wrong with those that cannot be used at all (not JSON, a key
    missing or of the wrong type)."""
    manifests, broken = {}, []
    for k in epochs:
        try:
            m = pub.read_manifest(root, k)
        except ValueError as exc:
            broken.append(f"epoch {k}: manifest.json is not valid JSON ({exc})")
            continue
        bad = [key for key, typ in MANIFEST_KEYS.items() if not isinstance(m.get(key) if isinstance(m, dict) else None, typ)]
        r = m.get("arrival_range") if isinstance(m, dict) else None
        if not bad and not (isinstance(r.get("after"), int) and isinstance(r.get("through"), int)):
            bad.append("arrival_range")
        if not bad and not all(isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("rows"), int)
                               and isinstance(f.get("bytes"), int) and isinstance(f.get("sha256"), str)
                               and "/" not in f["name"] and f["name"] not in ("", ".", "..") for f in m["files"]):
            bad.append("files")
        if bad:
            broken.append(f"epoch {k}: manifest.json lacks a valid {', '.join(bad)}")
        else:
            manifests[k] = m
    return manifests, broken


def check_files(root: Path, manifests: dict[int, dict], diffs: list[str]) -> list[str]:
    """Each listed file's sha256, size and rows against its manifest; returns the files that
    are missing or unreadable (nothing can be loaded then)."""
    unreadable = []
    for k, m in manifests.items():
        listed = {f["name"] for f in m.get("files", [])}
        for name in pub.FILE_NAMES:
            if f"{name}.parquet" not in listed:
                diffs.append(f"epoch {k}: its manifest lists no {name}.parquet")
                unreadable.append(f"epoch {k}'s {name}.parquet")
        for f in m.get("files", []):
            path = pub.epoch_dir(root, k) / f["name"]
            where = f"epoch {k}: {f['name']}"
            try:
                data = path.read_bytes()
            except OSError:
                diffs.append(f"{where} is missing")
                unreadable.append(f"epoch {k}'s {f['name']}")
                continue
            if hashlib.sha256(data).hexdigest() != f["sha256"] or len(data) != f["bytes"]:
                diffs.append(f"{where}: its sha256 differs from the manifest's (the file was changed)")
            try:
                rows = pq.read_metadata(path).num_rows
            except Exception:  # noqa: BLE001 - any damage to a Parquet file is a difference, named
                diffs.append(f"{where} is not a readable Parquet file")
                unreadable.append(f"epoch {k}'s {f['name']}")
                continue
            if rows != f["rows"]:
                diffs.append(f"{where}: {rows:,} rows, the manifest says {f['rows']:,}")
    return unreadable


def check_manifests(root: Path, manifests: dict[int, dict], diffs: list[str]) -> None:
    """The hash chain and contiguous arrival ranges."""
    prev_bytes, prev = None, None
    for k, m in manifests.items():
        body = (pub.epoch_dir(root, k) / pub.MANIFEST).read_bytes()
        want = hashlib.sha256(prev_bytes).hexdigest() if prev_bytes is not None else None
        if m.get("previous_manifest_sha256") != want:
            diffs.append(f"epoch {k}: manifest.json: previous_manifest_sha256 is not the sha256 of epoch {k - 1}'s"
                         " manifest (a manifest was changed)")
        after = (m.get("arrival_range") or {}).get("after")
        if after != (prev["arrival_range"]["through"] if prev is not None else -1):
            diffs.append(f"epoch {k}: manifest.json: the arrival range does not follow epoch {k - 1}'s")
        if m.get("reward_epoch") != k:
            diffs.append(f"epoch {k}: manifest.json names epoch {m.get('reward_epoch')}")
        prev_bytes, prev = body, m


MANIFEST_FIELDS = {"manifest_sha256": "manifest_sha256", "params_sha256": "params_sha256",
                   "ruleset_version": "ruleset_version", "engine_version": "engine_version",
                   "input_event_count": "input_event_count", "input_events_sha256": "input_events_sha256"}


def check_against_manifests(con, manifests: dict[int, dict]) -> list[str]:
    """Each manifest against the epoch's published row (reward_epochs.parquet)."""
    diffs = []
    cols = ", ".join(MANIFEST_FIELDS.values())
    rows = {r[0]: r[1:] for r in con.execute(
        f"SELECT reward_epoch, input_arrival_seq, {cols} FROM reward_epochs").fetchall()}
    for k, m in manifests.items():
        row = rows.get(k)
        if row is None:
            diffs.append(f"epoch {k}: reward_epochs.parquet holds no row for epoch {k}")
            continue
        if (m.get("arrival_range") or {}).get("through") != row[0]:
            diffs.append(f"epoch {k}: manifest.json arrival range ends at {m['arrival_range'].get('through')},"
                         f" the epoch's input_arrival_seq is {row[0]}")
        for (key, _col), value in zip(MANIFEST_FIELDS.items(), row[1:]):
            if m.get(key) != value:
                diffs.append(f"epoch {k}: manifest.json {key} {m.get(key)!r}, reward_epochs.parquet {value!r}")
    return diffs


def check_arrival_ranges(root: Path, manifests: dict[int, dict]) -> list[str]:
    """Every input and rejection lies inside its epoch's arrival range."""
    diffs = []
    for name in ("inputs", "rejected_events"):
        spans = (pub.scan(root, name, epochs=list(manifests)).group_by("published_epoch")
                 .agg(pl.col("arrival_seq").min().alias("lo"), pl.col("arrival_seq").max().alias("hi"))
                 .collect())
        for k, lo, hi in spans.iter_rows():
            r = manifests[k]["arrival_range"]
            if lo is None or lo <= r["after"] or hi > r["through"]:
                diffs.append(f"epoch {k}: {name}.parquet holds arrivals {lo}..{hi} outside its range"
                             f" ({r['after']}, {r['through']}]")
    return diffs


def check_nodes(con, root: Path, manifest: dict) -> list[str]:
    """nodes.parquet of epoch n against the registry the writer derives from the loaded store."""
    n, r = manifest["reward_epoch"], manifest["arrival_range"]
    sql = dict(pub.file_queries(n, r["after"], r["through"]))["nodes"]
    derived = store.fetch_polars(con, sql)
    published = pl.read_parquet(pub.epoch_files(root, n)["nodes"])
    if derived.columns != published.columns or derived.height != published.height:
        return [f"nodes.parquet of epoch {n}: {published.height:,} rows, {derived.height:,} re-derived"]
    for col in derived.columns:
        a, b = published[col], derived[col].cast(published[col].dtype)
        bad = ~((a == b) | (a.is_null() & b.is_null())).fill_null(False)
        if bad.any():
            i = int(bad.arg_max())
            return [f"nodes.parquet of epoch {n}: {col} of node {published['node_id'][i]} is {a[i]!r},"
                    f" re-derived {b[i]!r}"]
    return []
