"""Canonical input field names and their ministry data-dictionary aliases.

The input of data preparation (CSV header or JSON Lines keys) uses these names; the codes of the
ministry's data dictionary (AAC002 ...) are accepted as aliases. Profiles name the same fields
as sources of chip data, card-face fields and magnetic-stripe tracks.
"""

from __future__ import annotations

from typing import Final

#: Canonical input fields, in the order of the example CSV, with a one-line description.
INPUT_FIELDS: Final[dict[str, str]] = {
    "ssn": "social security number = 18-character resident identity number (AAC002)",
    "name": "cardholder name, Chinese, GBK-encodable (AAC003)",
    "gender": "1 male, 2 female (AAC004)",
    "nation": "ethnic group, GB 3304 two-digit code, 01 = Han (AAC005)",
    "birth_date": "birth date YYYYMMDD (AAC006)",
    "birth_place": "birth place, 6-digit GB/T 2260 region code",
    "region": "issuing area, 6-digit region code (AAB301)",
    "card_no": "social-security card number, 8 characters + check character (AAZ500)",
    "issue_date": "issue date YYYYMMDD",
    "expiry_date": "expiry date YYYYMMDD",
    "photo": "path to the cardholder's JPEG photo (relative to the input file)",
    "bank_code": "issuing bank code (digits)",
    "pan": "bank card number, 16-19 digits with Luhn check digit",
    "pan_seq": "PAN sequence number, 2 digits",
    "pin": "optional initial PIN (digits); otherwise the profile's PIN policy",
    "ec_balance": "electronic-cash balance in fen",
    "ec_limit": "electronic-cash balance limit in fen",
    "ec_single_limit": "electronic-cash single-transaction limit in fen",
    "ec_reset_threshold": "electronic-cash reset threshold in fen",
    "application_type": "batch or sporadic",
    "accepted_date": "date the application was accepted, YYYYMMDD",
    "name_latin": "optional Latin (pinyin) name for the financial application and track 1",
    "person_code": "optional 12-character person identification code (EF0D tag EA)",
}

#: Ministry data-dictionary codes accepted as header aliases.
ALIASES: Final[dict[str, str]] = {
    "AAC002": "ssn",
    "AAC003": "name",
    "AAC004": "gender",
    "AAC005": "nation",
    "AAC006": "birth_date",
    "AAB301": "region",
    "AAZ500": "card_no",
}

#: Fields that may be absent or empty in every profile.
OPTIONAL_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "pin",
        "ec_balance",
        "ec_limit",
        "ec_single_limit",
        "ec_reset_threshold",
        "application_type",
        "accepted_date",
        "name_latin",
        "person_code",
    }
)

#: Fields only a profile with a financial application needs.
PBOC_FIELDS: Final[frozenset[str]] = frozenset({"bank_code", "pan", "pan_seq"})


def canonical(name: str) -> str | None:
    """The canonical field name for a header name or alias (case-insensitive), else None."""
    key = name.strip()
    if key in INPUT_FIELDS:
        return key
    low = key.lower()
    if low in INPUT_FIELDS:
        return low
    return ALIASES.get(key.upper())
