"""Validators for the numbers a social-security card carries.

* Resident identity number / social security number (GB 11643-1999): 6-digit region,
  8-digit birth date, 3-digit sequence (odd = male), ISO 7064 MOD 11-2 check character
  (``0``-``9`` or upper-case ``X``). The check character comes from python-stdnum
  (:mod:`stdnum.cn.ric`); region, date and case rules are checked here so every failure has
  a precise reason.
* Social-security card number (9 characters, GB 11714-style check character).
* Bank card PAN (ISO/IEC 7812 Luhn check digit).
* Region codes (GB/T 2260) and YYYYMMDD dates.

Every failure is a :class:`~cardperso.errors.DataError` naming the field and the reason.
Reasons never echo the number itself: identity numbers and PANs are personal data. Use
:func:`mask_id` when a log line has to show which record it was.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Final

from stdnum import luhn as _stdnum_luhn
from stdnum.cn import ric as _stdnum_ric

from cardperso.errors import DataError

__all__ = [
    "NATIONS",
    "PROVINCE_CODES",
    "ResidentId",
    "card_number_check_char",
    "check_card_number",
    "check_pan",
    "check_region",
    "check_resident_id",
    "luhn_check_digit",
    "mask_id",
    "parse_date",
    "resident_id_check_char",
]

_DIGITS = frozenset("0123456789")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: First two digits of GB/T 2260 region codes: provinces, autonomous regions, municipalities,
#: Taiwan (71), Hong Kong (81), Macao (82) and 83, used on residence permits of Taiwan residents.
PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)

#: GB/T 3304-1991 names of ethnic groups of China (romanisation omitted): code → name, the 56
#: groups, 97 other and 98 foreign-born Chinese citizen. The only codes the application form
#: and prep accept; the console and the printed form show the name beside the code. 46 is
#: 德昂族 (renamed from 崩龙族 in 1985).
NATIONS: Final = {
    "01": "汉族",
    "02": "蒙古族",
    "03": "回族",
    "04": "藏族",
    "05": "维吾尔族",
    "06": "苗族",
    "07": "彝族",
    "08": "壮族",
    "09": "布依族",
    "10": "朝鲜族",
    "11": "满族",
    "12": "侗族",
    "13": "瑶族",
    "14": "白族",
    "15": "土家族",
    "16": "哈尼族",
    "17": "哈萨克族",
    "18": "傣族",
    "19": "黎族",
    "20": "傈僳族",
    "21": "佤族",
    "22": "畲族",
    "23": "高山族",
    "24": "拉祜族",
    "25": "水族",
    "26": "东乡族",
    "27": "纳西族",
    "28": "景颇族",
    "29": "柯尔克孜族",
    "30": "土族",
    "31": "达斡尔族",
    "32": "仫佬族",
    "33": "羌族",
    "34": "布朗族",
    "35": "撒拉族",
    "36": "毛南族",
    "37": "仡佬族",
    "38": "锡伯族",
    "39": "阿昌族",
    "40": "普米族",
    "41": "塔吉克族",
    "42": "怒族",
    "43": "乌孜别克族",
    "44": "俄罗斯族",
    "45": "鄂温克族",
    "46": "德昂族",
    "47": "保安族",
    "48": "裕固族",
    "49": "京族",
    "50": "塔塔尔族",
    "51": "独龙族",
    "52": "鄂伦春族",
    "53": "赫哲族",
    "54": "门巴族",
    "55": "珞巴族",
    "56": "基诺族",
    "97": "其他",
    "98": "外国血统中国籍人士",
}

#: Earliest birth year accepted in an identity number.
MIN_BIRTH_YEAR = 1900


@dataclass(frozen=True, slots=True)
class ResidentId:
    """What a valid resident identity number says (the number itself is not kept)."""

    region: str
    birth_date: datetime.date
    gender: int  # 1 male, 2 female (GB/T 2261.1), from the parity of the 17th digit

    @property
    def gender_code(self) -> str:
        """``"1"`` or ``"2"``: the an1 value of SSSE EF06 tag 0A."""
        return str(self.gender)


def _need_str(s: object, field: str) -> str:
    if not isinstance(s, str):
        raise DataError(f"must be a str, got {type(s).__name__}", field=field)
    return s


def _first_not_in(s: str, allowed: frozenset[str] | str) -> int | None:
    for i, ch in enumerate(s):
        if ch not in allowed:
            return i
    return None


def parse_date(s: str, field: str = "date") -> datetime.date:
    """Parse ``YYYYMMDD`` into a real calendar date."""
    s = _need_str(s, field)
    if len(s) != 8:
        raise DataError(f"date must be 8 digits YYYYMMDD, got {len(s)} characters", field=field)
    bad = _first_not_in(s, _DIGITS)
    if bad is not None:
        raise DataError(f"date must be 8 digits YYYYMMDD; character {bad + 1} is not", field=field)
    try:
        return datetime.date(int(s[:4]), int(s[4:6]), int(s[6:]))
    except ValueError:
        raise DataError(
            f"{s[:4]}-{s[4:6]}-{s[6:]} is not a calendar date (YYYYMMDD)", field=field
        ) from None


def check_region(s: str, field: str = "region") -> str:
    """Check a 6-digit GB/T 2260 region code with a plausible province prefix; return it."""
    s = _need_str(s, field)
    if len(s) != 6 or _first_not_in(s, _DIGITS) is not None:
        raise DataError("region code must be 6 digits", field=field)
    if int(s[:2]) not in PROVINCE_CODES:
        raise DataError(f"region code starts with {s[:2]}, not a GB/T 2260 province", field=field)
    return s


# --- resident identity number (GB 11643-1999) --------------------------------------------------

_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_check_char(body17: str, field: str = "resident_id") -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits (``0``-``9`` or ``X``)."""
    body17 = _need_str(body17, field)
    bad = _first_not_in(body17, _DIGITS)
    if len(body17) != 17 or bad is not None:
        raise DataError("check character needs exactly 17 digits", field=field)
    return str(_stdnum_ric.calc_check_digit(body17 + "0"))


