"""A lost card: suspend (挂失), restore (解挂), re-issue (补卡); and the requests to the bank.

A cardholder reports an issued card lost: it is ``suspended`` and the bank is asked to
**block** its account (:func:`suspend`). Found again, it is ``restore``-d to ``issued`` and the
bank is asked to **unblock** it (:func:`restore`). Not found, it is re-issued
(:func:`reissue`): the card is cancelled (its account stays blocked) and a new application for
the same person is accepted, naming the lost card in ``replaces``; when that application is
registered, the lost card's ``replaced_by`` names the new card
(:mod:`cardperso.registry.cards`).

Any card with an opened account that is cancelled (a duplicate replaced by a new card, a card
cancelled by hand) gets a block request too. Requests wait in ``reg_bank_requests`` until
``registry report bank-requests`` writes them into a file for the bank (they are marked sent
with that file's name), so a request is never lost and never sent twice.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cardperso.errors import UsageError
from cardperso.outputs import atomic_output
from cardperso.registry import lifecycle
from cardperso.registry.centre import parties
from cardperso.registry.store import APP_COLUMNS, Application, app_by_card, move
from cardperso.storage.db import Database

BLOCK: Final = "block"
UNBLOCK: Final = "unblock"
CLOSE: Final = "close"  # a cancelled card whose account the cardholder gives up

#: Columns of the request file for the bank (docs/registry.md).
REQUEST_COLUMNS: Final = ("request_id", "request", "card_no", "pan", "bank_code", "reason", "date")
#: ``request``: block (lost, cancelled), unblock (found again), close (account given up).


def account_opened(db: Database, card_no: str) -> bool:
    """Whether the bank opened an account for ``card_no`` (an ``account_open`` transition)."""
    return bool(
        db.execute(
            "SELECT 1 FROM reg_transitions WHERE card_no = ? AND event = 'account_open'",
            (card_no,),
        )
    )


def _last_request(db: Database, card_no: str) -> str:
    rows = db.execute(
        "SELECT kind FROM reg_bank_requests WHERE card_no = ? ORDER BY id DESC", (card_no,)
    )
    return str(rows[0][0]) if rows else ""


def block_request(db: Database, card_no: str, reason: str, kind: str = BLOCK) -> bool:
    """Ask the bank to block, unblock or close the account of ``card_no`` (inside the caller's
    transaction); nothing when the card has no opened account or the same request is the last
    one already. Whether a request was added."""
    rows = db.execute("SELECT pan FROM reg_cards WHERE card_no = ?", (card_no,))
    if not rows or not rows[0][0] or not account_opened(db, card_no):
        return False
    if _last_request(db, card_no) == kind or (kind == UNBLOCK and not _last_request(db, card_no)):
        return False
    bank = db.execute(
        "SELECT a.bank_code FROM reg_applications a JOIN reg_cards c "
        "ON c.application_id = a.id WHERE c.card_no = ?",
        (card_no,),
    )[0][0]
    db.execute(
        "INSERT INTO reg_bank_requests (card_no, pan, bank_code, kind, reason, requested_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (card_no, rows[0][0], bank, kind, reason, time.time()),
    )
    return True


def _current(db: Database, card_no: str) -> Application:
    app = app_by_card(db, card_no)
    if app.card_no != card_no:
        raise UsageError(f"card {card_no} was replaced by {app.card_no or 'another card'}")
    return app


def suspend(db: Database, card_no: str, *, reason: str, actor: str) -> bool:
    """挂失: an issued card reported lost. Whether a block request went to the bank's queue."""
    app = _current(db, card_no)
    with db.transaction():
        move(db, app.id, "suspend", actor=actor, detail=reason)
        return block_request(db, card_no, f"suspended: {reason}")


def restore(db: Database, card_no: str, *, reason: str, actor: str) -> bool:
    """解挂: a suspended card found again is ``issued`` again; the bank unblocks it."""
    app = _current(db, card_no)
    with db.transaction():
        move(db, app.id, "restore", actor=actor, detail=reason)
        return block_request(db, card_no, f"restored: {reason}", UNBLOCK)


@dataclass(frozen=True, slots=True)
class Reissue:
    old_card: str
    app_id: int  # the new application (accepted), to be audited, compared, registered
    ssn_masked: str
    service_point: str = ""


