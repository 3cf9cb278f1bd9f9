"""Tests that kill mutants of the production line which survived the suites that need no PC/SC
or PostgreSQL (issue 18): the results file's columns, the output-hopper check after an
interrupted run, and :class:`ClaimLost`.

What already covered them, and why it was not enough:
* results columns: ``test_line.py``, ``test_line_crash.py``, ``test_cli_line.py`` (PC/SC) read
  only ``record``, ``outcome``, ``chip_serial`` and ``card_no``; the other seven names (which
  the registry's ``read_results_file`` and operators read) were asserted nowhere;
* output hopper: only ``test_line_crash.py`` (PC/SC, slow) can reach it, and only when a random
  SIGKILL happens to land between a chip's encoding and the journal's ``printed``;
* ``ClaimLost``: ``test_multiline.py`` (PostgreSQL) raises it, without checking its message.
The journal tests below run on SQLite (a real database); the hopper check through the line
runs on the PC/SC lab (pcscd + vpcd + printers on ptys)."""

from __future__ import annotations

import csv
import functools
import sqlite3
from pathlib import Path

import pytest

from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.journal import ClaimLost, JobSeed, Journal
from cardperso.line.linefile import LineOptions
from cardperso.line.runner import run_line, write_results
from cardperso.prep.container import iter_records
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from cardperso.registry.production import LineResult, read_results_file
from cardperso.sim.line import SimLine
from cardperso.storage.db import Database

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_KEYS = ROOT / "keys-sample" / "keys.json"

# the results file's header, as docs and the registry read it (README: record -> chip serial
# -> ATR -> card identification code -> outcome)
COLUMNS = [
    "record",
    "card_no",
    "ssn_masked",
    "outcome",
    "attempts",
    "station",
    "chip_serial",
    "atr",
    "card_id_code",
    "pan_masked",
    "reject_reason",
]


def _journal(tmp_path: Path, run_id: str = "R1", n: int = 3) -> Journal:
    journal = Journal(Database(tmp_path / "journal.db"), run_id)
    seeds = [JobSeed(10 + i, f"C{i:08d}", f"3604261991****{i:04d}") for i in range(n)]
    journal.create(seeds, source="batch.perso", digest="d", max_attempts=1)
    return journal


def test_results_file_columns_and_values(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    made = journal.claim("st1")
    assert made is not None
    made = journal.chip_ok(
        made, chip_serial="0A0B0C0D", atr="3B00", card_id_code="CID1", pan_masked="622848*0000"
    )
    journal.printed(made)
    bad = journal.claim("st2")
    assert bad is not None
    journal.fail(bad, "mute card", chip_serial="01020304")
    path = tmp_path / "out" / "results.csv"
    write_results(journal, path)
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        COLUMNS,
        ["10", "C00000000", "3604261991****0000", "produced", "1", "st1", "0A0B0C0D", "3B00",
         "CID1", "622848*0000", ""],
        ["11", "C00000001", "3604261991****0001", "rejected", "1", "st2", "01020304", "", "",
         "", "mute card"],
        ["12", "C00000002", "3604261991****0002", "queued", "0", "", "", "", "", "", ""],
    ]  # fmt: skip
    # and the registry reads what the line writes
    assert read_results_file(path) == [
        LineResult("C00000000", "produced", "0A0B0C0D", "3B00", "CID1", "622848*0000", ""),
        LineResult("C00000001", "rejected", "01020304", "", "", "", "mute card"),
        LineResult("C00000002", "queued"),
    ]


def test_claim_lost_after_the_claim_was_released(tmp_path: Path) -> None:
    """A station whose claim was released (its heartbeat went stale and another sweep queued
    the record again) gets ClaimLost, and its late step changes nothing."""
    journal = _journal(tmp_path, n=1)
    job = journal.claim("st1")
    assert job is not None
    journal.confirm(job)  # still ours: no error
    db = sqlite3.connect(tmp_path / "journal.db")
    with db:
        db.execute("UPDATE line_jobs SET heartbeat_at = heartbeat_at - 10")
    db.close()
    assert [j.index for j in journal.recover(stale_after=5)] == [10]
    msg = r"record 10: the claim of station st1 \(attempt 1\) was released; the record is now"
    with pytest.raises(ClaimLost, match=msg + " failed on st1"):
        journal.confirm(job)
    with pytest.raises(ClaimLost, match=msg):
        journal.chip_ok(job, chip_serial="0A0B0C0D", atr="3B")
    (row,) = journal.results()
    assert (row["state"], row["chip_serial"]) == ("failed", None)


