"""X.509 v3 certificates and CRLs with SM2 keys: the DER layouts of the test PKI.

How this works
--------------
The ASN.1 is ``asn1crypto``'s (pure Python, the definitions of RFC 5280); this module fixes
what goes into it for SM2 and hides its objects behind frozen dataclasses:

* keys: ``SubjectPublicKeyInfo`` with ``id-ecPublicKey`` (1.2.840.10045.2.1) and the named curve
  sm2p256v1 (**1.2.156.10197.1.301**, GB/T 32918.5 / GM/T 0006), the key as ``04 || x || y``;
* signatures: algorithm **sm2-with-sm3** (1.2.156.10197.1.501, GM/T 0006) without parameters,
  the value the DER ``SEQUENCE { r, s }`` of GM/T 0009, made with the default user ID
  ``1234567812345678`` (GM/T 0015 section 7.3 for certificates);
* :func:`tbs_certificate` / :func:`tbs_crl` build the to-be-signed part from a model;
  :func:`signed` wraps it with the issuer's signature; :func:`decode_certificate` and
  :func:`decode_crl` read the fields back (for checks and tests).

Dates are UTCTime up to 2049 and GeneralizedTime from 2050 (RFC 5280 4.1.2.5). Profile choices
(which extensions, which name attributes) are in ``docs/pki.md``.

Vectors: :data:`VECTORS` holds the SubjectPublicKeyInfo of GB/T 32918.5's example public key,
which ``openssl pkey -pubin -inform DER -text`` reads as that key (tests/test_pki_x509.py).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Final

from asn1crypto import algos, keys, x509  # type: ignore[import-untyped]
from asn1crypto import crl as asn1_crl
from asn1crypto import csr as asn1_csr

from cardperso.errors import DecodeError, EncodingError

OID_EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
OID_SM2_CURVE: Final = "1.2.156.10197.1.301"
OID_SM2_WITH_SM3: Final = "1.2.156.10197.1.501"

# asn1crypto needs a named curve's key length to build an ECPrivateKey (PKCS#8 export).
if OID_SM2_CURVE not in keys.NamedCurve._map:
    keys.NamedCurve.register("sm2p256v1", OID_SM2_CURVE, 32)

#: Name attributes a profile may use, by their short names (RFC 4519 / X.520), in DN order.
NAME_ATTRIBUTES: Final = {
    "C": "country_name",
    "ST": "state_or_province_name",
    "L": "locality_name",
    "O": "organization_name",
    "OU": "organizational_unit_name",
    "CN": "common_name",
    "serialNumber": "serial_number",
}

_PRINTABLE: Final = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]+")

#: The key-usage bits the profiles use (RFC 5280 4.2.1.3).
KEY_USAGES: Final = (
    "digital_signature",
    "non_repudiation",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


@dataclass(frozen=True, slots=True)
class Name:
    """A distinguished name as ``(short name, value)`` pairs in order, e.g. ``("CN", "...")``."""

    attributes: tuple[tuple[str, str], ...]

    def to_asn1(self) -> x509.Name:
        """In the given order, one attribute per RDN. C and serialNumber are PrintableString
        when their value allows it (a masked identity number has ``*``, which PrintableString
        lacks: it is written as UTF8String); every other attribute is UTF8String."""
        rdns = []
        for short, value in self.attributes:
            if short not in NAME_ATTRIBUTES:
                raise EncodingError(f"unknown name attribute {short!r}", field="subject")
            if short in ("C", "serialNumber") and _PRINTABLE.fullmatch(value):
                encoded = x509.DirectoryString(
                    name="printable_string", value=x509.PrintableString(value)
                )
            else:
                encoded = x509.DirectoryString(name="utf8_string", value=x509.UTF8String(value))
            rdns.append(
                x509.RelativeDistinguishedName(
                    [x509.NameTypeAndValue({"type": NAME_ATTRIBUTES[short], "value": encoded})]
                )
            )
        return x509.Name(name="", value=x509.RDNSequence(rdns))

    def get(self, short: str) -> str | None:
        for key, value in self.attributes:
            if key == short:
                return value
        return None


@dataclass(frozen=True, slots=True)
class CertificateModel:
    """The fields of an SM2 certificate that the PKI sets and checks."""

    serial: int
    issuer: Name
    subject: Name
    not_before: dt.datetime
    not_after: dt.datetime
    public_key: bytes  # 04 || x || y
    is_ca: bool = False
    path_length: int | None = None
    key_usage: frozenset[str] = frozenset({"digital_signature", "non_repudiation"})
    subject_key_id: bytes = b""
    authority_key_id: bytes = b""
    signature: bytes = field(default=b"", compare=False)  # DER r, s (decoded certificates)


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    serial: int
    revoked_at: dt.datetime
    reason: str = "unspecified"  # RFC 5280 5.3.1 names: key_compromise, cessation_of_operation...


@dataclass(frozen=True, slots=True)
class CrlModel:
    issuer: Name
    this_update: dt.datetime
    next_update: dt.datetime
    number: int
    revoked: tuple[RevokedEntry, ...] = ()
    authority_key_id: bytes = b""
    signature: bytes = field(default=b"", compare=False)


#: The largest certificate, CRL or key the decoders read: a card's certificate file is ~1 KiB, a
#: CRL of a few thousand cards some 100 KiB; larger input is refused before it is parsed.
MAX_DER: Final = 1024 * 1024


def _check_size(der: bytes, what: str) -> None:
    if len(der) > MAX_DER:
        raise DecodeError(f"{what} is over {MAX_DER:,} bytes, not read")


def _unparsable(what: str, exc: Exception) -> DecodeError:
    """One line naming what did not parse; asn1crypto's own text (several lines, and able to
    quote field values such as a subject's identity number) is never shown."""
    return DecodeError(f"{what} does not parse as DER ({type(exc).__name__})")


