"""The factory floor's read model: runs and their progress, each station's state and current
card, throughput, rejects with their reason, result files, and a rejected card's face.

Everything comes from the line's journal (``line_runs``, ``line_jobs``, ``line_events``), the
stations' board the runner publishes (:mod:`cardperso.line.stations`) and the line's own
results files; resuming a station is :func:`cardperso.line.control.request_resume`, the
request ``cardperso line resume-station`` makes. The journal holds identity numbers masked
only; card numbers are masked here (:func:`cardperso.codec.numbers.mask_id`), and so is the
identity number (with the card number and the PAN) on a rejected card's face.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cardperso.codec.numbers import mask_id
from cardperso.devices import cardface
from cardperso.errors import CardPersoError, UsageError
from cardperso.keystore.base import KeyStore
from cardperso.layouts.persofile import PersoHeader
from cardperso.line import jobs
from cardperso.line.results import RESULT_COLUMNS
from cardperso.line.stations import read_board
from cardperso.prep.container import iter_records, verify
from cardperso.storage.db import Database

#: Throughput is the cards finished in the last ``WINDOW`` seconds, per hour.
WINDOW: Final = 300.0
#: Events that send a card to the reject box (the reason is the event's detail).
REJECT_EVENTS: Final = ("retry", "give_up", "recover", "recover_give_up", "release")
#: Face fields that hold an identity number, a card number or a PAN: masked on the face shown.
MASKED_FACE_FIELDS: Final = frozenset({"ssn", "card_no", "pan"})


@dataclass(frozen=True, slots=True)
class RunView:
    run_id: str
    source: str
    records: int
    created_at: float
    counts: dict[str, int]
    cards_per_hour: float

    @property
    def finished(self) -> int:
        return self.counts[jobs.DONE] + self.counts[jobs.FAILED]

    @property
    def percent(self) -> int:
        return int(100 * self.finished / self.records) if self.records else 100


@dataclass(frozen=True, slots=True)
class StationView:
    name: str
    state: str
    message: str
    made: int
    rejected: int
    card_no_masked: str
    ssn_masked: str


@dataclass(frozen=True, slots=True)
class RejectView:
    index: int
    station: str
    reason: str
    at: float
    card_no_masked: str
    ssn_masked: str
    chip_serial: str


def _has_journal(db: Database) -> bool:
    if db.dialect == "postgres":
        return bool(db.execute("SELECT to_regclass('line_runs') IS NOT NULL")[0][0])
    return bool(
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'line_runs'")
    )


def _counts(db: Database, run_id: str) -> dict[str, int]:
    out = dict.fromkeys(jobs.STATES, 0)
    rows = db.execute(
        "SELECT state, COUNT(*) FROM line_jobs WHERE run_id = ? GROUP BY state", (run_id,)
    )
    out.update({str(s): int(n) for s, n in rows})
    return out


def throughput(db: Database, run_id: str, now: float | None = None) -> float:
    """Cards finished per hour over the last :data:`WINDOW` seconds (or since the run's first
    claim when it is younger)."""
    now = time.time() if now is None else now
    since = now - WINDOW
    first = db.execute(
        "SELECT MIN(at) FROM line_events WHERE run_id = ? AND event = 'claim'", (run_id,)
    )[0][0]
    if first is None:
        return 0.0
    start = max(since, float(first))
    done = int(
        db.execute(
            "SELECT COUNT(*) FROM line_events WHERE run_id = ? AND event IN "
            "('printed', 'recover_printed') AND at >= ?",
            (run_id, start),
        )[0][0]
    )
    return done * 3600.0 / (now - start) if now > start else 0.0


def runs(db: Database, limit: int = 50) -> list[RunView]:
    """The latest runs of the journal, newest first."""
    if not _has_journal(db):
        return []
    rows = db.execute(
        "SELECT run_id, source, records, created_at FROM line_runs "
        "ORDER BY created_at DESC LIMIT ?",
        (limit,),
    )
    out = []
    for run_id, source, records, created in rows:
        counts = _counts(db, str(run_id))
        total = int(records or 0) or sum(counts.values())
        out.append(
            RunView(
                str(run_id),
                str(source or ""),
                total,
                float(created or 0),
                counts,
                throughput(db, str(run_id)),
            )
        )
    return out


def run(db: Database, run_id: str) -> RunView:
    for view in runs(db, limit=1000):
        if view.run_id == run_id:
            return view
    raise UsageError(f"no run {run_id!r} in this journal")


def stations(db: Database, run_id: str) -> list[StationView]:
    """Each station of the run as the line last published it, with the card it holds."""
    holding = {
        str(st): (str(card or ""), str(ssn or ""))
        for st, card, ssn in db.execute(
            "SELECT station, card_no, ssn_masked FROM line_jobs WHERE run_id = ? AND state IN "
            "(?, ?)",
            (run_id, jobs.ENCODING, jobs.CHIP_DONE),
        )
    }
    out = []
    for row in read_board(db, run_id):
        card, ssn = holding.get(row.station, ("", ""))
        out.append(
            StationView(
                row.station,
                row.state,
                row.message,
                row.made,
                row.rejected,
                mask_id(card) if card else "",
                ssn,
            )
        )
    return out


def rejects(db: Database, run_id: str, limit: int = 100) -> list[RejectView]:
    """Cards sent to the reject box, newest first, with their reason."""
    rows = db.execute(
        "SELECT e.record_index, e.station, e.detail, e.at, j.card_no, j.ssn_masked, "
        "e.chip_serial FROM line_events e JOIN line_jobs j ON j.run_id = e.run_id AND "
        "j.record_index = e.record_index WHERE e.run_id = ? AND e.event IN "
        "('retry', 'give_up', 'recover', 'recover_give_up', 'release') "  # REJECT_EVENTS
        "ORDER BY e.id DESC LIMIT ?",
        (run_id, limit),
    )
    return [
        RejectView(
            int(i),
            str(st or ""),
            str(d or ""),
            float(at),
            mask_id(str(c or "")),
            str(s or ""),
            str(serial or ""),
        )
        for i, st, d, at, c, s, serial in rows
    ]


def result_files(source: str) -> list[Path]:
    """The line's results files beside the run's personalization file (a CSV whose header is
    the results file's)."""
    folder = Path(source).parent
    found = []
    try:
        candidates = sorted(folder.glob("*.csv"))
    except OSError:
        return []
    for path in candidates:
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        if tuple(header) == RESULT_COLUMNS and path.is_file():
            found.append(path)
    return found


class Faces:
    """Renders a record's card face from the run's personalization file (opened with the key
    store, its MACs checked once per file version), identity number and PAN masked."""

    def __init__(self, keys: KeyStore | None) -> None:
        self.keys = keys
        self._headers: dict[tuple[str, float], PersoHeader] = {}

    def png(self, source: str, index: int) -> bytes:
        if self.keys is None:
            raise UsageError("card faces need the key store: start the console with --keys")
        path = Path(source)
        try:
            stamp = (str(path.resolve()), path.stat().st_mtime)
        except OSError as exc:
            raise UsageError(f"personalization file of the run: {exc.strerror}") from None
        header = self._headers.get(stamp)
        if header is None:
            header = verify(path, self.keys).header  # refuses a tampered or truncated file
            self._headers[stamp] = header
        for line, body in iter_records(path, self.keys):
            if line != index:
                continue
            values = body.face.split("\x1f") if body.face else []
            fields = dict(zip(header.face_fields, values))
            photo = _photo(fields.pop("photo", ""), path.parent)
            shown = {k: mask_id(v) if k in MASKED_FACE_FIELDS else v for k, v in fields.items()}
            try:
                face = cardface.render(shown, photo)
            except CardPersoError:  # a photo that does not decode: the face without it
                face = cardface.render(shown, None)
            return cardface.to_png(cardface.compose(cardface.panels(face)))
        raise UsageError(f"no record {index} in the run's personalization file")


def _photo(value: str, base: Path) -> bytes | None:
    if not value:
        return None
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        if path.is_file() and path.stat().st_size <= 100 * 1024:
            return path.read_bytes()
    except OSError:
        return None
    return None
