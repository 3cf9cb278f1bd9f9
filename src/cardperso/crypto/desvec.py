"""DES and two-key Triple DES over many different keys at once: table-driven, in numpy.

Why this exists
---------------
DGI 9000 carries the check value ``TDES(K, 00×8)[:3]`` of each card master key (three per card),
and every key is different. ``cryptography`` needs one cipher context per key (several µs each,
most of it OpenSSL context set-up), so a chunk of 10,000 cards costs 30,000 context set-ups.
Here one numpy operation serves every key of the chunk at once.

How this works
--------------
* Tables and bit numbering follow FIPS 46-3 (bit 1 = most significant bit of the first byte).
* **Key schedule, all keys at once.** A table per key byte (PC-1, the left shifts and PC-2
  composed, :func:`_schedule_tables`) gives, for the byte's value, the bits it contributes to
  every round's subkeys; eight gathers XOR-ed together give all 16 rounds of every key.
* **Round function as table look-ups** (the classic "SP table" form, by pairs of S-boxes): a
  pair's two 6-bit windows of the expansion E are one 10-bit field F of the 64-bit word
  ``R ‖ R`` (the wrap-around bits of E come from the copy; the field's bits 5-4 feed both
  S-boxes). The round key of the pair is a 12-bit K whose top two bits correct those shared
  bits for the second S-box, so ``f(R, K) = XOR_p SP[p][F_p(R) ⊕ K_p]`` with 4 tables of 4096
  entries, each holding ``P(S_2p(x) ‖ S_2p+1(y))`` already at its place in the 32-bit word
  (:func:`_sp_table`). The halves are kept doubled (``x ‖ x`` in an int64, the SP entries
  too), so one round is five array operations over a ``(4, n)`` array (shift, mask, XOR,
  gather, XOR-reduce) and one XOR, whatever *n* is.
* Triple DES ``E_K1 ∘ D_K2 ∘ E_K1``: the final permutation of one stage and the initial
  permutation of the next cancel, so the three stages chain on the (L, R) halves; decryption
  runs the subkeys in reverse order.
* Keys are processed in slices of :data:`SLICE` so the schedule (128 bytes per key) stays in cache
  and memory stays bounded at any chunk size.

Tested against the NIST SP 800-20 known-answer tables (tests/test_crypto_desvec.py) and against
``cryptography`` on random keys and blocks.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["SLICE", "tdes_ecb_encrypt_blocks", "tdes_kcv_blob"]

#: Keys per internal slice (bounded memory: about 4.5 KiB of temporaries per key).
SLICE: Final = 4096

_PC1 = (
    57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
    10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
    63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
    14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
)  # fmt: skip
_PC2 = (
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10,
    23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
    41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
    44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
)  # fmt: skip
_SHIFTS = (1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1)
_P = (
    16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
    2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25,
)  # fmt: skip
_IP = (
    58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
    62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
    57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
    61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
)  # fmt: skip
_FP = (
    40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31,
    38, 6, 46, 14, 54, 22, 62, 30, 37, 5, 45, 13, 53, 21, 61, 29,
    36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27,
    34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25,
)  # fmt: skip
_SBOX = (
    (14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7,
     0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0,
     15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13),
    (15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10,
     3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15,
     13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9),
    (10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8,
     13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7,
     1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12),
    (7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15,
     13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4,
     3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14),
    (2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9,
     14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14,
     11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3),
    (12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11,
     10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6,
     4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13),
    (4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1,
     13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2,
     6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12),
    (13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7,
     1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8,
     2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11),
)  # fmt: skip

I64Array = npt.NDArray[np.int64]
U16Array = npt.NDArray[np.uint16]
U8Array = npt.NDArray[np.uint8]


def _schedule_tables() -> I64Array:
    """``T[b, x, r]``: the bits of round *r*'s pair indexes (:data:`_F_SHIFTS`) that key byte
    *b* contributes when it holds *x* - PC-1, the left shifts and PC-2 composed. Pair *p*'s
    12 bits sit in the 16-bit lane *p* (little endian) of the 64-bit word: bits 9-4 the subkey
    bits of S-box 2p, bits 3-0 the low four of S-box 2p + 1, bits 11-10 the XOR of the two
    S-boxes' subkey bits on the shared E positions. Every bit is a XOR of key bits, so the
    eight bytes' entries XOR together into every pair's index."""
    where = np.zeros((16, 64), dtype=np.int64)  # [r, key bit] -> index bits it flips
    shift = 0
    for r in range(16):
        shift += _SHIFTS[r]
        cd = [(i + shift) % 28 for i in range(28)] + [28 + (i + shift) % 28 for i in range(28)]
        for i, p in enumerate(_PC2):
            key_bit = _PC1[cd[p - 1]] - 1
            j, m = divmod(i, 6)  # S-box j, bit m of its 6 (0 = most significant)
            lane = 16 * (j // 2)
            if j % 2 == 0:  # S-box 2p: index bits 9-4; its last two bits also feed 11-10
                bits = [9 - m] + ([15 - m] if m >= 4 else [])
            else:  # S-box 2p + 1: its first two bits feed 11-10, the rest index bits 3-0
                bits = [11 - m] if m < 2 else [5 - m]
            for bit in bits:
                where[r, key_bit] ^= 1 << (lane + bit)
    table = np.zeros((8, 256, 16), dtype=np.int64)
    for b in range(8):
        for x in range(256):
            for bit in range(8):
                if x >> (7 - bit) & 1:
                    table[b, x] ^= where[:, 8 * b + bit]
    return table


_KS_TABLE: Final = _schedule_tables()
#: The round function works on pairs of S-boxes (2p, 2p + 1): their two E windows are bits
#: a .. a+5 and a+4 .. a+9 of the 64-bit word R ‖ R (bit 1 = MSB; a = 32 for p = 0, else 8p),
#: so one 10-bit field F holds both (its bits 5-4 feed both S-boxes). The table index is
#: ``F ⊕ K`` with the 12-bit K of :func:`_schedule_tables`: bits 9-0 give S-box 2p's input and
#: the low four of S-box 2p + 1's, bits 11-10 correct the two shared bits for S-box 2p + 1's
#: own subkey bits (:func:`_sp_table`). Shift bringing F to the low bits: 55 - a.
#: (Signed 64-bit words: the arithmetic shift only fills bits above the 10 kept.)
_F_SHIFTS: Final = np.array([23, 47, 39, 31], dtype=np.int64)[:, None]
#: ``x * _DOUBLE`` is ``x ‖ x`` for a 32-bit x (in 64-bit arithmetic, which wraps).
_DOUBLE: Final = np.int64(0x100000001)
#: Added to the pair indexes: pair p's entries start at 4096·p in the flat SP table.
_SP_OFFSET16: Final = (np.arange(4, dtype=np.uint16) * 4096)[:, None]


def _sp_table() -> I64Array:
    """``SP[4096·p + i] = P(S_2p(x) ‖ S_2p+1(y))`` at their places in the word, for the index
    ``i = d ‖ g`` (2 + 10 bits): ``x = g >> 4``, ``y = ((g >> 4 & 3) ⊕ d) ‖ (g & 15)``."""
    single = np.zeros((8, 64), dtype=np.int64)
    for j in range(8):
        for v in range(64):
            s = _SBOX[j][16 * (((v >> 4) & 2) | (v & 1)) + ((v >> 1) & 15)]
            word = s << (28 - 4 * j)  # S-box output bits at positions 4j+1 .. 4j+4
            out = 0
            for i, src in enumerate(_P):
                if word >> (32 - src) & 1:
                    out |= 1 << (31 - i)
            single[j, v] = out
    index = np.arange(4096)
    g, d = index & 1023, index >> 10
    x = g >> 4
    y = ((((g >> 4) & 3) ^ d) << 4) | (g & 15)
    pairs = np.concatenate([single[2 * p][x] ^ single[2 * p + 1][y] for p in range(4)])
    return pairs * _DOUBLE  # each entry twice, f ‖ f: the rounds keep every half doubled


_SP: Final = _sp_table()


def _schedule(keys: U8Array) -> U16Array:
    """Per round, per S-box pair, per key: the pair's 12 subkey bits plus its table offset.
    ``keys`` is ``(n, 8)`` bytes; the result is ``(16, 4, n)``, contiguous."""
    columns = np.ascontiguousarray(keys.T)
    words = _KS_TABLE[0].take(columns[0], axis=0)
    for b in range(1, 8):
        words ^= _KS_TABLE[b].take(columns[b], axis=0)
    pairs = words.astype("<i8").view("<u2").reshape(-1, 16, 4)  # (n, round, pair)
    sched: U16Array = np.ascontiguousarray(pairs.transpose(1, 2, 0), dtype=np.uint16)
    sched += _SP_OFFSET16
    return sched


def _rounds(
    left: I64Array, right: I64Array, sched: U16Array, order: range
) -> tuple[I64Array, I64Array]:
    """16 Feistel rounds on the *doubled* 32-bit halves (``x ‖ x`` in an int64, so E's windows
    are shifts of the word itself and the SP entries are doubled too); returns the halves
    swapped back (preoutput R16 ‖ L16 as (left, right))."""
    sp = _SP
    for r in order:
        index = (right[None, :] >> _F_SHIFTS) & 1023
        index ^= sched[r]
        left, right = right, left ^ np.bitwise_xor.reduce(sp.take(index), axis=0)
    return right, left


def _permutation_table(table: tuple[int, ...]) -> I64Array:
    """``T[b, x]``: the output bits that byte *b* of the input contributes when it holds *x*."""
    out = np.zeros((8, 256), dtype=np.int64)
    for i, src in enumerate(table):
        b, bit = divmod(src - 1, 8)
        has = (np.arange(256) >> (7 - bit)) & 1
        out[b] |= has.astype(np.int64) << (63 - i)
    return out


_IP_TABLE: Final = _permutation_table(_IP)
_FP_TABLE: Final = _permutation_table(_FP)


def _permute(words: I64Array, table: I64Array) -> I64Array:
    """Apply a 64-bit permutation (IP or FP, as a byte table) to each word."""
    columns = np.ascontiguousarray(words.astype(">i8").view(np.uint8).reshape(-1, 8).T)
    out: I64Array = table[0].take(columns[0])
    for b in range(1, 8):
        out |= table[b].take(columns[b])
    return out


def _split(blocks: I64Array) -> tuple[I64Array, I64Array]:
    """IP, then the two halves, each doubled (``x ‖ x``)."""
    mixed = _permute(blocks, _IP_TABLE)
    return ((mixed >> 32) & 0xFFFFFFFF) * _DOUBLE, (mixed & 0xFFFFFFFF) * _DOUBLE


def _join(left: I64Array, right: I64Array) -> I64Array:
    """The doubled halves back to one word (low copies), then FP."""
    return _permute((left << 32) | (right & 0xFFFFFFFF), _FP_TABLE)


def _key_array(keys: bytes, width: int) -> U8Array:
    if len(keys) % width:
        raise ValueError(f"keys must be whole {width}-byte keys")
    return np.frombuffer(keys, dtype=np.uint8).reshape(-1, width)


def _block_array(blocks: bytes | None, count: int) -> I64Array:
    if blocks is None:
        return np.zeros(count, dtype=np.int64)
    if len(blocks) != 8 * count:
        raise ValueError("give one 8-byte block per key")
    return np.frombuffer(blocks, dtype=">i8").astype(np.int64)


def _to_bytes(words: I64Array) -> bytes:
    return words.astype(">i8").tobytes()


def tdes_ecb_encrypt_blocks(keys: bytes, blocks: bytes | None = None) -> bytes:
    """Two-key Triple-DES (EDE, K3 = K1) encryption of block *i* under 16-byte key *i*
    (keys laid end to end; blocks the same, all zero when omitted)."""
    k = _key_array(keys, 16)
    data = _block_array(blocks, len(k))
    out = []
    forward, backward = range(16), range(15, -1, -1)
    for s in range(0, len(k), SLICE):
        part = k[s : s + SLICE]
        k1, k2 = (
            _schedule(np.ascontiguousarray(part[:, :8])),
            _schedule(np.ascontiguousarray(part[:, 8:])),
        )
        left, right = _split(data[s : s + SLICE])
        left, right = _rounds(left, right, k1, forward)
        left, right = _rounds(left, right, k2, backward)
        left, right = _rounds(left, right, k1, forward)
        out.append(_join(left, right))
    return _to_bytes(np.concatenate(out)) if out else b""


def tdes_kcv_blob(keys: bytes, length: int = 3) -> bytes:
    """Check values ``TDES(K, 00×8)[:length]`` of the 16-byte keys laid end to end in *keys*,
    laid end to end."""
    if not 1 <= length <= 8:
        raise ValueError("a check value is 1 to 8 bytes")
    full = tdes_ecb_encrypt_blocks(keys)
    if length == 8:
        return full
    arr = np.frombuffer(full, dtype=np.uint8).reshape(-1, 8)
    return arr[:, :length].tobytes()
