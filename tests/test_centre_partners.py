# ruff: noqa: F811 - pytest fixtures imported from test_registry are parameters here
"""Issue 15, files to and from the partners: comparison requests and their answers (read
twice: idempotent), returned-to-unit files naming the field and not the value, the bank's
account-opening data (read back by the bank stage's own reader), the return file with the
failed cards, and the portable batch archive. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

from cardperso.bank.accounts import read_accounts
from cardperso.bank.twostage import load_two_stage
from cardperso.prep.pipeline import validate_only
from cardperso.profiles.loader import load_profile
from cardperso.registry.partners import fields_of
from test_centre_acceptance import GOOD, setup_lists, write_centre_apps
from test_centre_fixes import _personalized
from test_integrity_registry import _applications
from test_registry import (  # the registry tests' fixtures and helpers
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    run_cli,
    write_extracts,
)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_comparison_requests_answers_and_returned_files_per_unit(
    db_url: str, tmp_path: Path
) -> None:
    recs = _applications(tmp_path, 4)
    setup_lists(db_url, [])
    units = ["U1001", "U1001", "U1002", ""]
    extra = [dict(GOOD, unit=u) for u in units]
    db = ["--db", db_url]
    run_cli("registry", "import", str(write_centre_apps(tmp_path, recs, extra)), *db)
    run_cli("registry", "audit", *db)
    pop = tmp_path / "to-population.csv"
    assert "4 application(s)" in run_cli(
        "registry", "partner", "compare-request", "--to", "population", "--out", str(pop), *db
    )
    got = _read(pop)
    assert list(got[0]) == ["request_id", "ssn", "name", "gender", "birth_date"]
    assert [(r["request_id"], r["ssn"], r["name"]) for r in got] == [
        (str(i + 1), r["ssn"], r["name"]) for i, r in enumerate(recs)
    ]
    bank = tmp_path / "to-bank.csv"
    run_cli("registry", "partner", "compare-request", "--to", "bank", "--out", str(bank), *db)
    assert [r["pan"] for r in _read(bank)] == [r["pan"] for r in recs]
    # the answers: person 0's name differs at the population database, person 3 has no account
    write_extracts(tmp_path, recs, wrong_name=0, no_bank=3)
    answer = [
        "--population",
        str(tmp_path / "population.csv"),
        "--bank",
        str(tmp_path / "bank.csv"),
    ]
    assert "compared 2, returned 2" in run_cli("registry", "compare", *db, *answer)
    assert "compared 0, returned 0" in run_cli("registry", "compare", *db, *answer)  # idempotent
    out = run_cli("registry", "partner", "returned", "--out-dir", str(tmp_path), *db)
    assert "2 returned application(s) in 2 file(s)" in out
    u1 = _read(tmp_path / "returned-U1001.csv")
    assert [(r["application_id"], r["fields"]) for r in u1] == [("1", "name")]
    assert u1[0]["reason"] == "name differs from the population database"
    text = (tmp_path / "returned-U1001.csv").read_text(encoding="utf-8")
    assert recs[0]["name"] + "错" not in text, "the population database's value is not shown"
    walk_in = _read(tmp_path / "returned-walk-in.csv")
    assert [(r["application_id"], r["fields"]) for r in walk_in] == [("4", "bank_code")]
    assert not (tmp_path / "returned-U1002.csv").exists()
    assert oct((tmp_path / "returned-U1001.csv").stat().st_mode & 0o777) == "0o600"
    err = run_cli("registry", "partner", "compare-request", "--to", "bank", "--out",
                  str(tmp_path / "none.csv"), *db, code=2)  # fmt: skip
    assert "no audited application to compare" in err


def test_the_fields_a_reason_names() -> None:
    reason = (
        "identity number not found in the population database; gender differs from the "
        "population database; bank card number differs from the bank's data; bank differs "
        "from the bank's data"
    )
    assert fields_of(reason) == ["ssn", "gender", "pan", "bank_code"]
    assert fields_of("bank card number: is on another person's active card 000000019") == ["pan"]


def test_account_opening_data_is_the_bank_stages_input(db_url: str, tmp_path: Path) -> None:
    rows = _personalized(db_url, tmp_path, 3)
    out = tmp_path / "account-opening.csv"
    got = run_cli("registry", "partner", "account-opening", "--out", str(out), "--db", db_url)
    assert "3 card(s)" in got
    results = {r["card_no"]: r for r in _read(tmp_path / "B1.results.csv")}
    two = load_two_stage("ssc3-pboc-2stage")
    assert two.bank.pboc is not None
    batch = read_accounts(out, two.bank.pboc, two.bank.pin.length)
    assert (batch.read, batch.rejected) == (3, 0)
    by_serial = {rec.chip_serial.hex().upper(): rec for rec in batch.by_serial.values()}
    for r in rows:
        rec = by_serial[results[r["card_no"]]["chip_serial"]]
        assert (rec.card_no, rec.ssn, rec.pan) == (r["card_no"], r["ssn"], r["pan"])
    # answered cards are no longer waiting
    with (tmp_path / "acc.csv").open("w", encoding="utf-8") as fh:
        fh.write(f"card_no,status\n{rows[0]['card_no']},opened\n")
    run_cli("registry", "accounts", str(tmp_path / "acc.csv"), "--db", db_url)
    run_cli("registry", "partner", "account-opening", "--out", str(out), "--db", db_url)
    assert len(_read(out)) == 2


def test_a_batch_exported_as_one_archive_travels_with_its_photos(
    db_url: str, tmp_path: Path
) -> None:
    from test_integrity_registry import _registered

    _registered(db_url, tmp_path / "centre", 4)
    archive = tmp_path / "B1.zip"
    out = run_cli(
        "registry", "export-batch", "--db", db_url, "--out", str(archive), "--batch", "B1"
    )
    assert "batch B1: 4 standard cards" in out
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    factory = tmp_path / "factory"
    with zipfile.ZipFile(archive) as zf:
        names = sorted(zf.namelist())
        zf.extractall(factory)
    rows = _read(factory / "B1.csv")
    assert names == sorted(["B1.csv", *(r["photo"] for r in rows)])
    assert all(r["photo"] == f"photos/{r['card_no']}.jpg" for r in rows)
    assert str(tmp_path) not in (factory / "B1.csv").read_text(encoding="utf-8")
    # the centre's disk is gone: the factory prepares the batch from the archive alone
    import shutil

    shutil.rmtree(tmp_path / "centre")
    checked = validate_only(factory / "B1.csv", load_profile("ssc3-pboc"), tmp_path / "rej.csv")
    assert (checked.prepared, checked.rejected) == (4, 0)


def test_the_return_file_lists_prep_rejects_as_failed(db_url: str, tmp_path: Path) -> None:
    from test_integrity_registry import _export, _registered, _write_rejects

    recs = _registered(db_url, tmp_path, 3)
    rows = _export(db_url, tmp_path / "B1.csv", "B1")
    rej = _write_rejects(
        tmp_path / "rej.csv",
        [{"line": 3, "field": "photo", "reason": "file not found",
          "ssn_masked": recs[1]["ssn"][:6] + "********" + recs[1]["ssn"][-4:]}],
    )  # fmt: skip
    run_cli("registry", "import-rejects", str(rej), "--batch", "B1", "--db", db_url)
    ret = tmp_path / "return.csv"
    out = run_cli("registry", "report", "return-file", "--batch", "B1", "--out", str(ret),
                  "--db", db_url)  # fmt: skip
    assert "0 cards, 3 failed" in out  # nothing produced yet: all three are listed, with why
    got = {r["card_no"]: (r["outcome"], r["reason"]) for r in _read(ret)}
    assert got[rows[1]["card_no"]] == (
        "failed",
        "rejected at data preparation: photo: file not found",
    )
    assert got[rows[0]["card_no"]] == ("failed", "not produced (in_production)")


def test_the_partners_can_answer_with_results_instead_of_their_data(
    db_url: str, tmp_path: Path
) -> None:
    """The population database and the bank rarely hand out their data: they answer each
    request with match / mismatch (and which fields) / not_found."""
    recs = _applications(tmp_path, 4)
    setup_lists(db_url, [])
    extra = [dict(GOOD, unit="U1001") for _ in recs]
    db = ["--db", db_url]
    run_cli("registry", "import", str(write_centre_apps(tmp_path, recs, extra)), *db)
    run_cli("registry", "audit", *db)
    pop, bank = tmp_path / "pop-answer.csv", tmp_path / "bank-answer.csv"
    with pop.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["request_id", "AAC002", "result", "fields"])
        w.writerow(["1", recs[0]["ssn"], "mismatch", "name;AAC004"])
        w.writerow(["2", recs[1]["ssn"], "not_found", ""])
        w.writerow(["3", recs[2]["ssn"], "MATCH", ""])
        w.writerow(["4", recs[3]["ssn"], "match", ""])
    with bank.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["request_id", "ssn", "result", "fields"])
        for i, r in enumerate(recs):
            w.writerow([str(i + 1), r["ssn"], "mismatch" if i == 2 else "match", "pan"])
    out = run_cli("registry", "compare", "--population", str(pop), "--bank", str(bank), *db)
    assert "compared 1, returned 3" in out
    run_cli("registry", "partner", "returned", "--out-dir", str(tmp_path), *db)
    got = {r["application_id"]: r["fields"] for r in _read(tmp_path / "returned-U1001.csv")}
    assert got == {"1": "name,gender", "2": "ssn", "3": "pan"}


def test_a_bad_comparison_result_names_its_line(db_url: str, tmp_path: Path) -> None:
    recs = _applications(tmp_path, 1)
    db = ["--db", db_url]
    run_cli("db", "upgrade", *db)
    run_cli("registry", "import", str(tmp_path / "apps.csv"), *db)
    run_cli("registry", "audit", *db)
    (tmp_path / "pop.csv").write_text(f"ssn,result\n{recs[0]['ssn']},maybe\n", encoding="utf-8")
    err = run_cli("registry", "compare", "--population", str(tmp_path / "pop.csv"), *db, code=1)
    assert "error: record 2, field 'result': is 'maybe', not match, mismatch or not_found" in err
    assert "audited" in run_cli("registry", "list", *db)  # nothing changed
