"""FMCOS 2.0-style native-COS secure messaging and key records, both sides (sans-IO).

Shared by the virtual native chip (:mod:`cardperso.card.native`) and the host driver
(:mod:`cardperso.chip.native`) so that a mistake cannot hide by being mirrored.

Line protection (FMCOS 2.0 user manual, "线路保护"; formats as implemented in the public
klks/fmcos-python ``fmcos.py`` ``fmcos_packet_mac`` / ``fmcos_3des_mac``, whose
``examples/test_mac.py`` gives the vectors tested in tests/test_native_sm.py):

* a protected command has CLA ``04`` (``84`` for proprietary commands) and Lc counts the
  4-byte MAC; the MAC is computed over ``CLA INS P1 P2 Lc`` ‖ data, padded ``80 00…`` (ISO/IEC
  9797-1 method 2, always, also when aligned), CBC with IV = the 8-byte GET CHALLENGE answer
  (a 4-byte challenge is followed by ``00×4``);
* 3DES (second-generation chips): single-DES CBC under the key's left half, the last block
  decrypted under the right half and encrypted under the left (ISO/IEC 9797-1 MAC algorithm
  3); an 8-byte key is single-DES CBC (algorithm 1); the MAC is the first 4 bytes;
* SM4 (third-generation chips): SM4-CBC over the same input padded to 16 bytes, IV = the
  challenge ‖ ``00×8`` [inferred: the FMCOS SM4 manuals are not public; tested against
  OpenSSL's SM4-CBC], MAC = the first 4 bytes of the last block;
* encryption ("线路加密"): ``Ld`` ‖ data padded ``80 00…`` to the block size, ECB under the
  same key; the MAC is then computed over the cipher text;
* a protected read answers data ‖ MAC, the MAC over the answer data under the same IV.

WRITE KEY data (after the key type byte; FMCOS 2.0 manual "增加或修改密钥", fmcos.py
``cmd_write_key``): internal/DES keys ``use ‖ change ‖ version ‖ algorithm ID ‖ key``;
external authentication ``use ‖ change ‖ follow-up state ‖ error counter ‖ key``; PIN
``use ‖ EF ‖ follow-up state ‖ error counter ‖ PIN``; line protection / PIN unblock / reload
``use ‖ change ‖ FF ‖ error counter ‖ key``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardperso.crypto import primitives as cp
from cardperso.errors import DecodeError, UsageError

__all__ = [
    "KEY_TYPES",
    "KeyRecord",
    "decode_key",
    "decrypt_data",
    "encode_key",
    "encrypt_data",
    "line_mac",
    "protect",
    "unprotect",
    "versioned",
]

#: Key types (FMCOS 2.0 manual; names as in fmcos.py ``KeyType``).
KEY_TYPES = {
    0x30: "DES encryption",
    0x31: "DES decryption",
    0x32: "DES MAC",
    0x34: "internal",
    0x36: "line protection",
    0x37: "PIN unblock",
    0x38: "PIN reload",
    0x39: "external authentication",
    0x3A: "PIN",
    0x3C: "overdraw limit",
    0x3D: "debit",
    0x3E: "purchase",
    0x3F: "credit",
}
#: Types whose third and fourth bytes are version and algorithm ID.
_VERSIONED = frozenset({0x30, 0x31, 0x32, 0x34, 0x3C, 0x3D, 0x3E, 0x3F})


def _iv(challenge: bytes, algorithm: str) -> bytes:
    if len(challenge) not in (4, 8):
        raise UsageError("line protection needs a 4- or 8-byte challenge")
    iv = challenge.ljust(8, b"\x00")
    return iv.ljust(16, b"\x00") if algorithm == "SM4" else iv


def line_mac(algorithm: str, key: bytes, data: bytes, challenge: bytes) -> bytes:
    """The 4-byte line-protection MAC of ``data`` (see the module docstring)."""
    iv = _iv(challenge, algorithm)
    if algorithm == "SM4":
        return cp.mac_algorithm1("SM4", key, data, padding=2, iv=iv)[:4]
    if algorithm != "3DES":
        raise UsageError(f"line protection with {algorithm!r} (SM4, 3DES)")
    if len(key) == 8:
        return cp.mac_algorithm1("3DES", key, data, padding=2, iv=iv)[:4]
    return cp.mac_algorithm3(key, data, padding=2, iv=iv)[:4]


def encrypt_data(algorithm: str, key: bytes, data: bytes) -> bytes:
    """``Ld ‖ data`` padded with ``80 00…`` and ECB-encrypted."""
    if len(data) > 255:
        raise UsageError("at most 255 bytes are encrypted in one command")
    block = cp.BLOCK_SIZE[algorithm]
    return cp.ecb_encrypt(algorithm, key, cp.pad_method2(bytes([len(data)]) + data, block))


def decrypt_data(algorithm: str, key: bytes, data: bytes) -> bytes:
    """The data of :func:`encrypt_data`'s output; :class:`DecodeError` if malformed."""
    block = cp.BLOCK_SIZE[algorithm]
    if not data or len(data) % block:
        raise DecodeError("encrypted data is not a whole number of blocks")
    plain = cp.ecb_decrypt(algorithm, key, data)
    try:
        body = cp.unpad_method2(plain)
    except UsageError:
        raise DecodeError("bad padding in the encrypted data") from None
    if not body or body[0] != len(body) - 1:
        raise DecodeError("the length byte does not match the encrypted data")
    return body[1:]


