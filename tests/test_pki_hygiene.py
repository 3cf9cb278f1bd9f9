"""Secrets hygiene of the PKI (issue 17): SM2 private keys and identity numbers stay out of
certificates, CRLs, reprs, error messages and debug logs.

Fresh SM2 CA keys in a software store file; a PKI issued from them (root, issuing CA, cardholder
certificates with the identity number masked, a CRL) with the root logger at DEBUG; the expected
failures provoked (a store whose check value is wrong, a symmetric operation on an SM2 name, a
signature that does not verify, a corrupted certificate). Then everything a person or a log could
see is scanned for each private key (raw bytes, hex in either case, decimal) and each full
identity number. The scan is shown to find a planted key first, so it can fail.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from cardperso.crypto.sm2 import Sm2PrivateKey, signature_to_der
from cardperso.errors import CardPersoError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.layouts import x509
from cardperso.pki import (
    Holder,
    Issuer,
    ca_certificate,
    cardholder_certificate,
    revocation_list,
    verify_certificate,
)

NOW = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
IDS = ["110101199003070017", "44030419850101002X", "320102197002020015"]


def forms(value: bytes) -> list[bytes]:
    return [
        value,
        value.hex().encode(),
        value.hex().upper().encode(),
        str(int.from_bytes(value, "big")).encode(),
    ]


def hits(blob: bytes, secrets: dict[str, bytes], ids: list[str]) -> list[str]:
    found = [name for name, value in secrets.items() for f in forms(value) if f in blob]
    found += [i for i in ids if i.encode() in blob or i.lower().encode() in blob]
    return found


def test_the_scan_finds_planted_secrets() -> None:
    key = Sm2PrivateKey.generate()
    secrets = {"k": key.to_bytes()}
    assert hits(b"x" + key.to_bytes().hex().upper().encode(), secrets, []) == ["k"]
    assert hits(str(int.from_bytes(key.to_bytes(), "big")).encode(), secrets, []) == ["k"]
    assert hits(IDS[1].lower().encode(), {}, IDS) == [IDS[1]]


def test_pki_outputs_logs_and_errors_hold_no_private_key_and_no_identity_number(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[bytes] = []
    store = SoftwareKeyStore.generate({"transport-kek": ("3DES", 16)}, test_keys=True)
    path = store.save(tmp_path / "keys.json")
    store.generate_sm2_key("pki-root")
    store.generate_sm2_key("pki-issuing-ca")
    doc = json.loads(path.read_text())
    secrets = {n: bytes.fromhex(doc["keys"][n]["value"]) for n in ("pki-root", "pki-issuing-ca")}
    root_signer = store.sm2_signer("pki-root")
    ca_signer = store.sm2_signer("pki-issuing-ca")
    root = Issuer(
        root_signer,
        ca_certificate(
            root_signer, x509.Name((("CN", "Root"),)), serial=1, not_before=NOW, days=99
        ),
    )
    ca = Issuer(
        ca_signer,
        ca_certificate(
            ca_signer, x509.Name((("CN", "CA"),)), serial=2, not_before=NOW, days=9, issuer=root
        ),
    )
    card_keys = [Sm2PrivateKey.generate() for _ in IDS]
    secrets.update({f"card-{i}": k.to_bytes() for i, k in enumerate(card_keys)})
    certs = [
        cardholder_certificate(
            ca, Holder("测试", ident), k.public_key.to_bytes(), serial=100 + i, not_before=NOW
        )
        for i, (ident, k) in enumerate(zip(IDS, card_keys))
    ]
    crl = revocation_list(
        ca,
        [(100, NOW, "key_compromise")],
        number=1,
        this_update=NOW,
        next_update=NOW + dt.timedelta(days=1),
    )
    for der in [root.certificate, ca.certificate, *certs, crl]:
        seen += [der, base64.b64encode(der)]
    for cert in certs:
        model = verify_certificate(cert, store.sm2_public_key("pki-issuing-ca"))
        seen.append(repr(model).encode())
    seen += [repr(x).encode() for x in (store, root_signer, ca_signer, root, ca, *card_keys)]
    seen += [str(x).encode() for x in card_keys]
    seen += [repr(Holder("测试", i)).encode() for i in IDS]
    # the expected failures: their messages are what an operator sees
    bad = dict(doc)
    bad["keys"] = dict(doc["keys"])
    bad["keys"]["pki-root"] = dict(doc["keys"]["pki-root"], kcv="000000")
    failures = [
        lambda: SoftwareKeyStore.from_document(bad),
        lambda: store.wrap("pki-root", bytes(8)),
        lambda: store.sm2_signer("transport-kek"),
        lambda: verify_certificate(certs[0], store.sm2_public_key("pki-root")),
        lambda: verify_certificate(
            certs[0][:-9] + bytes(9), store.sm2_public_key("pki-issuing-ca")
        ),
        lambda: x509.decode_certificate(certs[1][:200]),
        lambda: Sm2PrivateKey.from_bytes(secrets["card-0"][:-1]),
    ]
    for fail in failures:
        with pytest.raises(CardPersoError) as exc:
            fail()
        seen.append(str(exc.value).encode())
    seen.append(signature_to_der(card_keys[0].sign(b"m")))
    seen.append(caplog.text.encode())
    blob = b"\n".join(seen)
    assert len(blob) > 3000
    assert hits(blob, secrets, IDS) == []
    # the masked form is there (the scan looks at the right bytes)
    assert b"110101********0017" in blob
