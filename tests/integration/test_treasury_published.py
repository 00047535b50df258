"""The treasury on published epochs, through its commands: validate, settle, status, reconcile,
the scheduler; tampering blocks an epoch; the store held by another process does not matter.

One simulated network (120 nodes × 8 h: epochs 0..7, nodes paid from epoch 5 on) is replayed and
published once per session; each test works on its own copy. The chain is the real in-process
LiteSVM with the SPL Token program, persisted in the treasury's file; balances are read back from
it, never assumed.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainkit import RpcShim
import store.db as store
from epochal.cli import main
from payouts import transactions as txb
from payouts.chain import LiteSVMChain, RpcChain
from payouts.treasury import SUPPLY_BASE_UNITS
from payouts.treasury_db import connect
from store.published import epoch_files, list_epochs, publish_pending

PAID_EPOCHS = (5, 6, 7)


@pytest.fixture(scope="session")
def published_network(tmp_path_factory) -> Path:
    """A store and its published folder: <dir>/s.duckdb, <dir>/s.duckdb.published."""
    d = tmp_path_factory.mktemp("treasury-net")
    events = d / "events"
    run_cli("simulate", "--nodes", "120", "--hours", "8", "--seed", "11", "--out", str(events))
    run_cli("replay", str(events), "--db", str(d / "s.duckdb"))
    con = store.connect(d / "s.duckdb")
    try:
        publish_pending(con, Path(str(d / "s.duckdb") + ".published"))
    finally:
        con.close()
    return d


def run_cli(*args: str, expect: int = 0) -> tuple[str, str]:
    """`epochal ARGS` in this process (it imports in seconds otherwise); (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    finally:
        sys.stdout, sys.stderr = old
    assert code == expect, f"exit {code} != {expect}\nstdout: {out.getvalue()[-3000:]}\nstderr: {err.getvalue()[-3000:]}"
    return out.getvalue(), err.getvalue()


def subprocess_cli(*args: str, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "epochal.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kw)


@pytest.fixture
def net(published_network, tmp_path) -> Path:
    """This test's own copy of the store and the published folder; returns the store's path."""
    shutil.copy(published_network / "s.duckdb", tmp_path / "s.duckdb")
    shutil.copytree(published_network / "s.duckdb.published", tmp_path / "s.duckdb.published")
    return tmp_path / "s.duckdb"


def published_rewards(db: Path) -> dict[int, pl.DataFrame]:
    root = Path(str(db) + ".published")
    return {e: pl.read_parquet(epoch_files(root, e)["epoch_rewards"]) for e in list_epochs(root)}


def chain_balances(db: Path) -> tuple[dict[str, int], int]:
    """Every rewarded wallet's token balance and the treasury's, from the chain in the treasury file."""
    path = Path(str(db) + ".treasury.duckdb")
    con = connect(path, read_only=True)
    try:
        chain = LiteSVMChain(con, read_only=True)
        meta = dict(con.execute("SELECT key, value FROM treasury_meta").fetchall())
        mint, authority = Pubkey.from_string(meta["mint"]), Pubkey.from_string(meta["authority"])
        wallets = sorted({w for df in published_rewards(db).values() for w in df["wallet"].to_list()})
        accs = chain.accounts([txb.token_account(Pubkey.from_string(w), mint) for w in wallets])
        got = {w: 0 if a is None else txb.token_balance(a.data) for w, a in zip(wallets, accs)}
        return got, txb.token_balance(chain.accounts([txb.token_account(authority, mint)])[0].data)
    finally:
        con.close()


def expected(db: Path, epochs) -> dict[str, int]:
    out: dict[str, int] = {}
    for e, df in published_rewards(db).items():
        for w, a in df.select("wallet", "amount_base_units").iter_rows():
            out.setdefault(w, 0)
            if e in epochs:
                out[w] += a
    return out


def test_every_published_epoch_settles_once_and_reconciles(net):
    root = Path(str(net) + ".published")
    assert all(sum(published_rewards(net)[e]["amount_base_units"]) > 0 for e in PAID_EPOCHS)
    for e in list_epochs(root):
        stdout, _ = run_cli("settle", "--epoch", str(e), "--db", str(net))
        assert f"settled epoch {e}" in stdout
    got, treasury = chain_balances(net)
    want = expected(net, set(list_epochs(root)))
    assert got == want  # every wallet holds the sum of its rewards over the epochs
    allocated = sum(int(df["amount_base_units"].sum()) for df in published_rewards(net).values())
    assert treasury == SUPPLY_BASE_UNITS - allocated  # the treasury lost that total and nothing else
    stdout, _ = run_cli("settle", "--epoch", "6", "--db", str(net))
    assert "already settled; nothing to do" in stdout
    stdout, _ = run_cli("treasury", "reconcile", "--db", str(net))
    assert "reconciled every epoch" in stdout
    stdout, _ = run_cli("treasury", "status", "--db", str(net))
    assert f"settled {len(list_epochs(root))}" in stdout
    con = connect(Path(str(net) + ".treasury.duckdb"), read_only=True)
    memos = [m for (m,) in con.execute("SELECT memo FROM settlements WHERE reward_epoch = 6").fetchall()]
    con.close()
    manifest = json.loads((root / "reward_epoch=6" / "manifest.json").read_text())["manifest_sha256"]
    assert memos and all(txb.parse_memo(m) == {"reward_epoch": 6, "batch": i, "manifest_sha256": manifest}
                         for i, m in enumerate(memos))


def test_epoch_validate_prints_every_expectation(net):
    stdout, _ = run_cli("epoch", "validate", "6", "--db", str(net))
    for name in ("files.sha256_equal", "manifest.hash_recomputed", "rewards.wallets_base58", "rewards.sum_is_emission",
                 "rewarded.eligible", "rewarded.weight_positive", "rewarded.pool_is_class", "pools.sum_is_pool"):
        assert name in stdout
    assert "passed all" in stdout


def test_a_dry_run_prints_the_batches_and_sends_nothing(net):
    stdout, _ = run_cli("settle", "--epoch", "6", "--db", str(net), "--dry-run")
    want = sum(expected(net, {6}).values())
    assert f"total {want:,} base units" in stdout and "nothing sent or recorded" in stdout
    assert not Path(str(net) + ".treasury.duckdb").exists()


def prevalidate(db: Path, epochs) -> None:
    """Validate in this process (great-expectations imported once per session) and record it, so
    that a command run in a subprocess reuses the recorded validation of the same bytes."""
    for e in epochs:
        run_cli("epoch", "validate", str(e), "--db", str(db))


def _rewrite_rewards(path: Path, change) -> None:
    df = pl.read_parquet(path)
    change(df).write_parquet(path)


def test_a_tampered_published_file_blocks_the_epoch_and_pays_nothing_of_it(net):
    root = Path(str(net) + ".published")
    path = epoch_files(root, 6)["epoch_rewards"]
    _rewrite_rewards(path, lambda df: df.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.col("amount_base_units") + 1_000_000)
        .otherwise(pl.col("amount_base_units")).alias("amount_base_units")))
    stdout, _ = run_cli("epoch", "validate", "6", "--db", str(net), expect=1)
    assert "FAIL" in stdout
    _, stderr = run_cli("settle", "--epoch", "6", "--db", str(net), expect=1)
    assert "blocked" in stderr and "files.sha256_equal" in stderr and "Traceback" not in stderr
    # the reason reads as figures (a ≠ b, what the sum should be), not as numpy's reprs
    assert "np.int64" not in stderr and " ≠ " in stderr and re.search(r"observed \d+, expected \d+\)", stderr)
    con = connect(Path(str(net) + ".treasury.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM settlements WHERE reward_epoch = 6").fetchall()[0][0] == 0
    failed = con.execute("SELECT failed FROM validations WHERE reward_epoch = 6 AND NOT success").fetchall()
    con.close()
    assert failed and "manifest.hash_recomputed" in failed[-1][0] and "rewards.sum_is_emission" in failed[-1][0]
    stdout, _ = run_cli("treasury", "status", "--db", str(net))
    assert "blocked" in stdout
    run_cli("settle", "--epoch", "7", "--db", str(net))  # the other epochs still settle
    got, _ = chain_balances(net)
    assert got == expected(net, {7})  # nothing of epoch 6 was paid


def test_a_store_row_tampered_before_publication_blocks_the_epoch(tmp_path, published_network):
    db = tmp_path / "s.duckdb"
    shutil.copy(published_network / "s.duckdb", db)
    con = duckdb.connect(str(db))
    wallet = str(Keypair().pubkey())  # someone else's wallet, with the amounts left alone
    con.execute("UPDATE epoch_rewards SET wallet = ? WHERE reward_epoch = 6 AND node_id = "
                "(SELECT min(node_id) FROM epoch_rewards WHERE reward_epoch = 6)", [wallet])
    con.close()
    con = store.connect(db)
    publish_pending(con, Path(str(db) + ".published"))
    con.close()
    _, stderr = run_cli("settle", "--epoch", "6", "--db", str(db), expect=1)
    assert "blocked" in stderr and "manifest.hash_recomputed" in stderr
    assert not any(w == wallet for w in chain_balances_or_empty(db))


def chain_balances_or_empty(db: Path) -> dict[str, int]:
    con = connect(Path(str(db) + ".treasury.duckdb"), read_only=True)
    try:
        return dict(con.execute("SELECT wallet, amount_base_units FROM settlement_transfers").fetchall())
    finally:
        con.close()


def test_settling_works_while_another_process_holds_the_store_for_writing(net):
    prevalidate(net, list_epochs(Path(str(net) + ".published")))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(net)!r})\n"
        "con.execute('BEGIN TRANSACTION'); con.execute('CREATE TABLE held (x INT)')\n"
        "print('holding', flush=True); time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException):  # the store is really held
            duckdb.connect(str(net), read_only=True)
        stdout, _ = run_cli("settle", "--epoch", "6", "--db", str(net))
        assert "settled epoch 6" in stdout
        # the scheduler leaves closing to the holder and settles what is published
        proc = subprocess_cli("treasury", "run", "--db", str(net), "--steps", "1", "--every", "0.5")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "epoch 7 settled" in proc.stderr
    finally:
        holder.kill()
        holder.wait()
    got, _ = chain_balances(net)
    assert got == expected(net, set(list_epochs(Path(str(net) + ".published"))))


