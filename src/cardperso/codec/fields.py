"""Field encodings used in card records: cn, n, an (ASCII or GBK) and b.

How this works
--------------
* **cn** (compressed numeric): packed BCD, two digits per byte, left aligned and right-padded
  with ``F`` nibbles (``"20261122"`` in 4 bytes is ``20 26 11 22``; ``"123"`` in 3 bytes is
  ``12 3F FF``). Decoding stops at the first ``F``; every nibble after it must also be ``F``.
* **n** (numeric): packed BCD, right aligned and left-padded with ``0`` nibbles (an EMV amount
  n12 of 1234 is ``00 00 00 00 12 34``).
* **an**: text in ASCII or, for Chinese text on social-security cards, GBK, right-padded with
  ``00`` bytes, so a NUL character inside the text is refused. Other control characters are
  encoded as they are: rejecting them is the input validation's job, not the codec's. A value that is too long or contains a character the charset cannot encode is
  an :class:`~cardperso.errors.EncodingError`, never silently truncated.
* **b**: raw bytes of an exact length.

Every encoder takes the *field* name and puts it in its error, together with a reason an
operator can act on. Reasons never echo the whole value: it may be a personal name or an
identity number. At most one offending character is shown (by position and code point).
"""

from __future__ import annotations

from cardperso.errors import DecodeError, EncodingError

__all__ = [
    "CARD_ID_TAILS",
    "CHARSETS",
    "card_id_tail",
    "decode_an",
    "decode_b",
    "decode_cn",
    "decode_n",
    "encode_an",
    "encode_b",
    "encode_cn",
    "encode_n",
    "join_gbk",
    "split_gbk",
]

#: Charsets accepted by :func:`encode_an` / :func:`decode_an`.
CHARSETS = ("ascii", "gbk")

_DIGITS = frozenset("0123456789")


def _check_length(length: int, field: str) -> None:
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise EncodingError(f"field length must be a non-negative int, got {length!r}", field=field)


def _first_non_digit(value: str) -> int | None:
    for i, ch in enumerate(value):
        if ch not in _DIGITS:
            return i
    return None


# --- cn: packed BCD, F padded --------------------------------------------------------------------


def encode_cn(value: str, length: int, field: str) -> bytes:
    """Encode decimal digits as cn: packed BCD in *length* bytes, right-padded with F nibbles."""
    _check_length(length, field)
    if not isinstance(value, str):
        raise EncodingError(
            f"cn value must be a str of digits, got {type(value).__name__}", field=field
        )
    bad = _first_non_digit(value)
    if bad is not None:
        raise EncodingError(
            f"cn allows digits 0-9 only; character at position {bad} is not a digit", field=field
        )
    if len(value) > 2 * length:
        raise EncodingError(
            f"cn value has {len(value)} digits, max {2 * length} digits ({length} bytes)",
            field=field,
        )
    padded = value + "F" * (2 * length - len(value))
    return bytes.fromhex(padded)


def decode_cn(data: bytes, field: str | None = None) -> str:
    """Decode cn bytes to their digits, stopping at the first F nibble (the rest must be F)."""
    nibbles = data.hex().upper()
    digits: list[str] = []
    for i, nib in enumerate(nibbles):
        if nib == "F":
            rest = nibbles[i:]
            if rest.strip("F"):
                bad = i + len(rest) - len(rest.lstrip("F"))
                raise DecodeError(
                    f"cn digit after F padding (nibble {bad})", offset=bad // 2, field=field
                )
            break
        if nib not in _DIGITS:
            raise DecodeError(
                f"cn nibble {nib} is not a digit (nibble {i})", offset=i // 2, field=field
            )
        digits.append(nib)
    return "".join(digits)


# --- n: packed BCD, 0 padded on the left ---------------------------------------------------------


def encode_n(value: int | str, length: int, field: str) -> bytes:
    """Encode a non-negative number as n: packed BCD in *length* bytes, left-padded with 0."""
    _check_length(length, field)
    if isinstance(value, bool):
        raise EncodingError("n value must be an int or a str of digits, got bool", field=field)
    if isinstance(value, int):
        if value < 0:
            raise EncodingError("n value must not be negative", field=field)
        digits = str(value)
    elif isinstance(value, str):
        bad = _first_non_digit(value)
        if bad is not None or not value:
            where = f"character at position {bad} is not a digit" if value else "value is empty"
            raise EncodingError(f"n allows digits 0-9 only; {where}", field=field)
        digits = value
    else:
        raise EncodingError(
            f"n value must be an int or a str of digits, got {type(value).__name__}", field=field
        )
    if len(digits) > 2 * length:
        significant = digits.lstrip("0") or "0"
        if len(significant) > 2 * length:
            raise EncodingError(
                f"n value has {len(significant)} digits, max {2 * length} digits ({length} bytes)",
                field=field,
            )
        digits = significant
    return bytes.fromhex(digits.rjust(2 * length, "0"))


def decode_n(data: bytes, field: str | None = None) -> int:
    """Decode n bytes (packed BCD, every nibble a digit) to an int; empty data is 0."""
    nibbles = data.hex()
    for i, nib in enumerate(nibbles):
        if nib not in _DIGITS:
            raise DecodeError(
                f"n nibble {nib.upper()} is not a digit (nibble {i})", offset=i // 2, field=field
            )
    return int(nibbles) if nibbles else 0


# --- an: ASCII or GBK text, 00 padded ------------------------------------------------------------


def _check_charset(charset: str, field: str | None) -> None:
    if charset not in CHARSETS:
        raise EncodingError(
            f"unknown charset {charset!r}, expected one of {', '.join(CHARSETS)}", field=field
        )


