"""Benchmark of settlement: 10,000 recipients (quick: 500) paid on the in-process LiteSVM chain.

Subject: `payouts.treasury.Treasury` on a fresh treasury file, everything real (LiteSVM with the
SPL Token, ATA, Memo and lookup-table programs; the chain persisted in the file after every
transaction; every batch recorded before it is sent, confirmed with its ledger after):
1. first epoch: open a token account for each new recipient (the treasury pays the rent), put
   each account in an address lookup table, then plan, record, send and confirm the batches;
2. steady state: a second epoch paying the same recipients (accounts and tables exist).
Figures: time of each phase, transfers per transaction (all full batches; the last one carries
the remainder), the largest transaction against the 1,232-byte limit, transactions sent, and
lamports spent per recipient (the treasury's SOL balance before − after, split into token
account rent, lookup-table rent and fees).

Baselines in the same run, over the very batches the subject recorded: (a) building and signing
them again without sending; (b) a bare LiteSVM loop: the same transfers (re-signed with the
current blockhash) sent to a LiteSVM holding the same accounts, with no persistence and no
bookkeeping. subject / (b) is what the treasury's exactly-once machinery costs over the runtime.

Usage: python bench/bench_settle.py [--recipients 10000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, Timer, log  # noqa: E402

FULL, QUICK = 10_000, 500
MANIFEST = "ab" * 32


def _batches(con, e: int):
    return [(b, [(w, a, int(x)) for w, a, x in con.execute(
        "SELECT wallet, token_account, amount_base_units FROM settlement_transfers WHERE reward_epoch = ? AND batch = ?"
        " ORDER BY position", [e, b]).fetchall()])
        for (b,) in con.execute("SELECT batch FROM settlements WHERE reward_epoch = ? ORDER BY batch", [e]).fetchall()]


def run_settle(recipients: int, workdir: Path) -> dict:
    from solders.keypair import Keypair
    from solders.pubkey import Pubkey

    from payouts import transactions as txb
    from payouts.chain import LiteSVMChain
    from payouts.treasury import EpochRewards, Treasury
    from payouts.treasury_db import connect

    rng = random.Random(20261207)
    signer = Keypair()
    wallets = [str(Keypair().pubkey()) for _ in range(recipients)]
    epochs = [EpochRewards(e, MANIFEST, tuple((f"node-{i:06d}", w, rng.randint(1, 10**10)) for i, w in enumerate(wallets)))
              for e in (100, 101)]
    path = workdir / "bench.treasury.duckdb"
    con = connect(path)
    chain = LiteSVMChain(con)
    t = Treasury(con, chain, signer)
    t.setup()
    out: dict = {"recipients": recipients}
    pk = signer.pubkey()
    # --- first epoch, phase by phase (settle() would do the same steps in this order)
    e0 = epochs[0]
    sol0 = chain.lamports(pk)
    tx0 = con.execute("SELECT count(*) FROM litesvm_transactions").fetchall()[0][0]
    with Timer() as t_acc:
        created, rent = t.open_accounts(sorted(e0.entitlements()), e0.reward_epoch)
    atas = [txb.token_account(Pubkey.from_string(w), t.accounts.mint) for w in sorted(e0.entitlements())]
    with Timer() as t_tab:
        t.index_accounts(atas, e0.reward_epoch)
    with Timer() as t_pay:
        rep = t.settle(e0)
    sol1 = chain.lamports(pk)
    tables = [a for (a,) in con.execute("SELECT address FROM lookup_tables").fetchall()]
    table_rent = sum(acc.lamports for acc in chain.accounts([Pubkey.from_string(a) for a in tables]))
    fees1 = con.execute("SELECT coalesce(sum(fee_lamports), 0), count(*) FROM litesvm_transactions").fetchall()[0]
    out["first"] = {
        "accounts_s": t_acc.s, "tables_s": t_tab.s, "batches_s": t_pay.s, "total_s": t_acc.s + t_tab.s + t_pay.s,
        "accounts_created": created, "rent_lamports": rent, "tables": len(tables), "table_rent_lamports": table_rent,
        "fee_lamports": int(fees1[0]), "transactions": int(fees1[1]) - tx0, "batches": rep.batches,
        "batch_sizes": rep.batch_sizes, "tx_bytes": rep.tx_bytes, "lamports_spent": sol0 - sol1,
    }
    log(f"first epoch: {recipients:,} recipients in {out['first']['total_s']:.1f} s "
        f"(accounts {t_acc.s:.1f} s, tables {t_tab.s:.1f} s, batches {t_pay.s:.1f} s)")
    # --- steady state: the same recipients again
    e1 = epochs[1]
    with Timer() as t_pay2:
        rep2 = t.settle(e1)
    sol2 = chain.lamports(pk)
    fees2 = con.execute("SELECT coalesce(sum(fee_lamports), 0), count(*) FROM litesvm_transactions").fetchall()[0]
    out["steady"] = {"total_s": t_pay2.s, "batches": rep2.batches, "batch_sizes": rep2.batch_sizes,
                     "tx_bytes": rep2.tx_bytes, "lamports_spent": sol1 - sol2,
                     "fee_lamports": int(fees2[0]) - int(fees1[0]), "transactions": int(fees2[1]) - int(fees1[1])}
    log(f"steady state: {t_pay2.s:.1f} s for {rep2.batches} batches")
    # --- baselines over the recorded batches of the steady-state epoch
    directory = t.directory()
    batches = _batches(con, e1.reward_epoch)
    blockhash, _ = chain.latest_blockhash()
    with Timer() as t_build:
        built = [txb.build_transfer_batch(signer, t.accounts, directory, [(Pubkey.from_string(a), x) for _, a, x in rows],
                                          txb.memo_text(e1.reward_epoch, b, MANIFEST), blockhash)
                 for b, rows in batches]
    bare = LiteSVMChain(con, read_only=True)  # the same accounts, loaded; then sent to with nothing recorded
    bare.read_only = False
    bare.persist = False
    bare.expire_blockhash()
    blockhash, _ = bare.latest_blockhash()
    resigned = [txb.build_transfer_batch(signer, t.accounts, directory, [(Pubkey.from_string(a), x) for _, a, x in rows],
                                         txb.memo_text(e1.reward_epoch, b, MANIFEST), blockhash) for b, rows in batches]
    with Timer() as t_bare:
        for tx in resigned:
            res = bare.svm.send_transaction(tx)
            assert not hasattr(res, "err"), res
    out["baseline"] = {"build_sign_s": t_build.s, "bare_litesvm_s": t_bare.s, "transactions": len(built)}
    con.close()
    return out


def run(quick: bool, workdir: Path | None = None) -> list[Row]:
    n = QUICK if quick else FULL
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="epochal-bench-settle-")) if own else workdir
    try:
        r = run_settle(n, workdir)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    f, s, b = r["first"], r["steady"], r["baseline"]
    full = f["batch_sizes"][:-1] or f["batch_sizes"]
    mean = sum(f["batch_sizes"]) / len(f["batch_sizes"])
    rows = [
        Row(benchmark="settlement", metric=f"settle {n:,} recipients, first epoch", value=f["total_s"], unit="s",
            baseline=b["bare_litesvm_s"], baseline_label="bare LiteSVM, same transfers",
            ratio=f["batches_s"] / b["bare_litesvm_s"],
            note=(f"accounts {f['accounts_s']:.1f} s ({f['accounts_created']:,} opened), tables {f['tables_s']:.1f} s "
                  f"({f['tables']}), batches {f['batches_s']:.1f} s; ratio = batches / bare; "
                  f"build+sign alone {b['build_sign_s']:.2f} s"), extra=r),
        Row(benchmark="settlement", metric=f"settle {n:,} recipients, steady state", value=s["total_s"], unit="s",
            baseline=b["bare_litesvm_s"], baseline_label="bare LiteSVM, same transfers",
            ratio=s["total_s"] / b["bare_litesvm_s"], note=f"{s['batches']} batches; build+sign alone {b['build_sign_s']:.2f} s"),
        Row(benchmark="settlement", metric="transfers per transaction (every batch but the last)", value=min(full), unit="",
            budget="≥ 50", limit=50, compare="value_min",
            note=f"mean {mean:.1f}, max {max(f['batch_sizes'])}, last {f['batch_sizes'][-1]}; {f['batches']} batches"
            ).check(quick),
        Row(benchmark="settlement", metric="largest transaction (bytes)", value=max(f["tx_bytes"] + s["tx_bytes"]), unit="",
            budget="≤ 1,232", limit=1232, compare="value").check(quick),
        Row(benchmark="settlement", metric="lamports per recipient, first epoch", value=f["lamports_spent"] / n, unit="",
            note=(f"token account rent {f['rent_lamports'] / n:,.0f}, lookup-table rent {f['table_rent_lamports'] / n:,.0f}, "
                  f"fees {f['fee_lamports'] / n:,.0f}; {f['transactions']:,} transactions")),
        Row(benchmark="settlement", metric="lamports per recipient, steady state", value=s["lamports_spent"] / n, unit="",
            note=f"fees only; {s['transactions']:,} transactions"),
    ]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipients", type=int, default=FULL)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="epochal-bench-settle-") as d:
        r = run_settle(args.recipients, Path(d))
    f, s, b = r["first"], r["steady"], r["baseline"]
    n = r["recipients"]
    sizes = f["batch_sizes"]
    print(f"settle {n:,} recipients on LiteSVM")
    print(f"  first epoch: {f['total_s']:.2f} s = accounts {f['accounts_s']:.2f} s ({f['accounts_created']:,} opened)"
          f" + tables {f['tables_s']:.2f} s ({f['tables']}) + batches {f['batches_s']:.2f} s")
    print(f"  transactions: {f['transactions']:,} in all, {f['batches']} transfer batches; transfers per batch: "
          f"mean {sum(sizes) / len(sizes):.2f}, min of full batches {min(sizes[:-1] or sizes)}, max {max(sizes)}, last {sizes[-1]}")
    print(f"  largest transaction: {max(f['tx_bytes'] + s['tx_bytes'])} bytes (limit 1,232)")
    print(f"  lamports per recipient: {f['lamports_spent'] / n:,.0f} (rent {f['rent_lamports'] / n:,.0f}, "
          f"lookup tables {f['table_rent_lamports'] / n:,.0f}, fees {f['fee_lamports'] / n:,.0f})")
    print(f"  steady state (same recipients): {s['total_s']:.2f} s, {s['batches']} batches, "
          f"{s['lamports_spent'] / n:,.1f} lamports per recipient (fees)")
    print(f"  baselines: build+sign the {b['transactions']} batches {b['build_sign_s']:.3f} s; "
          f"bare LiteSVM send {b['bare_litesvm_s']:.3f} s")
    print(f"  ratio: first-epoch batches / bare {f['batches_s'] / b['bare_litesvm_s']:.1f}×, "
          f"steady state / bare {s['total_s'] / b['bare_litesvm_s']:.1f}×")


if __name__ == "__main__":
    main()
