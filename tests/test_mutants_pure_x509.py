"""layouts.x509 behaviour that the mutation run over cardperso.layouts found unasserted (issue
18): every refusal's exact reason and field, PKCS#8 and PKCS#10 structure read back by
asn1crypto, the CRL's extensions and defaults, and the identifiers a decoded certificate keeps."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import keys

from cardperso.crypto.sm2 import Sm2PrivateKey
from cardperso.errors import DecodeError, EncodingError
from cardperso.layouts import x509
from cardperso.pki import Issuer, ca_certificate, revocation_list

PUB, SPKI = x509.VECTORS[0]
NOW = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=1)
#: an Ed25519 SubjectPublicKeyInfo (RFC 8410 layout, all-zero key)
ED25519_INFO = bytes.fromhex("302a300506032b6570032100" + "00" * 32)
KEY = Sm2PrivateKey.generate()
ROOT = Issuer(
    KEY,
    ca_certificate(KEY, x509.Name((("C", "CN"), ("CN", "R"))), serial=1, not_before=NOW, days=30),
)


def _refused(exc: pytest.ExceptionInfo[EncodingError]) -> tuple[str | None, str]:
    return exc.value.field, exc.value.reason


def test_encoding_refusals_name_field_and_reason() -> None:
    with pytest.raises(EncodingError) as name:
        x509.Name((("XX", "a"),)).to_asn1()
    assert _refused(name) == ("subject", "unknown name attribute 'XX'")
    with pytest.raises(EncodingError) as time:
        x509._time(dt.datetime(2026, 1, 1))
    assert _refused(time) == ("validity", "certificate times must carry a time zone")
    for bad in (b"\x02" + PUB[1:], PUB[:64]):
        with pytest.raises(EncodingError) as key:
            x509.public_key_info(bad)
        assert _refused(key) == ("public_key", "SM2 public key must be 04 || x || y (65 bytes)")
    model = x509.decode_certificate(ROOT.certificate)
    with pytest.raises(EncodingError) as usage:
        x509.tbs_certificate(
            x509.CertificateModel(**{**_fields(model), "key_usage": frozenset({"nonsense"})})
        )
    assert _refused(usage) == ("key_usage", "unknown key usage ['nonsense']")
    one = x509.CertificateModel(**{**_fields(model), "serial": 1})
    assert x509.tbs_certificate(one)  # serial 1 is the smallest allowed


def _fields(model: object) -> dict[str, object]:
    return {name: getattr(model, name) for name in model.__dataclass_fields__}  # type: ignore[attr-defined]


def test_public_key_info_refusals() -> None:
    assert x509.public_key_from_info(SPKI) == PUB
    sm2 = bytes.fromhex("2A811CCF5501822D")
    cases = (
        (ED25519_INFO, "not an EC public key"),
        (
            SPKI.replace(sm2, bytes.fromhex("2A8648CE3D030107")),
            "not on the SM2 curve (1.2.156.10197.1.301)",
        ),
        (
            SPKI.replace(bytes.fromhex("03420004"), bytes.fromhex("03420002")),
            "SM2 public key must be uncompressed (04 || x || y)",
        ),
    )
    for der, reason in cases:
        with pytest.raises(DecodeError) as exc:
            x509.public_key_from_info(der)
        assert (exc.value.field, exc.value.reason) == ("public_key", reason)
    with pytest.raises(DecodeError) as garbage:
        x509.public_key_from_info(b"\x30\x03\x02\x01")
    assert garbage.value.reason == "SubjectPublicKeyInfo does not parse as DER (ValueError)"
    for parse, what in (
        (x509.certificate_parts, "certificate"),
        (x509.request_parts, "certificate request"),
    ):
        with pytest.raises(DecodeError) as exc:
            parse(b"\x30\x03\x02\x01")
        assert exc.value.reason == f"{what} does not parse as DER (ValueError)"
        with pytest.raises(DecodeError) as big:
            parse(bytes(x509.MAX_DER + 1))
        assert big.value.reason == f"{what} is over 1,048,576 bytes, not read"


def test_private_key_info_reads_back_as_pkcs8() -> None:
    private = bytes(31) + b"\x07"
    info = keys.PrivateKeyInfo.load(x509.private_key_info(private, PUB))
    assert info["version"].native == 0
    algorithm = info["private_key_algorithm"]
    assert algorithm["algorithm"].native == "ec"
    assert algorithm["parameters"].chosen.dotted == "1.2.156.10197.1.301"
    ec_key = info["private_key"].parsed
    assert ec_key["version"].native == "ecPrivkeyVer1"
    assert ec_key["private_key"].native == 7
    assert bytes(ec_key["public_key"].native) == PUB


def test_request_round_trip() -> None:
    subject = x509.Name((("C", "CN"), ("CN", "holder")))
    tbs = x509.tbs_request(subject, PUB)
    signature = bytes.fromhex("3006020101020102")
    der = x509.signed(tbs, signature)
    assert x509.request_parts(der) == (tbs, signature, subject, PUB)


def test_crl_extensions_and_defaults() -> None:
    der = revocation_list(
        ROOT, [(77, NOW, "key_compromise")], number=3, this_update=NOW, next_update=LATER
    )
    tbs = asn1_crl.CertificateList.load(der)["tbs_cert_list"]
    (number,) = [e for e in tbs["crl_extensions"] if e["extn_id"].native == "crl_number"]
    assert (number["critical"].native, number["extn_value"].native) == (False, 3)
    assert all(not e["critical"].native for e in tbs["crl_extensions"])
    model = x509.decode_crl(der)
    assert (model.number, model.next_update, model.revoked[0].reason) == (
        3,
        LATER,
        "key_compromise",
    )
    assert model.authority_key_id == x509.decode_certificate(ROOT.certificate).subject_key_id
    plain = x509.decode_crl(
        revocation_list(
            ROOT, [(9, NOW, "unspecified")], number=4, this_update=NOW, next_update=LATER
        )
    )
    assert plain.revoked == (x509.RevokedEntry(9, NOW, "unspecified"),)
    empty = revocation_list(ROOT, [], number=5, this_update=NOW, next_update=LATER)
    assert asn1_crl.CertificateList.load(empty)["tbs_cert_list"]["revoked_certificates"].native in (
        None,
        [],
    )
    assert x509.decode_crl(empty).revoked == ()


def test_decoded_certificate_keeps_ca_flag_and_key_ids() -> None:
    root = x509.decode_certificate(ROOT.certificate)
    assert root.is_ca is True
    assert len(root.subject_key_id) == 20
    assert root.authority_key_id in (b"", root.subject_key_id)
