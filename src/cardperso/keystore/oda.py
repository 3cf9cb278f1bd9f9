"""The offline-data-authentication key chain of a key store: test CA, issuer key, certificate.

How this works
--------------
* The **certification authority** is an RSA key pair named ``oda-ca-<RID>-<index>`` (e.g.
  ``oda-ca-A000000333-F1``): the name carries the registered application provider identifier
  and the CA public key index (8F) a terminal selects it by, so both stores (a JSON entry, a
  token label) need nothing beyond the key. PBOC allows 1152, 1408 and 1984 bits, e = 3
  (pboc-conformance.md section 4). Index F1 is cardperso's test index: not one of the CUP
  indexes a public terminal tool lists (01-04, 08-0C), nor the published simulation CA keys
  (F8, AA).
* The **issuer key** is ``oda-issuer`` (its modulus at most the CA's, EMV Book 2 5.1).
* The **issuer certificate** 90 / 92 / 9F32 is a pure function of the two keys and the
  certificate's fields (issuer identifier = the PAN prefix, expiry, serial): EMV's signatures
  are raw RSA, deterministic, so :func:`issuer_certificate` signs it again wherever it is needed
  (once per prep run) with the CA key where it lives - in the PKCS#11 token through ``C_Sign``.
  Nothing needs storing beside the keys, and the certificate always matches them.
* :func:`capks` lists the CA public keys a terminal needs (``cardperso keys export-capk``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from cardperso.codec import tlv
from cardperso.errors import KeyStoreError, UsageError
from cardperso.keystore.base import KeyInfo, KeyStore
from cardperso.layouts.emv_cert import CertificateParts, build_issuer_certificate, issuer_identifier

__all__ = [
    "CA_BITS",
    "ISSUER_KEY",
    "RID_PBOC",
    "TEST_CA_INDEX",
    "Capk",
    "IssuerCertSpec",
    "ca_key_name",
    "capks",
    "create_chain",
    "issuer_certificate",
    "issuer_record",
    "parse_ca_name",
]

#: The RID of China UnionPay / PBOC applications.
RID_PBOC: Final = bytes.fromhex("A000000333")
#: cardperso's test CA public key index (see the module docstring).
TEST_CA_INDEX: Final = 0xF1
#: CA modulus sizes PBOC allows.
CA_BITS: Final = (1152, 1408, 1984)
#: The issuer key pair's name.
ISSUER_KEY: Final = "oda-issuer"

_CA_NAME = re.compile(r"oda-ca-([0-9A-F]{10})-([0-9A-F]{2})")


def ca_key_name(rid: bytes, index: int) -> str:
    """``oda-ca-<RID hex>-<index hex>``."""
    if len(rid) != 5 or not 0 <= index <= 0xFF:
        raise UsageError("a CA key needs a 5-byte RID and a one-byte index")
    return f"oda-ca-{rid.hex().upper()}-{index:02X}"


def parse_ca_name(name: str) -> tuple[bytes, int] | None:
    """(RID, index) of a CA key name, or ``None`` for any other key."""
    m = _CA_NAME.fullmatch(name)
    return None if m is None else (bytes.fromhex(m.group(1)), int(m.group(2), 16))


@dataclass(frozen=True, slots=True)
class Capk:
    """A CA public key as a terminal holds it (EMV Book 2 11.2.2)."""

    rid: bytes
    index: int
    modulus: bytes
    exponent: int

    def to_json(self) -> dict[str, str]:
        """``{"rid", "index", "modulus", "exponent"}`` as hex strings."""
        exp = self.exponent.to_bytes((self.exponent.bit_length() + 7) // 8, "big")
        return {
            "rid": self.rid.hex().upper(),
            "index": f"{self.index:02X}",
            "modulus": self.modulus.hex().upper(),
            "exponent": exp.hex().upper(),
        }


def capks(store: KeyStore) -> list[Capk]:
    """Every CA public key of ``store``, by RID and index."""
    out = []
    for name in store.rsa_names():
        parsed = parse_ca_name(name)
        if parsed is not None:
            modulus, exponent = store.rsa_public_key(name)
            out.append(Capk(parsed[0], parsed[1], modulus, exponent))
    return sorted(out, key=lambda c: (c.rid, c.index))


@dataclass(frozen=True, slots=True)
class IssuerCertSpec:
    """The fields of the issuer certificate a profile chooses (its ``oda`` settings)."""

    #: Leading PAN digits (3 to 8) every card of the product starts with.
    issuer_id: str
    #: Certificate expiry, MMYY (BCD in the certificate).
    expiry: str = "1249"
    #: Certificate serial number, 3 bytes as 6 hex digits.
    serial: str = "000001"
    ca_index: int = TEST_CA_INDEX
    rid: bytes = RID_PBOC
    issuer_key: str = ISSUER_KEY


def issuer_certificate(store: KeyStore, spec: IssuerCertSpec) -> CertificateParts:
    """90, 92 and 9F32 of the store's issuer key, signed with its CA key (in the token for
    PKCS#11). Raises :class:`KeyStoreError` naming a missing key."""
    if not (len(spec.expiry) == 4 and spec.expiry.isdigit() and 1 <= int(spec.expiry[:2]) <= 12):
        raise UsageError("oda expiry must be MMYY")
    if not re.fullmatch(r"[0-9A-Fa-f]{6}", spec.serial):
        raise UsageError("oda serial must be 6 hex digits")
    ca = ca_key_name(spec.rid, spec.ca_index)
    ca_modulus, _ = store.rsa_public_key(ca)
    modulus, exponent = store.rsa_public_key(spec.issuer_key)
    if len(modulus) > len(ca_modulus):
        raise KeyStoreError(f"key {spec.issuer_key!r} is longer than the CA key {ca!r}")
    return build_issuer_certificate(
        store.rsa_signer(ca),
        len(ca_modulus),
        issuer_id=issuer_identifier(spec.issuer_id),
        expiry=bytes.fromhex(spec.expiry),
        serial=bytes.fromhex(spec.serial),
        modulus=modulus,
        exponent=exponent,
    )


def issuer_record(store: KeyStore, spec: IssuerCertSpec) -> bytes:
    """The record template ``70 { 8F, 90, 92 (when the modulus needs it), 9F32 }`` of the
    issuer certificate: the content of the record DGI a profile names for it (one per batch)."""
    parts = issuer_certificate(store, spec)
    body = tlv.encode(0x8F, bytes([spec.ca_index])) + tlv.encode(0x90, parts.certificate)
    if parts.remainder:
        body += tlv.encode(0x92, parts.remainder)
    return tlv.encode(0x70, body + tlv.encode(0x9F32, parts.exponent))


def create_chain(
    store: KeyStore,
    *,
    rid: bytes = RID_PBOC,
    ca_index: int = TEST_CA_INDEX,
    ca_bits: int = 1408,
    issuer_bits: int = 1408,
    replace: bool = False,
) -> list[KeyInfo]:
    """Generate the test CA and the issuer key pair in ``store`` (in the token for PKCS#11)."""
    if ca_bits not in CA_BITS:
        raise UsageError(f"CA keys are {', '.join(map(str, CA_BITS))} bits for PBOC")
    if issuer_bits > ca_bits:
        raise UsageError("the issuer key cannot be longer than the CA key")
    return [
        store.generate_rsa_key(ca_key_name(rid, ca_index), ca_bits, 3, replace=replace),
        store.generate_rsa_key(ISSUER_KEY, issuer_bits, 3, replace=replace),
    ]
