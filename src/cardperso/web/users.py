"""Who may use the console: users with one role each, Argon2 password hashes, rate-limited login.

Roles (``ROLES``): a clerk works for one service point; centre staff, factory operators,
security officers and administrators work for the centre. A password is only ever hashed
(Argon2id through argon2-cffi) and compared by the hash's own verifier; it is never stored,
logged or put into an exception. Login is refused, whatever the password, after
``MAX_USER_FAILURES`` failed attempts for a user name or ``MAX_ADDRESS_FAILURES`` from one
address within ``WINDOW`` seconds.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cardperso.errors import UsageError
from cardperso.storage.db import Database

CLERK, CENTRE, OPERATOR, SECURITY, ADMIN = "clerk", "centre", "operator", "security", "admin"
#: Role → what an operator reads on the screen.
ROLES: Final = {
    CLERK: "service-point clerk",
    CENTRE: "centre staff",
    OPERATOR: "factory operator",
    SECURITY: "security officer",
    ADMIN: "administrator",
}
MIN_PASSWORD: Final = 10
MAX_PASSWORD: Final = 1024
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")

MAX_USER_FAILURES: Final = 5
MAX_ADDRESS_FAILURES: Final = 20
WINDOW: Final = 900.0

_hasher = PasswordHasher()
#: A hash to verify against when the user does not exist (the same time either way).
_DUMMY = _hasher.hash("not a password of anyone")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    service_point: str | None
    disabled: bool

    @property
    def role_title(self) -> str:
        return ROLES[self.role]


class LoginRefused(UsageError):
    """Wrong user name or password (the message never says which)."""


class TooManyAttempts(UsageError):
    """Too many failed logins for this user or from this address."""


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            "user name: 2-32 characters, lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsageError(f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _row(r: tuple[object, ...]) -> User:
    return User(str(r[0]), str(r[1]), str(r[2]) if r[2] else None, bool(r[3]))


def get(db: Database, name: str) -> User | None:
    rows = db.execute(
        "SELECT name, role, service_point, disabled FROM web_users WHERE name = ?", (name,)
    )
    return _row(rows[0]) if rows else None


def all_users(db: Database) -> list[User]:
    rows = db.execute("SELECT name, role, service_point, disabled FROM web_users ORDER BY name")
    return [_row(r) for r in rows]


def count(db: Database) -> int:
    return int(db.execute("SELECT COUNT(*) FROM web_users")[0][0])


def add(db: Database, name: str, role: str, password: str, service_point: str | None) -> User:
    check_name(name)
    if role not in ROLES:
        raise UsageError(f"role {role!r}: one of {', '.join(ROLES)}")
    if (role == CLERK) != bool(service_point):
        raise UsageError("--service-point: required for a clerk, and only for a clerk")
    if service_point is not None:
        _check_service_point(db, service_point)
    digest = _hasher.hash(check_password(password))
    now = time.time()
    with db.transaction():
        if get(db, name) is not None:
            raise UsageError(f"user {name} exists (change the password with `web user passwd`)")
        db.execute(
            "INSERT INTO web_users (name, role, service_point, password_hash, disabled, "
            "created_at, changed_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
            (name, role, service_point, digest, now, now),
        )
    return User(name, role, service_point, False)


def _check_service_point(db: Database, code: str) -> None:
    """A clerk works for a service point on the centre's list (the registry's)."""
    from cardperso.registry.centre import parties
    from cardperso.registry.schema import has_table

    if not has_table(db, "reg_parties") or code not in parties(db, "service_point"):
        raise UsageError(
            f"--service-point {code}: not on the centre's list of service points (add it with: "
            f"cardperso registry service-point add {code} NAME)"
        )


def set_password(db: Database, name: str, password: str) -> None:
    """A new password: the user's sessions end, and a lock-out by failed logins with it."""
    digest = _hasher.hash(check_password(password))
    with db.transaction():
        if get(db, name) is None:
            raise UsageError(f"no user {name}")
        db.execute(
            "UPDATE web_users SET password_hash = ?, changed_at = ? WHERE name = ?",
            (digest, time.time(), name),
        )
        db.execute("DELETE FROM web_sessions WHERE user_name = ?", (name,))
        db.execute("DELETE FROM web_login_attempts WHERE user_name = ?", (attempt_key(name),))


def set_disabled(db: Database, name: str, disabled: bool = True) -> None:
    """Disable (or enable again) a user; a disabled user's sessions end at once."""
    with db.transaction():
        if get(db, name) is None:
            raise UsageError(f"no user {name}")
        db.execute(
            "UPDATE web_users SET disabled = ?, changed_at = ? WHERE name = ?",
            (int(disabled), time.time(), name),
        )
        if disabled:
            db.execute("DELETE FROM web_sessions WHERE user_name = ?", (name,))


def attempt_key(name: str) -> str:
    """What the failed-login table keeps of the name typed: its SHA-256, so that a password
    typed into the user-name field by mistake is not stored."""
    return hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()


def _failures(db: Database, column: str, value: str, since: float) -> int:
    sql = {
        "user_name": "SELECT COUNT(*) FROM web_login_attempts WHERE user_name = ? AND at >= ?",
        "address": "SELECT COUNT(*) FROM web_login_attempts WHERE address = ? AND at >= ?",
    }[column]
    return int(db.execute(sql, (value, since))[0][0])


def authenticate(
    db: Database,
    name: str,
    password: str,
    address: str,
    *,
    max_user: int = MAX_USER_FAILURES,
    max_address: int = MAX_ADDRESS_FAILURES,
    window: float = WINDOW,
) -> User:
    """The user whose password this is; :class:`TooManyAttempts` when the user name or the
    address has failed too often lately (checked before the password, so guessing stops),
    :class:`LoginRefused` for a wrong name or password or a disabled user."""
    now = time.time()
    since = now - window
    name = name[:64]
    key = attempt_key(name)
    if (
        _failures(db, "user_name", key, since) >= max_user
        or _failures(db, "address", address, since) >= max_address
    ):
        raise TooManyAttempts(
            f"too many failed logins: try again in {int(window // 60)} minutes, or ask an "
            "administrator"
        )
    rows = db.execute(
        "SELECT name, role, service_point, disabled, password_hash FROM web_users WHERE name = ?",
        (name,),
    )
    stored = str(rows[0][4]) if rows else _DUMMY
    try:
        _hasher.verify(stored, password[:MAX_PASSWORD])
        ok = bool(rows) and not rows[0][3]
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:
        with db.transaction():
            db.execute("DELETE FROM web_login_attempts WHERE at < ?", (since,))  # forgotten
            db.execute(
                "INSERT INTO web_login_attempts (user_name, address, at) VALUES (?, ?, ?)",
                (key, address, now),
            )
        raise LoginRefused("wrong user name or password")
    db.execute("DELETE FROM web_login_attempts WHERE user_name = ?", (key,))
    if _hasher.check_needs_rehash(stored):
        db.execute(
            "UPDATE web_users SET password_hash = ? WHERE name = ?", (_hasher.hash(password), name)
        )
    return _row(rows[0][:4])