def _time(value: dt.datetime) -> x509.Time:
    if value.tzinfo is None:
        raise EncodingError("certificate times must carry a time zone", field="validity")
    value = value.astimezone(dt.UTC).replace(microsecond=0)
    if value.year < 2050:
        return x509.Time(name="utc_time", value=value)
    return x509.Time(name="general_time", value=value)


def _sig_algorithm() -> algos.SignedDigestAlgorithm:
    return algos.SignedDigestAlgorithm({"algorithm": OID_SM2_WITH_SM3})


def public_key_info(public_key: bytes) -> bytes:
    """``SubjectPublicKeyInfo`` DER of an SM2 public key ``04 || x || y``."""
    return bytes(_spki(public_key).dump())


def _spki(public_key: bytes) -> keys.PublicKeyInfo:
    if len(public_key) != 65 or public_key[0] != 0x04:
        raise EncodingError("SM2 public key must be 04 || x || y (65 bytes)", field="public_key")
    algorithm = keys.PublicKeyAlgorithm(
        {
            "algorithm": "ec",
            "parameters": keys.ECDomainParameters(name="named", value="sm2p256v1"),
        }
    )
    return keys.PublicKeyInfo({"algorithm": algorithm, "public_key": public_key})


def public_key_from_info(der: bytes) -> bytes:
    """The ``04 || x || y`` of an SM2 ``SubjectPublicKeyInfo``; anything else is refused."""
    _check_size(der, "SubjectPublicKeyInfo")
    try:
        info = keys.PublicKeyInfo.load(der, strict=True)
        algorithm = info["algorithm"]
        if algorithm["algorithm"].dotted != OID_EC_PUBLIC_KEY:
            raise DecodeError("not an EC public key", field="public_key")
        if algorithm["parameters"].chosen.dotted != OID_SM2_CURVE:
            raise DecodeError("not on the SM2 curve (1.2.156.10197.1.301)", field="public_key")
        point = bytes(info["public_key"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise _unparsable("SubjectPublicKeyInfo", exc) from None
    if len(point) != 65 or point[0] != 0x04:
        raise DecodeError("SM2 public key must be uncompressed (04 || x || y)", field="public_key")
    return point


def private_key_info(private_key: bytes, public_key: bytes) -> bytes:
    """PKCS#8 ``PrivateKeyInfo`` DER (RFC 5915 ECPrivateKey inside) - for OpenSSL and HSM import."""
    ec_key = keys.ECPrivateKey(
        {
            "version": "ecPrivkeyVer1",
            "private_key": int.from_bytes(private_key, "big"),
            "public_key": public_key,
        }
    )
    algorithm = keys.PrivateKeyAlgorithm(
        {
            "algorithm": "ec",
            "parameters": keys.ECDomainParameters(name="named", value="sm2p256v1"),
        }
    )
    info = keys.PrivateKeyInfo(
        {"version": 0, "private_key_algorithm": algorithm, "private_key": ec_key}
    )
    return bytes(info.dump())


def _extensions(model: CertificateModel) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "extn_id": "basic_constraints",
            "critical": True,
            "extn_value": {"ca": model.is_ca, "path_len_constraint": model.path_length},
        },
        {"extn_id": "key_usage", "critical": True, "extn_value": set(model.key_usage)},
    ]
    if model.subject_key_id:
        out.append(
            {"extn_id": "key_identifier", "critical": False, "extn_value": model.subject_key_id}
        )
    if model.authority_key_id:
        out.append(
            {
                "extn_id": "authority_key_identifier",
                "critical": False,
                "extn_value": {"key_identifier": model.authority_key_id},
            }
        )
    return out


