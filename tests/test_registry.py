"""The card registry: lifecycle table, calendar, import/audit/compare, registration with
duplicates, production round trip, issuance, reports; on SQLite and on the real PostgreSQL
(each PostgreSQL test in its own schema, so parallel runs never meet)."""

from __future__ import annotations

import csv
import datetime
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.cli.main import _register, cli
from cardperso.codec.numbers import check_card_number
from cardperso.errors import DataError, IllegalTransition, UsageError
from cardperso.line.journal import JobSeed, Journal
from cardperso.prep.synth import records
from cardperso.profiles.loader import load_profile
from cardperso.registry import cards, lifecycle, production, schema, store
from cardperso.registry.applications import audit, compare, import_applications
from cardperso.registry.calendar import Calendar, deadline, parse_calendar
from cardperso.storage.db import Database
from centre_photos import spec_photo

PG_URL = os.environ.get("CARDPERSO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ACTOR = "test@registry"


# -- databases ---------------------------------------------------------------------------------


def pg_schema_url(schema_name: str) -> str:
    """``PG_URL`` with ``search_path`` set to ``schema_name`` (libpq ``options``)."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema_name}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with Database(PG_URL) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield pg_schema_url(name)
    finally:
        with Database(PG_URL) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "registry.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    with Database(db_url) as database:
        schema.upgrade(database)
        yield database


# -- input files -------------------------------------------------------------------------------

APP_COLUMNS = (
    "ssn", "name", "gender", "nation", "birth_date", "birth_place", "region", "photo",
    "bank_code", "pan", "pan_seq", "application_type", "accepted_date",
)  # fmt: skip


def write_applications(
    directory: Path, count: int, *, seed: int = 3, start: int = 0
) -> list[dict[str, str]]:
    """Valid applications (the prep generator's records without the allocated fields) plus the
    population and bank extracts that agree with them."""
    directory.mkdir(parents=True, exist_ok=True)
    photos = directory / "photos"
    photos.mkdir(exist_ok=True)
    for j in range(4):
        (photos / f"p{j:04d}.jpg").write_bytes(spec_photo(__import__("random").Random(j)))
    recs = list(records(start + count, seed=seed, photos=4))[start:]
    with (directory / "apps.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(APP_COLUMNS)
        for r in recs:
            w.writerow([r[c] for c in APP_COLUMNS])
    write_extracts(directory, recs)
    return recs


def write_extracts(
    directory: Path, recs: list[dict[str, str]], *, wrong_name: int = -1, no_bank: int = -1
) -> None:
    with (directory / "population.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["AAC002", "AAC003", "AAC004", "AAC006"])  # ministry aliases
        for i, r in enumerate(recs):
            w.writerow(
                [
                    r["ssn"],
                    r["name"] + ("错" if i == wrong_name else ""),
                    r["gender"],
                    r["birth_date"],
                ]
            )
    with (directory / "bank.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ssn", "bank_code", "account"])
        for i, r in enumerate(recs):
            if i != no_bank:
                w.writerow([r["ssn"], r["bank_code"], r["pan"]])


def run_cli(*args: str, code: int = 0) -> str:
    _register()
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


# -- the transition table ----------------------------------------------------------------------


def test_transition_table_main_path_and_illegal_moves() -> None:
    path = [
        "audit",
        "compare_ok",
        "register",
        "export",
        "produced",
        "account_open",
        "notify",
        "issue",
    ]
    state = lifecycle.ACCEPTED
    seen = [state]
    for event in path:
        state = lifecycle.next_state(state, event)
        seen.append(state)
    assert seen == [
        "accepted", "audited", "compared", "registered", "in_production", "personalized",
        "account_opened", "ready_for_collection", "issued",
    ]  # fmt: skip
    # the temporary-card path
    s = lifecycle.next_state(lifecycle.PERSONALIZED, "account_fail")
    s = lifecycle.next_state(s, "export_temporary")
    assert s == lifecycle.IN_PRODUCTION
    assert lifecycle.next_state(lifecycle.PERSONALIZED, "notify_temporary") == lifecycle.READY
    with pytest.raises(IllegalTransition, match="'issue' is not allowed in state 'registered'"):
        lifecycle.next_state(lifecycle.REGISTERED, "issue")
    for final in (lifecycle.RETURNED, lifecycle.REJECTED, lifecycle.CANCELLED):
        assert lifecycle.events_from(final) == []
    assert lifecycle.events_from(lifecycle.ISSUED) == ["cancel", "suspend"]  # lost, replaced
    assert lifecycle.events_from(lifecycle.SUSPENDED) == ["cancel", "restore"]  # 解挂, 补卡
    # every state is reachable from accepted
    reach = {lifecycle.ACCEPTED}
    while True:
        more = {t for (s, _), t in lifecycle.TRANSITIONS.items() if s in reach} - reach
        if not more:
            break
        reach |= more
    assert reach == set(lifecycle.STATES)


# -- the calendar ------------------------------------------------------------------------------

# A hand-built test calendar modelled on China's 2026 National Day week: 1-7 October off,
# make-up working days on Sunday 20 September and Saturday 10 October. (1 October 2026 is a
# Thursday: 1 January 2026 is a Thursday and 273 days, 39 weeks, separate them.)
NATIONAL_DAY_2026 = """
# test calendar
holiday 2026-10-01..2026-10-07   National Day week
workday 2026-09-20               make-up (Sunday)
workday 20261010                 make-up (Saturday)
"""


def test_calendar_national_day_week_hand_checked() -> None:
    cal = parse_calendar(NATIONAL_DAY_2026.splitlines(), "nd2026")
    d = datetime.date
    assert not cal.is_working_day(d(2026, 10, 1)) and not cal.is_working_day(d(2026, 10, 7))
    assert cal.is_working_day(d(2026, 9, 20)) and cal.is_working_day(d(2026, 10, 10))
    assert not cal.is_working_day(d(2026, 10, 11))  # an ordinary Sunday
    # Accepted Friday 25 September. Working days after it, counted by hand:
    # 28 Sep 1, 29 Sep 2, 30 Sep 3, (1-7 Oct off), 8 Oct 4, 9 Oct 5, Sat 10 Oct 6, 12 Oct 7 …
    accepted = d(2026, 9, 25)
    assert cal.add_working_days(accepted, 5) == d(2026, 10, 9)  # sporadic target
    # … 13-16 Oct 8-11, 19-23 Oct 12-16, 26-30 Oct 17-21, 2-6 Nov 22-26, 9-12 Nov 27-30
    assert cal.add_working_days(accepted, 30) == d(2026, 11, 12)  # batch target
    assert cal.working_days_between(d(2026, 9, 30), d(2026, 10, 8)) == 1
    assert cal.working_days_between(accepted, d(2026, 10, 12)) == 7
    # accepted Friday 18 September: the make-up Sunday counts, so five days end on Thursday 24th
    assert cal.add_working_days(d(2026, 9, 18), 5) == d(2026, 9, 24)
    assert Calendar().add_working_days(d(2026, 9, 18), 5) == d(2026, 9, 25)  # weekends only
    # where an application stands on given days
    on_time = deadline(cal, accepted, "sporadic", d(2026, 10, 8))
    assert (on_time.deadline, on_time.used, on_time.days_left) == (d(2026, 10, 9), 4, 1)
    late = deadline(cal, accepted, "sporadic", d(2026, 10, 12))
    assert late.late and late.days_left == -2


def test_calendar_file_errors() -> None:
    with pytest.raises(DataError, match="nd:2"):
        parse_calendar(["", "vacation 2026-10-01"], "nd")
    with pytest.raises(DataError, match="both as a holiday and as a workday"):
        parse_calendar(["holiday 2026-10-01..2026-10-03", "workday 2026-10-02"], "x")
    with pytest.raises(DataError, match="ends before it starts"):
        parse_calendar(["holiday 2026-10-03..2026-10-01"], "x")


# -- import, audit, compare --------------------------------------------------------------------


def test_import_validates_like_prep_and_refuses_open_duplicates(
    db: Database, tmp_path: Path
) -> None:
    recs = write_applications(tmp_path, 6)
    with (tmp_path / "apps.csv").open("a", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        bad = dict(recs[0], ssn=recs[0]["ssn"][:-1] + ("1" if recs[0]["ssn"][-1] != "1" else "2"))
        w.writerow([bad[c] for c in APP_COLUMNS])  # line 8: wrong check character
        w.writerow([dict(recs[1], accepted_date="")[c] for c in APP_COLUMNS])  # line 9
        w.writerow([recs[2][c] for c in APP_COLUMNS])  # line 10: same person twice in the file
        w.writerow([dict(recs[3], application_type="urgent")[c] for c in APP_COLUMNS])
    got = import_applications(db, tmp_path / "apps.csv", load_profile("ssc3-pboc"), actor=ACTOR)
    assert (got.read, got.accepted, got.rejected) == (10, 6, 4)
    reasons = {line: (field, why) for line, field, why, _ in got.rejects}
    assert reasons[8] == ("ssn", "check character does not match (ISO 7064 MOD 11-2)")
    assert reasons[9] == ("accepted_date", "required field is empty")
    assert reasons[10] == ("ssn", "duplicate of line 4")
    assert reasons[11][0] == "application_type"
    assert all(ssn == "" or "*" in ssn for *_, ssn in got.rejects), "only masked ids"
    again = import_applications(db, tmp_path / "apps.csv", load_profile("ssc3-pboc"), actor=ACTOR)
    assert again.accepted == 0
    assert any("has an open application in the registry" in r[2] for r in again.rejects)
    apps = store.select_apps(db)
    assert len(apps) == 6 and {a.state for a in apps} == {"accepted"}
    assert recs[0]["ssn"] not in repr(apps[0]) and recs[0]["name"] not in repr(apps[0])
    assert [t.event for t in store.history(db, apps[0].id)] == ["accept"]


def test_audit_and_compare_with_reasons(db: Database, tmp_path: Path) -> None:
    recs = write_applications(tmp_path, 5)
    write_extracts(tmp_path, recs, wrong_name=1, no_bank=2)
    profile = load_profile("ssc3-pboc")
    import_applications(db, tmp_path / "apps.csv", profile, actor=ACTOR)
    # the photo of application 4 disappeared between acceptance and audit
    apps = store.select_apps(db)
    Path(apps[4].photo).rename(Path(apps[4].photo).with_suffix(".gone"))
    shared = [a.id for a in apps if a.photo == apps[4].photo]
    out = audit(db, profile, actor="auditor")
    rejected = {o.app_id: o.reason for o in out if o.state == "rejected"}
    assert set(rejected) == set(shared) and "photo: file not found" in rejected[apps[4].id]
    out = compare(db, tmp_path / "population.csv", tmp_path / "bank.csv", actor="centre")
    returned = {o.app_id: o.reason for o in out if o.state == "returned"}
    ids = [a.id for a in apps]
    assert returned[ids[1]] == "name differs from the population database"
    assert returned[ids[2]] == "no account request for this identity number at the bank"
    hist = store.history(db, ids[1])
    assert [t.event for t in hist] == ["accept", "audit", "compare_fail"]
    assert hist[-1].actor == "centre" and "name differs" in hist[-1].detail


# -- registration ------------------------------------------------------------------------------


def _to_compared(db: Database, tmp_path: Path, count: int, **kw: int) -> list[dict[str, str]]:
    recs = write_applications(tmp_path, count, **kw)
    profile = load_profile("ssc3-pboc")
    import_applications(db, tmp_path / "apps.csv", profile, actor=ACTOR)
    audit(db, profile, actor=ACTOR)
    compare(db, tmp_path / "population.csv", tmp_path / "bank.csv", actor=ACTOR)
    return recs


def test_card_numbers_per_region_valid_and_unique(db: Database, tmp_path: Path) -> None:
    _to_compared(db, tmp_path, 12)
    cards.set_region_prefix(db, "440305", "SZ")
    got = cards.register(db, actor=ACTOR)
    numbers = [r.card_no for r in got]
    assert len(set(numbers)) == 12
    for n in numbers:
        assert check_card_number(n) == n  # GB 11714 check character
    by_region: dict[str, list[str]] = {}
    for app in store.select_apps(db):
        by_region.setdefault(app.region, []).append(app.card_no)
    prefixes = {region: {n[:2] for n in nums} for region, nums in by_region.items()}
    assert all(len(p) == 1 for p in prefixes.values()), "one prefix per region"
    assert len({next(iter(p)) for p in prefixes.values()}) == len(prefixes), "distinct prefixes"
    if "440305" in by_region:
        assert all(n.startswith("SZ") for n in by_region["440305"])
    for nums in by_region.values():
        assert sorted(n[2:8] for n in nums) == [f"{i:06d}" for i in range(1, len(nums) + 1)]
    assert cards.card_number("00", 1) == "000000019"  # body 00000001 → check 9


def test_duplicate_cancels_the_active_original(db: Database, tmp_path: Path) -> None:
    recs = _to_compared(db, tmp_path / "first", 2)
    (first, other) = cards.register(db, actor=ACTOR)
    # the same person applies again later (a replacement): the original is cancelled
    again = tmp_path / "second"
    again.mkdir()
    (again / "photos").symlink_to(tmp_path / "first" / "photos")
    with (again / "apps.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(APP_COLUMNS)
        w.writerow([dict(recs[0], accepted_date="20260301")[c] for c in APP_COLUMNS])
    write_extracts(again, recs[:1])
    # an open application blocks a new one: take the first card through to issuance
    with db.transaction():
        for event in ("export", "produced", "account_open", "notify", "issue"):
            store.move(db, first.app_id, event, actor=ACTOR)
    profile = load_profile("ssc3-pboc")
    assert import_applications(db, again / "apps.csv", profile, actor=ACTOR).accepted == 1
    audit(db, profile, actor=ACTOR)
    compare(db, again / "population.csv", again / "bank.csv", actor=ACTOR)
    (second,) = cards.register(db, actor="centre")
    assert second.cancelled == (first.card_no,) and second.previous == 1
    history = cards.cards_of(db, recs[0]["ssn"])
    assert history == [
        (first.card_no, "cancelled", False, f"duplicate: replaced by card {second.card_no}"),
        (second.card_no, "registered", True, ""),
    ]
    cancel = store.history(db, first.app_id)[-1]
    assert (cancel.event, cancel.actor) == ("cancel", "centre")
    assert second.card_no in cancel.detail
    assert cards.cards_of(db, recs[1]["ssn"])[0][2] is True  # the other person is untouched
    assert other.cancelled == ()


_RACER = r"""
import sys, time
from pathlib import Path
from cardperso.registry import cards
from cardperso.storage.db import Database
url, go, ids = sys.argv[1], Path(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")]
db = Database(url)
while not go.exists():
    time.sleep(0.005)
for app_id in ids:
    for attempt in range(cards.RETRIES):
        try:
            cards._register_one(db, app_id, actor=f"racer-{sys.argv[4]}")
            break
        except Exception as exc:
            if not cards.is_integrity_error(exc):
                raise
print("ok")
"""


@pytest.mark.parametrize("pairs", [15])
def test_concurrent_registration_of_one_person_leaves_one_active_card(
    db: Database, db_url: str, tmp_path: Path, pairs: int
) -> None:
    """Two processes register two applications of each person at the same moment (two service
    points accepted the same person: the import check alone cannot stop two imports racing)."""
    _to_compared(db, tmp_path, pairs)
    firsts = [a.id for a in store.select_apps(db)]
    with db.transaction():  # the twin applications, as a racing second import would make them
        for app_id in firsts:
            db.execute(
                "INSERT INTO reg_applications (ssn, name, gender, nation, birth_date, birth_place, "
                "region, photo, bank_code, pan, pan_seq, extra, application_type, accepted_date, "
                "state, state_at, source, created_at) SELECT ssn, name, gender, nation, birth_date, "
                "birth_place, region, photo, bank_code, pan, pan_seq, extra, application_type, "
                "accepted_date, state, state_at, 'twin', created_at FROM reg_applications "
                "WHERE id = ?",
                (app_id,),
            )
    seconds = [a.id for a in store.select_apps(db, "source = 'twin'")]
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, db_url, str(go), ",".join(map(str, ids)), tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ids, tag in ((firsts, "a"), (seconds, "b"))
    ]
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "ok", err
    rows = db.execute("SELECT ssn, COUNT(*), SUM(active) FROM reg_cards GROUP BY ssn")
    assert len(rows) == pairs
    assert all(int(n) == 2 and int(active) == 1 for _, n, active in rows), rows
    # the cancelled card of each person names the active one as its replacement
    for ssn, *_ in rows:
        (old, new) = sorted(cards.cards_of(db, str(ssn)), key=lambda c: c[2])
        assert not old[2] and new[2] and old[3] == f"duplicate: replaced by card {new[0]}"


# -- the whole lifecycle from the command line -------------------------------------------------


def _fake_line_results(
    export: Path, out: Path, *, fail: frozenset[int] = frozenset(), chips: int = 0xA0000000
) -> list[dict[str, str]]:
    """A per-card result file as `cardperso run --results` writes it, for an exported batch
    (chip serials ``chips``, ``chips + 1``…: a chip is one card, so each batch its own base)."""
    with export.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    results = []
    for i, r in enumerate(rows):
        pan = r["pan"]
        results.append(
            {
                "record": str(i + 2),
                "card_no": r["card_no"],
                "ssn_masked": r["ssn"][:6] + "********" + r["ssn"][-4:],
                "outcome": "rejected" if i in fail else "produced",
                "attempts": "1",
                "station": "st1",
                "chip_serial": "" if i in fail else f"{chips + i:08X}",
                "atr": "3B8F8001804F0CA000000306030001000000006A",
                "card_id_code": "" if i in fail else f"110101D156000005{chips + i:08X}00000000",
                "pan_masked": pan[:6] + "*" * (len(pan) - 10) + pan[-4:] if pan else "",
                "reject_reason": "mute card" if i in fail else "",
            }
        )
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)
    return rows


def test_whole_lifecycle_from_the_cli(db_url: str, tmp_path: Path) -> None:
    write_applications(tmp_path, 6)
    url = ["--db", db_url]
    run_cli("registry", "import", str(tmp_path / "apps.csv"), *url, code=2)  # no schema yet
    assert "applied migration 2" in run_cli("db", "upgrade", *url)
    assert "applied" not in run_cli("db", "upgrade", *url)  # idempotent
    assert "accepted 6" in run_cli("registry", "import", str(tmp_path / "apps.csv"), *url)
    assert "audited 6" in run_cli("registry", "audit", *url, "--by", "auditor")
    compared = run_cli(
        "registry", "compare", *url, "--population", str(tmp_path / "population.csv"),
        "--bank", str(tmp_path / "bank.csv"),
    )  # fmt: skip
    assert "compared 6, returned 0" in compared
    assert "registered 6" in run_cli("registry", "register", *url)
    export = tmp_path / "batch1.csv"
    out = run_cli(
        "registry", "export-batch", *url, "--out", str(export), "--batch", "B1",
        "--issue-date", "2026-01-20",
    )  # fmt: skip
    assert "batch B1: 6 standard cards" in out
    assert stat.S_IMODE(export.stat().st_mode) == 0o600, "personal data: owner only"
    # the export is a valid data-preparation input for the profile
    from cardperso.prep.pipeline import validate_only

    checked = validate_only(export, load_profile("ssc3-pboc"), tmp_path / "rej.csv")
    assert (checked.prepared, checked.rejected) == (6, 0)
    rows = _fake_line_results(export, tmp_path / "results.csv", fail=frozenset({5}))
    got = run_cli("registry", "import-results", str(tmp_path / "results.csv"), *url)
    assert "5 personalized, 1 back to registered" in got
    again = run_cli("registry", "import-results", str(tmp_path / "results.csv"), *url)
    assert "0 personalized" in again and "already recorded" in again  # idempotent
    cardnos = [r["card_no"] for r in rows]
    with (tmp_path / "accounts.csv").open("w", encoding="utf-8") as fh:
        fh.write("card_no,status,reason\n")
        for n in cardnos[:4]:
            fh.write(f"{n},opened,\n")
        fh.write(f"{cardnos[4]},failed,account blocked by the bank\n")
    assert "opened 4, failed 1" in run_cli(
        "registry", "accounts", str(tmp_path / "accounts.csv"), *url
    )
    # the account-failed application becomes a temporary card (SSSE-only profile, no PAN)
    temp = tmp_path / "temp.csv"
    out = run_cli(
        "registry", "export-batch", *url, "--out", str(temp), "--temporary", "--batch", "T1"
    )
    assert "1 temporary cards" in out and "ssc3-temporary" in out
    with temp.open(encoding="utf-8") as fh:
        (trow,) = list(csv.DictReader(fh))
    assert trow["card_no"] == cardnos[4] and trow["pan"] == "" and trow["bank_code"] == ""
    checked = validate_only(temp, load_profile("ssc3-temporary"), tmp_path / "rej2.csv")
    assert checked.prepared == 1
    _fake_line_results(temp, tmp_path / "tresults.csv", chips=0xB0000000)
    run_cli("registry", "import-results", str(tmp_path / "tresults.csv"), *url)
    # notification: four accounts opened and the temporary card
    out = run_cli("registry", "notify", *url, "--date", "2026-01-28")
    assert "5 card(s) ready for collection" in out and "(temporary card)" in out
    assert rows[0]["ssn"] not in out, "masked identity numbers only"
    # issuing a card that is not ready is refused (exit 2: usage)
    err = run_cli(
        "registry", "issue", cardnos[5], "--to", "x", "--date", "2026-02-01", *url, code=2
    )
    assert "'issue' is not allowed in state 'registered'" in err
    run_cli("registry", "issue", cardnos[0], "--to", rows[0]["name"], "--date", "2026-02-02", *url)
    hist = run_cli("registry", "history", cardnos[0], *url)
    assert [line.split()[2] for line in hist.strip().splitlines()] == [
        "accept", "audit", "compare_ok", "register", "export", "produced", "account_open",
        "notify", "issue",
    ]  # fmt: skip
    assert "auditor" in hist
    # the return file of batch B1: the cards the line produced, less the one re-made in T1
    ret = tmp_path / "return.csv"
    assert "4 cards, 2 failed" in run_cli(
        "registry", "report", "return-file", "--batch", "B1", "--out", str(ret), *url
    )
    assert stat.S_IMODE(ret.stat().st_mode) == 0o600
    with ret.open(encoding="utf-8") as fh:
        back = list(csv.DictReader(fh))
    assert list(back[0]) == [
        "card_no", "ssn", "name", "issue_date", "expiry_date", "card_id_code", "atr",
        "bank_card_no", "batch_no", "outcome", "reason",
    ]  # fmt: skip
    # the return file also lists the batch's cards that failed, and why (issue 15)
    failed = {b["card_no"]: b["reason"] for b in back if b["outcome"] == "failed"}
    assert failed == {
        cardnos[4]: "re-made in batch T1",
        cardnos[5]: "given up on the line: mute card",
    }
    back = [b for b in back if b["outcome"] == "produced"]
    first = next(b for b in back if b["card_no"] == cardnos[0])
    assert (first["ssn"], first["name"], first["bank_card_no"]) == (
        rows[0]["ssn"], rows[0]["name"], rows[0]["pan"],
    )  # fmt: skip
    assert (first["issue_date"], first["expiry_date"], first["batch_no"]) == (
        "20260120",
        "20360120",
        "B1",
    )
    assert first["card_id_code"].endswith("A000000000000000") and first["atr"].startswith("3B8F")
    run_cli("registry", "report", "return-file", "--batch", "T1", "--out", str(ret), *url)
    with ret.open(encoding="utf-8") as fh:
        (tback,) = [r for r in csv.DictReader(fh) if r["outcome"] == "produced"]
    assert (tback["card_no"], tback["bank_card_no"], tback["batch_no"]) == (cardnos[4], "", "T1")
    # time targets and statistics
    cal = tmp_path / "cal.txt"
    cal.write_text(NATIONAL_DAY_2026)
    stats = run_cli("registry", "stats", *url, "--calendar", str(cal))
    assert "ready_for_collection   4" in stats and "issued                 1" in stats
    assert "registered             1" in stats
    overdue = run_cli("registry", "overdue", *url, "--as-of", "2026-06-01")
    assert "LATE" in overdue and "1 late, 0 at risk" in overdue  # the one still registered
    cancel = run_cli("registry", "cancel", cardnos[1], "--reason", "lost", *url)
    assert "cancelled (lost)" in cancel


def test_overdue_and_lead_times_against_the_calendar(db: Database, tmp_path: Path) -> None:
    cal = parse_calendar(NATIONAL_DAY_2026.splitlines())
    _to_compared(db, tmp_path, 3)
    apps = store.select_apps(db)
    kinds = ["sporadic", "batch", "batch"]
    accepted = ["20260925", "20260925", "20260901"]
    for app, kind, day in zip(apps, kinds, accepted):
        db.execute(
            "UPDATE reg_applications SET application_type = ?, accepted_date = ? WHERE id = ?",
            (kind, day, app.id),
        )
    from cardperso.registry import reports

    out = reports.overdue(db, cal, datetime.date(2026, 10, 8))
    # sporadic accepted 25 Sep: due 9 Oct, 1 working day left (at risk); the batch ones are fine
    # (25 Sep: due 12 Nov; 1 Sep: 1 Sep + 30 working days, the week off included = 19 Oct)
    assert [(o.app_id, o.status, o.days_left, o.due) for o in out] == [
        (apps[0].id, "at risk", 1, datetime.date(2026, 10, 9))
    ]
    out = reports.overdue(db, cal, datetime.date(2026, 10, 16))
    assert [(o.app_id, o.status, o.days_left) for o in out] == [
        (apps[0].id, "LATE", -6),  # 11 working days used: 28-30 Sep, 8-10 Oct, 12-16 Oct
        (apps[2].id, "at risk", 0),  # due today
    ]
    # lead times: notified 9 Oct (sporadic, 5 working days) and 12 Nov (batch, 30)
    db.execute("UPDATE reg_applications SET notified_date = '20261009' WHERE id = ?", (apps[0].id,))
    db.execute("UPDATE reg_applications SET notified_date = '20261112' WHERE id = ?", (apps[1].id,))
    st = reports.stats(db, cal)
    lead = {lt.application_type: lt for lt in st.lead_times}
    assert lead["sporadic"].values == (5,) and lead["batch"].values == (30,)
    assert lead["batch"].within_target == 1
    assert dict(lead["batch"].histogram())["21-30"] == 1


def test_results_flow_from_a_shared_journal(db: Database, tmp_path: Path) -> None:
    """When the line's journal lives in the registry's database, `cardperso run` feeds the
    registry from it (production.absorb_run) without any file."""
    _to_compared(db, tmp_path, 3)
    cards.register(db, actor=ACTOR)
    production.export_batch(db, tmp_path / "b.csv", actor=ACTOR, batch_no="J1")
    apps = store.select_apps(db)
    journal = Journal(db, f"J1-{uuid.uuid4().hex[:6]}")
    journal.create(
        [JobSeed(i, a.card_no, a.ssn_masked) for i, a in enumerate(apps)], source="b", digest="d"
    )
    for i in range(3):
        job = journal.claim("st1")
        assert job is not None
        if i == 2:
            journal.fail(job, "mute")  # attempts left: still queued, not finished
            continue
        job = journal.chip_ok(job, chip_serial=f"0000000{i}", atr="3B00", card_id_code="CC")
        journal.printed(job)
    assert production.registry_present(db)
    got = production.absorb_run(db, journal.run_id, actor="line")
    assert (got.personalized, got.unfinished) == (2, 1)
    states = [a.state for a in store.select_apps(db)]
    assert states == ["personalized", "personalized", "in_production"]


def test_schema_version_is_checked(tmp_path: Path) -> None:
    with Database(tmp_path / "old.db") as db:
        assert schema.current_version(db) == 0
        with pytest.raises(
            UsageError, match=f"schema is at version 0, this cardperso needs {schema.LATEST}"
        ):
            store.open_registry(db)
        assert [v for v, _ in schema.upgrade(db)] == list(range(1, schema.LATEST + 1))
        assert schema.upgrade(db) == []
        store.open_registry(db)
