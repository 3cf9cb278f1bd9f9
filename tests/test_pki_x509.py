"""layouts.x509: the DER of the test PKI round-trips, and hostile DER meets limits.

Hostile input: a certificate, CRL or key read back (from a card, later) is at most
``MAX_DER`` bytes; anything that does not parse is one ``DecodeError`` line that names what
failed and never quotes the bytes (a subject holds a name and an identity number). The deep
nesting test runs in a subprocess under an address-space limit.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.crypto.sm2 import Sm2PrivateKey
from cardperso.errors import DecodeError, EncodingError
from cardperso.layouts import x509
from cardperso.pki import (
    CardholderProfile,
    Holder,
    Issuer,
    ca_certificate,
    cardholder_certificate,
    revocation_list,
)

NOW = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)
ID_NUMBER = "360426199001010071"
KEY = Sm2PrivateKey.generate()
ROOT = Issuer(
    KEY,
    ca_certificate(KEY, x509.Name((("C", "CN"), ("CN", "R"))), serial=1, not_before=NOW, days=30),
)
HOLDER_KEY = Sm2PrivateKey.generate().public_key.to_bytes()
CERT = cardholder_certificate(
    ROOT,
    Holder("王小明", ID_NUMBER),
    HOLDER_KEY,
    serial=77,
    not_before=NOW,
    profile=CardholderProfile(mask_identity=False),
)
CRL = revocation_list(
    ROOT,
    [(77, NOW, "key_compromise")],
    number=3,
    this_update=NOW,
    next_update=NOW + dt.timedelta(1),
)


def test_certificate_round_trip() -> None:
    model = x509.decode_certificate(CERT)
    assert model.serial == 77
    assert model.subject.get("serialNumber") == ID_NUMBER
    assert model.subject.get("CN") == "王小明"
    assert [a for a, _ in model.subject.attributes] == ["C", "O", "OU", "CN", "serialNumber"]
    assert model.not_before == NOW and model.public_key == HOLDER_KEY
    assert model.key_usage == {"digital_signature", "non_repudiation"}
    tbs, signature = x509.certificate_parts(CERT)
    rebuilt = x509.tbs_certificate(
        x509.CertificateModel(
            serial=model.serial,
            issuer=model.issuer,
            subject=model.subject,
            not_before=model.not_before,
            not_after=model.not_after,
            public_key=model.public_key,
            key_usage=model.key_usage,
            subject_key_id=model.subject_key_id,
            authority_key_id=model.authority_key_id,
        )
    )
    assert rebuilt == tbs
    assert x509.signed(tbs, signature) == CERT


def test_crl_round_trip() -> None:
    model = x509.decode_crl(CRL)
    assert model.number == 3
    assert model.revoked == (x509.RevokedEntry(77, NOW, "key_compromise"),)
    tbs, signature = x509.crl_parts(CRL)
    assert x509.signed(tbs, signature) == CRL


def test_times_from_2050_are_generalized_time() -> None:
    later = dt.datetime(2050, 1, 1, tzinfo=dt.UTC)
    cert = ca_certificate(
        KEY, x509.Name((("CN", "R"),)), serial=2, not_before=later - dt.timedelta(1), days=2
    )
    model = x509.decode_certificate(cert)
    assert model.not_after == later + dt.timedelta(1)
    tbs, _ = x509.certificate_parts(cert)
    assert b"\x17\x0d491231" in tbs  # UTCTime for 2049
    assert b"\x18\x0f20500102" in tbs  # GeneralizedTime for 2050


def test_builders_refuse_bad_models() -> None:
    with pytest.raises(EncodingError, match="unknown name attribute 'emailAddress'"):
        x509.Name((("emailAddress", "a@b"),)).to_asn1()
    with pytest.raises(EncodingError, match="04 \\|\\| x \\|\\| y"):
        x509.public_key_info(HOLDER_KEY[1:])
    model = x509.decode_certificate(CERT)
    with pytest.raises(EncodingError, match="unknown key usage \\['sign'\\]"):
        x509.tbs_certificate(
            x509.CertificateModel(
                serial=1,
                issuer=model.issuer,
                subject=model.subject,
                not_before=NOW,
                not_after=NOW,
                public_key=HOLDER_KEY,
                key_usage=frozenset({"sign"}),
            )
        )


def test_decoders_refuse_other_algorithms_and_curves() -> None:
    spki = bytearray(x509.public_key_info(HOLDER_KEY))
    p256 = bytes.fromhex("06082A8648CE3D030107")  # prime256v1, same length as the SM2 OID
    sm2 = bytes.fromhex("06082A811CCF5501822D")
    with pytest.raises(DecodeError, match="not on the SM2 curve"):
        x509.public_key_from_info(bytes(spki).replace(sm2, p256))
    ecdsa_sm3_oid = bytes.fromhex("06082A811CCF55018375")
    ecdsa_sha256 = bytes.fromhex("06082A8648CE3D040302")  # ecdsa-with-SHA256, same length
    with pytest.raises(DecodeError, match="not sm2-with-sm3"):
        x509.certificate_parts(CERT.replace(ecdsa_sm3_oid, ecdsa_sha256))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_der_gives_one_line_and_no_personal_data(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from([CERT, CRL]))
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(buf)))
    for decode in (x509.decode_certificate, x509.decode_crl, x509.public_key_from_info):
        try:
            decode(bytes(buf[:cut]))
        except DecodeError as exc:
            text = str(exc)
            assert "\n" not in text
            assert ID_NUMBER not in text and "王小明" not in text


def test_oversize_input_is_refused_unread() -> None:
    huge = CERT + bytes(x509.MAX_DER)
    for decode, what in [
        (x509.decode_certificate, "certificate"),
        (x509.decode_crl, "CRL"),
        (x509.public_key_from_info, "SubjectPublicKeyInfo"),
    ]:
        with pytest.raises(DecodeError, match=f"{what} is over 1,048,576 bytes, not read"):
            decode(huge)


def test_deep_nesting_under_a_memory_limit() -> None:
    script = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (400 * 2**20, 400 * 2**20))
        from cardperso.errors import DecodeError
        from cardperso.layouts import x509
        inner, heads = 2, []
        while 5 * len(heads) + 2 + 5 <= x509.MAX_DER:
            heads.append(b"\\x30\\x83" + inner.to_bytes(3, "big"))
            inner += 5
        der = b"".join(reversed(heads)) + b"\\x05\\x00"
        for decode in (x509.decode_certificate, x509.decode_crl, x509.public_key_from_info):
            try:
                decode(der)
            except DecodeError as exc:
                print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "certificate does not parse as DER (ValueError)",
        "CRL does not parse as DER (ValueError)",
        "SubjectPublicKeyInfo does not parse as DER (ValueError)",
    ]
