"""The factory floor's read model (cardperso.web.floor) and the stations' board the line
publishes (cardperso.line.stations), on SQLite and PostgreSQL; rejected cards' faces drawn from
a real personalization file with the identity number masked. The running line in a browser is
tests/test_web_browser.py."""

from __future__ import annotations

import functools
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cardperso.codec.numbers import mask_id
from cardperso.devices import cardface
from cardperso.errors import UsageError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.journal import JobSeed, Journal
from cardperso.line.results import RESULT_COLUMNS
from cardperso.line.stations import StationBoard, read_board
from cardperso.prep.container import iter_records, verify
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from cardperso.storage.db import Database
from cardperso.web import floor
from cardperso.web.app import create_app
from fixtures_web import login_client_at, make_users, serve_in_thread

PG_URL = os.environ.get("CARDPERSO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
KEYS = Path(__file__).resolve().parent.parent / "keys-sample" / "keys.json"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(tmp_path / "journal.db")
    return Database(PG_URL)


@dataclass
class Status:
    name: str
    state: str = "idle"
    message: str = ""
    made: int = 0
    rejected: int = 0


def test_the_board_publishes_a_station_when_it_changes(db: Database) -> None:
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    board = StationBoard(db, run_id)
    st1, st2 = Status("st1", "busy"), Status("st2", "paused", "ribbon out: replace the ribbon")
    board.publish([st1, st2])
    first = {r.station: r for r in read_board(db, run_id)}
    assert [(r.state, r.message) for r in first.values()] == [
        ("busy", ""), ("paused", "ribbon out: replace the ribbon"),
    ]  # fmt: skip
    db.execute("UPDATE line_stations SET updated_at = 0 WHERE run_id = ?", (run_id,))
    st1.made = 1
    board.publish([st1, st2])  # st2 did not change: its row is not written again
    again = {r.station: r for r in read_board(db, run_id)}
    assert again["st1"].made == 1 and again["st1"].updated_at > 0
    assert again["st2"].updated_at == 0
    assert read_board(db, "another-run") == []


def test_a_database_without_a_journal_shows_no_run(tmp_path: Path) -> None:
    with Database(tmp_path / "empty.db") as db:
        assert floor.runs(db) == []
        with pytest.raises(UsageError, match="no run 'x' in this journal"):
            floor.run(db, "x")


def _journal_with_a_day(db: Database) -> Journal:
    journal = Journal(db, f"BATCH-{uuid.uuid4().hex[:8]}")
    journal.create(
        [JobSeed(i, f"B{i:07d}X", mask_id(f"11010119350101{i:04d}")) for i in range(4)],
        source="/nowhere/b.perso",
        digest="d",
    )
    a = journal.claim("st1")
    assert a is not None
    journal.printed(journal.chip_ok(a, chip_serial="AA01", atr="3B"))
    b = journal.claim("st1")
    assert b is not None
    journal.fail(b, "chip: no answer (card mute)")
    c = journal.claim("st2")  # the rejected record, made again on st2 now
    assert c is not None
    return journal


def test_the_floor_shows_progress_stations_rejects_and_throughput(db: Database) -> None:
    journal = _journal_with_a_day(db)
    run_id = journal.run_id
    StationBoard(db, run_id).publish(
        [Status("st1", "busy", made=1, rejected=1), Status("st2", "paused", "cover open")]
    )
    view = floor.run(db, run_id)
    assert (view.records, view.counts["done"], view.counts["queued"], view.percent) == (4, 1, 2, 25)
    stations = {s.name: s for s in floor.stations(db, run_id)}
    assert (stations["st2"].state, stations["st2"].message) == ("paused", "cover open")
    held = journal.results()[1]
    assert stations["st2"].card_no_masked == mask_id(str(held["card_no"])) != held["card_no"]
    assert stations["st2"].ssn_masked == "110101********0001"
    assert stations["st1"].card_no_masked == ""  # st1 holds no card now
    (reject,) = floor.rejects(db, run_id)
    assert (reject.index, reject.station, reject.reason) == (
        1,
        "st1",
        "chip: no answer (card mute)",
    )
    assert reject.ssn_masked == "110101********0001" and reject.card_no_masked == "B0*****1X"
    first = db.execute(
        "SELECT MIN(at) FROM line_events WHERE run_id = ? AND event = 'claim'", (run_id,)
    )[0][0]
    # one card finished: per hour over the run's age while it is younger than the window ...
    assert floor.throughput(db, run_id, now=first + 100) == pytest.approx(36.0)
    # ... and over the last WINDOW seconds later on (none finished in them: 0)
    assert floor.throughput(db, run_id, now=first + floor.WINDOW + 200) == 0.0


def test_only_the_lines_results_files_are_offered(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text(",".join(RESULT_COLUMNS) + "\n0,B1,x,produced\n")
    (tmp_path / "batch.csv").write_text("ssn,name\n110101193501010057,x\n")
    (tmp_path / "other.csv").write_bytes(b"\xff\xfe")
    assert floor.result_files(str(tmp_path / "b.perso")) == [tmp_path / "results.csv"]


@pytest.fixture(scope="module")
def perso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("perso")
    make_batch(base / "b.csv", 2, seed=9)
    prepare(
        base / "b.csv", load_profile("ssc3-pboc"), SoftwareKeyStore.load(KEYS),
        functools.partial(SoftwareKeyStore.load, KEYS), base / "b.perso", base / "r.csv",
        PrepOptions(batch_id="WEB", created=1),
    )  # fmt: skip
    return base / "b.perso"


def test_a_rejected_cards_face_masks_the_identity_number(perso: Path) -> None:
    store = SoftwareKeyStore.load(KEYS)
    header = verify(perso, store).header
    records = dict(iter_records(perso, store))
    index = sorted(records)[1]
    fields = dict(zip(header.face_fields, records[index].face.split("\x1f")))
    photo = (perso.parent / fields.pop("photo")).read_bytes()
    assert len(fields["ssn"]) == 18

    def png(shown: dict[str, str]) -> bytes:
        face = cardface.render(shown, photo)
        return cardface.to_png(cardface.compose(cardface.panels(face)))

    masked = {k: mask_id(v) if k in ("ssn", "card_no", "pan") else v for k, v in fields.items()}
    got = floor.Faces(store).png(str(perso), index)
    assert got == png(masked)
    assert got != png(fields)
    with pytest.raises(UsageError, match="card faces need the key store"):
        floor.Faces(None).png(str(perso), index)
    with pytest.raises(UsageError, match="no record 99 in the run's personalization file"):
        floor.Faces(store).png(str(perso), 99)


def test_the_operators_floor_page_shows_masked_numbers_only(tmp_path: Path) -> None:
    db_path = tmp_path / "c.db"
    make_users(db_path)
    db = Database(db_path)
    journal = _journal_with_a_day(db)
    StationBoard(db, journal.run_id).publish([Status("st2", "paused", "cover open")])
    url, thread, server = serve_in_thread(create_app(db))
    try:
        client = login_client_at(url, "op1")
        page = client.get(f"/floor?run={journal.run_id}").text
        live = client.get(f"/floor/live?run={journal.run_id}").text
        for text in (page, live):
            assert "110101********0001" in text and "B0*****1X" in text
            assert "cover open" in text and 'id="resume-st2"' in text
            for row in journal.results():
                assert str(row["card_no"]) not in text
        assert client.get("/floor/live?run=nope").status_code == 400
        face = client.get(f"/floor/face?run={journal.run_id}&index=0")
        assert face.status_code == 400 and "has no rejected card" in face.text
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join()
        db.close()
    assert isinstance(client, httpx.Client)


@pytest.mark.pcsc
def test_a_newcomer_opens_the_console_after_the_demo(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cardperso demo`, then `db upgrade`, `web user add` and `web serve` on the demo's journal:
    the operator sees the demo's run finished, its stations and its results file."""
    from click.testing import CliRunner

    from cardperso.cli import line as line_cli
    from cardperso.cli.main import _register, cli
    from cardperso.line.linefile import LineOptions
    from cardperso.sim.line import SimLine
    from fixtures_web import SAMPLE_KEYS, start_console

    def lab_line(stations: int, state_dir: Path, *, transport_key: bytes) -> SimLine:
        free = [s for s in pcsc_lab.slots if s.card is None][:stations]
        return SimLine(stations, state_dir, readers=free, transport_key=transport_key,
                       options=LineOptions(card_timeout=5, pause_retry=0.2))  # fmt: skip

    monkeypatch.setattr(line_cli, "_make_sim_line", lab_line)  # the lab's readers
    _register()
    state = tmp_path / "demo"
    runner = CliRunner()
    demo = runner.invoke(cli, ["demo", "--count", "3", "--stations", "1", "--state", str(state)])
    assert demo.exit_code == 0, demo.output
    db = state / "journal.db"
    assert runner.invoke(cli, ["db", "upgrade", "--db", str(db)]).exit_code == 0
    added = runner.invoke(
        cli, ["web", "user", "add", "op", "--role", "operator", "--password-stdin", "--db", str(db)],
        input="op-Password-123\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    console = start_console(db, tmp_path / "serve.log", "--keys", str(SAMPLE_KEYS))
    try:
        client = login_client_at(console.url, "op", "op-Password-123")
        page = client.get("/floor").text
    finally:
        console.stop()
    (run_id,) = set(re.findall(r"DEMO-[0-9a-f]{8}", page))
    assert 'id="done">3</span> / 3' in page and 'id="station-st1" class="state-stopped"' in page
    assert f"/floor/results?run={run_id}&amp;file=results.csv" in page


def test_the_reject_events_are_the_journals_ways_off_a_station() -> None:
    """The floor lists a reject for every event that takes a card off a station without
    making it (the journal's transition table): a new such event must be listed too."""
    from cardperso.line import jobs

    off = {
        e
        for (s, e), t in jobs.TRANSITIONS.items()
        if s in jobs.IN_FLIGHT and t not in jobs.IN_FLIGHT and t != jobs.DONE
    }
    assert off == set(floor.REJECT_EVENTS)
    sql_events = "('retry', 'give_up', 'recover', 'recover_give_up', 'release')"
    assert sql_events == "(" + ", ".join(f"'{e}'" for e in floor.REJECT_EVENTS) + ")"
