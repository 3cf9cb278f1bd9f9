"""Raw RSA (crypto/rsa.py) against a published worked example and the OpenSSL command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import openssl_rsa as orsa
from cardperso.crypto.rsa import RsaKey, rsa_generate, rsa_recover, rsa_sign_raw, sha1
from cardperso.errors import UsageError

H = bytes.fromhex


def _textbook() -> RsaKey:
    # The worked example of Wikipedia, "RSA (cryptosystem)", section "Example" (also in
    # Rivest-Shamir-Adleman style textbooks): p = 61, q = 53, n = 3233, e = 17, d = 2753,
    # dP = 53, dQ = 49, qInv = 38; m = 65 encrypts to c = 2790.
    return RsaKey.from_crt(
        H("0CA1"), 17, bytes([61]), bytes([53]), bytes([53]), bytes([49]), bytes([38])
    )


def test_textbook_example_private_and_public_operations() -> None:
    key = _textbook()
    assert rsa_sign_raw(key, (2790).to_bytes(2, "big")) == (65).to_bytes(2, "big")
    assert rsa_recover(key.modulus, 17, (65).to_bytes(2, "big")) == (2790).to_bytes(2, "big")


def test_sha1_fips180_abc() -> None:
    # FIPS 180-2 appendix A.1: SHA-1("abc").
    assert sha1(b"abc") == H("A9993E364706816ABA3E25717850C26C9CD0D89D")


@pytest.fixture(scope="module")
def ossl_key(tmp_path_factory: pytest.TempPathFactory) -> orsa.OpensslRsa:
    return orsa.genrsa(tmp_path_factory.mktemp("rsa"), 1152, 3)


def _ours(k: orsa.OpensslRsa) -> RsaKey:
    n = k.part("modulus", 144)
    return RsaKey.from_crt(
        n,
        k.parts["publicExponent"],
        k.part("prime1", 72),
        k.part("prime2", 72),
        k.part("exponent1", 72),
        k.part("exponent2", 72),
        k.part("coefficient", 72),
    )


def test_openssl_key_raw_sign_and_recover_agree(ossl_key: orsa.OpensslRsa) -> None:
    key = _ours(ossl_key)
    assert key.bits == 1152 and key.exponent == 3
    block = H("6A02") + bytes(range(256))[: 144 - 3] + H("BC")
    sig = rsa_sign_raw(key, block)
    assert sig == orsa.sign_raw(ossl_key, block)  # OpenSSL's private op gives the same bytes
    assert orsa.recover_raw(ossl_key, sig) == block  # and OpenSSL's public op recovers ours
    assert rsa_recover(key.modulus, 3, orsa.sign_raw(ossl_key, block)) == block


def test_generated_key_checked_by_openssl(tmp_path: Path) -> None:
    key = rsa_generate(1408, 3)
    assert len(key.modulus) == 176 and key.bits == 1408 and len(key.qinv) == 88
    block = H("6A04") + bytes(173) + H("BC")
    sig = rsa_sign_raw(key, block)
    pem = orsa.public_pem(key.modulus, 3, tmp_path)
    assert orsa.recover_with(pem, sig) == block


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=2, max_size=2))
def test_textbook_round_trip(data: bytes) -> None:
    key = _textbook()
    if int.from_bytes(data, "big") >= 3233:
        with pytest.raises(UsageError, match="not smaller than the modulus"):
            rsa_sign_raw(key, data)
        return
    assert rsa_recover(key.modulus, 17, rsa_sign_raw(key, data)) == data


def test_repr_redacts_private_parts() -> None:
    key = _textbook()
    text = repr(key) + str(key)
    assert text == "<RsaKey 12 bits e=17><RsaKey 12 bits e=17>"
    assert "qinv" not in text and "p=" not in text


def test_refusals_name_the_problem() -> None:
    with pytest.raises(UsageError, match="p \\* q is not the modulus"):
        RsaKey.from_crt(H("0CA3"), 17, b"\x3d", b"\x35", b"\x35", b"\x31", b"\x26")
    with pytest.raises(UsageError, match="dp or dq"):
        RsaKey.from_crt(H("0CA1"), 17, b"\x3d", b"\x35", b"\x34", b"\x31", b"\x26")
    with pytest.raises(UsageError, match="qinv"):
        RsaKey.from_crt(H("0CA1"), 17, b"\x3d", b"\x35", b"\x35", b"\x31", b"\x27")
    with pytest.raises(UsageError, match="3 bytes, the modulus has 2"):
        rsa_recover(H("0CA1"), 17, H("000001"))
    with pytest.raises(UsageError, match="key size"):
        rsa_generate(1000)
    with pytest.raises(UsageError, match="exponent"):
        rsa_generate(1024, 5)
