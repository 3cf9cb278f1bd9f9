"""Duplicate detection across a whole batch in 12 bytes per key.

A Python ``set`` of a million ints costs ~60 MB; :class:`FingerprintSet` keeps 64-bit
fingerprints in an open-addressing table (``array('Q')``, load factor ≤ 1/2) with the input
line of the first occurrence beside each (``array('I')``), so a million identity numbers cost
~24 MB and peak memory grows only slowly with the batch.

Fingerprints are exact (no hashing collisions): :func:`ssn_fp` packs the 17 digits of an
identity number (the 18th is their check character), :func:`card_no_fp` the 8 base-36 body
characters of a card number, :func:`pan_fp` the PAN without its Luhn digit and its length.
"""

from __future__ import annotations

from array import array
from collections.abc import Container, Sequence

__all__ = ["FingerprintSet", "card_no_fp", "pan_fp", "ssn_fp"]

_MULT = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def ssn_fp(ssn: str) -> int:
    return int(ssn[:17]) + 1


def card_no_fp(card_no: str) -> int:
    return int(card_no[:8], 36) + 1


def pan_fp(pan: str) -> int:
    return (int(pan[:-1]) << 2 | (len(pan) - 16)) + 1


class FingerprintSet:
    """Set of non-zero 64-bit fingerprints remembering the line of each first occurrence."""

    __slots__ = ("_bits", "_keys", "_lines", "_mask", "count")

    def __init__(self, capacity_bits: int = 16) -> None:
        self._bits = capacity_bits
        size = 1 << capacity_bits
        self._mask = size - 1
        self._keys = array("Q", bytes(8 * size))
        self._lines = array("I", bytes(4 * size))
        self.count = 0

    def add(self, fp: int, line: int) -> int:
        """Add *fp*; return 0 when it is new, else the line of its first occurrence."""
        keys, mask = self._keys, self._mask
        i = ((fp * _MULT) & _MASK64) >> (64 - self._bits)
        while True:
            k = keys[i]
            if k == 0:
                keys[i] = fp
                self._lines[i] = line
                self.count += 1
                if self.count * 2 > mask:
                    self._grow()
                return 0
            if k == fp:
                return self._lines[i] or 1
            i = (i + 1) & mask

    def add_many(
        self, fps: Sequence[int], lines: Sequence[int], skip: Container[int] = ()
    ) -> dict[int, int]:
        """Add every non-zero ``fps[i]`` (first seen at ``lines[i]``) whose index is not in
        *skip*, in order; return {index: line of the first occurrence} of the duplicates."""
        dups: dict[int, int] = {}
        keys, lines_arr, mask, shift = self._keys, self._lines, self._mask, 64 - self._bits
        for idx, fp in enumerate(fps):
            if not fp or idx in skip:
                continue
            i = ((fp * _MULT) & _MASK64) >> shift
            while True:
                k = keys[i]
                if k == 0:
                    keys[i] = fp
                    lines_arr[i] = lines[idx]
                    self.count += 1
                    if self.count * 2 > mask:
                        self._grow()
                        keys, lines_arr = self._keys, self._lines
                        mask, shift = self._mask, 64 - self._bits
                    break
                if k == fp:
                    dups[idx] = lines_arr[i] or 1
                    break
                i = (i + 1) & mask
        return dups

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        self.__init__(self._bits + 1)  # type: ignore[misc]
        for k, line in zip(old_keys, old_lines):
            if k:
                self.add(k, line)
