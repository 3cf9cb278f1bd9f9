"""SM2 key pairs in the software key store's JSON (``cardperso-keystore/1``).

An entry::

    "pki-root": {"algorithm": "SM2", "value": "<d, 32 bytes hex>",
                 "public_key": "04<x><y> hex", "kcv": "<SM3(04 || x || y)[:3] hex>",
                 "purpose": "optional free text"}

The loader derives the public key from ``value``, refuses an entry whose ``public_key`` or
``kcv`` does not match it, and a ``value`` outside [1, n-2]; errors name the key, never a value.
"""

from __future__ import annotations

from typing import Any

from cardperso.crypto import primitives as cp
from cardperso.crypto.sm2 import Sm2PrivateKey, check_value, sm3
from cardperso.errors import DataError, KeyStoreError


def _hex(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise KeyStoreError(f"{what} must be a hex string")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise KeyStoreError(f"{what} is not valid hex") from None


def load_sm2_entry(where: str, name: str, entry: dict[str, Any]) -> Sm2PrivateKey:
    """The key pair of one ``"algorithm": "SM2"`` entry, every field checked."""
    value = _hex(entry.get("value"), f"{where}: key {name!r} value")
    public = _hex(entry.get("public_key"), f"{where}: key {name!r} public_key")
    kcv = _hex(entry.get("kcv"), f"{where}: key {name!r} kcv")
    try:
        key = Sm2PrivateKey.from_bytes(value)
    except DataError as exc:
        raise KeyStoreError(f"{where}: key {name!r} is refused: {exc.reason}") from None
    if not cp.equal(key.public_key.to_bytes(), public):
        raise KeyStoreError(f"{where}: key {name!r} public_key does not match its value")
    if not 2 <= len(kcv) <= 8:
        raise KeyStoreError(f"{where}: key {name!r} kcv must be 2 to 8 bytes")
    if not cp.equal(sm3(key.public_key.to_bytes())[: len(kcv)], kcv):
        raise KeyStoreError(f"{where}: key {name!r} does not match its check value")
    return key


def sm2_entry(key: Sm2PrivateKey) -> dict[str, str]:
    """The JSON entry of ``key`` (**with the private value in clear**, for ``save`` only)."""
    return {
        "algorithm": "SM2",
        "value": key.to_bytes().hex().upper(),
        "public_key": key.public_key.to_bytes().hex().upper(),
        "kcv": check_value(key.public_key).hex().upper(),
    }
