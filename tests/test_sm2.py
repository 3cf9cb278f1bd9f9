"""SM2 and SM3 against the published examples of GB/T 32918 / GB/T 32905, and the refusals.

Sources of the vectors (each named beside its test):

* GB/T 32918.2-2016 annex A (= GM/T 0003.2-2012 annex A, draft-shen-sm2-ecdsa-02 section A.2):
  the signature example on the 256-bit example curve, ID ``ALICE123@YAHOO.COM``.
* GB/T 32918.4-2016 annex A (= GM/T 0003.4-2012 annex A): the encryption example on the same
  example curve, message ``encryption standard``.
* GB/T 32918.5-2017 annex A and C (= GM/T 0003.5-2012): the signature and encryption examples on
  the recommended curve with the default ID ``1234567812345678``.
  The same four examples are OpenSSL's ``test/sm2_internal_test.c``, which we read to check our
  transcription of the standard's numbers.
* GB/T 32905-2016 annex A: SM3 of ``abc`` and of ``abcd`` * 16.
"""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.crypto import sm2
from cardperso.crypto.sm2 import (
    DEFAULT_USER_ID,
    SM2_EXAMPLE_P256,
    SM2_P256,
    Sm2PrivateKey,
    Sm2PublicKey,
    ciphertext_from_der,
    ciphertext_to_der,
    encrypt_with_nonce,
    signature_from_der,
    signature_to_der,
    sm3,
)
from cardperso.errors import DataError, SecurityError, SignatureMismatch, UsageError


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def i(text: str) -> int:
    return int(text.replace(" ", ""), 16)


# GB/T 32918.5-2017 annex A (recommended curve, default ID).
REC_D = i("3945208F 7B2144B1 3F36E38A C6D39F95 88939369 2860B51A 42FB81EF 4DF7C5B8")
REC_X = i("09F9DF31 1E5421A1 50DD7D16 1E4BC5C6 72179FAD 1833FC07 6BB08FF3 56F35020")
REC_Y = i("CCEA490C E26775A5 2DC6EA71 8CC1AA60 0AED05FB F35E084A 6632F607 2DA9AD13")
REC_K = i("59276E27 D506861A 16680F3A D9C02DCC EF3CC1FA 3CDBE4CE 6D54B80D EAC1BC21")
REC_E = h("F0B43E94 BA45ACCA ACE692ED 534382EB 17E6AB5A 19CE7B31 F4486FDF C0D28640")
REC_R = h("F5A03B06 48D2C463 0EEAC513 E1BB81A1 5944DA38 27D5B741 43AC7EAC EEE720B3")
REC_S = h("B1B6AA29 DF212FD8 763182BC 0D421CA1 BB9038FD 1F7F42D4 840B69C4 85BBC1AA")


def test_sm3_published_examples() -> None:
    # GB/T 32905-2016 annex A.1 and A.2
    assert sm3(b"abc") == h(
        "66C7F0F4 62EEEDD9 D1F2D46B DC10E4E2 4167C487 5CF2F7A2 297DA02B 8F4BA8E0"
    )
    assert sm3(b"abcd" * 16) == h(
        "DEBE9FF9 2275B8A1 38604889 C18E5A4D 6FDB70E5 387E5765 293DCBA3 9C0C5732"
    )


def test_signature_example_curve_gbt32918_2_annex_a() -> None:
    # GB/T 32918.2-2016 annex A.2: Fp-256 example curve, ID ALICE123@YAHOO.COM
    key = Sm2PrivateKey(
        i("128B2FA8 BD433C6C 068C8D80 3DFF7979 2A519A55 171B1B65 0C23661D 15897263"),
        SM2_EXAMPLE_P256,
    )
    assert key.public_key.x == i(
        "0AE4C779 8AA0F119 471BEE11 825BE462 02BB79E2 A5844495 E97C04FF 4DF2548A"
    )
    assert key.public_key.y == i(
        "7C0240F8 8F1CD4E1 6352A73C 17B7F16F 07353E53 A176D684 A9FE0C6B B798E857"
    )
    uid = b"ALICE123@YAHOO.COM"
    k = i("6CB28D99 385C175C 94F94E93 4817663F C176D925 DD72B727 260DBAAE 1FB2F96F")
    sig = key.sign_with_nonce(b"message digest", k, uid)
    assert sig == h(
        "40F1EC59 F793D9F4 9E09DCEF 49130D41 94F79FB1 EED2CAA5 5BACDB49 C4E755D1"
        "6FC6DAC3 2C5D5CF1 0C77DFB2 0F7C2EB6 67A45787 2FB09EC5 6327A67E C7DEEBE7"
    )
    key.public_key.verify(sig, b"message digest", uid)
    with pytest.raises(SignatureMismatch, match="does not verify"):
        key.public_key.verify(sig, b"message digest")  # the default ID is another Z


