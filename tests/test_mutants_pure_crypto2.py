"""What the mutation run of 4 December 2026 (late evening) over cardperso.crypto found
unasserted in the modules added that day (desvec, rsa, sm2, sm2der) and a few older edges
(issue 18): the bounds of check-value lengths and ARPC proprietary data, RSA exponents, the SM2
signature range of GB/T 32918.2 (r and s in [1, n-1]), DER lengths in the long forms (long
ciphertexts, checked with the ``openssl`` command line), and the exact refusals."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from cardperso.crypto import desvec, emv, gp, kcvbatch
from cardperso.crypto import primitives as cp
from cardperso.crypto.rsa import RsaKey
from cardperso.crypto.sm2 import (
    SM2_P256,
    Sm2PrivateKey,
    Sm2PublicKey,
    ciphertext_from_der,
    ciphertext_to_der,
    encrypt_with_nonce,
    signature_from_der,
)
from cardperso.errors import DataError, SecurityError, SignatureMismatch, UsageError
from cardperso.layouts.x509 import private_key_info, public_key_info
from openssl_cli import OPENSSL

H = bytes.fromhex

# NIST SP 800-20 Table B.2, first row: key 8001..01, plaintext 0 -> 95A8D72813DAA94D
SP800_20_KEY, SP800_20_CT = H("8001010101010101"), H("95A8D72813DAA94D")


def test_one_byte_check_values() -> None:
    # a check value of 1 byte is allowed (1 to 8); 0 and 9 are not
    assert desvec.tdes_kcv_blob(SP800_20_KEY * 2, 1) == SP800_20_CT[:1]
    assert kcvbatch.kcv_3des_blob(SP800_20_KEY * 2 * 3, 1) == SP800_20_CT[:1] * 3
    for bad in (0, 9):
        with pytest.raises(ValueError, match=r"^a check value is 1 to 8 bytes$"):
            desvec.tdes_kcv_blob(SP800_20_KEY * 2, bad)


def test_arpc_method2_proprietary_data_up_to_8_bytes() -> None:
    # EMV Book 2 A1.2.2: Proprietary Authentication Data is 0 to 8 bytes
    sk, arqc, csu = bytes(range(16)), bytes(8), bytes(4)
    assert len(emv.arpc_method2(sk, arqc, csu, bytes(8))) == 4
    with pytest.raises(UsageError, match="ARPC method 2 needs"):
        emv.arpc_method2(sk, arqc, csu, bytes(9))


def test_tdes_diversification_refuses_a_short_kmc() -> None:
    for method in ("emv", "visa2"):
        with pytest.raises(UsageError, match=r"^3DES KMC must be 16 bytes$"):
            gp.diversify_one(bytes(8), bytes(10), method)


def test_secret_keys_compare_by_algorithm_and_value() -> None:
    a = cp.SecretKey("3DES", bytes(range(16)))
    assert a == cp.SecretKey("3DES", bytes(range(16)))
    assert a != cp.SecretKey("3DES", bytes(range(1, 17)))
    assert a != cp.SecretKey("AES", bytes(range(16)))


def test_rsa_exponent_one_is_refused() -> None:
    # Wikipedia's textbook key (p 61, q 53) with e = 1 and dp = dq = 1: the CRT identities
    # hold (1 * 1 = 1 mod 60 and mod 52), only the exponent rule refuses it
    with pytest.raises(UsageError, match=r"^RSA public exponent: must be odd and at least 3$"):
        RsaKey.from_crt(H("0CA1"), 1, bytes([61]), bytes([53]), b"\x01", b"\x01", bytes([38]))
    with pytest.raises(UsageError, match=r"^RSA public exponent: must be odd and at least 3$"):
        RsaKey.from_crt(H("0CA1"), 18, bytes([61]), bytes([53]), b"\x01", b"\x01", bytes([38]))


# GB/T 32918.5-2017 annex A: the recommended curve's example key pair.
REC = Sm2PrivateKey(int("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8", 16))
# a nonce whose one-byte key stream under REC's public key is 00 (found by trying k = 1, 2, ...)
ZERO_STREAM_K = 470


def test_scalar_refusals() -> None:
    c = SM2_P256
    for k in (0, c.n, 2 * c.n):
        with pytest.raises(UsageError, match=r"^SM2: scalar is a multiple of the group order$"):
            c.mul_base(k)
    with pytest.raises(
        SecurityError, match=r"^SM2: point multiplication gave the point at infinity$"
    ):
        c.mul(c.n, (c.gx, c.gy))


def test_public_key_off_the_curve() -> None:
    with pytest.raises(DataError) as info:
        Sm2PublicKey(REC.public_key.x, REC.public_key.y + 1)
    assert str(info.value).endswith("SM2 public key is not a point on the curve")
    assert info.value.field == "public_key"


def test_signature_range_is_1_to_n_minus_1() -> None:
    # GB/T 32918.2 clause 7.1 B1/B2: r' and s' in [1, n-1] pass the range check; then the
    # equation decides. r = 1 is in range (does not verify); r = n is out of range.
    pub, n = REC.public_key, SM2_P256.n
    sig = REC.sign(b"m")
    s = sig[32:]
    with pytest.raises(SignatureMismatch, match=r"^SM2 signature does not verify$"):
        pub.verify((1).to_bytes(32, "big") + s, b"m")
    for r in (0, n, n + 1):
        with pytest.raises(SignatureMismatch, match=r"^SM2 signature out of range$"):
            pub.verify(r.to_bytes(32, "big") + s, b"m")
    with pytest.raises(SignatureMismatch, match=r"^SM2 signature out of range$"):
        pub.verify(sig[:32] + n.to_bytes(32, "big"), b"m")


def test_all_zero_key_stream_refused_both_ways() -> None:
    with pytest.raises(UsageError, match=r"^SM2: this nonce gives an all-zero key stream$"):
        encrypt_with_nonce(REC.public_key, b"\x00", ZERO_STREAM_K)
    c1 = SM2_P256.mul_base(ZERO_STREAM_K)
    forged = b"\x04" + c1[0].to_bytes(32, "big") + c1[1].to_bytes(32, "big") + bytes(32) + b"A"
    with pytest.raises(
        SecurityError, match=r"^SM2 ciphertext does not decrypt \(all-zero key stream\)$"
    ):
        REC.decrypt(forged)
    # an empty plaintext has no key stream at all
    with pytest.raises(UsageError, match=r"^SM2: this nonce gives an all-zero key stream$"):
        encrypt_with_nonce(REC.public_key, b"", 1)


def test_private_key_pickling_refused_exactly() -> None:
    import pickle

    with pytest.raises(TypeError, match=r"^SM2 private keys are not pickled$"):
        pickle.dumps(REC)


@pytest.mark.parametrize(
    ("der", "reason"),
    [
        ("3046022100" + "11" * 32 + "022100" + "22" * 32 + "00", "DER: trailing bytes"),
        ("308201", "DER: bad length"),
        ("3083000001", "DER: bad length"),
        ("308100", "DER: length not in its shortest form"),
        ("30820010", "DER: length not in its shortest form"),
    ],
)
def test_malformed_der_refusals(der: str, reason: str) -> None:
    with pytest.raises(SignatureMismatch) as info:
        signature_from_der(H(der))
    assert str(info.value).endswith(f"SM2 signature is not well-formed DER ({reason})")
    if reason != "DER: trailing bytes":
        with pytest.raises(SecurityError, match=f"^{reason}$"):
            ciphertext_from_der(H(der))


def _pem(der: bytes, label: str) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


@pytest.mark.parametrize(("size", "form"), [(10, 0x74), (60, 0x81), (300, 0x82)])
def test_long_ciphertexts_in_der_with_openssl(tmp_path: Path, size: int, form: int) -> None:
    # GM/T 0009 DER with a short (10), 81 (60) and 82 (300) sequence length: OpenSSL decrypts ours,
    # and we decrypt OpenSSL's (`openssl pkeyutl -encrypt`/`-decrypt`, SM2 keys)
    key = Sm2PrivateKey.generate()
    pub = key.public_key.to_bytes()
    (tmp_path / "k.pem").write_text(_pem(private_key_info(key.to_bytes(), pub), "PRIVATE KEY"))
    (tmp_path / "p.pem").write_text(_pem(public_key_info(pub), "PUBLIC KEY"))
    message = bytes(i % 251 for i in range(size))
    der = ciphertext_to_der(key.public_key.encrypt(message))
    assert der[1] == form or (form < 0x80 and der[1] < 0x80)
    (tmp_path / "ct").write_bytes(der)
    (tmp_path / "pt").write_bytes(message)

    def openssl(*args: str) -> bytes:
        done = subprocess.run(
            [OPENSSL, "pkeyutl", *args], capture_output=True, check=False, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert openssl("-decrypt", "-inkey", str(tmp_path / "k.pem"), "-in", str(tmp_path / "ct")) == (
        message
    )
    theirs = openssl(
        "-encrypt", "-pubin", "-inkey", str(tmp_path / "p.pem"), "-in", str(tmp_path / "pt")
    )
    assert key.decrypt(ciphertext_from_der(theirs)) == message
    assert ciphertext_to_der(ciphertext_from_der(theirs)) == theirs
