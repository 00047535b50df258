"""The validation gate: a great-expectations suite over one published epoch, before it is paid.

Every check reads the epoch's published files only (store/published.py), never the store, so it
runs while a stream worker holds the store. The expectations, each with the reason it exists:

files (one row per file listed in manifest.json, its sha256 recomputed from the bytes on disk):
  files.sha256_equal          each file's sha256 equals the manifest's (a changed byte anywhere)
  files.rows_equal            each file's row count equals the manifest's
manifest (one row):
  manifest.hash_recomputed    manifest_sha256 recomputed from epoch_rewards.parquet (ruleset §9,
                              payouts/manifest.py) equals manifest.json's
  manifest.hash_of_the_close  manifest.json's equals the close's own (reward_epochs.parquet)
  manifest.emission_by_rule   the epoch row's emission equals emission(e) (ruleset §6)
epoch_rewards:
  rewards.unique_keys         (reward_epoch, node_id) unique
  rewards.of_this_epoch       every row's reward_epoch is the folder's
  rewards.amounts_integer     amount_base_units is an integer column
  rewards.amounts_non_negative
  rewards.wallets_base58      every wallet is base58 of exactly 32 bytes (a Solana public key)
  rewards.pools_known         pool is enterprise or community
  rewards.sum_is_emission     Σ amounts + unallocated = emission (ruleset §7's invariant, again
                              before settlement)
rewarded nodes (epoch_rewards joined with node_epoch_scores):
  rewarded.scored             every rewarded node has a score row
  rewarded.eligible           every rewarded node is eligible
  rewarded.weight_positive    with weight > 0
  rewarded.pool_is_class      its pool is the class of its GPU model (Appendix A)
  rewarded.wallet_of_score    the wallet paid is the wallet scored
pools (one row per pool):
  pools.sum_is_pool           Σ amounts of the pool + its unallocated = the pool (ruleset §6)
node_epoch_scores / ledger_entries:
  scores.unique_keys          (reward_epoch, node_id) unique
  ledger.unique_keys          entry_id unique

A failing expectation blocks the epoch's settlement and is recorded with its detail.
great-expectations (1.x) runs with an ephemeral context over pandas frames, its progress bars
and analytics off. Importing it takes ~3 s, so it is imported only when a validation runs.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import base58
import polars as pl

from payouts.emission import compute_emission, compute_pools
from payouts.manifest import compute_manifest_sha256
from payouts.treasury import EpochRewards
from scoring.hardware import MODELS_BY_KEY, POOL_COMMUNITY, POOL_ENTERPRISE
from scoring.ruleset import RULESET_V1
from store.published import epoch_files, read_manifest

BASE58_RE = r"^[1-9A-HJ-NP-Za-km-z]{32,44}$"


@dataclass(frozen=True)
class Check:
    name: str
    success: bool
    detail: str


@dataclass(frozen=True)
class Validation:
    reward_epoch: int
    success: bool
    checks: tuple[Check, ...]
    files_sha256: str  # sha256 over "<name> <sha256>\n" of the files as they were read
    manifest_sha256: str | None
    rewards: EpochRewards | None  # the epoch as validated, when it passed

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.success]


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def files_digest(digests: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{k} {v}\n" for k, v in sorted(digests.items())).encode()).hexdigest()


def current_digests(root, n: int) -> tuple[dict, dict[str, str]]:
    """The epoch's manifest and each listed file's sha256 as it is on disk now (a missing file: "")."""
    manifest = read_manifest(root, n)
    out = {}
    for name, path in epoch_files(root, n).items():
        out[name] = sha256_file(path) if path.exists() else ""
    return manifest, out


def is_wallet(w) -> bool:
    try:
        return isinstance(w, str) and re.match(BASE58_RE, w) is not None and len(base58.b58decode(w)) == 32
    except ValueError:
        return False


def _read(path: Path, columns: list[str], digests: dict[str, str], name: str) -> pl.DataFrame:
    """A file's columns parsed from the very bytes whose sha256 is recorded (no read-after-check gap)."""
    raw = path.read_bytes()
    digests[name] = hashlib.sha256(raw).hexdigest()
    return pl.read_parquet(io.BytesIO(raw), columns=columns)


REWARD_COLUMNS = ["reward_epoch", "node_id", "pool", "amount_base_units", "wallet"]


