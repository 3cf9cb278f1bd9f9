"""PKCS#10 certificate requests with SM2 (a card that generates its key pair returns one):
ours verify with ``openssl req -verify``, OpenSSL's verify with ours, and a tampered or
foreign-signed request is refused before any certificate is made.

Note: OpenSSL 3.0's ``req -verify`` exits 0 even when the signature fails; the tests read its
message.
"""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from pathlib import Path

import pytest

from cardperso.crypto.sm2 import Sm2PrivateKey
from cardperso.errors import DecodeError, SignatureMismatch
from cardperso.layouts import x509
from cardperso.pki import (
    Holder,
    Issuer,
    ca_certificate,
    cardholder_certificate,
    certification_request,
    verify_certificate,
    verify_request,
)
from openssl_cli import OPENSSL

DISTID = "distid:1234567812345678"
NOW = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def pem(der: bytes, label: str) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENSSL, *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )


def test_our_request_verifies_with_openssl(tmp_path: Path) -> None:
    key = Sm2PrivateKey.generate()
    der = certification_request(key, x509.Name((("C", "CN"), ("CN", "card 0001"))))
    assert verify_request(der) == key.public_key.to_bytes()
    path = tmp_path / "req.pem"
    path.write_text(pem(der, "CERTIFICATE REQUEST"))
    ok = openssl("req", "-in", path, "-verify", "-noout", "-vfyopt", DISTID)
    assert "self-signature verify OK" in ok.stdout + ok.stderr, ok.stderr
    wrong_id = openssl("req", "-in", path, "-verify", "-noout")
    assert "verify failure" in wrong_id.stdout + wrong_id.stderr
    text = openssl("req", "-in", path, "-noout", "-text").stdout
    assert "Subject: C = CN, CN = card 0001" in text and "SM2-with-SM3" in text


def test_openssl_request_verifies_with_ours_and_becomes_a_certificate(tmp_path: Path) -> None:
    key_pem = tmp_path / "card.key"
    gen = openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", key_pem
    )
    assert gen.returncode == 0, gen.stderr
    req = tmp_path / "req.der"
    made = openssl(
        "req", "-new", "-key", key_pem, "-subj", "/CN=from the card", "-sm3",
        "-sigopt", DISTID, "-outform", "DER", "-out", req,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    public = verify_request(req.read_bytes())
    pub_der = tmp_path / "pub.der"
    assert (
        openssl("pkey", "-in", key_pem, "-pubout", "-outform", "DER", "-out", pub_der).returncode
        == 0
    )
    assert public == x509.public_key_from_info(pub_der.read_bytes())
    ca_key = Sm2PrivateKey.generate()
    ca = Issuer(
        ca_key, ca_certificate(ca_key, x509.Name((("CN", "CA"),)), serial=1, not_before=NOW, days=9)
    )
    cert = cardholder_certificate(
        ca, Holder("张三", "110101199003070017"), public, serial=9, not_before=NOW
    )
    model = verify_certificate(cert, ca_key.public_key.to_bytes())
    assert model.public_key == public
    assert model.subject.get("CN") == "张三"  # the subject comes from the record, not the request


def test_bad_requests_are_refused() -> None:
    key = Sm2PrivateKey.generate()
    der = certification_request(key, x509.Name((("CN", "card"),)))
    tampered = der.replace(b"card", b"cart")
    with pytest.raises(SignatureMismatch, match="certificate request signature does not verify"):
        verify_request(tampered)
    with pytest.raises(SignatureMismatch, match="does not verify"):
        verify_request(der, user_id=b"")
    # a request whose key is not the one that signed it (no proof of possession)
    other = Sm2PrivateKey.generate()
    tbs = x509.tbs_request(x509.Name((("CN", "card"),)), other.public_key.to_bytes())
    forged = x509.signed(tbs, x509.request_parts(der)[1])
    with pytest.raises(SignatureMismatch):
        verify_request(forged)
    with pytest.raises(DecodeError, match="certificate request does not parse as DER"):
        verify_request(der[:50])
    with pytest.raises(DecodeError, match="certificate request is over"):
        verify_request(der + bytes(x509.MAX_DER))
