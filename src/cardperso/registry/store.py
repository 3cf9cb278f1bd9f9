"""The registry's one door to its state: :func:`move` (through the transition table) and reads.

Every change of an application's (or card's) state goes through :func:`move`, inside a
transaction: the row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's writer lock), the
transition table decides the next state or raises
:class:`~cardperso.errors.IllegalTransition`, and the change is appended to
``reg_transitions`` with who did it (``actor``), when, and why (``detail``).

Personal data: the registry *is* the card management database, so its tables hold the
cardholders' data. Nothing else does: log lines, messages and reprs carry card numbers and
masked identity numbers (``360426********0071``) only.
"""

from __future__ import annotations

import getpass
import json
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from cardperso.codec.numbers import mask_id
from cardperso.errors import UsageError
from cardperso.registry import lifecycle
from cardperso.registry.schema import require_current
from cardperso.storage.db import Database

log = logging.getLogger("cardperso.registry")

APP_COLUMNS = (
    "id",
    "ssn",
    "name",
    "gender",
    "nation",
    "birth_date",
    "birth_place",
    "region",
    "photo",
    "bank_code",
    "pan",
    "pan_seq",
    "extra",
    "application_type",
    "accepted_date",
    "state",
    "reason",
    "card_no",
    "notified_date",
)


@dataclass(frozen=True, slots=True)
class Application:
    """One application (and, once registered, its card). ``repr`` shows no personal data."""

    id: int
    ssn: str = field(repr=False)
    name: str = field(repr=False)
    gender: str = field(repr=False)
    nation: str = field(repr=False)
    birth_date: str = field(repr=False)
    birth_place: str = field(repr=False)
    region: str
    photo: str = field(repr=False)
    bank_code: str
    pan: str = field(repr=False)
    pan_seq: str
    extra: dict[str, str] = field(repr=False)
    application_type: str
    accepted_date: str
    state: str
    reason: str = ""
    card_no: str = ""
    notified_date: str = ""

    @property
    def ssn_masked(self) -> str:
        return mask_id(self.ssn)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Application:
        values = dict(zip(APP_COLUMNS, row))
        values["extra"] = json.loads(values["extra"] or "{}")
        for k, v in values.items():
            if v is None:
                values[k] = ""
        values["id"] = int(row[0])
        return cls(**values)


def default_actor() -> str:
    """``user@host``: who runs a command, for the transition log."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: the uid will do
        user = "uid-unknown"
    return f"{user}@{socket.gethostname()}"


def open_registry(db: Database) -> Database:
    """Check the schema version; the registry's functions take the database itself."""
    require_current(db)
    return db


def move(
    db: Database,
    app_id: int,
    event: str,
    *,
    actor: str,
    detail: str = "",
    **columns: object,
) -> str:
    """Apply ``event`` to application ``app_id`` (call inside a transaction); the new state."""
    rows = db.execute(
        "SELECT state, card_no FROM reg_applications WHERE id = ?" + db.for_update, (app_id,)
    )
    if not rows:
        raise UsageError(f"no application {app_id} in the registry")
    state, card_no = rows[0]
    new_state = lifecycle.next_state(str(state), event)
    now = time.time()
    sets = "".join(f", {name} = ?" for name in columns)
    db.execute(
        f"UPDATE reg_applications SET state = ?, state_at = ?{sets} WHERE id = ?",
        (new_state, now, *columns.values(), app_id),
    )
    card = columns.get("card_no", card_no)
    db.execute(
        "INSERT INTO reg_transitions (application_id, card_no, from_state, to_state, event, "
        "actor, at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (app_id, card, state, new_state, event, actor, now, detail or None),
    )
    log.info(
        "application %d%s: %s → %s (%s) by %s",
        app_id,
        f" card {card}" if card else "",
        state,
        new_state,
        event,
        actor,
    )
    return new_state


def select_apps(db: Database, where: str = "", params: tuple[Any, ...] = ()) -> list[Application]:
    sql = f"SELECT {', '.join(APP_COLUMNS)} FROM reg_applications"
    if where:
        sql += f" WHERE {where}"
    return [Application.from_row(r) for r in db.execute(sql + " ORDER BY id", params)]


def app_by_card(db: Database, card_no: str) -> Application:
    rows = db.execute("SELECT application_id FROM reg_cards WHERE card_no = ?", (card_no,))
    if not rows:
        shown = card_no if len(card_no) <= 9 else mask_id(card_no)  # an identity number?
        raise UsageError(f"card {shown} is not in the registry")
    return select_apps(db, "id = ?", (int(rows[0][0]),))[0]


@dataclass(frozen=True, slots=True)
class Transition:
    at: float
    card_no: str
    from_state: str
    to_state: str
    event: str
    actor: str
    detail: str


def history(db: Database, app_id: int) -> list[Transition]:
    rows = db.execute(
        "SELECT at, card_no, from_state, to_state, event, actor, detail FROM reg_transitions "
        "WHERE application_id = ? ORDER BY id",
        (app_id,),
    )
    return [
        Transition(float(a), c or "", f or "", str(t), str(e), str(who), d or "")
        for a, c, f, t, e, who, d in rows
    ]


def counts(db: Database) -> dict[str, int]:
    out = dict.fromkeys(lifecycle.STATES, 0)
    for state, n in db.execute("SELECT state, COUNT(*) FROM reg_applications GROUP BY state"):
        out[str(state)] = int(n)
    return out


def is_integrity_error(exc: BaseException) -> bool:
    """A unique or primary-key violation, from either driver (sqlite3, psycopg)."""
    return any(c.__name__ in ("IntegrityError", "UniqueViolation") for c in type(exc).__mro__)