def epoch_rewards_of(n: int, manifest_sha256: str, rewards: pl.DataFrame) -> EpochRewards:
    return EpochRewards(n, manifest_sha256, tuple(
        (node, wallet, int(amount)) for node, wallet, amount in rewards.select("node_id", "wallet", "amount_base_units").iter_rows()))


def read_validated_rewards(root, n: int, validated_files_sha256: str) -> EpochRewards | None:
    """The epoch's rewards, if its files are still byte for byte the ones a passing validation
    saw (recorded as `files_sha256`); None when anything changed since (validate again)."""
    manifest, digests = current_digests(root, n)
    rewards = _read(epoch_files(root, n)["epoch_rewards"], REWARD_COLUMNS, digests, "epoch_rewards")
    if files_digest(digests) != validated_files_sha256:
        return None
    return epoch_rewards_of(n, manifest["manifest_sha256"], rewards)


def _rows(path: Path) -> int:
    try:
        return pl.scan_parquet(path).select(pl.len()).collect().item()
    except (pl.exceptions.PolarsError, OSError):
        return -1


def validate_epoch(root, n: int) -> Validation:
    """Run the suite over published epoch n (LookupError when it is not published). A file that
    cannot be read is a failed check (bad input is data), never an exception."""
    manifest, digests = current_digests(root, n)
    try:
        return _validate(root, n, manifest, digests)
    except (pl.exceptions.PolarsError, OSError, ValueError, KeyError) as exc:
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        return Validation(n, False, (Check("files.readable", False, why),), files_digest(digests),
                          manifest.get("manifest_sha256"), None)


def _validate(root, n: int, manifest: dict, digests: dict[str, str]) -> Validation:
    paths = epoch_files(root, n)
    listed = {f["name"].removesuffix(".parquet"): f for f in manifest.get("files", [])}
    frames: dict[str, object] = {}
    problems: list[Check] = []

    files = pl.DataFrame({
        "name": list(listed),
        "manifest_sha256": [f.get("sha256") for f in listed.values()],
        "actual_sha256": [digests.get(k, "") for k in listed],
        "manifest_rows": [int(f.get("rows", -1)) for f in listed.values()],
        "actual_rows": [_rows(paths[k]) if digests.get(k) else -1 for k in listed],
    }, schema={"name": pl.String, "manifest_sha256": pl.String, "actual_sha256": pl.String,
               "manifest_rows": pl.Int64, "actual_rows": pl.Int64})
    frames["files"] = files
    required = ("epoch_rewards", "node_epoch_scores", "reward_epochs", "ledger_entries")
    missing = [k for k in required if not digests.get(k)]
    if missing:
        problems.append(Check("files.present", False, f"missing files: {', '.join(missing)}"))
        return _result(n, frames, problems, digests, manifest, None)

    rewards = _read(paths["epoch_rewards"], REWARD_COLUMNS, digests, "epoch_rewards")
    scores = _read(paths["node_epoch_scores"], ["reward_epoch", "node_id", "eligible", "weight", "gpu_model_key",
                                                "pool", "wallet"], digests, "node_epoch_scores")
    epoch_row = _read(paths["reward_epochs"], ["reward_epoch", "emission_base_units", "enterprise_pool",
                                               "community_pool", "unallocated_base_units", "enterprise_unallocated",
                                               "community_unallocated", "manifest_sha256"], digests, "reward_epochs")
    ledger = _read(paths["ledger_entries"], ["entry_id"], digests, "ledger_entries")
    # the file checks compare the bytes parsed here (a file changed meanwhile fails them)
    frames["files"] = files.with_columns(pl.col("name").replace_strict(digests, default="").alias("actual_sha256"))
    if epoch_row.height != 1:
        problems.append(Check("manifest.epoch_row", False, f"reward_epochs.parquet holds {epoch_row.height} rows, not 1"))
        return _result(n, frames, problems, digests, manifest, None)
    ep = epoch_row.row(0, named=True)
    emission = compute_emission(n, RULESET_V1)
    enterprise_pool, community_pool = compute_pools(emission, RULESET_V1)

    recomputed = compute_manifest_sha256(rewards.select("reward_epoch", "node_id", "pool", "amount_base_units",
                                                        "wallet").iter_rows())
    frames["manifest"] = pl.DataFrame({
        "manifest_json": [manifest.get("manifest_sha256")], "recomputed": [recomputed],
        "of_the_close": [ep["manifest_sha256"]], "emission": [ep["emission_base_units"]], "emission_rule": [emission]})
    frames["rewards"] = rewards.with_columns(
        pl.col("wallet").map_elements(is_wallet, return_dtype=pl.Boolean).fill_null(False).alias("wallet_ok"))
    joined = rewards.join(scores.rename({"pool": "score_pool", "wallet": "score_wallet", "reward_epoch": "score_epoch"}),
                          on="node_id", how="left")
    classes = {k: m.gpu_class for k, m in MODELS_BY_KEY.items()}
    frames["rewarded"] = joined.with_columns(
        pl.col("score_epoch").is_not_null().alias("scored"),
        pl.col("eligible").fill_null(False),
        pl.col("weight").fill_null(0),
        (pl.col("gpu_model_key").replace_strict(classes, default=None, return_dtype=pl.String) == pl.col("pool"))
        .fill_null(False).alias("pool_is_class"),
        (pl.col("wallet") == pl.col("score_wallet")).fill_null(False).alias("wallet_of_score"))
    by_pool = {p: 0 for p in (POOL_ENTERPRISE, POOL_COMMUNITY)}
    for p, a in rewards.group_by("pool").agg(pl.col("amount_base_units").sum()).iter_rows():
        by_pool[p] = int(a)
    frames["pools"] = pl.DataFrame({
        "pool": [POOL_ENTERPRISE, POOL_COMMUNITY],
        "allocated_plus_unallocated": [by_pool[POOL_ENTERPRISE] + int(ep["enterprise_unallocated"]),
                                       by_pool[POOL_COMMUNITY] + int(ep["community_unallocated"])],
        "pool_by_rule": [enterprise_pool, community_pool]})
    frames["scores"] = scores.select("reward_epoch", "node_id")
    frames["ledger"] = ledger
    expected_sum = emission - int(ep["unallocated_base_units"])
    passed = rewards if rewards.schema["amount_base_units"].is_integer() else None
    return _result(n, frames, problems, digests, manifest, (expected_sum, passed))


