"""SM2 key pairs in the software key store's JSON (``cardperso-keystore/1``).

An entry::

    "pki-root": {"algorithm": "SM2", "value": "<d, 32 bytes hex>",
                 "public_key": "04<x><y> hex", "kcv": "<SM3(04 || x || y)[:3] hex>",
                 "purpose": "optional free text"}

The loader derives the public key from ``value``, refuses an entry whose ``public_key`` or
``kcv`` does not match it, and a ``value`` outside [1, n-2]; errors name the key, never a value.

Also the records of an SM2 key pool (:mod:`cardperso.keystore.pool`, ``type`` ``sm2``):
``x ‖ y`` ‖ ``E(KEK, d ‖ 80 00…)``, made by :func:`sm2_records` (one ``wrap`` per batch) and
opened by :func:`open_pool_keys` (one ``unwrap`` per batch, every key checked against its
public half).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cardperso.crypto import primitives as cp
from cardperso.crypto.sm2 import Sm2PrivateKey, check_value, sm3
from cardperso.errors import DataError, KeyStoreError, UsageError

if TYPE_CHECKING:
    from cardperso.keystore.base import KeyInfo, KeyStore
    from cardperso.keystore.pool import PoolKeys

#: The test PKI's CA key pairs (root, issuing CA) a fresh store and the sample store hold; the
#: certificates are made from them by ``cardperso pki ca`` (docs/pki.md).
PKI_ROOT_KEY = "pki-root"
PKI_ISSUING_KEY = "pki-issuing-ca"
PKI_CA_KEYS = (PKI_ROOT_KEY, PKI_ISSUING_KEY)


def create_pki_keys(store: KeyStore, *, replace: bool = False) -> list[KeyInfo]:
    """Fresh SM2 key pairs for the test PKI's root and issuing CA in ``store``."""
    return [store.generate_sm2_key(name, replace=replace) for name in PKI_CA_KEYS]


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


def sm2_records(store: KeyStore, kek: str, n: int) -> bytes:
    """``n`` fresh SM2 key pairs as pool records, their private keys encrypted under ``kek``
    with one ``wrap`` call (the clear keys never leave this process)."""
    block = cp.BLOCK_SIZE[store.info(kek).algorithm]
    keys = [Sm2PrivateKey.generate() for _ in range(n)]
    clear = b"".join(cp.pad_method2(k.to_bytes(), block) for k in keys)
    wrapped = store.wrap(kek, clear)
    size = len(wrapped) // n if n else 0
    out = b"".join(
        k.public_key.to_bytes()[1:] + wrapped[i * size : (i + 1) * size] for i, k in enumerate(keys)
    )
    del keys, clear
    return out


def open_pool_keys(store: KeyStore, keys: PoolKeys) -> list[Sm2PrivateKey]:
    """The SM2 key pairs of a pool read (one ``unwrap`` call); :class:`KeyStoreError` naming
    the key's position in the pool when one does not decrypt to the key of its public half."""
    if keys.kind != "sm2":
        raise KeyStoreError(f"the pool holds {keys.kind} keys, not SM2 key pairs")
    if not len(keys):
        return []
    clear = store.unwrap(keys.kek, keys.private)
    n = len(clear) // len(keys)
    out = []
    for i, public in enumerate(keys.moduli):
        where = f"SM2 key pool: key {keys.index[i] if keys.index else i}"
        try:
            key = Sm2PrivateKey.from_bytes(cp.unpad_method2(clear[i * n : (i + 1) * n]))
        except (DataError, UsageError):
            raise KeyStoreError(f"{where} does not decrypt to a private key") from None
        if not cp.equal(key.public_key.to_bytes(), b"\x04" + public):
            raise KeyStoreError(f"{where} does not match its public key")
        out.append(key)
    del clear
    return out
