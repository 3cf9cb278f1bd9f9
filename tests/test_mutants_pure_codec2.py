"""What the mutation run of 5 December 2026 over cardperso.codec (the seeded sample of 250 on
5bd2701) left: spreadsheet-safe CSV cells (codec/csvcells.py had no test in the pure list),
command chaining's piece bounds and chaining bits, a constructed TLV's children, padding after
one TLV, and a photo's colour refusal (issue 18)."""

from __future__ import annotations

import pytest

from cardperso.codec.apdu import CLA_CHAIN, chain
from cardperso.codec.csvcells import safe_cell, safe_row, unsafe_cell
from cardperso.codec.photo import CARD_PHOTO, PhotoInfo, check_frame
from cardperso.codec.tlv import Tlv, parse_one
from cardperso.errors import DataError, DecodeError


@pytest.mark.parametrize(
    ("value", "want"),
    [
        # OWASP "CSV Injection": cells starting with = + - @ tab or carriage return
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("=", "'="),
        ("＝1", "'＝1"),  # full-width = (U+FF1D), which input methods turn into =
        ("'=x", "''=x"),  # a quote already in front counts: unsafe_cell gives '=x back
        ("张三", "张三"),
        ("a=b", "a=b"),
        ("'abc", "'abc"),
        (12, "12"),
        (None, ""),
        ("", ""),
    ],
)
def test_safe_cell_quotes_what_a_spreadsheet_would_run(value: object, want: str) -> None:
    assert safe_cell(value) == want
    assert unsafe_cell(want) == ("" if value is None else str(value))


def test_safe_row() -> None:
    assert safe_row(["=1", "x", None, -3]) == ["'=1", "x", "", "'-3"]


def test_chain_pieces_and_chaining_bits() -> None:
    """ISO/IEC 7816-4 5.1.1.1: CLA bit 5 (10) on every command of a chain but the last, Le
    on the last only."""
    cmds = chain(0x80, 0xE2, 0x00, 0x00, b"abc", 1, le=256)
    assert [(c.cla, c.data, c.le) for c in cmds] == [
        (0x80 | CLA_CHAIN, b"a", None),
        (0x80 | CLA_CHAIN, b"b", None),
        (0x80, b"c", 256),
    ]
    assert CLA_CHAIN == 0x10
    two = chain(0x00, 0xD6, 0x00, 0x00, bytes(300), 255)
    assert [(c.cla, len(c.data)) for c in two] == [(0x10, 255), (0x00, 45)]


def test_a_constructed_tlv_keeps_its_children() -> None:
    kids = [Tlv(0x5A, bytes.fromhex("6228480000000000")), Tlv(0x5F24, bytes.fromhex("301231"))]
    t = Tlv.constructed(0x70, kids)
    assert t.children == tuple(kids) and t.is_constructed
    assert t.value == bytes.fromhex("5A0862284800000000005F2403301231")


def test_padding_after_one_tlv_is_skipped_only_when_allowed() -> None:
    """EMV Book 3 annex B: 00 and FF may pad between and after BER-TLV objects."""
    data = bytes.fromhex("5A02123400FF00")
    assert parse_one(data, allow_padding=True).value == bytes.fromhex("1234")
    with pytest.raises(DecodeError) as exc:
        parse_one(data)
    assert (exc.value.offset, exc.value.reason) == (4, "at offset 4: 3 trailing bytes after tag 5A")
    with pytest.raises(DecodeError) as exc:
        parse_one(bytes.fromhex("5A02123400FF01"), allow_padding=True)
    assert (exc.value.offset, exc.value.reason) == (6, "at offset 6: 1 trailing bytes after tag 5A")


@pytest.mark.parametrize(
    ("components", "kind"), [(1, "grayscale"), (4, "CMYK"), (2, "2 components")]
)
def test_a_photo_of_another_colour_model_is_named(components: int, kind: str) -> None:
    info = PhotoInfo(CARD_PHOTO.width, CARD_PHOTO.height, components, 8, 10000)
    with pytest.raises(DataError) as exc:
        check_frame(info)
    assert exc.value.reason == f"colour: is {kind}, the specification asks 24-bit colour (RGB)"


def test_a_case_1_apdu_has_no_extended_form() -> None:
    """ISO/IEC 7816-4 5.1: case 1 is the header alone; only Lc or Le have an extended form."""
    from cardperso.codec.apdu import CommandAPDU
    from cardperso.errors import UsageError

    cmd = CommandAPDU(0x00, 0xA4, 0x04, 0x00)
    assert cmd.to_bytes() == bytes.fromhex("00A40400")
    with pytest.raises(UsageError) as exc:
        cmd.to_bytes(extended=True)
    assert str(exc.value) == "a case 1 APDU has no extended form"


def _jpeg_error(data: bytes) -> tuple[str | None, str]:
    from cardperso.codec.photo import frame

    with pytest.raises(DataError) as exc:
        frame(data)
    return exc.value.field, exc.value.reason


def test_a_damaged_jpeg_is_named_by_what_is_wrong() -> None:
    """ITU T.81 annex B: after SOI (FFD8) every segment starts with FF and a marker; a frame
    header (SOF0 FFC0) holds its length, precision, height, width and component count."""
    from cardperso.codec.photo import frame

    sof = bytes.fromhex("FFC0 0011 08 01B9 0166 03 011100 021101 031101")
    info = frame(b"\xff\xd8" + sof)
    assert (info.precision, info.height, info.width, info.components) == (8, 441, 358, 3)
    # a restart marker (no length) before the frame header is stepped over
    assert frame(b"\xff\xd8\xff\xd0" + sof).width == 358
    assert _jpeg_error(b"\xff\xd8\x00\x00\x00\x00") == (
        "photo",
        "format: the JPEG is damaged (no marker at byte 2)",
    )
    assert _jpeg_error(b"\xff\xd8\xff\xe0\x00\x10\x00\x00") == (
        "photo",
        "format: the JPEG is damaged (a segment runs past the end)",
    )
    assert _jpeg_error(b"\xff\xd8\xff\xc0\x00\x06" + bytes(4)) == (
        "photo",
        "format: the JPEG is damaged (short frame header)",
    )
    assert _jpeg_error(b"\xff\xd8\xff\xd9") == (
        "photo",
        "format: the JPEG has no frame header (truncated?)",
    )


def test_photo_size_bounds_are_inclusive() -> None:
    for size in (CARD_PHOTO.min_bytes, CARD_PHOTO.max_bytes):
        info = PhotoInfo(CARD_PHOTO.width, CARD_PHOTO.height, 3, 8, size)
        assert check_frame(info) == info
    for size in (CARD_PHOTO.min_bytes - 1, CARD_PHOTO.max_bytes + 1):
        with pytest.raises(DataError):
            check_frame(PhotoInfo(CARD_PHOTO.width, CARD_PHOTO.height, 3, 8, size))
