"""Codec behaviour that the mutation run over cardperso.codec found unasserted (issue 18).

Most surviving codec mutants changed what a refusal says: the field, the offset or the
reason of a DataError, or the boundary at which it is raised. Those are what an operator reads
(one line naming field and reason), so every refusal below is checked whole: type, field,
offset and reason; and each boundary is checked on both sides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cardperso.codec import apdu, dgi, fields, numbers, simpletlv, status, tlv
from cardperso.codec import magstripe as ms
from cardperso.errors import CardError, DataError, DecodeError, EncodingError, UsageError

PAN16, PAN19 = "6228480000000000", "6228480000000000000"

# (case, call, error type, field, offset, reason)
REFUSALS: list[tuple[str, Callable[[], Any], type[Exception], str | None, int | None, str]] = [
    # magnetic stripe (ISO/IEC 7813)
    ("ms-pan-11", lambda: ms.track2("62284800000", "3012"), EncodingError, "pan", None, "PAN must be 12 to 19 digits"),
    ("ms-pan-20", lambda: ms.track2(PAN19 + "0", "3012"), EncodingError, "pan", None, "PAN must be 12 to 19 digits"),
    ("ms-pan-letter", lambda: ms.track2("6228480000000A", "3012"), EncodingError, "pan", None, "PAN must be 12 to 19 digits"),
    ("ms-month-00", lambda: ms.track2(PAN16, "3000"), EncodingError, "expiry_date", None, "expiry must be YYMM"),
    ("ms-month-13", lambda: ms.track2(PAN16, "3013"), EncodingError, "expiry_date", None, "expiry must be YYMM"),
    ("ms-expiry-3", lambda: ms.track2(PAN16, "301"), EncodingError, "expiry_date", None, "expiry must be YYMM"),
    ("ms-expiry-letters", lambda: ms.track2(PAN16, "30A1"), EncodingError, "expiry_date", None, "expiry must be YYMM"),
    ("ms-service-2", lambda: ms.track2(PAN16, "3012", "22"), EncodingError, "service_code", None, "service code must be 3 digits"),
    ("ms-service-letter", lambda: ms.track2(PAN16, "3012", "2A0"), EncodingError, "service_code", None, "service code must be 3 digits"),
    ("ms-name-1", lambda: ms.track1(PAN16, "Z", "3012"), EncodingError, "name", None, "track 1 name must be 2-26 Latin characters (pinyin)"),
    ("ms-name-27", lambda: ms.track1(PAN16, "Z" * 27, "3012"), EncodingError, "name", None, "track 1 name must be 2-26 Latin characters (pinyin)"),
    ("ms-name-caret", lambda: ms.track1(PAN16, "ZHANG^SAN", "3012"), EncodingError, "name", None, "track 1 name must be 2-26 Latin characters (pinyin)"),
    ("ms-name-hanzi", lambda: ms.track1(PAN16, "张三", "3012"), EncodingError, "name", None, "track 1 name must be 2-26 Latin characters (pinyin)"),
    ("ms-track1-77", lambda: ms.track1(PAN19, "Z" * 26, "3012", "220", "1" * 22), EncodingError, "track1", None, "track 1 is 77 characters, at most 76"),
    ("ms-track2-letter", lambda: ms.track2(PAN16, "3012", "220", "12A"), EncodingError, "track2", None, "track 2 discretionary data must be digits"),
    ("ms-track2-38", lambda: ms.track2(PAN19, "3012", "220", "1" * 11), EncodingError, "track2", None, "track 2 is 38 characters, at most 37"),
    ("ms-t2eq", lambda: ms.track2_equivalent("6228=30A"), EncodingError, "track2", None, "track 2 data has characters outside 0-9 and '='"),
    # field encodings
    ("n-bool", lambda: fields.encode_n(True, 2, "amount"), EncodingError, "amount", None, "n value must be an int or a str of digits, got bool"),
    ("n-float", lambda: fields.encode_n(1.5, 2, "amount"), EncodingError, "amount", None, "n value must be an int or a str of digits, got float"),
    ("n-negative", lambda: fields.encode_n(-1, 2, "amount"), EncodingError, "amount", None, "n value must not be negative"),
    ("n-empty", lambda: fields.encode_n("", 2, "amount"), EncodingError, "amount", None, "n allows digits 0-9 only; value is empty"),
    ("n-letter", lambda: fields.encode_n("12a4", 2, "amount"), EncodingError, "amount", None, "n allows digits 0-9 only; character at position 2 is not a digit"),
    ("n-5-in-2", lambda: fields.encode_n("12345", 2, "amount"), EncodingError, "amount", None, "n value has 5 digits, max 4 digits (2 bytes)"),
    ("n-length", lambda: fields.encode_n(1, -1, "amount"), EncodingError, "amount", None, "field length must be a non-negative int, got -1"),
    ("n-decode", lambda: fields.decode_n(b"\x12\x3a", "amount"), DecodeError, "amount", 1, "at offset 1: n nibble A is not a digit (nibble 3)"),
    ("cn-int", lambda: fields.encode_cn(12, 2, "pan"), EncodingError, "pan", None, "cn value must be a str of digits, got int"),
    ("cn-letter", lambda: fields.encode_cn("12a", 2, "pan"), EncodingError, "pan", None, "cn allows digits 0-9 only; character at position 2 is not a digit"),
    ("cn-5-in-2", lambda: fields.encode_cn("12345", 2, "pan"), EncodingError, "pan", None, "cn value has 5 digits, max 4 digits (2 bytes)"),
    ("cn-length", lambda: fields.encode_cn("1", -1, "pan"), EncodingError, "pan", None, "field length must be a non-negative int, got -1"),
    ("cn-after-f", lambda: fields.decode_cn(b"\x12\xf3", "pan"), DecodeError, "pan", 1, "at offset 1: cn digit after F padding (nibble 3)"),
    ("cn-after-f-far", lambda: fields.decode_cn(b"\x12\x3f\xf4\x56", "pan"), DecodeError, "pan", 2, "at offset 2: cn digit after F padding (nibble 5)"),
    ("cn-nibble", lambda: fields.decode_cn(b"\x1a\x3f", "pan"), DecodeError, "pan", 0, "at offset 0: cn nibble A is not a digit (nibble 1)"),
    ("an-nul", lambda: fields.decode_an(b"AB\x00C", "ascii", "name"), DecodeError, "name", 2, "at offset 2: NUL byte before the end of the text"),
    ("an-nul-first", lambda: fields.decode_an(b"\x00C\x00D", "ascii", "name"), DecodeError, "name", 0, "at offset 0: NUL byte before the end of the text"),
    ("an-gbk", lambda: fields.decode_an(b"A\x81", "gbk", "name"), DecodeError, "name", 1, "at offset 1: byte 81 is not valid GBK"),
    ("an-charset", lambda: fields.decode_an(b"A", "latin9", "name"), EncodingError, "name", None, "unknown charset 'latin9', expected one of ascii, gbk"),
    ("an-encode-charset", lambda: fields.encode_an("A", 2, "name", "latin9"), EncodingError, "name", None, "unknown charset 'latin9', expected one of ascii, gbk"),
    ("an-encode-long", lambda: fields.encode_an("ABC", 2, "name"), EncodingError, "name", None, "value is 3 bytes in ASCII, max 2 bytes"),
    ("gbk-split-first", lambda: fields.split_gbk("张三", -1, 20, "name"), EncodingError, "name", None, "field length must be a non-negative int, got -1"),
    ("gbk-split-second", lambda: fields.split_gbk("张三", 30, -1, "name"), EncodingError, "name", None, "field length must be a non-negative int, got -1"),
    ("gbk-split-long", lambda: fields.split_gbk("张三李四", 2, 2, "name"), EncodingError, "name", None, "value is 8 bytes in GBK, max 4 bytes (2 + 2)"),
    ("gbk-join", lambda: fields.join_gbk(b"\xd5\xc5", b"\x81", "name"), DecodeError, "name", 2, "at offset 2: byte 81 is not valid GBK"),
    ("b-str", lambda: fields.encode_b("ab", 2, "key"), EncodingError, "key", None, "b value must be bytes, got str"),  # type: ignore[arg-type]
    ("b-length", lambda: fields.encode_b(b"ab", 3, "key"), EncodingError, "key", None, "value is 2 bytes, expected exactly 3 bytes"),
    ("b-bad-length", lambda: fields.encode_b(b"ab", -1, "key"), EncodingError, "key", None, "field length must be a non-negative int, got -1"),
    ("b-decode", lambda: fields.decode_b(b"ab", 3, "key"), DecodeError, "key", None, "b field is 2 bytes, expected 3 bytes"),
    ("b-length-bool", lambda: fields.encode_b(b"a", True, "key"), EncodingError, "key", None, "field length must be a non-negative int, got True"),
    ("an-int", lambda: fields.encode_an(1, 2, "name"), EncodingError, "name", None, "an value must be a str, got int"),  # type: ignore[arg-type]
    ("an-nul-inside", lambda: fields.encode_an("A\x00", 2, "name"), EncodingError, "name", None, "NUL character at position 1 (00 is the padding byte)"),
    ("an-length", lambda: fields.encode_an("A", -1, "name"), EncodingError, "name", None, "field length must be a non-negative int, got -1"),
    ("dgi-bool", lambda: dgi.encode_dgi(True, b""), EncodingError, "dgi", None, "DGI must be an int from 0000 to FFFF, got True"),
    ("dgi-65536", lambda: dgi.encode_dgi(1, bytes(65536)), EncodingError, "DGI 0001", None, "DGI 0001 data is 65536 bytes, max 65535 bytes"),
    ("ric-int", lambda: numbers.resident_id_check_char(1), DataError, "resident_id", None, "must be a str, got int"),  # type: ignore[arg-type]
    ("ric-letter", lambda: numbers.resident_id_check_char("3604261991010100A"), DataError, "resident_id", None, "check character needs exactly 17 digits"),
    ("cnc-int", lambda: numbers.card_number_check_char(1), DataError, "card_number", None, "must be a str, got int"),  # type: ignore[arg-type]
    ("cnc-lower", lambda: numbers.card_number_check_char("x0000001"), DataError, "card_number", None, "character 1 must be 0-9 or A-Z (upper case only)"),
    ("cnc-symbol", lambda: numbers.card_number_check_char("#0000001"), DataError, "card_number", None, "character 1 must be 0-9 or A-Z"),
    ("luhn-int", lambda: numbers.luhn_check_digit(1), DataError, "pan", None, "must be a str, got int"),  # type: ignore[arg-type]
    # numbers
    ("region-99", lambda: numbers.check_region("990101"), DataError, "region", None, "region code starts with 99, not a GB/T 2260 province"),
    ("region-5", lambda: numbers.check_region("36042"), DataError, "region", None, "region code must be 6 digits"),
    ("region-int", lambda: numbers.check_region(360426), DataError, "region", None, "must be a str, got int"),  # type: ignore[arg-type]
    ("rid-body", lambda: numbers.resident_id_check_char("3604261991010100"), DataError, "resident_id", None, "check character needs exactly 17 digits"),
    ("rid-int", lambda: numbers.check_resident_id(1), DataError, "resident_id", None, "must be a str, got int"),  # type: ignore[arg-type]
    ("rid-check", lambda: numbers.check_resident_id("360426199101010072"), DataError, "resident_id", None, "check character does not match (ISO 7064 MOD 11-2)"),
    ("rid-1899", lambda: numbers.check_resident_id("360426189912310000"), DataError, "resident_id", None, "birth year before 1900 is not plausible"),
    ("rid-region", lambda: numbers.check_resident_id("990426199101010079"), DataError, "resident_id", None, "region (characters 1-6): region code starts with 99, not a GB/T 2260 province"),
    ("card-no-check", lambda: numbers.check_card_number("X00000018"), DataError, "card_number", None, "check character (9th) does not match"),
    ("card-no-int", lambda: numbers.check_card_number(1), DataError, "card_number", None, "must be a str, got int"),  # type: ignore[arg-type]
    ("card-no-body", lambda: numbers.card_number_check_char("X000000"), DataError, "card_number", None, "card number body must be 8 characters, got 7"),
    ("pan-luhn", lambda: numbers.check_pan("6228480000000000001"), DataError, "pan", None, "Luhn check digit does not match"),
    ("pan-15", lambda: numbers.check_pan("622848000000001"), DataError, "pan", None, "PAN must be 16-19 digits, got 15"),
    ("pan-int", lambda: numbers.check_pan(1), DataError, "pan", None, "must be a str, got int"),  # type: ignore[arg-type]
    ("luhn-body", lambda: numbers.luhn_check_digit("12a"), DataError, "pan", None, "Luhn body must be one or more digits"),
    ("date", lambda: numbers.parse_date("20260230"), DataError, "date", None, "2026-02-30 is not a calendar date (YYYYMMDD)"),
    # simple TLV (SSSE records)
    ("stlv-tag-00", lambda: simpletlv.encode(0, b""), EncodingError, "tag", None, "simple-TLV tag must be an int from 01 to FE, got 0"),
    ("stlv-tag-ff", lambda: simpletlv.encode(0xFF, b""), EncodingError, "tag", None, "simple-TLV tag must be an int from 01 to FE, got 255"),
    ("stlv-tag-bool", lambda: simpletlv.encode(True, b""), EncodingError, "tag", None, "simple-TLV tag must be an int from 01 to FE, got True"),
    ("stlv-255", lambda: simpletlv.encode(1, bytes(255)), EncodingError, "tag 01", None, "value is 255 bytes, max 254 bytes in a one-byte length"),
    ("stlv-empty", lambda: simpletlv.read(b""), DecodeError, "tag", 0, "at offset 0: truncated simple TLV: tag byte missing"),
    ("stlv-at-end", lambda: simpletlv.read(b"\x01\x01\x41", 3), DecodeError, "tag", 3, "at offset 3: truncated simple TLV: tag byte missing"),
    ("stlv-value", lambda: simpletlv.read(b"\x01\x05\x41"), DecodeError, "length", 0, "at offset 0: tag 01: length 5 goes beyond the data (1 bytes left)"),
    ("stlv-value-later", lambda: simpletlv.read(b"\x01\x01\x41\x02\x05\x41", 3), DecodeError, "length", 3, "at offset 3: tag 02: length 5 goes beyond the data (1 bytes left)"),
    ("stlv-ff-length", lambda: simpletlv.read(b"\x01\xff\x00"), DecodeError, "length", 1, "at offset 1: tag 01: 3-byte length form (FF) not used in SSSE records"),
    ("stlv-trailing", lambda: simpletlv.parse_one(b"\x01\x01\x41\x02"), DecodeError, None, 3, "at offset 3: 1 trailing bytes after tag 01"),
    ("stlv-padding-not-allowed", lambda: simpletlv.parse(b"\x01\x01\x41\xff"), DecodeError, "tag", 3, "at offset 3: invalid simple-TLV tag FF"),
    # DGI
    ("dgi-id", lambda: dgi.read_dgi(b"\x01"), DecodeError, "dgi", 0, "at offset 0: truncated DGI identifier: 1 of 2 bytes"),
    ("dgi-id-later", lambda: dgi.read_dgi(b"\x00\x01\x05\x01\x02\x03\x04\x05\x01", 8), DecodeError, "dgi", 8, "at offset 8: truncated DGI identifier: 1 of 2 bytes"),
    ("dgi-length", lambda: dgi.read_dgi(b"\x01\x01"), DecodeError, "length", 2, "at offset 2: DGI 0101: length byte missing"),
    ("dgi-ff-2-left", lambda: dgi.read_dgi(b"\x01\x01\xff\x00"), DecodeError, "length", 2, "at offset 2: DGI 0101: truncated 3-byte length (FF + 2 bytes), 2 bytes left"),
    ("dgi-ff-3-left", lambda: dgi.read_dgi(b"\x01\x01\xff\x00\x01"), DecodeError, "length", 0, "at offset 0: DGI 0101: length 1 goes beyond the data (0 bytes left)"),
    ("dgi-value", lambda: dgi.read_dgi(b"\x01\x01\x05\x00"), DecodeError, "length", 0, "at offset 0: DGI 0101: length 5 goes beyond the data (1 bytes left)"),
    ("dgi-ff-value", lambda: dgi.read_dgi(b"\x01\x01\xff\x01\x00\x00"), DecodeError, "length", 0, "at offset 0: DGI 0101: length 256 goes beyond the data (1 bytes left)"),
    ("dgi-encode", lambda: dgi.encode_dgi(0x10000, b""), EncodingError, "dgi", None, "DGI must be an int from 0000 to FFFF, got 65536"),
    # BER-TLV
    ("tlv-padding-not-allowed", lambda: tlv.read_tlv(b"\x00\x5a\x01\x01"), DecodeError, "length", 0, "at offset 0: tag 00: length 90 goes beyond the data (2 bytes left)"),
    ("dol-tag-only", lambda: tlv.parse_dol(b"\x9f\x02\x06\x9f"), DecodeError, "DOL", 4, "at offset 4: truncated data object list"),
    ("dol-no-length", lambda: tlv.parse_dol(b"\x9f\x02"), DecodeError, "DOL", 2, "at offset 2: truncated data object list"),
    ("dol-3-byte-tag", lambda: tlv.parse_dol(b"\x95\x05\xdf\x81"), DecodeError, "DOL", 4, "at offset 4: truncated data object list"),
    # APDUs and status words
    ("rapdu-1-byte", lambda: apdu.ResponseAPDU.parse(b"\x90"), DecodeError, "SW", 0, "at offset 0: response is 1 bytes, a status word needs 2"),
    ("rapdu-str", lambda: apdu.ResponseAPDU("ab", 0x9000), UsageError, None, None, "response data must be bytes, got str"),  # type: ignore[arg-type]
    ("rapdu-sw-bool", lambda: apdu.ResponseAPDU(b"", True), UsageError, None, None, "status word must be an int from 0000 to FFFF, got True"),
    ("rapdu-sw-big", lambda: apdu.ResponseAPDU(b"", 0x10000), UsageError, None, None, "status word must be an int from 0000 to FFFF, got 65536"),
    ("rapdu-sw-str", lambda: apdu.ResponseAPDU(b"", "9000"), UsageError, None, None, "status word must be an int from 0000 to FFFF, got '9000'"),  # type: ignore[arg-type]
    ("sw-bool", lambda: status.describe(True), UsageError, None, None, "status word must be an int from 0000 to FFFF, got True"),
    ("sw-str", lambda: status.describe("9000"), UsageError, None, None, "status word must be an int from 0000 to FFFF, got '9000'"),  # type: ignore[arg-type]
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "call", "kind", "field", "offset", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refusal_names_field_offset_and_reason(
    case: str,
    call: Callable[[], Any],
    kind: type[Exception],
    field: str | None,
    offset: int | None,
    reason: str,
) -> None:
    with pytest.raises(kind) as exc:
        call()
    got = exc.value
    assert type(got) is kind
    assert (getattr(got, "field", None), getattr(got, "offset", None)) == (field, offset)
    assert getattr(got, "reason", str(got)) == reason


def test_card_errors_name_the_command_and_the_meaning() -> None:
    with pytest.raises(CardError) as exc:
        apdu.ResponseAPDU(b"", 0x6A82).check("SELECT")
    assert str(exc.value) == "SELECT: card returned 6A82 (file or application not found)"
    with pytest.raises(CardError) as exc:
        apdu.ResponseAPDU(b"", 0x6A82).check()
    assert str(exc.value) == "card returned 6A82 (file or application not found)"
    with pytest.raises(CardError) as exc:
        status.check(0x6982, "READ RECORD")
    assert str(exc.value) == "READ RECORD: card returned 6982 (security status not satisfied)"


def test_magstripe_defaults_and_boundaries() -> None:
    # defaults: service code 220 (international, issuer authorization, normal), no discretionary
    assert ms.track1(PAN16, "zhang/san", "3012") == f"B{PAN16}^ZHANG/SAN^3012220"
    assert ms.track2(PAN16, "3012") == f"{PAN16}=3012220"
    assert ms.tracks(PAN16, "ZHANG/SAN", "3012") == ms.Tracks(
        f"B{PAN16}^ZHANG/SAN^3012220", f"{PAN16}=3012220"
    )
    assert ms.tracks(PAN16, "LI", "3001", "201", "A1B2").track2 == f"{PAN16}=300120112"
    # the accepted edges: PAN 12 and 19 digits, name 2 and 26 characters, months 01 and 12,
    # track 1 of exactly 76 characters and track 2 of exactly 37
    assert ms.track2("622848000000", "3001") == "622848000000=3001220"
    assert ms.track1(PAN19, "LI", "3012") == f"B{PAN19}^LI^3012220"
    full1 = ms.track1(PAN19, "Z" * 26, "3012", "220", "1" * 21)
    assert len(full1) == ms.TRACK1_MAX == 76
    full2 = ms.track2(PAN19, "3012", "220", "1" * 10)
    assert len(full2) == ms.TRACK2_MAX == 37
    assert ms.with_sentinels(1, "B1") == "%B1?" and ms.with_sentinels(2, "1=2") == ";1=2?"
    # EMV tag 57: '=' as D, F pad to a whole byte
    assert ms.track2_equivalent(f"{PAN16}=3012220") == bytes.fromhex(PAN16 + "D3012220")
    assert ms.track2_equivalent("12=34") == bytes.fromhex("12D34F")
    assert ms.track2_equivalent("12=345") == bytes.fromhex("12D345")
    assert "6228" not in repr(ms.tracks(PAN16, "LI", "3012"))


def test_field_encodings_exact_bytes() -> None:
    assert fields.encode_cn("123", 2, "pan") == b"\x12\x3f"
    assert fields.encode_cn("1234", 2, "pan") == b"\x12\x34"
    assert fields.decode_cn(b"\x12\x3f\xff") == "123"
    assert fields.encode_n("0001234", 2, "amount") == b"\x12\x34"  # leading zeros are not digits
    assert fields.encode_n(1234, 2, "amount") == b"\x12\x34"
    assert fields.encode_n(0, 1, "amount") == b"\x00"
    assert fields.decode_n(b"\x00\x12") == 12
    assert fields.decode_an(b"AB\x00\x00") == "AB"
    assert fields.decode_an(b"\xd5\xc5\xc8\xfd", "gbk") == "张三"
    assert fields.join_gbk(b"\xd5\xc5\x00\x00") == "张"
    assert fields.join_gbk(b"\xd5\xc5", b"\xc8\xfd") == "张三"
    assert fields.split_gbk("张三", 2, 2, "name") == (b"\xd5\xc5", b"\xc8\xfd")
    assert fields.split_gbk("张三", 0, 4, "name") == (b"", b"\xd5\xc5\xc8\xfd")
    assert fields.encode_b(b"ab", None, "key") == b"ab"
    assert fields.encode_b(bytearray(b"ab"), 2, "key") == b"ab"
    assert fields.decode_b(b"abc") == b"abc"
    assert fields.decode_b(memoryview(b"ab"), 2) == b"ab"


def test_numbers_mask_and_checks() -> None:
    assert numbers.mask_id("360426199101010071") == "360426********0071"
    assert numbers.mask_id("36042619910101") == "360426****0101"  # 14: head 6, tail 4
    assert numbers.mask_id("3604261991010") == "36*********10"  # 13: head 2, tail 2
    assert numbers.mask_id("X0000001") == "X0****01"  # 8
    assert numbers.mask_id("X000001") == "*******"  # 7: all masked
    assert numbers.check_card_number("X00000019") == "X00000019"
    assert numbers.check_region("360426") == "360426"
    assert numbers.check_pan("622848000007", min_len=12) == "622848000007"
    rid = numbers.check_resident_id("360426190001010014")
    assert rid.birth_date.year == 1900  # 1900 itself is plausible


def test_status_word_table() -> None:
    assert status.describe(0x63C1) == "verification failed; 1 tries left"
    assert status.describe(0x63C2) == "verification failed; 2 tries left"
    assert status.describe(0x6110) == "success; 16 more response bytes available (GET RESPONSE)"
    assert status.describe(0x6C00) == "wrong Le field; exact length is 256"
    assert status.describe(0x1234) == "unknown status word"
    # most specific pattern first; a wildcard matches any nibble
    table = status._compile({"6A8X": "any 6A8x", "6A82": "exactly 6A82", "xxxx": "anything"})
    assert table == [
        (0xFFFF, 0x6A82, 0, "exactly 6A82"),
        (0xFFF0, 0x6A80, 1, "any 6A8x"),
        (0x0000, 0x0000, 4, "anything"),
    ]
    with pytest.raises(ValueError, match=r"^status-word pattern '6A8' is not 4 characters$"):
        status._compile({"6A8": "short"})


def test_tlv_and_apdu_details() -> None:
    assert [tlv.tag_hex(t) for t in (0x5A, 0xFF, 0x9F02, 0xDF8101)] == [
        "5A", "FF", "9F02", "DF8101",
    ]  # fmt: skip
    assert tlv.parse_dol(bytes.fromhex("DF8101029F0206")) == [(0xDF8101, 2), (0x9F02, 6)]
    kid = tlv.Tlv(0x5A, b"\x01")
    parent = tlv.Tlv.constructed(0x70, [kid])
    assert parent.children == (kid,) and parent.value == b"\x5a\x01\x01"
    assert repr(parent) == "Tlv(70, children=[Tlv(5A, 1 bytes)])"  # values: lengths only
    assert tlv.parse(b"\x00\x00\x5a\x01\x01\xff", allow_padding=True) == [kid]
    assert tlv.read_tlv(b"\x00\x5a\x01\x01", 1) == (kid, 4)
    resp = apdu.ResponseAPDU(bytearray(b"\x01\x02"), 0x9000)
    assert type(resp.data) is bytes and resp.data == b"\x01\x02"
    assert resp.to_bytes() == b"\x01\x02\x90\x00"
    assert apdu.ResponseAPDU.parse(b"\x01\x6a\x82") == apdu.ResponseAPDU(b"\x01", 0x6A82)
    assert (
        repr(apdu.CommandAPDU(0x00, 0xA4, 4, 0, b"ab")) == "CommandAPDU(00 A4 04 00, Nc=2, Ne=None)"
    )
    assert (
        repr(apdu.CommandAPDU(0x80, 0xB0, 0, 0, b"", 256))
        == "CommandAPDU(80 B0 00 00, Nc=0, Ne=256)"
    )
    assert simpletlv.parse(b"\x01\x01\x41\xff\x00", allow_padding=True) == [(1, b"A")]
    assert simpletlv.parse_one(b"\x01\x01\x41\x00\xff", allow_padding=True) == (1, b"A")
    assert simpletlv.read(b"\xff\x01\x01\x41", 1) == (1, b"A", 4)
    assert simpletlv.encode(0xFE, bytes(254))[:2] == b"\xfe\xfe"


def test_more_codec_edges() -> None:
    assert fields.encode_n("0000", 1, "amount") == b"\x00"  # all zeros: one significant 0
    assert fields.encode_n("1234", 2, "amount") == b"\x12\x34"  # exactly 2 * length digits
    assert len(dgi.encode_dgi(1, bytes(65535))) == 2 + 3 + 65535  # the largest DGI
    assert dgi.encode_dgi(0x0102, bytes(0xFE))[:3] == b"\x01\x02\xfe"  # FE: one length byte
    assert dgi.encode_dgi(0x0102, bytes(0xFF))[:5] == b"\x01\x02\xff\x00\xff"  # FF: 3 bytes
    assert simpletlv.parse(b"\xff\x01\x01\x41\x00\x02\x01\x42", allow_padding=True) == [
        (1, b"A"),
        (2, b"B"),
    ]
    value = tlv.Tlv(0x5A, bytearray(b"\x01")).value
    assert type(value) is bytes and value == b"\x01"
    assert tlv.Tlv(0x5A, memoryview(b"\x02")) == tlv.Tlv(0x5A, b"\x02")
