"""SSSE record files: per-record form, name splitting, overrides, errors with offsets."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardperso.errors import DecodeError, EncodingError, UsageError
from cardperso.layouts import LAYOUTS, ssse

PERSON = ssse.EF06.vectors[0][0]
EF06_BYTES = ssse.EF06.vectors[0][1]


def test_ef06_records_one_simple_tlv_each() -> None:
    records = ssse.EF06.encode_records(PERSON)
    assert [r[0] for r in records] == [0x08, 0x09, 0x4E, 0x0A, 0x0B, 0x0C, 0x0D]
    # 09 1E | 张三 in GBK | 00 padding to 30 bytes (social-security-card.md, EF06 record 2)
    assert records[1] == bytes.fromhex("091ED5C5C8FD") + bytes(26)
    assert records[3] == bytes.fromhex("0A0131")
    assert records[4] == bytes.fromhex("0B0101")
    assert records[5] == bytes.fromhex("0C03360426")
    assert records[6] == bytes.fromhex("0D0419910101")
    assert b"".join(records) == EF06_BYTES
    assert ssse.EF06.decode_records(records) == PERSON


def test_record_numbers_follow_the_version() -> None:
    v2 = dict((tlv[0], rec) for rec, tlv in ssse.EF06.encode_numbered(PERSON))
    v1 = dict((tlv[0], rec) for rec, tlv in ssse.EF06_V1.encode_numbered(PERSON))
    assert v2[0x0A] == 4  # gender: record 4 on 2.0+ cards
    assert v1[0x0A] == 3  # gender: record 3 on 1.0 cards
    assert 0x4E not in v1


def test_decode_records_needs_every_record() -> None:
    records = ssse.EF06.encode_records(PERSON)
    with pytest.raises(DecodeError, match=r"ssse.ef06: 6 records, the layout has 7"):
        ssse.EF06.decode_records(records[:-1])


def test_record_for_tag() -> None:
    assert ssse.EF06.record_for_tag(0x4E).name == "name_extension"
    with pytest.raises(DecodeError, match=r"ssse.ef06: no record with tag 77"):
        ssse.EF06.record_for_tag(0x77)


def test_name_split_on_character_boundary() -> None:
    # "A" + 15 two-byte characters = 31 bytes: 09 takes "A" + 14 characters (29 bytes, one
    # 00 pad byte), the 15th character goes to 4E - never half a character.
    name = "A" + "张" * 15
    records = ssse.EF06.encode_records(dataclasses.replace(PERSON, name=name))
    assert records[1] == bytes.fromhex("091E41") + bytes.fromhex("D5C5") * 14 + b"\x00"
    assert records[2] == bytes.fromhex("4E14D5C5") + bytes(18)
    assert ssse.EF06.decode_records(records).name == name


def test_name_too_long_is_an_encoding_error() -> None:
    with pytest.raises(EncodingError) as info:
        ssse.EF06.encode(dataclasses.replace(PERSON, name="张" * 26))  # 52 > 30 + 20 bytes
    assert info.value.field == "name"
    with pytest.raises(
        EncodingError, match="value is 32 bytes in GBK, max 30 bytes"
    ):  # 1.0 cards have no extension: 16 characters is too long
        ssse.EF06_V1.encode(dataclasses.replace(PERSON, name="张" * 16))


def test_name_outside_gbk_is_an_encoding_error_without_the_name() -> None:
    with pytest.raises(EncodingError) as info:
        ssse.EF06.encode(dataclasses.replace(PERSON, name="张\U00020000"))
    assert info.value.field == "name"
    assert "张" not in str(info.value)


def test_cn_field_too_long() -> None:
    with pytest.raises(EncodingError) as info:
        ssse.EF06.encode(dataclasses.replace(PERSON, birth_place="3604261"))
    assert info.value.field == "birth_place"


def test_wrong_tag_names_record_and_offset() -> None:
    bad = bytearray(EF06_BYTES)
    offset = 2 + 18  # the second record (09) starts after 08 12 + 18 bytes
    bad[offset] = 0x0A
    with pytest.raises(DecodeError) as info:
        ssse.EF06.decode(bytes(bad))
    assert info.value.offset == offset
    assert info.value.field == "name"


def test_wrong_length_byte() -> None:
    bad = bytearray(EF06_BYTES)
    bad[1] = 0x11
    with pytest.raises(DecodeError) as info:
        ssse.EF06.decode(bytes(bad))
    assert info.value.offset == 1
    assert info.value.field == "social_security_number"


def test_bad_bcd_digit_offset_is_absolute() -> None:
    bad = bytearray(EF06_BYTES)
    # birth date record is last: 0D 04 19 91 01 01; corrupt its third value byte
    pos = len(bad) - 2
    bad[pos] = 0x0A
    with pytest.raises(DecodeError) as info:
        ssse.EF06.decode(bytes(bad))
    assert info.value.offset == pos
    assert info.value.field == "birth_date"


def test_nul_inside_text_is_a_decode_error() -> None:
    bad = bytearray(EF06_BYTES)
    bad[2 + 18 + 2 + 2] = 0x00  # 张 00 FD ...: a NUL before the padding
    bad[2 + 18 + 2 + 3] = 0x41
    with pytest.raises(DecodeError) as info:
        ssse.EF06.decode(bytes(bad))
    assert info.value.field == "name"


def test_override_length_and_record_number() -> None:
    table = ssse.override(ssse.EF05_RECORDS, {"card_number": {"rec": 9, "length": 10}})
    layout = ssse.record_file("test.ef05", "profile", ssse.Ef05, table)
    model = ssse.EF05.vectors[0][0]
    numbered = layout.encode_numbered(model)
    assert numbered[-1][0] == 9
    assert numbered[-1][1] == bytes.fromhex("070A") + b"X00000019\x00"
    assert layout.decode(b"".join(r for _, r in numbered)) == model
    assert "test.ef05" not in LAYOUTS  # profile layouts stay out of the registry


def test_override_typos_are_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"override names unknown records: card_numbr"):
        ssse.override(ssse.EF05_RECORDS, {"card_numbr": {"rec": 9}})
    with pytest.raises(UsageError, match=r"record card_number: cannot override record"):
        ssse.override(ssse.EF05_RECORDS, {"card_number": {"record": 9}})
    with pytest.raises(UsageError, match=r"record card_number: unknown format 'xx'"):
        ssse.override(ssse.EF05_RECORDS, {"card_number": {"fmt": "xx"}})


def test_table_must_match_the_model() -> None:
    with pytest.raises(UsageError):
        ssse.record_file("t", "s", ssse.Ef05, ssse.EF05_RECORDS[:-1])
    duplicate = ssse.override(ssse.EF05_RECORDS, {"card_number": {"rec": 1}})
    with pytest.raises(UsageError):
        ssse.record_file("t", "s", ssse.Ef05, duplicate)


def test_personal_data_stays_out_of_repr() -> None:
    assert "360426" not in repr(PERSON)
    assert "张" not in repr(PERSON)


GBK_CHARS = st.characters(codec="gbk", exclude_categories=["Cc", "Cs"])


@given(
    name=st.text(GBK_CHARS, min_size=1, max_size=25).filter(lambda s: len(s.encode("gbk")) <= 50),
    ssn=st.text("0123456789X", min_size=18, max_size=18),
    nation=st.text("0123456789", min_size=2, max_size=2),
)
def test_ef06_round_trip(name: str, ssn: str, nation: str) -> None:
    model = dataclasses.replace(PERSON, name=name, social_security_number=ssn, nation=nation)
    try:
        data = ssse.EF06.encode(model)
    except EncodingError:
        # Only a name that cannot split on a character boundary into 30 + 20 bytes may fail.
        assert len(name.encode("gbk")) > 30
        return
    assert ssse.EF06.decode(data) == model
    assert len(data) == sum(2 + r.length for r in ssse.EF06_RECORDS)


def test_dates_need_all_eight_digits() -> None:
    with pytest.raises(EncodingError) as info:
        ssse.EF06.encode(dataclasses.replace(PERSON, birth_date="911010"))
    assert info.value.field == "birth_date"
    bad = EF06_BYTES[:-1] + b"\xff"  # 0D 04 19 91 01 FF: six digits
    with pytest.raises(DecodeError) as info2:
        ssse.EF06.decode(bad)
    assert info2.value.field == "birth_date"


def test_unset_date_is_all_f() -> None:
    model = dataclasses.replace(ssse.EF05.vectors[0][0], expiry_date="")
    records = ssse.EF05.encode_records(model)
    assert records[5] == bytes.fromhex("0604FFFFFFFF")
    assert ssse.EF05.decode_records(records) == model


def test_select_fci_agrees_with_tlv_codec() -> None:
    from cardperso.codec import tlv

    _, data = ssse.SELECT_FCI.vectors[0]
    fci = tlv.parse_one(data)
    assert fci.tag == 0x6F
    name, proprietary = fci.children or ()
    assert (name.tag, name.value) == (0x84, ssse.SSSE_DF_NAME)
    assert proprietary.tag == 0xA5
    assert tlv.to_dict(proprietary.children or ())[0x9F0C] == bytes.fromhex("860103")


def test_card_identification_code_needs_the_constant() -> None:
    model, data = ssse.CARD_IDENTIFICATION_CODE.vectors[0]
    bad = data[:3] + b"\xd1\x56\x00\x00\x06" + data[8:]
    with pytest.raises(DecodeError) as info:
        ssse.CARD_IDENTIFICATION_CODE.decode(bad)
    assert info.value.offset == 3
    assert ssse.EF05.vectors[0][0].card_identification_code == data
    with pytest.raises(EncodingError, match="cn value has 7 digits, max 6 digits"):
        ssse.CARD_IDENTIFICATION_CODE.encode(dataclasses.replace(model, region="3604001"))
