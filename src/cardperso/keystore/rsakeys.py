"""RSA key pairs (the ODA certification authority and issuer keys) in the software key store.

An entry of the software store's JSON (``cardperso-keystore/1``)::

    "oda-ca-A000000333-F1": {"algorithm": "RSA", "modulus": "<hex>", "exponent": 3,
                             "p": "<hex>", "q": "<hex>", "dp": "<hex>", "dq": "<hex>",
                             "qinv": "<hex>", "kcv": "<SHA-1(modulus ‖ exponent)[:3] hex>"}

The loader checks every part against the others (:meth:`RsaKey.from_crt`) and the check value
against the public key; errors name the key, never a value. :class:`RsaKeyHolder` is the part of
:class:`~cardperso.keystore.software.SoftwareKeyStore` that holds these pairs, so the store's
own module only routes entries here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cardperso.crypto import primitives as cp
from cardperso.crypto.rsa import RsaKey, rsa_generate, rsa_sign_raw, sha1
from cardperso.errors import KeyStoreError, UsageError
from cardperso.keystore.base import KeyInfo
from cardperso.keystore.sm2keys import _hex  # one hex-field rule for the store's key entries

__all__ = ["RSA", "RsaKeyHolder", "load_rsa_entry", "rsa_check_value", "rsa_entry"]

RSA = "RSA"
_PARTS = ("p", "q", "dp", "dq", "qinv")


def rsa_check_value(modulus: bytes, exponent: int) -> bytes:
    """The 3-byte check value of an RSA key pair: SHA-1(modulus ‖ exponent bytes)[:3] (over the
    public key, so a token computes it without exporting the private key)."""
    exp = exponent.to_bytes((exponent.bit_length() + 7) // 8, "big")
    return sha1(modulus + exp)[:3]


def load_rsa_entry(where: str, name: str, entry: dict[str, Any]) -> RsaKey:
    """The key pair of one ``"algorithm": "RSA"`` entry, every field checked."""
    at = f"{where}: key {name!r}"
    exponent = entry.get("exponent")
    if not isinstance(exponent, int) or isinstance(exponent, bool):
        raise KeyStoreError(f"{at} exponent must be an integer")
    modulus = _hex(entry.get("modulus"), f"{at} modulus")
    parts = [_hex(entry.get(part), f"{at} {part}") for part in _PARTS]
    kcv = _hex(entry.get("kcv"), f"{at} kcv")
    try:
        key = RsaKey.from_crt(modulus, exponent, *parts)
    except UsageError as exc:
        raise KeyStoreError(f"{at} is refused: {exc}") from None
    if not 2 <= len(kcv) <= 8 or not cp.equal(rsa_check_value(modulus, exponent)[: len(kcv)], kcv):
        raise KeyStoreError(f"{at} does not match its check value")
    return key


def rsa_entry(key: RsaKey) -> dict[str, Any]:
    """The JSON entry of ``key`` (**with the private parts in clear**, for ``save`` only)."""
    entry: dict[str, Any] = {"algorithm": RSA, "modulus": key.modulus.hex().upper(),
                             "exponent": key.exponent}  # fmt: skip
    for part in _PARTS:
        entry[part] = getattr(key, part).hex().upper()
    entry["kcv"] = rsa_check_value(key.modulus, key.exponent).hex().upper()
    return entry


class RsaKeyHolder:
    """RSA key pairs held in clear in host memory (the software store's share of them)."""

    def __init__(self) -> None:
        self.pairs: dict[str, RsaKey] = {}

    def info(self, name: str, location: str, test_key: bool) -> KeyInfo:
        key = self.pairs[name]
        return KeyInfo(name, RSA, rsa_check_value(key.modulus, key.exponent), location, test_key)

    def signer(self, name: str, location: str) -> Callable[[bytes], bytes]:
        key = self._get(name, location)
        return lambda block: rsa_sign_raw(key, block)

    def public_key(self, name: str, location: str) -> tuple[bytes, int]:
        key = self._get(name, location)
        return key.modulus, key.exponent

    def generate(self, name: str, bits: int, exponent: int) -> None:
        self.pairs[name] = rsa_generate(bits, exponent)

    def _get(self, name: str, location: str) -> RsaKey:
        try:
            return self.pairs[name]
        except KeyError:
            raise KeyStoreError(f"no RSA key pair named {name!r} in {location}") from None
