"""RSA key pairs in a PKCS#11 token: the ODA CA and issuer keys, never extracted.

A pair is a private-key object (``CKA_SENSITIVE``, not extractable, ``CKA_SIGN`` only) and its
public-key object, both labelled with the key's label. Pairs are generated in the token
(``C_GenerateKeyPair``, ``CKM_RSA_PKCS_KEY_PAIR_GEN``, public exponent 3) and used through
``C_Sign`` with ``CKM_RSA_X_509``: the raw private operation EMV's certificate formats need
(the block already has its ``6A … BC`` framing). Nothing here holds key material: objects are
token handles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e

from cardperso.errors import KeyStoreError
from cardperso.keystore.pkcs11.token import TEST_KEY_ID, only_bytes, why

__all__ = ["find_pair", "generate_pair", "private_labels", "public_key", "raw_signer"]

_REFUSED = (p11e.PKCS11Error, RuntimeError)


def _one(session: Any, cls: Any, label: str) -> Any | None:
    found = list(session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label}))
    if len(found) > 1:
        raise KeyStoreError(f"token holds {len(found)} RSA objects labelled {label!r}")
    return found[0] if found else None


def find_pair(session: Any, label: str) -> tuple[Any, Any] | None:
    """(private, public) objects labelled ``label``, or ``None`` when there is no such pair."""
    private = _one(session, ObjectClass.PRIVATE_KEY, label)
    public = _one(session, ObjectClass.PUBLIC_KEY, label)
    if private is None and public is None:
        return None
    if private is None or public is None:
        raise KeyStoreError(f"token holds half of the RSA key pair {label!r}")
    return private, public


def private_labels(session: Any) -> list[str]:
    """Labels of the token's RSA private keys."""
    return [
        obj[Attribute.LABEL]
        for obj in session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.RSA}
        )
    ]


def destroy_pair(session: Any, label: str) -> None:
    pair = find_pair(session, label)
    for obj in pair or ():
        obj.destroy()


def generate_pair(session: Any, label: str, bits: int, exponent: int, test_key: bool) -> None:
    """Generate a pair in the token; the private key is sensitive and never extractable."""
    key_id = TEST_KEY_ID if test_key else b"cardperso:key"
    exp = exponent.to_bytes((exponent.bit_length() + 7) // 8, "big")
    try:
        session.generate_keypair(
            KeyType.RSA,
            bits,
            store=True,
            label=label,
            id=key_id,
            capabilities=MechanismFlag(0),
            public_template={
                Attribute.PUBLIC_EXPONENT: exp,
                Attribute.VERIFY: True,
                Attribute.ENCRYPT: False,
                Attribute.WRAP: False,
            },
            private_template={
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
                Attribute.DERIVE: False,
            },
        )
    except _REFUSED as exc:
        destroy_pair(session, label)
        raise KeyStoreError(f"token refused to generate RSA key {label!r}: {why(exc)}") from None


def public_key(public: Any) -> tuple[bytes, int]:
    """(modulus, exponent) of a public-key object."""
    modulus = bytes(public[Attribute.MODULUS]).lstrip(b"\x00")
    exponent = int.from_bytes(bytes(public[Attribute.PUBLIC_EXPONENT]), "big")
    return modulus, exponent


def raw_signer(private: Any, label: str) -> Callable[[bytes], bytes]:
    """``C_Sign`` with ``CKM_RSA_X_509`` under ``private``: block in, raw signature out."""

    def sign(block: bytes) -> bytes:
        try:
            return only_bytes(private.sign(block, mechanism=Mechanism.RSA_X_509))
        except _REFUSED as exc:
            raise KeyStoreError(f"token refused to sign with {label!r}: {why(exc)}") from None

    return sign
