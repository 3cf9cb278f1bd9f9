"""The audit log: every action in the console with the user, their role, the address and the
time. ``target`` names what was acted on (a run and station, a user name, a page) and never
holds a password or personal data; ``outcome`` is ``ok``, ``refused`` or a short reason."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cardperso.storage.db import Database


@dataclass(frozen=True, slots=True)
class Entry:
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


def recent(db: Database, limit: int = 200) -> list[Entry]:
    rows = db.execute(
        "SELECT at, user_name, role, address, action, target, outcome FROM web_audit "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [
        Entry(float(a), str(u or ""), str(r or ""), str(ad or ""), str(ac), str(t or ""), str(o))
        for a, u, r, ad, ac, t, o in rows
    ]
