"""SSSE per-card key diversification: definition checks and batch properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_3des_rule() -> None:
    f = H("1122334455667788")
    expected = cp.ecb_encrypt("3DES", MASTER, f) + cp.ecb_encrypt(
        "3DES", MASTER, cp.xor(f, b"\xff" * 8)
    )
    assert ssse.diversify_one(MASTER, "3DES", f) == expected


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