def test_signature_recommended_curve_gbt32918_5_annex_a() -> None:
    key = Sm2PrivateKey(REC_D)
    assert (key.public_key.x, key.public_key.y) == (REC_X, REC_Y)
    assert sm3(key.public_key.z_value() + b"message digest") == REC_E
    sig = key.sign_with_nonce(b"message digest", REC_K)
    assert sig == REC_R + REC_S
    Sm2PublicKey(REC_X, REC_Y).verify(REC_R + REC_S, b"message digest", DEFAULT_USER_ID)


def test_encryption_example_curve_gbt32918_4_annex_a() -> None:
    # GB/T 32918.4-2016 annex A.2 (C = C1 || C3 || C2 of the 2016 edition)
    key = Sm2PrivateKey(
        i("1649AB77 A00637BD 5E2EFE28 3FBF3535 34AA7F7C B89463F2 08DDBC29 20BB0DA0"),
        SM2_EXAMPLE_P256,
    )
    k = i("4C62EEFD 6ECFC2B9 5B92FD6C 3D957514 8AFA1742 5546D490 18E5388D 49DD7B4F")
    ct = encrypt_with_nonce(key.public_key, b"encryption standard", k)
    assert ct == h(
        "04"
        "245C26FB 68B1DDDD B12C4B6B F9F2B6D5 FE60A383 B0D18D1C 4144ABF1 7F6252E7"
        "76CB9264 C2A7E88E 52B19903 FDC47378 F605E368 11F5C074 23A24B84 400F01B8"
        "9C3D7360 C30156FA B7C80A02 76712DA9 D8094A63 4B766D3A 285E0748 0653426D"
        "650053 A89B41C4 18B0C3AA D00D886C 00286467"
    )
    assert key.decrypt(ct) == b"encryption standard"


def test_encryption_recommended_curve_gbt32918_5_annex_c_and_gmt0009_der() -> None:
    key = Sm2PrivateKey(REC_D)
    ct = encrypt_with_nonce(key.public_key, b"encryption standard", REC_K)
    der = ciphertext_to_der(ct)
    # GB/T 32918.5 annex C values in GM/T 0009's ASN.1 form (as OpenSSL's test writes them)
    assert der == h(
        "307C 0220 04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73"
        "0221 00E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0"
        "0420 59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766"
        "0413 21886CA989CA9C7D58087307CA93092D651EFA"
    )
    assert ciphertext_from_der(der) == ct
    assert key.decrypt(ct) == b"encryption standard"


KEY = Sm2PrivateKey(REC_D)
SIG = REC_R + REC_S
MSG = b"message digest"


@pytest.mark.parametrize(
    ("signature", "message", "user_id", "reason"),
    [
        (SIG, b"message digesT", DEFAULT_USER_ID, "does not verify"),
        (SIG, MSG, b"1234567812345679", "does not verify"),
        (REC_R + (i(REC_S.hex()) ^ 1).to_bytes(32, "big"), MSG, DEFAULT_USER_ID, "does not verify"),
        (SIG[:-1], MSG, DEFAULT_USER_ID, r"must be r \|\| s \(64 bytes\)"),
        (bytes(32) + REC_S, MSG, DEFAULT_USER_ID, "out of range"),
        (REC_R + SM2_P256.n.to_bytes(32, "big"), MSG, DEFAULT_USER_ID, "out of range"),
        # r + s = n: t = 0 must be refused, not computed with
        (
            REC_R + (SM2_P256.n - i(REC_R.hex())).to_bytes(32, "big"),
            MSG,
            DEFAULT_USER_ID,
            "does not verify",
        ),
    ],
)
def test_verification_raises(signature: bytes, message: bytes, user_id: bytes, reason: str) -> None:
    with pytest.raises(SignatureMismatch, match=reason):
        KEY.public_key.verify(signature, message, user_id)


def test_signature_mismatch_is_a_security_error() -> None:
    assert issubclass(SignatureMismatch, SecurityError)


def test_decryption_refuses_tampered_ciphertexts() -> None:
    ct = KEY.public_key.encrypt(b"key envelope")
    flipped_c2 = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(SecurityError, match=r"C3 mismatch"):
        KEY.decrypt(flipped_c2)
    flipped_c3 = ct[:70] + bytes([ct[70] ^ 1]) + ct[71:]
    with pytest.raises(SecurityError, match=r"C3 mismatch"):
        KEY.decrypt(flipped_c3)
    off_curve = ct[:64] + bytes([ct[64] ^ 1]) + ct[65:]
    with pytest.raises(SecurityError, match="not a point on the curve"):
        KEY.decrypt(off_curve)
    with pytest.raises(SecurityError, match=r"not 04 \|\| x"):
        KEY.decrypt(ct[:97])
    with pytest.raises(UsageError, match="non-empty"):
        KEY.public_key.encrypt(b"")


