"""The test PKI: SM2 root and issuing CA, cardholder certificates and a CRL, read by OpenSSL.

OpenSSL 3.0 (the machine's) verifies X.509 signatures with an *empty* SM2 user ID unless
``-vfyopt distid:...`` is given, and applies that option to the last link only (OpenSSL issues
#23471 and #32744). So certificates signed with GM/T 0009's default ID are checked link by link
(root -> issuing CA, issuing CA -> card); the whole chain with ``-crl_check`` is checked on a
PKI whose CAs sign with the empty ID (``Issuer.user_id = b""``).
"""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from pathlib import Path

import pytest

from cardperso.crypto.sm2 import Sm2PrivateKey, signature_from_der
from cardperso.errors import DataError, SignatureMismatch
from cardperso.layouts import x509
from cardperso.pki import (
    CardholderProfile,
    Holder,
    Issuer,
    ca_certificate,
    cardholder_certificate,
    revocation_list,
    verify_certificate,
    verify_crl,
)
from openssl_cli import OPENSSL

DISTID = "distid:1234567812345678"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
ID_NUMBER = "360426199001010071"


def pem(der: bytes, label: str) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENSSL, *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )


def make_pki(user_id: bytes | None = None) -> tuple[Issuer, Issuer]:
    kwargs = {} if user_id is None else {"user_id": user_id}
    root_key, ca_key = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    root_name = x509.Name((("C", "CN"), ("O", "cardperso test"), ("CN", "Test Root")))
    root = Issuer(
        root_key,
        ca_certificate(root_key, root_name, serial=1, not_before=NOW, days=7300, **kwargs),
        **kwargs,
    )
    ca_name = x509.Name((("C", "CN"), ("O", "cardperso test"), ("CN", "Test Issuing CA")))
    ca = Issuer(
        ca_key,
        ca_certificate(ca_key, ca_name, serial=2, not_before=NOW, days=3650, issuer=root),
        **kwargs,
    )
    return root, ca


def card(ca: Issuer, serial: int, *, usage: str = "sign", mask: bool = True) -> bytes:
    key = Sm2PrivateKey.generate()
    return cardholder_certificate(
        ca,
        Holder("张三", ID_NUMBER),
        key.public_key.to_bytes(),
        serial=serial,
        not_before=NOW,
        usage=usage,  # type: ignore[arg-type]
        profile=CardholderProfile(mask_identity=mask),
    )


@pytest.fixture(scope="module")
def pki() -> tuple[Issuer, Issuer]:
    return make_pki()


def write(tmp_path: Path, name: str, der: bytes, label: str = "CERTIFICATE") -> Path:
    path = tmp_path / name
    path.write_text(pem(der, label))
    return path


def test_openssl_reads_the_cardholder_certificate(
    tmp_path: Path, pki: tuple[Issuer, Issuer]
) -> None:
    _, ca = pki
    path = write(tmp_path, "card.pem", card(ca, 1001))
    out = openssl("x509", "-in", path, "-noout", "-text", "-nameopt", "utf8,sep_comma_plus")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Version: 3 (0x2)" in text
    assert "Serial Number: 1001 (0x3e9)" in text
    assert text.count("Signature Algorithm: SM2-with-SM3") == 2
    assert "ASN1 OID: SM2" in text
    assert "Issuer: C=CN,O=cardperso test,CN=Test Issuing CA" in text
    assert "Subject: C=CN,O=cardperso test PKI,OU=social security card,CN=张三," in text
    assert "serialNumber=360426********0071" in text
    assert ID_NUMBER not in text
    assert "CA:FALSE" in text
    assert "Digital Signature, Non Repudiation" in text


def test_unmasked_profile_and_encryption_usage(tmp_path: Path, pki: tuple[Issuer, Issuer]) -> None:
    _, ca = pki
    path = write(tmp_path, "enc.pem", card(ca, 1002, usage="encrypt", mask=False))
    text = openssl("x509", "-in", path, "-noout", "-text").stdout
    assert f"serialNumber = {ID_NUMBER}" in text
    assert "Key Encipherment, Data Encipherment, Key Agreement" in text


def test_each_link_verifies_with_openssl_and_the_default_id(
    tmp_path: Path, pki: tuple[Issuer, Issuer]
) -> None:
    root, ca = pki
    root_pem = write(tmp_path, "root.pem", root.certificate)
    ca_pem = write(tmp_path, "ca.pem", ca.certificate)
    card_pem = write(tmp_path, "card.pem", card(ca, 1003))
    ok = openssl("verify", "-vfyopt", DISTID, "-CAfile", root_pem, ca_pem)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
    ok = openssl("verify", "-vfyopt", DISTID, "-partial_chain", "-CAfile", ca_pem, card_pem)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
    # the same certificate under another ID (OpenSSL's empty default) fails: the ID is signed
    bad = openssl("verify", "-partial_chain", "-CAfile", ca_pem, card_pem)
    assert bad.returncode != 0 and "certificate signature failure" in bad.stdout + bad.stderr
    # and under another CA's key
    _, other = make_pki()
    other_pem = write(tmp_path, "other.pem", other.certificate)
    bad = openssl("verify", "-vfyopt", DISTID, "-partial_chain", "-CAfile", other_pem, card_pem)
    assert bad.returncode != 0


