"""Finding things: one application or card in full (``registry show``), and lists with filters
(``registry list``).

Both return plain dicts, ready for JSON and for the text printer of the CLI. Like every output
of the registry they name people by masked identity number and bank cards by masked PAN; the
photo is a path; the name is not shown (the registry's tables hold it; the forms of
``registry form`` print it for the applicant).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Final

from cardperso.codec.numbers import mask_id
from cardperso.errors import UsageError
from cardperso.registry import lifecycle
from cardperso.registry.calendar import parse_day
from cardperso.registry.centre import mask_phone
from cardperso.registry.notices import notifications
from cardperso.registry.store import Application, history, select_apps
from cardperso.storage.db import Database


def mask_pan(pan: str) -> str:
    """``622848******1234``: the first six and last four digits of a PAN."""
    return pan[:6] + "*" * max(0, len(pan) - 10) + pan[-4:] if len(pan) > 10 else ""


def resolve(db: Database, key: str) -> Application:
    """The application named by ``key``: an application id (digits, fewer than 9) or a card
    number (the application that card belongs to)."""
    key = key.strip()
    if key.isdigit() and len(key) < 9:
        found = select_apps(db, "id = ?", (int(key),))
        if not found:
            raise UsageError(f"no application {key} in the registry")
        return found[0]
    rows = db.execute("SELECT application_id FROM reg_cards WHERE card_no = ?", (key,))
    if not rows:
        shown = key if len(key) <= 9 else mask_id(key)  # an identity number typed by mistake
        raise UsageError(
            f"no card {shown} in the registry (give a card number or application id; "
            "find a person with registry list --ssn)"
        )
    return select_apps(db, "id = ?", (int(rows[0][0]),))[0]


_CARD_COLUMNS: Final = (
    "card_no",
    "active",
    "kind",
    "profile",
    "batch_no",
    "issue_date",
    "expiry_date",
    "chip_serial",
    "atr",
    "card_id_code",
    "pan",
    "issued_date",
    "cancel_reason",
    "replaced_by",
    "pan_clash",
    "collected_by",
    "agent_ssn",
    "collected_at",
)


def _day(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def card_details(db: Database, card_no: str) -> dict[str, Any]:
    rows = db.execute(
        f"SELECT {', '.join(_CARD_COLUMNS)} FROM reg_cards WHERE card_no = ?", (card_no,)
    )
    if not rows:
        return {}
    card = {k: ("" if v is None else v) for k, v in zip(_CARD_COLUMNS, rows[0], strict=True)}
    card["active"] = card["active"] == 1
    card["pan"] = mask_pan(str(card["pan"]))
    card["agent_ssn"] = mask_id(str(card["agent_ssn"])) if card["agent_ssn"] else ""
    box = db.execute(
        "SELECT b.box_no, b.service_point, b.received_date FROM reg_box_cards c "
        "JOIN reg_boxes b ON b.box_no = c.box_no WHERE c.card_no = ?",
        (card_no,),
    )
    card["box"] = (
        {"box_no": box[0][0], "service_point": box[0][1], "received_date": box[0][2] or ""}
        if box
        else {}
    )
    card["notifications"] = notifications(db, card_no)
    replaced = db.execute("SELECT card_no FROM reg_cards WHERE replaced_by = ?", (card_no,))
    card["replaces"] = [str(r[0]) for r in replaced]
    card["old_chips"] = [
        {"chip_serial": s, "reason": r, "at": _day(float(a))}
        for s, r, a in db.execute(
            "SELECT chip_serial, reason, at FROM reg_old_chips WHERE card_no = ? ORDER BY id",
            (card_no,),
        )
    ]
    card["bank_requests"] = [
        {"id": int(i), "request": k, "reason": r, "sent_file": f or ""}
        for i, k, r, f in db.execute(
            "SELECT id, kind, reason, sent_file FROM reg_bank_requests WHERE card_no = ? "
            "ORDER BY id",
            (card_no,),
        )
    ]
    return card


def show(db: Database, key: str) -> dict[str, Any]:
    """An application (by id) or a card (by number) with its card, the person's other cards
    and the whole history."""
    app = resolve(db, key)
    row = db.execute(
        "SELECT source, replaces, service_point, unit, phone, photo_source, photo_receipt, "
        "staff_confirmed, applicant_confirmed FROM reg_applications WHERE id = ?",
        (app.id,),
    )[0]
    extra = tuple("" if v is None else str(v) for v in row)
    out: dict[str, Any] = {
        "application_id": app.id,
        "state": app.state,
        "reason": app.reason,
        "ssn_masked": app.ssn_masked,
        "application_type": app.application_type,
        "accepted_date": app.accepted_date,
        "notified_date": app.notified_date,
        "region": app.region,
        "bank_code": app.bank_code,
        "pan": mask_pan(app.pan),
        "photo": app.photo,
        "source": extra[0],
        "replaces": extra[1],
        "service_point": extra[2],
        "unit": extra[3],
        "phone": mask_phone(extra[4]),
        "photo_source": extra[5],
        "photo_receipt": extra[6],
        "staff_confirmed": extra[7],
        "applicant_confirmed": extra[8],
        "card_no": app.card_no,
        "card": card_details(db, app.card_no) if app.card_no else {},
    }
    out["cards_of_person"] = [
        {"card_no": str(n), "state": str(s), "active": a == 1, "application_id": int(i)}
        for n, s, a, i in db.execute(
            "SELECT c.card_no, a.state, c.active, a.id FROM reg_cards c JOIN reg_applications a "
            "ON a.id = c.application_id WHERE c.ssn = ? ORDER BY c.registered_at, c.card_no",
            (app.ssn,),
        )
    ]
    out["history"] = [
        {
            "at": _day(t.at),
            "event": t.event,
            "from": t.from_state,
            "to": t.to_state,
            "card_no": t.card_no,
            "by": t.actor,
            "detail": t.detail,
        }
        for t in history(db, app.id)
    ]
    return out


@dataclass(frozen=True, slots=True)
class Filters:
    """``registry list`` filters; every one given must hold."""

    states: tuple[str, ...] = ()
    batch: str = ""
    bank: str = ""
    region: str = ""
    unit: str = ""
    service_point: str = ""
    application_type: str = ""
    ssn: str = field(default="", repr=False)
    accepted_from: str = ""  # YYYYMMDD, inclusive
    accepted_to: str = ""
    limit: int | None = None


def filters(
    *,
    states: tuple[str, ...] = (),
    batch: str = "",
    bank: str = "",
    region: str = "",
    unit: str = "",
    service_point: str = "",
    application_type: str = "",
    date_from: str = "",
    date_to: str = "",
    limit: int | None = None,
    ssn: str = "",
) -> Filters:
    """Checked filters (unknown states and bad dates are usage errors)."""
    unknown = [s for s in states if s not in lifecycle.STATES]
    if unknown:
        raise UsageError(
            f"--state {unknown[0]}: not a state (one of {', '.join(lifecycle.STATES)})"
        )
    start = f"{parse_day(date_from, 'from'):%Y%m%d}" if date_from else ""
    end = f"{parse_day(date_to, 'to'):%Y%m%d}" if date_to else ""
    if start and end and end < start:
        raise UsageError(f"--to {date_to} is before --from {date_from}")
    return Filters(
        states,
        batch,
        bank,
        region,
        unit,
        service_point,
        application_type,
        ssn.strip().upper(),
        start,
        end,
        limit,
    )


LIST_COLUMNS: Final = (
    "application_id",
    "card_no",
    "state",
    "application_type",
    "accepted_date",
    "region",
    "bank_code",
    "batch_no",
    "unit",
    "service_point",
    "ssn_masked",
)


def where_clause(f: Filters) -> tuple[str, list[Any]]:
    """SQL conditions on ``reg_applications a`` left-joined with ``reg_cards c``."""
    where: list[str] = []
    params: list[Any] = []
    if f.states:
        where.append(f"a.state IN ({', '.join('?' for _ in f.states)})")
        params.extend(f.states)
    for column, value in (
        ("c.batch_no", f.batch),
        ("a.bank_code", f.bank),
        ("a.region", f.region),
        ("a.unit", f.unit),
        ("a.service_point", f.service_point),
        ("a.application_type", f.application_type),
        ("a.ssn", f.ssn),
    ):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if f.accepted_from:
        where.append("a.accepted_date >= ?")
        params.append(f.accepted_from)
    if f.accepted_to:
        where.append("a.accepted_date <= ?")
        params.append(f.accepted_to)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def list_apps(db: Database, f: Filters) -> list[dict[str, Any]]:
    """The applications that pass ``f`` (oldest first), one dict each (:data:`LIST_COLUMNS`)."""
    where, params = where_clause(f)
    sql = (
        "SELECT a.id, a.card_no, a.state, a.application_type, a.accepted_date, a.region, "
        "a.bank_code, c.batch_no, a.unit, a.service_point, a.ssn FROM reg_applications a "
        f"LEFT JOIN reg_cards c ON c.card_no = a.card_no{where} ORDER BY a.id"
    )
    if f.limit is not None:
        sql += f" LIMIT {int(f.limit)}"
    out = []
    for row in db.execute(sql, params):
        values = ["" if v is None else v for v in row]
        values[0] = int(row[0])
        values[-1] = mask_id(str(row[-1]))
        out.append(dict(zip(LIST_COLUMNS, values, strict=True)))
    return out
