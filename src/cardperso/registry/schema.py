"""The database schema, applied by numbered migrations (``cardperso db upgrade``).

The same statements run on SQLite and PostgreSQL (the few dialect differences come from
:class:`~cardperso.storage.db.Database`). ``schema_migrations`` records which versions were
applied; :func:`upgrade` applies the missing ones in order, each in its own transaction, under
a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory transaction lock on PostgreSQL) so two
upgrades at once apply each migration once.

Migration 1 is the production line's journal (the line also creates it on first use, so a line
on its own needs no upgrade); migration 2 is the registry; migration 3 records which exported
record sits on which physical lines of its batch file (``reg_batch_records``), so that data
preparation's rejects, which name input lines, find their applications again
(``registry import-rejects``). Batches exported before migration 3 get their lines from the
export transitions (one line per record, in export order, after the header). Migration 4 makes
a PAN unique among active cards (``reg_cards_one_active_pan``; cards that shared one before are
marked in ``pan_clash`` instead of failing the upgrade), links a re-issued card to the card it
replaces, and records destroyed chips and the block requests for the bank. Migration 5 adds the
centre's lists (``reg_parties``: service points, insured units, cooperative banks) and, per
application, where and for whom it was accepted, the phone, the photo's source and the two
confirmations. Migration 6 records the notifications per channel, the boxes of cards sent to
service points with their receipt, and who collected a card (holder or agent) where. The partial unique index
``reg_cards_one_active`` is what makes "one active card per identity number" hold even when
two processes register the same person at the same moment.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Final

from cardperso.errors import UsageError
from cardperso.line.journal import schema as journal_schema
from cardperso.storage.db import Database

#: An arbitrary constant: the PostgreSQL advisory lock taken while migrating.
_LOCK_KEY: Final = 0x0CA2D9E2


def _registry(db: Database) -> list[str]:
    pk = db.autoincrement
    return [
        f"CREATE TABLE reg_applications (id {pk}, ssn TEXT NOT NULL, name TEXT NOT NULL, "
        "gender TEXT NOT NULL, nation TEXT NOT NULL, birth_date TEXT NOT NULL, "
        "birth_place TEXT NOT NULL, region TEXT NOT NULL, photo TEXT, bank_code TEXT, pan TEXT, "
        "pan_seq TEXT, extra TEXT, application_type TEXT NOT NULL, accepted_date TEXT NOT NULL, "
        "state TEXT NOT NULL, state_at DOUBLE PRECISION NOT NULL, reason TEXT, card_no TEXT, "
        "notified_date TEXT, source TEXT, created_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX reg_applications_state ON reg_applications (state, id)",
        "CREATE INDEX reg_applications_ssn ON reg_applications (ssn)",
        "CREATE TABLE reg_cards (card_no TEXT PRIMARY KEY, application_id BIGINT NOT NULL, "
        "ssn TEXT NOT NULL, region TEXT NOT NULL, active INTEGER, kind TEXT NOT NULL, "
        "profile TEXT, batch_no TEXT, issue_date TEXT, expiry_date TEXT, chip_serial TEXT, "
        "atr TEXT, card_id_code TEXT, pan TEXT, registered_at DOUBLE PRECISION NOT NULL, "
        "issued_to TEXT, issued_date TEXT, cancel_reason TEXT, replaced_by TEXT)",
        "CREATE UNIQUE INDEX reg_cards_one_active ON reg_cards (ssn) WHERE active = 1",
        "CREATE INDEX reg_cards_ssn ON reg_cards (ssn)",
        "CREATE INDEX reg_cards_batch ON reg_cards (batch_no)",
        "CREATE TABLE reg_regions (region TEXT PRIMARY KEY, prefix TEXT NOT NULL UNIQUE, "
        "next_seq BIGINT NOT NULL)",
        f"CREATE TABLE reg_transitions (id {pk}, application_id BIGINT NOT NULL, card_no TEXT, "
        "from_state TEXT, to_state TEXT NOT NULL, event TEXT NOT NULL, actor TEXT NOT NULL, "
        "at DOUBLE PRECISION NOT NULL, detail TEXT)",
        "CREATE INDEX reg_transitions_app ON reg_transitions (application_id, id)",
        "CREATE TABLE reg_batches (batch_no TEXT PRIMARY KEY, kind TEXT NOT NULL, "
        "profile TEXT NOT NULL, records INTEGER NOT NULL, file TEXT, "
        "created_at DOUBLE PRECISION NOT NULL)",
    ]


def _batch_records(db: Database) -> list[str]:
    return [
        "CREATE TABLE reg_batch_records (batch_no TEXT NOT NULL, line INTEGER NOT NULL, "
        "end_line INTEGER NOT NULL, application_id BIGINT NOT NULL, card_no TEXT NOT NULL, "
        "prep_reject TEXT, PRIMARY KEY (batch_no, line))",
        # batches exported before this migration: one line per record, in export order
        "INSERT INTO reg_batch_records (batch_no, line, end_line, application_id, card_no) "
        "SELECT substr(detail, 7), n + 1, n + 1, application_id, COALESCE(card_no, '') FROM ("
        "SELECT detail, application_id, card_no, "
        "ROW_NUMBER() OVER (PARTITION BY detail ORDER BY id) AS n FROM reg_transitions "
        "WHERE event IN ('export', 'export_temporary') AND substr(detail, 1, 6) = 'batch ') exported",
    ]


def _cards_and_bank(db: Database) -> list[str]:
    pk = db.autoincrement
    return [
        # a PAN is on at most one active card. Cards that already shared one before this
        # migration keep it but are marked (``pan_clash`` names the older card): the index
        # leaves them out, and ``registry show`` / ``list --pan-clash`` show them to resolve
        "ALTER TABLE reg_cards ADD COLUMN pan_clash TEXT",
        "UPDATE reg_cards SET pan_clash = (SELECT MIN(o.card_no) FROM reg_cards o "
        "WHERE o.pan = reg_cards.pan AND o.active = 1 AND o.card_no < reg_cards.card_no) "
        "WHERE active = 1 AND pan IS NOT NULL AND EXISTS (SELECT 1 FROM reg_cards o "
        "WHERE o.pan = reg_cards.pan AND o.active = 1 AND o.card_no < reg_cards.card_no)",
        "CREATE UNIQUE INDEX reg_cards_one_active_pan ON reg_cards (pan) "
        "WHERE active = 1 AND pan IS NOT NULL AND pan_clash IS NULL",
        "CREATE INDEX reg_cards_chip ON reg_cards (chip_serial)",
        # the card a new application replaces (a lost card re-issued: 补卡)
        "ALTER TABLE reg_applications ADD COLUMN replaces TEXT",
        # chips taken out of use: a personalized chip with the debit application whose card
        # was re-made as a temporary card must be destroyed
        f"CREATE TABLE reg_old_chips (id {pk}, card_no TEXT NOT NULL, chip_serial TEXT NOT NULL, "
        "atr TEXT, card_id_code TEXT, profile TEXT, reason TEXT NOT NULL, "
        "at DOUBLE PRECISION NOT NULL)",
        # requests to the bank: block / unblock a card's account (lost, restored, cancelled)
        f"CREATE TABLE reg_bank_requests (id {pk}, card_no TEXT NOT NULL, pan TEXT NOT NULL, "
        "bank_code TEXT, kind TEXT NOT NULL, reason TEXT NOT NULL, "
        "requested_at DOUBLE PRECISION NOT NULL, sent_file TEXT, sent_at DOUBLE PRECISION)",
        "CREATE INDEX reg_bank_requests_card ON reg_bank_requests (card_no, id)",
    ]


def _centre(db: Database) -> list[str]:
    columns = (
        "service_point",
        "unit",
        "phone",
        "photo_source",
        "photo_receipt",
        "staff_confirmed",
        "applicant_confirmed",
    )
    return [
        *(f"ALTER TABLE reg_applications ADD COLUMN {c} TEXT" for c in columns),
        "CREATE INDEX reg_applications_service_point ON reg_applications (service_point)",
        "CREATE INDEX reg_applications_unit ON reg_applications (unit)",
        # the centre's lists: service points, insured units, cooperative banks
        "CREATE TABLE reg_parties (kind TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL, "
        "region TEXT, created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, code))",
    ]


def _collection(db: Database) -> list[str]:
    pk = db.autoincrement
    return [
        # every notification sent, per channel (SMS gateway file, letter, gateway, unit letter)
        f"CREATE TABLE reg_notifications (id {pk}, application_id BIGINT NOT NULL, "
        "card_no TEXT NOT NULL, channel TEXT NOT NULL, recipient TEXT NOT NULL, "
        "status TEXT NOT NULL, detail TEXT, at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX reg_notifications_app ON reg_notifications (application_id, id)",
        # boxes of cards travelling to a service point, and the point's receipt
        "CREATE TABLE reg_boxes (box_no TEXT PRIMARY KEY, service_point TEXT NOT NULL, "
        "cards INTEGER NOT NULL, packed_at DOUBLE PRECISION NOT NULL, received_date TEXT, "
        "received_by TEXT)",
        "CREATE TABLE reg_box_cards (card_no TEXT PRIMARY KEY, box_no TEXT NOT NULL)",
        "CREATE INDEX reg_box_cards_box ON reg_box_cards (box_no)",
        # who collected a card: the holder or an agent (with the agent's identity number)
        "ALTER TABLE reg_cards ADD COLUMN collected_by TEXT",
        "ALTER TABLE reg_cards ADD COLUMN agent_ssn TEXT",
        "ALTER TABLE reg_cards ADD COLUMN collected_at TEXT",
    ]


#: (version, name, statements for this database). Append only: never edit an applied one.
MIGRATIONS: Final[tuple[tuple[int, str, Callable[[Database], list[str]]], ...]] = (
    (1, "line journal", journal_schema),
    (2, "registry: applications, cards, regions, transitions, batches", _registry),
    (3, "registry: the lines of each exported record (prep rejects flow back)", _batch_records),
    (
        4,
        "registry: one active card per PAN, replaced cards, old chips, bank requests",
        _cards_and_bank,
    ),
    (
        5,
        "registry: service points, insured units, banks; where and how an application was taken",
        _centre,
    ),
    (6, "registry: notifications per channel, boxes to service points, who collected", _collection),
)
LATEST: Final = MIGRATIONS[-1][0]


def _ensure_table(db: Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
    )


def has_table(db: Database, name: str) -> bool:
    """Whether ``name`` exists (on PostgreSQL: in the connection's search path)."""
    if db.dialect == "postgres":
        return db.execute("SELECT to_regclass(?)", (name,))[0][0] is not None
    return bool(
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    )


def current_version(db: Database) -> int:
    """The highest applied migration (0 for a new database)."""
    if not has_table(db, "schema_migrations"):
        return 0
    rows = db.execute("SELECT MAX(version) FROM schema_migrations")
    return int(rows[0][0] or 0)


def upgrade(db: Database) -> list[tuple[int, str]]:
    """Apply the missing migrations in order; returns those applied."""
    applied: list[tuple[int, str]] = []
    for version, name, statements in MIGRATIONS:
        with db.transaction():
            if db.dialect == "postgres":
                db.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
            _ensure_table(db)
            done = db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,))
            if done:
                continue
            for stmt in statements(db):
                db.execute(stmt)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
        applied.append((version, name))
    return applied


def require_current(db: Database) -> None:
    """Refuse to work on a database whose schema is behind this version of cardperso."""
    have = current_version(db)
    if have < LATEST:
        raise UsageError(
            f"the database schema is at version {have}, this cardperso needs {LATEST}: "
            f"run `cardperso db upgrade --db {_safe(db.url)}`"
        )
    if have > LATEST:
        raise UsageError(
            f"the database schema is at version {have}, newer than this cardperso knows "
            f"({LATEST}): upgrade cardperso"
        )


def _safe(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)
