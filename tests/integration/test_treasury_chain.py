"""The treasury on a real chain: LiteSVM with the real SPL Token, ATA, Memo and lookup-table
programs, persisted in the treasury's file; and the RPC transport over JSON-RPC to LiteSVM
(tests/chainkit.py). No mock of the chain: balances are read back from it.

Epochs here are plans made from lists (EpochRewards); the published folder's path is tested in
test_treasury_published.py.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainkit import RpcShim
from payouts import transactions as txb
from payouts.chain import LiteSVMChain, RpcChain, TransactionRejected
from payouts.treasury import (CRASH_POINTS, SUPPLY_BASE_UNITS, EpochRewards, SettlementStopped, Treasury)
from payouts.treasury_db import connect

MANIFEST = "5e" * 32


class SimulatedCrash(BaseException):
    """Raised by a crash hook: the 'process' dies there (nothing after it runs or commits)."""


def crash_at(point: str, n: int = 1):
    hits = {"n": 0}

    def hook(p: str) -> None:
        if p == point:
            hits["n"] += 1
            if hits["n"] >= n:
                raise SimulatedCrash(point)
    return hook


def make_epochs(seed: int, wallets: int = 110, epochs: int = 2) -> list[EpochRewards]:
    """Epochs paying `wallets` wallets (one of them owning two nodes), amounts varying by epoch."""
    rng = random.Random(seed)
    ws = [str(Keypair().pubkey()) for _ in range(wallets)]
    out = []
    for e in range(epochs):
        rows = [(f"node-{i:04d}", w, rng.randint(1, 10**10)) for i, w in enumerate(ws)]
        rows.append(("node-extra", ws[0], rng.randint(1, 10**6)))  # a wallet with two nodes is paid once, their sum
        out.append(EpochRewards(10 + e, MANIFEST, tuple(rows)))
    return out


class Run:
    """One 'process' of the treasury: the file opened, the chain loaded from it."""

    def __init__(self, path: Path, signer: Keypair, crash=None):
        self.con = connect(path)
        self.chain = LiteSVMChain(self.con)
        self.treasury = Treasury(self.con, self.chain, signer, crash=crash or (lambda p: None))

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> bool:
        self.con.close()  # an open DuckDB transaction is rolled back, as a killed process's would be
        return False


def balances(path: Path, epochs: list[EpochRewards]) -> tuple[dict[str, int], int]:
    """Every wallet's token balance and the treasury's, read from the chain as the file holds it."""
    con = connect(path, read_only=True)
    try:
        chain = LiteSVMChain(con, read_only=True)
        mint = Pubkey.from_string(con.execute("SELECT value FROM treasury_meta WHERE key = 'mint'").fetchall()[0][0])
        authority = Pubkey.from_string(con.execute("SELECT value FROM treasury_meta WHERE key = 'authority'").fetchall()[0][0])
        wallets = sorted({w for ep in epochs for _, w, _ in ep.rewards})
        accs = chain.accounts([txb.token_account(Pubkey.from_string(w), mint) for w in wallets])
        got = {w: (txb.token_balance(a.data) if a is not None else 0) for w, a in zip(wallets, accs)}
        treasury = txb.token_balance(chain.accounts([txb.token_account(authority, mint)])[0].data)
        return got, treasury
    finally:
        con.close()


def entitled(epochs: list[EpochRewards]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ep in epochs:
        for w, a in ep.entitlements().items():
            out[w] = out.get(w, 0) + a
    return out


def assert_paid_exactly(path: Path, epochs: list[EpochRewards]) -> None:
    got, treasury = balances(path, epochs)
    assert got == entitled(epochs)
    assert treasury == SUPPLY_BASE_UNITS - sum(ep.allocated_base_units for ep in epochs)
    con = connect(path, read_only=True)
    try:
        # one ledger move per (epoch, wallet), every batch confirmed, nothing else sent twice
        assert con.execute("SELECT count(*), count(DISTINCT entry_id) FROM treasury_ledger").fetchall()[0] == \
            (sum(len(ep.entitlements()) for ep in epochs),) * 2
        assert con.execute("SELECT count(*) FROM settlements WHERE status <> 'confirmed'").fetchall()[0][0] == 0
    finally:
        con.close()


@pytest.fixture
def signer() -> Keypair:
    return Keypair()


def test_settling_pays_every_wallet_its_rewards_and_the_treasury_loses_exactly_the_total(tmp_path, signer):
    path = tmp_path / "t.treasury.duckdb"
    epochs = make_epochs(1)
    sol = {}
    for ep in epochs:  # each epoch in its own run: the second sees the first's chain from the file
        with Run(path, signer) as run:
            before = run.chain.lamports(signer.pubkey())
            report = run.treasury.settle(ep)
            sol[ep.reward_epoch] = before - run.chain.lamports(signer.pubkey())
        assert report.recipients == len(ep.entitlements()) and report.batches == 3
        assert all(n <= txb.MAX_TX_BYTES for n in report.tx_bytes) and max(report.batch_sizes) >= 50
    assert_paid_exactly(path, epochs)
    con = connect(path, read_only=True)
    rent = con.execute("SELECT sum(rent_lamports), count(*) FROM recipient_accounts").fetchall()[0]
    con.close()
    assert rent[1] == 110 and rent[0] == 110 * 2_039_280  # the rent of a token account, per new recipient
    assert sol[11] == 3 * 5000  # a second epoch to the same wallets: only the three batches' fees


def test_settle_on_a_settled_epoch_does_nothing(tmp_path, signer):
    path = tmp_path / "t.treasury.duckdb"
    ep = make_epochs(2, wallets=5, epochs=1)[0]
    with Run(path, signer) as run:
        run.treasury.settle(ep)
    with Run(path, signer) as run:
        sent = run.con.execute("SELECT count(*) FROM litesvm_transactions").fetchall()[0][0]
        report = run.treasury.settle(ep)
        assert report.already_settled
        assert run.con.execute("SELECT count(*) FROM litesvm_transactions").fetchall()[0][0] == sent
    assert_paid_exactly(path, [ep])


@pytest.mark.parametrize("point,n,crashed_epoch", [
    ("after_operation", 3, 0),   # the first epoch opens the recipients' accounts: one lands, unrecorded
    ("after_plan", 1, 1),
    ("after_record", 2, 1),      # batch 1 signed and recorded, never sent
    ("after_send", 2, 1),        # batch 1 landed, not recorded
    ("before_status", 2, 1),
    ("inside_ledger", 2, 1),     # half of batch 1's ledger written, no COMMIT
    ("between_batches", 1, 1),
])
def test_a_crash_at_any_step_then_a_rerun_pays_everyone_once(tmp_path, signer, point, n, crashed_epoch):
    assert point in CRASH_POINTS
    path = tmp_path / "t.treasury.duckdb"
    epochs = make_epochs(3, wallets=60)  # two batches an epoch
    for i, ep in enumerate(epochs):
        if i == crashed_epoch:
            with pytest.raises(SimulatedCrash):
                with Run(path, signer, crash=crash_at(point, n)) as run:
                    run.treasury.settle(ep)
        with Run(path, signer) as run:
            report = run.treasury.settle(ep)
            assert not report.already_settled
    assert_paid_exactly(path, epochs)
    with Run(path, signer) as run:  # and a third run finds nothing to do
        assert run.treasury.settle(epochs[1]).already_settled


def test_a_batch_recorded_but_never_sent_is_re_signed_once_its_blockhash_expired(tmp_path, signer):
    path = tmp_path / "t.treasury.duckdb"
    ep = make_epochs(4, wallets=60, epochs=1)[0]
    with pytest.raises(SimulatedCrash):
        with Run(path, signer, crash=crash_at("after_record", 1)) as run:
            run.treasury.settle(ep)
    with Run(path, signer) as run:  # a new run: the chain's blockhash moved on, the signature never landed
        run.treasury.settle(ep)
        rows = run.con.execute("SELECT batch, attempt, outcome FROM settlement_transactions ORDER BY batch, attempt").fetchall()
    assert rows[:2] == [(0, 1, "expired"), (0, 2, "confirmed")]
    assert_paid_exactly(path, [ep])


def test_a_killed_process_resumes_without_paying_twice(tmp_path, signer):
    """A real SIGKILL (EPOCHAL_TREASURY_CRASH) right after a batch landed, before its status."""
    path = tmp_path / "t.treasury.duckdb"
    key = tmp_path / "signer.json"
    key.write_text(str(list(bytes(signer))))
    key.chmod(0o600)
    ep = make_epochs(5, wallets=60, epochs=1)[0]
    rows = tmp_path / "epoch.json"
    rows.write_text(repr(list(ep.rewards)))
    script = textwrap.dedent(f"""
        import ast
        from pathlib import Path
        from payouts.chain import LiteSVMChain
        from payouts.keys import load_keypair
        from payouts.treasury import EpochRewards, Treasury
        from payouts.treasury_db import connect
        con = connect(Path({str(path)!r}))
        t = Treasury(con, LiteSVMChain(con), load_keypair(Path({str(key)!r})))
        t.settle(EpochRewards({ep.reward_epoch}, {MANIFEST!r}, tuple(ast.literal_eval(Path({str(rows)!r}).read_text()))))
        con.close()
    """)
    env = dict(os.environ, EPOCHAL_TREASURY_CRASH="after_send:2")
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    env.pop("EPOCHAL_TREASURY_CRASH")
    again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_paid_exactly(path, [ep])


def test_a_transfer_the_chain_refuses_stops_the_epoch_and_moves_nothing(tmp_path, signer):
    path = tmp_path / "t.treasury.duckdb"
    w = str(Keypair().pubkey())
    too_much = EpochRewards(7, MANIFEST, (("n1", w, SUPPLY_BASE_UNITS + 1),))
    for _ in range(2):  # a failed batch is signed anew once per run, never in a loop
        with Run(path, signer) as run:
            with pytest.raises(SettlementStopped):
                run.treasury.settle(too_much)
    con = connect(path, read_only=True)
    assert con.execute("SELECT status FROM treasury_epochs").fetchall() == [("settling",)]
    assert con.execute("SELECT count(*) FROM treasury_ledger").fetchall()[0][0] == 0
    assert con.execute("SELECT count(*) FROM settlement_transactions").fetchall()[0][0] == 2
    con.close()
    got, treasury = balances(path, [too_much])
    assert got == {w: 0} and treasury == SUPPLY_BASE_UNITS


def test_the_chain_never_executes_a_signature_it_has_seen_even_after_a_reload(tmp_path, signer):
    path = tmp_path / "t.treasury.duckdb"
    ep = make_epochs(6, wallets=3, epochs=1)[0]
    with Run(path, signer) as run:
        run.treasury.settle(ep)
        sig = run.con.execute("SELECT signature FROM settlements").fetchall()[0][0]
    with Run(path, signer) as run:
        from solders.signature import Signature
        from solders.transaction import VersionedTransaction

        raw = run.chain.transaction_bytes(Signature.from_string(sig))
        with pytest.raises(TransactionRejected, match="AlreadyProcessed"):
            run.chain.send(VersionedTransaction.from_bytes(raw))
    assert_paid_exactly(path, [ep])


# ----------------------------------------------------------------------------- the RPC transport
def test_the_rpc_transport_settles_through_the_same_code(tmp_path, signer):
    epochs = make_epochs(8, wallets=60, epochs=2)
    with RpcShim() as shim:
        chain = RpcChain(shim.url)
        con = connect(tmp_path / "rpc.treasury.duckdb")
        try:
            t = Treasury(con, chain, signer)
            for ep in epochs:
                t.settle(ep)
            assert t.settle(epochs[0]).already_settled
            mint = Pubkey.from_string(con.execute("SELECT value FROM treasury_meta WHERE key = 'mint'").fetchall()[0][0])
            wallets = sorted(entitled(epochs))
            accs = chain.accounts([txb.token_account(Pubkey.from_string(w), mint) for w in wallets])
            assert {w: txb.token_balance(a.data) for w, a in zip(wallets, accs)} == entitled(epochs)
        finally:
            con.close()
            chain.close()
    assert {"sendTransaction", "getSignatureStatuses", "getLatestBlockhash", "getMultipleAccounts"} <= set(shim.calls)


def test_over_rpc_a_dropped_batch_is_re_signed_only_after_its_blockhash_expired(tmp_path, signer):
    ep = make_epochs(9, wallets=60, epochs=1)[0]
    with RpcShim() as shim:
        chain = RpcChain(shim.url)
        chain.POLL_S = 0.01
        con = connect(tmp_path / "rpc.treasury.duckdb")
        try:
            t = Treasury(con, chain, signer)
            shim.drop_batches(1)  # the first batch's transaction is accepted and never lands
            t.settle(ep)
            rows = con.execute("SELECT batch, attempt, outcome FROM settlement_transactions ORDER BY batch, attempt").fetchall()
            assert rows == [(0, 1, "expired"), (0, 2, "confirmed"), (1, 1, "confirmed")]
            assert "getBlockHeight" in shim.calls
            got = chain.accounts([txb.token_account(Pubkey.from_string(w), t.accounts.mint) for w in sorted(ep.entitlements())])
            assert [txb.token_balance(a.data) for a in got] == [ep.entitlements()[w] for w in sorted(ep.entitlements())]
        finally:
            con.close()
            chain.close()


def test_over_rpc_a_recorded_batch_whose_blockhash_is_valid_is_sent_as_recorded(tmp_path, signer):
    """Recorded, then the process died before sending: the same signed bytes go out (no new signature)."""
    ep = make_epochs(10, wallets=20, epochs=1)[0]
    with RpcShim() as shim:
        path = tmp_path / "rpc.treasury.duckdb"
        for crash in (crash_at("after_record", 1), None):
            chain = RpcChain(shim.url)
            con = connect(path)
            try:
                t = Treasury(con, chain, signer, crash=crash or (lambda p: None))
                if crash:
                    with pytest.raises(SimulatedCrash):
                        t.settle(ep)
                else:
                    t.settle(ep)
            finally:
                con.close()
                chain.close()
        con = connect(path, read_only=True)
        assert con.execute("SELECT attempt, outcome FROM settlement_transactions").fetchall() == [(1, "confirmed")]
        con.close()
