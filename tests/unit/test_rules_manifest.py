"""Ruleset §9 manifest hash by hand, over the exact pinned line format."""

import hashlib

from payouts.manifest import compute_manifest_sha256

WALLET_A = "1thX6LZfHDZZKUs92febYZhYRcXddmzfzF2NvTkPNE"
WALLET_B = "11111111111111111111111111111111"


def test_an_epoch_that_pays_nobody_hashes_the_empty_string():
    assert compute_manifest_sha256([]) == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_two_rows_given_unsorted_hash_as_sorted_lines():
    rows = [
        (7, "node-b", "community", 228_310_503, WALLET_B),
        (7, "node-a", "enterprise", 4_337_899_542, WALLET_A),
    ]
    expected_bytes = (
        b"7,node-a,enterprise,4337899542,1thX6LZfHDZZKUs92febYZhYRcXddmzfzF2NvTkPNE\n"
        b"7,node-b,community,228310503,11111111111111111111111111111111\n"
    )
    assert compute_manifest_sha256(rows) == hashlib.sha256(expected_bytes).hexdigest()
    assert compute_manifest_sha256(list(reversed(rows))) == hashlib.sha256(expected_bytes).hexdigest()


def test_the_hash_is_lower_case_hex():
    h = compute_manifest_sha256([(0, "n", "enterprise", 1, WALLET_B)])
    assert h == h.lower() and len(h) == 64
    assert h == hashlib.sha256(b"0,n,enterprise,1,11111111111111111111111111111111\n").hexdigest()


def test_rows_sort_by_node_id_in_byte_order_not_by_case_folded_order():
    # "Z" is 0x5A, "a" is 0x61: upper case sorts first
    rows = [(3, "a1", "community", 5, WALLET_B), (3, "Z9", "community", 6, WALLET_B)]
    expected = b"3,Z9,community,6,%s\n3,a1,community,5,%s\n" % (WALLET_B.encode(), WALLET_B.encode())
    assert compute_manifest_sha256(rows) == hashlib.sha256(expected).hexdigest()


def test_a_non_ascii_node_id_is_hashed_as_utf8():
    rows = [(1, "nœud", "community", 2, WALLET_B)]
    expected = "1,nœud,community,2,11111111111111111111111111111111\n".encode("utf-8")
    assert compute_manifest_sha256(rows) == hashlib.sha256(expected).hexdigest()


def test_amounts_larger_than_64_bits_are_written_in_full():
    big = 2**70 + 3
    rows = [(12, "n", "enterprise", big, WALLET_B)]
    expected = f"12,n,enterprise,{big},{WALLET_B}\n".encode()
    assert compute_manifest_sha256(rows) == hashlib.sha256(expected).hexdigest()
