"""Simple TLV as used by SSSE records (ISO/IEC 7816-4 5.2.1, one-byte length form only).

Every record of the social-security EF05/EF06 files is ``tag (1 byte) ‖ length (1 byte) ‖
value``. ISO 7816-4 reserves tags ``00`` and ``FF`` and uses a length byte of ``FF`` to announce a
3-byte length, which SSSE records never use, so both are errors here: values are 0-254 bytes.
A record that was never written reads as ``FF``/``00`` filler; pass ``allow_padding=True``
to skip such bytes between (or after) records.
"""

from __future__ import annotations

from cardperso.errors import DecodeError, EncodingError

__all__ = ["MAX_LENGTH", "encode", "parse", "parse_one", "read"]

MAX_LENGTH = 0xFE
_PADDING = (0x00, 0xFF)


def encode(tag: int, value: bytes) -> bytes:
    """``tag ‖ len ‖ value`` with a one-byte tag (01-FE) and a one-byte length (0-254)."""
    if isinstance(tag, bool) or not isinstance(tag, int) or not 0x01 <= tag <= 0xFE:
        raise EncodingError(
            f"simple-TLV tag must be an int from 01 to FE, got {tag!r}", field="tag"
        )
    raw = bytes(value)
    if len(raw) > MAX_LENGTH:
        raise EncodingError(
            f"value is {len(raw)} bytes, max {MAX_LENGTH} bytes in a one-byte length",
            field=f"tag {tag:02X}",
        )
    return bytes([tag, len(raw)]) + raw


def read(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Read one object at *offset*: ``(tag, value, offset just past it)``."""
    raw = bytes(data)
    end = len(raw)
    pos = offset
    if pos >= end:
        raise DecodeError("truncated simple TLV: tag byte missing", offset=pos, field="tag")
    tag = raw[pos]
    if tag in _PADDING:
        raise DecodeError(f"invalid simple-TLV tag {tag:02X}", offset=pos, field="tag")
    if pos + 1 >= end:
        raise DecodeError(f"tag {tag:02X}: length byte missing", offset=pos + 1, field="length")
    n = raw[pos + 1]
    if n == 0xFF:
        raise DecodeError(
            f"tag {tag:02X}: 3-byte length form (FF) not used in SSSE records",
            offset=pos + 1,
            field="length",
        )
    if pos + 2 + n > end:
        raise DecodeError(
            f"tag {tag:02X}: length {n} goes beyond the data ({end - pos - 2} bytes left)",
            offset=pos,
            field="length",
        )
    return tag, raw[pos + 2 : pos + 2 + n], pos + 2 + n


def parse(data: bytes, *, allow_padding: bool = False) -> list[tuple[int, bytes]]:
    """Split a buffer into ``(tag, value)`` pairs."""
    raw = bytes(data)
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(raw):
        if allow_padding and raw[pos] in _PADDING:
            pos += 1
            continue
        tag, value, pos = read(raw, pos)
        out.append((tag, value))
    return out


def parse_one(data: bytes, *, allow_padding: bool = False) -> tuple[int, bytes]:
    """Parse exactly one object (one SSSE record); trailing bytes are an error unless padding."""
    raw = bytes(data)
    tag, value, pos = read(raw, 0)
    rest = raw[pos:]
    if allow_padding:
        rest = rest.lstrip(b"\x00\xff")
    if rest:
        raise DecodeError(
            f"{len(rest)} trailing bytes after tag {tag:02X}", offset=len(raw) - len(rest)
        )
    return tag, value
