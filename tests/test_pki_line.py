"""Issue 17, done when: a batch on the simulated line (pcscd + vpcd, GP cards and native chips in
one hopper) produces cards whose PKI application holds certificates that chain to the test
root; each card, put in a reader, signs a challenge after PIN verification and ``cardperso pki
verify`` has ``openssl`` check the signature and the chain; a cancelled card's certificates and
a lost (suspended) card's appear on the revocation list ``cardperso pki crl`` writes, which
``openssl crl -verify`` accepts and ``openssl verify -crl_check`` applies.

The test PKI signs with the empty SM2 user ID (``ca_user_id: empty``): the one setting under
which OpenSSL 3.0 checks a whole chain and a CRL (docs/pki.md); the cards sign with the
default ID."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from cardperso.card.native import NativeCard
from cardperso.card.native_fs import FORMAT as NATIVE_FORMAT
from cardperso.card.vcard import VirtualCard
from cardperso.pki.pem import to_pem
from cardperso.registry.cards import cancel
from cardperso.registry.lost import suspend
from cardperso.registry.schema import upgrade
from cardperso.storage.db import Database
from pki_fixtures import make_lab, run_mixed_line

RECORDS = 4


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardperso", *args], capture_output=True, text=True, timeout=120
    )


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def register(db: Database, rows: list[dict[str, str]], state: str) -> None:
    """The registry's rows for the cards the line made (as ``registry import-results`` leaves
    them: the application, the card with its chip)."""
    now = time.time()
    for n, r in enumerate(rows, start=1):
        db.execute(
            "INSERT INTO reg_applications (id, ssn, name, gender, nation, birth_date, birth_place, "
            "region, application_type, accepted_date, state, state_at, created_at, card_no) "
            "VALUES (?, ?, 'x', '1', '01', '19900101', '110101', '110101', 'batch', '20250101', "
            "?, ?, ?, ?)",
            (n, f"11010119900101{n:03d}X", state, now, now, r["card_no"]),
        )
        db.execute(
            "INSERT INTO reg_cards (card_no, application_id, ssn, region, active, kind, "
            "registered_at, chip_serial) VALUES (?, ?, ?, '110101', 1, 'batch', ?, ?)",
            (r["card_no"], n, f"11010119900101{n:03d}X", now, r["chip_serial"]),
        )


def test_a_batch_on_the_line_makes_pki_cards_that_verify_and_revoke(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CARDPERSO_PROFILES", str(tmp_path))  # the product ssc3-pki lives there
    lab = make_lab(tmp_path, records=RECORDS, seed=41, ca_user_id="empty", batch_id="PKIL")
    db_path = tmp_path / "journal.db"
    summary = run_mixed_line(lab, pcsc_lab.free_slot(), tmp_path, db_path, ("gp", "native"))
    assert summary.done == RECORDS and summary.failed == 0, summary
    with (tmp_path / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    db = Database(db_path)
    ledger = db.execute("SELECT card_no, usage, chip_serial FROM pki_certificates")
    assert len(ledger) == 2 * RECORDS, "a signing and an encryption certificate per card"
    assert {(r[0], r[2]) for r in ledger} == {(r["card_no"], r["chip_serial"]) for r in rows}

    # every card, in a reader: cardperso pki verify (cardperso and openssl check each step)
    kinds = []
    slot = pcsc_lab.free_slot()
    for r in rows:
        image = tmp_path / "line" / "output" / f"{r['chip_serial']}.json"
        native = json.loads(image.read_text())["format"] == NATIVE_FORMAT
        kinds.append("native" if native else "gp")
        card = NativeCard.load(image) if native else VirtualCard.load(image)
        pin_file = tmp_path / f"pin-{r['card_no']}"
        pin_file.write_text(lab.pins[r["card_no"]])
        slot.insert(card)
        try:
            done = cli("pki", "verify", "--reader", slot.name, "--chain", str(lab.chain),
                       "--pin-file", str(pin_file))  # fmt: skip
        finally:
            slot.remove()
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert out.count("\nOK") + out.startswith("OK") == 8 and "FAIL" not in out, out
        assert (
            "openssl pkeyutl -verify (SM2, SM3, default ID): Signature Verified Successfully" in out
        )
        assert "openssl verify link 1: OK" in out and "openssl verify link 0: OK" in out
        assert lab.pins[r["card_no"]] not in out + done.stderr, "the PIN is never shown"
    assert set(kinds) == {"gp", "native"}, kinds

    # wrong PINs until the card blocks it: the card's refusal, exit 3, one line; the
    # administrator PIN (derived from the store's master) unblocks it
    gp_row = rows[kinds.index("gp")]
    gp_image = tmp_path / "line" / "output" / f"{gp_row['chip_serial']}.json"
    bad = tmp_path / "bad-pin"
    bad.write_text("000000")
    good_pin = tmp_path / f"pin-{gp_row['card_no']}"

    def on_gp_card(*args: str) -> subprocess.CompletedProcess[str]:
        slot.insert(VirtualCard.load(gp_image))  # the image holds what the card committed
        try:
            return cli(*args)
        finally:
            slot.remove()

    verify_args = ("pki", "verify", "--reader", slot.name, "--chain", str(lab.chain), "--pin-file")
    answers = [on_gp_card(*verify_args, str(bad)) for _ in range(3)]
    answers.append(on_gp_card(*verify_args, str(good_pin)))
    assert [a.returncode for a in answers] == [3, 3, 3, 3]
    assert [a.stderr.split("returned ")[1][:4] for a in answers] == ["63C2", "63C1", "63C0", "6983"]
    assert all("VERIFY PIN" in a.stderr and "Traceback" not in a.stderr for a in answers)
    unblocked = on_gp_card("pki", "unblock", "--reader", slot.name, "--keys", str(lab.keys),
                           "--card-no", gp_row["card_no"])  # fmt: skip
    assert unblocked.returncode == 0 and "unblocked" in unblocked.stdout, unblocked.stderr
    assert on_gp_card(*verify_args, str(good_pin)).returncode == 0

    # revocation: one card cancelled, one reported lost, the others good
    upgrade(db)
    register(db, rows[:3], "personalized")
    db.execute(
        "UPDATE reg_applications SET state = 'issued' WHERE card_no = ?", (rows[1]["card_no"],)
    )
    cancel(db, rows[0]["card_no"], reason="withdrawn by the holder", actor="test")
    suspend(db, rows[1]["card_no"], reason="reported lost", actor="test")
    db.close()
    crl = tmp_path / "crl.pem"
    made = cli("pki", "crl", "--db", str(db_path), "--keys", str(lab.keys), "--issuer-cert",
               str(lab.issuing_ca), "--ca-user-id", "empty", "--out", str(crl))  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "CRL 1: 4 revoked certificate(s)" in made.stdout
    text = openssl("crl", "-in", crl, "-noout", "-text").stdout
    listed = {
        line.split(":", 1)[1].strip() for line in text.splitlines() if "Serial Number:" in line
    }
    by_card: dict[str, set[str]] = {}
    for card_no, serial in Database(db_path).execute(
        "SELECT card_no, serial FROM pki_certificates"
    ):
        by_card.setdefault(card_no, set()).add(serial.rjust(len(serial) + len(serial) % 2, "0"))
    assert listed == by_card[rows[0]["card_no"]] | by_card[rows[1]["card_no"]], text
    assert text.count("Cessation Of Operation") == 2 and text.count("Certificate Hold") == 2
    checked = openssl("crl", "-in", crl, "-noout", "-verify", "-CAfile", lab.issuing_ca)
    assert "verify OK" in checked.stdout + checked.stderr, checked.stderr

    def verify_with_crl(card_no: str) -> str:
        image = (
            tmp_path
            / "line"
            / "output"
            / f"{next(r['chip_serial'] for r in rows if r['card_no'] == card_no)}.json"
        )
        native = json.loads(image.read_text())["format"] == NATIVE_FORMAT
        card = NativeCard.load(image) if native else VirtualCard.load(image)
        files = card.state.pki.files
        der = files["0018"]
        der = der[: 4 + int.from_bytes(der[2:4], "big")]
        cert = tmp_path / f"{card_no}.pem"
        cert.write_text(to_pem(der))
        done = openssl("verify", "-crl_check", "-CRLfile", crl, "-CAfile", lab.root,
                       "-untrusted", lab.issuing_ca, cert)  # fmt: skip
        return done.stdout + done.stderr

    assert "certificate revoked" in verify_with_crl(rows[0]["card_no"])
    assert "certificate revoked" in verify_with_crl(rows[1]["card_no"])
    assert ": OK" in verify_with_crl(rows[2]["card_no"])
    again = cli("pki", "crl", "--db", str(db_path), "--keys", str(lab.keys), "--issuer-cert",
                str(lab.issuing_ca), "--ca-user-id", "empty", "--out", str(crl))  # fmt: skip
    assert "CRL 2:" in again.stdout, "CRL numbers only grow"
