"""The test PKI of the third-generation card: SM2 CAs, cardholder certificates, revocation lists.

Pure: keys come in as :class:`~cardperso.crypto.Sm2PrivateKey` objects (from a key store),
certificates and CRLs go out as DER bytes. The certificate profile is ``docs/pki.md``.
"""

from cardperso.pki.ca import (
    CardholderProfile,
    Holder,
    Issuer,
    ca_certificate,
    cardholder_certificate,
    certification_request,
    key_identifier,
    revocation_list,
    verify_certificate,
    verify_crl,
    verify_request,
)

__all__ = [
    "CardholderProfile",
    "Holder",
    "Issuer",
    "ca_certificate",
    "cardholder_certificate",
    "certification_request",
    "key_identifier",
    "revocation_list",
    "verify_certificate",
    "verify_crl",
    "verify_request",
]
