"""Issue 11 on the production line: a run is its file (never its name), nothing that is not the
card's fault spends a card (pre-flight), the line's outputs are atomic and never an input.

Everything runs on the real components: pcscd + vpcd lab readers, printers on ptys, the journal
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.cli.main import _register, cli
from cardperso.errors import DeviceError, UsageError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.identity import file_identity
from cardperso.line.journal import Journal
from cardperso.line.linefile import LineOptions, LineSpec, StationSpec, dump_line
from cardperso.line.runner import LineRun, write_results
from cardperso.prep.container import iter_records, verify
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from cardperso.sim.line import SimLine
from cardperso.storage.db import Database
from fixtures_pcsc import PRESENCE_TIMEOUT
from test_registry import db_url, pg_url  # noqa: F401 - the fixtures

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_KEYS = ROOT / "keys-sample" / "keys.json"
FEEDER = 10_000  # blank cards in a simulated printer's feeder


def _prepare(directory: Path, seed: int, batch_id: str, count: int = 2) -> Path:
    """A batch ``directory/batch.csv`` prepared into ``directory/batch.perso``."""
    directory.mkdir(parents=True, exist_ok=True)
    make_batch(directory / "batch.csv", count, seed=seed)
    perso = directory / "batch.perso"
    summary = prepare(
        directory / "batch.csv", load_profile("ssc3-pboc"), SoftwareKeyStore.load(SAMPLE_KEYS),
        functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), perso, directory / "rejects.csv",
        PrepOptions(batch_id=batch_id, created=1_700_000_000),
    )  # fmt: skip
    assert summary.prepared == count
    return perso


def _short(perso: Path) -> str:
    checked = verify(perso, SoftwareKeyStore.load(SAMPLE_KEYS))
    return file_identity(perso, checked.header, checked.size).short


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _card_numbers(perso: Path) -> set[str]:
    return {body.card_no for _, body in iter_records(perso, SoftwareKeyStore.load(SAMPLE_KEYS))}


def _sim_line(pcsc_lab, state: Path, stations: int = 1) -> SimLine:  # type: ignore[no-untyped-def]
    free = [s for s in pcsc_lab.slots if s.card is None][:stations]
    assert len(free) == stations, "the lab lent this session too few free readers"
    return SimLine(
        stations, state, readers=free, options=LineOptions(card_timeout=5, pause_retry=0.2)
    )


def _assert_no_card_touched(line: SimLine) -> None:
    """No blank card was fed: the feeders are full, no card was ever made or parked."""
    for st in line.stations:
        assert st.core.feeder == FEEDER, f"station {st.name} fed a card"
        assert not list((line.state_dir / "stations" / st.name).iterdir())
        assert st.reader.card is None  # type: ignore[attr-defined]
    assert not list((line.state_dir / "output").iterdir())
    assert not list((line.state_dir / "rejects").iterdir())


def _runs(db: Path) -> int:
    """Runs in a journal (0 when the line never created its tables)."""
    with Database(db) as journal:
        if not journal.execute("SELECT name FROM sqlite_master WHERE name = 'line_runs'"):
            return 0
        return int(journal.execute("SELECT COUNT(*) FROM line_runs")[0][0])


def _invoke(*args: str | Path) -> tuple[int, str]:
    _register()
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


# -- item 1: a run is its file -------------------------------------------------------------------


@pytest.mark.pcsc
def test_two_files_of_one_batch_id_are_two_runs(pcsc_lab, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Three different `batch.csv` files prepared under one batch id: each is its own run, a
    resume or join with the wrong file is refused naming both, and each file's cards are made
    from its own records (before: the second file's --resume reported the first's cards)."""
    batch = f"batch{uuid.uuid4().hex[:6]}"
    a = _prepare(tmp_path / "a", 1, batch)
    b = _prepare(tmp_path / "b", 2, batch)
    c = _prepare(tmp_path / "c", 3, batch)
    assert len({_short(a), _short(b), _short(c)}) == 3
    keys = SoftwareKeyStore.load(SAMPLE_KEYS)
    with _sim_line(pcsc_lab, tmp_path / "line") as line, Database(db_url) as db:
        first = LineRun(a, line.spec, keys, db).run(tmp_path / "a.csv")
        assert first.done == 2 and first.run_id == f"{batch}-{_short(a)}"
        # the same file again without --resume: refused, its run exists
        with pytest.raises(
            UsageError, match=rf"run {batch}-{_short(a)} .* exists in the journal: add --resume"
        ):
            LineRun(a, line.spec, keys, db)
        # --resume with another file of the batch: refused, naming both files
        with pytest.raises(
            UsageError,
            match=rf"--resume: this file \(batch '{batch}', file {_short(b)}\) has no run .*"
            rf"file {_short(a)}, run {batch}-{_short(a)}",
        ):
            LineRun(b, line.spec, keys, db, resume=True)
        # file b starts a run of its own, interrupted before its first card
        LineRun(b, line.spec, keys, db)._open_run()
        # --join with a third file while b is still being made: refused, naming both
        with pytest.raises(
            UsageError,
            match=rf"--join: batch '{batch}' is being made from another file \(file "
            rf"{_short(b)}, run {batch}-{_short(b)}, 2 record\(s\) not finished\); this is "
            rf"batch '{batch}', file {_short(c)}",
        ):
            LineRun(c, line.spec, keys, db, join=True)
        # b resumes and makes its own cards
        second = LineRun(b, line.spec, keys, db, resume=True).run(tmp_path / "b.csv")
        assert second.done == 2 and second.run_id == f"{batch}-{_short(b)}"
        made_a, made_b = _rows(tmp_path / "a.csv"), _rows(tmp_path / "b.csv")
        assert {r["card_no"] for r in made_a} == _card_numbers(a)
        assert {r["card_no"] for r in made_b} == _card_numbers(b)
        assert {r["outcome"] for r in made_b} == {"produced"}
        assert not {r["chip_serial"] for r in made_a} & {r["chip_serial"] for r in made_b}
        # a journal run of b's id made from another file (a digest that differs beyond the
        # short one in the run id): refused whatever the options
        Journal(db, f"{batch}-{_short(c)}").create([], source="x", digest=_short(c) + "00" * 28)
        for options in ({}, {"resume": True}, {"join": True}):
            with pytest.raises(UsageError, match=r"was made from another file .* refusing to mix"):
                LineRun(c, line.spec, keys, db, **options)  # type: ignore[arg-type]
    output = tmp_path / "line" / "output"
    images = {p.stem for p in output.glob("*.json")}
    images = {s for s in images if not s.endswith(".tracks")}
    assert images == {r["chip_serial"] for r in made_a + made_b}
    # images, printed faces and stripes hold personal data: private files, no partial ones
    assert {p.suffix: p.stat().st_mode & 0o777 for p in output.iterdir()} == {
        ".json": 0o600,
        ".png": 0o600,
    }
    assert not [p for p in output.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("journal", ["empty", "other run"])
def test_resume_station_of_a_run_the_journal_does_not_hold_is_refused(
    tmp_path: Path, journal: str
) -> None:
    """A mistyped run id was 'resume requested' and woke nothing."""
    from cardperso.line.journal import JobSeed

    db = tmp_path / "j.db"
    with Database(db) as database:  # a journal without any run, or with another run
        if journal == "other run":
            Journal(database, "B-1a2b3c4d").create([JobSeed(1, "A1")], source="f", digest="d")
    code, output = _invoke("line", "resume-station", "st1", "--run", "B-1a2b3c4e", "--db", db)
    assert code == 2, output
    assert "no run 'B-1a2b3c4e' in this journal" in output
    if journal == "other run":
        code, output = _invoke("line", "resume-station", "st1", "--run", "B-1a2b3c4d", "--db", db)
        assert code == 0 and "station st1 of run B-1a2b3c4d: resume requested" in output


def test_the_same_batch_prepared_again_is_not_made_twice(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The same input and profile prepared again (another creation time: another file) while
    the journal holds the first file's run: a new run or a join is refused (its records would
    be made twice), and so is --resume with the new file; another batch id is a new run."""
    batch = f"again{uuid.uuid4().hex[:6]}"
    first = _prepare(tmp_path / "a", 7, batch)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "batch.csv").write_bytes((tmp_path / "a" / "batch.csv").read_bytes())
    store = SoftwareKeyStore.load(SAMPLE_KEYS)

    def prep(batch_id: str, created: int) -> Path:
        out = tmp_path / "b" / f"{batch_id}-{created}.perso"
        prepare(
            tmp_path / "b" / "batch.csv", load_profile("ssc3-pboc"), store,
            functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), out, tmp_path / "b" / "r.csv",
            PrepOptions(batch_id=batch_id, created=created),
        )  # fmt: skip
        return out

    again = prep(batch, 1_800_000_000)
    assert _short(again) != _short(first)
    line = LineSpec((StationSpec("st1", "/dev/null", "none"),), LineOptions())
    with Database(db_url) as db:
        LineRun(first, line, store, db)._open_run()  # the first file's run, interrupted
        for options in ({}, {"join": True}):
            with pytest.raises(
                UsageError,
                match=rf"this file \(batch '{batch}', file {_short(again)}\) holds the same "
                rf"records as file {_short(first)}, run {batch}-{_short(first)} .* made twice",
            ):
                LineRun(again, line, store, db, **options)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match=rf"--resume: this file .*\(file {_short(first)}, run"):
            LineRun(again, line, store, db, resume=True)
        LineRun(prep(batch + "x", 1_800_000_000), line, store, db)._open_run()  # on purpose


# -- items 3 and 4: the results file ----------------------------------------------------------


def test_results_file_is_written_atomically(tmp_path: Path) -> None:
    """A failure while the results are written leaves the previous file and no temporary one."""
    from cardperso.line.journal import JobSeed

    with Database(tmp_path / "j.db") as db:
        journal = Journal(db, "R-00000000")
        journal.create([JobSeed(1, "A0000001"), JobSeed(2, "A0000002")], source="f", digest="d")
        out = tmp_path / "res" / "results.csv"
        write_results(journal, out)
        assert [r["card_no"] for r in _rows(out)] == ["A0000001", "A0000002"]
        assert out.stat().st_mode & 0o777 == 0o600
        before = out.read_bytes()
        db.execute("DROP TABLE line_jobs")  # the journal fails half-way through the file
        with pytest.raises(Exception, match="line_jobs"):
            write_results(journal, out)
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["results.csv"]


@pytest.mark.parametrize("which", ["PERSO_FILE", "--bank-delivery"])
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_run_refuses_inputs_that_are_not_regular_files(
    tmp_path: Path, which: str, kind: str
) -> None:
    """A FIFO as the perso file hung `run`; /dev/zero as the delivery was read without end."""
    special = tmp_path / "special"
    if kind == "fifo":
        os.mkfifo(special)
    else:
        special.symlink_to("/dev/zero")
    regular = tmp_path / "regular"
    regular.write_bytes(b"{}")
    line = tmp_path / "line.yaml"
    line.write_text("stations: []\n")
    perso, delivery = (special, regular) if which == "PERSO_FILE" else (regular, special)
    code, output = _invoke(
        "run", perso, "--line", line, "--keys", SAMPLE_KEYS, "--db", tmp_path / "j.db",
        "--bank-delivery", delivery,
    )  # fmt: skip
    assert code == 2, output
    assert f"{which} {special} is not a regular file" in output


@pytest.mark.parametrize("which", ["PERSO_FILE", "--keys", "--line", "--db"])
def test_run_refuses_a_results_file_that_is_an_input(tmp_path: Path, which: str) -> None:
    perso = tmp_path / "b.perso"
    perso.write_bytes(b"CPPF not even a perso file")
    keys = tmp_path / "keys.json"
    keys.write_text(SAMPLE_KEYS.read_text())
    line = tmp_path / "line.yaml"
    line.write_text("stations: []\n")
    db = tmp_path / "j.db"
    db.write_bytes(b"")
    target = {"PERSO_FILE": perso, "--keys": keys, "--line": line, "--db": db}[which]
    before = target.read_bytes()
    code, output = _invoke(
        "run", perso, "--line", line, "--keys", keys, "--db", db, "--results", target
    )
    assert code == 2, output
    assert f"--results is the same file as {which}: refusing to overwrite it" in output
    assert target.read_bytes() == before


# -- item 5: pre-flight ------------------------------------------------------------------------


def _store_without(tmp_path: Path, *names: str) -> Path:
    doc = json.loads(SAMPLE_KEYS.read_text())
    for name in names:
        del doc["keys"][name]
    path = tmp_path / "keys-missing.json"
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    return path


@pytest.mark.pcsc
@pytest.mark.parametrize(
    ("missing", "role"),
    [
        ("gp-kmc", "the issuer KMC the per-card keys are diversified from"),
        ("pboc-imk-ac", "the issuer key that verifies the read-back ARQC"),
    ],
)
def test_a_missing_key_refuses_the_start_before_any_card(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path, missing: str, role: str
) -> None:
    perso = _prepare(tmp_path / "b", 1, "PF1")
    keys = _store_without(tmp_path, missing)
    db = tmp_path / "j.db"
    with _sim_line(pcsc_lab, tmp_path / "line", stations=1) as line:
        code, output = _invoke(
            "run", perso, "--line", tmp_path / "line" / "line.yaml", "--keys", keys,
            "--db", db, "--results", tmp_path / "r.csv",
        )  # fmt: skip
        assert code == 2, output
        assert f"pre-flight: key store file:{keys} has no key {missing!r} ({role})" in output
        assert "keys import-components" in output
        _assert_no_card_touched(line)
    assert _runs(db) == 0  # no run was opened: the next start needs no --resume
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.pcsc
def test_bank_delivery_without_the_key_exchange_key_spends_no_card(
    pcsc_lab, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The issue's case: `run --bank-delivery` with a store that lacks `kek-exchange` rejected
    9 blank cards and gave up 3 records; now the start is refused and no card is fed."""
    from cardperso.sim import bank_demo as demo

    perso, _delivery, fstore = demo.factory_batch(tmp_path, 2)
    doc = fstore.to_document()
    del doc["keys"]["kek-exchange"]
    keys = tmp_path / "factory-keys.json"
    keys.write_text(json.dumps(doc))
    os.chmod(keys, 0o600)
    with _sim_line(pcsc_lab, tmp_path / "line", stations=1) as line:
        code, output = _invoke(
            "run", perso, "--line", tmp_path / "line" / "line.yaml", "--keys", keys,
            "--db", tmp_path / "j.db", "--bank-delivery", tmp_path / "delivery.json",
        )  # fmt: skip
        assert code == 2, output
        assert "pre-flight: key store" in output and "'kek-exchange'" in output
        _assert_no_card_touched(line)


@pytest.mark.pcsc
def test_a_missing_reader_refuses_the_start(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    perso = _prepare(tmp_path / "b", 1, "PF2")
    with _sim_line(pcsc_lab, tmp_path / "line", stations=1) as line:
        st = line.spec.stations[0]
        spec = LineSpec((StationSpec(st.name, st.printer, "no such reader 00 00"),), line.options)
        (tmp_path / "bad.yaml").write_text(dump_line(spec))
        code, output = _invoke(
            "run", perso, "--line", tmp_path / "bad.yaml", "--keys", SAMPLE_KEYS,
            "--db", tmp_path / "j.db",
        )  # fmt: skip
        assert code == 3, output
        assert "pre-flight: reader not found (st1: 'no such reader 00 00')" in output
        _assert_no_card_touched(line)


@pytest.mark.pcsc
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("ribbon_out", "ribbon out: replace the ribbon"),
        ("cover_open", "cover open: close the printer cover"),
    ],
)
def test_a_printer_not_ready_refuses_the_start(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path, fault: str, message: str
) -> None:
    perso = _prepare(tmp_path / "b", 1, "PF3")
    with _sim_line(pcsc_lab, tmp_path / "line", stations=1) as line:
        line.stations[0].core.inject(fault)
        with Database(tmp_path / "j.db") as db:
            run = LineRun(perso, line.spec, SoftwareKeyStore.load(SAMPLE_KEYS), db)
            with pytest.raises(
                DeviceError, match=f"pre-flight: station st1: printer .*: {message}"
            ):
                run.run(tmp_path / "r.csv")
        assert _runs(tmp_path / "j.db") == 0
        _assert_no_card_touched(line)


