"""The bitsliced batch check values: published DES known answers, then agreement with the
``cryptography``-based :func:`cardperso.crypto.kcv` on random keys."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.crypto import kcv
from cardperso.crypto.kcvbatch import kcv_3des_blob

H = bytes.fromhex

# NIST SP 800-20 (TMOVS), Table B.2, variable-key known-answer test: plaintext 00x8, keys with
# one key bit set (parity bits set). A check value is TDES(K, 00x8), so K1 = K2 = the single
# DES key gives the published ciphertext as the full 8-byte check value.
_SP800_20_B2 = [
    ("8001010101010101", "95A8D72813DAA94D"),
    ("4001010101010101", "0EEC1487DD8C26D5"),
    ("2001010101010101", "7AD16FFB79C45926"),
    ("1001010101010101", "D3746294CA6A6CF3"),
    ("0801010101010101", "809F5F873C1FD761"),
    ("0401010101010101", "C02FAFFEC989D1FC"),
    ("0201010101010101", "4615AA1D33E72F10"),
]


def test_sp800_20_variable_key_known_answers() -> None:
    blob = b"".join(H(k) * 2 for k, _ in _SP800_20_B2)
    assert kcv_3des_blob(blob, 8) == b"".join(H(ct) for _, ct in _SP800_20_B2)
    assert kcv_3des_blob(blob) == b"".join(H(ct)[:3] for _, ct in _SP800_20_B2)


def test_two_key_check_value_globalplatformpro() -> None:
    # GlobalPlatformPro TestPlaintextKeys.testSessionKeys_SCP01: static DEK 404142..4F has the
    # 3DES check value 8BAF47 (K1 != K2, so the decrypt stage under K2 matters here).
    assert kcv_3des_blob(H("404142434445464748494A4B4C4D4E4F")) == H("8BAF47")


def test_lanes_beyond_the_first_group() -> None:
    # 17 keys span three 8-key groups; each lane must still give its own published answer.
    keys = [_SP800_20_B2[i % 7] for i in range(17)]
    blob = b"".join(H(k) * 2 for k, _ in keys)
    assert kcv_3des_blob(blob, 8) == b"".join(H(ct) for _, ct in keys)


def test_refuses_partial_keys() -> None:
    assert kcv_3des_blob(b"") == b""
    with pytest.raises(ValueError, match=r"kcv_3des_blob takes whole 16\-byte keys"):
        kcv_3des_blob(bytes(24))


def test_many_random_keys_and_lengths() -> None:
    for n in (1, 7, 8, 9, 1000):
        keys = [os.urandom(16) for _ in range(n)]
        assert kcv_3des_blob(b"".join(keys)) == b"".join(kcv("3DES", k) for k in keys)
    keys = [os.urandom(16) for _ in range(20)]
    assert kcv_3des_blob(b"".join(keys), 8) == b"".join(kcv("3DES", k, 8) for k in keys)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=40))
def test_property(keys: list[bytes]) -> None:
    assert kcv_3des_blob(b"".join(keys)) == b"".join(kcv("3DES", k) for k in keys)


def test_kcvs_of_many_keys_of_any_algorithm() -> None:
    from cardperso.crypto.kcvbatch import kcvs

    des = [os.urandom(16) for _ in range(50)]
    assert kcvs("3DES", des) == [kcv("3DES", k) for k in des]
    assert kcvs("3DES", des, 8) == [kcv("3DES", k, 8) for k in des]
    # not all double-length: one by one, same answers
    mixed = [*des[:3], os.urandom(24)]
    assert kcvs("3DES", mixed) == [kcv("3DES", k) for k in mixed]
    aes = [os.urandom(16) for _ in range(5)]
    assert kcvs("AES", aes) == [kcv("AES", k) for k in aes]
    assert kcvs("3DES", []) == []