def test_a_killed_settle_resumes_from_the_published_folder_without_paying_twice(net):
    prevalidate(net, [6])
    proc = subprocess_cli("settle", "--epoch", "6", "--db", str(net), env={"EPOCHAL_TREASURY_CRASH": "inside_ledger:1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    proc = subprocess_cli("settle", "--epoch", "6", "--db", str(net))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got, treasury = chain_balances(net)
    assert got == expected(net, {6})
    assert treasury == SUPPLY_BASE_UNITS - sum(expected(net, {6}).values())
    stdout, _ = run_cli("treasury", "reconcile", "--epoch", "6", "--db", str(net))
    assert "reconciled epoch 6" in stdout


def test_reconcile_finds_a_balance_that_differs(net):
    run_cli("settle", "--epoch", "6", "--db", str(net))
    path = Path(str(net) + ".treasury.duckdb")
    con = duckdb.connect(str(path))  # someone edits a recorded transfer after the fact
    con.execute("UPDATE settlement_transfers SET amount_base_units = amount_base_units + 1 WHERE reward_epoch = 6"
                " AND position = 0 AND batch = 0")
    wallet = con.execute("SELECT min(substr(credit_account, 8)) FROM treasury_ledger").fetchall()[0][0]
    con.execute("UPDATE treasury_ledger SET amount_base_units = amount_base_units - 1 WHERE credit_account = ?",
                ["wallet:" + wallet])
    con.close()
    _, stderr = run_cli("treasury", "reconcile", "--db", str(net), expect=1)
    assert "difference" in stderr and "epoch 6 batch 0" in stderr
    # each difference on one line of its own, however long (a person greps it, a script reads it)
    assert re.search(rf"^  - wallet {wallet}: ledger moves \d+ ≠ settled rewards \d+$", stderr, re.M), stderr


def test_a_keypair_others_can_read_is_refused_in_one_sentence(net, tmp_path):
    key = tmp_path / "id.json"
    key.write_text(json.dumps(list(bytes(Keypair()))))
    key.chmod(0o644)
    res = subprocess_cli("settle", "--epoch", "6", "--db", str(net), "--keypair", str(key))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "readable by group or others" in lines[0]
    assert key.read_text()[:20] not in res.stderr + res.stdout


def test_the_scheduler_is_one_instance_and_stops_gracefully_on_sigterm(net):
    prevalidate(net, list_epochs(Path(str(net) + ".published")))
    run = subprocess.Popen([sys.executable, "-m", "epochal.cli", "treasury", "run", "--db", str(net), "--every", "0.5"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        lines = []
        while time.monotonic() < deadline:
            line = run.stderr.readline()
            lines.append(line)
            if "epoch 7 settled" in line:
                break
        assert any("epoch 7 settled" in ln for ln in lines), "".join(lines)[-3000:]
        second = subprocess_cli("treasury", "run", "--db", str(net), "--steps", "1")
        assert second.returncode == 1 and "another treasury process" in second.stderr
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err[-3000:]
    assert "SIGTERM received" in err and "treasury stopped" in err
    got, _ = chain_balances(net)
    assert got == expected(net, set(list_epochs(Path(str(net) + ".published"))))


def test_the_scheduler_backs_off_when_the_cluster_does_not_answer(net, tmp_path):
    key = tmp_path / "id.json"
    key.write_text(json.dumps(list(bytes(Keypair()))))
    key.chmod(0o600)
    proc = subprocess_cli("treasury", "run", "--db", str(net), "--no-close", "--steps", "2", "--every", "0.2",
                          "--cluster", "http://127.0.0.1:9", "--keypair", str(key),
                          "--treasury", str(tmp_path / "remote.treasury.duckdb"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cluster error" in proc.stderr and "retrying in 2 s" in proc.stderr


def test_settle_over_rpc_goes_through_the_same_commands(net, tmp_path):
    key = tmp_path / "id.json"
    key.write_text(json.dumps(list(bytes(Keypair()))))
    key.chmod(0o600)
    with RpcShim() as shim:
        args = ["--db", str(net), "--cluster", shim.url, "--treasury", str(tmp_path / "rpc.duckdb")]
        stdout, _ = run_cli("settle", "--epoch", "6", *args, "--keypair", str(key))
        assert "settled epoch 6" in stdout and shim.url in stdout
        stdout, _ = run_cli("treasury", "reconcile", "--epoch", "6", *args)
        assert "reconciled epoch 6" in stdout
        con = connect(tmp_path / "rpc.duckdb", read_only=True)
        mint = Pubkey.from_string(con.execute("SELECT value FROM treasury_meta WHERE key = 'mint'").fetchall()[0][0])
        con.close()
        chain = RpcChain(shim.url)
        try:
            want = expected(net, {6})
            wallets = sorted(w for w, a in want.items() if a)
            accs = chain.accounts([txb.token_account(Pubkey.from_string(w), mint) for w in wallets])
            assert {w: txb.token_balance(a.data) for w, a in zip(wallets, accs)} == {w: want[w] for w in wallets}
        finally:
            chain.close()


def forge(root: Path, n: int, rewards: pl.DataFrame) -> None:
    """Write `rewards` as epoch n's reward file and make every hash agree with it (the manifest
    hash in the epoch row and manifest.json, each file's sha256): only the content checks can
    catch what was changed."""
    from payouts.manifest import compute_manifest_sha256
    from payouts.validation import sha256_file

    files = epoch_files(root, n)
    rewards.write_parquet(files["epoch_rewards"])
    digest = compute_manifest_sha256(rewards.select("reward_epoch", "node_id", "pool", "amount_base_units", "wallet").iter_rows())
    pl.read_parquet(files["reward_epochs"]).with_columns(pl.lit(digest).alias("manifest_sha256")).write_parquet(files["reward_epochs"])
    manifest_path = root / f"reward_epoch={n}" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["manifest_sha256"] = digest
    for f in manifest["files"]:
        f["sha256"] = sha256_file(root / f"reward_epoch={n}" / f["name"])
        if f["name"] == "epoch_rewards.parquet":
            f["rows"] = rewards.height
    manifest_path.write_text(json.dumps(manifest, indent=2))


HASH_CHECKS = {"files.sha256_equal", "files.rows_equal", "manifest.hash_recomputed", "manifest.hash_of_the_close"}


def test_a_forged_but_self_consistent_epoch_fails_on_what_the_rules_say(net):
    """Rewards moved to a node that was not eligible, the sums kept, every hash recomputed to
    match: the hashes pass, and the suite still names what breaks the rules."""
    from payouts.validation import validate_epoch

    root = Path(str(net) + ".published")
    files = epoch_files(root, 6)
    scores = pl.read_parquet(files["node_epoch_scores"])
    rewards = pl.read_parquet(files["epoch_rewards"])
    loser = scores.filter(~pl.col("eligible"))["node_id"][0]
    victim = rewards["node_id"][0]
    moved = rewards.filter(pl.col("node_id") == victim)
    forge(root, 6, pl.concat([rewards.filter(pl.col("node_id") != victim),
                              moved.with_columns(pl.lit(loser).alias("node_id"))]).sort("node_id"))
    v = validate_epoch(root, 6)
    failed = {c.name for c in v.failed}
    assert not v.success
    assert (HASH_CHECKS | {"rewards.sum_is_emission"}).isdisjoint(failed)
    assert "rewarded.eligible" in failed and "rewarded.weight_positive" in failed


def _first(col: str, value):
    return pl.when(pl.int_range(pl.len()) == 0).then(value).otherwise(pl.col(col)).alias(col)


FORGERIES = {  # the check that must name it → how the reward file is changed (every hash then made to agree)
    "rewards.unique_keys": lambda df: pl.concat([df, df.head(1)]),
    "rewards.amounts_non_negative": lambda df: df.with_columns(  # −x on one row, +2x on another: the sum kept
        pl.when(pl.int_range(pl.len()) == 0).then(-pl.col("amount_base_units"))
        .when(pl.int_range(pl.len()) == 1).then(pl.col("amount_base_units") + 2 * pl.col("amount_base_units").first())
        .otherwise(pl.col("amount_base_units")).alias("amount_base_units")),
    "rewards.amounts_integer": lambda df: df.with_columns(pl.col("amount_base_units").cast(pl.Float64)),
    "rewards.wallets_base58": lambda df: df.with_columns(_first("wallet", pl.lit("0OIl-not-a-wallet"))),
    "rewarded.pool_is_class": lambda df: df.with_columns(_first("pool", pl.when(pl.col("pool") == "enterprise")
                                                                .then(pl.lit("community")).otherwise(pl.lit("enterprise")))),
    "rewards.pools_known": lambda df: df.with_columns(_first("pool", pl.lit("friends"))),
}


@pytest.mark.parametrize("check", sorted(FORGERIES))
def test_a_forged_reward_file_with_every_hash_made_to_agree_is_named_by_its_content_check(net, check):
    from payouts.validation import validate_epoch

    root = Path(str(net) + ".published")
    forge(root, 6, FORGERIES[check](pl.read_parquet(epoch_files(root, 6)["epoch_rewards"])))
    v = validate_epoch(root, 6)
    failed = {c.name for c in v.failed}
    assert not v.success and v.rewards is None  # nothing of it can be paid
    assert check in failed, failed
    assert HASH_CHECKS.isdisjoint(failed), failed  # the hashes were made to agree: the content check caught it


def test_in_embedded_mode_a_step_publishes_what_the_store_closed_then_settles_it(net):
    """No other process holds the store: the scheduler's step closes and publishes first."""
    from epochal.treasury_app import TreasuryConfig, TreasuryRunner

    root = Path(str(net) + ".published")
    epochs = list_epochs(root)
    shutil.rmtree(root)  # closed in the store, not published (yet)
    stdout, _ = run_cli("treasury", "status", "--db", str(net))
    assert f"closed {len(epochs)}" in stdout
    runner = TreasuryRunner(TreasuryConfig.resolve(net), every_s=1)
    assert runner.step()
    assert list_epochs(root) == epochs
    stdout, _ = run_cli("treasury", "status", "--db", str(net))
    assert f"settled {len(epochs)}" in stdout
    got, _ = chain_balances(net)
    assert got == expected(net, set(epochs))


def test_reconcile_refuses_an_epoch_never_settled_and_another_cluster_in_one_sentence(net):
    run_cli("settle", "--epoch", "6", "--db", str(net))
    _, stderr = run_cli("treasury", "reconcile", "--epoch", "77", "--db", str(net), expect=1)
    assert "epoch 77 was never settled" in stderr and "Traceback" not in stderr
    # a treasury that paid on the in-process chain is not reconciled against another cluster's balances
    _, stderr = run_cli("treasury", "reconcile", "--db", str(net), "--cluster", "http://127.0.0.1:9", expect=1)
    assert "settles on litesvm, not http://127.0.0.1:9" in stderr and "Traceback" not in stderr
    stdout, _ = run_cli("treasury", "reconcile", "--epoch", "6", "--db", str(net))
    assert "reconciled epoch 6" in stdout


def test_the_signer_s_key_is_never_printed_or_logged(net, tmp_path):
    """Every command the treasury has, and the scheduler's log (validation included: great-
    expectations runs in that process), carry the signer's public key at most, never its secret;
    nor does the log carry great-expectations' own chatter."""
    signer = Keypair()
    key = tmp_path / "id.json"
    key.write_text(json.dumps(list(bytes(signer))))
    key.chmod(0o600)
    secret = bytes(signer)
    forms = [str(signer), base58_text(secret[:32]), key.read_text(), json.dumps(list(secret[:32]))[1:-1],
             secret.hex(), secret[:32].hex()]
    args = ["--db", str(net), "--keypair", str(key)]
    said = "".join(run_cli("settle", "--epoch", "6", *args, "--dry-run"))
    # a fresh treasury: the step sets the chain up (LiteSVM runs in the scheduler's thread), then validates
    proc = subprocess_cli("treasury", "run", *args, "--steps", "1", "--every", "0.2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epoch 7 validated: passed" in proc.stderr and "epoch 7 settled" in proc.stderr
    assert "ephemeral docs site" not in proc.stderr and "Warning" not in proc.stderr  # a line per step, no chatter
    assert proc.stderr.index("epoch 7 validated: passed") < proc.stderr.index("epoch 7: planned")  # the gate, then the pay
    said += proc.stdout + proc.stderr
    said += "".join(run_cli("settle", "--epoch", "6", *args))
    said += "".join(run_cli("treasury", "status", "--db", str(net)))
    said += "".join(run_cli("treasury", "reconcile", "--db", str(net)))
    said += "".join(run_cli("epoch", "validate", "6", "--db", str(net)))
    assert str(signer.pubkey()) in said  # the public key is said (it is the treasury's address)...
    for form in forms:  # ...and no form of the secret
        assert form not in said


def base58_text(raw: bytes) -> str:
    import base58

    return base58.b58encode(raw).decode()
