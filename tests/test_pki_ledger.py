"""The certificate ledger and which certificates the revocation list names (issue 17), on SQLite
and PostgreSQL: a cancelled card (``keyCompromise`` when lost, else ``cessationOfOperation``),
a suspended card (``certificateHold``, gone once restored), a chip that went to the reject box
(``superseded``), nothing for good or expired certificates; revocation dates are the registry's;
CRL numbers only grow. The list ``pki crl`` signs is then read back and checked."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from cardperso.crypto.sm2 import Sm2PrivateKey
from cardperso.layouts import x509
from cardperso.pki import ledger
from cardperso.pki.ca import Issuer, ca_certificate, revocation_list, verify_crl
from cardperso.pki.issue import IssuedCertificate
from cardperso.registry import schema
from cardperso.registry.cards import cancel
from cardperso.registry.lost import restore, suspend
from cardperso.storage.db import Database
from test_registry import db_url, pg_url  # noqa: F401 - fixtures (SQLite and PostgreSQL)

NOW = time.time()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:  # noqa: F811
    with Database(db_url) as database:
        schema.upgrade(database)
        ledger.ensure_tables(database)
        ledger.ensure_tables(database)  # twice: idempotent
        yield database


def card(db: Database, n: int, state: str, chip: str) -> str:
    card_no = f"01000{n:04d}"
    db.execute(
        "INSERT INTO reg_applications (id, ssn, name, gender, nation, birth_date, birth_place, "
        "region, application_type, accepted_date, state, state_at, created_at, card_no) VALUES "
        "(?, ?, 'x', '1', '01', '19900101', '110101', '110101', 'batch', '20250101', ?, ?, ?, ?)",
        (n, f"1101011990010{n:04d}X", state, NOW, NOW, card_no),
    )
    db.execute(
        "INSERT INTO reg_cards (card_no, application_id, ssn, region, active, kind, registered_at, "
        "chip_serial) VALUES (?, ?, ?, '110101', 1, 'batch', ?, ?)",
        (card_no, n, f"1101011990010{n:04d}X", NOW, chip),
    )
    return card_no


def issue(db: Database, serial: int, card_no: str, chip: str, *, days: int = 3650) -> None:
    ledger.record(db, IssuedCertificate(
        serial, "sign", card_no, bytes.fromhex(chip),
        dt.datetime.fromtimestamp(NOW, dt.UTC) + dt.timedelta(days=days), b"",
    ))  # fmt: skip


def test_which_certificates_are_revoked_and_why(db: Database) -> None:
    good = card(db, 1, "issued", "AAAA0001")
    withdrawn = card(db, 2, "issued", "AAAA0002")
    lost = card(db, 3, "issued", "AAAA0003")
    found = card(db, 4, "issued", "AAAA0004")
    remade = card(db, 5, "personalized", "AAAA0005")
    for n, (card_no, chip) in enumerate(
        [(good, "AAAA0001"), (withdrawn, "AAAA0002"), (lost, "AAAA0003"), (found, "AAAA0004"),
         (remade, "AAAA0005"), (remade, "BBBB0005")], start=0x10,
    ):  # fmt: skip
        issue(db, n, card_no, chip)
    issue(db, 0x99, withdrawn, "AAAA0002", days=-1)  # expired: never listed
    cancel(db, withdrawn, reason="withdrawn by the holder", actor="t")
    suspend(db, lost, reason="reported lost", actor="t")
    suspend(db, found, reason="reported lost", actor="t")
    restore(db, found, reason="found again", actor="t")
    db.execute("UPDATE reg_cards SET cancel_reason = 'lost: re-issued' WHERE card_no = ?", (good,))
    entries = {serial: reason for serial, _, reason in ledger.revoked_entries(db)}
    assert entries == {
        0x11: "cessation_of_operation",
        0x12: "certificate_hold",
        0x15: "superseded",  # the record was made again on chip AAAA0005: BBBB0005 was rejected
    }, "an active card with a cancel reason is not cancelled; a restored card is not held"
    db.execute("UPDATE reg_cards SET active = NULL WHERE card_no = ?", (good,))
    entries = {serial: reason for serial, _, reason in ledger.revoked_entries(db)}
    assert entries[0x10] == "key_compromise"
    when = {serial: at for serial, at, _ in ledger.revoked_entries(db)}
    assert abs(when[0x11].timestamp() - time.time()) < 120, "the cancel transition's time"
    assert ledger.next_crl_number(db, 4) == 1 and ledger.next_crl_number(db, 4) == 2


def test_the_revocation_list_names_them_and_verifies(db: Database) -> None:
    root = Sm2PrivateKey.generate()
    start = dt.datetime.fromtimestamp(int(NOW), dt.UTC)
    name = x509.Name((("C", "CN"), ("CN", "Test Issuing CA")))
    issuer = Issuer(root, ca_certificate(root, name, serial=1, not_before=start, days=30))
    cancelled = card(db, 7, "issued", "CCCC0007")
    issue(db, 0x7777, cancelled, "CCCC0007")
    cancel(db, cancelled, reason="lost", actor="t")
    entries = ledger.revoked_entries(db)
    crl = revocation_list(issuer, entries, number=ledger.next_crl_number(db, len(entries)),
                          this_update=start, next_update=start + dt.timedelta(days=7))  # fmt: skip
    model = verify_crl(crl, root.public_key.to_bytes())
    assert [(e.serial, e.reason) for e in model.revoked] == [(0x7777, "key_compromise")]
    assert model.number == 1
