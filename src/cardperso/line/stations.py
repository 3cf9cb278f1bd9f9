"""The stations' board: each station's state and message, published in the journal's database
so that any process that reaches it (the web console's factory floor) sees what a terminal's
live view shows. The runner publishes a station's row when it changes; nothing personal is
written (the current card is found from ``line_jobs``, by the station's claim)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cardperso.storage.db import Database


class StationLike(Protocol):
    name: str
    state: str
    message: str
    made: int
    rejected: int


@dataclass(frozen=True, slots=True)
class StationRow:
    station: str
    state: str
    message: str
    made: int
    rejected: int
    updated_at: float


def board_table(db: Database) -> str:
    """The one definition of ``line_stations``."""
    return (
        "CREATE TABLE IF NOT EXISTS line_stations (run_id TEXT NOT NULL, station TEXT NOT NULL, "
        "state TEXT NOT NULL, message TEXT, made INTEGER NOT NULL DEFAULT 0, "
        "rejected INTEGER NOT NULL DEFAULT 0, updated_at DOUBLE PRECISION NOT NULL, "
        "PRIMARY KEY (run_id, station))"
    )


class StationBoard:
    """Publishes the stations of one run: a row is written only when it changed."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self._last: dict[str, tuple[str, str, int, int]] = {}
        db.script([board_table(db)])  # under the DDL lock: lines start together

    def publish(self, stations: Iterable[StationLike]) -> None:
        for s in stations:
            row = (s.state, s.message, s.made, s.rejected)
            if self._last.get(s.name) == row:
                continue
            self.db.execute(
                "INSERT INTO line_stations (run_id, station, state, message, made, rejected, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, station) DO UPDATE "
                "SET state = excluded.state, message = excluded.message, made = excluded.made, "
                "rejected = excluded.rejected, updated_at = excluded.updated_at",
                (self.run_id, s.name, *row, time.time()),
            )
            self._last[s.name] = row


def read_board(db: Database, run_id: str) -> list[StationRow]:
    """The stations of a run as last published (empty for a run from before the board)."""
    if not _has_board(db):
        return []
    rows = db.execute(
        "SELECT station, state, message, made, rejected, updated_at FROM line_stations "
        "WHERE run_id = ? ORDER BY station",
        (run_id,),
    )
    return [
        StationRow(str(a), str(b), str(c or ""), int(d), int(e), float(f))
        for a, b, c, d, e, f in rows
    ]


def _has_board(db: Database) -> bool:
    if db.dialect == "postgres":
        return bool(db.execute("SELECT to_regclass('line_stations') IS NOT NULL")[0][0])
    return bool(
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'line_stations'")
    )
