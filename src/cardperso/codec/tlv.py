"""BER-TLV as used by EMV and GlobalPlatform (ISO/IEC 8825-1 subset, EMV Book 3 Annex B).

How this works
--------------
* **Tag**: one byte, or several when the low five bits of the first byte are all set (``1F``);
  every following byte has bit 8 set except the last one (``9F38``, ``BF0C``, ``DF8101``). Tags
  are handled as ints of up to 4 bytes; bit 6 (``0x20``) of the first byte marks a
  *constructed* object whose value is itself a sequence of TLV objects.
* **Length**: ``00``-``7F`` in one byte; ``81 xx``, ``82 xxxx``, ``83 xxxxxx``, ``84 xxxxxxxx``
  for longer values. The indefinite form (``80``) is not allowed here (EMV forbids it).
  Non-minimal long forms (``81 05``) are accepted when parsing; encoding is always minimal.
* **Nesting** deeper than :data:`MAX_DEPTH` constructed levels is a decode error.
* **Padding**: EMV Book 3 allows ``00`` bytes before, between and after data objects, and some
  cards pad records with ``FF``. Both are rejected unless ``allow_padding=True`` is passed.

A parsed :class:`Tlv` keeps the exact value bytes it was read from (including any padding
inside a constructed value), so ``build(parse_one(x)) == x`` whenever *x* uses minimal lengths.
Every parse error is a :class:`~cardperso.errors.DecodeError` with the absolute offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from cardperso.errors import DecodeError, EncodingError, UsageError

__all__ = [
    "Tlv",
    "build",
    "encode",
    "encode_length",
    "encode_tag",
    "find",
    "find_all",
    "is_constructed",
    "iter_tlvs",
    "parse",
    "parse_one",
    "read_tlv",
    "tag_hex",
    "to_dict",
]

MAX_TAG_BYTES = 4
#: Deepest nesting of constructed objects accepted (EMV uses 3-4 levels; a bound keeps hostile
#: input from exhausting the interpreter stack).
MAX_DEPTH = 32
MAX_LENGTH = 0xFFFFFFFF
_PADDING = (0x00, 0xFF)


def _tag_bytes(tag: int) -> bytes:
    """The tag as its minimal big-endian bytes, validated as a BER tag."""
    if isinstance(tag, bool) or not isinstance(tag, int) or tag <= 0 or tag > 0xFFFFFFFF:
        raise EncodingError(f"tag must be an int from 01 to FFFFFFFF, got {tag!r}", field="tag")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    name = raw.hex().upper()
    if len(raw) == 1:
        if raw[0] & 0x1F == 0x1F:
            raise EncodingError(f"tag {name}: low bits 1F announce a subsequent byte", field="tag")
        return raw
    if raw[0] & 0x1F != 0x1F:
        raise EncodingError(
            f"tag {name}: a multi-byte tag must start with low bits 1F", field="tag"
        )
    if raw[1] == 0x80:
        raise EncodingError(f"tag {name}: first subsequent byte must not be 80", field="tag")
    for b in raw[1:-1]:
        if not b & 0x80:
            raise EncodingError(f"tag {name}: inner tag byte {b:02X} lacks bit 8", field="tag")
    if raw[-1] & 0x80:
        raise EncodingError(f"tag {name}: last tag byte must not have bit 8 set", field="tag")
    return raw


def tag_hex(tag: int) -> str:
    """The tag in the usual hex notation (``9F38``), for messages."""
    return f"{tag:0{2 * max(1, (tag.bit_length() + 7) // 8)}X}"


def is_constructed(tag: int) -> bool:
    """True when bit 6 of the tag's first byte is set (the value is a TLV sequence)."""
    return bool(_tag_bytes(tag)[0] & 0x20)


def encode_tag(tag: int) -> bytes:
    """The BER encoding of *tag* (validated: 1 to 4 bytes, well-formed continuation bits)."""
    return _tag_bytes(tag)


