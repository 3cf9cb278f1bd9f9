"""Derivation data: the input of the ECB step of each per-card key scheme.

Every scheme the PKCS#11 store runs is "ECB-encrypt these blocks under the master key", which a
token does either as ``C_DeriveKey`` with ``CKM_*_ECB_ENCRYPT_DATA`` (one key per call) or as one
``C_Encrypt`` over a whole chunk. The same bytes as :mod:`cardperso.crypto.emv`, ``.gp`` and
``.ssse`` compute in software (tests compare them).
"""

from __future__ import annotations

from cardperso.crypto import xor
from cardperso.errors import DataError, KeyStoreError, UsageError
from cardperso.keystore.base import EmvCard, SessionKeyMethod


def emv_a_data(card: EmvCard) -> bytes:
    """EMV Book 2 A1.4.1 option A: ``Y ‖ Y ⊕ FF×8`` with Y = rightmost 16 digits of PAN ‖ PSN."""
    pan, psn = card
    if not (pan.isascii() and pan.isdigit() and 1 <= len(pan) <= 19):
        raise DataError("must be 1-19 decimal digits", field="pan")
    if not (psn.isascii() and psn.isdigit() and len(psn) == 2):
        raise DataError("must be 2 decimal digits", field="psn")
    y = bytes.fromhex((pan + psn)[-16:].rjust(16, "0"))
    return y + bytes(b ^ 0xFF for b in y)


def ssse_data(factor: bytes) -> bytes:
    """SSSE 3DES diversification: ``f ‖ ~f`` (8-byte factor)."""
    if len(factor) != 8:
        raise DataError("SSSE diversification factor must be 8 bytes", field="factor")
    return factor + bytes(b ^ 0xFF for b in factor)


def gp_data(kdd: bytes, method: str, key_id: int) -> bytes:
    """GP CPS diversification block for key ``key_id`` (01 ENC, 02 MAC, 03 DEK)."""
    if len(kdd) != 10:
        raise DataError("KDD must be 10 bytes", field="kdd")
    if method == "emv":
        base = kdd[4:10]
    elif method == "visa2":
        base = kdd[0:2] + kdd[4:8]
    else:
        raise KeyStoreError(f"GP diversification {method!r} is not a 3DES ECB derivation")
    return base + bytes((0xF0, key_id)) + base + bytes((0x0F, key_id))


def cmac_subkey1(l_block: bytes) -> bytes:
    """NIST SP 800-38B subkey K1 from ``L = AES(K, 0^128)``: ``L << 1``, then ``⊕ 87`` when the
    top bit of L was set."""
    value = int.from_bytes(l_block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(16, "big")


def kdf3_data(k1: bytes, kdd: bytes, key_id: int, blocks: int) -> bytes:
    """GP ``kdf3`` (SP 800-108 counter mode, AES-CMAC) as ECB derivation data: each PRF input
    ``i ‖ 00 00 00 id 00 ‖ KDD`` is exactly one block, and the CMAC of one whole block M is
    ``AES(K, M ⊕ K1)``; so block i of the derived key is ``AES(KMC, M_i ⊕ K1)``."""
    if len(kdd) != 10:
        raise DataError("KDD must be 10 bytes", field="kdd")
    fixed = bytes((0, 0, 0, key_id, 0)) + kdd
    return b"".join(xor(bytes((i,)) + fixed, k1) for i in range(1, blocks + 1))


def session_key_data(atc: bytes, session: SessionKeyMethod) -> tuple[bytes, bytes]:
    """The two blocks whose encryption under the card master key are the session key halves:
    ``common`` (EMV A1.3.1) ``ATC ‖ F0|0F ‖ 00×5``; ``pboc`` ``00×6 ‖ ATC`` and
    ``00×6 ‖ ATC ⊕ FFFF``."""
    if len(atc) != 2:
        raise UsageError("ATC must be 2 bytes")
    if session == "common":
        return atc + b"\xf0" + bytes(5), atc + b"\x0f" + bytes(5)
    if session == "pboc":
        return bytes(6) + atc, bytes(6) + xor(atc, b"\xff\xff")
    raise UsageError(f"unknown session key method {session!r}")
