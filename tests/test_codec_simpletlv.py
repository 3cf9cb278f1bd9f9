"""Simple TLV for SSSE records (ISO/IEC 7816-4 5.2.1; record layout from
shared/reference/social-security-card.md, EF05/EF06 "one simple TLV per record")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.codec import simpletlv
from cardperso.errors import DecodeError, EncodingError


def test_ssse_records() -> None:
    # EF05 record 3, tag 03 spec version "3.00" (an4); EF06 record 4, tag 0A gender '1' (an1)
    assert simpletlv.encode(0x03, b"3.00") == bytes.fromhex("030433 2E 30 30".replace(" ", ""))
    assert simpletlv.encode(0x0A, b"1") == bytes.fromhex("0A0131")
    # EF05 record 5, tag 05 issue date cn YYYYMMDD
    assert simpletlv.parse_one(bytes.fromhex("050420261122")) == (0x05, bytes.fromhex("20261122"))
    assert simpletlv.parse(bytes.fromhex("0A0131050420261122")) == [
        (0x0A, b"1"),
        (0x05, bytes.fromhex("20261122")),
    ]
    assert simpletlv.encode(0x4E, b"") == b"\x4e\x00"


def test_padding_flag() -> None:
    assert simpletlv.parse(bytes.fromhex("0A0131FFFF"), allow_padding=True) == [(0x0A, b"1")]
    assert simpletlv.parse_one(bytes.fromhex("0A013100FF"), allow_padding=True) == (0x0A, b"1")
    with pytest.raises(DecodeError) as e:
        simpletlv.parse(bytes.fromhex("0A0131FFFF"))
    assert e.value.offset == 3 and "invalid simple-TLV tag FF" in e.value.reason


@pytest.mark.parametrize(
    ("hexdata", "field", "offset", "why"),
    [
        ("", "tag", 0, "tag byte missing"),
        ("09", "length", 1, "tag 09: length byte missing"),
        ("0903AABB", "length", 0, "tag 09: length 3 goes beyond the data (2 bytes left)"),
        ("09FF0001AA", "length", 1, "3-byte length form"),
        ("00", "tag", 0, "invalid simple-TLV tag 00"),
    ],
)
def test_decode_errors(hexdata: str, field: str, offset: int, why: str) -> None:
    with pytest.raises(DecodeError) as e:
        simpletlv.parse_one(bytes.fromhex(hexdata))
    assert e.value.offset == offset
    assert e.value.field == field
    assert why in e.value.reason


def test_parse_one_trailing() -> None:
    with pytest.raises(DecodeError) as e:
        simpletlv.parse_one(bytes.fromhex("0A01310B01"))
    assert e.value.offset == 3 and "2 trailing bytes after tag 0A" in e.value.reason


def test_encode_errors() -> None:
    with pytest.raises(EncodingError) as e:
        simpletlv.encode(0x09, b"\x00" * 255)
    assert e.value.field == "tag 09" and "255 bytes, max 254" in e.value.reason
    for bad in (0x00, 0xFF, 0x100):
        with pytest.raises(EncodingError) as e:
            simpletlv.encode(bad, b"")
        assert e.value.field == "tag" and "01 to FE" in e.value.reason


_items = st.lists(st.tuples(st.integers(1, 0xFE), st.binary(max_size=254)), max_size=6)


@given(_items)
def test_round_trip(items: list[tuple[int, bytes]]) -> None:
    data = b"".join(simpletlv.encode(t, v) for t, v in items)
    assert simpletlv.parse(data) == items


@settings(deadline=None)
@given(_items.filter(bool), st.binary(min_size=1, max_size=3))
def test_prefixes_and_trailing(items: list[tuple[int, bytes]], extra: bytes) -> None:
    data = b"".join(simpletlv.encode(t, v) for t, v in items)
    ends, pos = set(), 0
    for _, v in items:
        pos += 2 + len(v)
        ends.add(pos)
    for i in range(len(data)):
        try:
            simpletlv.parse(data[:i])
        except DecodeError:
            assert i not in ends
        else:
            assert i in ends or i == 0
    first = simpletlv.encode(*items[0])
    with pytest.raises(DecodeError, match=r"at offset \d+: \d+ trailing bytes after tag"):
        simpletlv.parse_one(first + extra)


@given(st.binary(max_size=40), st.booleans())
def test_garbage_never_crashes(data: bytes, padding: bool) -> None:
    try:
        got = simpletlv.parse(data, allow_padding=padding)
    except DecodeError:
        return
    rebuilt = b"".join(simpletlv.encode(t, v) for t, v in got)
    assert simpletlv.parse(rebuilt) == got
    if not padding:
        assert rebuilt == data  # one encoding only: what parses re-encodes byte for byte
    else:
        assert len(rebuilt) <= len(data)
