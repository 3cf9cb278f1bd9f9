"""Sessions and CSRF tokens.

A session id is 32 random bytes given to the browser in an HttpOnly, SameSite=Strict cookie;
the database keeps only its SHA-256, with the user and the session's CSRF token. A new id is
made at every login and any id the browser brought is dropped, so an id planted before login
(session fixation) is worth nothing. Every form carries the CSRF token, compared in constant
time; the login form, which has no session yet, carries a token bound to a short-lived cookie
(double submit). Sessions end after ``IDLE`` seconds without a request, at logout, and when
the user's password changes or the user is disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Final

from cardperso.storage.db import Database
from cardperso.web import users
from cardperso.web.users import User

COOKIE: Final = "cardperso_session"
LOGIN_COOKIE: Final = "cardperso_login"
IDLE: Final = 8 * 3600.0


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two tokens (empty never matches)."""
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def start(db: Database, user: User, old_token: str | None = None) -> tuple[str, str]:
    """A new session (id, CSRF token) for ``user``; ``old_token``'s session, if any, ends."""
    token, csrf = new_token(), new_token()
    now = time.time()
    with db.transaction():
        if old_token:
            db.execute("DELETE FROM web_sessions WHERE token_hash = ?", (_hash(old_token),))
        db.execute(
            "INSERT INTO web_sessions (token_hash, user_name, csrf, created_at, seen_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (_hash(token), user.name, csrf, now, now),
        )
    return token, csrf


def lookup(db: Database, token: str | None) -> tuple[User, str] | None:
    """The (user, CSRF token) of a live session, or ``None``."""
    if not token or len(token) > 128:
        return None
    rows = db.execute(
        "SELECT user_name, csrf, seen_at FROM web_sessions WHERE token_hash = ?", (_hash(token),)
    )
    if not rows:
        return None
    name, csrf, seen = rows[0]
    now = time.time()
    user = users.get(db, str(name))
    if user is None or user.disabled or now - float(seen) > IDLE:
        end(db, token)
        return None
    if now - float(seen) > 60:  # refresh the idle clock at most once a minute
        db.execute("UPDATE web_sessions SET seen_at = ? WHERE token_hash = ?", (now, _hash(token)))
    return user, str(csrf)


def end(db: Database, token: str | None) -> None:
    if token:
        db.execute("DELETE FROM web_sessions WHERE token_hash = ?", (_hash(token),))
