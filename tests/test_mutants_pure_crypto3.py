"""crypto's survivors of the mutation sample on the final code (docs/testing.md, fourth round):
DER lengths at the short/long-form edges checked by the ``openssl asn1parse`` command line
(X.690 8.1.3: a length of 128 takes the long form ``81 80``, 256 takes ``82 01 00``), an SM2
signature whose r is wider than the curve, and the weak DES keys written without their parity
bits (FIPS 74 section 3.6 lists the weak keys with odd parity: ``0101010101010101`` is the
same key to DES as ``0000000000000000``)."""

from __future__ import annotations

import re
import subprocess

import pytest

import openssl_cli as ossl
from cardperso.crypto.primitives import is_weak_des_key
from cardperso.crypto.sm2der import ciphertext_from_der, ciphertext_to_der, signature_from_der
from cardperso.errors import SignatureMismatch

X = bytes(range(1, 33))
Y = bytes(range(33, 65))
C3 = bytes(range(100, 132))


@pytest.mark.parametrize(("size", "header"), [(127, b"\x04\x7f"), (128, b"\x04\x81\x80"),
                                              (255, b"\x04\x81\xff"), (256, b"\x04\x82\x01\x00")])  # fmt: skip
def test_octet_string_lengths_at_the_form_edges(size: int, header: bytes) -> None:
    c2 = bytes((i * 7) & 0xFF for i in range(size))
    ciphertext = b"\x04" + X + Y + C3 + c2
    der = ciphertext_to_der(ciphertext)
    assert header + c2 in der
    assert ciphertext_from_der(der) == ciphertext
    parsed = subprocess.run([ossl.OPENSSL, "asn1parse", "-inform", "DER"], input=der,
                            capture_output=True, check=False, timeout=60)  # fmt: skip
    assert parsed.returncode == 0, parsed.stderr  # openssl accepts the lengths as DER
    lengths = [int(m) for m in re.findall(r" l= *(\d+) prim: OCTET STRING", parsed.stdout.decode())]
    assert lengths == [32, size]


def test_signature_with_r_wider_than_the_curve_is_refused() -> None:
    wide_r = b"\x02\x21\x01" + bytes(32)  # 2^256: a minimal 33-byte INTEGER, out of range
    s = b"\x02\x01\x05"
    der = b"\x30" + bytes([len(wide_r) + len(s)]) + wide_r + s
    with pytest.raises(SignatureMismatch):
        signature_from_der(der)
    ok = b"\x02\x20\x01" + bytes(31)
    assert signature_from_der(b"\x30" + bytes([len(ok) + len(s)]) + ok + s) == (
        b"\x01" + bytes(31) + bytes(31) + b"\x05"
    )


@pytest.mark.parametrize(
    "key",
    [
        "0000000000000000",  # 0101010101010101 without its parity bits
        "FEFEFEFEFEFEFEFE",  # the weak key as FIPS 74 writes it
        "FFFFFFFFFFFFFFFF",  # ... and with every parity bit set
        "1E1E1E1E0E0E0E0E",  # 1F1F1F1F0E0E0E0E with its first four parity bits cleared
        "00FE00FE00FE00FE",  # the semi-weak 01FE01FE01FE01FE with other parity bits
    ],
)
def test_weak_des_keys_whatever_their_parity_bits(key: str) -> None:
    assert is_weak_des_key(bytes.fromhex(key))
    assert not is_weak_des_key(bytes.fromhex("0123456789ABCDEF"))
