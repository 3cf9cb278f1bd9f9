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

Several lines, one run
----------------------
Lines that *join* a run (``cardperso run --join``) share it: :meth:`Journal.create_or_join`
creates the run if it is absent, atomically (``INSERT … ON CONFLICT DO NOTHING``), else joins
it. Each line holds its stations in ``line_members`` (:meth:`Journal.hold_stations`: a station
name belongs to one live line) and beats (:meth:`Journal.beat`) every second or so: the beat
refreshes the member rows and ``heartbeat_at`` of every job its stations hold. A job whose
heartbeat is older than ``stale_after`` belonged to a line that died: any live line releases it
(:meth:`Journal.recover` with ``stale_after``), the record is made again on a new card (or found
in the output hopper). A line never touches a job whose heartbeat is fresh, and a state change
on a job checks that the claim is still the caller's (station and attempt), so a line that
lost its claim (its beat stopped too long) gets :class:`ClaimLost` instead of overwriting
another line's work.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cardperso.errors import UsageError
from cardperso.line import jobs
from cardperso.line.control import control_table
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


class ClaimLost(UsageError):
    """The job is no longer this station's claim (another line released and took it)."""


def schema(db: Database) -> list[str]:
    """The journal's tables (``CREATE … IF NOT EXISTS``; also migration 1 of ``db upgrade``)."""
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
        "CREATE TABLE IF NOT EXISTS line_members (run_id TEXT NOT NULL, station TEXT NOT NULL, "
        "member TEXT NOT NULL, heartbeat_at DOUBLE PRECISION NOT NULL, "
        "PRIMARY KEY (run_id, station))",
        control_table(db),
    ]