def check_resident_id(
    s: str,
    field: str = "resident_id",
    *,
    today: datetime.date | None = None,
    known_region: bool = False,
) -> ResidentId:
    """Validate an 18-character resident identity number (social security number).

    Only an upper-case ``X`` is accepted as check character, as written on the card
    (EF06 tag 08); a lower-case ``x`` is reported, not normalized, so that the data source
    gets fixed. With ``known_region=True`` the region code must also be in python-stdnum's
    GB/T 2260 table for the birth year (slower; rejects codes retired before the birth).
    """
    s = _need_str(s, field)
    if len(s) != 18:
        raise DataError(f"resident ID must be 18 characters, got {len(s)}", field=field)
    bad = _first_not_in(s[:17], _DIGITS)
    if bad is not None:
        raise DataError(f"character {bad + 1} must be a digit (1-17 are digits)", field=field)
    last = s[17]
    if last == "x":
        raise DataError("check character must be upper-case 'X', got lower-case 'x'", field=field)
    if last not in _DIGITS and last != "X":
        raise DataError("check character (18th) must be a digit or 'X'", field=field)
    try:
        region = check_region(s[:6], field)
    except DataError as exc:
        raise DataError(f"region (characters 1-6): {exc.reason}", field=field) from None
    try:
        birth = parse_date(s[6:14], field)
    except DataError as exc:
        raise DataError(f"birth date (characters 7-14): {exc.reason}", field=field) from None
    today = today or datetime.date.today()
    if birth > today:
        raise DataError("birth date (characters 7-14) is in the future", field=field)
    if birth.year < MIN_BIRTH_YEAR:
        raise DataError(f"birth year before {MIN_BIRTH_YEAR} is not plausible", field=field)
    if resident_id_check_char(s[:17], field) != last:
        raise DataError("check character does not match (ISO 7064 MOD 11-2)", field=field)
    if known_region:
        try:
            _stdnum_ric.get_birth_place(s)
        except Exception:  # stdnum raises its own ValidationError family
            raise DataError(
                "region code is not in the GB/T 2260 table for the birth year", field=field
            ) from None
    gender = 1 if int(s[16]) % 2 else 2
    return ResidentId(region, birth, gender)


