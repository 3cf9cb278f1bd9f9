"""BER-TLV (ISO/IEC 8825-1, EMV 4.3 Book 3 Annex B)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.codec import tlv
from cardperso.codec.tlv import Tlv
from cardperso.errors import DecodeError, EncodingError, UsageError

# --- strategies ----------------------------------------------------------------------------


@st.composite
def ber_tags(draw: st.DrawFn, constructed: bool | None = None) -> int:
    """Well-formed BER tags of 1 to 4 bytes (first byte never 00 or FF)."""
    cls = draw(st.integers(0, 3)) << 6
    cons = (
        (0x20 if draw(st.booleans()) else 0)
        if constructed is None
        else (0x20 if constructed else 0)
    )
    n = draw(st.integers(1, 4))
    if n == 1:
        number = draw(st.integers(0, 30))
        first = cls | cons | number
        if first == 0:
            first = 0x01
        return first
    first = cls | cons | 0x1F
    if first == 0xFF:  # FF is never a valid first tag byte (ISO/IEC 7816-4 5.2.2.1)
        first = 0xBF
    inner = [draw(st.integers(0x81, 0xFF)) for _ in range(n - 2)]
    last = draw(st.integers(0x00, 0x7F))
    if n == 2 and last == 0:
        last = 1
    return int.from_bytes(bytes([first, *inner, last]), "big")


def tlv_trees(max_leaves: int = 12, max_value: int = 300) -> st.SearchStrategy[Tlv]:
    leaves = st.builds(Tlv, ber_tags(constructed=False), st.binary(max_size=max_value))
    return st.recursive(
        leaves,
        lambda kids: st.builds(
            Tlv.constructed, ber_tags(constructed=True), st.lists(kids, max_size=4)
        ),
        max_leaves=max_leaves,
    )


# FCI of the PSE returned by SELECT '1PAY.SYS.DDF01' (layout: EMV 4.3 Book 1, 11.3.4 Table 43;
# these exact bytes appear in many public card traces, e.g. binaryfoo/emv-bertlv examples).
PSE_FCI = bytes.fromhex("6F1A840E315041592E5359532E4444463031A5088801025F2D02656E")

# FCI of the PPSE '2PAY.SYS.DDF01' for a Visa card (layout: EMV Contactless Book B, Table 3-3):
# 6F { 84 DF name, A5 { BF0C { 61 { 4F AID, 87 priority } } } }.
PPSE_FCI = bytes.fromhex(
    "6F23840E325041592E5359532E4444463031A511BF0C0E610C4F07A0000000031010870101"
)


def test_pse_fci() -> None:
    (fci,) = tlv.parse(PSE_FCI)
    assert fci.tag == 0x6F and fci.is_constructed
    assert tlv.find([fci], 0x84) == Tlv(0x84, b"1PAY.SYS.DDF01")
    assert tlv.find([fci], 0x88) == Tlv(0x88, b"\x02")
    assert tlv.find([fci], 0x5F2D) == Tlv(0x5F2D, b"en")
    assert tlv.find([fci], 0x9F38) is None
    assert tlv.to_dict([fci]) == {0x84: b"1PAY.SYS.DDF01", 0x88: b"\x02", 0x5F2D: b"en"}
    assert tlv.build(fci) == PSE_FCI
    rebuilt = Tlv.constructed(
        0x6F,
        [
            Tlv(0x84, b"1PAY.SYS.DDF01"),
            Tlv.constructed(0xA5, [Tlv(0x88, b"\x02"), Tlv(0x5F2D, b"en")]),
        ],
    )
    assert rebuilt == fci
    assert rebuilt.to_bytes() == PSE_FCI


def test_ppse_fci_nested_two_byte_template() -> None:
    fci = tlv.parse_one(PPSE_FCI)
    bf0c = tlv.find([fci], 0xBF0C)
    assert bf0c is not None and bf0c.is_constructed
    assert tlv.find([fci], 0x4F) == Tlv(0x4F, bytes.fromhex("A0000000031010"))
    assert tlv.find([fci], 0x87) == Tlv(0x87, b"\x01")
    assert [t.tag for t in tlv.find_all([fci], 0x61)] == [0x61]
    assert tlv.build(tlv.parse(PPSE_FCI)) == PPSE_FCI


def test_tags_and_lengths_byte_exact() -> None:
    assert tlv.encode_tag(0x5A) == b"\x5a"
    assert tlv.encode_tag(0x9F38) == b"\x9f\x38"
    assert tlv.encode_tag(0xBF0C) == b"\xbf\x0c"
    assert tlv.encode_tag(0xDF8101) == b"\xdf\x81\x01"
    assert tlv.encode_tag(0xDF818101) == b"\xdf\x81\x81\x01"
    assert tlv.encode_length(0) == b"\x00"
    assert tlv.encode_length(127) == b"\x7f"
    assert tlv.encode_length(128) == b"\x81\x80"
    assert tlv.encode_length(255) == b"\x81\xff"
    assert tlv.encode_length(256) == b"\x82\x01\x00"
    assert tlv.encode_length(0x10000) == b"\x83\x01\x00\x00"
    assert tlv.encode_length(0x1000000) == b"\x84\x01\x00\x00\x00"
    assert tlv.encode(0x9F36, b"\x00\x01") == bytes.fromhex("9F36020001")
    big = tlv.encode(0x70, b"\x00" * 200)
    assert big[:3] == bytes.fromhex("7081C8")


@pytest.mark.parametrize(
    ("tag", "why"),
    [
        (0, "01 to FFFFFFFF"),
        (0x1F, "announce a subsequent byte"),
        (0x9F, "announce a subsequent byte"),
        (0x5F8F, "last tag byte"),
        (0x9F8001, "must not be 80"),
        (0x5A01, "must start with low bits 1F"),
        (0xDF0101, "lacks bit 8"),
        (0x1_0000_0000, "01 to FFFFFFFF"),
    ],
)
def test_bad_tags(tag: int, why: str) -> None:
    with pytest.raises(EncodingError) as e:
        tlv.encode_tag(tag)
    assert e.value.field == "tag"
    assert why in e.value.reason


def test_bad_length_and_children() -> None:
    with pytest.raises(EncodingError) as e:
        tlv.encode_length(-1)
    assert e.value.field == "length" and "non-negative" in e.value.reason
    with pytest.raises(EncodingError) as e:
        tlv.encode_length(1 << 32)
    assert "exceeds 4 length bytes" in e.value.reason
    with pytest.raises(UsageError, match="primitive"):
        Tlv(0x5A, b"", (Tlv(0x5A, b"1"),))


def test_constructed_value_is_parsed_on_construction() -> None:
    t = Tlv(0x70, bytes.fromhex("5A0812345678901234565F340101"))
    assert t.children == (Tlv(0x5A, bytes.fromhex("1234567890123456")), Tlv(0x5F34, b"\x01"))
    assert Tlv(0x70).children == ()
    assert repr(Tlv(0x5A, b"\x12\x34")) == "Tlv(5A, 2 bytes)"  # values not shown (PANs, keys)


@pytest.mark.parametrize(
    ("hexdata", "field", "offset", "why"),
    [
        ("9F", "tag", 1, "truncated tag"),
        ("DF81", "tag", 2, "truncated tag"),
        ("5A", "length", 1, "truncated length: no length byte"),
        ("5A81", "length", 1, "truncated length: 81 announces 1"),
        ("5A8201", "length", 1, "truncated length: 82 announces 2"),
        ("5A80", "length", 1, "indefinite length"),
        ("5A85000000000001", "length", 1, "not supported"),
        ("5A0301", "length", 0, "length 3 goes beyond the data (1 bytes left)"),
        ("9F360200", "length", 0, "tag 9F36: length 2 goes beyond"),
        ("5A0100005A0100", "tag", 3, "padding byte 00"),
        ("FF", "tag", 0, "padding byte FF"),
        ("9F8001", "tag", 1, "first subsequent byte is 80"),
        ("DF81818101", "tag", 0, "longer than 4 bytes"),
        ("70035A0301", "length", 2, "tag 5A: length 3 goes beyond the data (1 bytes left)"),
        ("70020181", "length", 3, "truncated length: 81 announces 1 length bytes, 0 left"),
    ],
)
def test_decode_errors_name_offset(hexdata: str, field: str, offset: int, why: str) -> None:
    with pytest.raises(DecodeError) as e:
        tlv.parse(bytes.fromhex(hexdata))
    assert e.value.offset == offset
    assert e.value.field == field
    assert why in e.value.reason


def test_padding_allowed_only_with_flag() -> None:
    data = bytes.fromhex("00005A0112FF009F3602000170010000")
    got = tlv.parse(data, allow_padding=True)
    assert got == [Tlv(0x5A, b"\x12"), Tlv(0x9F36, b"\x00\x01"), Tlv(0x70, b"\x00", ())]
    with pytest.raises(DecodeError) as e:
        tlv.parse(data)
    assert e.value.offset == 0
    assert tlv.parse_one(bytes.fromhex("005A0112FFFF"), allow_padding=True) == Tlv(0x5A, b"\x12")


def test_non_minimal_length_accepted_when_parsing() -> None:
    assert tlv.parse_one(bytes.fromhex("5A810112")) == Tlv(0x5A, b"\x12")
    assert tlv.parse_one(bytes.fromhex("5A8400000001AB")) == Tlv(0x5A, b"\xab")


def test_parse_one_rejects_trailing_bytes() -> None:
    with pytest.raises(DecodeError) as e:
        tlv.parse_one(PSE_FCI + b"\x90\x00")
    assert e.value.offset == len(PSE_FCI)
    assert "2 trailing bytes after tag 6F" in e.value.reason


def test_read_tlv_streams() -> None:
    data = PSE_FCI + PPSE_FCI
    first, pos = tlv.read_tlv(data)
    assert pos == len(PSE_FCI) and first.to_bytes() == PSE_FCI
    second, pos = tlv.read_tlv(data, pos)
    assert pos == len(data) and second.to_bytes() == PPSE_FCI


def test_nesting_depth_bounded() -> None:
    ok = b"\x5a\x00"
    for _ in range(tlv.MAX_DEPTH):
        ok = tlv.encode(0x70, ok)
    assert tlv.find(tlv.parse(ok), 0x5A) == Tlv(0x5A, b"")
    hostile = b"\xa5\x00"
    for _ in range(5000):  # about 20 kB of nested templates: a hostile command payload
        hostile = tlv.encode(0xA5, hostile)
    with pytest.raises(DecodeError) as e:
        tlv.parse(hostile)
    assert f"nested deeper than {tlv.MAX_DEPTH}" in e.value.reason


def test_to_dict_rejects_duplicates() -> None:
    with pytest.raises(DecodeError) as e:
        tlv.to_dict(tlv.parse(bytes.fromhex("5A01015A0102")))
    assert "tag 5A occurs more than once" in e.value.reason


# --- properties ----------------------------------------------------------------------------


@given(ber_tags())
def test_tag_round_trip(tag: int) -> None:
    raw = tlv.encode_tag(tag)
    assert 1 <= len(raw) <= 4
    assert int.from_bytes(raw, "big") == tag
    assert tlv.is_constructed(tag) == bool(raw[0] & 0x20)


@given(st.integers(0, 0xFFFFFFFF))
def test_length_round_trip(n: int) -> None:
    raw = tlv.encode_length(n)
    parsed = tlv.parse_one(b"\x5a" + raw + b"\x00" * n) if n < 5000 else None
    if parsed is not None:
        assert len(parsed.value) == n
    assert len(raw) == 1 if n < 128 else raw[0] == 0x80 | (len(raw) - 1)


@given(st.lists(tlv_trees(), max_size=5))
def test_tree_round_trip(trees: list[Tlv]) -> None:
    data = tlv.build(trees)
    assert tlv.parse(data) == trees
    assert tlv.build(tlv.parse(data)) == data


@settings(deadline=None)
@given(tlv_trees(max_leaves=6, max_value=140))
def test_prefixes_raise_decode_error_only(tree: Tlv) -> None:
    data = tree.to_bytes()
    for i in range(len(data)):
        with pytest.raises(DecodeError):
            tlv.parse_one(data[:i])


@settings(deadline=None)
@given(st.lists(tlv_trees(max_leaves=4, max_value=140), min_size=1, max_size=3))
def test_stream_fed_byte_by_byte(trees: list[Tlv]) -> None:
    """Parse a growing buffer as bytes arrive: every prefix either parses or raises DecodeError,
    and the objects come out exactly once the last byte of each has arrived."""
    data = tlv.build(trees)
    boundaries = set()
    pos = 0
    for t in trees:
        pos += len(t.to_bytes())
        boundaries.add(pos)
    for i in range(len(data) + 1):
        try:
            got = tlv.parse(data[:i])
        except DecodeError:
            assert i not in boundaries and i != 0
        else:
            assert i in boundaries or i == 0
            assert tlv.build(got) == data[:i]


@given(tlv_trees(max_leaves=6), st.binary(min_size=1, max_size=8))
def test_trailing_bytes(tree: Tlv, extra: bytes) -> None:
    data = tree.to_bytes() + extra
    with pytest.raises(DecodeError, match=r"at offset \d+: \d+ trailing bytes after tag"):
        tlv.parse_one(data)
    first, pos = tlv.read_tlv(data)
    assert first == tree and pos == len(data) - len(extra)


@given(st.binary(max_size=64), st.booleans())
def test_garbage_never_crashes(data: bytes, padding: bool) -> None:
    try:
        out = tlv.parse(data, allow_padding=padding)
    except DecodeError:
        return
    rebuilt = tlv.build(out)
    assert tlv.parse(rebuilt) == out
    # build() only drops padding and shortens non-minimal long-form lengths (81 05 -> 05)
    assert len(rebuilt) <= len(data)
    if not padding and rebuilt != data:
        assert len(rebuilt) < len(data) and any(0x81 <= b <= 0x84 for b in data)


def test_parse_dol_reads_tags_and_lengths() -> None:
    from cardperso.codec.tlv import parse_dol

    # a PBOC PDOL (pboc-financial.md): 9F7A 01, 9F02 06, 5F2A 02, DF69 01
    assert parse_dol(bytes.fromhex("9F7A019F02065F2A02DF6901")) == [
        (0x9F7A, 1), (0x9F02, 6), (0x5F2A, 2), (0xDF69, 1),
    ]  # fmt: skip
    with pytest.raises(DecodeError, match="truncated data object list"):
        parse_dol(bytes.fromhex("9F02"))