class Journal:
    """The journal of one run (one personalization file) in a database."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        db.script(schema(db))
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

    def create_or_join(
        self, seeds: Iterable[JobSeed], *, source: str, digest: str, max_attempts: int = 3
    ) -> bool:
        """Create the run if it is absent (True), else join it (False); atomic, so lines
        started together create it once. Joining a run of another profile digest is refused."""
        now = time.time()
        with self.db.transaction():
            created = self.db.execute(
                "INSERT INTO line_runs (run_id, source, digest, records, max_attempts, created_at) "
                "VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
                (self.run_id, source, digest, max_attempts, now),
            )
            if created:
                rows = [
                    (self.run_id, s.index, s.card_no, s.ssn_masked, jobs.QUEUED, 0, now)
                    for s in seeds
                ]
                self.db.executemany(
                    "INSERT INTO line_jobs (run_id, record_index, card_no, ssn_masked, state, "
                    "attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self.db.execute(
                    "UPDATE line_runs SET records = ? WHERE run_id = ?", (len(rows), self.run_id)
                )
                self.max_attempts = max_attempts
                return True
        row = self.db.execute(
            "SELECT digest, max_attempts FROM line_runs WHERE run_id = ?", (self.run_id,)
        )
        if str(row[0][0]) != digest:
            raise UsageError(f"run {self.run_id} in the journal was made from another file")
        self.max_attempts = int(row[0][1])
        return False

    # -- lines sharing a run ---------------------------------------------------------------
    def hold_stations(self, member: str, stations: Iterable[str], *, stale_after: float) -> None:
        """Take ``stations`` for ``member`` (a line process): refused while another live line
        holds one of them (its beat is fresher than ``stale_after``, or it runs on this host)."""
        now = time.time()
        with self.db.transaction():
            for station in stations:
                rows = self.db.execute(
                    "SELECT member, heartbeat_at FROM line_members WHERE run_id = ? AND station = ?"
                    + self.db.for_update,
                    (self.run_id, station),
                )
                if rows:
                    other, beat = str(rows[0][0]), float(rows[0][1])
                    if other != member and now - beat < stale_after and _alive(other):
                        raise UsageError(
                            f"station {station} of run {self.run_id} is held by a live line "
                            f"({other.rsplit(':', 1)[0]}): station names must be unique per run"
                        )
                    self.db.execute(
                        "UPDATE line_members SET member = ?, heartbeat_at = ? "
                        "WHERE run_id = ? AND station = ?",
                        (member, now, self.run_id, station),
                    )
                else:
                    self.db.execute(
                        "INSERT INTO line_members (run_id, station, member, heartbeat_at) "
                        "VALUES (?, ?, ?, ?)",
                        (self.run_id, station, member, now),
                    )

    def beat(self, member: str, stations: Iterable[str]) -> None:
        """The heartbeat of a line: its member rows and the jobs its stations hold."""
        names = list(stations)
        if not names:
            return
        marks = ", ".join("?" for _ in names)
        now = time.time()
        with self.db.transaction():
            self.db.execute(
                "UPDATE line_members SET heartbeat_at = ? WHERE run_id = ? AND member = ?",
                (now, self.run_id, member),
            )
            self.db.execute(
                f"UPDATE line_jobs SET heartbeat_at = ? WHERE run_id = ? AND state IN (?, ?) "
                f"AND station IN ({marks})",
                (now, self.run_id, jobs.ENCODING, jobs.CHIP_DONE, *names),
            )

    def release_stations(self, member: str) -> None:
        self.db.execute(
            "DELETE FROM line_members WHERE run_id = ? AND member = ?", (self.run_id, member)
        )

    def confirm(self, job: Job) -> None:
        """Check that ``job`` is still the caller's claim (before an irreversible step) and
        refresh its heartbeat; :class:`ClaimLost` otherwise."""
        with self.db.transaction():
            self._owned(job)
            self.db.execute(
                "UPDATE line_jobs SET heartbeat_at = ? WHERE run_id = ? AND record_index = ?",
                (time.time(), self.run_id, job.index),
            )

    def _owned(self, job: Job) -> tuple[str, int]:
        rows = self.db.execute(
            "SELECT state, attempts, station FROM line_jobs WHERE run_id = ? AND record_index = ?"
            + self.db.for_update,
            (self.run_id, job.index),
        )
        if not rows:
            raise UsageError(f"record {job.index} is not in run {self.run_id}")
        state, attempts, station = rows[0]
        if (
            job.station is not None
            and job.state in jobs.IN_FLIGHT
            and (
                station != job.station
                or int(attempts) != job.attempts
                or state not in jobs.IN_FLIGHT
            )
        ):
            raise ClaimLost(
                f"record {job.index}: the claim of station {job.station} (attempt "
                f"{job.attempts}) was released; the record is now {state} on "
                f"{station or 'no station'}"
            )
        return str(state), int(attempts)

    def in_flight(self) -> int:
        """Jobs on a station somewhere (this line or another)."""
        rows = self.db.execute(
            "SELECT COUNT(*) FROM line_jobs WHERE run_id = ? AND state IN (?, ?)",
            (self.run_id, jobs.ENCODING, jobs.CHIP_DONE),
        )
        return int(rows[0][0])

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
        state, attempts = self._owned(job)
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
                "UPDATE line_jobs SET attempts = attempts + 1, station = ? "
                "WHERE run_id = ? AND record_index = ?",
                (station, self.run_id, job.index),
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

    def release(self, job: Job, reason: str) -> Job:
        """Not the card's fault (the station's key store or reader failed): the record is
        queued again and the attempt it used is given back."""
        with self.db.transaction():
            moved = self._move(job, "release", detail=reason, reason=reason)
            self.db.execute(
                "UPDATE line_jobs SET attempts = attempts - 1 WHERE run_id = ? AND "
                "record_index = ? AND attempts > 0",
                (self.run_id, job.index),
            )
            return moved

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


def member_id() -> str:
    """This process as a line member: ``host:pid:nonce``."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def _alive(member: str) -> bool:
    """False when ``member`` ran on this host and its process is gone (a killed line);
    True otherwise (another host's line is judged by its heartbeat alone)."""
    host, _, rest = member.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