def mask_id(s: str) -> str:
    """The one masking rule for identity numbers, card numbers and PANs, wherever one is shown
    (logs, rejects files, reports, JSON, reprs); no other module masks them its own way.

    The length is kept and only the ends are shown, never more than the first 6 and last 4:

    * 14 characters or more (the 18-character identity number, PANs): first 6 and last 4,
      ``360426********0071``, ``621483******0019``;
    * 8 to 13 (a social-security card number, a short or truncated value): first 2 and last 2,
      ``B7*****74``;
    * fewer than 8: every character is ``*``.

    At least 4 characters are always hidden, and a value shorter than 8 shows nothing."""
    n = len(s)
    if n >= 14:
        head, tail = 6, 4
    elif n >= 8:
        head, tail = 2, 2
    else:
        return "*" * n
    return s[:head] + "*" * (n - head - tail) + s[n - tail :]


# --- social-security card number (GB 11714-style check character) --------------------------------

_CARD_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def card_number_check_char(body8: str, field: str = "card_number") -> str:
    """The check character of an 8-character card number body (0-9, A-Z as 10-35).

    r = 11 - (sum of w_i * c_i mod 11) with weights 3 7 9 10 5 8 4 2; r = 10 gives ``X``,
    r = 11 gives ``0``.
    """
    body8 = _need_str(body8, field)
    if len(body8) != 8:
        raise DataError(f"card number body must be 8 characters, got {len(body8)}", field=field)
    bad = _first_not_in(body8, _ALNUM)
    if bad is not None:
        case = " (upper case only)" if body8[bad].upper() in _ALNUM else ""
        raise DataError(f"character {bad + 1} must be 0-9 or A-Z{case}", field=field)
    total = sum(w * _ALNUM.index(c) for w, c in zip(_CARD_WEIGHTS, body8))
    r = 11 - total % 11
    return "X" if r == 10 else "0" if r == 11 else str(r)


def check_card_number(s: str, field: str = "card_number") -> str:
    """Validate a 9-character social-security card number; return it."""
    s = _need_str(s, field)
    if len(s) != 9:
        raise DataError(f"card number must be 9 characters, got {len(s)}", field=field)
    expected = card_number_check_char(s[:8], field)
    if s[8] != expected:
        raise DataError("check character (9th) does not match", field=field)
    return s


# --- bank card PAN (ISO/IEC 7812-1 Luhn) -----------------------------------------------------------


def luhn_check_digit(body: str, field: str = "pan") -> str:
    """The Luhn check digit to append to *body* (digits only)."""
    body = _need_str(body, field)
    if not body or _first_not_in(body, _DIGITS) is not None:
        raise DataError("Luhn body must be one or more digits", field=field)
    return str(_stdnum_luhn.calc_check_digit(body))


def check_pan(s: str, min_len: int = 16, max_len: int = 19, field: str = "pan") -> str:
    """Validate a PAN: *min_len* to *max_len* digits with a correct Luhn check digit."""
    s = _need_str(s, field)
    bad = _first_not_in(s, _DIGITS)
    if bad is not None:
        raise DataError(f"PAN must be digits only; character {bad + 1} is not", field=field)
    if not min_len <= len(s) <= max_len:
        raise DataError(f"PAN must be {min_len}-{max_len} digits, got {len(s)}", field=field)
    if luhn_check_digit(s[:-1], field) != s[-1]:
        raise DataError("Luhn check digit does not match", field=field)
    return s
