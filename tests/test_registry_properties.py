"""Properties of the registry's pure parts (hypothesis), and what its logs may say."""

from __future__ import annotations

import csv
import datetime
import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.codec.numbers import check_card_number
from cardperso.profiles.loader import load_profile
from cardperso.registry import cards, lifecycle, production, schema, store
from cardperso.registry.applications import audit, compare, import_applications
from cardperso.registry.calendar import Calendar, parse_calendar
from cardperso.storage.db import Database
from test_registry import APP_COLUMNS, NATIONAL_DAY_2026, write_applications

CAL = parse_calendar(NATIONAL_DAY_2026.splitlines())
days = st.dates(datetime.date(2025, 1, 1), datetime.date(2027, 12, 31))


@given(start=days, n=st.integers(0, 80))
def test_adding_and_counting_working_days_agree(start: datetime.date, n: int) -> None:
    for cal in (CAL, Calendar()):
        end = cal.add_working_days(start, n)
        assert cal.working_days_between(start, end) == n
        assert n == 0 or cal.is_working_day(end)
        assert cal.working_days_between(end, start) == -n


@given(a=days, b=days, c=days)
def test_working_days_are_additive(a: datetime.date, b: datetime.date, c: datetime.date) -> None:
    x, y, z = sorted((a, b, c))
    assert CAL.working_days_between(x, z) == CAL.working_days_between(
        x, y
    ) + CAL.working_days_between(y, z)


@given(
    prefix=st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    seq=st.integers(0, 36**6 - 1),
)
def test_allocated_numbers_are_valid_and_injective(prefix: str, seq: int) -> None:
    number = cards.card_number(prefix, seq)
    assert check_card_number(number) == number
    assert number[:2] == prefix and int(number[2:8], 36) == seq


@settings(max_examples=200)
@given(state=st.sampled_from(lifecycle.STATES), event=st.text(min_size=1, max_size=20))
def test_the_table_is_the_only_judge(state: str, event: str) -> None:
    allowed = (state, event) in lifecycle.TRANSITIONS
    try:
        lifecycle.next_state(state, event)
    except Exception as exc:
        assert not allowed and type(exc).__name__ == "IllegalTransition"
    else:
        assert allowed


def test_logs_and_outputs_name_people_by_masked_ids_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every step of the registry, logged at DEBUG: no identity number, name or PAN in clear."""
    recs = write_applications(tmp_path, 4)
    # a second round for the first person: a duplicate is cancelled (and logged)
    caplog.set_level(logging.DEBUG)
    with Database(tmp_path / "r.db") as db:
        schema.upgrade(db)
        profile = load_profile("ssc3-pboc")
        import_applications(db, tmp_path / "apps.csv", profile, actor="t")
        audit(db, profile, actor="t")
        compare(db, tmp_path / "population.csv", tmp_path / "bank.csv", actor="t")
        cards.register(db, actor="t")
        production.export_batch(db, tmp_path / "b.csv", actor="t", batch_no="LOG1")
        first = store.select_apps(db)[0]
        with db.transaction():
            for event in ("produced", "account_open", "notify", "issue"):
                store.move(db, first.id, event, actor="t")
        again = tmp_path / "again"
        again.mkdir()
        (again / "photos").symlink_to(tmp_path / "photos")
        with (again / "apps.jsonl").open("w", encoding="utf-8") as fh:  # JSON Lines works too
            row = {c: recs[0][c] for c in APP_COLUMNS}
            fh.write(json.dumps(dict(row, accepted_date="20260301"), ensure_ascii=False) + "\n")
        assert import_applications(db, again / "apps.jsonl", profile, actor="t").accepted == 1
        audit(db, profile, actor="t")
        compare(db, tmp_path / "population.csv", tmp_path / "bank.csv", actor="t")
        (reg,) = cards.register(db, actor="t")
        assert reg.cancelled == (first.card_no,)
        outcomes = [repr(x) for x in store.select_apps(db)]
    text = caplog.text + "\n".join(outcomes)
    assert "cancelled as duplicates" in caplog.text
    for r in recs:
        assert r["ssn"] not in text and r["pan"] not in text and r["name"] not in text
    with (tmp_path / "b.csv").open(encoding="utf-8") as fh:
        assert {row["ssn"] for row in csv.DictReader(fh)} == {r["ssn"] for r in recs}