def test_claim_of_a_requeued_record_is_lost_to_the_next_attempt(tmp_path: Path) -> None:
    journal = Journal(Database(tmp_path / "journal.db"), "R2")
    journal.create([JobSeed(1, "C1")], source="s", digest="d", max_attempts=3)
    first = journal.claim("st1")
    assert first is not None
    assert [j.index for j in journal.recover(stale_after=-1)] == [1]  # requeued (attempt 1 of 3)
    second = journal.claim("st1")  # the same station claims the record again: attempt 2
    assert second is not None and second.attempts == 2
    with pytest.raises(
        ClaimLost, match=r"st1 \(attempt 1\) was released; the record is now encoding on st1"
    ):
        journal.confirm(first)
    journal.confirm(second)


def test_recover_trusts_the_output_hopper(tmp_path: Path) -> None:
    """After an interrupted run, a chip_done card that is in the output hopper was finished
    (done, not made again); one that is not there is suspect and its record is queued again."""
    journal = Journal(Database(tmp_path / "journal.db"), "R3")
    journal.create([JobSeed(1, "C1"), JobSeed(2, "C2")], source="s", digest="d", max_attempts=3)
    for serial in ("AAAA0001", "AAAA0002"):
        job = journal.claim("st1")
        assert job is not None
        journal.chip_ok(job, chip_serial=serial, atr="3B")
    asked: list[str] = []

    def in_output(serial: str) -> bool:
        asked.append(serial)
        return serial == "AAAA0001"

    suspects = journal.recover(in_output=in_output)
    assert sorted(asked) == ["AAAA0001", "AAAA0002"]
    assert [j.index for j in suspects] == [2]
    rows = {r["record_index"]: r for r in journal.results()}
    assert (rows[1]["state"], rows[1]["reason"]) == ("done", None)
    assert (rows[2]["state"], rows[2]["reason"]) == (
        "queued",
        "suspect card after an interrupted run",
    )
    assert rows[1]["chip_serial"] == "AAAA0001"
    assert journal.events()[-2:] == [
        (1, "recover_printed", "done", None),
        (2, "recover", "queued", None),
    ]


def _results(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return {r["record"]: r for r in csv.DictReader(fh)}


@pytest.mark.pcsc
def test_resume_takes_finished_cards_from_the_output_hopper(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`run --resume` after a crash that left two records chip_done (encoded, `printed` never
    journaled): the card found in the line's output directory is done, with no new attempt;
    the one that is not there is made again on a new card."""
    make_batch(tmp_path / "batch.csv", 3, seed=18)
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    perso = tmp_path / "batch.perso"
    prepare(
        tmp_path / "batch.csv", load_profile("ssc3-pboc"), store,
        functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), perso, tmp_path / "rejects.csv",
        PrepOptions(batch_id="HOPPER", created=1_700_000_000),
    )  # fmt: skip
    output = tmp_path / "line" / "output"
    line = SimLine(
        1,
        tmp_path / "line",
        readers=[pcsc_lab.free_slot()],
        options=LineOptions(card_timeout=5, pause_retry=0.2, output_check=str(output)),
    )
    results = tmp_path / "results.csv"
    with line:
        summary = run_line(perso, line.spec, store, Database(tmp_path / "j.db"), results)
        assert summary.done == 3
        first = _results(results)
        kept, lost = sorted(first)[:2]
        # the crash: both records back to chip_done; the second card never reached the hopper
        (output / f"{first[lost]['chip_serial']}.json").rename(tmp_path / "lost-card.json")
        db = sqlite3.connect(tmp_path / "j.db")
        with db:
            db.execute(
                "UPDATE line_jobs SET state = 'chip_done' WHERE record_index IN (?, ?)",
                (int(kept), int(lost)),
            )
        db.close()
        summary = run_line(
            perso, line.spec, store, Database(tmp_path / "j.db"), results, resume=True
        )
    again = _results(results)
    assert sorted(again) == sorted(str(n) for n, _ in iter_records(perso))
    assert {r["outcome"] for r in again.values()} == {"produced"}
    assert (again[kept]["attempts"], again[kept]["chip_serial"]) == (
        "1",
        first[kept]["chip_serial"],
    )
    assert again[lost]["attempts"] == "2"
    assert again[lost]["chip_serial"] != first[lost]["chip_serial"]
    assert (output / f"{again[lost]['chip_serial']}.json").exists()