def test_our_verifier_checks_the_chain(pki: tuple[Issuer, Issuer]) -> None:
    root, ca = pki
    cert = card(ca, 1004)
    model = verify_certificate(ca.certificate, root.key.public_key.to_bytes())
    assert model.is_ca and model.path_length == 0
    assert verify_certificate(root.certificate, root.key.public_key.to_bytes()).is_ca
    model = verify_certificate(cert, ca.key.public_key.to_bytes())
    assert model.serial == 1004 and model.subject.get("CN") == "张三"
    with pytest.raises(SignatureMismatch, match="does not verify"):
        verify_certificate(cert, root.key.public_key.to_bytes())
    tampered = cert.replace("张三".encode(), "李四".encode())
    with pytest.raises(SignatureMismatch, match="does not verify"):
        verify_certificate(tampered, ca.key.public_key.to_bytes())


def test_crl_read_by_openssl_and_signature_checked_by_pkeyutl(
    tmp_path: Path, pki: tuple[Issuer, Issuer]
) -> None:
    _, ca = pki
    crl = revocation_list(
        ca,
        [(2002, NOW, "cessation_of_operation"), (2001, NOW, "key_compromise")],
        number=7,
        this_update=NOW,
        next_update=NOW + dt.timedelta(days=30),
    )
    text = openssl("crl", "-in", write(tmp_path, "c.pem", crl, "X509 CRL"), "-noout", "-text")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "Version 2 (0x1)" in out and "Signature Algorithm: SM2-with-SM3" in out
    assert out.index("Serial Number: 07D1") < out.index("Serial Number: 07D2")
    assert "Key Compromise" in out and "Cessation Of Operation" in out
    assert "X509v3 CRL Number: \n                7" in out
    model = verify_crl(crl, ca.key.public_key.to_bytes())
    assert [e.serial for e in model.revoked] == [2001, 2002]
    # OpenSSL 3.0 cannot check a CRL signature under a user ID: pkeyutl checks the signed part
    tbs, signature = x509.crl_parts(crl)
    (tmp_path / "tbs").write_bytes(tbs)
    (tmp_path / "sig").write_bytes(signature)
    pub = tmp_path / "ca-pub.pem"
    pub.write_text(pem(x509.public_key_info(ca.key.public_key.to_bytes()), "PUBLIC KEY"))
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-digest", "sm3"]
    ok = openssl(*args, "-pkeyopt", DISTID, "-in", tmp_path / "tbs", "-sigfile", tmp_path / "sig")
    assert ok.returncode == 0, ok.stderr
    assert signature_from_der(signature)
    with pytest.raises(SignatureMismatch, match="CRL signature does not verify"):
        verify_crl(crl, Sm2PrivateKey.generate().public_key.to_bytes())


def test_whole_chain_with_crl_check_in_openssl(tmp_path: Path) -> None:
    root, ca = make_pki(user_id=b"")  # OpenSSL 3.0 checks whole chains only with the empty ID
    good, revoked = card(ca, 3001), card(ca, 3002)
    crl = revocation_list(
        ca,
        [(3002, NOW, "key_compromise")],
        number=1,
        this_update=NOW,
        next_update=NOW + dt.timedelta(days=30),
    )
    root_pem = write(tmp_path, "root.pem", root.certificate)
    ca_pem = write(tmp_path, "ca.pem", ca.certificate)
    crl_pem = write(tmp_path, "crl.pem", crl, "X509 CRL")
    good_pem, revoked_pem = write(tmp_path, "g.pem", good), write(tmp_path, "r.pem", revoked)
    ok = openssl("verify", "-CAfile", root_pem, "-untrusted", ca_pem, good_pem)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
    chk = ["verify", "-crl_check", "-CRLfile", crl_pem, "-CAfile", root_pem, "-untrusted", ca_pem]
    ok = openssl(*chk, good_pem)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
    bad = openssl(*chk, revoked_pem)
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    verify_certificate(good, ca.key.public_key.to_bytes(), b"")
    verify_crl(crl, ca.key.public_key.to_bytes(), b"")


def test_refusals(pki: tuple[Issuer, Issuer]) -> None:
    _, ca = pki
    key = Sm2PrivateKey.generate().public_key.to_bytes()
    with pytest.raises(DataError, match="cardholder name is empty") as exc:
        cardholder_certificate(ca, Holder(" ", ID_NUMBER), key, serial=5, not_before=NOW)
    assert exc.value.field == "name"
    with pytest.raises(DataError, match="not a point on the curve"):
        cardholder_certificate(
            ca, Holder("a", ID_NUMBER), key[:-1] + bytes([key[-1] ^ 1]), serial=5, not_before=NOW
        )
    with pytest.raises(DataError, match="time zone"):
        cardholder_certificate(
            ca, Holder("a", ID_NUMBER), key, serial=5, not_before=NOW.replace(tzinfo=None)
        )
    with pytest.raises(DataError, match="serial must be positive"):
        cardholder_certificate(ca, Holder("a", ID_NUMBER), key, serial=0, not_before=NOW)
    with pytest.raises(DataError, match="usage must be sign or encrypt"):
        cardholder_certificate(
            ca,
            Holder("a", ID_NUMBER),
            key,
            serial=5,
            not_before=NOW,
            usage="auth",  # type: ignore[arg-type]
        )
    with pytest.raises(DataError, match="next update must be after"):
        revocation_list(ca, [], number=1, this_update=NOW, next_update=NOW)
    assert ID_NUMBER not in repr(Holder("张三", ID_NUMBER))
    assert "张三" not in repr(Holder("张三", ID_NUMBER))
