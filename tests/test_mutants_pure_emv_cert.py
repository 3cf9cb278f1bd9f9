"""ODA certificate refusals the mutation run of 4 December 2026 (late evening) over
cardperso.layouts found unasserted (issue 18): each CertificateError names the object, the
check and the reason exactly, as an operator reads them; 3-digit issuer identifiers and month
12 are accepted. Certificates are signed here with a key made by OpenSSL's generator
(rsa_generate) and recovered with the textbook public operation."""

from __future__ import annotations

import datetime as dt

import pytest

from cardperso.crypto.rsa import RsaKey, rsa_generate, rsa_sign_raw, sha1
from cardperso.errors import DecodeError
from cardperso.layouts import emv_cert as ec

H = bytes.fromhex
TODAY = dt.date(2024, 12, 5)
WHAT = "issuer certificate (90)"


@pytest.fixture(scope="module")
def ca() -> RsaKey:
    return rsa_generate(1024, 3)


def _issuer_cert(
    ca: RsaKey,
    *,
    fmt: int = 2,
    issuer_id: str = "374245FF",
    expiry: str = "1225",
    algorithms: str = "0101",
    header: int = 0x6A,
    modulus: bytes = bytes([0xC1]) * 64,
) -> bytes:
    # EMV Book 2 table 6: 6A 02 | issuer id | expiry | serial | hash alg | pk alg | Ln | Le |
    # key (padded BB) | SHA-1 | BC, signed with the CA's private key
    room = len(ca.modulus) - 36
    body = (
        bytes([fmt]) + H(issuer_id) + H(expiry) + H("000001") + H(algorithms)
        + bytes([len(modulus), 1]) + modulus + b"\xbb" * (room - len(modulus))
    )  # fmt: skip
    block = bytes([header]) + body + sha1(body + b"\x03") + b"\xbc"
    return rsa_sign_raw(ca, block)


def _recover(ca: RsaKey, cert: bytes, remainder: bytes = b"") -> ec.PublicKey:
    return ec.recover_issuer_key(
        ec.PublicKey(ca.modulus, 3), cert, remainder, b"\x03", pan=H("374245002751005F"),
        today=TODAY,
    )  # fmt: skip


def test_a_good_certificate_with_month_12_and_a_3_digit_issuer(ca: RsaKey) -> None:
    key = _recover(ca, _issuer_cert(ca, issuer_id="374FFFFF", expiry="1224"))
    assert key.modulus == bytes([0xC1]) * 64 and key.expiry == H("1224")
    assert key.serial == H("000001") and key.exponent == 3


@pytest.mark.parametrize(
    ("kwargs", "check", "reason"),
    [
        ({"fmt": 4}, "format", "format 04, expected 02"),
        ({"header": 0x6B}, "header", "recovered data does not start with 6A"),
        ({"expiry": "1325"}, "expiry", "not a MMYY date"),
        ({"algorithms": "0201"}, "algorithm", "hash or public-key algorithm not 01 (SHA-1, RSA)"),
        ({"algorithms": "0102"}, "algorithm", "hash or public-key algorithm not 01 (SHA-1, RSA)"),
        ({"issuer_id": "37FFFFFF"}, "issuer id", "the issuer identifier is not the PAN's prefix"),
    ],
)
def test_refusals_name_object_check_and_reason(
    ca: RsaKey, kwargs: dict[str, object], check: str, reason: str
) -> None:
    with pytest.raises(ec.CertificateError) as info:
        _recover(ca, _issuer_cert(ca, **kwargs))  # type: ignore[arg-type]
    assert (info.value.what, info.value.check) == (WHAT, check)
    assert str(info.value) == f"{WHAT}: {check} check failed: {reason}"


def test_a_remainder_beside_a_key_that_fits(ca: RsaKey) -> None:
    cert = _issuer_cert(ca)
    with pytest.raises(ec.CertificateError) as info:
        # the hash covers remainder || exponent: sign one that includes a remainder byte
        _recover(ca, cert, b"\x01")
    assert info.value.check in {"hash", "length"}
    room = len(ca.modulus) - 36
    body = (
        b"\x02" + H("374245FF") + H("1225") + H("000001") + H("0101") + bytes([64, 1])
        + bytes([0xC1]) * 64 + b"\xbb" * (room - 64)
    )  # fmt: skip
    signed = rsa_sign_raw(ca, b"\x6a" + body + sha1(body + b"\x01" + b"\x03") + b"\xbc")
    with pytest.raises(ec.CertificateError) as info:
        _recover(ca, signed, b"\x01")
    assert str(info.value) == (
        f"{WHAT}: length check failed: a remainder with a key that fits the block"
    )


def test_exponent_bytes_and_issuer_identifier() -> None:
    assert ec.exponent_bytes(3) == H("03") and ec.exponent_bytes(65537) == H("010001")
    assert ec.exponent_bytes(255) == H("FF") and ec.exponent_bytes(256) == H("0100")
    assert ec.issuer_identifier("374") == H("374FFFFF")
    for bad in ("37", "123456789", "37a2"):
        with pytest.raises(DecodeError) as info:
            ec.issuer_identifier(bad)
        assert info.value.field == "issuer_id"
        assert str(info.value).endswith("issuer identifier: 3 to 8 leading PAN digits")