def encode_length(length: int) -> bytes:
    """The minimal BER definite-length encoding of *length* (up to ``84 xxxxxxxx``)."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise EncodingError(f"length must be a non-negative int, got {length!r}", field="length")
    if length < 0x80:
        return bytes([length])
    if length > MAX_LENGTH:
        raise EncodingError(f"length {length} exceeds 4 length bytes", field="length")
    n = (length.bit_length() + 7) // 8
    return bytes([0x80 | n]) + length.to_bytes(n, "big")


def encode(tag: int, value: bytes) -> bytes:
    """Tag, length and value of one primitive or constructed object (value already encoded)."""
    return _tag_bytes(tag) + encode_length(len(value)) + bytes(value)


@dataclass(frozen=True, slots=True)
class Tlv:
    """One BER-TLV data object.

    ``value`` is always the raw value bytes. ``children`` is ``None`` for a primitive object and
    the parsed sub-objects for a constructed one. Build a constructed object with
    :meth:`constructed` (or pass ``children`` and leave ``value`` empty: it is filled in).
    """

    tag: int
    value: bytes = b""
    children: tuple[Tlv, ...] | None = None

    def __post_init__(self) -> None:
        constructed = is_constructed(self.tag)
        if not isinstance(self.value, bytes):
            if isinstance(self.value, (bytearray, memoryview)):
                object.__setattr__(self, "value", bytes(self.value))
            else:
                raise UsageError(f"Tlv {tag_hex(self.tag)}: value must be bytes")
        if self.children is not None:
            if not constructed:
                raise UsageError(f"Tlv {tag_hex(self.tag)} is primitive and cannot have children")
            children = tuple(self.children)
            object.__setattr__(self, "children", children)
            if not self.value and children:
                object.__setattr__(self, "value", b"".join(build(c) for c in children))
        elif constructed:
            object.__setattr__(self, "children", tuple(parse(self.value)))

    @classmethod
    def constructed(cls, tag: int, children: Iterable[Tlv]) -> Tlv:
        """A constructed object whose value is the encoding of *children*."""
        kids = tuple(children)
        return cls(tag, b"".join(build(c) for c in kids), kids)

    @property
    def is_constructed(self) -> bool:
        return self.children is not None

    def to_bytes(self) -> bytes:
        return build(self)

    def __repr__(self) -> str:
        if self.children is not None:
            return f"Tlv({tag_hex(self.tag)}, children={list(self.children)!r})"
        return f"Tlv({tag_hex(self.tag)}, {len(self.value)} bytes)"


def build(tlv: Tlv | Iterable[Tlv]) -> bytes:
    """Encode one object, or a sequence of objects concatenated."""
    if isinstance(tlv, Tlv):
        return encode(tlv.tag, tlv.value)
    return b"".join(encode(t.tag, t.value) for t in tlv)


def _read_tag(data: bytes, pos: int, end: int) -> tuple[int, int]:
    start = pos
    if pos >= end:
        raise DecodeError("truncated tag: no tag byte", offset=pos, field="tag")
    first = data[pos]
    pos += 1
    if first & 0x1F == 0x1F:
        while True:
            if pos >= end:
                raise DecodeError(
                    "truncated tag: subsequent tag byte missing", offset=pos, field="tag"
                )
            b = data[pos]
            pos += 1
            if pos - start == 2 and b == 0x80:
                raise DecodeError("tag: first subsequent byte is 80", offset=pos - 1, field="tag")
            if not b & 0x80:
                break
            if pos - start >= MAX_TAG_BYTES:
                raise DecodeError(
                    f"tag longer than {MAX_TAG_BYTES} bytes", offset=start, field="tag"
                )
    return int.from_bytes(data[start:pos], "big"), pos


def _read_length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise DecodeError("truncated length: no length byte", offset=pos, field="length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first == 0x80:
        raise DecodeError("indefinite length (80) is not allowed", offset=pos, field="length")
    n = first & 0x7F
    if n > 4:
        raise DecodeError(
            f"length form {first:02X} not supported (max 84)", offset=pos, field="length"
        )
    if pos + 1 + n > end:
        raise DecodeError(
            f"truncated length: {first:02X} announces {n} length bytes, {end - pos - 1} left",
            offset=pos,
            field="length",
        )
    return int.from_bytes(data[pos + 1 : pos + 1 + n], "big"), pos + 1 + n


def _read(data: bytes, pos: int, end: int, allow_padding: bool, depth: int = 0) -> tuple[Tlv, int]:
    start = pos
    if depth > MAX_DEPTH:
        raise DecodeError(
            f"constructed objects nested deeper than {MAX_DEPTH}", offset=pos, field="value"
        )
    tag, pos = _read_tag(data, pos, end)
    length, pos = _read_length(data, pos, end)
    if pos + length > end:
        raise DecodeError(
            f"tag {tag_hex(tag)}: length {length} goes beyond the data ({end - pos} bytes left)",
            offset=start,
            field="length",
        )
    value = bytes(data[pos : pos + length])
    children: tuple[Tlv, ...] | None = None
    if data[start] & 0x20:
        children = tuple(_parse_range(data, pos, pos + length, allow_padding, depth + 1))
    return Tlv(tag, value, children), pos + length


def _parse_range(
    data: bytes, pos: int, end: int, allow_padding: bool, depth: int = 0
) -> Iterator[Tlv]:
    while pos < end:
        if data[pos] in _PADDING:
            if not allow_padding:
                raise DecodeError(
                    f"padding byte {data[pos]:02X} between objects (allow_padding not set)",
                    offset=pos,
                    field="tag",
                )
            pos += 1
            continue
        tlv, pos = _read(data, pos, end, allow_padding, depth)
        yield tlv


def read_tlv(data: bytes, offset: int = 0, *, allow_padding: bool = False) -> tuple[Tlv, int]:
    """Read one object at *offset*; return it and the offset just past it (stream parsing)."""
    raw = bytes(data)
    return _read(raw, offset, len(raw), allow_padding)


def iter_tlvs(data: bytes, *, allow_padding: bool = False) -> Iterator[Tlv]:
    """Yield the top-level objects of *data* one at a time."""
    raw = bytes(data)
    return _parse_range(raw, 0, len(raw), allow_padding)


def parse(data: bytes, *, allow_padding: bool = False) -> list[Tlv]:
    """Parse a whole buffer into its top-level objects (constructed ones recursively)."""
    return list(iter_tlvs(data, allow_padding=allow_padding))


def parse_one(data: bytes, *, allow_padding: bool = False) -> Tlv:
    """Parse exactly one object; anything after it (other than allowed padding) is an error."""
    raw = bytes(data)
    pos = 0
    if allow_padding:
        while pos < len(raw) and raw[pos] in _PADDING:
            pos += 1
    tlv, pos = _read(raw, pos, len(raw), allow_padding)
    rest = raw[pos:]
    if allow_padding:
        rest = rest.lstrip(b"\x00\xff")
    if rest:
        raise DecodeError(
            f"{len(rest)} trailing bytes after tag {tag_hex(tlv.tag)}", offset=len(raw) - len(rest)
        )
    return tlv


def find_all(tlvs: Iterable[Tlv], tag: int) -> Iterator[Tlv]:
    """Every object with *tag*, depth first, in document order."""
    for t in tlvs:
        if t.tag == tag:
            yield t
        if t.children:
            yield from find_all(t.children, tag)


def find(tlvs: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with *tag* (searching constructed objects recursively), or None."""
    return next(find_all(tlvs, tag), None)