def _suites(gx, n: int, expected_sum: int):
    """frame name → the expectations over it, each with its check name."""
    E = gx.expectations
    return {
        "files": [
            ("files.sha256_equal", E.ExpectColumnPairValuesToBeEqual(column_A="manifest_sha256", column_B="actual_sha256")),
            ("files.rows_equal", E.ExpectColumnPairValuesToBeEqual(column_A="manifest_rows", column_B="actual_rows")),
        ],
        "manifest": [
            ("manifest.hash_recomputed", E.ExpectColumnPairValuesToBeEqual(column_A="manifest_json", column_B="recomputed")),
            ("manifest.hash_of_the_close", E.ExpectColumnPairValuesToBeEqual(column_A="manifest_json", column_B="of_the_close")),
            ("manifest.emission_by_rule", E.ExpectColumnPairValuesToBeEqual(column_A="emission", column_B="emission_rule")),
        ],
        "rewards": [
            ("rewards.unique_keys", E.ExpectCompoundColumnsToBeUnique(column_list=["reward_epoch", "node_id"])),
            ("rewards.of_this_epoch", E.ExpectColumnValuesToBeInSet(column="reward_epoch", value_set=[n])),
            ("rewards.amounts_integer", E.ExpectColumnValuesToBeInTypeList(
                column="amount_base_units", type_list=["int64", "Int64", "int32", "Int32", "uint64", "UInt64"])),
            ("rewards.amounts_non_negative", E.ExpectColumnValuesToBeBetween(column="amount_base_units", min_value=0)),
            ("rewards.wallets_base58", E.ExpectColumnValuesToBeInSet(column="wallet_ok", value_set=[True])),
            ("rewards.pools_known", E.ExpectColumnValuesToBeInSet(column="pool", value_set=[POOL_ENTERPRISE, POOL_COMMUNITY])),
            ("rewards.sum_is_emission", E.ExpectColumnSumToBeBetween(column="amount_base_units", min_value=expected_sum,
                                                                     max_value=expected_sum)),
        ],
        "rewarded": [
            ("rewarded.scored", E.ExpectColumnValuesToBeInSet(column="scored", value_set=[True])),
            ("rewarded.eligible", E.ExpectColumnValuesToBeInSet(column="eligible", value_set=[True])),
            ("rewarded.weight_positive", E.ExpectColumnValuesToBeBetween(column="weight", min_value=1)),
            ("rewarded.pool_is_class", E.ExpectColumnValuesToBeInSet(column="pool_is_class", value_set=[True])),
            ("rewarded.wallet_of_score", E.ExpectColumnValuesToBeInSet(column="wallet_of_score", value_set=[True])),
        ],
        "pools": [
            ("pools.sum_is_pool", E.ExpectColumnPairValuesToBeEqual(column_A="allocated_plus_unallocated",
                                                                    column_B="pool_by_rule")),
        ],
        "scores": [("scores.unique_keys", E.ExpectCompoundColumnsToBeUnique(column_list=["reward_epoch", "node_id"]))],
        "ledger": [("ledger.unique_keys", E.ExpectColumnValuesToBeUnique(column="entry_id"))],
    }


