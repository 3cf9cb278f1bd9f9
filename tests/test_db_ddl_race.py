"""Lines that start together create the journal's tables together (PostgreSQL).

``CREATE TABLE IF NOT EXISTS`` is not safe against a concurrent one on PostgreSQL: the loser
fails on the catalogue's unique index (``pg_type_typname_nsp_index``), which is how a CI run
of tests/test_multiline.py lost two of its four lines (``line_stations``). Every table a line
creates now goes through :meth:`Database.script`, which takes an advisory lock first. Here eight
connections (threads, each its own session) create the journal, the stations' board, the
control table and the PKI ledger at the same instant, on a fresh schema, several times."""

from __future__ import annotations

import threading
import uuid

import pytest

from cardperso.line.control import ensure_control_table
from cardperso.line.journal import Journal
from cardperso.line.stations import StationBoard
from cardperso.pki import ledger
from cardperso.storage.db import Database
from test_registry import PG_URL, pg_schema_url

pytestmark = pytest.mark.postgres
WORKERS = 8


def _race(url: str) -> list[BaseException]:
    start = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def line(k: int) -> None:
        try:
            with Database(url) as db:
                start.wait(timeout=60)
                Journal(db, f"RUN-{k}")
                StationBoard(db, f"RUN-{k}")
                ensure_control_table(db)
                ledger.ensure_tables(db)
        except BaseException as exc:  # collected and asserted on
            errors.append(exc)

    threads = [threading.Thread(target=line, args=(k,)) for k in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def test_lines_starting_together_create_their_tables_without_a_conflict() -> None:
    for _round in range(5):
        name = f"t_{uuid.uuid4().hex[:12]}"
        with Database(PG_URL) as admin:
            admin.execute(f"CREATE SCHEMA {name}")
        try:
            errors = _race(pg_schema_url(name))
            assert errors == []
            with Database(pg_schema_url(name)) as db:
                tables = {
                    r[0]
                    for r in db.execute(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                        (name,),
                    )
                }
            assert {"line_runs", "line_jobs", "line_stations", "line_control"} <= tables
            assert {"pki_certificates", "pki_crls"} <= tables
        finally:
            with Database(PG_URL) as admin:
                admin.execute(f"DROP SCHEMA {name} CASCADE")