def tbs_certificate(model: CertificateModel) -> bytes:
    """The DER ``TBSCertificate`` (v3) of ``model``, to be signed by the issuer."""
    unknown = set(model.key_usage) - set(KEY_USAGES)
    if unknown:
        raise EncodingError(f"unknown key usage {sorted(unknown)}", field="key_usage")
    if not 0 < model.serial < 1 << 159:
        raise EncodingError("serial must be positive and at most 20 octets", field="serial")
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": model.serial,
            "signature": _sig_algorithm(),
            "issuer": model.issuer.to_asn1(),
            "validity": {
                "not_before": _time(model.not_before),
                "not_after": _time(model.not_after),
            },
            "subject": model.subject.to_asn1(),
            "subject_public_key_info": _spki(model.public_key),
            "extensions": _extensions(model),
        }
    )
    return bytes(tbs.dump())


def tbs_crl(model: CrlModel) -> bytes:
    """The DER ``TBSCertList`` (v2, with CRL number) of ``model``."""
    revoked = [
        {
            "user_certificate": entry.serial,
            "revocation_date": _time(entry.revoked_at),
            "crl_entry_extensions": [
                {"extn_id": "crl_reason", "critical": False, "extn_value": entry.reason}
            ],
        }
        for entry in model.revoked
    ]
    extensions: list[dict[str, Any]] = [
        {"extn_id": "crl_number", "critical": False, "extn_value": model.number}
    ]
    if model.authority_key_id:
        extensions.append(
            {
                "extn_id": "authority_key_identifier",
                "critical": False,
                "extn_value": {"key_identifier": model.authority_key_id},
            }
        )
    tbs = asn1_crl.TbsCertList(
        {
            "version": "v2",
            "signature": _sig_algorithm(),
            "issuer": model.issuer.to_asn1(),
            "this_update": _time(model.this_update),
            "next_update": _time(model.next_update),
            "revoked_certificates": revoked or None,
            "crl_extensions": extensions,
        }
    )
    return bytes(tbs.dump())


def signed(tbs: bytes, signature_der: bytes) -> bytes:
    """``SEQUENCE { tbs, sm2-with-sm3, BIT STRING signature }`` (a certificate or a CRL)."""
    bits = b"\x03" + _der_len(len(signature_der) + 1) + b"\x00" + signature_der
    body = tbs + bytes(_sig_algorithm().dump()) + bits
    return b"\x30" + _der_len(len(body)) + body


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(length)]) + length


def _name(value: x509.Name) -> Name:
    reverse = {v: k for k, v in NAME_ATTRIBUTES.items()}
    pairs = []
    for rdn in value.chosen:
        for attr in rdn:
            short = reverse.get(attr["type"].native, attr["type"].dotted)
            pairs.append((short, str(attr["value"].native)))
    return Name(tuple(pairs))


def tbs_request(subject: Name, public_key: bytes) -> bytes:
    """The DER ``CertificationRequestInfo`` (PKCS#10, RFC 2986) of an SM2 key, no attributes."""
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": subject.to_asn1(),
            "subject_pk_info": _spki(public_key),
            "attributes": [],
        }
    )
    return bytes(info.dump())