def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    with warnings.catch_warnings():
        # imported off the main thread (the scheduler's step), scipy (imported by great_expectations)
        # warns "invalid value encountered in ldexp" on stderr, computing a float128 constant that no
        # check here uses: noise in the treasury's log
        warnings.filterwarnings("ignore", "invalid value encountered in ldexp", RuntimeWarning)
        # great_expectations is imported here, not at the top: its import takes ~3 s and only a
        # validation needs it (settle reuses a recorded validation of the same bytes).
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

    # its module sets its own logger to INFO: every context would log "Created temporary directory
    # ... for ephemeral docs site" into the treasury's log, a line per validation that says nothing
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, ctx


def _result(n, frames, problems, digests, manifest, sums) -> Validation:
    checks = list(problems)
    if sums is not None:
        expected_sum, _ = sums
        gx, ctx = _context()
        source = ctx.data_sources.add_pandas(f"epoch_{n}")
        for frame_name, expectations in _suites(gx, n, expected_sum).items():
            df = frames[frame_name].to_pandas()
            batch = (source.add_dataframe_asset(frame_name).add_batch_definition_whole_dataframe("all")
                     .get_batch(batch_parameters={"dataframe": df}))
            suite = gx.ExpectationSuite(name=f"epoch_{n}_{frame_name}")
            for check_name, exp in expectations:
                exp.meta = {"check": check_name}
                suite.add_expectation(exp)
            outcome = batch.validate(suite)
            # results need not come in the suite's order: each is matched by the name it carries
            got = {res.expectation_config.meta["check"]: res for res in outcome.results}
            for check_name, _ in expectations:
                res = got[check_name]
                checks.append(Check(check_name, bool(res.success), _detail(res)))
    elif "files" in frames:  # the files alone could be checked
        f = frames["files"]
        bad = f.filter(pl.col("manifest_sha256") != pl.col("actual_sha256"))["name"].to_list()
        checks.append(Check("files.sha256_equal", not bad, f"differ: {', '.join(bad)}" if bad else "all equal"))
    success = bool(checks) and all(c.success for c in checks)
    rewards = None
    if success:
        rewards = epoch_rewards_of(n, manifest["manifest_sha256"], sums[1])
    return Validation(n, success, tuple(checks), files_digest(digests), manifest.get("manifest_sha256"), rewards)


def _plain(v) -> str:
    """A value as a person reads it: numpy scalars as numbers, a long hash cut, a pair as a ≠ b."""
    if isinstance(v, (tuple, list)):
        return " ≠ ".join(_plain(x) for x in v)
    if hasattr(v, "item"):  # numpy scalar
        v = v.item()
    if isinstance(v, float) and v.is_integer():  # great-expectations keeps a bound as a float
        v = int(v)
    text = str(v)
    return text[:16] + "…" if isinstance(v, str) and len(text) > 20 else text


def _detail(res) -> str:
    r = res.result or {}
    if "observed_value" in r and r["observed_value"] is not None:
        kw = res.expectation_config.kwargs if res.expectation_config is not None else {}
        want = kw.get("min_value")
        if not res.success and want is not None and want == kw.get("max_value"):
            return f"observed {_plain(r['observed_value'])}, expected {_plain(want)}"
        return f"observed {_plain(r['observed_value'])}"
    count = r.get("unexpected_count")
    if count:
        sample = "; ".join(_plain(v) for v in (r.get("partial_unexpected_list") or [])[:3])
        return f"{count} unexpected ({sample})"
    if res.exception_info and res.exception_info.get("raised_exception"):
        return "error: " + str(res.exception_info.get("exception_message"))[:200]
    return "ok" if res.success else "failed"
