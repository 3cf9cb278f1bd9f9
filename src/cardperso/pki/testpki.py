"""The test PKI's two CA certificates from the store's SM2 CA keys, as PEM files' contents.

``cardperso pki ca`` writes them for a product's ``pki`` section; the demo writes them for its
product (docs/pki.md). Pure: signers in, PEM text out.
"""

from __future__ import annotations

import datetime as dt

from cardperso.crypto.sm2 import DEFAULT_USER_ID, Sm2Signer
from cardperso.layouts import x509
from cardperso.pki.ca import Issuer, ca_certificate
from cardperso.pki.pem import to_pem

__all__ = ["TEST_ISSUING_NAME", "TEST_ROOT_NAME", "make_test_pki"]

TEST_ROOT_NAME = "Test Root"
TEST_ISSUING_NAME = "Test Issuing CA"


def make_test_pki(
    root_key: Sm2Signer,
    issuing_key: Sm2Signer,
    *,
    organization: str = "cardperso test PKI",
    user_id: bytes = DEFAULT_USER_ID,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """``root.pem`` (self-signed, 20 years), ``issuing-ca.pem`` (pathLen 0, 10 years) and
    ``chain.pem`` (both, issuing CA first: what ``pki verify --chain`` reads), by file name."""
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    base = (("C", "CN"), ("O", organization))
    root_cert = ca_certificate(root_key, x509.Name((*base, ("CN", TEST_ROOT_NAME))), serial=1,
                               not_before=now, days=7300, user_id=user_id)  # fmt: skip
    root = Issuer(root_key, root_cert, user_id)
    ca_cert = ca_certificate(issuing_key, x509.Name((*base, ("CN", TEST_ISSUING_NAME))),
                             serial=2, not_before=now, days=3650, issuer=root)  # fmt: skip
    return {
        "root.pem": to_pem(root_cert),
        "issuing-ca.pem": to_pem(ca_cert),
        "chain.pem": to_pem(ca_cert) + to_pem(root_cert),
    }
