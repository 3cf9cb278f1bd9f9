"""The certificate ledger and the revocation list's entries, in the line's / registry's database.

``pki_certificates`` records every certificate the line issued (before it is written to a
card): serial (hex), usage, card number, chip serial, issue time, expiry. ``pki_crls`` records
each revocation list made (its number, so numbers only grow). The statements are written once
with ``?`` placeholders for :class:`cardperso.storage.db.Database` (SQLite and PostgreSQL); this
module takes the database as any object with ``execute`` (the pure layers never import storage).

Which certificates are revoked (:func:`revoked_entries`), from the registry's tables:

* a **cancelled** card (``reg_cards.active`` cleared with a ``cancel_reason``): every certificate
  of that card number, reason ``key_compromise`` when the reason says it was lost, else
  ``cessation_of_operation``;
* a **suspended** card (挂失, reported lost, not yet re-issued): ``certificate_hold``
  (RFC 5280 5.3.1; dropped from the next list when the card is restored);
* a certificate issued to a chip that is not the card's chip in the registry (the chip went to
  the reject box and the record was made on another): ``superseded``.

The revocation date is the registry transition's time (cancel, suspend), else the issue time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, Protocol

from cardperso.pki.issue import IssuedCertificate

__all__ = ["LEDGER_TABLES", "ensure_tables", "next_crl_number", "record", "revoked_entries"]


class Db(Protocol):
    def execute(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]: ...

    def script(self, statements: Sequence[str]) -> None: ...


LEDGER_TABLES = (
    "CREATE TABLE IF NOT EXISTS pki_certificates (serial TEXT PRIMARY KEY, usage TEXT NOT NULL, "
    "card_no TEXT NOT NULL, chip_serial TEXT NOT NULL, issued_at DOUBLE PRECISION NOT NULL, "
    "not_after DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS pki_certificates_card ON pki_certificates (card_no)",
    "CREATE TABLE IF NOT EXISTS pki_crls (number BIGINT PRIMARY KEY, "
    "made_at DOUBLE PRECISION NOT NULL, entries INTEGER NOT NULL)",
)


def ensure_tables(db: Db) -> None:
    db.script(
        LEDGER_TABLES
    )  # one transaction, under the DDL lock on PostgreSQL (lines start together)


def record(db: Db, cert: IssuedCertificate) -> None:
    """Record one issued certificate (a repeated serial fails on the primary key)."""
    db.execute(
        "INSERT INTO pki_certificates (serial, usage, card_no, chip_serial, issued_at, not_after) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (f"{cert.serial:X}", cert.usage, cert.card_no, cert.chip_serial.hex().upper(),
         time.time(), cert.not_after.timestamp()),
    )  # fmt: skip


def _when(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC)


def revoked_entries(db: Db, *, now: float | None = None) -> list[tuple[int, dt.datetime, str]]:
    """``(serial, revoked at, reason)`` of every certificate to list (see the module docstring);
    expired certificates are left out (RFC 5280 3.3: a CRL need not list them)."""
    now = time.time() if now is None else now
    rows = db.execute(
        "SELECT p.serial, p.issued_at, p.chip_serial, c.chip_serial, c.active, c.cancel_reason, "
        "a.state, (SELECT MAX(t.at) FROM reg_transitions t WHERE t.application_id = a.id "
        "AND t.event IN ('cancel', 'suspend')) "
        "FROM pki_certificates p JOIN reg_cards c ON c.card_no = p.card_no "
        "JOIN reg_applications a ON a.id = c.application_id WHERE p.not_after > ? "
        "ORDER BY p.serial",
        (now,),
    )
    out: list[tuple[int, dt.datetime, str]] = []
    for serial, issued, chip, card_chip, active, cancel_reason, state, changed in rows:
        reason = ""
        if active is None and cancel_reason:
            reason = "key_compromise" if "lost" in str(cancel_reason) else "cessation_of_operation"
        elif state == "suspended":
            reason = "certificate_hold"
        elif card_chip and str(card_chip).upper() != str(chip).upper():
            reason = "superseded"
        if reason:
            at = changed if changed is not None and reason != "superseded" else issued
            out.append((int(str(serial), 16), _when(float(at)), reason))
    return out


def next_crl_number(db: Db, entries: int) -> int:
    """Reserve the next CRL number (one more than any made before) and record it."""
    rows = db.execute("SELECT MAX(number) FROM pki_crls")
    number = int(rows[0][0] or 0) + 1
    db.execute(
        "INSERT INTO pki_crls (number, made_at, entries) VALUES (?, ?, ?)",
        (number, time.time(), entries),
    )
    return number
