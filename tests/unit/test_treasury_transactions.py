"""The transaction builder's arithmetic: sizes computed from a transaction's shape are the sizes
of the transactions built, and the limits hold (payouts/transactions.py)."""

import random

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from payouts import transactions as txb

MANIFEST = "9f" * 32


def _treasury(signer: Keypair) -> txb.Treasury:
    mint = Keypair().pubkey()
    return txb.Treasury(signer.pubkey(), mint, txb.token_account(signer.pubkey(), mint))


def _directory(t: txb.Treasury, sizes: list[int]) -> tuple[txb.LookupDirectory, list[list[Pubkey]]]:
    d = txb.LookupDirectory()
    accounts = []
    for n in sizes:
        acc = [Keypair().pubkey() for _ in range(n)]
        d.add_table(Keypair().pubkey(), [t.mint, t.token_account] + acc)
        accounts.append(acc)
    return d, accounts


def test_a_transfer_batch_is_as_big_as_its_shape_says_whatever_the_tables():
    rng = random.Random(7)
    signer = Keypair()
    t = _treasury(signer)
    d, accounts = _directory(t, [254, 254, 254])
    for _ in range(40):
        per_table = [rng.randint(0, 30) for _ in range(3)]
        if not sum(per_table):
            continue
        recipients = [(a, rng.randint(1, 10**12)) for ti, k in enumerate(per_table) for a in rng.sample(accounts[ti], k)]
        memo = txb.memo_text(rng.randint(0, 10**6), rng.randint(0, 999), MANIFEST)
        tx = txb.compile_tx(signer, txb.transfer_batch_ixs(t, recipients, memo), Hash.default(),
                            d.accounts(d.position[a][0] for a, _ in recipients))
        assert len(bytes(tx)) == txb.transfer_batch_size(len(memo), [k for k in per_table if k])


def test_a_full_batch_carries_at_least_50_transfers_within_1232_bytes():
    signer = Keypair()
    t = _treasury(signer)
    d, accounts = _directory(t, [254])
    memo = txb.memo_text(999_999, 999, MANIFEST)
    n = max(k for k in range(1, 64) if txb.transfer_batch_size(len(memo), [k]) <= txb.MAX_TX_BYTES)
    assert n >= 50
    tx = txb.build_transfer_batch(signer, t, d, [(a, 1) for a in accounts[0][:n]], memo, Hash.default())
    assert len(bytes(tx)) <= txb.MAX_TX_BYTES
    assert txb.transfer_batch_accounts(n) <= txb.MAX_ACCOUNT_LOCKS


def test_account_creation_and_table_extension_sizes_match_the_built_transactions():
    signer = Keypair()
    t = _treasury(signer)
    for n in (1, 5, txb.MAX_CREATE_ACCOUNTS):
        tx = txb.compile_tx(signer, txb.create_accounts_ixs(t, [Keypair().pubkey() for _ in range(n)]), Hash.default())
        assert len(bytes(tx)) == txb.create_accounts_size(n) <= txb.MAX_TX_BYTES
    table = Keypair().pubkey()
    tx = txb.compile_tx(signer, [txb.extend_lookup_table_ix(table, signer.pubkey(),
                                                           [Keypair().pubkey() for _ in range(txb.MAX_EXTEND_ADDRESSES)])],
                        Hash.default())
    assert len(bytes(tx)) <= txb.MAX_TX_BYTES
    assert not txb.extend_fits(txb.MAX_EXTEND_ADDRESSES + 1)


def test_the_memo_names_epoch_batch_and_manifest_and_reads_back():
    memo = txb.memo_text(1234, 7, MANIFEST)
    assert memo.startswith(b"epochal e=1234 b=7 m=")
    assert txb.parse_memo(memo.decode()) == {"reward_epoch": 1234, "batch": 7, "manifest_sha256": MANIFEST}
    assert txb.parse_memo("something else") is None


def test_a_directory_counts_a_repeated_address_in_its_first_table():
    a, b = Keypair().pubkey(), Keypair().pubkey()
    d = txb.LookupDirectory([(Keypair().pubkey(), [a]), (Keypair().pubkey(), [b, a])])
    assert d.position[a] == (0, 0) and d.position[b] == (1, 0)
    assert d.room(1) == 254
