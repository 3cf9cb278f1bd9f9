"""Block ciphers, padding, MACs and check values: the only module that imports ``cryptography``.

How this works
--------------
* Algorithms are named by :data:`Algorithm` strings: ``"3DES"`` (8-, 16- or 24-byte keys),
  ``"AES"`` (16/24/32) and ``"SM4"`` (16). DES keys are expanded to 24 bytes in exactly one place,
  :func:`_des3_key`, because ``cryptography`` deprecates two-key TripleDES.
* Every cipher call takes whole buffers, so a batch of many blocks is one call (ECB over the
  concatenation). Batch APIs elsewhere build on this.
* Verification raises (:class:`~cardperso.errors.MacMismatch`) and compares in constant time.
* :class:`SecretKey` wraps key bytes and never shows them in ``repr``/``str``.
"""

from __future__ import annotations

import hmac
import os
from typing import Final, Literal

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac as _cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cardperso.errors import MacMismatch, UsageError

Algorithm = Literal["3DES", "AES", "SM4"]
ALGORITHMS: tuple[Algorithm, ...] = ("3DES", "AES", "SM4")

_KEY_LENGTHS: dict[str, tuple[int, ...]] = {"3DES": (8, 16, 24), "AES": (16, 24, 32), "SM4": (16,)}
BLOCK_SIZE: dict[str, int] = {"3DES": 8, "AES": 16, "SM4": 16}


def check_key(algorithm: str, key: bytes) -> None:
    """Raise :class:`UsageError` when ``key`` has no valid length for ``algorithm``."""
    lengths = _KEY_LENGTHS.get(algorithm)
    if lengths is None:
        raise UsageError(f"unknown algorithm {algorithm!r} (expected one of {ALGORITHMS})")
    if len(key) not in lengths:
        raise UsageError(f"{algorithm} key must be {' or '.join(map(str, lengths))} bytes")


def _des3_key(key: bytes) -> bytes:
    """Expand a single-, two- or three-key DES key to the 24 bytes ``TripleDES`` wants."""
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise UsageError("3DES key must be 8, 16 or 24 bytes")


def _algo(algorithm: str, key: bytes) -> algorithms.AES | algorithms.SM4 | TripleDES:
    check_key(algorithm, key)
    if algorithm == "3DES":
        return TripleDES(_des3_key(key))
    if algorithm == "AES":
        return algorithms.AES(key)
    return algorithms.SM4(key)


def _check_blocks(algorithm: str, data: bytes) -> None:
    if algorithm not in BLOCK_SIZE:
        raise UsageError(f"unknown algorithm {algorithm!r} (expected one of {ALGORITHMS})")
    if len(data) % BLOCK_SIZE[algorithm]:
        raise UsageError(f"{algorithm} data must be a multiple of {BLOCK_SIZE[algorithm]} bytes")


