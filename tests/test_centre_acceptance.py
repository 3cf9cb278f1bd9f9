# ruff: noqa: F811 - pytest fixtures imported from test_registry are parameters here
"""Issue 15, acceptance at a service point: the centre's lists (service points, insured units,
cooperative banks), an application's service point, unit, phone, chosen bank, photo source and
the two confirmations; SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cardperso.prep.validate import Reject
from cardperso.registry.centre import Lists, Party, check_centre, mask_phone
from test_integrity_registry import _applications
from test_registry import (  # the registry tests' fixtures and helpers
    APP_COLUMNS,
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    run_cli,
)

CENTRE = ("service_point", "unit", "phone", "photo_source", "photo_receipt",
          "staff_confirmed", "applicant_confirmed")  # fmt: skip


def write_centre_apps(
    directory: Path, recs: list[dict[str, str]], extra: list[dict[str, str]]
) -> Path:
    path = directory / "centre-apps.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*APP_COLUMNS, *CENTRE])
        for r, e in zip(recs, extra, strict=True):
            w.writerow([*(r[c] for c in APP_COLUMNS), *(e.get(c, "") for c in CENTRE)])
    return path


def setup_lists(url: str, banks: list[str]) -> None:
    db = ["--db", url]
    run_cli("db", "upgrade", *db)
    run_cli(
        "registry", "service-point", "add", "SP01", "南山街道社保服务点", "--region", "440305", *db
    )
    run_cli("registry", "service-point", "add", "SP02", "西丽街道社保服务点", *db)
    run_cli("registry", "unit", "add", "U1001", "深圳市甲科技有限公司", *db)
    run_cli("registry", "unit", "add", "U1002", "深圳市乙贸易有限公司", *db)
    for code in banks:
        run_cli("registry", "bank", "add", code, f"合作银行{code}", *db)


GOOD = {
    "service_point": "SP01", "unit": "U1001", "phone": "13812345678", "photo_source": "studio",
    "photo_receipt": "PS2026-0001", "staff_confirmed": "王工号0012", "applicant_confirmed": "yes",
}  # fmt: skip


def test_the_centres_lists(db_url: str) -> None:
    setup_lists(db_url, ["102", "103"])
    db = ["--db", db_url]
    err = run_cli("registry", "unit", "add", "U1001", "again", *db, code=2)
    assert "insured unit U1001 is already on the list" in err
    err = run_cli("registry", "bank", "add", "ICBC", "工商银行", *db, code=1)
    assert "field 'code': a bank code is 3-12 digits" in err
    out = run_cli("registry", "service-point", "list", *db)
    assert "SP01         南山街道社保服务点  region 440305" in out and "2 service point(s)" in out
    banks = [json.loads(x) for x in run_cli("registry", "bank", "list", "--json", *db).splitlines()]
    assert [b["code"] for b in banks] == ["102", "103"]


def test_an_application_records_where_for_whom_and_how_it_was_accepted(
    db_url: str, tmp_path: Path
) -> None:
    recs = _applications(tmp_path, 9)
    setup_lists(db_url, sorted({r["bank_code"] for r in recs[:8]}))
    extra = [
        GOOD,
        dict(GOOD, photo_source="id_card", photo_receipt="", unit="", phone="0755-86001234"),
        dict(GOOD, service_point="SP09"),  # not on the list
        dict(GOOD, unit="U9"),  # not on the list
        dict(GOOD, phone="1381234567"),  # 10 digits
        dict(GOOD, photo_receipt=""),  # studio without its receipt
        dict(GOOD, photo_source="id_card"),  # ID-card photo with a studio receipt
        dict(GOOD, applicant_confirmed="maybe"),
        GOOD,  # its bank is not one of the centre's banks (below)
    ]
    recs[8] = dict(recs[8], bank_code="999")
    path = write_centre_apps(tmp_path, recs, extra)
    out = run_cli("registry", "import", str(path), "--db", db_url, code=1)
    assert "read 9, accepted 2, rejected 7 (application ids 1-2)" in out
    for line, field, reason in [
        (4, "service_point", "is not on the centre's list of service points"),
        (5, "unit", "is not on the centre's list of insured units"),
        (6, "phone", "is not a mobile (11 digits) or a landline with its area code"),
        (7, "photo_receipt", "a studio photo needs the studio's receipt number"),
        (8, "photo_receipt", "is for a studio photo, not the ID-card photo"),
        (9, "applicant_confirmed", "is yes or no"),
        (10, "bank_code", "is not one of the centre's cooperative banks"),
    ]:
        assert f"line {line}: {field}: {reason}" in out
    assert "1381234567" not in out, "a phone number is personal data"
    got = json.loads(run_cli("registry", "show", "1", "--json", "--db", db_url))
    assert {k: got[k] for k in CENTRE} == dict(GOOD, phone="138****5678")
    second = json.loads(run_cli("registry", "show", "2", "--json", "--db", db_url))
    assert (second["photo_source"], second["photo_receipt"], second["unit"]) == ("id_card", "", "")
    assert second["phone"] == "075*****1234"
    listed = run_cli("registry", "list", "--unit", "U1001", "--json", "--db", db_url)
    assert [json.loads(x)["application_id"] for x in listed.splitlines()] == [1]
    listed = run_cli("registry", "list", "--service-point", "SP01", "--json", "--db", db_url)
    assert [json.loads(x)["application_id"] for x in listed.splitlines()] == [1, 2]


def test_audit_waits_for_both_confirmations(db_url: str, tmp_path: Path) -> None:
    recs = _applications(tmp_path, 3)
    setup_lists(db_url, [])
    extra = [
        GOOD,
        dict(GOOD, applicant_confirmed=""),
        dict(GOOD, staff_confirmed="", applicant_confirmed=""),
    ]
    run_cli("registry", "import", str(write_centre_apps(tmp_path, recs, extra)), "--db", db_url)
    out = run_cli("registry", "audit", "--db", db_url)
    assert "application 2" in out and "waiting for the confirmation of: applicant" in out
    assert "waiting for the confirmation of: staff, applicant" in out
    assert "audited 1, rejected 0, waiting for confirmation 2" in out
    out = run_cli("registry", "confirm", "3", "--staff", "李工号0020", "--db", db_url)
    assert "application 3: still waiting for: applicant" in out
    assert "confirmed by both" in run_cli("registry", "confirm", "3", "--applicant", "--db", db_url)
    run_cli("registry", "confirm", "2", "--applicant", "--db", db_url)
    assert "audited 2, rejected 0" in run_cli("registry", "audit", "--db", db_url)
    err = run_cli("registry", "confirm", "1", "--applicant", "--db", db_url, code=2)
    assert "'confirm' is not allowed in state 'audited'" in err
    hist = run_cli("registry", "history", "3", "--db", db_url)
    assert "signed by staff" in hist and "signed by applicant" in hist


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"phone": "23812345678"}, "phone"),
        ({"phone": "0755-123"}, "phone"),
        ({"photo_source": "selfie"}, "photo_source"),
        ({"photo_receipt": "x"}, "photo_receipt"),
        ({"staff_confirmed": "a" * 65}, "staff_confirmed"),
    ],
)
def test_centre_rules_name_the_field(values: dict[str, str], field: str) -> None:
    with pytest.raises(Reject) as exc:
        check_centre(values, Lists({}, {}, {}))
    assert exc.value.field == field


def test_centre_values_are_normalised() -> None:
    lists = Lists(
        {"SP01": Party("service_point", "SP01", "x")}, {}, {"102": Party("bank", "102", "b")}
    )
    got = check_centre(
        {"service_point": "SP01", "photo_receipt": "PS-0001", "applicant_confirmed": "是",
         "phone": "138 1234 5678", "bank_code": "102"},
        lists,
    )  # fmt: skip
    assert got == {
        "service_point": "SP01", "photo_source": "studio", "photo_receipt": "PS-0001",
        "applicant_confirmed": "yes", "phone": "13812345678",
    }  # fmt: skip
    assert check_centre({"bank_code": "999"}, Lists({}, {}, {})) == {}  # no bank list yet
    assert mask_phone("13812345678") == "138****5678"


def test_json_lines_applications_carry_the_centres_keys(db_url: str, tmp_path: Path) -> None:
    recs = _applications(tmp_path, 4)
    setup_lists(db_url, [])
    lines = [
        json.dumps({**{c: recs[0][c] for c in APP_COLUMNS}, **GOOD}, ensure_ascii=False),
        json.dumps({**{c: recs[1][c] for c in APP_COLUMNS}, **GOOD, "phone": "12"}),
        "",  # a blank line keeps its place
        '{"phone": "13812345678", "phone": "2"}',  # a key twice: left to the reader, refused
        json.dumps({**{c: recs[3][c] for c in APP_COLUMNS}, "service_point": "SP02"}),
    ]
    path = tmp_path / "apps.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run_cli("registry", "import", str(path), "--db", db_url, code=1)
    assert "line 2: phone: is not a mobile" in out
    assert "line 4: phone: unknown field" in out
    assert "accepted 2, rejected 2" in out
    got = json.loads(run_cli("registry", "show", "1", "--json", "--db", db_url))
    assert {k: got[k] for k in CENTRE} == dict(GOOD, phone="138****5678")
    assert (
        json.loads(run_cli("registry", "show", "2", "--json", "--db", db_url))["service_point"]
        == "SP02"
    )