def request_parts(der: bytes) -> tuple[bytes, bytes, Name, bytes]:
    """``(CertificationRequestInfo DER, signature DER, subject, public key)`` of an
    sm2-with-sm3 PKCS#10 request."""
    _check_size(der, "certificate request")
    try:
        req = asn1_csr.CertificationRequest.load(der, strict=True)
        _check_algorithm(req["signature_algorithm"])
        info = req["certification_request_info"]
        public = public_key_from_info(bytes(info["subject_pk_info"].dump()))
        return (
            bytes(info.dump()),
            bytes(req["signature"].native),
            _name(info["subject"]),
            public,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise _unparsable("certificate request", exc) from None


def _check_algorithm(algorithm: algos.SignedDigestAlgorithm) -> None:
    if algorithm["algorithm"].dotted != OID_SM2_WITH_SM3:
        raise DecodeError("signature algorithm is not sm2-with-sm3", field="signature")


def certificate_parts(der: bytes) -> tuple[bytes, bytes]:
    """``(TBSCertificate DER, signature DER)`` of an sm2-with-sm3 certificate."""
    _check_size(der, "certificate")
    try:
        cert = x509.Certificate.load(der, strict=True)
        _check_algorithm(cert["signature_algorithm"])
        return bytes(cert["tbs_certificate"].dump()), bytes(cert["signature_value"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise _unparsable("certificate", exc) from None


def crl_parts(der: bytes) -> tuple[bytes, bytes]:
    """``(TBSCertList DER, signature DER)`` of an sm2-with-sm3 CRL."""
    _check_size(der, "CRL")
    try:
        cl = asn1_crl.CertificateList.load(der, strict=True)
        _check_algorithm(cl["signature_algorithm"])
        return bytes(cl["tbs_cert_list"].dump()), bytes(cl["signature"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise _unparsable("CRL", exc) from None


def decode_certificate(der: bytes) -> CertificateModel:
    """The model of a DER certificate (fields this module writes), with its signature."""
    _, signature = certificate_parts(der)
    try:
        cert = x509.Certificate.load(der, strict=True)
        tbs = cert["tbs_certificate"]
        bc = cert.basic_constraints_value
        ku = cert.key_usage_value
        aki = cert.authority_key_identifier_value
        return CertificateModel(
            serial=tbs["serial_number"].native,
            issuer=_name(tbs["issuer"]),
            subject=_name(tbs["subject"]),
            not_before=tbs["validity"]["not_before"].native,
            not_after=tbs["validity"]["not_after"].native,
            public_key=public_key_from_info(tbs["subject_public_key_info"].dump()),
            is_ca=bool(bc and bc["ca"].native),
            path_length=bc["path_len_constraint"].native if bc else None,
            key_usage=frozenset(ku.native) if ku else frozenset(),
            subject_key_id=cert.key_identifier or b"",
            authority_key_id=(aki["key_identifier"].native or b"") if aki else b"",
            signature=signature,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise _unparsable("certificate", exc) from None


def decode_crl(der: bytes) -> CrlModel:
    _, signature = crl_parts(der)
    try:
        cl = asn1_crl.CertificateList.load(der, strict=True)
        tbs = cl["tbs_cert_list"]
        entries = tuple(
            RevokedEntry(
                serial=e["user_certificate"].native,
                revoked_at=e["revocation_date"].native,
                reason=e.crl_reason_value.native if e.crl_reason_value else "unspecified",
            )
            for e in tbs["revoked_certificates"]
        )
        aki = cl.authority_key_identifier_value
        return CrlModel(
            issuer=_name(tbs["issuer"]),
            this_update=tbs["this_update"].native,
            next_update=tbs["next_update"].native,
            number=cl.crl_number_value.native,
            revoked=entries,
            authority_key_id=(aki["key_identifier"].native or b"") if aki else b"",
            signature=signature,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _unparsable("CRL", exc) from None


#: (public key, SubjectPublicKeyInfo DER): GB/T 32918.5 annex A's public key.
VECTORS: Final = (
    (
        bytes.fromhex(
            "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
            "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
        ),
        bytes.fromhex(
            "3059301306072A8648CE3D020106082A811CCF5501822D03420004"
            "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
            "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
        ),
    ),
)
