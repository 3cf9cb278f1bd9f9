"""Column encoders: the fields of many records at once, as numpy arrays.

How this works
--------------
Batch preparation encodes a chunk of records as columns: a fixed-width field of *n* records is
an ``n x w`` ``uint8`` matrix (one row per record), a variable-length field a :class:`Var` (the
values back to back in one flat array, plus each value's length). The encoders here turn text
columns into such arrays (:func:`fixed_text`, :func:`text_var`), digits into packed BCD
(:func:`bcd`), numbers into big-endian bytes (:func:`be_uint`), and :func:`assemble` puts a
record together from a list of segments (constant bytes, matrices, :class:`Var` values) for the
whole chunk at once: the segments are laid out in a padded ``n x W`` matrix (2-D copies, no
per-record work; the constant bytes all at once, from one row cached per layout) and the
padding of the variable segments is dropped with one boolean mask, so the result is every
record's bytes back to back, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "U8",
    "Cut",
    "Segment",
    "Var",
    "assemble",
    "bcd",
    "be_uint",
    "digits_value",
    "fixed_text",
    "segment_lengths",
    "text_var",
    "var_of",
]

U8 = NDArray[np.uint8]
I64 = NDArray[np.int64]

_ZERO = ord("0")


@dataclass(frozen=True, slots=True)
class Var:
    """Variable-length values of *n* records: ``data`` holds them back to back, ``lengths``
    each one's length (so record *i*'s value starts at ``starts[i]``)."""

    data: U8
    lengths: I64

    @property
    def starts(self) -> I64:
        out: I64 = np.cumsum(self.lengths) - self.lengths
        return out

    def item(self, i: int) -> bytes:
        start = int(self.lengths[:i].sum())
        return self.data[start : start + int(self.lengths[i])].tobytes()

    def items(self) -> list[bytes]:
        """Each record's value as ``bytes`` (for the few per-record steps)."""
        raw = self.data.tobytes()
        ends = np.cumsum(self.lengths).tolist()
        out, start = [], 0
        for end in ends:
            out.append(raw[start:end])
            start = end
        return out


@dataclass(frozen=True, slots=True)
class Cut:
    """The first ``lengths[i]`` bytes of each value of *var* (e.g. a ciphertext whose last
    keystream block is whole): :func:`assemble` drops the rest as it lays the records out."""

    var: Var
    lengths: I64


#: One piece of a record: the same bytes for every record, an ``n x w`` matrix, a Var or a Cut.
Segment = bytes | U8 | Var | Cut


def var_of(values: Sequence[bytes]) -> Var:
    """A :class:`Var` from one ``bytes`` value per record."""
    data = np.frombuffer(b"".join(values), np.uint8)
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    return Var(data, lengths)


def text_var(values: Sequence[str], encoding: str) -> Var:
    """Encode one text per record (``UnicodeEncodeError`` as :meth:`str.encode` raises it) in
    one call: the values joined by LF, encoded, split at the LFs (neither UTF-8, ASCII nor GBK
    encodes another character with a byte 0A). A value holding an LF is encoded on its own."""
    n = len(values)
    raw = np.frombuffer("\n".join(values).encode(encoding), np.uint8)
    seps = np.flatnonzero(raw == 0x0A)
    if len(seps) != n - 1 if n else len(raw):
        return var_of([v.encode(encoding) for v in values])
    if n == 0:
        return Var(raw, np.zeros(0, np.int64))
    ends = np.append(seps, len(raw))
    lengths = (ends - np.concatenate(([0], seps + 1))).astype(np.int64)
    return Var(np.delete(raw, seps), lengths)


def fixed_text(values: Sequence[str], width: int) -> tuple[U8, NDArray[np.bool_]]:
    """An ``n x width`` ASCII matrix of *values* and, per record, whether its value is
    exactly *width* ASCII characters (a row that is not holds ``0`` characters)."""
    n = len(values)
    joined = "".join(values)
    if len(joined) == n * width and joined.isascii():
        lens = np.fromiter(map(len, values), np.int64, n)
        if (lens == width).all():
            mat = np.frombuffer(joined.encode("ascii"), np.uint8).reshape(n, width)
            return mat, np.ones(n, np.bool_)
    ok = [len(v) == width and v.isascii() for v in values]
    fill = "0" * width
    joined = "".join([v if good else fill for v, good in zip(values, ok)])
    mat = np.frombuffer(joined.encode("ascii"), np.uint8).reshape(n, width)
    return mat, np.array(ok, np.bool_)


def digits_value(mat: U8) -> NDArray[np.uint64]:
    """The number each row of ASCII digits spells (at most 19 digits)."""
    acc = np.zeros(mat.shape[0], np.uint64)
    for j in range(mat.shape[1]):
        acc = acc * np.uint64(10) + (mat[:, j] - _ZERO).astype(np.uint64)
    return acc


