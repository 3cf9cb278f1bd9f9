"""The web console's tables, applied by ``cardperso db upgrade`` (and by ``web serve`` / ``web
user`` on first use) beside the registry's migrations, with their own version table so the two
schemas grow independently.

* ``web_users``: name, role, service point (clerks), Argon2 hash, disabled flag;
* ``web_sessions``: the SHA-256 of each session id (a copy of the database gives no session),
  its user, its CSRF token and when it was last used;
* ``web_audit``: every action with the user, their role, the address and the time;
* ``web_login_attempts``: failed logins per user name (kept as its SHA-256) and per address
  (rate limiting);
* ``web_pending_photos``: photos uploaded at the desk for an application not accepted yet
  (their path and when last used), removed when the form is abandoned (``web.photos``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from cardperso.storage.db import Database


def _v1(db: Database) -> list[str]:
    pk = db.autoincrement
    return [
        "CREATE TABLE web_users (name TEXT PRIMARY KEY, role TEXT NOT NULL, service_point TEXT, "
        "password_hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, "
        "created_at DOUBLE PRECISION NOT NULL, changed_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE web_sessions (token_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, "
        "csrf TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
        "seen_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX web_sessions_user ON web_sessions (user_name)",
        f"CREATE TABLE web_audit (id {pk}, at DOUBLE PRECISION NOT NULL, user_name TEXT, "
        "role TEXT, address TEXT, action TEXT NOT NULL, target TEXT, outcome TEXT NOT NULL)",
        "CREATE INDEX web_audit_at ON web_audit (at)",
        f"CREATE TABLE web_login_attempts (id {pk}, user_name TEXT NOT NULL, "
        "address TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX web_login_attempts_user ON web_login_attempts (user_name, at)",
        "CREATE INDEX web_login_attempts_address ON web_login_attempts (address, at)",
    ]


def _v2(db: Database) -> list[str]:
    return [
        "CREATE TABLE web_pending_photos (path TEXT PRIMARY KEY, "
        "kept_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX web_pending_photos_at ON web_pending_photos (kept_at)",
    ]


#: (version, name, statements). Append only: never edit an applied one.
MIGRATIONS: Final[tuple[tuple[int, str, Callable[[Database], list[str]]], ...]] = (
    (1, "web console: users, sessions, audit log, login attempts", _v1),
    (2, "web console: the desk's pending photo uploads", _v2),
)
LATEST: Final = MIGRATIONS[-1][0]
#: The PostgreSQL advisory lock held while migrating (not the registry's).
_LOCK_KEY: Final = 0x0CA2D9E3


def current_version(db: Database) -> int:
    db.execute(
        "CREATE TABLE IF NOT EXISTS web_schema_migrations (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
    )
    return int(db.execute("SELECT MAX(version) FROM web_schema_migrations")[0][0] or 0)


def upgrade(db: Database) -> list[tuple[int, str]]:
    """Apply the missing web migrations, each in one transaction under a lock, so two upgrades
    at once apply each migration once."""
    applied: list[tuple[int, str]] = []
    current_version(db)
    for version, name, statements in MIGRATIONS:
        with db.transaction():  # SQLite: BEGIN IMMEDIATE serializes; PostgreSQL: a lock
            if db.dialect == "postgres":
                db.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
            done = db.execute("SELECT 1 FROM web_schema_migrations WHERE version = ?", (version,))
            if done:
                continue
            for stmt in statements(db):
                db.execute(stmt)
            db.execute(
                "INSERT INTO web_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
        applied.append((version, name))
    return applied
