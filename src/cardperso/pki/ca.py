"""Issuing SM2 certificates and CRLs: a root, an issuing CA, cardholder certificates.

How this works
--------------
* A CA is an :class:`Issuer`: its SM2 private key (from the key store) and its own certificate.
  :func:`ca_certificate` makes the root (self-signed, ``issuer=None``) and the issuing CA
  (signed by the root, path length 0).
* :func:`cardholder_certificate` makes one card's signing or encryption certificate from a
  :class:`Holder` (name and identity number from the record) and the card's public key, under
  a :class:`CardholderProfile` that says whether the identity number is masked in the subject.
* :func:`revocation_list` makes a v2 CRL naming given serials (cancelled or lost cards).
* Every signature is SM2 with SM3 and the default user ID ``1234567812345678`` (GM/T 0015),
  over the DER of the to-be-signed part; :func:`verify_certificate` / :func:`verify_crl` check it
  and raise :class:`~cardperso.errors.SignatureMismatch`.
* Key identifiers (SKI/AKI) are the first 20 bytes of SM3 over the public key ``04 || x || y``
  (RFC 5280 4.2.1.2 allows any method; SHA-1 is not used here).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cardperso.codec.numbers import mask_id
from cardperso.crypto.sm2 import (
    DEFAULT_USER_ID,
    Sm2PublicKey,
    Sm2Signer,
    signature_from_der,
    signature_to_der,
    sm3,
)
from cardperso.errors import DataError, SignatureMismatch
from cardperso.layouts import x509

Usage = Literal["sign", "encrypt"]

#: Key usages of the two cardholder certificates (GM/T 0015: a signing and an encryption pair).
CARDHOLDER_KEY_USAGE: dict[str, frozenset[str]] = {
    "sign": frozenset({"digital_signature", "non_repudiation"}),
    "encrypt": frozenset({"key_encipherment", "data_encipherment", "key_agreement"}),
}
CA_KEY_USAGE = frozenset({"key_cert_sign", "crl_sign"})


def key_identifier(public_key: bytes) -> bytes:
    """SKI/AKI: SM3 of ``04 || x || y``, first 20 bytes."""
    return sm3(public_key)[:20]


@dataclass(frozen=True, slots=True)
class Issuer:
    """A CA: its signing key (an SM2 private key or a key store's signer) and its certificate."""

    key: Sm2Signer
    certificate: bytes
    #: The SM2 user ID of this CA's signatures (GM/T 0009's default; ``b""`` for OpenSSL 3.0
    #: chain checks, see docs/pki.md).
    user_id: bytes = DEFAULT_USER_ID

    @property
    def model(self) -> x509.CertificateModel:
        return x509.decode_certificate(self.certificate)

    def __repr__(self) -> str:
        return f"<Issuer {self.model.subject.get('CN')!r}>"


@dataclass(frozen=True, slots=True)
class Holder:
    """The cardholder as the record gives it; ``repr`` shows neither value."""

    name: str
    identity_number: str

    def __repr__(self) -> str:
        return f"<Holder id={mask_id(self.identity_number)}>"


@dataclass(frozen=True, slots=True)
class CardholderProfile:
    """What a product's profile decides about cardholder certificates (``docs/pki.md``)."""

    organization: str = "cardperso test PKI"
    organizational_unit: str = "social security card"
    country: str = "CN"
    mask_identity: bool = True
    validity_days: int = 3650


def _sign(key: Sm2Signer, tbs: bytes, user_id: bytes) -> bytes:
    return signature_to_der(key.sign(tbs, user_id))


def _check_time(not_before: dt.datetime, days: int) -> dt.datetime:
    if not_before.tzinfo is None:
        raise DataError("times must carry a time zone", field="not_before")
    if not 1 <= days <= 36500:
        raise DataError("validity must be 1 to 36500 days", field="validity_days")
    return not_before + dt.timedelta(days=days)


def ca_certificate(
    key: Sm2Signer,
    name: x509.Name,
    *,
    serial: int,
    not_before: dt.datetime,
    days: int,
    issuer: Issuer | None = None,
    user_id: bytes = DEFAULT_USER_ID,
) -> bytes:
    """A CA certificate: self-signed root when ``issuer`` is None (signed with ``user_id``),
    else an issuing CA under ``issuer`` (signed with the issuer's user ID)."""
    public = key.public_key.to_bytes()
    model = x509.CertificateModel(
        serial=serial,
        issuer=issuer.model.subject if issuer else name,
        subject=name,
        not_before=not_before,
        not_after=_check_time(not_before, days),
        public_key=public,
        is_ca=True,
        path_length=None if issuer is None else 0,
        key_usage=CA_KEY_USAGE,
        subject_key_id=key_identifier(public),
        authority_key_id=key_identifier(issuer.key.public_key.to_bytes() if issuer else public),
    )
    tbs = x509.tbs_certificate(model)
    if issuer is None:
        return x509.signed(tbs, _sign(key, tbs, user_id))
    return x509.signed(tbs, _sign(issuer.key, tbs, issuer.user_id))


def cardholder_subject(holder: Holder, profile: CardholderProfile) -> x509.Name:
    """C, O, OU from the profile; CN the holder's name; serialNumber the identity number,
    masked (``codec.numbers.mask_id``) when the profile says so."""
    if not holder.name.strip():
        raise DataError("cardholder name is empty", field="name")
    if not holder.identity_number:
        raise DataError("identity number is empty", field="identity_number")
    number = mask_id(holder.identity_number) if profile.mask_identity else holder.identity_number
    return x509.Name(
        (
            ("C", profile.country),
            ("O", profile.organization),
            ("OU", profile.organizational_unit),
            ("CN", holder.name),
            ("serialNumber", number),
        )
    )


def cardholder_certificate(
    issuer: Issuer,
    holder: Holder,
    public_key: bytes,
    *,
    serial: int,
    not_before: dt.datetime,
    usage: Usage = "sign",
    profile: CardholderProfile | None = None,
) -> bytes:
    """One card's signing or encryption certificate (end entity, SM2 key ``04 || x || y``)."""
    profile = profile or CardholderProfile()
    Sm2PublicKey.from_bytes(public_key)  # on the curve, or DataError
    if usage not in CARDHOLDER_KEY_USAGE:
        raise DataError(f"usage must be sign or encrypt, not {usage!r}", field="usage")
    model = x509.CertificateModel(
        serial=serial,
        issuer=issuer.model.subject,
        subject=cardholder_subject(holder, profile),
        not_before=not_before,
        not_after=_check_time(not_before, profile.validity_days),
        public_key=public_key,
        key_usage=CARDHOLDER_KEY_USAGE[usage],
        subject_key_id=key_identifier(public_key),
        authority_key_id=key_identifier(issuer.key.public_key.to_bytes()),
    )
    tbs = x509.tbs_certificate(model)
    return x509.signed(tbs, _sign(issuer.key, tbs, issuer.user_id))


def certification_request(key: Sm2Signer, subject: x509.Name) -> bytes:
    """A PKCS#10 request for ``key``, signed by it (what a card that generates its own key
    pair returns; the test PKI's tools and tests make them the same way)."""
    tbs = x509.tbs_request(subject, key.public_key.to_bytes())
    return x509.signed(tbs, _sign(key, tbs, DEFAULT_USER_ID))


def verify_request(request: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """The public key ``04 || x || y`` of a PKCS#10 request whose signature (the proof that
    the requester holds the private key) verifies; :class:`SignatureMismatch` otherwise.
    The request's subject is not used: a cardholder certificate's subject comes from the record."""
    tbs, signature, _, public = x509.request_parts(request)
    try:
        Sm2PublicKey.from_bytes(public).verify(signature_from_der(signature), tbs, user_id)
    except SignatureMismatch:
        raise SignatureMismatch("certificate request signature does not verify") from None
    return public


def revocation_list(
    issuer: Issuer,
    revoked: Iterable[tuple[int, dt.datetime, str]],
    *,
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> bytes:
    """A v2 CRL of ``(serial, revoked at, reason)`` entries, sorted by serial, signed by ``issuer``."""
    entries = tuple(
        x509.RevokedEntry(serial, when, reason) for serial, when, reason in sorted(set(revoked))
    )
    if next_update <= this_update:
        raise DataError("next update must be after this update", field="next_update")
    model = x509.CrlModel(
        issuer=issuer.model.subject,
        this_update=this_update,
        next_update=next_update,
        number=number,
        revoked=entries,
        authority_key_id=key_identifier(issuer.key.public_key.to_bytes()),
    )
    tbs = x509.tbs_crl(model)
    return x509.signed(tbs, _sign(issuer.key, tbs, issuer.user_id))


def verify_certificate(
    certificate: bytes, issuer_public_key: bytes, user_id: bytes = DEFAULT_USER_ID
) -> x509.CertificateModel:
    """Check ``certificate``'s signature with the issuer's key; its model, or SignatureMismatch."""
    tbs, signature = x509.certificate_parts(certificate)
    Sm2PublicKey.from_bytes(issuer_public_key).verify(signature_from_der(signature), tbs, user_id)
    return x509.decode_certificate(certificate)


def verify_crl(
    crl: bytes, issuer_public_key: bytes, user_id: bytes = DEFAULT_USER_ID
) -> x509.CrlModel:
    """Check a CRL's signature with the issuer's key; its model, or SignatureMismatch."""
    tbs, signature = x509.crl_parts(crl)
    try:
        key = Sm2PublicKey.from_bytes(issuer_public_key)
        key.verify(signature_from_der(signature), tbs, user_id)
    except SignatureMismatch:
        raise SignatureMismatch("CRL signature does not verify") from None
    return x509.decode_crl(crl)
