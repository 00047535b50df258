"""The treasury's signer is read from a file that only its owner can read, and never shown."""

import json

import pytest
from solders.keypair import Keypair

from payouts.keys import KeypairError, ensure_keypair, load_keypair


def write_key(path, kp, mode):
    path.write_text(json.dumps(list(bytes(kp))))
    path.chmod(mode)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602])
def test_a_keypair_file_group_or_others_may_read_or_write_is_refused_in_one_sentence(tmp_path, mode):
    kp = Keypair()
    write_key(tmp_path / "id.json", kp, mode)
    with pytest.raises(KeypairError) as exc:
        load_keypair(tmp_path / "id.json")
    msg = str(exc.value)
    assert "group or others" in msg and "chmod 600" in msg and "\n" not in msg
    assert str(list(bytes(kp))[:4])[1:-1] not in msg and str(kp) not in msg


def test_an_owner_only_keypair_file_loads(tmp_path):
    kp = Keypair()
    write_key(tmp_path / "id.json", kp, 0o600)
    assert load_keypair(tmp_path / "id.json").pubkey() == kp.pubkey()


def test_a_file_that_is_not_a_keypair_is_named_not_shown(tmp_path):
    p = tmp_path / "id.json"
    p.write_text("[1, 2, 3] secret")
    p.chmod(0o600)
    with pytest.raises(KeypairError) as exc:
        load_keypair(p)
    assert "not a Solana keypair file" in str(exc.value) and "secret" not in str(exc.value)


def test_the_in_process_default_key_is_made_once_owner_only(tmp_path):
    p = tmp_path / "t.keypair.json"
    first = ensure_keypair(p)
    assert p.stat().st_mode & 0o777 == 0o600
    assert ensure_keypair(p).pubkey() == first.pubkey()