def test_a_changed_profile_refuses_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    perso = _prepare(tmp_path / "b", 1, "PF4", count=1)
    changed = tmp_path / "profiles"
    changed.mkdir()
    text = (ROOT / "profiles" / "ssc3-pboc.yaml").read_text(encoding="utf-8")
    (changed / "ssc3-pboc.yaml").write_text(text.replace("kvn: 0x20", "kvn: 0x21"), "utf-8")
    monkeypatch.setenv("CARDPERSO_PROFILES", str(changed))
    line = LineSpec((StationSpec("st1", "/dev/null", "none"),), LineOptions())
    with (
        Database(tmp_path / "j.db") as db,
        pytest.raises(
            UsageError, match="pre-flight: profile ssc3-pboc changed since the file was prepared"
        ),
    ):
        LineRun(perso, line, SoftwareKeyStore.load(SAMPLE_KEYS), db)


# -- item 15: the card vendor's transport key is not the issuer's KMC --------------------------


def _fresh_store_with_transport_key(tmp_path: Path, transport: bytes) -> Path:
    """`keys generate` (fresh random issuer keys), then the vendor's transport key imported by
    key ceremony from two components (`keys import-components --name gp-transport`)."""
    from cardperso.crypto import kcv, random_bytes, xor

    store = tmp_path / "issuer-keys.json"
    code, output = _invoke("keys", "generate", "--out", store)
    assert code == 0, output
    one = random_bytes(16)
    two = xor(one, transport)
    files = []
    for i, part in enumerate((one, two)):
        path = tmp_path / f"component{i}.hex"
        path.write_text(part.hex().upper())
        files += ["--component-file", path, "--component-kcv", kcv("3DES", part).hex().upper()]
    code, output = _invoke(
        "keys", "import-components", "--store", store, "--name", "gp-transport",
        "--algorithm", "3DES", *files, "--kcv", kcv("3DES", transport).hex().upper(),
    )  # fmt: skip
    assert code == 0, output
    return store