def reissue(
    db: Database,
    card_no: str,
    *,
    accepted_date: str,
    application_type: str = "sporadic",
    actor: str,
    service_point: str = "",
) -> Reissue:
    """补卡: cancel a suspended card and accept a new application for the same person that
    names it (``replaces``). The new application goes through audit and comparison again."""
    app = _current(db, card_no)
    if app.state != lifecycle.SUSPENDED:
        raise UsageError(
            f"card {card_no} is {app.state}: report it lost first (registry suspend {card_no})"
        )
    if application_type not in ("batch", "sporadic"):
        raise UsageError("--type must be batch or sporadic")
    if service_point and service_point not in parties(db, "service_point"):
        raise UsageError(f"service point {service_point} is not on the centre's list")
    reason = "lost: re-issued"
    now = time.time()
    with db.transaction():
        db.execute(
            "UPDATE reg_cards SET active = NULL, cancel_reason = ? WHERE card_no = ?",
            (reason, card_no),
        )
        move(db, app.id, "cancel", actor=actor, detail=reason, reason=reason)
        block_request(db, card_no, reason)
        cols = [c for c in APP_COLUMNS if c not in ("id", "state", "reason", "card_no")]
        copied = [c for c in cols if c not in ("application_type", "accepted_date")]
        db.execute(
            f"INSERT INTO reg_applications ({', '.join(copied)}, application_type, "
            "accepted_date, state, state_at, source, created_at, replaces) "
            f"SELECT {', '.join(copied)}, ?, ?, ?, ?, ?, ?, ? FROM reg_applications WHERE id = ?",
            (
                application_type,
                accepted_date,
                lifecycle.ACCEPTED,
                now,
                f"reissue of card {card_no}",
                now,
                card_no,
                app.id,
            ),
        )
        new_id = int(
            db.execute(
                "SELECT MAX(id) FROM reg_applications WHERE replaces = ? AND ssn = ?",
                (card_no, app.ssn),
            )[0][0]
        )
        # where and how it is asked for: the old application's contact, unit and photo source;
        # the service point of this request; the form is signed again (registry confirm)
        db.execute(
            "UPDATE reg_applications SET notified_date = NULL, "
            "(phone, unit, photo_source, photo_receipt, service_point) = "
            "(SELECT phone, unit, photo_source, photo_receipt, COALESCE(?, service_point) "
            "FROM reg_applications WHERE id = ?) WHERE id = ?",
            (service_point or None, app.id, new_id),
        )
        point = db.execute("SELECT service_point FROM reg_applications WHERE id = ?", (new_id,))
        db.execute(
            "INSERT INTO reg_transitions (application_id, from_state, to_state, event, actor, "
            "at, detail) VALUES (?, NULL, ?, 'accept', ?, ?, ?)",
            (new_id, lifecycle.ACCEPTED, actor, now, json.dumps({"replaces": card_no})),
        )
    return Reissue(card_no, new_id, app.ssn_masked, str(point[0][0] or ""))


# -- the request file for the bank ------------------------------------------------------------


def write_requests(
    db: Database, out: Path, *, bank_code: str | None = None, downloaded_by: str | None = None
) -> int:
    """Write the requests not yet sent (optionally of one bank) to ``out`` (CSV, mode 0600: it
    carries PANs) and mark them sent with that file; the count. Nothing pending: no file. A
    file sent as a download (``downloaded_by``: the web console's user, ``out`` a temporary
    file) is recorded by its name and who downloaded it, not by its temporary path."""
    sent_file = str(out) if downloaded_by is None else f"{out.name} (downloaded by {downloaded_by})"
    where = "sent_at IS NULL" + (" AND bank_code = ?" if bank_code else "")
    params: tuple[str, ...] = (bank_code,) if bank_code else ()
    with db.transaction():
        rows = db.execute(
            "SELECT id, kind, card_no, pan, bank_code, reason, requested_at "
            f"FROM reg_bank_requests WHERE {where} ORDER BY id" + db.for_update,
            params,
        )
        if not rows:
            return 0
        with atomic_output(Path(out)) as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(REQUEST_COLUMNS)
            for rid, kind, card, pan, bank, reason, at in rows:
                day = time.strftime("%Y-%m-%d", time.gmtime(float(at)))
                writer.writerow([rid, kind, card, pan, bank or "", reason, day])
            now = time.time()
            db.executemany(
                "UPDATE reg_bank_requests SET sent_file = ?, sent_at = ? WHERE id = ?",
                [(sent_file, now, int(r[0])) for r in rows],
            )
    return len(rows)


def pending_requests(db: Database, card_no: str) -> list[tuple[int, str, str, bool]]:
    """The requests about ``card_no``: (id, kind, reason, sent)."""
    return [
        (int(i), str(k), str(r), s is not None)
        for i, k, r, s in db.execute(
            "SELECT id, kind, reason, sent_at FROM reg_bank_requests WHERE card_no = ? ORDER BY id",
            (card_no,),
        )
    ]
