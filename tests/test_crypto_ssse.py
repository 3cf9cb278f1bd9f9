"""SSSE per-card key diversification against public vectors and the OpenSSL CLI, plus batch
properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import openssl_cli as ossl
from cardperso.crypto import primitives as cp
from cardperso.crypto import ssse
from cardperso.errors import UsageError

H = bytes.fromhex
MASTER = H("0123456789ABCDEFFEDCBA9876543210")


def test_sm4_rule_uses_the_gbt32907_block() -> None:
    # With factor f = 0123456789ABCDEF, f || ~f = 0123456789ABCDEF FEDCBA9876543210, which is
    # the GB/T 32907-2016 example plaintext; with M = that key the result is the published
    # ciphertext, so this pins the SM4 rule K = E(M, f || ~f) to a public vector.
    assert ssse.diversify_one(MASTER, "SM4", H("0123456789ABCDEF")) == H(
        "681EDF34D206965E86B3E94F536E4246"
    )


def test_3des_rule_is_emv_option_a_without_parity() -> None:
    # K = E(M, f) || E(M, ~f) is EMV Book 2 A1.4.1 option A before the parity adjustment. The
    # pyemv vector (derive_icc_mk_a docstring): IMK 0123..3210, PAN 99012345678901234, PSN 45,
    # so f = the rightmost 16 digits of PAN || PSN = 1234567890123445, gives
    # 67F8292358083E5EA7AB7FDA58D53B6B with odd parity.
    key = ssse.diversify_one(MASTER, "3DES", H("1234567890123445"))
    assert cp.odd_parity(key) == H("67F8292358083E5EA7AB7FDA58D53B6B")


@pytest.mark.parametrize("factor", ["1122334455667788", "0000000000000000", "FFFFFFFFFFFFFFFF"])
def test_3des_rule_openssl(factor: str) -> None:
    # Outside implementation: OpenSSL's des-ede-ecb over f || ~f (the whole key, parity bits
    # included: SSSE keys are used as they come out).
    f = H(factor)
    expected = ossl.enc("des-ede-ecb", MASTER, f + bytes(b ^ 0xFF for b in f))
    assert ssse.diversify_one(MASTER, "3DES", f) == expected


def test_sm4_rule_openssl() -> None:
    # Outside implementation: OpenSSL's sm4-ecb over the one block f || ~f.
    f = H("1122334455667788")
    expected = ossl.enc("sm4-ecb", MASTER, f + bytes(b ^ 0xFF for b in f))
    assert ssse.diversify_one(MASTER, "SM4", f) == expected


def test_errors() -> None:
    with pytest.raises(UsageError, match=r"SSSE diversification is defined for 3DES and SM4"):
        ssse.diversify(MASTER, "AES", [bytes(8)])
    with pytest.raises(UsageError, match=r"SSSE diversification factor must be 8 bytes"):
        ssse.diversify(MASTER, "SM4", [bytes(7)])
    with pytest.raises(UsageError, match=r"3DES SSSE master key must be 16 bytes"):
        ssse.diversify(MASTER[:8], "3DES", [bytes(8)])
    assert ssse.diversify(MASTER, "SM4", []) == []


@given(st.lists(st.binary(min_size=8, max_size=8), max_size=10), st.sampled_from(["3DES", "SM4"]))
def test_batch_is_the_single_form(factors: list[bytes], algorithm: str) -> None:
    batch = ssse.diversify(MASTER, algorithm, factors)
    assert batch == [ssse.diversify_one(MASTER, algorithm, f) for f in factors]
    assert all(len(k) == 16 for k in batch)