def _encode_text(value: str, charset: str, field: str) -> bytes:
    """Encode *value*; on failure name the position and code point of the first bad character."""
    _check_charset(charset, field)
    if not isinstance(value, str):
        raise EncodingError(f"an value must be a str, got {type(value).__name__}", field=field)
    for i, ch in enumerate(value):
        if ch == "\x00":
            raise EncodingError(
                f"NUL character at position {i} (00 is the padding byte)", field=field
            )
    try:
        return value.encode(charset)
    except UnicodeEncodeError as exc:
        ch = value[exc.start]
        raise EncodingError(
            f"character at position {exc.start} (U+{ord(ch):04X}) "
            f"cannot be encoded in {charset.upper()}",
            field=field,
        ) from None


def encode_an(value: str, length: int, field: str, charset: str = "ascii") -> bytes:
    """Encode text as an: *charset* ("ascii" or "gbk") bytes right-padded with 00 to *length*."""
    _check_length(length, field)
    raw = _encode_text(value, charset, field)
    if len(raw) > length:
        raise EncodingError(
            f"value is {len(raw)} bytes in {charset.upper()}, max {length} bytes", field=field
        )
    return raw + b"\x00" * (length - len(raw))


def decode_an(data: bytes, charset: str = "ascii", field: str | None = None) -> str:
    """Decode an bytes: strip trailing 00 padding and decode in *charset*.

    Accepts exactly what :func:`encode_an` produces: a 00 byte followed by text is a
    :class:`DecodeError`, so a decoded value can always be encoded again.
    """
    _check_charset(charset, field)
    raw = bytes(data).rstrip(b"\x00")
    nul = raw.find(b"\x00")
    if nul >= 0:  # GBK trail bytes are 40-FE, so a 00 byte is always a NUL character
        raise DecodeError("NUL byte before the end of the text", offset=nul, field=field)
    try:
        return raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"byte {raw[exc.start]:02X} is not valid {charset.upper()}",
            offset=exc.start,
            field=field,
        ) from None


def split_gbk(value: str, first: int, second: int, field: str) -> tuple[bytes, bytes]:
    """Encode *value* in GBK and split it over two fields of *first* and *second* bytes.

    Used for the SSSE name (EF06 tag 09, 30 bytes) and its extension (tag 4E, 20 bytes). The
    first part is filled with as many whole characters as fit; a 2-byte GBK character is never
    cut in half. Both parts are returned **unpadded** (the second is ``b""`` when the value fits
    the first field); pad them with :func:`encode_b`-style logic or ``ljust(n, b"\\0")``.
    A value that does not fit ``first + second`` bytes (after boundary alignment) or has a
    character GBK cannot encode raises :class:`EncodingError`.
    """
    _check_length(first, field)
    _check_length(second, field)
    raw = _encode_text(value, "gbk", field)
    if len(raw) > first + second:
        raise EncodingError(
            f"value is {len(raw)} bytes in GBK, max {first + second} bytes ({first} + {second})",
            field=field,
        )
    cut = 0
    for ch in value:
        size = len(ch.encode("gbk"))
        if cut + size > first:
            break
        cut += size
    head, tail = raw[:cut], raw[cut:]
    if len(tail) > second:
        raise EncodingError(
            f"value is {len(raw)} bytes in GBK and does not split on a character boundary "
            f"into {first} + {second} bytes",
            field=field,
        )
    return head, tail


def join_gbk(first: bytes, second: bytes = b"", field: str | None = None) -> str:
    """Inverse of :func:`split_gbk`: strip 00 padding from both parts and decode the GBK text."""
    return decode_an(bytes(first).rstrip(b"\x00") + bytes(second), "gbk", field)


# --- b: raw bytes --------------------------------------------------------------------------------


def encode_b(value: bytes, length: int | None, field: str) -> bytes:
    """Check raw bytes for a b field: exactly *length* bytes (any length when None)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise EncodingError(f"b value must be bytes, got {type(value).__name__}", field=field)
    raw = bytes(value)
    if length is not None:
        _check_length(length, field)
        if len(raw) != length:
            raise EncodingError(
                f"value is {len(raw)} bytes, expected exactly {length} bytes", field=field
            )
    return raw


def decode_b(data: bytes, length: int | None = None, field: str | None = None) -> bytes:
    """Return raw bytes of a b field, checking the length when given."""
    raw = bytes(data)
    if length is not None and len(raw) != length:
        raise DecodeError(f"b field is {len(raw)} bytes, expected {length} bytes", field=field)
    return raw


#: The profile choices for bytes 9-16 of the card identification code (卡识别码).
CARD_ID_TAILS = ("chip-serial", "ffffffff")


def card_id_tail(serial: bytes, tail: str) -> bytes:
    """Bytes 9-16 of the card identification code: region(3) ‖ D1 56 00 00 05 ‖ these 8.

    The code is region ‖ the SSSE RID ‖ 8 bytes the card maker sets; no checksum over it is
    published (the LD/T 32 text is not public, and nothing in it that public readers show is a
    CRC). Public social-security readers (e.g. the reader code quoting
    ``639900D15600000500BF7C7A48FB4966`` beside ATR historical bytes ``…9900BF7C7A`` and
    ``320200D156000005AD932A48BDC3B9E9`` beside ``…3202AD932A48``) show bytes 9-12 as the chip
    serial of the ATR. We fill ``chip-serial`` = the chip serial (4 bytes; the CPLC IC serial,
    a placeholder until the station reads it) ‖ FF FF FF FF, or ``ffffffff`` = FF×8 where the
    chip serial is not to be put in the code; bytes 13-16 are never invented.
    """
    if tail == "ffffffff":
        return b"\xff" * 8
    if tail != "chip-serial" or len(serial) != 4:
        raise ValueError(f"card id tail {tail!r} needs a 4-byte chip serial")
    return serial + b"\xff" * 4
