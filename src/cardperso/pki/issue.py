"""Issuing one card's certificates on the line: serials, the ledger, the encryption key envelope.

How this works
--------------
* :class:`CardIssuer` holds the issuing CA (:class:`~cardperso.pki.ca.Issuer`, its key from the
  key store), the product's :class:`~cardperso.pki.ca.CardholderProfile` and a *ledger*: a
  function called with every certificate **before** it is returned (so a certificate that may
  reach a card is always on record; the CRL is made from that record, ``pki/ledger.py``).
* Serials are 127-bit random positive integers (RFC 5280 4.1.2.2: unique per CA, at most 20
  bytes; CA/Browser Forum practice asks for 64 bits of randomness), so stations and lines never
  coordinate and never collide in practice; the ledger's primary key refuses a repeat.
* :func:`key_envelope` makes the encryption pair the way a key-management centre sends it to a
  card (GM/T 0016 ``ENVELOPEDKEYBLOB``, as a public kiosk program unpacks it, native-cos.md N8):
  a random SM4 key SM2-encrypted to the card's **signing** public key (``x ‖ y ‖ C3 ‖ C2``,
  GM/T 0016 ``ECCCIPHERBLOB`` order) and the encryption private key SM4-ECB-encrypted under it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from cardperso.crypto import primitives as cp
from cardperso.crypto.sm2 import Sm2PrivateKey, Sm2PublicKey
from cardperso.errors import DataError
from cardperso.pki.ca import CardholderProfile, Holder, Issuer, Usage, cardholder_certificate

__all__ = ["CardIssuer", "IssuedCertificate", "KeyEnvelope", "key_envelope", "random_serial"]


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """One certificate as the ledger records it (no personal data: the card number and the chip
    serial identify the card)."""

    serial: int
    usage: str
    card_no: str
    chip_serial: bytes
    not_after: dt.datetime
    der: bytes = field(repr=False)


def random_serial(draw: Callable[[int], bytes] = cp.random_bytes) -> int:
    """A positive serial of 127 random bits (never 0, first DER byte below 80)."""
    while True:
        value = int.from_bytes(draw(16), "big") >> 1
        if value:
            return value


@dataclass(frozen=True, slots=True)
class KeyEnvelope:
    """The encryption pair for one card: its public key, the SM2-encrypted SM4 key
    (``x ‖ y ‖ C3 ‖ C2``, 112 bytes) and the private key under that SM4 key (32 bytes)."""

    public_key: bytes
    wrapped_key: bytes = field(repr=False)
    wrapped_private: bytes = field(repr=False)


def key_envelope(card_signing_key: bytes) -> KeyEnvelope:
    """A fresh encryption pair enveloped for the card whose signing public key is given."""
    pair = Sm2PrivateKey.generate()
    sm4_key = cp.random_bytes(16)
    blob = Sm2PublicKey.from_bytes(card_signing_key).encrypt(sm4_key)
    wrapped_private = cp.ecb_encrypt("SM4", sm4_key, pair.to_bytes())
    del sm4_key
    return KeyEnvelope(pair.public_key.to_bytes(), blob[1:], wrapped_private)


class CardIssuer:
    """Issues cardholder certificates under one issuing CA, recording each in a ledger."""

    def __init__(
        self,
        issuer: Issuer,
        profile: CardholderProfile,
        ledger: Callable[[IssuedCertificate], None],
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.issuer = issuer
        self.profile = profile
        self.ledger = ledger
        self.clock = clock

    def issue(
        self, holder: Holder, public_key: bytes, usage: Usage, *, card_no: str, chip_serial: bytes
    ) -> IssuedCertificate:
        """One certificate for ``public_key`` (``04 ‖ x ‖ y``), recorded before it is returned."""
        now = self.clock().replace(microsecond=0)
        if now.tzinfo is None:
            raise DataError("the issuing clock must carry a time zone", field="clock")
        serial = random_serial()
        der = cardholder_certificate(
            self.issuer, holder, public_key, serial=serial, not_before=now, usage=usage,
            profile=self.profile,
        )  # fmt: skip
        issued = IssuedCertificate(
            serial, usage, card_no, chip_serial,
            now + dt.timedelta(days=self.profile.validity_days), der,
        )  # fmt: skip
        self.ledger(issued)
        return issued