def protect(
    header: bytes, data: bytes, algorithm: str, key: bytes, challenge: bytes, *, encrypt: bool
) -> bytes:
    """A line-protected command APDU: ``header`` is ``CLA INS P1 P2`` with CLA already 04/84;
    ``data`` is encrypted first when ``encrypt``; the MAC ends the data field."""
    if len(header) != 4 or not header[0] & 0x04:
        raise UsageError("a protected command has CLA 04 or 84")
    body = encrypt_data(algorithm, key, data) if encrypt else data
    lc = len(body) + 4
    if lc > 255:
        raise UsageError("the protected data does not fit a short APDU")
    mac = line_mac(algorithm, key, header + bytes([lc]) + body, challenge)
    return header + bytes([lc]) + body + mac


def unprotect(
    header: bytes,
    data: bytes,
    algorithm: str,
    key: bytes,
    challenge: bytes,
    *,
    encrypted: bool,
) -> bytes:
    """The card side of :func:`protect`: check the MAC (:class:`MacMismatch` if it does not
    verify, compared in constant time) and decrypt; returns the plain data."""
    if len(data) < 4:
        raise DecodeError("a protected command carries at least its 4-byte MAC")
    body, mac = data[:-4], data[-4:]
    want = line_mac(algorithm, key, header + bytes([len(data)]) + body, challenge)
    cp.verify_mac(want, mac, "line-protection MAC")
    return decrypt_data(algorithm, key, body) if encrypted else body


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key of a native key file (``repr`` leaves out the value)."""

    key_type: int
    use: int
    change: int
    #: version (versioned types), follow-up state (external authentication, PIN) or FF.
    third: int
    #: algorithm ID (versioned types) or error counter (limit ‖ tries left, a nibble each).
    fourth: int
    value: bytes = field(repr=False)


def encode_key(record: KeyRecord) -> bytes:
    """WRITE KEY data: the key type byte, four attribute bytes and the key (or PIN)."""
    if record.key_type & 0x3F not in KEY_TYPES:
        raise UsageError(f"unknown key type {record.key_type:02X}")
    change = 0xEF if record.key_type & 0x3F == 0x3A else record.change
    attrs = bytes((record.key_type, record.use, change, record.third, record.fourth))
    return attrs + record.value


def decode_key(data: bytes) -> KeyRecord:
    """Parse WRITE KEY data; :class:`DecodeError` for an unknown type or a bad length."""
    if len(data) < 5:
        raise DecodeError("WRITE KEY data is shorter than its attributes")
    key_type = data[0]
    base = key_type & 0x3F
    if base not in KEY_TYPES:
        raise DecodeError(f"unknown key type {key_type:02X}")
    value = data[5:]
    if base == 0x3A:
        if not 2 <= len(value) <= 8:
            raise DecodeError("a PIN is 2-8 bytes")
    elif len(value) not in (8, 16):
        raise DecodeError("a key is 8 or 16 bytes")
    third = data[3]
    if base in (0x36, 0x37, 0x38) and third != 0xFF:
        raise DecodeError("byte 4 of this key type must be FF")
    return KeyRecord(key_type, data[1], data[2], third, data[4], value)


def versioned(key_type: int) -> bool:
    """Whether the key type carries a version and an algorithm ID (not a counter)."""
    return key_type & 0x3F in _VERSIONED
