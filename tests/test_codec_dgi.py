"""EMV CPS DGI framing (EMV Card Personalization Specification 1.1, section 2.2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.codec import dgi
from cardperso.errors import DecodeError, EncodingError


def test_one_byte_length() -> None:
    # DGI 0101 = SFI 1 record 1 carrying its whole 70 template (CPS 1.1, 2.2 "record DGIs")
    record = bytes.fromhex("700A5A086227000000000001")
    assert dgi.encode_dgi(0x0101, record) == bytes.fromhex("01010C700A5A086227000000000001")
    assert dgi.encode_dgi(0x9000, b"") == bytes.fromhex("900000")
    assert dgi.encode_dgi(0x8000, b"\x11" * 254)[:3] == bytes.fromhex("8000FE")


def test_three_byte_length() -> None:
    # 255 and more: FF + 2 bytes (CPS 1.1 2.2: "if the length is >= 255, 'FF' followed by 2 bytes")
    assert dgi.encode_dgi(0x8201, b"\x22" * 255)[:5] == bytes.fromhex("8201FF00FF")
    data = b"\x33" * 256
    enc = dgi.encode_dgi(0x0202, data)
    assert enc == bytes.fromhex("0202FF0100") + data
    assert dgi.parse_dgis(enc) == [(0x0202, data)]


def test_stream_of_dgis() -> None:
    stream = dgi.encode_dgis([(0x0101, b"\x70\x00"), (0x8201, b"\x01" * 300), (0x9102, b"")])
    assert dgi.parse_dgis(stream) == [(0x0101, b"\x70\x00"), (0x8201, b"\x01" * 300), (0x9102, b"")]


def test_non_minimal_three_byte_length_accepted() -> None:
    assert dgi.parse_dgis(bytes.fromhex("0101FF000270 00".replace(" ", ""))) == [
        (0x0101, b"\x70\x00")
    ]


@pytest.mark.parametrize(
    ("hexdata", "field", "offset", "why"),
    [
        ("01", "dgi", 0, "truncated DGI identifier: 1 of 2 bytes"),
        ("0101", "length", 2, "DGI 0101: length byte missing"),
        ("0101FF01", "length", 2, "truncated 3-byte length"),
        ("010103AABB", "length", 0, "DGI 0101: length 3 goes beyond the data (2 bytes left)"),
        ("01010170" + "0202", "length", 6, "DGI 0202: length byte missing"),
    ],
)
def test_decode_errors(hexdata: str, field: str, offset: int, why: str) -> None:
    with pytest.raises(DecodeError) as e:
        dgi.parse_dgis(bytes.fromhex(hexdata))
    assert e.value.offset == offset
    assert e.value.field == field
    assert why in e.value.reason


def test_encode_errors() -> None:
    with pytest.raises(EncodingError) as e:
        dgi.encode_dgi(0x10000, b"")
    assert e.value.field == "dgi" and "0000 to FFFF" in e.value.reason
    with pytest.raises(EncodingError) as e:
        dgi.encode_dgi(0x8201, b"\x00" * 0x10000)
    assert e.value.field == "DGI 8201" and "65536 bytes, max 65535" in e.value.reason


_dgis = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=600)), max_size=5)


@given(_dgis)
def test_round_trip(items: list[tuple[int, bytes]]) -> None:
    assert dgi.parse_dgis(dgi.encode_dgis(items)) == items


@settings(deadline=None)
@given(_dgis.filter(bool), st.binary(min_size=1, max_size=4))
def test_prefixes_and_trailing(items: list[tuple[int, bytes]], extra: bytes) -> None:
    data = dgi.encode_dgis(items)
    ends = set()
    pos = 0
    for d, v in items:
        pos += len(dgi.encode_dgi(d, v))
        ends.add(pos)
    for i in range(len(data)):
        try:
            dgi.parse_dgis(data[:i])
        except DecodeError:
            assert i not in ends
        else:
            assert i in ends or i == 0
    d0, v0, _ = dgi.read_dgi(data + extra)
    assert (d0, v0) == items[0]
    # the stream parses exactly when the extra bytes are DGIs of their own
    try:
        tail = dgi.parse_dgis(extra)
    except DecodeError:
        with pytest.raises(DecodeError):
            dgi.parse_dgis(data + extra)
    else:
        assert dgi.parse_dgis(data + extra) == [*items, *tail]


@given(st.binary(max_size=40))
def test_garbage_never_crashes(data: bytes) -> None:
    try:
        got = dgi.parse_dgis(data)
    except DecodeError:
        return
    rebuilt = dgi.encode_dgis(got)
    assert dgi.parse_dgis(rebuilt) == got
    # only a needless 3-byte length (FF 00 xx for xx < FF) re-encodes differently, and shorter
    if rebuilt != data:
        assert len(rebuilt) < len(data) and b"\xff\x00" in data