def ecb_encrypt(algorithm: str, key: bytes, data: bytes) -> bytes:
    """ECB-encrypt ``data`` (a whole number of blocks; many blocks = one call)."""
    _check_blocks(algorithm, data)
    enc = Cipher(_algo(algorithm, key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def ecb_decrypt(algorithm: str, key: bytes, data: bytes) -> bytes:
    """ECB-decrypt ``data`` (a whole number of blocks)."""
    _check_blocks(algorithm, data)
    dec = Cipher(_algo(algorithm, key), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def cbc_encrypt(algorithm: str, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    """CBC-encrypt ``data`` with ``iv`` (zero IV when omitted)."""
    _check_blocks(algorithm, data)
    iv = iv if iv is not None else bytes(BLOCK_SIZE[algorithm])
    enc = Cipher(_algo(algorithm, key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def cbc_decrypt(algorithm: str, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    """CBC-decrypt ``data`` with ``iv`` (zero IV when omitted)."""
    _check_blocks(algorithm, data)
    iv = iv if iv is not None else bytes(BLOCK_SIZE[algorithm])
    dec = Cipher(_algo(algorithm, key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


# -- padding (ISO/IEC 9797-1) -------------------------------------------------------------------


def pad_method1(data: bytes, block: int = 8) -> bytes:
    """ISO/IEC 9797-1 padding method 1: zero bytes up to a block boundary (none if aligned,
    one zero block for empty data)."""
    if not data:
        return bytes(block)
    return data + bytes(-len(data) % block)


def pad_method2(data: bytes, block: int = 8) -> bytes:
    """ISO/IEC 9797-1 padding method 2 (ISO 7816-4): ``80`` then zeros up to a block boundary."""
    data = data + b"\x80"
    return data + bytes(-len(data) % block)


def unpad_method2(data: bytes) -> bytes:
    """Remove method-2 padding; raise :class:`UsageError` when it is malformed."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise UsageError("bad ISO 9797-1 method 2 padding")
    return stripped[:-1]


def _pad(data: bytes, padding: int, block: int) -> bytes:
    if padding == 1:
        return pad_method1(data, block)
    if padding == 2:
        return pad_method2(data, block)
    raise UsageError(f"unknown padding method {padding}")


# -- MACs ---------------------------------------------------------------------------------------


def mac_algorithm1(
    algorithm: str, key: bytes, data: bytes, *, padding: int = 2, iv: bytes | None = None
) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 1 (CBC-MAC): the last block of CBC over the padded data."""
    block = BLOCK_SIZE[algorithm]
    return cbc_encrypt(algorithm, key, _pad(data, padding, block), iv)[-block:]


def mac_algorithm3(key: bytes, data: bytes, *, padding: int = 2, iv: bytes | None = None) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC") with DES: single-DES CBC under the left
    key, then decrypt with the right key and encrypt with the left key on the last block."""
    if len(key) != 16:
        raise UsageError("MAC algorithm 3 needs a 16-byte double-length DES key")
    k1, k2 = key[:8], key[8:]
    padded = _pad(data, padding, 8)
    last = cbc_encrypt("3DES", k1, padded, iv)[-8:]
    return ecb_encrypt("3DES", k1, ecb_decrypt("3DES", k2, last))


def cmac(algorithm: str, key: bytes, data: bytes) -> bytes:
    """CMAC (NIST SP 800-38B) over AES or SM4 (full block length)."""
    if algorithm not in ("AES", "SM4"):
        raise UsageError("CMAC is provided for AES and SM4")
    c = _cmac.CMAC(_algo(algorithm, key))
    c.update(data)
    return c.finalize()


def verify_mac(expected: bytes, received: bytes, what: str = "MAC") -> None:
    """Compare in constant time; raise :class:`MacMismatch` (naming ``what`` only) on mismatch."""
    if not hmac.compare_digest(expected, received):
        raise MacMismatch(f"{what} does not verify")


def equal(a: bytes, b: bytes) -> bool:
    """Constant-time equality (for code that needs a boolean, e.g. a card answering 6300)."""
    return hmac.compare_digest(a, b)


# -- check values, parity, randomness -----------------------------------------------------------


def kcv(algorithm: str, key: bytes, length: int = 3) -> bytes:
    """Key check value: DES/3DES ``E(K, 00x8)``; AES ``E(K, 01x16)`` (GlobalPlatform SCP03
    convention); SM4 ``E(K, 00x16)`` (zero-block convention). First ``length`` bytes."""
    block = b"\x01" * 16 if algorithm == "AES" else bytes(BLOCK_SIZE[algorithm])
    return ecb_encrypt(algorithm, key, block)[:length]


_ODD = bytes((b & 0xFE) | (0 if bin(b & 0xFE).count("1") % 2 else 1) for b in range(256))


def odd_parity(key: bytes) -> bytes:
    """Set the DES odd-parity bit (lowest bit) of every byte."""
    return key.translate(_ODD)


def random_bytes(n: int) -> bytes:
    """Cryptographically strong random bytes."""
    return os.urandom(n)


def xor(a: bytes, b: bytes) -> bytes:
    """Byte-wise XOR of two equal-length strings."""
    if len(a) != len(b):
        raise UsageError("xor operands differ in length")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


# -- DES key hygiene ----------------------------------------------------------------------------

#: The 4 weak DES keys, as published with odd parity: NIST SP 800-67 Rev. 2 (Recommendation for
#: the Triple Data Encryption Algorithm (TDEA) Block Cipher, November 2017), §3.3.2 "Weak keys"
#: (the same values as FIPS 74 §3.6). Under a weak key encryption is its own inverse.
DES_WEAK_KEYS: Final[tuple[bytes, ...]] = tuple(
    bytes.fromhex(h)
    for h in ("0101010101010101", "FEFEFEFEFEFEFEFE", "E0E0E0E0F1F1F1F1", "1F1F1F1F0E0E0E0E")
)

#: The 12 semi-weak DES keys (6 pairs: encryption under one is decryption under the other), same
#: source: NIST SP 800-67 Rev. 2 §3.3.2.
DES_SEMI_WEAK_KEYS: Final[tuple[bytes, ...]] = tuple(
    bytes.fromhex(h)
    for h in (
        "011F011F010E010E", "1F011F010E010E01",
        "01E001E001F101F1", "E001E001F101F101",
        "01FE01FE01FE01FE", "FE01FE01FE01FE01",
        "1FE01FE00EF10EF1", "E01FE01FF10EF10E",
        "1FFE1FFE0EFE0EFE", "FE1FFE1FFE0EFE0E",
        "E0FEE0FEF1FEF1FE", "FEE0FEE0FEF1FEF1",
    )
)  # fmt: skip


def _without_parity(key: bytes) -> bytes:
    """The key with every byte's parity bit (the lowest bit, which DES ignores) cleared."""
    return bytes(b & 0xFE for b in key)


_WEAK_WITHOUT_PARITY: Final[frozenset[bytes]] = frozenset(
    _without_parity(k) for k in DES_WEAK_KEYS + DES_SEMI_WEAK_KEYS
)


def is_weak_des_key(key: bytes) -> bool:
    """True when the 8-byte DES key is one of the 4 weak or 12 semi-weak keys
    (:data:`DES_WEAK_KEYS`, :data:`DES_SEMI_WEAK_KEYS`), its parity bits ignored: DES never
    reads them, so ``0000000000000000`` is the weak key ``0101010101010101``."""
    if len(key) != 8:
        raise UsageError("a DES key is 8 bytes")
    return _without_parity(key) in _WEAK_WITHOUT_PARITY


def tdes_key_problem(key: bytes) -> str | None:
    """Why ``key`` must not be used as a Triple-DES key, or ``None`` when it may.

    Refused: a single-length (8-byte) key, which is plain DES; a part K1, K2 or K3 that is a
    weak or semi-weak DES key; K1 = K2 (or, with 24 bytes, K2 = K3), where EDE collapses to
    single DES. Parts are compared with their parity bits ignored. The answer names parts,
    never key bits.
    """
    if len(key) not in (16, 24):
        return f"a 3DES key is 16 or 24 bytes, not {len(key)} (single-length DES is refused)"
    parts = [key[i : i + 8] for i in range(0, len(key), 8)]
    for n, part in enumerate(parts, 1):
        if is_weak_des_key(part):
            return f"K{n} is a weak or semi-weak DES key (NIST SP 800-67 Rev. 2, 3.3.2)"
    bare = [_without_parity(p) for p in parts]
    if hmac.compare_digest(bare[0], bare[1]):
        return "K1 = K2: the key is single DES"
    if len(bare) == 3 and hmac.compare_digest(bare[1], bare[2]):
        return "K2 = K3: the key is single DES"
    return None


class SecretKey:
    """Key bytes with an algorithm; never shows its value in ``repr``, ``str`` or exceptions."""

    __slots__ = ("_value", "algorithm", "name")

    def __init__(self, algorithm: str, value: bytes, name: str = "") -> None:
        check_key(algorithm, value)
        self.algorithm = algorithm
        self.name = name
        self._value = bytes(value)

    @property
    def value(self) -> bytes:
        """The key bytes: use only to hand them to a cipher call."""
        return self._value

    def kcv(self, length: int = 3) -> bytes:
        return kcv(self.algorithm, self._value, length)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<SecretKey{label} {self.algorithm} kcv={self.kcv().hex().upper()}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return self.algorithm == other.algorithm and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash((self.algorithm, self.kcv()))

    def __reduce__(self) -> tuple[object, ...]:  # pragma: no cover - pickling for workers
        return (SecretKey, (self.algorithm, self._value, self.name))
