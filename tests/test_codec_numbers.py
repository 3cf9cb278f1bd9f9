"""Validators: resident ID (GB 11643-1999), card number (GB 11714-style), PAN (ISO/IEC 7812),
region codes (GB/T 2260), dates. Known numbers from shared/reference/social-security-card.md
(360426199101010071 is also python-stdnum's cn.ric doctest)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import luhn as stdnum_luhn

from cardperso.codec import numbers
from cardperso.errors import DataError

TODAY = datetime.date(2026, 11, 22)

# Independent ISO 7064 MOD 11-2 (weights 2^(17-i) mod 11, check = "10X98765432"[sum mod 11]),
# written from GB 11643-1999 clause 7 to cross-check the stdnum-backed implementation.
_W = [2 ** (17 - i) % 11 for i in range(17)]


def ref_ric_check(body17: str) -> str:
    return "10X98765432"[sum(w * int(c) for w, c in zip(_W, body17)) % 11]


def test_weights_match_standard() -> None:
    assert _W == [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def test_known_resident_ids() -> None:
    r = numbers.check_resident_id("360426199101010071", today=TODAY)
    assert r == numbers.ResidentId("360426", datetime.date(1991, 1, 1), 1)
    assert r.gender_code == "1"
    f = numbers.check_resident_id("120103198806018241", today=TODAY, known_region=True)
    assert f == numbers.ResidentId("120103", datetime.date(1988, 6, 1), 2)
    assert "360426199101010071" not in repr(r)


def _err(fn: object, *args: object, **kw: object) -> DataError:
    with pytest.raises(DataError) as e:
        fn(*args, **kw)  # type: ignore[operator]
    return e.value


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("360426199101010072", "check character does not match"),
        ("36042619910101007", "must be 18 characters, got 17"),
        ("3604261991010100711", "must be 18 characters, got 19"),
        ("36042619910101A071", "character 15 must be a digit"),
        ("11010519491231002x", "upper-case 'X', got lower-case 'x'"),
        ("11010519491231002Y", "must be a digit or 'X'"),
        ("000000199101010071", "starts with 00, not a GB/T 2260 province"),
        ("990426199101010071", "region (characters 1-6): region code starts with 99"),
        ("360426199102300071", "birth date (characters 7-14): 1991-02-30 is not a calendar"),
        ("360426209101010071", "in the future"),
        ("360426189101010071", "before 1900"),
    ],
)
def test_invalid_resident_ids(number: str, why: str) -> None:
    e = _err(numbers.check_resident_id, number, "AAC002", today=TODAY)
    assert e.field == "AAC002"
    assert why in e.reason
    assert number not in str(e) and number[:17] not in str(e)


def test_upper_x_accepted() -> None:
    body = "11010519491231002"
    assert ref_ric_check(body) == "X"
    r = numbers.check_resident_id(body + "X", today=TODAY)
    assert r.birth_date == datetime.date(1949, 12, 31) and r.gender == 2


def test_known_region_flag() -> None:
    # 110199 has a valid province prefix (Beijing) but is not an assigned GB/T 2260 county code
    body = "11019919910101007"
    number = body + ref_ric_check(body)
    assert numbers.check_resident_id(number, today=TODAY).region == "110199"
    e = _err(numbers.check_resident_id, number, today=TODAY, known_region=True)
    assert e.field == "resident_id" and "not in the GB/T 2260 table" in e.reason


@st.composite
def resident_bodies(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(sorted(numbers.PROVINCE_CODES)))
    rest = draw(st.integers(0, 9999))
    birth = draw(st.dates(datetime.date(1900, 1, 1), TODAY))
    seq = draw(st.integers(0, 999))
    return f"{province:02d}{rest:04d}{birth:%Y%m%d}{seq:03d}"


@given(resident_bodies())
def test_generated_resident_ids(body: str) -> None:
    check = numbers.resident_id_check_char(body)
    assert check == ref_ric_check(body)
    r = numbers.check_resident_id(body + check, today=TODAY)
    assert r.region == body[:6]
    assert r.birth_date.strftime("%Y%m%d") == body[6:14]
    assert r.gender == (1 if int(body[16]) % 2 else 2)
    wrong = next(c for c in "0123456789X" if c != check)
    e = _err(numbers.check_resident_id, body + wrong, today=TODAY)
    assert "check character does not match" in e.reason


# --- card numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["X00000019", "B7K334774", "188347080"])
def test_known_card_numbers(number: str) -> None:
    assert numbers.check_card_number(number) == number
    assert numbers.card_number_check_char(number[:8]) == number[8]


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("X00000018", "check character (9th) does not match"),
        ("B7K33477", "must be 9 characters, got 8"),
        ("b7K334774", "character 1 must be 0-9 or A-Z (upper case only)"),
        ("B7K3-4774", "character 5 must be 0-9 or A-Z"),
    ],
)
def test_invalid_card_numbers(number: str, why: str) -> None:
    e = _err(numbers.check_card_number, number, "AAZ500")
    assert e.field == "AAZ500" and why in e.reason


def test_card_check_char_x_and_zero() -> None:
    # r = 10 -> 'X', r = 11 -> '0' (sum = 0 mod 11 gives r = 11)
    assert numbers.card_number_check_char("00000000") == "0"
    found = {numbers.card_number_check_char(f"{i:08d}") for i in range(200)}
    assert "X" in found and "0" in found


@given(st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=8, max_size=8))
def test_card_number_round_trip(body: str) -> None:
    c = numbers.card_number_check_char(body)
    total = sum(
        w * "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".index(ch)
        for w, ch in zip((3, 7, 9, 10, 5, 8, 4, 2), body)
    )
    value = {"X": 10, "0": 11}.get(c, int(c) if c.isdigit() else -1)
    assert (total + value) % 11 == 0
    assert numbers.check_card_number(body + c) == body + c


# --- PAN / Luhn ----------------------------------------------------------------------------


def test_pan() -> None:
    # ISO/IEC 7812 example 7992739871 -> check digit 3 (the classic Luhn worked example)
    assert numbers.luhn_check_digit("7992739871") == "3"
    body = "622700000000000000"
    assert numbers.check_pan(body + numbers.luhn_check_digit(body)) == body + "3"
    assert numbers.check_pan("4111111111111111") == "4111111111111111"
    for pan, why in [
        ("4111111111111112", "Luhn check digit does not match"),
        ("411111111111111", "16-19 digits, got 15"),
        ("4111 111111111111", "character 5 is not"),
    ]:
        e = _err(numbers.check_pan, pan)
        assert e.field == "pan" and why in e.reason and pan not in str(e)
    assert numbers.check_pan("79927398713", min_len=11)
    e = _err(numbers.luhn_check_digit, "", "bank_card")
    assert e.field == "bank_card" and "one or more digits" in e.reason


@given(st.text("0123456789", min_size=15, max_size=18))
def test_luhn_matches_stdnum(body: str) -> None:
    d = numbers.luhn_check_digit(body)
    assert stdnum_luhn.is_valid(body + d)
    assert numbers.check_pan(body + d) == body + d


# --- region, dates, masking ------------------------------------------------------------------


def test_region_and_dates() -> None:
    assert numbers.check_region("360426") == "360426"
    for code, why in [
        ("36042", "6 digits"),
        ("000000", "starts with 00"),
        ("1a0000", "6 digits"),
        ("900000", "starts with 90"),
    ]:
        e = _err(numbers.check_region, code, "birth_place")
        assert e.field == "birth_place" and why in e.reason
    assert numbers.parse_date("20240229", "issue_date") == datetime.date(2024, 2, 29)
    for s, why in [
        ("20230229", "2023-02-29 is not a calendar date"),
        ("2024-0229", "got 9 characters"),
        ("2024-229", "character 5 is not"),
        ("2024022", "got 7 characters"),
    ]:
        e = _err(numbers.parse_date, s, "expiry_date")
        assert e.field == "expiry_date" and why in e.reason


@given(st.dates())
def test_date_round_trip(d: datetime.date) -> None:
    assert numbers.parse_date(f"{d.year:04d}{d.month:02d}{d.day:02d}", "d") == d


def test_mask_id() -> None:
    assert numbers.mask_id("360426199101010071") == "360426********0071"
    assert numbers.mask_id("6227000000000000008") == "622700*********0008"
    assert numbers.mask_id("B7K334774") == "B7*****74"
    assert numbers.mask_id("1234") == "****"


def test_gb3304_ethnic_group_names() -> None:
    # GB/T 3304-1991 "Names of ethnic groups in China in romanization with codes", its table:
    # codes 01-56 in the standard's order, 97 other, 98 foreign-born Chinese citizen
    NATIONS = numbers.NATIONS
    assert len(NATIONS) == 58 and list(NATIONS)[:3] == ["01", "02", "03"]
    assert set(NATIONS) == {f"{i:02d}" for i in range(1, 57)} | {"97", "98"}
    assert (NATIONS["01"], NATIONS["02"], NATIONS["03"], NATIONS["04"]) == (
        "汉族",
        "蒙古族",
        "回族",
        "藏族",
    )
    assert (NATIONS["05"], NATIONS["08"], NATIONS["10"], NATIONS["11"]) == (
        "维吾尔族",
        "壮族",
        "朝鲜族",
        "满族",
    )
    assert (NATIONS["15"], NATIONS["23"], NATIONS["29"], NATIONS["37"]) == (
        "土家族",
        "高山族",
        "柯尔克孜族",
        "仡佬族",
    )
    assert (NATIONS["43"], NATIONS["46"], NATIONS["55"], NATIONS["56"]) == (
        "乌孜别克族",
        "德昂族",
        "珞巴族",
        "基诺族",
    )
    assert (NATIONS["97"], NATIONS["98"]) == ("其他", "外国血统中国籍人士")
    assert len(set(NATIONS.values())) == 58
