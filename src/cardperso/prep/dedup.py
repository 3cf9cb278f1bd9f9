"""Duplicate detection across a whole batch in about 18 bytes per key.

A Python ``set`` of a million ints costs ~60 MB; :class:`FingerprintSet` keeps 64-bit
fingerprints in an open-addressing table (``array('Q')``, linear probing, load factor kept
between 0.47 and 0.7 by growing ×1.5) with the input line of the first occurrence beside each
(``array('I')``): a million identity numbers cost ~18 MB, the only memory of a batch run that
grows with the batch.

Fingerprints are exact (no hashing collisions): :func:`ssn_fp` packs the 17 digits of an
identity number (the 18th is their check character), :func:`card_no_fp` the 8 base-36 body
characters of a card number, :func:`pan_fp` the PAN without its Luhn digit and its length.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from cardperso.codec.columns import digits_value, fixed_text

if TYPE_CHECKING:
    from cardperso.prep.cards import Cards

__all__ = ["FingerprintSet", "card_no_fp", "fingerprints", "pan_fp", "ssn_fp"]

_MULT = 0x9E3779B97F4A7C15
_MAX_LOAD = 0.7


def ssn_fp(ssn: str) -> int:
    return int(ssn[:17]) + 1


def card_no_fp(card_no: str) -> int:
    return int(card_no[:8], 36) + 1


def pan_fp(pan: str) -> int:
    return (int(pan[:-1]) << 2 | (len(pan) - 16)) + 1


def _distinct(values: NDArray[np.uint64] | NDArray[np.int64]) -> bool:
    """Whether no value occurs twice (one sort, no index arrays: cheaper than ``np.unique``)."""
    ordered = np.sort(values)
    return not bool((ordered[1:] == ordered[:-1]).any())


class FingerprintSet:
    """Set of non-zero 64-bit fingerprints remembering the line of each first occurrence.

    A chunk's fingerprints are added at once with array operations (:meth:`add_many`): the
    duplicates inside the chunk by one sort, the lookups and the insertions by probing every
    pending key one slot further per round (linear probing; a handful of rounds at this load)."""

    __slots__ = ("_cap", "_keys", "_limit", "_lines", "count")

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._cap = capacity
        self._limit = int(capacity * _MAX_LOAD)
        self._keys = np.zeros(capacity, np.uint64)
        self._lines = np.zeros(capacity, np.uint32)
        self.count = 0

    def add(self, fp: int, line: int) -> int:
        """Add *fp*; return 0 when it is new, else the line of its first occurrence."""
        found = self.add_many((fp,), (line,))
        return found.get(0, 0)

    def _slots(self, keys: NDArray[np.uint64]) -> NDArray[np.int64]:
        h = (keys * np.uint64(_MULT)) % np.uint64(self._cap)
        out: NDArray[np.int64] = h.astype(np.int64)
        return out

    def _find(self, keys: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """For each (distinct) key: its slot (where it is, or the first empty slot of its
        probe sequence) and whether it is there."""
        slot = self._slots(keys)
        found = np.zeros(len(keys), np.bool_)
        todo = np.arange(len(keys))
        table, cap = self._keys, self._cap
        while todo.size:
            k = table[slot[todo]]
            hit = k == keys[todo]
            found[todo[hit]] = True
            go = ~hit & (k != 0)
            todo = todo[go]
            slot[todo] = (slot[todo] + 1) % cap
        return slot, found

    def _insert(self, keys: NDArray[np.uint64], lines: NDArray[np.uint32]) -> None:
        """Insert distinct keys that are not in the table."""
        if self.count + len(keys) > self._limit:
            self._grow(self.count + len(keys))
        table, cap = self._keys, self._cap
        slot = self._slots(keys)
        todo = np.arange(len(keys))
        while todo.size:
            s = slot[todo]
            full = table[s] != 0
            while full.any():  # each pending key on to the next empty slot
                s[full] = (s[full] + 1) % cap
                full = table[s] != 0
            slot[todo] = s
            if _distinct(s):  # the usual case: every pending key has a slot of its own
                table[s] = keys[todo]
                self._lines[s] = lines[todo]
                break
            taken, first = np.unique(s, return_index=True)  # one key per slot: the first
            win = todo[first]
            table[taken] = keys[win]
            self._lines[taken] = lines[win]
            rest = np.ones(len(todo), np.bool_)
            rest[first] = False
            todo = todo[rest]
        self.count += len(keys)

    def add_many(
        self, fps: Sequence[int], lines: Sequence[int], skip: Collection[int] = ()
    ) -> dict[int, int]:
        """Add every non-zero ``fps[i]`` (first seen at ``lines[i]``) whose index is not in
        *skip*, in order; return {index: line of the first occurrence} of the duplicates."""
        f = np.asarray(fps, np.uint64)
        ln = np.asarray(lines, np.uint32)
        active = f != 0
        if skip:
            active[[i for i in skip if isinstance(i, int) and 0 <= i < len(f)]] = False
        idx = np.flatnonzero(active)
        if not idx.size:
            return {}
        keys = f[idx]
        if _distinct(keys):  # the usual case: no key twice in the chunk
            uniq = keys
            first = inverse = np.arange(len(keys))
        else:
            uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        slot, found = self._find(uniq)
        first_line = ln[idx[first]]
        first_line[found] = self._lines[slot[found]]
        new = ~found
        if new.any():
            self._insert(uniq[new], first_line[new])
        # a duplicate: its key was there before, or an earlier index of this call had it
        is_first = np.zeros(len(idx), np.bool_)
        is_first[first] = True
        dup = ~is_first | found[inverse]
        where = np.flatnonzero(dup)
        got = first_line[inverse[where]]
        return {int(i): int(x) or 1 for i, x in zip(idx[where].tolist(), got.tolist())}

    def _grow(self, need: int) -> None:
        old_keys = self._keys
        old_lines = self._lines
        cap = self._cap
        while int(cap * _MAX_LOAD) < need:
            cap = cap * 3 // 2
        present = old_keys != 0
        self.__init__(cap)  # type: ignore[misc]
        self._insert(old_keys[present], old_lines[present])


_B36 = np.array([36**k for k in range(7, -1, -1)], np.uint64)


def fingerprints(cards: Cards, pboc: bool) -> NDArray[np.uint64]:
    """The exact duplicate fingerprints of the chunk's cards (``n x 3``: identity number, card
    number, PAN; 0 = none), as the functions above define them one by one."""
    out = np.zeros((cards.n, 3), np.uint64)
    out[:, 0] = digits_value(cards.fixed["ssn"][:, :17]) + np.uint64(1)
    cn = cards.fixed["card_no"][:, :8].astype(np.int64)
    vals = np.where(cn >= 65, cn - 55, cn - 48).astype(np.uint64)
    out[:, 1] = (vals * _B36).sum(axis=1, dtype=np.uint64) + np.uint64(1)
    if pboc and cards.n:
        pans = cards.text["pan"]
        mat = fixed_text([p.rjust(19, "0") for p in pans], 19)[0]
        lens = np.fromiter(map(len, pans), np.int64, cards.n)
        body = digits_value(mat) // np.uint64(10)
        out[:, 2] = ((body << np.uint64(2)) | (lens - 16).astype(np.uint64)) + np.uint64(1)
    return out
