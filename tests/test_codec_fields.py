"""Field encodings cn / n / an / b (formats from the SSSE record tables in LD/T 32 as
reconstructed in shared/reference/social-security-card.md; n12 amounts per EMV Book 3 4.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardperso.codec import fields
from cardperso.errors import DataError, DecodeError, EncodingError

# --- cn ---------------------------------------------------------------------------------


def test_cn_date_and_padding() -> None:
    assert fields.encode_cn("20261122", 4, "issue_date") == bytes.fromhex("20261122")
    # birth place: 6 digits in 3 bytes; initialising institution cn 24 digits in 12 bytes
    assert fields.encode_cn("360426", 3, "birth_place") == bytes.fromhex("360426")
    assert fields.encode_cn("123", 3, "x") == bytes.fromhex("123FFF")
    assert fields.encode_cn("", 2, "x") == bytes.fromhex("FFFF")
    assert fields.decode_cn(bytes.fromhex("123FFF")) == "123"
    assert fields.decode_cn(bytes.fromhex("20261122")) == "20261122"
    assert fields.decode_cn(b"") == ""


def test_cn_errors() -> None:
    with pytest.raises(EncodingError) as e:
        fields.encode_cn("12a4", 2, "birth_date")
    assert e.value.field == "birth_date"
    assert "position 2" in e.value.reason
    with pytest.raises(EncodingError) as e:
        fields.encode_cn("12345", 2, "ethnic")
    assert e.value.field == "ethnic"
    assert "5 digits, max 4" in e.value.reason
    with pytest.raises(DecodeError) as d:
        fields.decode_cn(bytes.fromhex("12F3"), field="f")
    assert d.value.field == "f" and d.value.offset == 1 and "after F padding" in d.value.reason
    with pytest.raises(DecodeError) as d:
        fields.decode_cn(bytes.fromhex("1A"))
    assert d.value.offset == 0 and "not a digit" in d.value.reason


@given(
    st.integers(0, 12).flatmap(
        lambda n: st.tuples(st.text("0123456789", max_size=2 * n), st.just(n))
    )
)
def test_cn_round_trip(case: tuple[str, int]) -> None:
    digits, length = case
    raw = fields.encode_cn(digits, length, "f")
    assert len(raw) == length
    assert fields.decode_cn(raw) == digits


# --- n ----------------------------------------------------------------------------------


def test_n_amount() -> None:
    # EMV amount, authorised n12 (tag 9F02): 12.34 in minor units -> 000000001234
    assert fields.encode_n(1234, 6, "amount") == bytes.fromhex("000000001234")
    assert fields.encode_n("1234", 6, "amount") == bytes.fromhex("000000001234")
    assert fields.encode_n("0000000001234", 6, "amount") == bytes.fromhex("000000001234")
    assert fields.decode_n(bytes.fromhex("000000001234")) == 1234
    assert fields.decode_n(b"") == 0


def test_n_errors() -> None:
    for bad, why in [
        (-1, "negative"),
        ("12x", "position 2"),
        ("", "empty"),
        (10**12, "13 digits, max 12"),
    ]:
        with pytest.raises(EncodingError) as e:
            fields.encode_n(bad, 6, "amount")
        assert e.value.field == "amount"
        assert why in e.value.reason
    with pytest.raises(EncodingError, match="n value must be an int or a str of digits, got bool"):
        fields.encode_n(True, 1, "flag")
    with pytest.raises(DecodeError) as d:
        fields.decode_n(bytes.fromhex("001F"), field="amount")
    assert d.value.offset == 1 and d.value.field == "amount"


@given(st.integers(1, 10), st.data())
def test_n_round_trip(length: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, 10 ** (2 * length) - 1))
    raw = fields.encode_n(value, length, "f")
    assert len(raw) == length
    assert fields.decode_n(raw) == value


# --- an ---------------------------------------------------------------------------------


def test_an_ascii_and_gbk() -> None:
    assert fields.encode_an("3.00", 4, "version") == b"3.00"
    assert fields.encode_an("1", 3, "gender") == b"1\x00\x00"
    # "张三" in GBK is D5 C5 C8 FD (GB 2312 row/cell 53-37, 40-93)
    assert fields.encode_an("张三", 6, "name", "gbk") == bytes.fromhex("D5C5C8FD0000")
    assert fields.decode_an(bytes.fromhex("D5C5C8FD0000"), "gbk") == "张三"
    # SSSE DF name from the reference: "sx1.sh.社会保障"
    assert fields.encode_an("sx1.sh.社会保障", 15, "df", "gbk") == bytes.fromhex(
        "7378312E73682EC9E7BBE1B1A3D5CF"
    )


def test_an_errors_name_field_and_position_without_echo() -> None:
    with pytest.raises(EncodingError) as e:
        fields.encode_an("王\U0002a6a5明", 30, "name", "gbk")  # CJK ext. B, not in GBK
    assert e.value.field == "name"
    assert "position 1" in e.value.reason and "GBK" in e.value.reason
    assert "王" not in str(e.value) and "明" not in str(e.value)
    with pytest.raises(EncodingError) as e:
        fields.encode_an("张三" * 8, 30, "name", "gbk")
    assert "32 bytes" in e.value.reason and "max 30 bytes" in e.value.reason
    assert "张" not in str(e.value)
    with pytest.raises(EncodingError) as e:
        fields.encode_an("é", 4, "card_no")
    assert "position 0" in e.value.reason and "ASCII" in e.value.reason
    with pytest.raises(EncodingError) as e:
        fields.encode_an("a\x00b", 4, "card_no")
    assert "NUL" in e.value.reason
    with pytest.raises(EncodingError) as e:
        fields.encode_an("a", 4, "card_no", charset="utf-8")
    assert "unknown charset" in e.value.reason
    with pytest.raises(DecodeError) as d:
        fields.decode_an(b"ab\xff", "ascii", field="card_no")
    assert d.value.offset == 2 and d.value.field == "card_no"
    with pytest.raises(DecodeError) as d:
        fields.decode_an(b"ab\x00c\x00\x00", field="card_no")
    assert d.value.offset == 2 and "NUL byte before the end" in d.value.reason


@given(st.binary(max_size=40), st.sampled_from(fields.CHARSETS))
def test_decode_an_accepts_only_what_encode_an_produces(raw: bytes, charset: str) -> None:
    try:
        text = fields.decode_an(raw, charset)
    except DecodeError:
        return
    assert fields.encode_an(text, len(raw), "f", charset) == raw


_gbk_char = st.characters(codec="gbk", exclude_characters="\x00")


@given(st.text(_gbk_char, max_size=25), st.sampled_from(["gbk"]))
def test_an_round_trip_gbk(text: str, charset: str) -> None:
    raw = text.encode(charset)
    raw_len = len(raw) + 3
    enc = fields.encode_an(text, raw_len, "f", charset)
    assert len(enc) == raw_len
    assert fields.decode_an(enc, charset) == text


@given(st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=20))
def test_an_round_trip_ascii(text: str) -> None:
    assert fields.decode_an(fields.encode_an(text, 20, "f")) == text


# --- split_gbk --------------------------------------------------------------------------


def test_split_gbk_boundary() -> None:
    # 1 ASCII byte + 15 two-byte characters = 31 bytes: the 15th character would straddle
    # byte 30, so the first field takes 29 bytes and the second 2.
    name = "A" + "张" * 15
    head, tail = fields.split_gbk(name, 30, 20, "name")
    assert len(head) == 29 and len(tail) == 2
    assert head.decode("gbk") + tail.decode("gbk") == name
    assert fields.split_gbk("张三", 30, 20, "name") == (bytes.fromhex("D5C5C8FD"), b"")
    assert fields.join_gbk(head.ljust(30, b"\0"), tail.ljust(20, b"\0")) == name


def test_split_gbk_errors() -> None:
    with pytest.raises(EncodingError) as e:
        fields.split_gbk("张" * 26, 30, 20, "name")
    assert e.value.field == "name" and "52 bytes" in e.value.reason and "max 50" in e.value.reason
    # 5 bytes fit 3 + 2 in total, but "张" cannot straddle the boundary: head 2, tail 3
    assert fields.split_gbk("A张张", 3, 2, "name") == (
        bytes.fromhex("41D5C5"),
        bytes.fromhex("D5C5"),
    )
    with pytest.raises(EncodingError) as e:
        fields.split_gbk("张张A", 3, 2, "name")
    assert e.value.field == "name" and "character boundary" in e.value.reason
    with pytest.raises(EncodingError) as e:
        fields.split_gbk("王\U0002a6a5", 30, 20, "name")
    assert "position 1" in e.value.reason


@given(st.text(_gbk_char, max_size=30))
def test_split_gbk_round_trip(text: str) -> None:
    try:
        head, tail = fields.split_gbk(text, 30, 20, "name")
    except EncodingError:
        assert len(text.encode("gbk")) > 49
        return
    assert len(head) <= 30 and len(tail) <= 20
    head.decode("gbk")
    tail.decode("gbk")
    assert fields.join_gbk(head, tail) == text
    if tail:
        assert len(head) >= 29


# --- b ----------------------------------------------------------------------------------


def test_b() -> None:
    assert fields.encode_b(b"\x01\x02", 2, "x") == b"\x01\x02"
    assert fields.encode_b(bytearray(b"\x01"), None, "x") == b"\x01"
    with pytest.raises(EncodingError) as e:
        fields.encode_b(b"\x01", 16, "card_id")
    assert e.value.field == "card_id" and "1 bytes, expected exactly 16" in e.value.reason
    with pytest.raises(EncodingError) as e:
        fields.encode_b("0102", 2, "card_id")  # type: ignore[arg-type]
    assert "must be bytes" in e.value.reason
    assert issubclass(EncodingError, DataError)
