"""Where the service-point desk keeps the photos clerks upload, and for how long.

A photo that meets the card photo specification is kept under its SHA-256 (mode 0600) in the
photo directory: ``web serve --photos DIR``, else ``CARDPERSO_PHOTOS``, else ``desk-photos/``
beside a SQLite database (a PostgreSQL database has no "beside": one of the first two is
required). An application accepted at the desk names its file.

Until then the upload is *pending* (table ``web_pending_photos``: its path and when it was
last used). A photo is personal data and must not pile up for applications that were never
accepted: :func:`sweep` (run when the console starts and on each desk request) removes every
pending photo unused for ``ttl`` seconds (default :data:`PENDING_TTL`) that no application
names, and forgets it. Acceptance (:func:`settle`) takes the photo out of the pending table:
from then on it is the registry's, kept with the application.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path
from typing import Final

from cardperso.errors import UsageError
from cardperso.outputs import atomic_write_bytes
from cardperso.storage.db import Database, sqlite_path

#: The environment variable naming the photo directory (when ``--photos`` is not given).
PHOTOS_ENV: Final = "CARDPERSO_PHOTOS"
#: How long an upload not (yet) part of an accepted application is kept: half an hour, the
#: life of a form at the counter (the login form's token lives as long).
PENDING_TTL: Final = 30 * 60.0


def check_directory(path: Path) -> Path:
    """``--photos DIR``: an existing directory that only its owner may read (mode 0700 or
    stricter), since it holds applicants' photos."""
    try:
        st = path.stat()
    except OSError:
        raise UsageError(f"--photos {path}: no such directory (create it with mode 0700)") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"--photos {path}: not a directory")
    if st.st_mode & 0o077:
        raise UsageError(
            f"--photos {path}: mode {stat.S_IMODE(st.st_mode):04o} lets others in "
            "(it holds applicants' photos: chmod 700)"
        )
    return path


def directory(db: Database, configured: Path | None) -> Path:
    """The photo directory: ``configured`` (``--photos``), ``CARDPERSO_PHOTOS``, or
    ``desk-photos/`` beside a SQLite database (made with mode 0700)."""
    if configured is not None:
        return configured
    env = os.environ.get(PHOTOS_ENV)
    base = sqlite_path(db.url)
    if env:
        where = Path(env)
    elif base is not None:
        where = base.parent / "desk-photos"
    else:
        raise UsageError(
            f"web serve --photos DIR (or {PHOTOS_ENV}): where the desk keeps photos (on PostgreSQL)"
        )
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    return where


def keep(db: Database, folder: Path, data: bytes) -> tuple[str, Path, bool]:
    """Keep ``data`` under its SHA-256 in ``folder`` (atomic, mode 0600) as a pending upload:
    (reference, path, whether the file is new)."""
    ref = hashlib.sha256(data).hexdigest()
    path = folder / f"{ref}.jpg"
    fresh = not path.exists()
    if fresh:
        atomic_write_bytes(path, data)
    touch(db, path)
    return ref, path, fresh


def touch(db: Database, path: Path) -> None:
    """``path`` is (still) in use by a form at the counter: pending from now."""
    db.execute(
        "INSERT INTO web_pending_photos (path, kept_at) VALUES (?, ?) "
        "ON CONFLICT (path) DO UPDATE SET kept_at = excluded.kept_at",
        (str(path), time.time()),
    )


def drop(db: Database, path: Path) -> None:
    """A photo refused by the specification: removed at once, and no longer pending."""
    path.unlink(missing_ok=True)
    db.execute("DELETE FROM web_pending_photos WHERE path = ?", (str(path),))


def settle(db: Database, path: Path) -> None:
    """The application naming ``path`` is accepted: the photo is the registry's now."""
    db.execute("DELETE FROM web_pending_photos WHERE path = ?", (str(path),))


def sweep(db: Database, ttl: float = PENDING_TTL, now: float | None = None) -> int:
    """Remove the pending photos unused for ``ttl`` seconds that no application names (a
    form abandoned at the counter); how many files were removed."""
    cutoff = (time.time() if now is None else now) - ttl
    stale = [str(p) for (p,) in db.execute(
        "SELECT path FROM web_pending_photos WHERE kept_at < ?", (cutoff,))]  # fmt: skip
    removed = 0
    for path in stale:
        with db.transaction():
            named = db.execute("SELECT 1 FROM reg_applications WHERE photo = ? LIMIT 1", (path,))
            gone = db.execute(
                "DELETE FROM web_pending_photos WHERE path = ? AND kept_at < ? RETURNING path",
                (path, cutoff),
            )
            if gone and not named:
                Path(path).unlink(missing_ok=True)
                removed += 1
    return removed
