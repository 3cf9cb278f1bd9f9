"""Issue 11, the registry: prep rejects flowing back to the registry (on SQLite and on the real
PostgreSQL), atomic private registry exports that never overwrite an input or the database,
spreadsheet-safe CSV cells, and hostile input files ending in one line. The database layer's
items (0600 files, no database created by reading, non-SQLite files, URL schemes) are in
test_registry_database.py."""

from __future__ import annotations

import csv
import datetime
import io
import os
import random
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cardperso.cli.main import _register, cli
from cardperso.codec.csvcells import FORMULA_START, safe_cell, safe_row, unsafe_cell
from cardperso.codec.numbers import mask_id
from cardperso.errors import DataError
from cardperso.prep.synth import records
from cardperso.registry import production, store
from cardperso.registry.prep_rejects import read_prep_rejects
from cardperso.storage.db import connect
from test_registry import (  # the registry tests' fixtures and helpers
    APP_COLUMNS,
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    spec_photo,
    write_extracts,
)


def run_cli(*args: str, code: int = 0) -> str:
    _register()
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the registry on SQLite and PostgreSQL -----------------------------------------------------

KEYS = Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json"


def _applications(
    directory: Path, count: int, *, same_pan: tuple[int, int] | None = None, **override: str
) -> list[dict[str, str]]:
    """``apps.csv`` and the agreeing extracts; ``same_pan=(a, b)`` gives record b the PAN of
    record a (the bank extract agrees: the mistake is the bank's); ``override`` sets fields of
    record 0."""
    photos = directory / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for j in range(4):
        (photos / f"p{j:04d}.jpg").write_bytes(spec_photo(random.Random(j)))
    recs = list(records(count, seed=11, photos=4))
    if same_pan:
        a, b = same_pan
        recs[b] = dict(recs[b], pan=recs[a]["pan"], pan_seq=recs[a]["pan_seq"])
    recs[0] = dict(recs[0], **override)
    with (directory / "apps.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(APP_COLUMNS)
        for r in recs:
            w.writerow([r[c] for c in APP_COLUMNS])
    write_extracts(directory, recs)
    return recs


def _registered(url: str, directory: Path, count: int, **kw: object) -> list[dict[str, str]]:
    recs = _applications(directory, count, **kw)  # type: ignore[arg-type]
    db = ["--db", url]
    run_cli("db", "upgrade", *db)
    run_cli("registry", "import", str(directory / "apps.csv"), *db)
    run_cli("registry", "audit", *db)
    run_cli(
        "registry", "compare", *db, "--population", str(directory / "population.csv"),
        "--bank", str(directory / "bank.csv"),
    )  # fmt: skip
    assert f"registered {count}" in run_cli("registry", "register", *db)
    return recs


def _export(url: str, out: Path, batch: str) -> list[dict[str, str]]:
    run_cli("registry", "export-batch", "--db", url, "--out", str(out), "--batch", batch)
    with out.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _states(url: str) -> dict[str, str]:
    with connect(url) as db:
        return {a.card_no: a.state for a in store.select_apps(db)}


def _write_rejects(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


# -- item 6: prep rejects flow back to the registry --------------------------------------------


def test_prep_rejects_of_an_exported_batch_flow_back_to_the_registry(
    db_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    recs = _registered(db_url, tmp_path, 5)
    export = tmp_path / "B1.csv"
    rows = _export(db_url, export, "B1")
    dup_card = rows[3]["card_no"]
    # the registry refuses a PAN twice (issue 15): here the photo of record 3 (its own file)
    # goes missing after the export, so data preparation rejects line 5
    assert rows[3]["photo"].endswith("p0003.jpg")
    photo = Path(rows[3]["photo"])
    kept = photo.read_bytes()
    photo.unlink()
    rejects = tmp_path / "B1.rejects.csv"
    out = run_cli(
        "prep", str(export), "--profile", "ssc3-pboc", "--keys", str(KEYS), "--batch-id", "B1",
        "--out", str(tmp_path / "B1.perso"), "--rejects", str(rejects), code=1,
    )  # fmt: skip
    assert "prepared 4, rejected 1" in out
    (rej,) = read_prep_rejects(rejects)
    assert (rej.line, rej.field) == (5, "photo")
    assert all(s == "in_production" for s in _states(db_url).values()), "stuck before the fix"

    got = run_cli("registry", "import-rejects", str(rejects), "--batch", "B1", "--db", db_url)
    assert f"line 5: card {dup_card} {mask_id(recs[3]['ssn'])}: prep_rejected: photo:" in got
    assert "batch B1: 1 prep-rejected, 0 already recorded" in got
    assert recs[3]["ssn"] not in got and recs[3]["pan"] not in got
    states = _states(db_url)
    assert states.pop(dup_card) == "prep_rejected"
    assert set(states.values()) == {"in_production"}, "the prepared records stay in production"
    again = run_cli("registry", "import-rejects", str(rejects), "--batch", "B1", "--db", db_url)
    assert "batch B1: 0 prep-rejected, 1 already recorded" in again
    hist = run_cli("registry", "history", dup_card, "--db", db_url)
    last = hist.strip().splitlines()[-1]
    assert "prep_reject" in last and "prep_rejected" in last and "batch B1 line 5: photo:" in last
    stats = run_cli("registry", "stats", "--db", db_url)
    assert "prep_rejected          1" in stats and "in_production          4" in stats
    with connect(db_url) as db:
        (app,) = [a for a in store.select_apps(db) if a.card_no == dup_card]
        assert app.reason.startswith("rejected at data preparation: photo: ")

    # the centre acts: back in the queue once fixed, into the next batch, alone
    run_cli("registry", "export-batch", "--db", db_url, "--out", str(tmp_path / "x.csv"), code=2)
    photo.write_bytes(kept)
    requeued = run_cli(
        "registry", "requeue", dup_card, "--reason", "photo restored", "--db", db_url
    )
    assert f"card {dup_card}: registered (goes into the next export-batch)" in requeued
    err = run_cli("registry", "requeue", dup_card, "--reason", "twice", "--db", db_url, code=2)
    assert "'requeue' is not allowed in state 'registered'" in err
    (row,) = _export(db_url, tmp_path / "B2.csv", "B2")
    assert row["card_no"] == dup_card
    # importing B1's rejects again changes nothing: the reject is recorded once
    again = run_cli("registry", "import-rejects", str(rejects), "--batch", "B1", "--db", db_url)
    assert "batch B1: 0 prep-rejected, 1 already recorded" in again
    assert _states(db_url)[dup_card] == "in_production"


def test_rejects_of_another_batch_or_lines_without_a_record_change_nothing(
    db_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    recs = _registered(db_url, tmp_path, 3)
    _export(db_url, tmp_path / "B1.csv", "B1")
    wrong = _write_rejects(
        tmp_path / "wrong.csv",
        [
            {"line": 2, "field": "pan", "reason": "duplicate of line 9",
             "ssn_masked": mask_id(recs[1]["ssn"])},  # line 2 holds recs[0]
            {"line": 1, "field": "(row)", "reason": "header", "ssn_masked": ""},
            {"line": 9, "field": "pan", "reason": "x", "ssn_masked": ""},
        ],
    )  # fmt: skip
    out = run_cli("registry", "import-rejects", str(wrong), "--batch", "B1", "--db", db_url, code=1)
    assert "(the rejects of another batch?)" in out
    assert "line 1: no record of batch B1 is on this line (the header)" in out
    assert "line 9: no record of batch B1 is on this line" in out
    assert "0 prep-rejected, 0 already recorded, 3 problem(s)" in out
    assert set(_states(db_url).values()) == {"in_production"}
    out = run_cli("registry", "import-rejects", str(wrong), "--batch", "B9", "--db", db_url, code=2)
    assert "no batch B9 in the registry" in out


def test_a_reject_spanning_lines_rejects_every_record_it_covers(
    db_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    recs = _registered(db_url, tmp_path, 4)
    rows = _export(db_url, tmp_path / "B1.csv", "B1")
    # a stray quote on line 2 swallowed lines 2-4: prep rejects the range as one record
    rej = tmp_path / "rej.jsonl"
    rej.write_text(
        '{"line": 2, "end_line": 4, "field": "(record)", "reason": "record spans lines 2-4", '
        f'"ssn_masked": "{mask_id(recs[0]["ssn"])}"}}\n',
        encoding="utf-8",
    )
    out = run_cli("registry", "import-rejects", str(rej), "--batch", "B1", "--db", db_url)
    assert "3 prep-rejected, 0 already recorded" in out
    states = _states(db_url)
    assert [states[r["card_no"]] for r in rows] == ["prep_rejected"] * 3 + ["in_production"]


@pytest.mark.parametrize(
    "content, match",
    [
        ("line,field\n2,pan\n", r"r.csv is not a rejects file \(missing reason\)"),
        ("line,field,reason,ssn_masked\nx,pan,dup,\n", r"record 2, field 'line': is not a line"),
        ("line,field,reason,end_line\n5,pan,dup,3\n", r"field 'end_line': is before line"),
    ],
)
def test_a_bad_rejects_file_is_refused_with_one_line(
    tmp_path: Path, content: str, match: str
) -> None:
    path = tmp_path / "r.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        read_prep_rejects(path)


#: Back to a database of a cardperso before migration 4 (issue 15).
UNDO_MIGRATION_4 = (
    "DROP INDEX reg_cards_one_active_pan",
    "DROP INDEX reg_cards_chip",
    "ALTER TABLE reg_cards DROP COLUMN pan_clash",
    "ALTER TABLE reg_applications DROP COLUMN replaces",
    "DROP TABLE reg_old_chips",
    "DROP TABLE reg_bank_requests",
)
#: ... and before migration 5.
UNDO_MIGRATION_5 = (
    "DROP INDEX reg_applications_service_point",
    "DROP INDEX reg_applications_unit",
    *(
        f"ALTER TABLE reg_applications DROP COLUMN {c}"
        for c in (
            "service_point",
            "unit",
            "phone",
            "photo_source",
            "photo_receipt",
            "staff_confirmed",
            "applicant_confirmed",
        )
    ),
    "DROP TABLE reg_parties",
)
#: ... and before migration 6.
UNDO_MIGRATION_6 = (
    "DROP TABLE reg_notifications",
    "DROP TABLE reg_boxes",
    "DROP TABLE reg_box_cards",
    "ALTER TABLE reg_cards DROP COLUMN collected_by",
    "ALTER TABLE reg_cards DROP COLUMN agent_ssn",
    "ALTER TABLE reg_cards DROP COLUMN collected_at",
)


def test_batches_exported_before_the_line_records_get_them_at_upgrade(
    db_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    url = db_url
    _registered(url, tmp_path, 3)
    _export(url, tmp_path / "B1.csv", "B1")
    with connect(url) as db:
        recorded = db.execute("SELECT * FROM reg_batch_records ORDER BY line")
        # make it the database of a cardperso before migration 3
        db.execute("DROP TABLE reg_batch_records")
        for undo in UNDO_MIGRATION_6 + UNDO_MIGRATION_5 + UNDO_MIGRATION_4:
            db.execute(undo)
        db.execute("DELETE FROM schema_migrations WHERE version >= 3")
    run_cli("registry", "stats", "--db", url, code=2)  # behind: needs db upgrade
    with connect(url) as db:  # the line still feeds its results to a registry at version 2
        assert production.registry_present(db)
    upgraded = run_cli("db", "upgrade", "--db", url)
    assert all(f"applied migration {v}" in upgraded for v in (3, 4, 5, 6))
    with connect(url) as db:
        assert db.execute("SELECT * FROM reg_batch_records ORDER BY line") == recorded
    assert [r[1] for r in recorded] == [2, 3, 4]


def test_an_exported_value_with_a_line_break_spans_the_lines_it_takes() -> None:
    app = store.Application(
        1, "110101199001010014", "张\n三", "1", "01", "19900101", "110101", "110101",
        "", "", "", "", {}, "batch", "20260101", "registered", card_no="X00000019",
    )  # fmt: skip
    other = store.Application(
        2, "110101199001010030", "李四", "1", "01", "19900101", "110101", "110101",
        "", "", "", "", {}, "batch", "20260101", "registered", card_no="X00000027",
    )  # fmt: skip
    day = datetime.date(2026, 1, 1)
    buf = io.StringIO()
    spans = production._write_export(buf, [app, other, app], day, day, False)
    assert spans == [(2, 3), (4, 4), (5, 6)]
    assert buf.getvalue().count("\n") == 6


# -- items 3, 4, 12: registry output files -----------------------------------------------------


def test_import_rejects_over_its_own_input_is_refused_before_anything_is_accepted(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "r.db")
    run_cli("db", "upgrade", "--db", url)
    _applications(tmp_path, 2)
    apps = tmp_path / "apps.csv"
    before = apps.read_bytes()
    out = run_cli("registry", "import", str(apps), "--rejects", str(apps), "--db", url, code=2)
    assert "error: --rejects is the same file as APPLICATIONS_FILE" in out
    out = run_cli("registry", "import", str(apps), "--rejects", url, "--db", url, code=2)
    assert "error: --rejects is the same file as --db" in out
    missing = tmp_path / "no" / "rej.csv"
    out = run_cli("registry", "import", str(apps), "--rejects", str(missing), "--db", url, code=2)
    assert "error: --rejects: directory" in out and "does not exist" in out
    assert apps.read_bytes() == before
    assert _states(url) == {}, "nothing accepted"


def test_registry_exports_never_overwrite_the_database(tmp_path: Path) -> None:
    url = str(tmp_path / "r.db")
    _registered(url, tmp_path, 2)
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "r.db")
    for target in (url, str(link), f"{tmp_path}/./r.db"):
        out = run_cli("registry", "export-batch", "--db", url, "--out", target, code=2)
        assert "error: --out is the same file as --db" in out
    out = run_cli(
        "registry", "report", "return-file", "--batch", "B1", "--out", url, "--db", url, code=2
    )
    assert "error: --out is the same file as --db" in out
    assert set(_states(url).values()) == {"registered"}, "nothing moved"
    out = run_cli("registry", "export-batch", "--db", url, "--out", str(tmp_path), code=2)
    assert "is a directory" in out


def test_a_failed_export_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    url = str(tmp_path / "r.db")
    _registered(url, tmp_path, 2)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "batch.csv"
    target.write_text("the previous batch\n", encoding="utf-8")
    with connect(url) as db:
        db.execute(
            "INSERT INTO reg_batches (batch_no, kind, profile, records, created_at) "
            "VALUES ('B1', 'standard', 'ssc3-pboc', 0, 0)"
        )
    out = run_cli("registry", "export-batch", "--db", url, "--out", str(target), "--batch", "B1",
                  code=2)  # fmt: skip
    assert "batch B1 exists already" in out
    assert target.read_text(encoding="utf-8") == "the previous batch\n"
    assert sorted(p.name for p in out_dir.iterdir()) == ["batch.csv"]
    assert set(_states(url).values()) == {"registered"}


HOSTILE_NAME = "=SUM(1+1)*cmd|' /C calc'!A0"  # the validator refuses a double quote


def test_return_file_cells_are_spreadsheet_safe_and_the_database_keeps_the_raw_value(
    tmp_path: Path, umask022: None
) -> None:
    url = str(tmp_path / "r.db")
    recs = _registered(url, tmp_path, 3, name=HOSTILE_NAME)
    rows = _export(url, tmp_path / "B1.csv", "B1")
    # data preparation's input is a file for a program: the raw name (it goes on the card)
    assert rows[0]["name"] == HOSTILE_NAME
    results = tmp_path / "results.csv"
    with results.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["card_no", "outcome", "chip_serial", "atr", "card_id_code"])
        for i, r in enumerate(rows):
            w.writerow([r["card_no"], "produced", f"{0xA0000000 + i:08X}", "3B8F", "-1"])
    run_cli("registry", "import-results", str(results), "--db", url)
    ret = tmp_path / "return.csv"
    run_cli("registry", "report", "return-file", "--batch", "B1", "--out", str(ret), "--db", url)
    assert _mode(ret) == 0o600
    with ret.open(encoding="utf-8", newline="") as fh:
        back = {r["card_no"]: r for r in csv.DictReader(fh)}
    first = back[rows[0]["card_no"]]
    assert first["name"] == "'" + HOSTILE_NAME
    assert first["card_id_code"] == "'-1", "every cell of a file for people"
    assert back[rows[1]["card_no"]]["name"] == recs[1]["name"], "ordinary names unchanged"
    with connect(url) as db:
        assert db.execute("SELECT name FROM reg_applications WHERE ssn = ?", (recs[0]["ssn"],)) == [
            (HOSTILE_NAME,)
        ]
    assert not list(tmp_path.glob(".return.csv.*")), "no temporary left behind"


@pytest.mark.parametrize(
    "raw, cell",
    [
        ("=1+1", "'=1+1"), ("+86 10 1234", "'+86 10 1234"), ("-5", "'-5"), ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("＝1+1", "'＝1+1"), ("'=1", "''=1"), ("''=1", "'''=1"),
        ("张三", "张三"), ("a=b", "a=b"), ("'quoted", "'quoted"), ("", ""),
    ],
)  # fmt: skip
def test_safe_cell_follows_the_owasp_rule(raw: str, cell: str) -> None:
    assert safe_cell(raw) == cell
    assert unsafe_cell(cell) == raw


@given(st.text(max_size=20))
def test_safe_cell_never_starts_a_formula_and_round_trips(raw: str) -> None:
    cell = safe_cell(raw)
    assert cell[:1] not in FORMULA_START
    assert unsafe_cell(cell) == raw
    assert safe_row([raw, None, 7]) == [cell, "", "7"]


# -- item 9's class in the registry commands: hostile files end in one line --------------------

LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from cardperso.cli.main import main
sys.argv = ["cardperso", *sys.argv[1:]]
main()
"""


def _limited(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess under a 1 GiB address-space limit (a regression fails, it does
    not take the machine down); a timeout turns a hang into a failure."""
    return subprocess.run(
        [sys.executable, "-c", LIMITED, *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "CARDPERSO_DB": str(cwd / "r.db")},
    )  # fmt: skip


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    run_cli("db", "upgrade", "--db", str(tmp_path / "r.db"))
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "bigfield.csv").write_text(
        "card_no,outcome,chip_serial,atr,card_id_code\n" + "9" * 300_000 + ",produced,,,\n"
    )
    (tmp_path / "latin1.csv").write_bytes(b"card_no,status,reason\n\xff\xfe,opened,\n")
    return tmp_path


HOSTILE_RUNS = [
    (("registry", "import-results", "/dev/zero"), "error: field 'results': zero is not a regular file"),
    (("registry", "import-results", "fifo"), "error: field 'results': fifo is not a regular file"),
    (("registry", "import-results", "bigfield.csv"), "error: record 2, field 'results': bigfield.csv: field larger than field limit"),
    (("registry", "accounts", "/dev/zero"), "error: field 'accounts': zero is not a regular file"),
    (("registry", "accounts", "latin1.csv"), "error: field 'accounts': latin1.csv is not UTF-8 text"),
    (("registry", "compare", "--population", "/dev/zero"), "error: field 'population': zero is not a regular file"),
    (("registry", "compare", "--population", "fifo"), "error: field 'population': fifo is not a regular file"),
    (("registry", "stats", "--calendar", "/dev/zero"), "error: field 'calendar': zero is not a regular file"),
    (("registry", "overdue", "--calendar", "latin1.csv"), "error: field 'calendar': latin1.csv is not UTF-8 text"),
    (("registry", "import", "fifo"), "error: field 'applications': fifo is not a regular file"),
    (("registry", "import", "/dev/zero"), "error: field 'applications': zero is not a regular file"),
    (("registry", "import-rejects", "/dev/zero", "--batch", "B1"), "error: field 'rejects': zero is not a regular file"),
    (("registry", "import-rejects", "fifo", "--batch", "B1"), "error: field 'rejects': fifo is not a regular file"),
    (("registry", "export-batch", "--out", "b.csv", "--validity-years", "100000000000"), "error: --validity-years must be 1 to 99, not 100000000000"),
    (("registry", "export-batch", "--out", "b.csv", "--issue-date", "9999-12-31"), "error: --issue-date 9999-12-31: the expiry date is past year 9999"),
]  # fmt: skip


@pytest.mark.parametrize(
    "args, message", HOSTILE_RUNS, ids=lambda a: " ".join(a[:2]) if isinstance(a, tuple) else ""
)
def test_hostile_registry_input_ends_in_one_line(
    hostile: Path, args: tuple[str, ...], message: str
) -> None:
    done = _limited(hostile, *args)
    assert "Traceback" not in done.stderr
    assert done.returncode in (1, 2), done.stderr
    assert done.stderr.strip().splitlines() == [message + done.stderr.strip()[len(message) :]]
    assert done.stderr.startswith(message), done.stderr


def test_a_results_file_written_spreadsheet_safe_reads_back_raw(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text(
        "card_no,outcome,chip_serial,atr,card_id_code,pan_masked,reject_reason\n"
        "SZ0000019,rejected,,3B8F,,,'-6A82 file not found\n",
        encoding="utf-8",
    )
    (got,) = production.read_results_file(path)
    assert (got.card_no, got.outcome, got.reason) == (
        "SZ0000019",
        "rejected",
        "-6A82 file not found",
    )


def test_a_prep_rejected_temporary_card_goes_back_to_account_failed_and_any_can_be_cancelled(
    db_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    recs = _registered(db_url, tmp_path, 3)
    rows = _export(db_url, tmp_path / "B1.csv", "B1")
    results = tmp_path / "results.csv"
    with results.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["card_no", "outcome", "chip_serial", "atr", "card_id_code"])
        for i, r in enumerate(rows):
            w.writerow([r["card_no"], "produced", f"{0xA0000000 + i:08X}", "3B8F", "X"])
    run_cli("registry", "import-results", str(results), "--db", db_url)
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "card_no,status,reason\n" + "".join(f"{r['card_no']},failed,blocked\n" for r in rows[:2]),
        encoding="utf-8",
    )
    run_cli("registry", "accounts", str(answers), "--db", db_url)
    run_cli(
        "registry", "export-batch", "--db", db_url, "--out", str(tmp_path / "T1.csv"),
        "--temporary", "--batch", "T1",
    )  # fmt: skip
    rej = _write_rejects(
        tmp_path / "T1.rejects.csv",
        [
            {"line": n, "field": "photo", "reason": "file not found",
             "ssn_masked": mask_id(recs[n - 2]["ssn"])}
            for n in (2, 3)
        ],
    )  # fmt: skip
    out = run_cli("registry", "import-rejects", str(rej), "--batch", "T1", "--db", db_url)
    assert "2 prep-rejected" in out
    first, second = rows[0]["card_no"], rows[1]["card_no"]
    out = run_cli("registry", "requeue", first, "--reason", "photo restored", "--db", db_url)
    assert f"card {first}: account_failed (goes into the next export-batch --temporary)" in out
    assert "cancelled (withdrawn)" in run_cli(
        "registry", "cancel", second, "--reason", "withdrawn", "--db", db_url
    )
    states = _states(db_url)
    assert (states[first], states[second], states[rows[2]["card_no"]]) == (
        "account_failed", "cancelled", "personalized",
    )  # fmt: skip


def test_a_negative_limit_is_refused_not_taken_as_all_but_the_last(tmp_path: Path) -> None:
    url = str(tmp_path / "r.db")
    _registered(url, tmp_path, 2)
    out = run_cli("registry", "export-batch", "--db", url, "--out", str(tmp_path / "b.csv"),
                  "--limit", "-1", code=2)  # fmt: skip
    assert "Invalid value for '--limit': -1 is not in the range x>=1" in out
    assert set(_states(url).values()) == {"registered"}