def test_keys_refuse_bad_values() -> None:
    with pytest.raises(DataError, match="out of range") as exc:
        Sm2PrivateKey(SM2_P256.n - 1)
    assert exc.value.field == "private_key"
    with pytest.raises(DataError, match="out of range"):
        Sm2PrivateKey(0)
    with pytest.raises(DataError, match="32 bytes"):
        Sm2PrivateKey.from_bytes(bytes(31))
    with pytest.raises(DataError, match="not a point on the curve") as exc2:
        Sm2PublicKey(REC_X, REC_Y ^ 1)
    assert exc2.value.field == "public_key"
    with pytest.raises(DataError, match=r"04 \|\| x \|\| y \(65 bytes\)"):
        Sm2PublicKey.from_bytes(b"\x02" + KEY.public_key.to_bytes()[1:])
    # the uncompressed form round-trips
    assert Sm2PublicKey.from_bytes(KEY.public_key.to_bytes()) == KEY.public_key


def test_private_key_hides_its_value() -> None:
    text = repr(KEY) + str(KEY)
    assert KEY.to_bytes().hex().upper() not in text.upper()
    assert "value hidden" in text
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(KEY)


def test_signature_der_round_trip_and_refusals() -> None:
    der = signature_to_der(SIG)
    assert der[:4] == h("3046 0221")  # both halves have the top bit set: 00 prefix
    assert signature_from_der(der) == SIG
    small = (1).to_bytes(32, "big") + (0x7F).to_bytes(32, "big")
    assert signature_to_der(small) == h("3006 020101 02017F")
    assert signature_from_der(h("3006 020101 02017F")) == small
    for bad, why in [
        (der + b"\x00", "trailing"),
        (h("3006 020101 0201FF"), "negative"),
        (h("3007 02020001 02017F"), "not minimal"),
        (h("3081 06 020101 02017F"), "shortest form"),
        (h("3006 020101 04017F"), "expected tag 02"),
        (h("3008 020101 02017F 0500"), "bad signature body"),
    ]:
        with pytest.raises(SignatureMismatch, match=why):
            signature_from_der(bad)


@settings(max_examples=25, deadline=None)
@given(message=st.binary(max_size=300), user_id=st.binary(min_size=0, max_size=40))
def test_sign_verify_round_trip(message: bytes, user_id: bytes) -> None:
    sig = KEY.sign(message, user_id)
    KEY.public_key.verify(sig, message, user_id)
    assert signature_from_der(signature_to_der(sig)) == sig
    with pytest.raises(SignatureMismatch):
        KEY.public_key.verify(sig, message + b"\x00", user_id)


@settings(max_examples=25, deadline=None)
@given(plaintext=st.binary(min_size=1, max_size=200))
def test_encrypt_decrypt_round_trip(plaintext: bytes) -> None:
    ct = KEY.public_key.encrypt(plaintext)
    assert len(ct) == 97 + len(plaintext)
    assert KEY.decrypt(ct) == plaintext
    assert ciphertext_from_der(ciphertext_to_der(ct)) == ct


def test_scalar_multiplication_agrees_with_the_plain_ladder() -> None:
    # The fixed-base table and the NAF are checked against double-and-add on affine points.
    curve = SM2_P256

    def add(p1: tuple[int, int] | None, p2: tuple[int, int] | None) -> tuple[int, int] | None:
        if p1 is None:
            return p2
        if p2 is None:
            return p1
        p = curve.p
        if p1[0] == p2[0]:
            if (p1[1] + p2[1]) % p == 0:
                return None
            lam = (3 * p1[0] * p1[0] + curve.a) * pow(2 * p1[1], -1, p) % p
        else:
            lam = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, p) % p
        x3 = (lam * lam - p1[0] - p2[0]) % p
        return (x3, (lam * (p1[0] - x3) - p1[1]) % p)

    def ladder(k: int, q: tuple[int, int]) -> tuple[int, int] | None:
        acc: tuple[int, int] | None = None
        for bit in bin(k)[2:]:
            acc = add(acc, acc)
            if bit == "1":
                acc = add(acc, q)
        return acc

    g = (curve.gx, curve.gy)
    for k in (1, 2, 3, 63, 64, 65, 2**255 + 12345, curve.n - 1, REC_K):
        assert curve.mul_base(k) == ladder(k, g)
        assert curve.mul(k, (REC_X, REC_Y)) == ladder(k, (REC_X, REC_Y))
    assert curve.mul_add(5, 7, (REC_X, REC_Y)) == add(ladder(5, g), ladder(7, (REC_X, REC_Y)))
    assert curve.mul_add(1, curve.n - 1, g) is None
    assert sm2.SM2_P256 is SM2_P256


def test_fixed_base_table_is_built_once_under_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    curve = sm2.Sm2Curve(
        "fresh", SM2_P256.p, SM2_P256.a, SM2_P256.b, SM2_P256.n, SM2_P256.gx, SM2_P256.gy
    )
    with ThreadPoolExecutor(8) as pool:
        points = list(pool.map(curve.mul_base, [REC_D] * 16))
    assert set(points) == {(REC_X, REC_Y)}
    assert len(curve._table) == 43  # 256 bits / 6-bit windows, not one table per thread
