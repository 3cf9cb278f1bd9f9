"""One application at the counter (cardperso.registry.counter, the web desk's library): for a
matrix of applicants and wrong values, the message for each field is the one `registry import`
writes for the same record read from a file; an application accepted at the counter is the
row the import makes of the same record. In process, on SQLite."""

from __future__ import annotations

import csv
import datetime
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cardperso.codec.photo import CARD_PHOTO
from cardperso.prep.synth import records
from cardperso.prep.validate import Reject
from cardperso.profiles.loader import load_profile
from cardperso.registry import centre, counter, schema
from cardperso.registry.applications import ImportSummary, import_applications
from cardperso.registry.centre import Lists
from cardperso.storage.db import Database
from centre_photos import spec_photo
from test_registry import pg_url  # noqa: F401 - fixture

PROFILE = load_profile("ssc3-pboc")
TODAY = datetime.date.today()
PEOPLE = [
    {k: r[k] for k in counter.TYPED if k in r}
    for r in records(6, seed=33, photos=0)
]  # fmt: skip
#: (field, wrong value, whether its message depends on other fields). The identity numbers
#: start from GB 11643-1999's example 11010519491231002X.
WRONG = [
    ("ssn", "110105194912310023", False),  # check character
    ("ssn", "11010519491231002", False),  # 17 characters
    ("ssn", "110105194913310021", False),  # month 13
    ("ssn", "11010519491231002X", True),  # valid, but another person's birth date and gender
    ("name", "张\x01三", False),
    ("name", " 张三", False),
    ("name", "张" * 26, False),  # 52 bytes in GBK
    ("gender", "3", False),
    ("nation", "57", False),
    ("birth_date", "19491301", False),
    ("birth_date", "21000101", False),
    ("birth_place", "991234", False),
    ("region", "12345", False),
    ("pan", "6228480000000000001", False),
    ("pan", "62284800", False),
    ("pan_seq", "1", False),
    ("bank_code", "999", False),
    ("bank_code", "12", False),
    ("phone", "1391234567", False),
    ("phone", "010-123", False),
    ("application_type", "urgent", False),
    ("photo_source", "selfie", False),
    ("unit", "U9999", False),
]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "registry.db")
    schema.upgrade(database)
    centre.add_party(database, "service_point", "SP01", "东城区社保服务网点")
    centre.add_party(database, "unit", "U1001", "北京市甲科技有限公司")
    for code in sorted({p["bank_code"] for p in PEOPLE}):
        centre.add_party(database, "bank", code, f"合作银行{code}")
    return database


def _file(path: Path, rows: list[dict[str, str]], photo: Path) -> Path:
    columns = [*counter.TYPED, "service_point", "accepted_date", "photo"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({**dict.fromkeys(columns, ""), **r, "service_point": "SP01",
                        "accepted_date": f"{TODAY:%Y%m%d}", "photo": str(photo)})  # fmt: skip
    return path


def test_each_wrong_field_gets_the_message_registry_import_writes(
    db: Database, tmp_path: Path
) -> None:
    photo = tmp_path / "p.jpg"
    photo.write_bytes(spec_photo(random.Random(1)))
    cases = [(p, f, v, dep) for p in PEOPLE for f, v, dep in WRONG]
    rows = [{**p, "application_type": "sporadic", f: v} for p, f, v, _ in cases]
    summary = import_applications(
        db, _file(tmp_path / "apps.csv", rows, photo), PROFILE, actor="t", photo_spec=CARD_PHOTO
    )
    assert summary.accepted == 0 and summary.rejected == len(cases)
    by_line = {line: (field, reason) for line, field, reason, _ssn in summary.rejects}
    lists = Lists.load(db)
    for line, ((_p, field, value, depends), row) in enumerate(zip(cases, rows, strict=True), 2):
        want_field, want = by_line[line]
        got = counter.problems(row, PROFILE, lists, point="SP01")
        assert want_field in got and got[want_field] == want, (field, value, got, want)
        if not depends:
            assert want_field == field, (field, value, want_field)
            alone = counter.problems({field: value}, PROFILE, lists, point="SP01")
            assert alone == {field: want}, (field, value, alone)


def test_a_good_form_has_no_problem_and_an_empty_one_none_yet(db: Database) -> None:
    lists = Lists.load(db)
    for p in PEOPLE:
        assert counter.problems(dict(p, application_type="batch"), PROFILE, lists,
                                point="SP01") == {}  # fmt: skip
    assert counter.problems({}, PROFILE, lists, point="SP01") == {}


def test_an_application_accepted_at_the_counter_is_the_row_the_import_makes(
    db: Database, tmp_path: Path
) -> None:
    photo = tmp_path / "p.jpg"
    photo.write_bytes(spec_photo(random.Random(2)))
    first, second = (dict(p, application_type="sporadic", phone="13912345678") for p in PEOPLE[:2])
    got = counter.accept(db, first, PROFILE, point="SP01", photo=photo, photo_spec=CARD_PHOTO,
                         actor="web:clerk1", today=TODAY)  # fmt: skip  # the file's day, at midnight too
    summary = import_applications(db, _file(tmp_path / "one.csv", [second], photo), PROFILE,
                                  actor="web:clerk1", photo_spec=CARD_PHOTO)  # fmt: skip
    (imported,) = summary.ids
    skip = {"id", "source", "created_at", "state_at", *counter.TYPED}
    cols = [c for (c,) in db.execute("SELECT name FROM pragma_table_info('reg_applications')")]
    rows = {
        i: dict(zip(cols, db.execute("SELECT * FROM reg_applications WHERE id = ?", (i,))[0]))
        for i in (got.app_id, imported)
    }
    assert {k: v for k, v in rows[got.app_id].items() if k not in skip} == {
        k: v for k, v in rows[imported].items() if k not in skip
    }
    assert rows[got.app_id]["state"] == "accepted" and rows[got.app_id]["photo"] == str(photo)
    # the source names the counter and the clerk, never the person
    assert rows[got.app_id]["source"] == "desk SP01 user=clerk1:1"
    for i, typed in ((got.app_id, first), (imported, second)):
        assert {k: rows[i][k] for k in typed if k in cols} == typed
    events = db.execute(
        "SELECT application_id, event, to_state, actor FROM reg_transitions ORDER BY id"
    )
    assert [tuple(e) for e in events] == [(got.app_id, "accept", "accepted", "web:clerk1"),
                                          (imported, "accept", "accepted", "web:clerk1")]  # fmt: skip
    # the same person again while the application is open: refused as the import refuses it
    with pytest.raises(Reject) as exc:
        counter.accept(db, first, PROFILE, point="SP01", photo=photo, photo_spec=CARD_PHOTO,
                       actor="web:clerk1")  # fmt: skip
    assert (exc.value.field, exc.value.reason) == (
        "ssn", f"has an open application in the registry (id {got.app_id})")  # fmt: skip


def test_the_photo_rule_is_the_imports(tmp_path: Path) -> None:
    from PIL import Image

    small = tmp_path / "small.jpg"
    Image.new("RGB", (100, 120), (90, 90, 90)).save(small, "JPEG", quality=70)
    assert counter.photo_problem(small, CARD_PHOTO).startswith("pixel size")
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 200_000)
    assert "over the 102,400-byte limit" in counter.photo_problem(big, CARD_PHOTO)
    assert counter.photo_problem(tmp_path / "none.jpg", CARD_PHOTO) == "file not found"


