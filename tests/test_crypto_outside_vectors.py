"""Outside vectors for the crypto functions whose own tests compared them only with our code
(issue 18): the batch check values of :mod:`cardperso.crypto.kcvbatch` and the SM2 key check
value. Each expected value is a published one (source beside it) or the ``openssl`` command
line's, run here through tests/openssl_cli.py and once by hand (recorded with the version).
"""

from __future__ import annotations

import subprocess

import openssl_cli as ossl
from cardperso.crypto import kcvbatch, sm2

H = bytes.fromhex

# NIST SP 800-20 (TMOVS) Table B.2, variable-key known answers (plaintext 00x8): single-DES
# keys with one key bit set; as K1 = K2 (= K3) the Triple-DES check value is the published
# ciphertext.
_SP800_20_B2 = [
    ("8001010101010101", "95A8D72813DAA94D"),
    ("4001010101010101", "0EEC1487DD8C26D5"),
    ("2001010101010101", "7AD16FFB79C45926"),
    ("1001010101010101", "D3746294CA6A6CF3"),
    ("0801010101010101", "809F5F873C1FD761"),
    ("0401010101010101", "C02FAFFEC989D1FC"),
    ("0201010101010101", "4615AA1D33E72F10"),
]
# GlobalPlatformPro TestPlaintextKeys.testSessionKeys_SCP01: static DEK 404142..4F has the
# 3DES check value 8BAF47; testSessionKeys_SCP03: the same bytes as an AES key give 504A77.
_GP_KEY = H("404142434445464748494A4B4C4D4E4F")


def test_kcvs_3des_batch_published_answers() -> None:
    keys = [H(k) * 2 for k, _ in _SP800_20_B2]
    expected = [H(ct) for _, ct in _SP800_20_B2]
    assert kcvbatch.kcvs("3DES", keys, 8) == expected
    assert kcvbatch.kcvs("3DES", [*keys, _GP_KEY]) == [*(e[:3] for e in expected), H("8BAF47")]
    assert kcvbatch.kcvs("3DES", []) == []


def test_kcvs_two_key_value_is_openssl_des_ede() -> None:
    # the full 8-byte check value of the GlobalPlatformPro key from `openssl enc -des-ede-ecb`
    keys = [_GP_KEY, H("0123456789ABCDEFFEDCBA9876543210")]
    assert kcvbatch.kcvs("3DES", keys, 8) == [ossl.enc("des-ede-ecb", k, bytes(8)) for k in keys]


def test_kcvs_three_key_and_other_algorithms_one_by_one() -> None:
    # a 24-byte key K || K || K is single DES with K: SP 800-20 again
    k, ct = _SP800_20_B2[0]
    assert kcvbatch.kcvs("3DES", [H(k) * 3, _GP_KEY]) == [H(ct)[:3], H("8BAF47")]
    # AES: GlobalPlatformPro testSessionKeys_SCP03 (504A77); pySim SCP03_KCV_Test
    assert kcvbatch.kcvs("AES", [_GP_KEY, H("000102030405060708090a0b0c0d0e0f")]) == [
        H("504A77"),
        H("C35280"),
    ]
    # SM4: `openssl enc -sm4-ecb -nopad` of 00x16 under 0123..3210 (OpenSSL 3.0.19 by hand:
    # 2677F46B09C122CC975533105BD4A22A)
    assert kcvbatch.kcvs("SM4", [H("0123456789ABCDEFFEDCBA9876543210")], 16) == [
        H("2677F46B09C122CC975533105BD4A22A")
    ]


# GB/T 32918.5-2017 annex A: the recommended curve's example public key.
_REC_X = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
_REC_Y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"


def test_sm2_check_value_is_sm3_of_the_uncompressed_point() -> None:
    # Our convention (docs/keystore.md): SM3(04 || x || y)[:3]. The SM3 is OpenSSL's
    # (`openssl dgst -sm3`), over the point of the published key.
    key = sm2.Sm2PublicKey(int(_REC_X, 16), int(_REC_Y, 16))
    point = H("04" + _REC_X + _REC_Y)
    digest = subprocess.run(
        [ossl.OPENSSL, "dgst", "-sm3", "-binary"], input=point, capture_output=True, check=True
    ).stdout
    assert len(digest) == 32 and digest[:3] == sm2.check_value(key)
    # by hand, OpenSSL 3.0.19: `printf 04<x><y> | xxd -r -p | openssl dgst -sm3` printed
    # e6a4f9765fca89e8b7d64019b900d57cd86b4677fa5dc70284c90de05fa77f9c
    assert sm2.check_value(key) == H("E6A4F9")
