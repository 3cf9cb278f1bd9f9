"""EMV / PBOC offline data authentication: certificate and signed-data formats as data.

How this works
--------------
Every offline-authentication object is a raw-RSA signature over a block that starts ``6A`` and
ends ``hash ‖ BC`` (EMV 4.3 Book 2 sections 5-6, JR/T 0025.7 chapter 5 and annex B; the
formats agree). The block formats are the layouts below, each with its table named:

* ``02`` issuer public-key certificate (Book 2 table 6): 90, remainder 92, exponent 9F32,
  signed by the CA; the hash covers the fields ‖ remainder ‖ exponent.
* ``04`` ICC public-key certificate (table 14): 9F46, 9F48, 9F47, signed by the issuer; the
  hash covers the fields ‖ remainder ‖ exponent ‖ the static data to be authenticated (the AFL
  records marked for ODA, then the value of the tags 9F4A lists: only 82, the AIP).
* ``03`` signed static application data (table 7): 93, data authentication code, BB padding.
* ``05`` signed dynamic application data (table 17): 9F4B. The hash covers the fields ‖ the
  terminal's data: the DDOL data for DDA (INTERNAL AUTHENTICATE), 9F37 for CDA (Book 2 6.6,
  the ICC dynamic data then also carries CID, AC and the transaction data hash code), and
  9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69 for fDDA version 01 (JR/T 0025.12 annex B).

Builders take a *raw signer* (``block -> signature``: :func:`cardperso.crypto.rsa.rsa_sign_raw`
bound to a key, or an HSM's C_Sign with CKM_RSA_X_509), so no private key passes through here.
Recovery does the terminal's checks in the order of Book 2 (length, trailer, header, format,
hash, then identity and expiry) and raises :class:`CertificateError` naming the check that
failed, never a value that could be personal data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cardperso.codec import tlv
from cardperso.crypto.primitives import equal
from cardperso.crypto.rsa import rsa_recover, sha1
from cardperso.errors import DecodeError, SecurityError
from cardperso.layouts.emv_blocks import (
    HASH_SHA1,
    HEADER,
    ICC_CERT,
    ISSUER_CERT,
    PAD,
    PK_RSA,
    SDAD,
    SSAD,
    TRAILER,
    IccCertData,
    IssuerCertData,
    SdadData,
    SsadData,
)

__all__ = [
    "HEADER",
    "ICC_CERT",
    "ISSUER_CERT",
    "SDAD",
    "SSAD",
    "TRAILER",
    "CdaData",
    "CertificateError",
    "CertificateParts",
    "IccCertData",
    "IssuerCertData",
    "PublicKey",
    "RawSigner",
    "SdadData",
    "SsadData",
    "build_icc_certificate",
    "build_issuer_certificate",
    "build_sdad",
    "build_ssad",
    "cda_dynamic_data",
    "cda_transaction_hash",
    "dda_dynamic_data",
    "exponent_bytes",
    "fdda_terminal_data",
    "issuer_identifier",
    "recover_icc_key",
    "recover_issuer_key",
    "static_data",
    "verify_cda",
    "verify_sdad",
    "verify_ssad",
]


_HASH = 20

#: A raw private-key operation: a block as long as the modulus in, its signature out.
RawSigner = Callable[[bytes], bytes]


class CertificateError(SecurityError):
    """An ODA object did not verify; ``check`` names the failed check (``length``,
    ``trailer``, ``header``, ``format``, ``hash``, ``algorithm``, ``issuer id``, ``pan``,
    ``expiry``, ``static data``, ``cid``, ``transaction hash``)."""

    def __init__(self, what: str, check: str, reason: str) -> None:
        self.what, self.check = what, check
        super().__init__(f"{what}: {check} check failed: {reason}")


# --- shared pieces -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A recovered (or CA) RSA public key, with the certificate's expiry and serial."""

    modulus: bytes
    exponent: int
    expiry: bytes = b""
    serial: bytes = b""


@dataclass(frozen=True, slots=True)
class CertificateParts:
    """A public-key certificate as the card carries it: 90/9F46, 92/9F48, 9F32/9F47."""

    certificate: bytes
    remainder: bytes
    exponent: bytes