@pytest.mark.pcsc
def test_fresh_issuer_keys_personalize_blanks_opened_with_the_vendor_key(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path
) -> None:
    from cardperso.card.state import GP_TEST_KEY
    from cardperso.card.vcard import VirtualCard
    from cardperso.crypto import random_bytes

    vendor = random_bytes(16)  # neither the GP test key nor the issuer's KMC
    keys = _fresh_store_with_transport_key(tmp_path, vendor)
    fresh = SoftwareKeyStore.load(keys)
    make_batch(tmp_path / "batch.csv", 2, seed=4)
    # the reference product's ODA: the issuer fills the ICC key pool beside its store first
    code, output = _invoke("keys", "pool", "generate", keys, "--bits", "1024", "--count", "2")
    assert code == 0, output
    code, output = _invoke(
        "prep", tmp_path / "batch.csv", "--profile", "ssc3-pboc", "--keys", keys,
        "--out", tmp_path / "batch.perso", "--rejects", tmp_path / "rejects.csv",
    )  # fmt: skip
    assert code == 0, output
    free = [s for s in pcsc_lab.slots if s.card is None][:1]
    line = SimLine(
        1, tmp_path / "line", readers=free, transport_key=vendor,  # type: ignore[arg-type]
        options=LineOptions(card_timeout=5, pause_retry=0.2, stop_after_auth_failures=1),
    )  # fmt: skip
    with line:
        code, output = _invoke(
            "run", tmp_path / "batch.perso", "--line", tmp_path / "line" / "line.yaml",
            "--keys", keys, "--db", tmp_path / "j.db", "--results", tmp_path / "r.csv",
        )  # fmt: skip
    assert code == 0, output
    rows = _rows(tmp_path / "r.csv")
    assert [r["outcome"] for r in rows] == ["produced", "produced"]
    assert not list((tmp_path / "line" / "rejects").iterdir()), "no blank was spent"
    kmc = fresh.diversify_gp("gp-kmc", [bytes(10)], "none", wrap_under=None)[0]
    for r in rows:  # the vendor's key is gone from each card: per-card keys from the issuer KMC
        isd = VirtualCard.load(tmp_path / "line" / "output" / f"{r['chip_serial']}.json").state.isd
        assert [k.kvn for k in isd.keys] == [0x20]
        assert isd.keys[0].enc not in (vendor, GP_TEST_KEY, kmc.enc.secret().value)


