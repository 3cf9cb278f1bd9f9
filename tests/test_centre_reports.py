# ruff: noqa: F811 - pytest fixtures imported from test_registry are parameters here
"""Issue 15: walk-ins exported alone (``export-batch --sporadic``), reports broken down by
batch, region, bank, unit and service point for a date range (text and CSV), the cards waiting
per service point, and the overdue list as CSV. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from pathlib import Path

from cardperso.storage.db import connect
from test_centre_acceptance import GOOD, setup_lists, write_centre_apps
from test_integrity_registry import _applications
from test_registry import (  # the registry tests' fixtures and helpers
    _fake_line_results,
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    run_cli,
)

#: (unit, service point, application type) of six applications: two employers, walk-ins
PEOPLE = [
    ("U1001", "SP01", "batch"),
    ("U1001", "SP01", "batch"),
    ("U1002", "SP02", "batch"),
    ("", "SP01", "sporadic"),
    ("", "SP02", "sporadic"),
    ("", "SP02", "sporadic"),
]


def _compared(url: str, tmp_path: Path) -> list[dict[str, str]]:
    recs = _applications(tmp_path, len(PEOPLE))
    recs = [
        dict(r, application_type=kind, accepted_date="20260105" if i < 3 else "20260112")
        for i, (r, (_, _, kind)) in enumerate(zip(recs, PEOPLE, strict=True))
    ]
    setup_lists(url, [])
    extra = [dict(GOOD, unit=u, service_point=sp) for u, sp, _ in PEOPLE]
    db = ["--db", url]
    run_cli("registry", "import", str(write_centre_apps(tmp_path, recs, extra)), *db)
    run_cli("registry", "audit", *db)
    run_cli("registry", "compare", *db, "--population", str(tmp_path / "population.csv"),
            "--bank", str(tmp_path / "bank.csv"))  # fmt: skip
    run_cli("registry", "register", *db)
    return recs


def test_export_batch_sporadic_takes_the_walk_ins_only(db_url: str, tmp_path: Path) -> None:
    _compared(db_url, tmp_path)
    db = ["--db", db_url]
    out = run_cli("registry", "export-batch", *db, "--sporadic", "--out",
                  str(tmp_path / "s.csv"), "--batch", "S1")  # fmt: skip
    assert "batch S1: 3 standard cards" in out
    with (tmp_path / "s.csv").open(encoding="utf-8") as fh:
        assert {r["application_type"] for r in csv.DictReader(fh)} == {"sporadic"}
    err = run_cli("registry", "export-batch", *db, "--sporadic", "--out",
                  str(tmp_path / "s2.csv"), code=2)  # fmt: skip
    assert "no sporadic application is registered: nothing to export" in err
    out = run_cli("registry", "export-batch", *db, "--out", str(tmp_path / "b.csv"), "--batch",
                  "B1")  # fmt: skip
    assert "batch B1: 3 standard cards" in out


def _day_of_work(url: str, tmp_path: Path) -> list[dict[str, str]]:
    """Walk-ins in S1 and employers in B1, made; accounts; all notified but one; one issued."""
    _compared(url, tmp_path)
    db = ["--db", url]
    rows = []
    for batch, flag, chips in (("S1", ["--sporadic"], 0xA0000000), ("B1", [], 0xB0000000)):
        out = tmp_path / f"{batch}.csv"
        run_cli("registry", "export-batch", *db, *flag, "--out", str(out), "--batch", batch)
        rows += _fake_line_results(out, tmp_path / f"{batch}.res.csv", chips=chips)
        run_cli("registry", "import-results", str(tmp_path / f"{batch}.res.csv"), *db)
    acc = tmp_path / "acc.csv"
    with acc.open("w", encoding="utf-8") as fh:
        fh.write("card_no,status,reason\n")
        for r in rows[:-1]:
            fh.write(f"{r['card_no']},opened,\n")
    run_cli("registry", "accounts", str(acc), *db)
    run_cli("registry", "notify", *db, "--date", "2026-01-16")
    run_cli("registry", "issue", rows[0]["card_no"], "--to", "holder", "--date", "2026-01-19",
            *db)  # fmt: skip
    return rows


def test_breakdowns_by_unit_service_point_and_batch_as_text_and_csv(
    db_url: str, tmp_path: Path
) -> None:
    _day_of_work(db_url, tmp_path)
    db = ["--db", db_url]
    text = run_cli("registry", "report", "breakdown", "--by", "unit", "--as-of", "2026-01-19", *db)
    lines = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines()[1:-1]}
    # walk-ins have no unit ("-"): S1 was exported first, so the first card issued is a walk-in
    assert lines["-"][:5] == ["3", "0", "2", "1", "0"]
    assert lines["U1001"][:5] == ["2", "0", "2", "0", "0"]
    assert lines["U1002"][:5] == ["1", "1", "0", "0", "0"]  # its account is not open yet
    out_csv = tmp_path / "by-point.csv"
    run_cli("registry", "report", "breakdown", "--by", "service-point", "--as-of", "2026-01-19",
            "--out", str(out_csv), *db)  # fmt: skip
    with out_csv.open(encoding="utf-8") as fh:
        got = {r["group"]: r for r in csv.DictReader(fh)}
    assert set(got) == {"SP01", "SP02"}
    assert (got["SP01"]["applications"], got["SP02"]["applications"]) == ("3", "3")
    assert oct(out_csv.stat().st_mode & 0o777) == "0o600"
    # lead times: accepted 5 Jan (batch) or 12 Jan (walk-ins), notified Friday 16 Jan
    assert got["SP01"]["median_lead_days"] == "9" and got["SP01"]["within_target"] == "3"
    batch = run_cli("registry", "report", "breakdown", "--by", "batch", "--out",
                    str(tmp_path / "b.csv"), *db)  # fmt: skip
    assert "2 batch group(s)" in batch
    # a date range of acceptance: the walk-ins only
    ranged = run_cli("registry", "report", "breakdown", "--by", "service-point", "--from",
                     "2026-01-10", "--as-of", "2026-01-19", *db)  # fmt: skip
    counts = {ln.split()[0]: ln.split()[1] for ln in ranged.splitlines()[1:-1]}
    assert counts == {"SP01": "1", "SP02": "2"}
    late = run_cli("registry", "report", "breakdown", "--by", "unit", "--as-of", "2026-03-02", *db)
    assert next(ln for ln in late.splitlines() if ln.startswith("U1002")).split()[6] == "1"


def test_cards_waiting_per_service_point(db_url: str, tmp_path: Path) -> None:
    rows = _day_of_work(db_url, tmp_path)
    db = ["--db", db_url]
    text = run_cli("registry", "report", "waiting", "--as-of", "2026-01-23", *db)
    assert "SP01: 2 card(s) waiting" in text and "SP02: 2 card(s) waiting" in text
    assert "as of 2026-01-23: 4 card(s) waiting to be collected" in text
    assert "notified 2026-01-16  5 working days" in text
    assert all(r["ssn"] not in text for r in rows)
    only = run_cli("registry", "report", "waiting", "--service-point", "SP02", "--out",
                   str(tmp_path / "w.csv"), *db)  # fmt: skip
    assert "2 card(s) waiting" in only
    with (tmp_path / "w.csv").open(encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert {r["service_point"] for r in got} == {"SP02"} and len(got) == 2
    with connect(db_url) as conn:
        ready = {str(n) for (n,) in conn.execute(
            "SELECT card_no FROM reg_applications WHERE state = 'ready_for_collection' "
            "AND service_point = 'SP02'")}  # fmt: skip
    assert {r["card_no"] for r in got} == ready


def test_overdue_as_csv(db_url: str, tmp_path: Path) -> None:
    _compared(db_url, tmp_path)
    out = tmp_path / "overdue.csv"
    text = run_cli("registry", "overdue", "--as-of", "2026-03-02", "--out", str(out),
                   "--db", db_url)  # fmt: skip
    assert "6 late, 0 at risk" in text
    with out.open(encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert [r["status"] for r in got] == ["LATE"] * 6
    assert {r["stage"] for r in got} == {"registered"}


def test_stats_as_csv(db_url: str, tmp_path: Path) -> None:
    _day_of_work(db_url, tmp_path)
    out = tmp_path / "stats.csv"
    text = run_cli("registry", "stats", "--out", str(out), "--db", db_url)
    with out.open(encoding="utf-8") as fh:
        got = {(r["measure"], r["key"]): r["value"] for r in csv.DictReader(fh)}
    assert got[("stage", "ready_for_collection")] == "4" and got[("stage", "issued")] == "1"
    assert "ready_for_collection   4" in text  # the text stays
    # walk-ins accepted 12 Jan, notified 16 Jan: 4 working days, within the 5-day target
    assert got[("lead_time sporadic", "n")] == "3" and got[("lead_time sporadic", "max")] == "4"
    assert got[("histogram batch", "6-10")] == "2"
