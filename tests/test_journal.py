"""The line journal: transition table, claims, failures, recovery; SQLite and real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cardperso.errors import IllegalTransition, UsageError
from cardperso.line import jobs
from cardperso.line.journal import JobSeed, Journal
from cardperso.storage.db import Database

PG_URL = os.environ.get("CARDPERSO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(tmp_path / "journal.db")
    return Database(PG_URL)


def _journal(db: Database, n: int = 3, max_attempts: int = 2) -> Journal:
    journal = Journal(db, f"run-{uuid.uuid4().hex[:10]}")
    journal.create(
        [JobSeed(i, f"CARD{i:05d}") for i in range(n)],
        source="t.perso",
        digest="d",
        max_attempts=max_attempts,
    )
    return journal


def test_transition_table_refuses_illegal_moves() -> None:
    assert jobs.next_state("queued", "claim") == "encoding"
    with pytest.raises(IllegalTransition, match="printed"):
        jobs.next_state("queued", "printed")
    with pytest.raises(IllegalTransition, match="card job: 'retry' is not allowed in state 'done'"):
        jobs.next_state("done", "retry")


def test_happy_path_and_counts(db: Database) -> None:
    journal = _journal(db, 2)
    a = journal.claim("st1")
    b = journal.claim("st2")
    assert a and b and (a.index, b.index) == (0, 1)
    assert journal.claim("st3") is None
    journal.chip_ok(a, chip_serial="11223344", atr="3B00")
    journal.printed(a)
    assert journal.counts()["done"] == 1 and journal.counts()["encoding"] == 1
    with pytest.raises(IllegalTransition, match="'printed' is not allowed in state 'encoding'"):
        journal.printed(b)  # chip not done yet


def test_failure_requeues_until_attempts_run_out(db: Database) -> None:
    journal = _journal(db, 1, max_attempts=2)
    job = journal.claim("st1")
    assert job is not None
    assert journal.fail(job, "card refused STORE DATA (6A80)").state == "queued"
    job = journal.claim("st1")
    assert job is not None
    assert journal.fail(job, "mute card").state == "failed"
    assert journal.claim("st1") is None
    row = journal.results()[0]
    assert row["state"] == "failed" and row["attempts"] == 2 and row["reason"] == "mute card"


def test_recover_turns_in_flight_jobs_into_suspects(db: Database) -> None:
    journal = _journal(db, 3, max_attempts=3)
    a = journal.claim("st1")
    b = journal.claim("st2")
    assert a and b
    journal.chip_ok(b, chip_serial="01020304", atr="3B00")
    suspects = journal.recover()
    assert sorted(s.index for s in suspects) == [0, 1]
    assert journal.counts() == {"queued": 3, "encoding": 0, "chip_done": 0, "done": 0, "failed": 0}
    assert "recover" in {e[1] for e in journal.events()}


def test_run_cannot_be_created_twice(db: Database) -> None:
    journal = _journal(db, 1)
    again = Journal(db, journal.run_id)
    with pytest.raises(UsageError, match="--resume"):
        again.create([JobSeed(0, "X")], source="s", digest="d")


_WORKER = r"""
import sys, time
from cardperso.line.journal import Journal
from cardperso.storage.db import Database
db = Database(sys.argv[1]); j = Journal(db, sys.argv[2])
j.recover()
while (job := j.claim("st")) is not None:
    j.chip_ok(job, chip_serial=f"{job.index:08X}", atr="3B")
    j.printed(job)
    print(job.index, flush=True)
"""


@pytest.mark.parametrize("kills", [3])
def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path, kills: int) -> None:
    url = str(tmp_path / "kill.db")
    journal = _journal(Database(url), 300, max_attempts=5)
    for k in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, journal.run_id], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        for _ in range(20 + 17 * k):  # let it make some cards, then kill it mid-way
            if not proc.stdout.readline():
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    subprocess.run(
        [sys.executable, "-c", _WORKER, url, journal.run_id], check=True, capture_output=True
    )
    rows = journal.results()
    assert [r["record_index"] for r in rows] == list(range(300))
    assert all(r["state"] == "done" for r in rows)
    printed = [e for e in journal.events() if e[1] == "printed"]
    assert sorted(e[0] for e in printed) == list(range(300)), "every record printed exactly once"
