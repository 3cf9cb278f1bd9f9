"""Registration against the provincial card database: duplicates, card numbers, issuance.

Card numbers (9 characters, GB 11714 check character) are allocated per issuing region:
``PP`` (the region's two-character prefix) ‖ a six-character base-36 sequence ‖ the check
character. A region gets the next free prefix (``00``, ``01``, … ``0Z``, ``10``, …) the first
time it registers a card, unless one was set with ``registry region REGION --prefix PP``; its
sequence then counts up (36⁶ ≈ 2.2 billion numbers per region). ``reg_cards.card_no`` is the
primary key, so a number is never given twice.

Duplicates: every card of the same identity number is looked at when a new one is registered.
An *active* original (registered and not cancelled) is cancelled, with the reason and the new
card's number, in the same transaction that registers the new card. The partial unique index
``reg_cards (ssn) WHERE active = 1`` makes "one active card per person" hold even when two
processes register the same person at once: the second insert waits for the first transaction,
fails on the index, and its transaction is retried, now seeing (and cancelling) the first card.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from typing import Final

from cardperso.codec.numbers import card_number_check_char, check_resident_id, mask_id
from cardperso.errors import DataError, UsageError
from cardperso.registry import lifecycle
from cardperso.registry.centre import parties
from cardperso.registry.collection import check_collectable
from cardperso.registry.lost import BLOCK, CLOSE, block_request
from cardperso.registry.store import app_by_card, is_integrity_error, move, select_apps
from cardperso.storage.db import Database

log = logging.getLogger("cardperso.registry")

_B36: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SEQ_LIMIT: Final = 36**6
RETRIES: Final = 8


def base36(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 36)
        out.append(_B36[r])
    if n:
        raise DataError(f"{n} does not fit {width} base-36 characters", field="card_no")
    return "".join(reversed(out))


def card_number(prefix: str, seq: int) -> str:
    body = prefix + base36(seq, 6)
    return body + card_number_check_char(body)


def set_region_prefix(db: Database, region: str, prefix: str) -> None:
    """Pin the card-number prefix of ``region`` (before its first card)."""
    if len(prefix) != 2 or any(c not in _B36 for c in prefix):
        raise DataError("a region prefix is 2 characters 0-9 or A-Z", field="prefix")
    with db.transaction():
        rows = db.execute("SELECT prefix FROM reg_regions WHERE region = ?", (region,))
        if rows:
            raise UsageError(f"region {region} already numbers its cards with prefix {rows[0][0]}")
        taken = db.execute("SELECT region FROM reg_regions WHERE prefix = ?", (prefix,))
        if taken:
            raise UsageError(f"prefix {prefix} belongs to region {taken[0][0]}")
        db.execute(
            "INSERT INTO reg_regions (region, prefix, next_seq) VALUES (?, ?, 1)", (region, prefix)
        )


def allocate(db: Database, region: str) -> str:
    """The next card number of ``region`` (call inside the registering transaction)."""
    rows = db.execute(
        "SELECT prefix, next_seq FROM reg_regions WHERE region = ?" + db.for_update, (region,)
    )
    if rows:
        prefix, seq = str(rows[0][0]), int(rows[0][1])
    else:
        used = {str(p) for (p,) in db.execute("SELECT prefix FROM reg_regions")}
        prefix = next(base36(i, 2) for i in range(36 * 36) if base36(i, 2) not in used)
        seq = 1
        db.execute(
            "INSERT INTO reg_regions (region, prefix, next_seq) VALUES (?, ?, ?)",
            (region, prefix, seq),
        )
    if seq >= SEQ_LIMIT:
        raise DataError(f"region {region} has used all its card numbers", field="card_no")
    db.execute("UPDATE reg_regions SET next_seq = ? WHERE region = ?", (seq + 1, region))
    return card_number(prefix, seq)


@dataclass(frozen=True, slots=True)
class Registration:
    app_id: int
    ssn_masked: str
    card_no: str
    cancelled: tuple[str, ...] = ()  # active originals cancelled as duplicates
    previous: int = 0  # cards of this identity number registered before (any state)
    problem: str = ""  # not registered (stays compared): why
    replaces: str = ""  # the lost card this one re-issues (补卡)


def _register_one(db: Database, app_id: int, *, actor: str) -> Registration | None:
    with db.transaction():
        rows = db.execute(
            "SELECT state, ssn, region FROM reg_applications WHERE id = ?" + db.for_update,
            (app_id,),
        )
        if not rows or rows[0][0] != lifecycle.COMPARED:
            return None  # another process registered it meanwhile
        _, ssn, region = rows[0]
        pan, replaces = db.execute(
            "SELECT pan, replaces FROM reg_applications WHERE id = ?", (app_id,)
        )[0]
        if pan:
            clash = db.execute(
                "SELECT card_no FROM reg_cards WHERE active = 1 AND pan = ? AND ssn <> ?",
                (pan, ssn),
            )
            if clash:
                return Registration(
                    app_id,
                    mask_id(str(ssn)),
                    "",
                    problem=f"bank card number is on another person's active card {clash[0][0]}",
                )
        earlier = db.execute(
            "SELECT card_no, application_id, active, replaced_by FROM reg_cards WHERE ssn = ? "
            "ORDER BY registered_at, card_no" + db.for_update,
            (ssn,),
        )
        card_no = allocate(db, str(region))
        if not replaces:  # applied again after a card was lost or cancelled: link the latest
            unlinked = [str(n) for n, _, active, by in earlier if active != 1 and not by]
            replaces = unlinked[-1] if unlinked else None
        cancelled = []
        for old_no, old_app, active, replaced_by in earlier:
            if active != 1:
                if str(old_no) == (replaces or "") and not replaced_by:
                    db.execute(  # the lost card this one re-issues: keep the link
                        "UPDATE reg_cards SET replaced_by = ? WHERE card_no = ?", (card_no, old_no)
                    )
                continue
            reason = f"duplicate: replaced by card {card_no}"
            db.execute(
                "UPDATE reg_cards SET active = NULL, cancel_reason = ?, replaced_by = ? "
                "WHERE card_no = ?",
                (reason, card_no, old_no),
            )
            move(db, int(old_app), "cancel", actor=actor, detail=reason, reason=reason)
            block_request(db, str(old_no), reason)
            cancelled.append(str(old_no))
        db.execute(
            "INSERT INTO reg_cards (card_no, application_id, ssn, region, active, kind, pan, "
            "registered_at) SELECT ?, id, ssn, region, 1, 'standard', pan, ? "
            "FROM reg_applications WHERE id = ?",
            (card_no, time.time(), app_id),
        )
        detail = f"cancelled duplicate {', '.join(cancelled)}" if cancelled else ""
        if replaces:
            detail = (detail + "; " if detail else "") + f"re-issues lost card {replaces}"
        move(db, app_id, "register", actor=actor, detail=detail, card_no=card_no, replaces=replaces)
    if cancelled:
        log.warning(
            "identity number %s: card(s) %s cancelled as duplicates of new card %s",
            mask_id(str(ssn)),
            ", ".join(cancelled),
            card_no,
        )
    return Registration(
        app_id, mask_id(str(ssn)), card_no, tuple(cancelled), len(earlier), replaces=replaces or ""
    )


def register(db: Database, *, actor: str, limit: int | None = None) -> list[Registration]:
    """Register every compared application (oldest first), each in its own transaction."""
    apps = select_apps(db, "state = ?", (lifecycle.COMPARED,))[:limit]
    out: list[Registration] = []
    for app in apps:
        for attempt in range(RETRIES):
            try:
                got = _register_one(db, app.id, actor=actor)
                break
            except Exception as exc:
                if not is_integrity_error(exc):
                    raise
                if attempt == RETRIES - 1:
                    # not the driver's error: its DETAIL line quotes the identity number
                    raise DataError(
                        f"registration still conflicts after {RETRIES} attempts",
                        record=f"application {app.id}",
                    ) from None
                log.info("application %d: registration raced another; retrying", app.id)
        if got is not None:
            out.append(got)
    return out


def issue(
    db: Database,
    card_no: str,
    *,
    to: str,
    date: str,
    actor: str,
    today: datetime.date | None = None,
    agent_ssn: str = "",
    service_point: str = "",
) -> str:
    """The cardholder (or an agent) collected the card: ``issued``, with who and when. The date
    (``YYYYMMDD``) can be neither before the notification nor after ``today``. An agent is
    recorded with the agent's identity number (shown masked everywhere); the service point is
    the application's unless given, and a boxed card must be in a box that point received."""
    app = app_by_card(db, card_no)
    if app.card_no != card_no:
        raise UsageError(f"card {card_no} was replaced by {app.card_no or 'another card'}")
    now = today or datetime.date.today()
    if date > f"{now:%Y%m%d}":
        raise DataError(f"{_iso(date)} is in the future", record=f"card {card_no}", field="date")
    if app.notified_date and date < app.notified_date:
        raise DataError(
            f"{_iso(date)} is before the card was ready (notified {_iso(app.notified_date)})",
            record=f"card {card_no}",
            field="date",
        )
    if agent_ssn:
        try:
            agent_ssn = agent_ssn.strip().upper()
            check_resident_id(agent_ssn, "agent_id")
        except DataError as exc:
            raise DataError(exc.reason, record=f"card {card_no}", field="agent_id") from None
        if agent_ssn == app.ssn:
            raise DataError(
                "is the cardholder's own number: the holder collects without --agent-id",
                record=f"card {card_no}",
                field="agent_id",
            )
    own_point = db.execute("SELECT service_point FROM reg_applications WHERE id = ?", (app.id,))
    point = service_point or str(own_point[0][0] or "")
    if service_point and service_point not in parties(db, "service_point"):
        raise UsageError(f"service point {service_point} is not on the centre's list")
    check_collectable(db, card_no, service_point, date)
    who = f"agent {mask_id(agent_ssn)}" if agent_ssn else "the holder"
    with db.transaction():
        db.execute(
            "UPDATE reg_cards SET issued_to = ?, issued_date = ?, collected_by = ?, "
            "agent_ssn = ?, collected_at = ? WHERE card_no = ?",
            (to, date, "agent" if agent_ssn else "holder", agent_ssn or None, point or None,
             card_no),
        )  # fmt: skip
        return move(
            db,
            app.id,
            "issue",
            actor=actor,
            detail=f"collected on {date} by {who}" + (f" at {point}" if point else ""),
        )


def cancel(
    db: Database, card_no: str, *, reason: str, actor: str, close_account: bool = False
) -> str:
    """Cancel a card (lost, withdrawn): it is no longer the person's active card. The bank is
    asked to block its account, or to close it (``close_account``)."""
    app = app_by_card(db, card_no)
    with db.transaction():
        db.execute(
            "UPDATE reg_cards SET active = NULL, cancel_reason = ? WHERE card_no = ?",
            (reason, card_no),
        )
        state = move(db, app.id, "cancel", actor=actor, detail=reason, reason=reason)
        block_request(db, card_no, f"cancelled: {reason}", CLOSE if close_account else BLOCK)
        return state


def _iso(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:]}" if len(day) == 8 else day


def cards_of(db: Database, ssn: str) -> list[tuple[str, str, bool, str]]:
    """Every card of an identity number: (card number, state, active, cancel reason)."""
    rows = db.execute(
        "SELECT c.card_no, a.state, c.active, c.cancel_reason FROM reg_cards c "
        "JOIN reg_applications a ON a.id = c.application_id WHERE c.ssn = ? ORDER BY c.registered_at",
        (ssn,),
    )
    return [(str(n), str(s), a == 1, r or "") for n, s, a, r in rows]
