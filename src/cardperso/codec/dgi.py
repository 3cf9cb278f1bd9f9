"""EMV CPS Data Grouping Identifiers (EMV Card Personalization Specification 1.1, 2.2 / 4.1).

A DGI is ``DGI (2 bytes) ‖ L ‖ data``. L is one byte for 0-254; for 255 and more it is ``FF``
followed by two bytes (so the largest DGI carries 65535 bytes). STORE DATA commands carry one
or more DGIs back to back; :func:`parse_dgis` splits such a stream and names the offset of any
truncation. The 3-byte form is accepted for short values when parsing (some preparation
systems always use it); :func:`encode_dgi` always uses the shortest form.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cardperso.errors import DecodeError, EncodingError

__all__ = ["MAX_DGI_LENGTH", "encode_dgi", "encode_dgis", "iter_dgis", "parse_dgis", "read_dgi"]

MAX_DGI_LENGTH = 0xFFFF


def encode_dgi(dgi: int, data: bytes) -> bytes:
    """``DGI ‖ L ‖ data`` with L in one byte (0-254) or ``FF`` + two bytes."""
    if isinstance(dgi, bool) or not isinstance(dgi, int) or not 0 <= dgi <= 0xFFFF:
        raise EncodingError(f"DGI must be an int from 0000 to FFFF, got {dgi!r}", field="dgi")
    raw = bytes(data)
    n = len(raw)
    if n > MAX_DGI_LENGTH:
        raise EncodingError(
            f"DGI {dgi:04X} data is {n} bytes, max {MAX_DGI_LENGTH} bytes", field=f"DGI {dgi:04X}"
        )
    length = bytes([n]) if n < 0xFF else b"\xff" + n.to_bytes(2, "big")
    return dgi.to_bytes(2, "big") + length + raw


def encode_dgis(dgis: Iterable[tuple[int, bytes]]) -> bytes:
    """Several DGIs back to back."""
    return b"".join(encode_dgi(d, v) for d, v in dgis)


def read_dgi(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Read one DGI at *offset*: ``(dgi, data, offset just past it)``."""
    raw = bytes(data)
    end = len(raw)
    pos = offset
    if pos + 2 > end:
        raise DecodeError(
            f"truncated DGI identifier: {end - pos} of 2 bytes", offset=pos, field="dgi"
        )
    dgi = int.from_bytes(raw[pos : pos + 2], "big")
    pos += 2
    if pos >= end:
        raise DecodeError(f"DGI {dgi:04X}: length byte missing", offset=pos, field="length")
    n = raw[pos]
    if n == 0xFF:
        if pos + 3 > end:
            raise DecodeError(
                f"DGI {dgi:04X}: truncated 3-byte length (FF + 2 bytes), {end - pos} bytes left",
                offset=pos,
                field="length",
            )
        n = int.from_bytes(raw[pos + 1 : pos + 3], "big")
        pos += 3
    else:
        pos += 1
    if pos + n > end:
        raise DecodeError(
            f"DGI {dgi:04X}: length {n} goes beyond the data ({end - pos} bytes left)",
            offset=offset,
            field="length",
        )
    return dgi, raw[pos : pos + n], pos + n


def iter_dgis(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield ``(dgi, data)`` pairs from a stream of DGIs."""
    raw = bytes(data)
    pos = 0
    while pos < len(raw):
        dgi, value, pos = read_dgi(raw, pos)
        yield dgi, value


def parse_dgis(data: bytes) -> list[tuple[int, bytes]]:
    """Split a whole buffer of DGIs; any truncation is a :class:`DecodeError` with its offset."""
    return list(iter_dgis(data))