def to_dict(tlvs: Sequence[Tlv] | Tlv) -> dict[int, bytes]:
    """Map every *primitive* tag (found recursively) to its value.

    Constructed templates are descended into, not listed. A primitive tag present twice is a
    :class:`DecodeError`: EMV allows a data object only once per context, and silently keeping
    one of two values hides card or data-preparation bugs.
    """
    out: dict[int, bytes] = {}

    def walk(items: Iterable[Tlv]) -> None:
        for t in items:
            if t.children is not None:
                walk(t.children)
            elif t.tag in out:
                raise DecodeError(f"tag {tag_hex(t.tag)} occurs more than once")
            else:
                out[t.tag] = t.value

    walk([tlvs] if isinstance(tlvs, Tlv) else tlvs)
    return out


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """(tag, length) pairs of an EMV data object list (PDOL, CDOL1/2, DDOL): tags with no
    values, each followed by the one-byte length the card wants (EMV Book 3, 5.4)."""
    out: list[tuple[int, int]] = []
    i = 0
    try:
        while i < len(dol):
            start = i
            i += 1
            if dol[start] & 0x1F == 0x1F:
                while dol[i] & 0x80:
                    i += 1
                i += 1
            out.append((int.from_bytes(dol[start:i], "big"), dol[i]))
            i += 1
    except IndexError:
        raise DecodeError("truncated data object list", offset=i, field="DOL") from None
    return out
