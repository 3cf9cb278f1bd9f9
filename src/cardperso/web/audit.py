"""The audit log: every action in the console with the user, their role, the address and the
time. ``target`` names what was acted on (a run and station, a user name, a page) and never
holds a password or personal data; ``outcome`` is ``ok``, ``refused`` or a short reason."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cardperso.storage.db import Database


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: float
    user: str
    role: str
    address: str
    action: str
    target: str
    outcome: str


def record(
    db: Database,
    action: str,
    *,
    user: str | None,
    role: str | None = None,
    address: str = "",
    target: str = "",
    outcome: str = "ok",
) -> None:
    db.execute(
        "INSERT INTO web_audit (at, user_name, role, address, action, target, outcome) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (time.time(), user, role, address, action, target[:200], outcome[:200]),
    )


def recent(
    db: Database, limit: int = 200, *, user: str = "", action: str = "", before: int | None = None
) -> list[Entry]:
    """The newest ``limit`` entries (of ``user``, of ``action``, older than entry ``before``
    when given), newest first."""
    below = -1 if before is None else before  # ids start at 1
    rows = db.execute(
        "SELECT id, at, user_name, role, address, action, target, outcome FROM web_audit "
        "WHERE (? = '' OR user_name = ?) AND (? = '' OR action = ?) AND (? < 0 OR id < ?) "
        "ORDER BY id DESC LIMIT ?",
        (user, user, action, action, below, below, limit),
    )
    return [
        Entry(int(i), float(a), str(u or ""), str(r or ""), str(ad or ""), str(ac),
              str(t or ""), str(o))
        for i, a, u, r, ad, ac, t, o in rows
    ]  # fmt: skip


def actions(db: Database) -> list[str]:
    """The actions the log holds (for the page's filter)."""
    return [str(a) for (a,) in db.execute("SELECT DISTINCT action FROM web_audit ORDER BY 1")]
