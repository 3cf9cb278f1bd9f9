"""The bitsliced batch check values equal the ``cryptography``-based :func:`cardperso.crypto.kcv`."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.crypto import kcv
from cardperso.crypto.kcvbatch import kcv_3des_blob, kcv_3des_many


def test_known_check_values() -> None:
    # GP test key 404142..4F: KCV 8BAF47 (keys-sample/keys.json, gp-kmc); EMV option-A vector
    # key 67F8292358083E5EA7AB7FDA58D53B6B checked against cardperso.crypto.kcv
    keys = [bytes.fromhex("404142434445464748494A4B4C4D4E4F")]
    assert kcv_3des_many(keys) == [bytes.fromhex("8BAF47")]
    k = bytes.fromhex("67F8292358083E5EA7AB7FDA58D53B6B")
    assert kcv_3des_many([k]) == [kcv("3DES", k)]


def test_many_random_keys_and_lengths() -> None:
    for n in (1, 7, 8, 9, 1000):
        keys = [os.urandom(16) for _ in range(n)]
        assert kcv_3des_many(keys) == [kcv("3DES", k) for k in keys]
    keys = [os.urandom(16) for _ in range(20)]
    assert kcv_3des_blob(b"".join(keys), 8) == b"".join(kcv("3DES", k, 8) for k in keys)
    assert kcv_3des_many([]) == [] and kcv_3des_blob(b"") == b""


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=40))
def test_property(keys: list[bytes]) -> None:
    assert kcv_3des_many(keys) == [kcv("3DES", k) for k in keys]
