"""The line's durable journal: every irreversible step of every card, committed before it counts.

Jobs live in ``line_jobs`` (one row per record of a run) and every step is appended to
``line_events``. Each state change is one transaction through :mod:`cardperso.line.jobs`' table,
so a run killed at any moment (SIGKILL included) resumes from a consistent journal:

* a job ``queued`` is simply made later;
* a job ``encoding`` or ``chip_done`` was on a station when the run died: its card is suspect,
  so :meth:`Journal.recover` rejects it and queues the record again (new card);
* a job ``done`` is never made again.

The same tables work on SQLite (WAL, one line) and PostgreSQL (several lines; claims use
``FOR UPDATE SKIP LOCKED`` and heartbeats so a dead line's claims are released after a timeout).
No personal data is journaled beyond the card number and a masked identity number.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cardperso.errors import UsageError
from cardperso.line import jobs
from cardperso.storage.db import Database


@dataclass(frozen=True, slots=True)
class Job:
    run_id: str
    index: int
    card_no: str
    state: str
    attempts: int
    station: str | None = None


@dataclass(frozen=True, slots=True)
class JobSeed:
    """What the journal needs to know of a record: its position and card number."""

    index: int
    card_no: str
    ssn_masked: str = ""


def _schema(db: Database) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS line_runs (run_id TEXT PRIMARY KEY, source TEXT, "
        "digest TEXT, records INTEGER, max_attempts INTEGER, created_at DOUBLE PRECISION)",
        "CREATE TABLE IF NOT EXISTS line_jobs (run_id TEXT NOT NULL, record_index INTEGER NOT NULL, "
        "card_no TEXT, ssn_masked TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "station TEXT, heartbeat_at DOUBLE PRECISION, chip_serial TEXT, atr TEXT, card_id_code TEXT, "
        "pan_masked TEXT, reason TEXT, updated_at DOUBLE PRECISION, "
        "PRIMARY KEY (run_id, record_index))",
        "CREATE INDEX IF NOT EXISTS line_jobs_state ON line_jobs (run_id, state, record_index)",
        f"CREATE TABLE IF NOT EXISTS line_events (id {db.autoincrement}, run_id TEXT, "
        "record_index INTEGER, attempt INTEGER, station TEXT, event TEXT, state TEXT, "
        "chip_serial TEXT, detail TEXT, at DOUBLE PRECISION)",
    ]


class Journal:
    """The journal of one run (one personalization file) in a database."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        db.script(_schema(db))
        row = db.execute("SELECT max_attempts FROM line_runs WHERE run_id = ?", (run_id,))
        self.max_attempts = int(row[0][0]) if row else 3

    # -- creating and resuming -------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.db.execute("SELECT 1 FROM line_runs WHERE run_id = ?", (self.run_id,)))

    def create(
        self, seeds: Iterable[JobSeed], *, source: str, digest: str, max_attempts: int = 3
    ) -> None:
        """Create the run and one queued job per record (refused if the run exists)."""
        rows = [
            (self.run_id, s.index, s.card_no, s.ssn_masked, jobs.QUEUED, 0, time.time())
            for s in seeds
        ]
        with self.db.transaction():
            if self.exists():
                raise UsageError(f"run {self.run_id} already exists in the journal; use --resume")
            self.db.execute(
                "INSERT INTO line_runs (run_id, source, digest, records, max_attempts, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self.run_id, source, digest, len(rows), max_attempts, time.time()),
            )
            self.db.executemany(
                "INSERT INTO line_jobs (run_id, record_index, card_no, ssn_masked, state, attempts, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self.max_attempts = max_attempts

    def digest(self) -> str:
        row = self.db.execute("SELECT digest FROM line_runs WHERE run_id = ?", (self.run_id,))
        return str(row[0][0]) if row else ""

    # -- state changes (each one transaction through the transition table) -----------------
    def _move(
        self,
        job: Job,
        event: str,
        *,
        station: str | None = None,
        detail: str = "",
        **columns: object,
    ) -> Job:
        rows = self.db.execute(
            "SELECT state, attempts FROM line_jobs WHERE run_id = ? AND record_index = ?"
            + self.db.for_update,
            (self.run_id, job.index),
        )
        if not rows:
            raise UsageError(f"record {job.index} is not in run {self.run_id}")
        state, attempts = rows[0]
        new_state = jobs.next_state(state, event)
        sets = ", ".join(f"{name} = ?" for name in columns)
        params: list[object] = [new_state, time.time(), *columns.values()]
        self.db.execute(
            f"UPDATE line_jobs SET state = ?, updated_at = ?{', ' + sets if sets else ''} "
            "WHERE run_id = ? AND record_index = ?",
            (*params, self.run_id, job.index),
        )
        self.db.execute(
            "INSERT INTO line_events (run_id, record_index, attempt, station, event, state, "
            "chip_serial, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.run_id,
                job.index,
                attempts,
                station or job.station,
                event,
                new_state,
                columns.get("chip_serial"),
                detail,
                time.time(),
            ),
        )
        return Job(
            self.run_id, job.index, job.card_no, new_state, int(attempts), station or job.station
        )

    def claim(self, station: str) -> Job | None:
        """Claim the next queued job for ``station`` (attempts + 1), or ``None`` when none is left."""
        with self.db.transaction():
            rows = self.db.execute(
                "SELECT record_index, card_no, attempts FROM line_jobs WHERE run_id = ? AND state = ? "
                "ORDER BY record_index LIMIT 1" + self.db.skip_locked,
                (self.run_id, jobs.QUEUED),
            )
            if not rows:
                return None
            index, card_no, attempts = rows[0]
            job = Job(self.run_id, int(index), str(card_no), jobs.QUEUED, int(attempts), station)
            self.db.execute(
                "UPDATE line_jobs SET attempts = attempts + 1 WHERE run_id = ? AND record_index = ?",
                (self.run_id, job.index),
            )
            return self._move(job, "claim", station=station, heartbeat_at=time.time())

    def heartbeat(self, job: Job) -> None:
        self.db.execute(
            "UPDATE line_jobs SET heartbeat_at = ? WHERE run_id = ? AND record_index = ?",
            (time.time(), self.run_id, job.index),
        )

    def chip_ok(
        self, job: Job, *, chip_serial: str, atr: str, card_id_code: str = "", pan_masked: str = ""
    ) -> Job:
        with self.db.transaction():
            return self._move(
                job,
                "chip_ok",
                chip_serial=chip_serial,
                atr=atr,
                card_id_code=card_id_code,
                pan_masked=pan_masked,
            )

    def printed(self, job: Job) -> Job:
        with self.db.transaction():
            return self._move(job, "printed", reason=None)

    def fail(self, job: Job, reason: str, *, chip_serial: str | None = None) -> Job:
        """The card failed: it goes to the reject box; the record is queued again or given up."""
        with self.db.transaction():
            attempts = self._attempts(job)
            event = jobs.failure_event(attempts, self.max_attempts)
            return self._move(
                job,
                event,
                detail=reason,
                reason=reason,
                **({"chip_serial": chip_serial} if chip_serial else {}),
            )

    def _attempts(self, job: Job) -> int:
        rows = self.db.execute(
            "SELECT attempts FROM line_jobs WHERE run_id = ? AND record_index = ?",
            (self.run_id, job.index),
        )
        return int(rows[0][0])

    def recover(
        self,
        *,
        stale_after: float | None = None,
        station: str | None = None,
        in_output: Callable[[str], bool] | None = None,
    ) -> list[Job]:
        """Jobs that were on a station when a run died (or whose claim went stale) are suspect:
        queue their records again (or give up when out of attempts). A ``chip_done`` job whose
        card ``in_output(chip_serial)`` finds in the output hopper was finished: it is done.
        Returns the suspects."""
        query = (
            "SELECT record_index, card_no, state, attempts, station, chip_serial FROM line_jobs "
            "WHERE run_id = ? AND state IN (?, ?)"
        )
        params: list[object] = [self.run_id, jobs.ENCODING, jobs.CHIP_DONE]
        if stale_after is not None:
            query += " AND (heartbeat_at IS NULL OR heartbeat_at < ?)"
            params.append(time.time() - stale_after)
        if station is not None:
            query += " AND station = ?"
            params.append(station)
        suspects: list[Job] = []
        with self.db.transaction():
            rows = self.db.execute(query + self.db.skip_locked, params)
            for index, card_no, state, attempts, st, serial in rows:
                job = Job(self.run_id, int(index), str(card_no), str(state), int(attempts), st)
                if (
                    state == jobs.CHIP_DONE
                    and serial
                    and in_output is not None
                    and in_output(str(serial))
                ):
                    self._move(
                        job,
                        "recover_printed",
                        detail="found in the output hopper after an interrupted run",
                    )
                    continue
                event = jobs.failure_event(int(attempts), self.max_attempts, recovering=True)
                self._move(
                    job,
                    event,
                    detail="suspect: the run stopped while this card was on a station",
                    reason="suspect card after an interrupted run",
                )
                suspects.append(job)
        return suspects

    # -- reading ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT state, COUNT(*) FROM line_jobs WHERE run_id = ? GROUP BY state", (self.run_id,)
        )
        out = dict.fromkeys(jobs.STATES, 0)
        out.update({str(s): int(n) for s, n in rows})
        return out

    def results(self) -> list[dict[str, object]]:
        cols = (
            "record_index",
            "card_no",
            "ssn_masked",
            "state",
            "attempts",
            "station",
            "chip_serial",
            "atr",
            "card_id_code",
            "pan_masked",
            "reason",
        )
        rows = self.db.execute(
            f"SELECT {', '.join(cols)} FROM line_jobs WHERE run_id = ? ORDER BY record_index",
            (self.run_id,),
        )
        return [dict(zip(cols, r)) for r in rows]

    def events(self) -> list[tuple[int, str, str, str | None]]:
        rows = self.db.execute(
            "SELECT record_index, event, state, chip_serial FROM line_events WHERE run_id = ? ORDER BY id",
            (self.run_id,),
        )
        return [(int(a), str(b), str(c), d) for a, b, c, d in rows]