def exponent_bytes(exponent: int) -> bytes:
    """9F32/9F47: ``03`` or ``010001``."""
    return exponent.to_bytes((exponent.bit_length() + 7) // 8, "big")


def issuer_identifier(pan_prefix: str) -> bytes:
    """Field 3 of the issuer certificate: the leftmost 3-8 PAN digits, F-padded to 4 bytes."""
    if not (pan_prefix.isdigit() and 3 <= len(pan_prefix) <= 8):
        raise DecodeError("issuer identifier: 3 to 8 leading PAN digits", field="issuer_id")
    return bytes.fromhex(pan_prefix.ljust(8, "F"))


def _digits(cn: bytes) -> str:
    return cn.hex().upper().rstrip("F")


def _sign_block(sign: RawSigner, length: int, body: bytes, hashed_extra: bytes) -> bytes:
    """``6A ‖ body ‖ SHA-1(body ‖ extra) ‖ BC`` signed; ``body`` starts with the format."""
    block = bytes([HEADER]) + body + sha1(body + hashed_extra) + bytes([TRAILER])
    if len(block) != length:
        raise DecodeError(f"signed block is {len(block)} bytes, the key needs {length}")
    return sign(block)


def _key_fields(length: int, modulus: bytes, overhead: int) -> tuple[bytes, bytes]:
    room = length - overhead
    if len(modulus) <= room:
        return modulus + bytes([PAD]) * (room - len(modulus)), b""
    return modulus[:room], modulus[room:]


def _recover(what: str, modulus: bytes, exponent: int, data: bytes, fmt: int) -> bytes:
    if len(data) != len(modulus):
        raise CertificateError(what, "length", f"{len(data)} bytes, the key has {len(modulus)}")
    block = rsa_recover(modulus, exponent, data)
    if block[-1] != TRAILER:
        raise CertificateError(what, "trailer", "recovered data does not end with BC")
    if block[0] != HEADER:
        raise CertificateError(what, "header", "recovered data does not start with 6A")
    if block[1] != fmt:
        raise CertificateError(what, "format", f"format {block[1]:02X}, expected {fmt:02X}")
    return block


def _check_hash(what: str, block: bytes, extra: bytes) -> None:
    if not equal(sha1(block[1 : -_HASH - 1] + extra), block[-_HASH - 1 : -1]):
        raise CertificateError(what, "hash", "the hash of the signed data does not match")


def _check_expiry(what: str, mmyy: bytes, today: dt.date) -> None:
    text = mmyy.hex()
    if not text.isdigit() or not 1 <= int(text[:2]) <= 12:
        raise CertificateError(what, "expiry", "not a MMYY date")
    if (2000 + int(text[2:]), int(text[:2])) < (today.year, today.month):
        raise CertificateError(what, "expiry", f"expired at the end of {text[:2]}/{text[2:]}")


def _check_algorithms(what: str, hash_algorithm: int, pk_algorithm: int) -> None:
    if hash_algorithm != HASH_SHA1 or pk_algorithm != PK_RSA:
        raise CertificateError(
            what, "algorithm", "hash or public-key algorithm not 01 (SHA-1, RSA)"
        )


# --- issuer and ICC certificates --------------------------------------------------------------


def build_issuer_certificate(
    sign: RawSigner,
    ca_length: int,
    *,
    issuer_id: bytes,
    expiry: bytes,
    serial: bytes,
    modulus: bytes,
    exponent: int,
) -> CertificateParts:
    """90, 92 and 9F32 for an issuer key, signed by the CA (``ca_length`` = its modulus bytes)."""
    exp = exponent_bytes(exponent)
    key_part, remainder = _key_fields(ca_length, modulus, 36)
    body = (
        b"\x02"
        + issuer_id
        + expiry
        + serial
        + bytes([HASH_SHA1, PK_RSA, len(modulus), len(exp)])
        + key_part
    )
    return CertificateParts(_sign_block(sign, ca_length, body, remainder + exp), remainder, exp)


def recover_issuer_key(
    ca: PublicKey,
    certificate: bytes,
    remainder: bytes,
    exponent: bytes,
    *,
    pan: bytes,
    today: dt.date,
) -> PublicKey:
    """The issuer public key from 90/92/9F32 with the CA key (EMV Book 2 5.3 / 6.3)."""
    what = "issuer certificate (90)"
    block = _recover(what, ca.modulus, ca.exponent, certificate, 0x02)
    _check_hash(what, block, remainder + exponent)
    cert = ISSUER_CERT.decode(block)
    if not _digits(pan).startswith(_digits(cert.issuer_id)) or len(_digits(cert.issuer_id)) < 3:
        raise CertificateError(what, "issuer id", "the issuer identifier is not the PAN's prefix")
    _check_expiry(what, cert.expiry, today)
    _check_algorithms(what, cert.hash_algorithm, cert.pk_algorithm)
    return PublicKey(
        _key_from(cert.key_part, remainder, cert.pk_length, what),
        int.from_bytes(exponent, "big"),
        cert.expiry,
        cert.serial,
    )


def _key_from(key_part: bytes, remainder: bytes, length: int, what: str) -> bytes:
    if length <= len(key_part):
        if remainder:
            raise CertificateError(what, "length", "a remainder with a key that fits the block")
        return key_part[:length]
    if len(key_part) + len(remainder) != length:
        raise CertificateError(what, "length", "the remainder does not complete the key")
    return key_part + remainder


def build_icc_certificate(
    sign: RawSigner,
    issuer_length: int,
    *,
    pan: bytes,
    expiry: bytes,
    serial: bytes,
    modulus: bytes,
    exponent: int,
    static: bytes,
) -> CertificateParts:
    """9F46, 9F48 and 9F47 for an ICC key, signed by the issuer; ``pan`` is 5A (cn), F-padded
    here to 10 bytes; ``static`` is :func:`static_data` of the card."""
    exp = exponent_bytes(exponent)
    pan10 = bytes.fromhex(_digits(pan).ljust(20, "F"))
    key_part, remainder = _key_fields(issuer_length, modulus, 42)
    body = (
        b"\x04"
        + pan10
        + expiry
        + serial
        + bytes([HASH_SHA1, PK_RSA, len(modulus), len(exp)])
        + key_part
    )
    cert = _sign_block(sign, issuer_length, body, remainder + exp + static)
    return CertificateParts(cert, remainder, exp)


def recover_icc_key(
    issuer: PublicKey,
    certificate: bytes,
    remainder: bytes,
    exponent: bytes,
    *,
    pan: bytes,
    static: bytes,
    today: dt.date,
) -> PublicKey:
    """The ICC public key from 9F46/9F48/9F47 with the issuer key (EMV Book 2 6.4)."""
    what = "ICC certificate (9F46)"
    block = _recover(what, issuer.modulus, issuer.exponent, certificate, 0x04)
    _check_hash(what, block, remainder + exponent + static)
    cert = ICC_CERT.decode(block)
    if _digits(cert.pan) != _digits(pan):
        raise CertificateError(what, "pan", "the certified PAN is not the card's 5A")
    _check_expiry(what, cert.expiry, today)
    _check_algorithms(what, cert.hash_algorithm, cert.pk_algorithm)
    return PublicKey(
        _key_from(cert.key_part, remainder, cert.pk_length, what),
        int.from_bytes(exponent, "big"),
        cert.expiry,
        cert.serial,
    )


def static_data(
    records: Iterable[tuple[int, bytes]], tag_list: bytes, tags: Mapping[int, bytes]
) -> bytes:
    """The static data to be authenticated (EMV Book 3 10.3): each ODA record in AFL order -
    for SFI 1-10 the value of its template 70, for SFI 11-30 the whole record - then the values
    of the tags ``tag_list`` (9F4A) names; EMV allows only 82 (the AIP) there."""
    out = bytearray()
    for sfi, record in records:
        if sfi <= 10:
            try:
                one = tlv.parse_one(record)
            except DecodeError:
                one = None
            if one is None or one.tag != 0x70:
                raise CertificateError(
                    "static data", "static data", f"an ODA record of SFI {sfi} is not a 70 template"
                )
            out += one.value
        else:
            out += record
    if tag_list:
        if tag_list != b"\x82":
            raise CertificateError("static data", "static data", "9F4A lists a tag other than 82")
        if 0x82 not in tags:
            raise CertificateError("static data", "static data", "9F4A names 82 but no AIP")
        out += tags[0x82]
    return bytes(out)


# --- signed static and dynamic data --------------------------------------------------------------


def build_ssad(sign: RawSigner, issuer_length: int, *, dac: bytes, static: bytes) -> bytes:
    """93: the issuer's signature over the DAC and the static data (SDA)."""
    body = b"\x03" + bytes([HASH_SHA1]) + dac + bytes([PAD]) * (issuer_length - 26)
    return _sign_block(sign, issuer_length, body, static)


def _open(what: str, key: PublicKey, signature: bytes, fmt: int, extra: bytes) -> bytes:
    """Recover a signed-data block of format ``fmt``, check its hash over ``extra``."""
    block = _recover(what, key.modulus, key.exponent, signature, fmt)
    _check_hash(what, block, extra)
    if block[2] != HASH_SHA1:
        raise CertificateError(what, "algorithm", "hash algorithm not 01 (SHA-1)")
    return block


def verify_ssad(issuer: PublicKey, signature: bytes, static: bytes) -> bytes:
    """Check 93 (EMV Book 2 5.4); return the data authentication code (9F45)."""
    return SSAD.decode(_open("signed static data (93)", issuer, signature, 0x03, static)).dac


def dda_dynamic_data(icc_dynamic_number: bytes) -> bytes:
    """ICC dynamic data for DDA/fDDA: ``Ldn ‖ ICC dynamic number`` (Book 2 table 17)."""
    return bytes([len(icc_dynamic_number)]) + icc_dynamic_number


def build_sdad(
    sign: RawSigner, icc_length: int, *, dynamic_data: bytes, terminal_data: bytes
) -> bytes:
    """9F4B: the ICC's signature over its dynamic data and the terminal's data (DDOL data for
    DDA, 9F37 for CDA, :func:`fdda_terminal_data` for fDDA)."""
    pad = icc_length - len(dynamic_data) - 25
    if pad < 0:
        raise DecodeError("signed dynamic data: dynamic data too long for the ICC key")
    body = b"\x05" + bytes([HASH_SHA1, len(dynamic_data)]) + dynamic_data + bytes([PAD]) * pad
    return _sign_block(sign, icc_length, body, terminal_data)


def verify_sdad(icc: PublicKey, signature: bytes, terminal_data: bytes) -> bytes:
    """Check 9F4B (EMV Book 2 6.5); return the ICC dynamic data."""
    block = _open("signed dynamic data (9F4B)", icc, signature, 0x05, terminal_data)
    return SDAD.decode(block).dynamic_data


def fdda_terminal_data(un: bytes, amount: bytes, currency: bytes, card_auth: bytes) -> bytes:
    """fDDA version 01 (JR/T 0025.12 annex B): 9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69."""
    return un + amount + currency + card_auth


# --- CDA ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CdaData:
    """The ICC dynamic data of a CDA signature (Book 2 table 19)."""

    dynamic_number: bytes
    cid: int
    ac: bytes
    transaction_hash: bytes


def cda_transaction_hash(pdol_data: bytes, cdol_data: bytes, response: bytes) -> bytes:
    """Transaction data hash code (Book 2 6.6.1): SHA-1 of the PDOL data, the CDOL data and
    the GENERATE AC response's data objects (TLV-coded, in order) except 9F4B."""
    kept = b"".join(t.to_bytes() for t in tlv.parse(response) if t.tag != 0x9F4B)
    return sha1(pdol_data + cdol_data + kept)


def cda_dynamic_data(dynamic_number: bytes, cid: int, ac: bytes, transaction_hash: bytes) -> bytes:
    """``Ldn ‖ IDN ‖ CID ‖ AC ‖ transaction data hash code``."""
    return dda_dynamic_data(dynamic_number) + bytes([cid]) + ac + transaction_hash


def verify_cda(
    icc: PublicKey,
    signature: bytes,
    *,
    un: bytes,
    cid: int,
    pdol_data: bytes,
    cdol_data: bytes,
    response: bytes,
) -> CdaData:
    """Check a CDA 9F4B (Book 2 6.6.2): signature, CID, transaction data hash; return the
    signed AC and dynamic number."""
    dd = verify_sdad(icc, signature, un)
    what = "CDA signature (9F4B)"
    n = dd[0] if dd else 0
    if len(dd) != 1 + n + 1 + 8 + _HASH:
        raise CertificateError(what, "format", "ICC dynamic data is not Ldn IDN CID AC hash")
    data = CdaData(dd[1 : 1 + n], dd[1 + n], dd[2 + n : 10 + n], dd[10 + n :])
    if data.cid != cid:
        raise CertificateError(what, "cid", "the signed CID is not the one returned")
    if not equal(data.transaction_hash, cda_transaction_hash(pdol_data, cdol_data, response)):
        raise CertificateError(what, "transaction hash", "the transaction data hash differs")
    return data
