"""Cards travel to the service points in boxes, and are collected there.

* :func:`pack` puts the made cards of one service point (accounts opened, ready for collection,
  or a temporary card) that are in no box yet into a new box and writes its manifest (``box_no,
  card_no, ssn_masked``: the list that travels with the box);
* :func:`receive` is the service point confirming it received the box (who, which date);
* a boxed card can be collected only once its box was received (:func:`check_collectable`);
* the collection itself (:func:`cardperso.registry.cards.issue`) records the holder or an
  agent with the agent's identity number (kept in ``reg_cards.agent_ssn``, shown masked
  everywhere), the date and the service point.
"""

from __future__ import annotations

import csv
import datetime
import time
from dataclasses import dataclass
from pathlib import Path

from cardperso.codec.csvcells import safe_row
from cardperso.codec.numbers import mask_id
from cardperso.errors import DataError, UsageError
from cardperso.outputs import atomic_output
from cardperso.registry import lifecycle
from cardperso.registry.centre import parties
from cardperso.registry.store import is_integrity_error
from cardperso.storage.db import Database

MANIFEST_COLUMNS = ("box_no", "card_no", "ssn_masked", "kind")


@dataclass(frozen=True, slots=True)
class Box:
    box_no: str
    service_point: str
    cards: int
    received_date: str = ""
    received_by: str = ""


def _next_box_no(db: Database, point: str, day: datetime.date) -> str:
    stem = f"X{point}-{day:%Y%m%d}-"
    rows = db.execute("SELECT box_no FROM reg_boxes WHERE box_no LIKE ?", (stem + "%",))
    n = max((int(str(b)[len(stem) :]) for (b,) in rows if str(b)[len(stem) :].isdigit()), default=0)
    return f"{stem}{n + 1:03d}"


def pack(
    db: Database,
    service_point: str,
    manifest: Path,
    *,
    box_no: str | None = None,
    day: datetime.date | None = None,
) -> Box:
    """A new box with every made card of ``service_point`` not yet boxed; its manifest."""
    if service_point not in parties(db, "service_point"):
        raise UsageError(f"service point {service_point} is not on the centre's list")
    try:
        return _pack(db, service_point, manifest, box_no, day)
    except Exception as exc:
        if not is_integrity_error(exc):
            raise
        # PostgreSQL: another pack took some of these cards (or this box number) meanwhile
        raise UsageError(
            f"another box was packed for {service_point} at the same time: run it again"
        ) from None


def _pack(
    db: Database,
    service_point: str,
    manifest: Path,
    box_no: str | None,
    day: datetime.date | None,
) -> Box:
    states = (lifecycle.ACCOUNT_OPENED, lifecycle.READY, lifecycle.PERSONALIZED)
    with db.transaction():
        number = box_no or _next_box_no(db, service_point, day or datetime.date.today())
        if db.execute("SELECT 1 FROM reg_boxes WHERE box_no = ?", (number,)):
            raise UsageError(f"box {number} exists already")
        rows = db.execute(
            "SELECT a.card_no, a.ssn, c.kind, a.state FROM reg_applications a "
            "JOIN reg_cards c ON c.card_no = a.card_no WHERE a.service_point = ? "
            f"AND a.state IN ({', '.join('?' for _ in states)}) AND NOT EXISTS "
            "(SELECT 1 FROM reg_box_cards b WHERE b.card_no = a.card_no) ORDER BY a.card_no",
            (service_point, *states),
        )
        # a personalized standard card still waits for its bank account
        rows = [r for r in rows if r[3] != lifecycle.PERSONALIZED or r[2] == "temporary"]
        if not rows:
            raise UsageError(f"no made card of service point {service_point} waits for a box")
        db.executemany(
            "INSERT INTO reg_box_cards (card_no, box_no) VALUES (?, ?)",
            [(str(r[0]), number) for r in rows],
        )
        db.execute(
            "INSERT INTO reg_boxes (box_no, service_point, cards, packed_at) VALUES (?, ?, ?, ?)",
            (number, service_point, len(rows), time.time()),
        )
        with atomic_output(Path(manifest)) as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(MANIFEST_COLUMNS)
            for card_no, ssn, kind, _ in rows:  # read by people: spreadsheet-safe cells
                writer.writerow(safe_row((number, card_no, mask_id(str(ssn)), kind)))
    return Box(number, service_point, len(rows))


def receive(db: Database, box_no: str, *, by: str, date: str) -> Box:
    """The service point confirms it received ``box_no`` (once)."""
    if not by.strip():
        raise DataError("names who received the box", field="by")
    if date > f"{datetime.date.today():%Y%m%d}":
        raise DataError(f"{date} is in the future", record=f"box {box_no}", field="date")
    with db.transaction():
        rows = db.execute(
            "SELECT service_point, cards, received_date FROM reg_boxes WHERE box_no = ?"
            + db.for_update,
            (box_no,),
        )
        if not rows:
            raise UsageError(f"no box {box_no} in the registry")
        point, n, received = rows[0]
        if received:
            raise UsageError(f"box {box_no} was received on {received} already")
        db.execute(
            "UPDATE reg_boxes SET received_date = ?, received_by = ? WHERE box_no = ?",
            (date, by.strip(), box_no),
        )
    return Box(box_no, str(point), int(n), date, by.strip())


def boxes(db: Database, service_point: str = "") -> list[Box]:
    where = " WHERE service_point = ?" if service_point else ""
    return [
        Box(str(b), str(p), int(n), str(d or ""), str(w or ""))
        for b, p, n, d, w in db.execute(
            "SELECT box_no, service_point, cards, received_date, received_by FROM reg_boxes"
            f"{where} ORDER BY box_no",
            (service_point,) if service_point else (),
        )
    ]


def check_collectable(db: Database, card_no: str, service_point: str, date: str = "") -> None:
    """A boxed card is collected at its box's service point once the box was received, and
    not before the day it was received (``date``: ``YYYYMMDD``)."""
    rows = db.execute(
        "SELECT b.box_no, b.service_point, b.received_date FROM reg_box_cards c "
        "JOIN reg_boxes b ON b.box_no = c.box_no WHERE c.card_no = ?",
        (card_no,),
    )
    if not rows:
        return
    box, point, received = rows[0]
    if not received:
        raise UsageError(
            f"card {card_no} is in box {box}, not yet received at service point {point}"
        )
    if service_point and service_point != point:
        raise UsageError(f"card {card_no} is at service point {point}, not {service_point}")
    if date and date < str(received):
        raise DataError(
            f"{date} is before its box {box} reached service point {point} ({received})",
            record=f"card {card_no}",
            field="date",
        )
