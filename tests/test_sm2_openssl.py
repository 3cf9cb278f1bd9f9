"""SM2 against OpenSSL's command line, an independent implementation (a separate process).

OpenSSL 3.0's ``pkeyutl`` signs with an *empty* SM2 user ID unless told otherwise, so every
call passes ``-pkeyopt distid:1234567812345678`` (GM/T 0009's default, ours). A missing
``openssl`` fails these tests; it does not skip them.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from cardperso.crypto.sm2 import (
    Sm2PrivateKey,
    ciphertext_from_der,
    ciphertext_to_der,
    signature_from_der,
    signature_to_der,
)
from cardperso.errors import SignatureMismatch
from cardperso.layouts.x509 import VECTORS, private_key_info, public_key_from_info, public_key_info
from openssl_cli import OPENSSL

DISTID = "distid:1234567812345678"


def pem(der: bytes, label: str) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def openssl(*args: str | Path, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [OPENSSL, *map(str, args)], input=data, capture_output=True, check=False, timeout=60
    )


@pytest.fixture
def keyfiles(tmp_path: Path) -> tuple[Sm2PrivateKey, Path, Path]:
    key = Sm2PrivateKey.generate()
    pub = key.public_key.to_bytes()
    priv_pem = tmp_path / "key.pem"
    priv_pem.write_text(pem(private_key_info(key.to_bytes(), pub), "PRIVATE KEY"))
    pub_pem = tmp_path / "pub.pem"
    pub_pem.write_text(pem(public_key_info(pub), "PUBLIC KEY"))
    return key, priv_pem, pub_pem


def test_openssl_reads_our_keys(keyfiles: tuple[Sm2PrivateKey, Path, Path]) -> None:
    key, priv_pem, pub_pem = keyfiles
    out = openssl("pkey", "-in", priv_pem, "-pubout", "-outform", "DER")
    assert out.returncode == 0, out.stderr
    assert public_key_from_info(out.stdout) == key.public_key.to_bytes()
    text = openssl("pkey", "-pubin", "-in", pub_pem, "-text", "-noout").stdout.decode()
    assert "ASN1 OID: SM2" in text


def test_spki_vector_is_the_published_key(tmp_path: Path) -> None:
    # layouts.x509.VECTORS: GB/T 32918.5 annex A's public key in a SubjectPublicKeyInfo
    for point, der in VECTORS:
        assert public_key_info(point) == der
        assert public_key_from_info(der) == point
        path = tmp_path / "v.der"
        path.write_bytes(der)
        out = openssl("pkey", "-pubin", "-inform", "DER", "-in", path, "-text", "-noout")
        assert out.returncode == 0, out.stderr
        flat = out.stdout.decode().replace(" ", "").replace("\n", "").replace(":", "")
        assert point.hex() in flat


def test_our_signature_verifies_with_openssl(
    tmp_path: Path, keyfiles: tuple[Sm2PrivateKey, Path, Path]
) -> None:
    key, _, pub_pem = keyfiles
    message = b"challenge from the PKI terminal \x00\xff"
    (tmp_path / "m").write_bytes(message)
    (tmp_path / "sig").write_bytes(signature_to_der(key.sign(message)))
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", pub_pem, "-rawin", "-digest", "sm3"]
    args += ["-in", tmp_path / "m", "-sigfile", tmp_path / "sig"]
    ok = openssl(*args, "-pkeyopt", DISTID)
    assert ok.returncode == 0 and b"Signature Verified Successfully" in ok.stdout, ok.stderr
    # the same bytes under another user ID (OpenSSL's empty default) must not verify
    assert openssl(*args).returncode != 0
    (tmp_path / "m").write_bytes(message + b"!")
    assert openssl(*args, "-pkeyopt", DISTID).returncode != 0


def test_openssl_signature_verifies_with_ours(
    tmp_path: Path, keyfiles: tuple[Sm2PrivateKey, Path, Path]
) -> None:
    key, priv_pem, _ = keyfiles
    message = b"signed by OpenSSL"
    (tmp_path / "m").write_bytes(message)
    out = openssl(
        "pkeyutl", "-sign", "-inkey", priv_pem, "-rawin", "-digest", "sm3",
        "-pkeyopt", DISTID, "-in", tmp_path / "m",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    signature = signature_from_der(out.stdout)
    key.public_key.verify(signature, message)
    with pytest.raises(SignatureMismatch, match="does not verify"):
        key.public_key.verify(signature, message + b"x")


def test_encryption_interoperates_with_openssl(
    tmp_path: Path, keyfiles: tuple[Sm2PrivateKey, Path, Path]
) -> None:
    key, priv_pem, pub_pem = keyfiles
    envelope = bytes(range(16))  # an SM4 key, as the encryption certificate's envelope holds
    (tmp_path / "ct").write_bytes(ciphertext_to_der(key.public_key.encrypt(envelope)))
    out = openssl("pkeyutl", "-decrypt", "-inkey", priv_pem, "-in", tmp_path / "ct")
    assert out.returncode == 0, out.stderr
    assert out.stdout == envelope
    (tmp_path / "pt").write_bytes(envelope)
    out = openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", pub_pem, "-in", tmp_path / "pt")
    assert out.returncode == 0, out.stderr
    assert key.decrypt(ciphertext_from_der(out.stdout)) == envelope