_NIBBLE = np.full(256, 0xFF, np.uint8)
_NIBBLE[ord("0") : ord("9") + 1] = np.arange(10, dtype=np.uint8)
_NIBBLE[ord("A") : ord("F") + 1] = np.arange(10, 16, dtype=np.uint8)


def bcd(mat: U8, width: int, pad: str) -> U8:
    """Packed BCD of *width* bytes from rows of ASCII digits: ``pad`` ``"F"`` fills on the
    right (``cn``), ``"0"`` on the left (``n``), as :mod:`cardperso.codec.fields` encodes one
    value. Hex letters ``A``-``F`` pack as themselves (``D`` in track 2 data)."""
    n, digits = mat.shape
    if digits > 2 * width:
        raise ValueError(f"{digits} digits do not fit {width} bytes")
    nib = np.empty((n, 2 * width), np.uint8)
    if pad == "F":
        nib[:, :digits] = _NIBBLE[mat]
        nib[:, digits:] = 0x0F
    else:
        nib[:, : 2 * width - digits] = 0
        nib[:, 2 * width - digits :] = _NIBBLE[mat]
    out: U8 = ((nib[:, 0::2] << 4) | nib[:, 1::2]).astype(np.uint8)
    return out


def hex_pack(var: Var) -> Var:
    """ASCII hex digits (``0``-``9``, ``A``-``F``), an even number per value, as the bytes they
    spell: ``"6228D3"`` -> ``62 28 D3`` (BCD with letters, e.g. track 2 equivalent data)."""
    nib = _NIBBLE[var.data]
    data: U8 = ((nib[0::2] << 4) | nib[1::2]).astype(np.uint8)
    return Var(data, var.lengths // 2)


def be_uint(values: NDArray[np.int64] | NDArray[np.uint64], width: int) -> U8:
    """Each value as *width* big-endian bytes (an ``n x width`` matrix)."""
    v = np.asarray(values).astype(">u8").view(np.uint8).reshape(-1, 8)
    return v[:, 8 - width :]


def _width(seg: Segment) -> int:
    if isinstance(seg, bytes):
        return len(seg)
    if isinstance(seg, Cut):
        seg = seg.var
    if isinstance(seg, Var):
        return int(seg.lengths.max()) if len(seg.lengths) else 0
    return int(seg.shape[1])


def segment_lengths(n: int, segments: Sequence[Segment]) -> I64:
    """The length of each of the *n* records the *segments* make (without assembling them)."""
    total = np.zeros(n, np.int64)
    fixed = 0
    for seg in segments:
        if isinstance(seg, bytes):
            fixed += len(seg)
        elif isinstance(seg, (Var, Cut)):
            total += seg.lengths
        else:
            fixed += int(seg.shape[1])
    out: I64 = total + fixed
    return out


#: The constant bytes of a record layout laid out in one grid row, per layout (see
#: :func:`_constant_row`); a chunk's layout changes only with its longest variable values.
_ROWS: dict[tuple[object, ...], U8] = {}
_ROWS_MAX = 64


def _constant_row(total: int, segments: Sequence[Segment], widths: Sequence[int]) -> U8:
    """A grid row of *total* bytes holding every constant segment at its column (zeros
    elsewhere): the grid starts as copies of it, one broadcast copy for all the constants."""
    key: list[object] = [total]
    col = 0
    for seg, w in zip(segments, widths):
        if isinstance(seg, bytes):
            key += (col, seg)
        col += w
    tkey = tuple(key)
    row = _ROWS.get(tkey)
    if row is None:
        row = np.zeros(total, np.uint8)
        col = 0
        for seg, w in zip(segments, widths):
            if isinstance(seg, bytes):
                row[col : col + w] = np.frombuffer(seg, np.uint8)
            col += w
        if len(_ROWS) >= _ROWS_MAX:
            _ROWS.clear()
        _ROWS[tkey] = row
    return row


def assemble(n: int, segments: Sequence[Segment]) -> Var:
    """The records made of *segments* (in order) for all *n* records: see the module docstring."""
    widths = [_width(s) for s in segments]
    total = sum(widths)
    grid = np.empty((n, total), np.uint8)
    grid[:] = _constant_row(total, segments, widths)
    mask: NDArray[np.bool_] | None = None
    lengths = np.zeros(n, np.int64)
    fixed = 0
    col = 0
    for seg, w in zip(segments, widths):
        if isinstance(seg, bytes):
            fixed += w
        elif isinstance(seg, (Var, Cut)):
            var, used = (seg, seg.lengths) if isinstance(seg, Var) else (seg.var, seg.lengths)
            if mask is None:
                mask = np.ones((n, total), np.bool_)
            span = np.arange(w)
            sel = span < var.lengths[:, None]
            grid[:, col : col + w][sel] = var.data
            mask[:, col : col + w] = sel if used is var.lengths else span < used[:, None]
            lengths += used
        else:
            grid[:, col : col + w] = seg
            fixed += w
        col += w
    lengths += fixed
    data = grid.reshape(-1) if mask is None else grid[mask]
    return Var(data, lengths)
