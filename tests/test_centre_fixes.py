# ruff: noqa: F811 - pytest fixtures imported from test_registry are parameters here
"""Issue 15, "wrong today": unique active PANs, idempotent bank answers, impossible collection
dates, bank refusals fed back, old chips destroyed, lost cards (suspend / restore / re-issue
with the link and the bank's block requests), and quiet broken pipes. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cardperso.profiles.loader import load_profile
from cardperso.registry import cards, lost, store
from cardperso.registry.applications import audit, compare, import_applications
from cardperso.storage.db import Database, connect
from test_integrity_registry import _applications, _export, _registered, _states
from test_registry import (  # the registry tests' fixtures and helpers
    ACTOR,
    APP_COLUMNS,
    _fake_line_results,
    db,  # noqa: F401 - fixture
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    run_cli,
    write_extracts,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def _personalized(url: str, tmp_path: Path, count: int, batch: str = "B1") -> list[dict[str, str]]:
    """``count`` applications registered, exported and made by the line: personalized."""
    _registered(url, tmp_path, count)
    rows = _export(url, tmp_path / f"{batch}.csv", batch)
    _fake_line_results(tmp_path / f"{batch}.csv", tmp_path / f"{batch}.results.csv")
    run_cli("registry", "import-results", str(tmp_path / f"{batch}.results.csv"), "--db", url)
    return rows


def _answers(
    path: Path, rows: list[tuple[str, ...]], header: str = "card_no,status,reason"
) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header.split(","))
        w.writerows(rows)
    return path


def _issued(url: str, tmp_path: Path, count: int) -> list[dict[str, str]]:
    rows = _personalized(url, tmp_path, count)
    _answers(tmp_path / "acc.csv", [(r["card_no"], "opened", "") for r in rows])
    run_cli("registry", "accounts", str(tmp_path / "acc.csv"), "--db", url)
    run_cli("registry", "notify", "--db", url, "--date", "2026-02-01")
    for r in rows:
        run_cli("registry", "issue", r["card_no"], "--to", "holder", "--date", "2026-02-02",
                "--db", url)  # fmt: skip
    return rows


# -- PANs ----------------------------------------------------------------------------------------


def test_the_same_pan_twice_in_one_import_file_is_refused(db_url: str, tmp_path: Path) -> None:
    recs = _applications(tmp_path, 5, same_pan=(1, 3))
    run_cli("db", "upgrade", "--db", db_url)
    out = run_cli("registry", "import", str(tmp_path / "apps.csv"), "--db", db_url, code=1)
    assert "line 5: pan: same bank card number as line 3" in out
    assert "read 5, accepted 4, rejected 1" in out
    assert recs[3]["pan"] not in out


def test_a_pan_on_another_persons_active_card_is_refused_at_import(
    db_url: str, tmp_path: Path
) -> None:
    rows = _registered(db_url, tmp_path / "a", 2)
    with connect(db_url) as db:
        first_card = next(a.card_no for a in store.select_apps(db) if a.pan == rows[0]["pan"])
    # another person (a record of another seed) applies with the first person's PAN
    other = _applications(tmp_path / "b", 3)
    other = [dict(r, pan=rows[0]["pan"]) if i == 2 else r for i, r in enumerate(other)]
    with (tmp_path / "b" / "apps.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(APP_COLUMNS)
        w.writerows([[r[c] for c in APP_COLUMNS] for r in other[2:]])
    out = run_cli("registry", "import", str(tmp_path / "b" / "apps.csv"), "--db", db_url, code=1)
    assert f"pan: is the bank card number of another person's active card {first_card}" in out
    assert rows[0]["pan"] not in out


def test_the_database_keeps_one_active_card_per_pan(db: Database, tmp_path: Path) -> None:
    profile = load_profile("ssc3-pboc")
    recs = _applications(tmp_path, 2)
    import_applications(db, tmp_path / "apps.csv", profile, actor=ACTOR)
    audit(db, profile, actor=ACTOR)
    compare(db, tmp_path / "population.csv", tmp_path / "bank.csv", actor=ACTOR)
    cards.register(db, actor=ACTOR)
    with pytest.raises(Exception) as exc:
        db.execute("UPDATE reg_cards SET pan = ? WHERE ssn = ?", (recs[0]["pan"], recs[1]["ssn"]))
    assert store.is_integrity_error(exc.value)


def test_compare_and_register_refuse_a_pan_that_another_person_holds(
    db: Database,
    tmp_path: Path,
) -> None:
    profile = load_profile("ssc3-pboc")
    recs = _applications(tmp_path, 4)
    import_applications(db, tmp_path / "apps.csv", profile, actor=ACTOR)
    audit(db, profile, actor=ACTOR)
    apps = store.select_apps(db)
    # the applications already carried the same PAN when they were made (before issue 15)
    db.execute("UPDATE reg_applications SET pan = ? WHERE id = ?", (recs[0]["pan"], apps[1].id))
    write_extracts(tmp_path, [dict(r, pan=recs[0]["pan"]) if i == 1 else r
                              for i, r in enumerate(recs)])  # fmt: skip
    out = compare(db, tmp_path / "population.csv", tmp_path / "bank.csv", actor=ACTOR)
    assert [o.state for o in out] == ["compared", "returned", "compared", "compared"]
    assert out[1].reason == (
        f"bank card number: another person's application {apps[0].id} has the same one"
    )
    # registration: a compared application whose PAN another person's active card took since
    cards.register(db, actor=ACTOR, limit=1)
    db.execute("UPDATE reg_applications SET pan = ? WHERE id = ?", (recs[0]["pan"], apps[2].id))
    got = cards.register(db, actor=ACTOR)
    first_card = store.select_apps(db, "id = ?", (apps[0].id,))[0].card_no
    assert [(r.app_id, r.problem) for r in got if r.problem] == [
        (apps[2].id, f"bank card number is on another person's active card {first_card}")
    ]
    assert store.select_apps(db, "id = ?", (apps[2].id,))[0].state == "compared"


def test_migration_4_marks_cards_that_already_shared_a_pan(db_url: str, tmp_path: Path) -> None:
    from test_integrity_registry import UNDO_MIGRATION_4

    _registered(db_url, tmp_path, 3)
    with connect(db_url) as db:
        for undo in UNDO_MIGRATION_4:
            db.execute(undo)
        db.execute("DELETE FROM schema_migrations WHERE version = 4")
        nos = sorted(str(n) for (n,) in db.execute("SELECT card_no FROM reg_cards"))
        db.execute("UPDATE reg_cards SET pan = (SELECT pan FROM reg_cards WHERE card_no = ?)",
                   (nos[0],))  # fmt: skip
    assert "applied migration 4" in run_cli("db", "upgrade", "--db", db_url)
    with connect(db_url) as db:
        marks = dict(db.execute("SELECT card_no, pan_clash FROM reg_cards"))
    assert marks == {nos[0]: None, nos[1]: nos[0], nos[2]: nos[0]}


# -- the bank's answers ------------------------------------------------------------------------


def test_accounts_twice_is_already_recorded_and_a_contradiction_is_refused(
    db_url: str, tmp_path: Path
) -> None:
    rows = _personalized(db_url, tmp_path, 4)
    nos = [r["card_no"] for r in rows]
    answers = _answers(
        tmp_path / "acc.csv",
        [(nos[0], "opened", ""), (nos[1], "opened", ""), (nos[2], "opened", ""),
         (nos[3], "failed", "id card expired")],
    )  # fmt: skip
    out = run_cli("registry", "accounts", str(answers), "--db", db_url)
    assert "accounts opened 3, failed 1, 0 already recorded" in out
    again = run_cli("registry", "accounts", str(answers), "--db", db_url)
    assert "accounts opened 0, failed 0, 4 already recorded" in again
    contra = _answers(tmp_path / "contra.csv", [(nos[3], "opened", "")])
    err = run_cli("registry", "accounts", str(contra), "--db", db_url, code=1)
    assert f"line 2: card {nos[3]}: the bank answered failed before" in err
    assert _states(db_url)[nos[3]] == "account_failed"


def test_an_opened_account_whose_pan_is_on_another_card_is_refused(
    db_url: str, tmp_path: Path
) -> None:
    rows = _personalized(db_url, tmp_path, 2)
    answers = _answers(
        tmp_path / "acc.csv",
        [(rows[0]["card_no"], "opened", "", rows[1]["pan"])],
        header="card_no,status,reason,pan",
    )
    err = run_cli("registry", "accounts", str(answers), "--db", db_url, code=1)
    assert "the bank's card number differs from the registry's" in err
    assert rows[1]["pan"] not in err
    assert _states(db_url)[rows[0]["card_no"]] == "personalized"


def test_the_bank_stages_no_account_and_failures_are_fed_back_by_chip(
    db_url: str, tmp_path: Path
) -> None:
    rows = _personalized(db_url, tmp_path, 3)
    results = list(csv.DictReader((tmp_path / "B1.results.csv").open(encoding="utf-8")))
    serial = {r["card_no"]: r["chip_serial"] for r in results}
    # cardperso bank personalize --out: no_account rows know the chip only
    header = "line,chip_serial,card_id,pan,ssn,card_no,outcome,reason"
    acc = _answers(
        tmp_path / "bank-out.csv",
        [
            ("2", serial[rows[0]["card_no"]], "", rows[0]["pan"], rows[0]["ssn"],
             rows[0]["card_no"], "account_opened", ""),
            ("", serial[rows[1]["card_no"]], "", "", "", "", "no_account", "no input row"),
            ("4", serial[rows[2]["card_no"]], "", "", "", rows[2]["card_no"], "card_error", "x"),
        ],
        header=header,
    )  # fmt: skip
    out = run_cli("registry", "accounts", str(acc), "--db", db_url)
    assert "accounts opened 1, failed 1, 0 already recorded, 1 not finished" in out
    states = _states(db_url)
    assert states[rows[1]["card_no"]] == "account_failed"
    assert states[rows[2]["card_no"]] == "personalized"
    with connect(db_url) as db:
        app = store.app_by_card(db, rows[1]["card_no"])
    assert app.reason == "no account data at the bank: no input row"
    again = run_cli("registry", "accounts", str(acc), "--db", db_url)
    assert "accounts opened 0, failed 0, 2 already recorded" in again


def test_a_temporary_card_marks_the_old_debit_chip_destroyed(db_url: str, tmp_path: Path) -> None:
    rows = _personalized(db_url, tmp_path, 2)
    results = list(csv.DictReader((tmp_path / "B1.results.csv").open(encoding="utf-8")))
    no = rows[1]["card_no"]
    old_serial = next(r["chip_serial"] for r in results if r["card_no"] == no)
    _answers(tmp_path / "acc.csv", [(no, "failed", "refused")])
    run_cli("registry", "accounts", str(tmp_path / "acc.csv"), "--db", db_url)
    run_cli("registry", "export-batch", "--db", db_url, "--out", str(tmp_path / "t.csv"),
            "--temporary", "--batch", "T1")  # fmt: skip
    with connect(db_url) as db:
        chips = db.execute("SELECT card_no, chip_serial, profile, reason FROM reg_old_chips")
        last = store.history(db, store.app_by_card(db, no).id)[-1]
    assert chips == [
        (no, old_serial, "ssc3-pboc",
         "destroyed: holds the debit application, card re-made as a temporary card")
    ]  # fmt: skip
    assert last.event == "export_temporary" and "marked destroyed" in last.detail


# -- collection dates ----------------------------------------------------------------------------


def test_a_collection_date_before_notification_or_in_the_future_is_refused(
    db_url: str, tmp_path: Path
) -> None:
    rows = _personalized(db_url, tmp_path, 1)
    no = rows[0]["card_no"]
    _answers(tmp_path / "acc.csv", [(no, "opened", "")])
    run_cli("registry", "accounts", str(tmp_path / "acc.csv"), "--db", db_url)
    run_cli("registry", "notify", "--db", db_url, "--date", "2026-02-10")
    err = run_cli("registry", "issue", no, "--to", "x", "--date", "2026-02-09", "--db", db_url,
                  code=1)  # fmt: skip
    assert (
        f"error: record card {no}, field 'date': 2026-02-09 is before the card was ready "
        "(notified 2026-02-10)"
    ) in err
    future = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    err = run_cli("registry", "issue", no, "--to", "x", "--date", future, "--db", db_url, code=1)
    assert f"field 'date': {future} is in the future" in err
    assert _states(db_url)[no] == "ready_for_collection"
    run_cli("registry", "issue", no, "--to", "x", "--date", "2026-02-10", "--db", db_url)
    assert _states(db_url)[no] == "issued"


# -- lost cards ------------------------------------------------------------------------------------


def test_lost_suspended_restored_lost_again_and_reissued_with_the_link(
    db_url: str, tmp_path: Path
) -> None:
    rows = _issued(db_url, tmp_path, 2)
    no = rows[0]["card_no"]
    url = ["--db", db_url]
    assert "suspended; bank block request queued" in run_cli("registry", "suspend", no, *url)
    assert _states(db_url)[no] == "suspended"
    assert "issued again; bank unblock request queued" in run_cli("registry", "restore", no, *url)
    run_cli("registry", "suspend", no, "--reason", "lost again", *url)
    err = run_cli("registry", "reissue", rows[1]["card_no"], *url, code=2)
    assert "is issued: report it lost first" in err
    out = run_cli("registry", "reissue", no, "--date", "2026-03-01", *url)
    new_id = int(out.split("application ")[1].split()[0])
    assert _states(db_url)[no] == "cancelled"
    # the new application goes through audit and comparison again, then registration links it
    run_cli("registry", "audit", *url)
    write_extracts(tmp_path, [next(r for r in _rows_of(tmp_path) if r["ssn"] == rows[0]["ssn"])])
    run_cli("registry", "compare", *url, "--population", str(tmp_path / "population.csv"),
            "--bank", str(tmp_path / "bank.csv"))  # fmt: skip
    reg = run_cli("registry", "register", *url)
    assert f"replaces lost card {no}" in reg
    with connect(db_url) as db:
        new = store.select_apps(db, "id = ?", (new_id,))[0]
        (replaced_by,) = db.execute("SELECT replaced_by FROM reg_cards WHERE card_no = ?", (no,))[0]
        assert (new.application_type, new.accepted_date) == ("sporadic", "20260301")
    assert replaced_by == new.card_no and new.card_no != no
    # the bank's requests: block, unblock, block (the re-issue adds none: already blocked)
    req = tmp_path / "requests.csv"
    assert "3 bank request(s)" in run_cli("registry", "report", "bank-requests", "--out", str(req),
                                          *url)  # fmt: skip
    got = list(csv.DictReader(req.open(encoding="utf-8")))
    assert [(r["request"], r["card_no"], r["pan"]) for r in got] == [
        ("block", no, rows[0]["pan"]), ("unblock", no, rows[0]["pan"]),
        ("block", no, rows[0]["pan"]),
    ]  # fmt: skip
    assert oct(req.stat().st_mode & 0o777) == "0o600"
    again = run_cli("registry", "report", "bank-requests", "--out", str(tmp_path / "r2.csv"), *url)
    assert "no bank request waiting" in again and not (tmp_path / "r2.csv").exists()


def _rows_of(directory: Path) -> list[dict[str, str]]:
    with (directory / "apps.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_card_cancelled_as_lost_is_linked_to_the_card_of_the_next_application(
    db_url: str, tmp_path: Path
) -> None:
    rows = _issued(db_url, tmp_path, 1)
    no = rows[0]["card_no"]
    out = run_cli("registry", "cancel", no, "--reason", "lost", "--db", db_url)
    assert "bank block request queued" in out
    apps = _rows_of(tmp_path)
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "photos").symlink_to(tmp_path / "photos")
    with (tmp_path / "again" / "apps.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(APP_COLUMNS)
        w.writerow([dict(apps[0], accepted_date="20260301")[c] for c in APP_COLUMNS])
    write_extracts(tmp_path / "again", [apps[0]])
    url = ["--db", db_url]
    run_cli("registry", "import", str(tmp_path / "again" / "apps.csv"), *url)
    run_cli("registry", "audit", *url)
    run_cli("registry", "compare", *url, "--population", str(tmp_path / "again" / "population.csv"),
            "--bank", str(tmp_path / "again" / "bank.csv"))  # fmt: skip
    assert f"replaces lost card {no}" in run_cli("registry", "register", *url)
    with connect(db_url) as db:
        (by,) = db.execute("SELECT replaced_by FROM reg_cards WHERE card_no = ?", (no,))[0]
        new = [a for a in store.select_apps(db) if a.state == "registered"]
    assert [a.card_no for a in new] == [by]


def test_a_duplicate_cancelled_at_registration_gets_a_bank_block_request(
    db_url: str, tmp_path: Path
) -> None:
    rows = _issued(db_url, tmp_path, 1)
    apps = _rows_of(tmp_path)
    (tmp_path / "dup").mkdir()
    (tmp_path / "dup" / "photos").symlink_to(tmp_path / "photos")
    with (tmp_path / "dup" / "apps.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(APP_COLUMNS)
        w.writerow([dict(apps[0], accepted_date="20260301")[c] for c in APP_COLUMNS])
    write_extracts(tmp_path / "dup", [apps[0]])
    url = ["--db", db_url]
    run_cli("registry", "import", str(tmp_path / "dup" / "apps.csv"), *url)
    run_cli("registry", "audit", *url)
    run_cli("registry", "compare", *url, "--population", str(tmp_path / "dup" / "population.csv"),
            "--bank", str(tmp_path / "dup" / "bank.csv"))  # fmt: skip
    assert "duplicates cancelled 1" in run_cli("registry", "register", *url)
    with connect(db_url) as db:
        reqs = lost.pending_requests(db, rows[0]["card_no"])
    assert [(k, sent) for _, k, _, sent in reqs] == [("block", False)]
    assert reqs[0][2].startswith("duplicate: replaced by card ")


# -- broken pipes ----------------------------------------------------------------------------------


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """`cardperso registry overdue | head -1`: exit 0, nothing on stderr (not `Broken pipe`)."""
    url = str(tmp_path / "r.db")
    _applications(tmp_path, 900)
    run_cli("db", "upgrade", "--db", url)
    run_cli("registry", "import", str(tmp_path / "apps.csv"), "--db", url)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardperso", "registry", "overdue", "--db", url,
         "--as-of", "2027-01-01"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like head: one line, then gone
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith(b"  LATE") and err == b""


def test_a_chip_is_one_card_and_a_destroyed_chip_never_comes_back(
    db_url: str, tmp_path: Path
) -> None:
    rows = _personalized(db_url, tmp_path, 2)
    results = list(csv.DictReader((tmp_path / "B1.results.csv").open(encoding="utf-8")))
    serial = {r["card_no"]: r["chip_serial"] for r in results}
    no = rows[1]["card_no"]
    _answers(tmp_path / "acc.csv", [(no, "failed", "refused")])
    run_cli("registry", "accounts", str(tmp_path / "acc.csv"), "--db", db_url)
    run_cli("registry", "export-batch", "--db", db_url, "--out", str(tmp_path / "t.csv"),
            "--temporary", "--batch", "T1")  # fmt: skip
    # the line reports the temporary card made on the other card's chip, then on its own old one
    for chip, why in (
        (serial[rows[0]["card_no"]], f"is already card {rows[0]['card_no']}'s"),
        (serial[no], "was recorded destroyed"),
    ):
        res = tmp_path / "t.results.csv"
        _fake_line_results(tmp_path / "t.csv", res)
        text = res.read_text(encoding="utf-8").replace("A0000000", chip)
        res.write_text(text, encoding="utf-8")
        err = run_cli("registry", "import-results", str(res), "--db", db_url, code=1)
        assert f"card {no}: chip {chip} {why}" in err
    assert _states(db_url)[no] == "in_production"


def test_the_bank_stages_registry_hook_feeds_back_no_account_chips(
    db_url: str, tmp_path: Path
) -> None:
    from cardperso.bank.registry_link import RegistryRecorder

    rows = _personalized(db_url, tmp_path, 2)
    results = list(csv.DictReader((tmp_path / "B1.results.csv").open(encoding="utf-8")))
    serial = {r["card_no"]: r["chip_serial"] for r in results}
    with connect(db_url) as db:
        hook = RegistryRecorder(db, "bank@test")
        hook.on_card(bytes.fromhex(serial[rows[0]["card_no"]]), "no_account", "no input row")
        hook.on_card(bytes.fromhex(serial[rows[1]["card_no"]]), "card_error", "card removed")
        hook.on_card(bytes.fromhex("DEADBEEF"), "no_account", "no input row")
        assert hook.failed == 1
        assert hook.problems == ["chip DEADBEEF: not in the registry"]
        app = store.app_by_card(db, rows[0]["card_no"])
    assert (app.state, app.reason) == (
        "account_failed",
        "no account data at the bank: no input row",
    )
    assert _states(db_url)[rows[1]["card_no"]] == "personalized"


def test_a_withdrawn_card_can_ask_the_bank_to_close_its_account(
    db_url: str, tmp_path: Path
) -> None:
    rows = _issued(db_url, tmp_path, 2)
    out = run_cli("registry", "cancel", rows[0]["card_no"], "--reason", "withdrawn",
                  "--close-account", "--db", db_url)  # fmt: skip
    assert "bank close request queued" in out
    out = run_cli("registry", "cancel", rows[1]["card_no"], "--reason", "lost", "--db", db_url)
    assert "bank block request queued" in out
    req = tmp_path / "req.csv"
    run_cli("registry", "report", "bank-requests", "--out", str(req), "--db", db_url)
    got = [(r["request"], r["card_no"], r["reason"]) for r in csv.DictReader(req.open())]
    assert got == [
        ("close", rows[0]["card_no"], "cancelled: withdrawn"),
        ("block", rows[1]["card_no"], "cancelled: lost"),
    ]
