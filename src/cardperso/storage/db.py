"""One small database layer for SQLite (embedded default) and PostgreSQL (several lines).

SQL is written once with ``?`` placeholders; :class:`Database` rewrites them to ``%s`` for
psycopg. SQLite runs in WAL mode with ``synchronous=FULL`` so a committed transaction survives
a crash of the process (and of the machine). Writers take the database lock at the start of a
transaction (``BEGIN IMMEDIATE``), which gives the same claim-one-job-at-a-time guarantee that
``SELECT … FOR UPDATE SKIP LOCKED`` gives on PostgreSQL.

A :class:`Database` may be shared by the threads of one process: every call holds its lock.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cardperso.errors import UsageError

Row = tuple[Any, ...]


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class Database:
    """A connection with a dialect (``"sqlite"`` or ``"postgres"``)."""

    def __init__(self, url: str | Path) -> None:
        self.url = str(url)
        self._lock = threading.RLock()
        self._depth = 0
        if _is_postgres(self.url):
            import psycopg

            self.dialect = "postgres"
            try:
                self._pg = psycopg.connect(self.url, autocommit=True)
            except psycopg.OperationalError as exc:
                raise UsageError(
                    f"cannot connect to PostgreSQL: {str(exc).splitlines()[0]}"
                ) from None
        else:
            path = self.url.removeprefix("sqlite:///").removeprefix("sqlite://")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.dialect = "sqlite"
            self._sq = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._sq.execute("PRAGMA journal_mode=WAL")
            self._sq.execute("PRAGMA synchronous=FULL")
            self._sq.execute("PRAGMA busy_timeout=30000")

    # -- SQL -------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        if self.dialect == "postgres":
            return re.sub(r"\?", "%s", sql)
        return sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            if self.dialect == "postgres":
                with self._pg.cursor() as cur:
                    cur.execute(self._sql(sql), tuple(params))
                    return list(cur.fetchall()) if cur.description else []
            return self._sq.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            if self.dialect == "postgres":
                with self._pg.cursor() as cur:
                    cur.executemany(self._sql(sql), [tuple(r) for r in rows])
            else:
                self._sq.executemany(sql, [tuple(r) for r in rows])

    def script(self, statements: Sequence[str]) -> None:
        """Run DDL statements in one transaction."""
        with self.transaction():
            for stmt in statements:
                self.execute(stmt)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction; nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self.execute("ROLLBACK")
                raise
            self._depth = 0
            self.execute("COMMIT")

    @property
    def skip_locked(self) -> str:
        """The row-locking clause for claiming work (empty on SQLite, whose writers serialize)."""
        return " FOR UPDATE SKIP LOCKED" if self.dialect == "postgres" else ""

    @property
    def for_update(self) -> str:
        """Lock the selected rows until the transaction ends (SQLite's writer lock already does)."""
        return " FOR UPDATE" if self.dialect == "postgres" else ""

    @property
    def autoincrement(self) -> str:
        return (
            "BIGSERIAL PRIMARY KEY"
            if self.dialect == "postgres"
            else "INTEGER PRIMARY KEY AUTOINCREMENT"
        )

    def close(self) -> None:
        with self._lock:
            if self.dialect == "postgres":
                self._pg.close()
            else:
                self._sq.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        safe = re.sub(r"//[^@/]*@", "//***@", self.url)  # never show a password
        return f"<Database {self.dialect} {safe}>"


def connect(url: str | Path) -> Database:
    return Database(url)