def _while_accepting(
    db: Database, form: dict[str, str], photo: Path, other: Callable[[], None],
    outcome: list[object],
) -> counter.Accepted:  # fmt: skip
    """Accept ``form`` at SP01 on ``db`` and, before that transaction commits, start ``other``
    in a thread (another connection): it must still be waiting 2 s later; it ends after the
    commit."""
    with db.transaction():
        got = counter.accept(db, form, PROFILE, point="SP01", photo=photo,
                             photo_spec=CARD_PHOTO, actor="web:clerk1")  # fmt: skip
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(2.0)
        assert thread.is_alive() and not outcome, "the other one waits for the first"
    thread.join(60)
    assert not thread.is_alive()
    return got


@pytest.mark.postgres
def test_one_person_at_two_counters_at_once_is_accepted_once(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two consoles (two connections) accept the same person at the same moment: the second
    waits for the first's transaction, then is refused as the import refuses a second open
    application (without the lock it would not see the first's row and insert a second)."""
    photo = tmp_path / "p.jpg"
    photo.write_bytes(spec_photo(random.Random(3)))
    form = dict(PEOPLE[0], application_type="sporadic")
    with Database(pg_url) as first, Database(pg_url) as second:
        schema.upgrade(first)
        centre.add_party(first, "service_point", "SP01", "东城区社保服务网点")
        centre.add_party(first, "service_point", "SP02", "西城区社保服务网点")
        outcome: list[object] = []

        def other_counter() -> None:
            try:
                outcome.append(counter.accept(second, form, PROFILE, point="SP02", photo=photo,
                                              photo_spec=CARD_PHOTO, actor="web:clerk2"))  # fmt: skip
            except Reject as exc:
                outcome.append(exc)

        got = _while_accepting(first, form, photo, other_counter, outcome)
        (refused,) = outcome
        assert isinstance(refused, Reject) and refused.field == "ssn"
        assert refused.reason == f"has an open application in the registry (id {got.app_id})"
        rows = first.execute("SELECT COUNT(*) FROM reg_applications WHERE ssn = ?", (form["ssn"],))
        assert rows[0][0] == 1


@pytest.mark.postgres
def test_an_import_waits_for_a_counter_accepting_the_same_person(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`registry import` of a file (another process) while a counter accepts the same person:
    the import waits for the counter's transaction (the person's advisory lock), then refuses
    the record as a second open application. Without the lock in the import path it would not
    see the counter's uncommitted row and insert a second application for the person."""
    photo = tmp_path / "p.jpg"
    photo.write_bytes(spec_photo(random.Random(4)))
    person = dict(PEOPLE[1], application_type="sporadic")
    others = [dict(p, application_type="sporadic") for p in PEOPLE[2:4]]
    path = _file(tmp_path / "apps.csv", [*others, person], photo)
    with Database(pg_url) as first, Database(pg_url) as second:
        schema.upgrade(first)
        centre.add_party(first, "service_point", "SP01", "东城区社保服务网点")
        for code in sorted({p["bank_code"] for p in PEOPLE}):
            centre.add_party(first, "bank", code, f"合作银行{code}")
        outcome: list[object] = []

        def importer() -> None:
            outcome.append(import_applications(second, path, PROFILE, actor="cli:clerk",
                                               photo_spec=CARD_PHOTO))  # fmt: skip

        got = _while_accepting(first, person, photo, importer, outcome)
        (summary,) = outcome
        assert isinstance(summary, ImportSummary)
        assert summary.accepted == 2  # the two other people
        assert [(line, f, r) for line, f, r, _ in summary.rejects] == [
            (4, "ssn", f"has an open application in the registry (id {got.app_id})")]  # fmt: skip
        rows = first.execute("SELECT COUNT(*) FROM reg_applications WHERE ssn = ?",
                             (person["ssn"],))  # fmt: skip
        assert rows[0][0] == 1
