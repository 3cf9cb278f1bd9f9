"""One small database layer for SQLite (embedded default) and PostgreSQL (several lines).

SQL is written once with ``?`` placeholders; :class:`Database` rewrites them to ``%s`` for
psycopg. SQLite runs in WAL mode with ``synchronous=FULL`` so a committed transaction survives
a crash of the process (and of the machine). Writers take the database lock at the start of a
transaction (``BEGIN IMMEDIATE``), which gives the same claim-one-job-at-a-time guarantee that
``SELECT … FOR UPDATE SKIP LOCKED`` gives on PostgreSQL.

A :class:`Database` may be shared by the threads of one process: every call holds its lock.

Opening (:func:`connect`): a URL is a SQLite path (or ``sqlite:///PATH``) or a
``postgresql://`` URL; any other ``scheme://`` is refused rather than taken for a file name.
``create=False`` (what every command that only reads, or that needs a database someone made
with ``cardperso db upgrade``, uses) refuses a missing SQLite file with one line instead of
creating an empty one. A file that is not a SQLite database is refused, untouched. A new SQLite
file is created with mode 0600 before SQLite opens it (it holds personal data); SQLite gives its
``-wal`` and ``-shm`` files the database file's mode.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cardperso.errors import UsageError

Row = tuple[Any, ...]


#: The first 16 bytes of every SQLite 3 database file (an empty file is an empty database).
SQLITE_MAGIC = b"SQLite format 3\x00"
#: The mode of a database file cardperso creates: it holds personal data.
DB_FILE_MODE = 0o600
#: The PostgreSQL advisory lock :meth:`Database.script` holds while it creates tables (an
#: arbitrary constant, distinct from the registry's and the web console's migration locks).
DDL_LOCK_KEY = 0x63700D01
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):/")


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str | Path) -> Path | None:
    """The file of a SQLite URL (``PATH``, ``sqlite:///PATH``); ``None`` for PostgreSQL.

    Raises :class:`UsageError` for any other ``scheme:/…`` (``mysql://…`` is not a file name).
    """
    text = str(url)
    if _is_postgres(text):
        return None
    if text.startswith("sqlite:"):
        for prefix in ("sqlite:///", "sqlite://"):
            if text.startswith(prefix) and len(text) > len(prefix):
                return Path(text.removeprefix(prefix))
        raise UsageError(f"--db {_safe(text)}: write sqlite:///PATH or a plain file path")
    m = _SCHEME.match(text)
    if m:
        raise UsageError(
            f"--db {_safe(text)}: unknown database scheme {m.group(1)!r} "
            "(use a SQLite file, sqlite:///PATH or postgresql://…)"
        )
    if not text:
        raise UsageError("--db is empty: give a SQLite file or a postgresql:// URL")
    return Path(text)


def _safe(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)  # never show a password


def _check_sqlite_file(path: Path, *, create: bool) -> bool:
    """Refuse what SQLite must not open; whether the file has to be created."""
    if "\x00" in str(path):
        raise UsageError("--db holds a NUL character")
    try:
        st = path.stat()
    except FileNotFoundError:
        if not create:
            raise UsageError(
                f"database {path} does not exist (create it with: cardperso db upgrade --db {path})"
            ) from None
        return True
    except OSError as exc:
        raise UsageError(f"database {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"database {path} is not a regular file")
    if st.st_size:
        try:
            with path.open("rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise UsageError(f"database {path}: {exc.strerror}") from None
        if head != SQLITE_MAGIC:
            raise UsageError(f"{path} is not a SQLite database (left untouched)")
    return False


def _create_private(path: Path) -> None:
    """Create an empty database file with mode 0600 whatever the umask (SQLite copies the
    database file's mode onto its -wal and -shm files)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE)
    except FileExistsError:  # another process made it first: use theirs
        return
    except OSError as exc:
        raise UsageError(f"cannot create database {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, DB_FILE_MODE)
    finally:
        os.close(fd)


class Database:
    """A connection with a dialect (``"sqlite"`` or ``"postgres"``)."""

    def __init__(self, url: str | Path, *, create: bool = True) -> None:
        self.url = str(url)
        self._lock = threading.RLock()
        self._depth = 0
        path = sqlite_path(self.url)
        if path is None:
            import psycopg

            self.dialect = "postgres"
            try:
                self._pg = psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as exc:
                raise UsageError(
                    f"cannot connect to PostgreSQL: {_safe(str(exc).splitlines()[0])}"
                ) from None
        else:
            self.dialect = "sqlite"
            if _check_sqlite_file(path, create=create):
                _create_private(path)
            try:
                # mode=rw: SQLite itself never creates the file (it was checked or made above)
                self._sq = sqlite3.connect(
                    f"{path.absolute().as_uri()}?mode=rw",
                    uri=True,
                    timeout=30,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as exc:
                raise UsageError(f"cannot open database {path}: {exc}") from None
            try:
                self._sq.execute("PRAGMA busy_timeout=30000")
                self._sq.execute("PRAGMA journal_mode=WAL")
                self._sq.execute("PRAGMA synchronous=FULL")
            except sqlite3.DatabaseError as exc:
                self._sq.close()
                raise UsageError(f"{path} is not a usable SQLite database: {exc}") from None

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
        """Run DDL statements in one transaction. On PostgreSQL the transaction first takes an
        advisory lock, so processes that start together (the lines of one batch) create the
        same tables one after the other: ``CREATE TABLE IF NOT EXISTS`` alone is not safe
        against a concurrent one there (it fails on the catalogue's unique index)."""
        with self.transaction():
            if self.dialect == "postgres":
                self.execute("SELECT pg_advisory_xact_lock(?)", (DDL_LOCK_KEY,))
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
        return f"<Database {self.dialect} {_safe(self.url)}>"


def exposed_mode(db: Database) -> int | None:
    """The permission bits of a SQLite database file that others may read (``None`` when only
    its owner can, and for PostgreSQL): files made before cardperso created them 0600."""
    path = sqlite_path(db.url)
    if path is None:
        return None
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None


def connect(url: str | Path, *, create: bool = False) -> Database:
    """Open the database at ``url``. Without ``create`` a missing SQLite file is refused
    (:class:`UsageError`, one line) instead of created: commands that read, and commands that
    need a schema made by ``cardperso db upgrade``, never leave an empty database behind."""
    return Database(url, create=create)
