"""Operators' commands to a running line, through its database: ``cardperso line
resume-station`` tells a paused station that its fault is cleared (the station polls
``line_control``), from any process or machine that reaches the journal's database."""

from __future__ import annotations

import time

from cardperso.errors import UsageError
from cardperso.storage.db import Database


def control_table(db: Database) -> str:
    """The one definition of ``line_control`` (the journal's schema includes it)."""
    return (
        f"CREATE TABLE IF NOT EXISTS line_control (id {db.autoincrement}, run_id TEXT, station TEXT, "
        "command TEXT, done INTEGER DEFAULT 0, at DOUBLE PRECISION)"
    )


def ensure_control_table(db: Database) -> None:
    db.script([control_table(db)])


def _run_exists(db: Database, run_id: str) -> bool:
    if db.dialect == "postgres":
        table = db.execute("SELECT to_regclass('line_runs') IS NOT NULL")
    else:
        table = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'line_runs'"
        )
    if not table or not table[0][0]:
        return False
    return bool(db.execute("SELECT 1 FROM line_runs WHERE run_id = ?", (run_id,)))


def request_resume(db: Database, run_id: str, station: str) -> None:
    """What ``cardperso line resume-station`` does: tell a paused station to retry now.
    Refused for a run the journal does not hold (a mistyped run id would wait for nothing)."""
    if not _run_exists(db, run_id):
        raise UsageError(
            f"no run {run_id!r} in this journal: give the run id `cardperso run` printed, "
            "and the --db it ran with"
        )
    ensure_control_table(db)
    db.execute(
        "INSERT INTO line_control (run_id, station, command, done, at) VALUES (?, ?, 'resume', 0, ?)",
        (run_id, station, time.time()),
    )