@pytest.mark.pcsc
def test_blanks_are_never_opened_with_the_issuer_kmc(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A store whose issuer KMC is the blanks' key but which has no vendor transport key: the
    line refuses to start (before: it opened the blanks with `gp-kmc`)."""
    perso = _prepare(tmp_path / "b", 1, "TK1")
    keys = _store_without(tmp_path, "gp-transport", "gp-transport-aes")  # gp-kmc = GP test key
    with _sim_line(pcsc_lab, tmp_path / "line") as line:
        code, output = _invoke(
            "run", perso, "--line", tmp_path / "line" / "line.yaml", "--keys", keys,
            "--db", tmp_path / "j.db",
        )  # fmt: skip
        assert code == 2, output
        assert (
            "has no key 'gp-transport' (the card vendor's transport key that opens blank cards)"
            in output
        )
        assert "keys import-components --store STORE --name gp-transport --algorithm 3DES" in output
        _assert_no_card_touched(line)


def test_a_profile_that_opens_blanks_with_the_kmc_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = tmp_path / "profiles"
    changed.mkdir()
    text = (ROOT / "profiles" / "ssc3-pboc.yaml").read_text(encoding="utf-8")
    text = text.replace("transport_kmc: gp-transport", "transport_kmc: gp-kmc")
    (changed / "ssc3-pboc.yaml").write_text(text, "utf-8")
    monkeypatch.setenv("CARDPERSO_PROFILES", str(changed))
    perso = _prepare(tmp_path / "b", 1, "TK2", count=1)  # prepared with that profile
    line = LineSpec((StationSpec("st1", "/dev/null", "none"),), LineOptions())
    with (
        Database(tmp_path / "j.db") as db,
        pytest.raises(
            UsageError,
            match="pre-flight: the blank cards' transport key and the issuer KMC are one key "
            r"\('gp-kmc'\)",
        ),
    ):
        LineRun(perso, line, SoftwareKeyStore.load(SAMPLE_KEYS), db)


@pytest.mark.pcsc
def test_sim_cards_makes_blanks_with_the_stores_transport_key(  # type: ignore[no-untyped-def]
    pcsc_slot, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    from cardperso.card.vcard import VirtualCard
    from cardperso.crypto import random_bytes
    from cardperso.devices import pcsc

    vendor = random_bytes(16)
    keys = _fresh_store_with_transport_key(tmp_path, vendor)
    state = tmp_path / "cards"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardperso", "sim", "cards", "--slots", "1",
         "--port", str(pcsc_slot.port), "--state", str(state), "--keys", str(keys)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        pcsc.wait_for_card(pcsc_slot.name, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "(SCP02, the given transport key)" in out and vendor.hex() not in out.lower()
    (keyset,) = VirtualCard.load(state / "card-00.card").state.isd.keys
    assert (keyset.kvn, keyset.enc, keyset.mac, keyset.dek) == (0xFF, vendor, vendor, vendor)
    pcsc.wait_for_removal(pcsc_slot.name, PRESENCE_TIMEOUT)
    code, output = _invoke(
        "sim", "cards", "--slots", "1", "--state", tmp_path / "x", "--transport-key", "zz"
    )
    assert code == 2 and "--transport-key is not hexadecimal" in output


# -- item 14: `sim serve` of a line's output directory --------------------------------------------


def _output_like(directory: Path, count: int) -> list[str]:
    """A directory like a line's output: per card its image, tracks JSON and face PNG."""
    from cardperso.card.vcard import VirtualCard

    directory.mkdir()
    serials = []
    for i in range(count):
        serial = f"5E{i:06X}"
        VirtualCard.create_blank(directory / f"{serial}.json", serial=bytes.fromhex(serial))
        (directory / f"{serial}.tracks.json").write_text(json.dumps({"2": "6214;=2712"}))
        (directory / f"{serial}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        serials.append(serial)
    (directory / "notes.json").write_text('{"format": "something else"}')
    return serials


def _serve(*args: str | Path, until: str):  # type: ignore[no-untyped-def]
    """`cardperso sim serve ...` in a subprocess; returns it and its output up to ``until``."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "cardperso", "sim", "serve", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if until in line or "error:" in line:
            break
    return proc, "".join(lines)


def _stop(proc) -> str:  # type: ignore[no-untyped-def]
    import signal

    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    return str(rest)


def test_sim_serve_takes_card_images_only_and_says_what_it_left(tmp_path: Path) -> None:
    """40 cards with their tracks and faces: the 14 first images are served (tracks, faces and
    other JSON skipped and counted), with a word about the rest (before: the tracks were read as
    images and more than 16 files were refused outright)."""
    serials = _output_like(tmp_path / "output", 40)
    # ports no pcscd entry uses: the slots wait for a reader, which is all this test needs
    proc, out = _serve("--cards", tmp_path / "output", "--port", "36900", until="serving 14 card")
    out += _stop(proc)
    assert "skipped 81 file(s) that are not card images" in out
    assert "serving 14 of 40 cards; choose others with --only SERIAL" in out
    served = [line.split("<-")[1].split()[0] for line in out.splitlines() if "<-" in line]
    assert served == [str(tmp_path / "output" / f"{s}.json") for s in serials[:14]]


def test_sim_serve_only_refuses_unknown_serials_and_too_many(tmp_path: Path) -> None:
    serials = _output_like(tmp_path / "output", 16)
    code, output = _invoke("sim", "serve", "--cards", tmp_path / "output", "--only", "DEADBEEF")
    assert code == 2 and "--only: no card image with chip serial DEADBEEF in" in output
    code, output = _invoke(
        "sim", "serve", "--cards", tmp_path / "output", "--only", ",".join(serials)
    )
    assert code == 2 and "--only names 16 cards; pcscd serves at most 14 at a time" in output
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "a.tracks.json").write_text("{}")
    code, output = _invoke("sim", "serve", "--cards", tmp_path / "none")
    assert code == 2 and "no card images in" in output and "(1 other file(s)" in output
    code, output = _invoke("sim", "serve", "--cards", tmp_path / "output", "--port", "65530")
    assert code == 2 and "--port 65530: 14 slots need ports up to 65543" in output


@pytest.mark.pcsc
def test_sim_serve_only_serves_the_chosen_card(pcsc_slot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cardperso.devices import pcsc
    from cardperso.devices.pcsc import PcscTransport

    serials = _output_like(tmp_path / "output", 20)
    chosen = serials[17].lower()  # serials are matched whatever their case
    proc, out = _serve(
        "--cards", tmp_path / "output", "--port", str(pcsc_slot.port), "--only", chosen,
        until="serving 1 card",
    )  # fmt: skip
    try:
        pcsc.wait_for_card(pcsc_slot.name, 30)
        with PcscTransport(pcsc_slot.name) as t:
            assert t.transmit(bytes.fromhex("00A4040008A000000151000000"))[-2:] == b"\x90\x00"
            assert serials[17] in t.transmit(bytes.fromhex("80CA9F7F00")).hex().upper()
    finally:
        out += _stop(proc)
    assert "serving 1 of 20 cards; chosen with --only" in out
    pcsc.wait_for_removal(pcsc_slot.name, PRESENCE_TIMEOUT)


@pytest.mark.pcsc
def test_a_key_store_fault_mid_run_stops_the_line_and_keeps_the_attempts(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path
) -> None:
    """The key store loses a key after the pre-flight (an HSM session gone, a key deleted): one
    card (suspect, in the reader) goes to the reject box, the line stops, and no record loses
    an attempt (before: every card was rejected until the records were given up)."""
    perso = _prepare(tmp_path / "b", 1, "KS1", count=3)
    keys = SoftwareKeyStore.load(SAMPLE_KEYS)
    with _sim_line(pcsc_lab, tmp_path / "line") as line, Database(tmp_path / "j.db") as db:
        run = LineRun(perso, line.spec, keys, db)  # the pre-flight passes
        del keys._keys["pboc-imk-ac"]
        summary = run.run(tmp_path / "r.csv")
    assert "KeyStoreError" in summary.stopped
    assert "not the card's fault: fix it, then --resume" in summary.stopped
    assert summary.stations[0].rejected == 1, "one suspect card, not one per attempt"
    assert len(list((tmp_path / "line" / "rejects").glob("*.json"))) == 1
    rows = _rows(tmp_path / "r.csv")
    assert [(r["outcome"], r["attempts"]) for r in rows] == [("queued", "0")] * 3


def test_sim_serve_survives_hostile_files_under_a_memory_limit(tmp_path: Path) -> None:
    """A cards directory with a FIFO, a link to /dev/zero, a 1 GiB file that starts like JSON
    and JSON nested a million deep: each is skipped as not a card (no hang, no traceback, no
    memory blow-up: the process runs with 1 GiB of address space)."""
    import subprocess
    import sys

    serials = _output_like(tmp_path / "output", 1)
    out = tmp_path / "output"
    os.mkfifo(out / "a-fifo.json")
    (out / "zero.json").symlink_to("/dev/zero")
    with (out / "huge.json").open("wb") as fh:  # sparse: no disk used
        fh.write(b"{")
        fh.truncate(1 << 30)
    (out / "deep.json").write_text("[" * 1_000_000)
    (out / "deep2.json").write_text('{"format": "cardperso-vcard/1", "card": ' + "[" * 100_000)
    script = f"""
import resource
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from pathlib import Path
from cardperso.cli.sim import select_images
paths, total, others = select_images(Path({str(out)!r}), ())
print([p.name for p in paths], total, others)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == f"['{serials[0]}.json'] 1 8"


_STATION = "stations:\n  - {name: st1, printer: /dev/null, reader: r}\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("zero", "is not a regular file"),
        ("fifo", "is not a regular file"),
        (b"#" * (2 << 20), "is larger than 1 MiB: not a line file"),
        (b"[" * 200_000, "nested too deep for a line file"),
        (b"stations: \xff\xfe", "is not UTF-8 (byte 10)"),
        ("stations:\n" + "  - {name: s, printer: p, reader: r}\n" * 65, "65 stations; a line"),
        (_STATION + "options: {max_attempts: " + "9" * 5000 + "}\n", "a value no line file"),
        (_STATION + "options: {max_attempts: 0}\n", "max_attempts must be between 1 and 100"),
        (_STATION + "options: {card_timeout: .inf}\n", "card_timeout must be between 0.1 and"),
        (_STATION + "options: {pause_retry: .nan}\n", "pause_retry must be between 0.01 and"),
        (_STATION + "options: {output_check: {a: 1}}\n", "option output_check must be a str"),
    ],
)
def test_hostile_line_files_get_one_line_under_a_memory_limit(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    """`cardperso run --line FILE` with a hostile line file: exit 1 and one line naming the
    file and the reason, no traceback, with 1 GiB of address space (before: /dev/zero was read
    whole, deep YAML and bad UTF-8 gave tracebacks, max_attempts 0 gave every record up)."""
    import subprocess
    import sys

    line = tmp_path / "line.yaml"
    if content == "zero":
        line.symlink_to("/dev/zero")
    elif content == "fifo":
        os.mkfifo(line)
    else:
        line.write_bytes(content if isinstance(content, bytes) else content.encode())
    perso = tmp_path / "b.perso"
    perso.write_bytes(b"CPPF")
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from cardperso.cli.main import main\n"
        "sys.argv = ['cardperso', 'run', sys.argv[1], '--line', sys.argv[2], '--keys', "
        "sys.argv[3], '--db', sys.argv[4]]\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(perso), str(line), str(SAMPLE_KEYS),
         str(tmp_path / "j.db")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert message in output and output.count("\n") == 1


@pytest.mark.pcsc
def test_cards_that_never_reach_the_reader_stop_the_line_without_giving_records_up(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path
) -> None:
    """The printer parks its cards at another reader than the line file names (a miswired
    contact station): before, every parked card was rejected and counted against its record
    until the records were given up; now 3 untouched cards in a row stop the line and every
    record keeps its attempts."""
    perso = _prepare(tmp_path / "b", 1, "NC1", count=2)
    free = [s for s in pcsc_lab.slots if s.card is None][:2]
    assert len(free) == 2, "the lab lent this session too few free readers"
    options = LineOptions(card_timeout=1, pause_retry=0.2, max_attempts=3)
    line = SimLine(1, tmp_path / "line", readers=free[:1], options=options)  # type: ignore[arg-type]
    with line, Database(tmp_path / "j.db") as db:
        st = line.spec.stations[0]
        miswired = LineSpec((StationSpec(st.name, st.printer, free[1].name),), options)
        summary = LineRun(perso, miswired, SoftwareKeyStore.load(SAMPLE_KEYS), db).run(
            tmp_path / "r.csv"
        )
    assert "3 parked cards in a row never reached it" in summary.stopped
    assert "not the card's fault" in summary.stopped
    assert summary.stations[0].rejected == 3
    assert [(r["outcome"], r["attempts"]) for r in _rows(tmp_path / "r.csv")] == [
        ("queued", "0"),
        ("queued", "0"),
    ]
