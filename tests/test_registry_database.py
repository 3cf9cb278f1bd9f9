"""Issue 11, the database layer: private database files (0600, with -wal and -shm), no database
created by a command that needs an existing one, refusal of files that are not SQLite and of
unknown URL schemes. (The registry's own items are in test_integrity_registry.py.)"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.cli.main import _register, cli
from cardperso.errors import UsageError
from cardperso.storage.db import Database, connect


def run_cli(*args: str, code: int = 0) -> str:
    _register()
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no CARDPERSO_DB: the commands see their default --db."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CARDPERSO_DB", raising=False)
    return tmp_path


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- item 12: database files are private -----------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_new_sqlite_database_and_its_wal_and_shm_are_owner_only(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = tmp_path / "sub" / "registry.db"
        with Database(path) as db:
            db.execute("CREATE TABLE t (x TEXT)")
            db.execute("INSERT INTO t VALUES ('110101199001010014')")
            # while the connection is open, SQLite keeps its WAL and shared-memory files
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                assert p.exists(), p
                assert _mode(p) == 0o600, f"{p.name}: {oct(_mode(p))}"
    finally:
        os.umask(old)


def test_db_upgrade_creates_a_private_file(workdir: Path, umask022: None) -> None:
    out = run_cli("db", "upgrade", "--db", "reg.db")
    assert _mode(workdir / "reg.db") == 0o600
    assert "warning" not in out


def test_an_older_database_open_to_others_gets_a_warning(workdir: Path) -> None:
    run_cli("db", "upgrade", "--db", "reg.db")
    (workdir / "reg.db").chmod(0o644)  # as cardperso made them before
    out = run_cli("db", "version", "--db", "reg.db")
    assert "warning: reg.db is open to group or others (mode 0644) and holds personal data: " in out
    assert "chmod 600 reg.db" in out
    assert _mode(workdir / "reg.db") == 0o644, "the operator decides"


# -- item 13: commands that only read never create a database ----------------------------------

READ_ONLY = [
    ("db", "version"),
    ("registry", "stats"),
    ("registry", "overdue"),
    ("registry", "history", "000000019"),
    ("registry", "report", "return-file", "--batch", "B1", "--out", "ret.csv"),
    ("registry", "audit"),
    ("registry", "register"),
    ("registry", "notify"),
    ("registry", "export-batch", "--out", "batch.csv"),
    ("registry", "cancel", "000000019", "--reason", "lost"),
    ("line", "resume-station", "st1", "--run", "r1"),
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a[:2]))
def test_a_command_that_needs_an_existing_database_never_creates_one(
    workdir: Path, args: tuple[str, ...]
) -> None:
    out = run_cli(*args, code=2)
    assert "error: database cardperso-journal.db does not exist" in out
    assert "cardperso db upgrade" in out
    assert sorted(p.name for p in workdir.iterdir()) == [], "nothing created"


def test_connect_refuses_a_missing_file_unless_asked_to_create(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"database .*nope\.db does not exist"):
        connect(tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()
    with connect(tmp_path / "yes.db", create=True) as db:
        assert db.dialect == "sqlite"
    assert _mode(tmp_path / "yes.db") == 0o600


# -- item 9: files that are not SQLite, unknown URL schemes ------------------------------------


@pytest.mark.parametrize(
    "content", [b"card_no,ssn\n000000019,x\n", b"\x00" * 100, b"SQLite format 2\x00" + b"x" * 200]
)
@pytest.mark.parametrize(
    "args", [("db", "upgrade"), ("db", "version"), ("registry", "stats")], ids=lambda a: a[1]
)
def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(
    workdir: Path, content: bytes, args: tuple[str, ...]
) -> None:
    victim = workdir / "results.csv"
    victim.write_bytes(content)
    before = victim.stat()
    out = run_cli(*args, "--db", "results.csv", code=2)
    assert out.strip() == "error: results.csv is not a SQLite database (left untouched)"
    assert victim.read_bytes() == content
    after = victim.stat()
    assert (after.st_mtime_ns, after.st_mode) == (before.st_mtime_ns, before.st_mode)
    assert sorted(p.name for p in workdir.iterdir()) == ["results.csv"], "no -wal, no -journal"


def test_a_directory_is_not_a_database(workdir: Path) -> None:
    (workdir / "d").mkdir()
    out = run_cli("db", "upgrade", "--db", "d", code=2)
    assert out.strip() == "error: database d is not a regular file"


@pytest.mark.parametrize(
    "url", ["mysql://perso:secret@dbhost/factory", "file:///tmp/x.db", "mysql+pymysql://h/x"]
)
def test_an_unknown_url_scheme_is_refused_without_creating_directories(
    workdir: Path, url: str
) -> None:
    out = run_cli("db", "upgrade", "--db", url, code=2)
    scheme = url.split(":", 1)[0]
    assert f"unknown database scheme {scheme!r}" in out
    assert "secret" not in out, "a password in a URL is never echoed"
    assert list(workdir.iterdir()) == []


def test_sqlite_urls_still_work(workdir: Path) -> None:
    run_cli("db", "upgrade", "--db", "sqlite:///a.db")
    with sqlite3.connect(workdir / "a.db") as con:
        assert con.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] >= 2
    out = run_cli("db", "version", "--db", "sqlite:b.db", code=2)
    assert "write sqlite:///PATH or a plain file path" in out


@pytest.mark.parametrize(
    "url, message",
    [
        ("afile/x.db", "error: database afile/x.db: Not a directory"),
        ("postgresql://perso:secret@[bad", "error: cannot connect to PostgreSQL: "),
        ("postgresql://perso:secret@127.0.0.1:5432/test?bogus=1",
         'error: cannot connect to PostgreSQL: invalid URI query parameter: "bogus"'),
    ],
)  # fmt: skip
def test_bad_database_locations_are_one_line_without_the_password(
    workdir: Path, url: str, message: str
) -> None:
    (workdir / "afile").write_text("x")
    out = run_cli("db", "upgrade", "--db", url, code=2)
    assert out.startswith(message) and len(out.strip().splitlines()) == 1, out
    assert "secret" not in out
