"""Per-chunk key work: card master keys, SSSE per-card keys, PIN blocks, all under the KEK.

How this works
--------------
For a chunk of validated cards, :meth:`ChunkKeys.derive` makes **one key-store call per master
key** for the whole chunk, never one per card:

* PBOC (EMV Book 2 A1.4.1 option A): :meth:`KeyStore.derive_emv_a` for MK-AC, MK-SMI and
  MK-SMC returns each card's key wrapped under the transport KEK with its check value; DGI 8000
  is the three wrapped keys concatenated (ECB wrapping, so that is the encryption of
  AC ‖ SMI ‖ SMC) and DGI 9000 the three check values.
* SSSE: each card's key for card key id *k* is diversified from the master named by the
  profile with the card's 8-byte factor (the 8 body characters of the card number, ASCII):
  ``K = E(M, f ‖ ~f)`` for both SM4 and 3DES (:func:`cardperso.crypto.ssse.diversify`).
  With a software store the factors of the chunk go through one ``encrypt`` call per master
  and every clear key of the chunk is wrapped in one ``wrap`` call (the same bytes as
  :meth:`KeyStore.derive_ssse`, which also computes per-key check values prep does not need);
  with any other store (an HSM) :meth:`KeyStore.derive_ssse` is used so keys stay inside it.
* PIN blocks (ISO 9564 format 2: ``2L PPPP… FF``) are wrapped in one call. PINs come from the
  input or, by the profile's policy, from the seeded generator :func:`seeded_pin`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from cardperso.codec.columns import U8, bcd
from cardperso.crypto import BLOCK_SIZE, odd_parity, pad_method2
from cardperso.crypto.kcvbatch import kcv_3des_blob
from cardperso.errors import KeyStoreError
from cardperso.keystore import KeyStore
from cardperso.prep.cards import Cards
from cardperso.profiles.model import Profile

__all__ = ["ChunkKeyData", "ChunkKeys", "pin_block", "seeded_pin"]

_INVERT = bytes(b ^ 0xFF for b in range(256))


def seeded_pin(seed: bytes, ssn: str, length: int) -> str:
    """A PIN of *length* digits from the batch's PIN seed and the card's identity number:
    the first 8 bytes of HMAC-SHA-256(seed, ssn), as a number, modulo 10^length."""
    return _SeededPins(seed).pin(ssn, length)


def pin_block(pin: str) -> bytes:
    """ISO 9564 format-2 plaintext PIN block (8 bytes): ``2`` ‖ length ‖ digits ‖ ``F`` pad."""
    return bytes.fromhex(f"2{len(pin):X}{pin}".ljust(16, "F"))


@dataclass(frozen=True, slots=True)
class ChunkKeyData:
    """The protected key material of a chunk's cards, one row per card (all encrypted under
    the transport KEK): ``pboc_mk`` wrapped AC ‖ SMI ‖ SMC (48 bytes; no columns without
    PBOC), ``pboc_kcv`` their check values (9), ``ssse`` 16 bytes per SSSE key in profile
    order, ``pins`` the wrapped PIN block."""

    pboc_mk: U8 = field(repr=False)
    pboc_kcv: U8 = field(repr=False)
    ssse: U8 = field(repr=False)
    pins: U8 = field(repr=False)


def _rows(blob: bytes, n: int) -> U8:
    return np.frombuffer(blob, np.uint8).reshape(n, -1) if n else np.zeros((0, 0), np.uint8)


class _SeededPins:
    """HMAC-SHA-256 keyed with the PIN seed, its pads hashed once (RFC 2104)."""

    def __init__(self, seed: bytes) -> None:
        key = hashlib.sha256(seed).digest() if len(seed) > 64 else seed
        key = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(key.translate(_IPAD))
        self.outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, msg: bytes) -> bytes:
        i = self.inner.copy()
        i.update(msg)
        o = self.outer.copy()
        o.update(i.digest())
        return o.digest()

    def pin(self, ssn: str, length: int) -> str:
        n = int.from_bytes(self.digest(ssn.encode("ascii"))[:8], "big")
        return str(n % 10**length).zfill(length)


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class ChunkKeys:
    """Key work for one profile with one key store (see the module docstring)."""

    def __init__(self, store: KeyStore, profile: Profile, pin_seed: bytes) -> None:
        self.store = store
        self.profile = profile
        self.kek = profile.transport_kek
        kek_info = store.info(self.kek)
        self.kek_block = BLOCK_SIZE[kek_info.algorithm]
        self.pin_seed = pin_seed
        self.seeds = _SeededPins(pin_seed)
        self.fast = store.is_software
        ss = profile.ssse
        self.ssse_masters = tuple(k.master for k in ss.keys)
        for name in self.ssse_masters:
            alg = store.info(name).algorithm
            if alg != ss.algorithm:
                raise KeyStoreError(
                    f"key {name!r} is {alg}, profile {profile.name} needs {ss.algorithm} SSSE keys"
                )
        self.pboc = profile.pboc
        if self.pboc is not None:
            for name in (self.pboc.imk_ac, self.pboc.imk_smi, self.pboc.imk_smc):
                if store.info(name).algorithm != "3DES":
                    raise KeyStoreError(f"key {name!r} must be 3DES (EMV option A)")
        self.pin_len = profile.pin.length
        self.pin_policy = profile.pin.source
        #: CPU seconds of the wrapping under the KEK so far (software store; an HSM store
        #: derives and wraps in one call, counted as derivation): bench_prep.py --breakdown
        self.wrap_seconds = 0.0

    def _wrap(self, data: bytes) -> bytes:
        t0 = time.process_time()
        out = self.store.wrap(self.kek, data)
        self.wrap_seconds += time.process_time() - t0
        return out

    def _pins(self, cards: Cards) -> bytes:
        """The chunk's ISO 9564 format-2 PIN blocks (:func:`pin_block`), 8 bytes per card:
        the input PIN, or :func:`seeded_pin` (HMAC per card, the arithmetic on the chunk)."""
        n, count = self.pin_len, cards.n
        pins = cards.pins
        seeded = [i for i, pin in enumerate(pins) if not pin]
        digits = np.empty((count, n), np.uint8)
        if len(seeded) < count:
            given = [pin if pin else "0" * n for pin in pins]
            digits[:] = np.frombuffer("".join(given).encode("ascii"), np.uint8).reshape(count, n)
        if seeded:
            ssns = cards.text["ssn"]
            # _SeededPins.digest inline: ~10 % of the step is the call of a Python method
            inner, outer = self.seeds.inner.copy, self.seeds.outer.copy
            heads: list[bytes] = []
            keep = heads.append
            msgs = "\n".join([ssns[i] for i in seeded]).encode("ascii").split(b"\n")
            if len(msgs) != len(seeded):  # a validated number has no LF; never split one
                msgs = [ssns[i].encode("ascii") for i in seeded]
            for msg in msgs:
                ih = inner()
                ih.update(msg)
                oh = outer()
                oh.update(ih.digest())
                keep(oh.digest()[:8])
            head = b"".join(heads)
            value = np.frombuffer(head, ">u8").astype(np.uint64) % np.uint64(10**n)
            for j in range(n - 1, -1, -1):
                digits[seeded, j] = (value % np.uint64(10)).astype(np.uint8) + 48
                value //= np.uint64(10)
        nibbles = np.full((count, 16), ord("F"), np.uint8)
        nibbles[:, 0] = ord("2")
        nibbles[:, 1] = ord(f"{n:X}")
        nibbles[:, 2 : 2 + n] = digits
        return bcd(nibbles, 8, "F").tobytes()

    def _emv_fast(self, y: bytes, count: int) -> tuple[bytes, bytes]:
        """Option A for the chunk with one ECB call per IMK (over Y ‖ ~Y of every card).

        Returns (wrapped keys, check values), card-major: card i's AC ‖ SMI ‖ SMC are bytes
        48i..48i+48 of the first, their KCVs bytes 9i..9i+9 of the second."""
        assert self.pboc is not None
        store = self.store
        ny = y.translate(_INVERT)
        clear = bytearray(48 * count)
        q = memoryview(clear).cast("Q")
        half = len(y) // 8
        for j, name in enumerate((self.pboc.imk_ac, self.pboc.imk_smi, self.pboc.imk_smc)):
            zq = memoryview(odd_parity(store.encrypt(name, y + ny, "ecb"))).cast("Q")
            q[2 * j :: 6] = zq[:half]
            q[2 * j + 1 :: 6] = zq[half:]
        keys = bytes(clear)
        return self._wrap(keys), kcv_3des_blob(keys)

    def derive(self, cards: Cards) -> ChunkKeyData:
        """Key material for every card of the chunk, in order (one row per card)."""
        count = cards.n
        store, kek = self.store, self.kek
        pins_clear = self._pins(cards)
        pin_len = 8 if 8 % self.kek_block == 0 else self.kek_block
        if not count:
            pins_w = b""
        elif pin_len == 8:
            pins_w = self._wrap(pins_clear)
        else:  # each block padded as wrap(pad=True) pads it; ECB: one call for the chunk
            padded = pad_method2(pins_clear[:8], pin_len)[8:]
            pins_w = self._wrap(
                b"".join(pins_clear[8 * i : 8 * i + 8] + padded for i in range(count))
            )
        # SSSE keys, card-major: card i's keys (profile order) are 16·n bytes at 16·n·i
        nkeys = len(self.ssse_masters)
        width = 16 * nkeys
        f = np.ascontiguousarray(cards.fixed["card_no"][:, :8]).tobytes()
        if not count:
            ssse_w = b""
        elif self.fast:
            blocks = bytearray(16 * count)
            bq = memoryview(blocks).cast("Q")
            bq[0::2] = memoryview(f).cast("Q")
            bq[1::2] = memoryview(f.translate(_INVERT)).cast("Q")
            clear = bytearray(width * count)
            cq = memoryview(clear).cast("Q")
            step = 2 * nkeys
            for j, m in enumerate(self.ssse_masters):
                kq = memoryview(store.encrypt(m, bytes(blocks), "ecb")).cast("Q")
                cq[2 * j :: step] = kq[0::2]
                cq[2 * j + 1 :: step] = kq[1::2]
            ssse_w = self._wrap(bytes(clear))
        else:
            factors = [f[8 * i : 8 * i + 8] for i in range(count)]
            per = [
                b"".join(d.data for d in store.derive_ssse(m, factors, wrap_under=kek))
                for m in self.ssse_masters
            ]
            ssse_w = b"".join(b"".join(p[16 * i : 16 * i + 16] for p in per) for i in range(count))
        ssse = _rows(ssse_w, count).reshape(count, width)
        pins = _rows(pins_w, count).reshape(count, pin_len)
        if self.pboc is None or not count:
            none = np.zeros((count, 0), np.uint8)
            return ChunkKeyData(none, none, ssse, pins)
        pans = cards.text["pan"]
        psns = cards.text["pan_seq"]
        if self.fast:
            y = bytes.fromhex("".join((p + s)[-16:].rjust(16, "0") for p, s in zip(pans, psns)))
            mks, kcvs = self._emv_fast(y, count)
        else:
            p = self.pboc
            emv_cards = list(zip(pans, psns))
            ac, smi, smc = (
                store.derive_emv_a(name, emv_cards, wrap_under=kek)
                for name in (p.imk_ac, p.imk_smi, p.imk_smc)
            )
            mks = b"".join(ac[i].data + smi[i].data + smc[i].data for i in range(count))
            kcvs = b"".join(ac[i].kcv + smi[i].kcv + smc[i].kcv for i in range(count))
        return ChunkKeyData(_rows(mks, count), _rows(kcvs, count), ssse, pins)
