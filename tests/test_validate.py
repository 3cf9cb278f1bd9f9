"""Every validation rule of data preparation has a failing record here, with the exact field
and reason asserted (issue 4, "Validation"). Duplicates and row-shape rules, which need the
whole batch, are in tests/test_input.py. test_every_rule_has_a_failing_record holds the
file to that promise against the validator's source."""

from __future__ import annotations

import datetime
import io
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.prep.synth import make_photo, records
from cardperso.prep.validate import Reject, Validator, check_jpeg
from cardperso.profiles.loader import load_profile

PROFILE = load_profile("ssc3-pboc")
TEMPORARY = load_profile("ssc3-temporary")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import random

    d = tmp_path_factory.mktemp("batch")
    (d / "photos").mkdir()
    (d / "photos" / "p0000.jpg").write_bytes(make_photo(random.Random(1)))
    (d / "photos" / "empty.jpg").write_bytes(b"")
    (d / "photos" / "text.jpg").write_bytes(b"hello, this is not a JPEG")
    good = make_photo(random.Random(2))
    (d / "photos" / "cut.jpg").write_bytes(good[: len(good) // 2])
    return d


def base() -> dict[str, str]:
    """A valid record (identity number 360426199101010071, a published valid example)."""
    rec = next(records(1, photos=1))
    rec.update(
        ssn="360426199101010071",
        birth_date="19910101",
        gender="1",
        birth_place="360426",
        region="360426",
        card_no="X00000019",
        name="张三",
        issue_date="20260115",
        expiry_date="20360115",
        photo="photos/p0000.jpg",
        pan="6228480000000000000",
        pan_seq="01",
    )
    return rec


def check(photo_dir: Path, profile: Any = PROFILE, **changes: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = base()
    for key, value in changes.items():
        if value is None:
            rec.pop(key, None)
        else:
            rec[key] = value
    return Validator(profile, photo_dir).check(rec)


def test_base_record_is_valid(photo_dir: Path) -> None:
    v = check(photo_dir)
    assert v["name_head"] == "张三".encode("gbk") and v["name_ext"] == b""
    assert v["ec"] == (0, 15000, 1000, 1500)
    assert v["card_id"][:8] == bytes.fromhex("360426D156000005")


# (changes, field, reason): one row per rule
RULES: list[tuple[dict[str, Any], str, str]] = [
    # presence
    ({"ssn": ""}, "ssn", "required field is empty"),
    ({"name": None}, "name", "required field is missing"),
    ({"photo": ""}, "photo", "required field is empty"),
    ({"pan": ""}, "pan", "required field is empty"),
    # identity number (GB 11643): shape, checksum, real birth date, region
    ({"ssn": "36042619910101007"}, "ssn", "resident ID must be 18 characters, got 17"),
    ({"ssn": "36042619910101A071"}, "ssn", "character 15 must be a digit (1-17 are digits)"),
    (
        {"ssn": "360426199101010072"},
        "ssn",
        "check character does not match (ISO 7064 MOD 11-2)",
    ),
    (
        {"ssn": "36042619910231007X", "birth_date": "19910231"},
        "birth_date",
        "1991-02-31 is not a calendar date (YYYYMMDD)",
    ),
    (
        {"ssn": "990426199101010079"},
        "ssn",
        "region (characters 1-6): region code starts with 99, not a GB/T 2260 province",
    ),
    (
        {"ssn": "36042619910101007x"},
        "ssn",
        "check character must be upper-case 'X', got lower-case 'x'",
    ),
    # birth date: not in the future, not after the issue date (issue 18: both had no record)
    (
        {"ssn": "360426209901010076", "birth_date": "20990101"},
        "birth_date",
        "is in the future",
    ),
    (
        {"issue_date": "19901231", "expiry_date": "20001231"},
        "birth_date",
        "is after issue_date",
    ),
    # gender, birth date consistency
    ({"gender": "3"}, "gender", "must be 1 (male) or 2 (female)"),
    ({"gender": "2"}, "gender", "does not match the gender digit of ssn (odd = male)"),
    ({"birth_date": "19910102"}, "birth_date", "does not match the birth date in ssn"),
    ({"birth_date": "1991011"}, "birth_date", "date must be 8 digits YYYYMMDD, got 7 characters"),
    # nation, regions
    ({"nation": "57"}, "nation", "must be a GB 3304 ethnic-group code (01-56, 97, 98)"),
    ({"birth_place": "36042"}, "birth_place", "region code must be 6 digits"),
    ({"region": "990101"}, "region", "region code starts with 99, not a GB/T 2260 province"),
    # card number (GB 11714-style check character)
    ({"card_no": "X00000018"}, "card_no", "check character (9th) does not match"),
    ({"card_no": "X0000001"}, "card_no", "card number must be 9 characters, got 8"),
    ({"card_no": "x00000019"}, "card_no", "character 1 must be 0-9 or A-Z (upper case only)"),
    # dates
    ({"issue_date": "20261301"}, "issue_date", "2026-13-01 is not a calendar date (YYYYMMDD)"),
    ({"expiry_date": "20260115"}, "expiry_date", "must be after issue_date"),
    ({"expiry_date": "20250115"}, "expiry_date", "must be after issue_date"),
    ({"accepted_date": "20260116"}, "accepted_date", "is after issue_date"),
    (
        {"accepted_date": "2026011"},
        "accepted_date",
        "date must be 8 digits YYYYMMDD, got 7 characters",
    ),
    (
        {"issue_date": "18991231", "expiry_date": "19091231"},
        "issue_date",
        "year before 1900 is not plausible",
    ),
    ({"application_type": "urgent"}, "application_type", "must be batch or sporadic"),
    # name: GBK and within 09 (30) + 4E (20)
    ({"name": "王😀"}, "name", "character at position 1 (U+1F600) cannot be encoded in GBK"),
    ({"name": "阿" * 26}, "name", "is 52 bytes in GBK, max 50 (30 name + 20 extension)"),
    ({"name": "张\t三"}, "name", "contains a control character"),
    ({"name": '魏"明涵'}, "name", 'contains a double quote (")'),
    ({"name": " 张三"}, "name", "has leading or trailing spaces"),
    (
        {"name_latin": "ZHANG^SAN"},
        "name_latin",
        "must be 2-26 Latin letters, spaces, '/', '.' or '-'",
    ),
    ({"person_code": "123"}, "person_code", "must be 12 characters 0-9 or A-Z"),
    # photo present and decodable
    ({"photo": "photos/none.jpg"}, "photo", "file not found"),
    (
        {"photo": "photos/empty.jpg"},
        "photo",
        "format: is not an image this check knows, not a JPEG",
    ),
    ({"photo": "photos/text.jpg"}, "photo", "format: is not an image this check knows, not a JPEG"),
    ({"photo": "photos/cut.jpg"}, "photo", "format: the JPEG is truncated (no EOI marker)"),
    ({"photo": "photos"}, "photo", "is a directory, not a JPEG file"),
    # bank data
    ({"bank_code": "1a"}, "bank_code", "must be 3-12 digits"),
    ({"pan": "6228480000000000001"}, "pan", "Luhn check digit does not match"),
    ({"pan": "622848000000001"}, "pan", "PAN must be 16-19 digits, got 15"),
    ({"pan": "62284800000000A0000"}, "pan", "PAN must be digits only; character 15 is not"),
    ({"pan_seq": "1"}, "pan_seq", "must be 2 digits"),
    ({"pin": "12345"}, "pin", "must be 6 digits"),
    # electronic cash: consistent and within the profile's maximums
    ({"ec_balance": "-1"}, "ec_balance", "must be a whole number of fen (0-999999999999)"),
    ({"ec_limit": "1.5"}, "ec_limit", "must be a whole number of fen (0-999999999999)"),
    ({"ec_limit": "100001"}, "ec_limit", "exceeds the profile maximum of 100000 fen"),
    ({"ec_balance": "15001", "ec_limit": "15000"}, "ec_balance", "exceeds ec_limit"),
    ({"ec_single_limit": "15001", "ec_limit": "15000"}, "ec_single_limit", "exceeds ec_limit"),
    (
        {"ec_reset_threshold": "15001", "ec_limit": "15000"},
        "ec_reset_threshold",
        "exceeds ec_limit",
    ),
]


@pytest.mark.parametrize(
    ("changes", "field", "reason"), RULES, ids=[f"{r[1]}:{r[2][:30]}" for r in RULES]
)
def test_rule(photo_dir: Path, changes: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(Reject) as exc:
        check(photo_dir, **changes)
    assert (exc.value.field, exc.value.reason) == (field, reason)


def _ssn_born(day: datetime.date) -> str:
    from cardperso.codec.numbers import resident_id_check_char

    body = f"360426{day:%Y%m%d}007"
    return body + resident_id_check_char(body)


def test_birth_date_boundaries(photo_dir: Path) -> None:
    """Born today is not "in the future" (tomorrow is); born on the issue day is not "after"
    it (the day after is). Kills the `>` -> `>=` mutants of both rules."""
    today = datetime.date.today()
    for day, reason in (
        (today + datetime.timedelta(days=1), "is in the future"),
        (today, "is after issue_date"),  # the base record was issued in January 2026
    ):
        with pytest.raises(Reject) as exc:
            check(photo_dir, ssn=_ssn_born(day), birth_date=f"{day:%Y%m%d}")
        assert (exc.value.field, exc.value.reason) == ("birth_date", reason)
    # born on the issue day: valid
    early = {"expiry_date": "20010101", "accepted_date": "19901201"}
    v = check(photo_dir, issue_date="19910101", **early)
    assert v["issue_date"] == "19910101"
    with pytest.raises(Reject) as exc:
        check(photo_dir, issue_date="19901231", **early)
    assert (exc.value.field, exc.value.reason) == ("birth_date", "is after issue_date")


def _reject_patterns() -> list[tuple[str | None, re.Pattern[str], str]]:
    """Every ``Reject(field, reason)`` that prep/validate.py raises with a reason of its own (a
    literal or an f-string; reasons passed through from the codec validators are theirs):
    (field or None when it is a variable, a regex of the reason, the source line)."""
    import ast

    from cardperso.prep import validate as module

    source = Path(module.__file__).read_text(encoding="utf-8")
    found: list[tuple[str | None, re.Pattern[str], str]] = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "Reject"
            and len(node.args) == 2
        ):
            continue
        field_node, reason_node = node.args
        field = (
            field_node.value
            if isinstance(field_node, ast.Constant) and isinstance(field_node.value, str)
            else None
        )
        if isinstance(reason_node, ast.Constant) and isinstance(reason_node.value, str):
            pattern = re.escape(reason_node.value)
        elif isinstance(reason_node, ast.JoinedStr):
            pattern = "".join(
                re.escape(part.value) if isinstance(part, ast.Constant) else ".+"
                for part in reason_node.values
            )
        else:
            continue  # a reason handed on (exc.reason, check_jpeg's answer)
        found.append((field, re.compile(pattern), ast.get_source_segment(source, node) or ""))
    return found


# (field, reason) of the rules asserted outside RULES, in the tests of this file
_ASSERTED_ELSEWHERE = [
    ("ec_single_limit", "exceeds the profile maximum of 2000 fen"),
    ("ec_reset_threshold", "exceeds the profile maximum of 3000 fen"),
]


def test_every_rule_has_a_failing_record() -> None:
    """The module docstring's promise, checked against the source: every reason the validator
    writes has a row in RULES (or an assertion named in _ASSERTED_ELSEWHERE). Before issue 18
    nothing checked it, so the two birth-date rules went without a failing record."""
    asserted = [(field, reason) for _, field, reason in RULES] + _ASSERTED_ELSEWHERE
    patterns = _reject_patterns()
    assert len(patterns) >= 25  # the walk finds the rules at all
    missing = [
        line
        for field, pattern, line in patterns
        if not any((field is None or field == f) and pattern.fullmatch(r) for f, r in asserted)
    ]
    assert missing == []


def test_ec_maximums_of_the_profile(photo_dir: Path, tmp_path: Path) -> None:
    text = Path(PROFILE.source).read_text(encoding="utf-8")
    text = text.replace("max_single_limit: 100000", "max_single_limit: 2000")
    text = text.replace("max_reset_threshold: 100000", "max_reset_threshold: 3000")
    p = tmp_path / "ssc3-pboc.yaml"
    p.write_text(text, encoding="utf-8")
    prof = load_profile(p)
    with pytest.raises(Reject) as exc:
        check(photo_dir, prof, ec_single_limit="2001", ec_limit="50000")
    assert (exc.value.field, exc.value.reason) == (
        "ec_single_limit",
        "exceeds the profile maximum of 2000 fen",
    )
    with pytest.raises(Reject) as exc:
        check(photo_dir, prof, ec_reset_threshold="3001", ec_limit="50000")
    assert (exc.value.field, exc.value.reason) == (
        "ec_reset_threshold",
        "exceeds the profile maximum of 3000 fen",
    )


def test_temporary_profile_needs_no_bank_fields(photo_dir: Path) -> None:
    v = check(photo_dir, TEMPORARY, pan=None, pan_seq=None, bank_code=None)
    full = check(photo_dir)
    # only the bank application's fields are left out; the SSSE fields are validated the same
    assert set(full) - set(v) == {"bank_code", "ec", "expiry_yymm", "pan", "pan_seq"}
    assert {k: v[k] for k in ("card_id", "card_no", "name_head", "ssn")} == {
        k: full[k] for k in ("card_id", "card_no", "name_head", "ssn")
    }


def test_long_name_is_split_on_a_character_boundary(photo_dir: Path) -> None:
    name = "阿卜杜热合曼·买买提吐尔逊·艾则孜"  # 17 characters, 34 GBK bytes
    v = check(photo_dir, name=name)
    assert len(v["name_head"]) <= 30 and v["name_ext"]
    assert (v["name_head"] + v["name_ext"]).decode("gbk") == name


def test_seeded_pin_policy_ignores_nothing_but_input_pin(photo_dir: Path) -> None:
    v = check(photo_dir, pin="123456")
    assert v["pin"] == "123456"


def test_jpeg_check_accepts_pillow_output() -> None:
    """Any whole JPEG Pillow writes passes the format rule (spec ``None``); the card
    specification then judges its pixel size and colour."""
    from PIL import Image

    for mode in ("RGB", "L"):
        buf = io.BytesIO()
        Image.new(mode, (30, 40), 128).save(buf, "JPEG", progressive=(mode == "L"))
        assert check_jpeg(buf.getvalue(), None) == ""
        assert check_jpeg(buf.getvalue()).startswith("pixel size: is 30x40 px")
    assert check_jpeg(make_photo(random.Random(5))) == ""


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=25)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(sorted(base())),
    value=st.one_of(_TEXT, st.from_regex(r"[0-9X]{0,20}", fullmatch=True)),
)
def test_corrupted_fields_never_crash(photo_dir: Path, field: str, value: str) -> None:
    """Any value in any field gives a valid record or a Reject, never another exception."""
    rec: dict[str, Any] = base()
    rec[field] = value
    try:
        Validator(PROFILE, photo_dir).check(rec)
    except Reject as rej:
        assert rej.field and rej.reason


@settings(max_examples=300)
@given(body=st.from_regex(r"[0-9]{17}", fullmatch=True), other=st.sampled_from("0123456789X"))
def test_fast_identity_check_agrees_with_the_codec(body: str, other: str) -> None:
    """The validator's base-13 MOD 11-2 shortcut agrees with cardperso.codec.numbers."""
    from cardperso.codec.numbers import resident_id_check_char
    from cardperso.prep import validate as v

    good = resident_id_check_char(body)
    assert v._RIC_CHECK[2 * int(body, 13) % 11] == good
    if other != good:
        assert v._RIC_CHECK[2 * int(body, 13) % 11] != other


@settings(max_examples=300)
@given(body=st.from_regex(r"[0-9]{15,18}", fullmatch=True))
def test_fast_luhn_agrees_with_the_codec(body: str) -> None:
    from cardperso.codec.numbers import luhn_check_digit

    pan = body + luhn_check_digit(body)
    validator = Validator(PROFILE)
    validator._pan(pan)
    bad = pan[:-1] + str((int(pan[-1]) + 3) % 10)
    with pytest.raises(Reject):
        validator._pan(bad)
