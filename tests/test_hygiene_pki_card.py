"""Secrets hygiene of the card's PKI application (issue 17): the SM2 private keys the cards
generate and receive, the CA's key and the PKI PINs stay out of logs, APDU traces, messages
and world-readable files.

A line (pcscd + vpcd, a GP card and a native chip) makes two PKI cards with the root logger at
DEBUG and the stations' APDU trace on; ``cardperso -vv pki verify`` then reads each card (its
trace at DEBUG too) and ``pki crl`` writes a list. The scan looks for every private key in the
card images (the signing and the encryption key of each card), the CA keys and the
administrator PINs' master of the store, each user and administrator PIN's SM3 hash (what VERIFY's proof is made from) and the PIN digits in the messages, in every
form (raw, hex either case, decimal); it is shown to find a planted key first."""

from __future__ import annotations

import csv
import json
import logging
import stat
import subprocess
import sys
from pathlib import Path

from cardperso.card.native import NativeCard
from cardperso.card.native_fs import FORMAT as NATIVE_FORMAT
from cardperso.card.vcard import VirtualCard
from cardperso.chip.pki import admin_pin
from cardperso.crypto.sm2 import sm3
from cardperso.devices.pcsc import log_trace
from cardperso.pki.card_app import bcd_pin
from pki_fixtures import make_lab, run_mixed_line


def forms(value: bytes) -> list[bytes]:
    return [value, value.hex().encode(), value.hex().upper().encode(),
            str(int.from_bytes(value, "big")).encode()]  # fmt: skip


def hits(blob: bytes, secrets: dict[str, bytes]) -> list[str]:
    return sorted({name for name, value in secrets.items() for f in forms(value) if f in blob})


def test_the_scan_finds_a_planted_key() -> None:
    key = bytes(range(32))
    assert hits(b"log: " + key.hex().upper().encode(), {"k": key}) == ["k"]
    assert hits(str(int.from_bytes(key, "big")).encode(), {"k": key}) == ["k"]


def test_pki_keys_and_pins_stay_out_of_logs_traces_messages_and_readable_files(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path, caplog, monkeypatch
) -> None:
    monkeypatch.setenv("CARDPERSO_PROFILES", str(tmp_path))
    caplog.set_level(logging.DEBUG)
    lab = make_lab(tmp_path, records=2, seed=43, batch_id="PKIH")
    summary = run_mixed_line(lab, pcsc_lab.free_slot(), tmp_path, tmp_path / "j.db",
                             ("native", "gp"), trace=log_trace())  # fmt: skip
    assert summary.done == 2, summary
    assert "<" in caplog.text and "bytes redacted>" in caplog.text, "the trace was on"

    secrets: dict[str, bytes] = {}
    doc = json.loads(lab.keys.read_text())
    for name in ("pki-root", "pki-issuing-ca", "pki-admin-pin"):
        secrets[name] = bytes.fromhex(doc["keys"][name]["value"])
    outputs: list[bytes] = [caplog.text.encode()]
    with (tmp_path / "results.csv").open(newline="") as fh:
        card_of = {r["chip_serial"]: r["card_no"] for r in csv.DictReader(fh)}
    slot = pcsc_lab.free_slot()
    for n, serial in enumerate(sorted(card_of)):
        image = tmp_path / "line" / "output" / f"{serial}.json"
        native = json.loads(image.read_text())["format"] == NATIVE_FORMAT
        card = NativeCard.load(image) if native else VirtualCard.load(image)
        for fid in ("0013", "0015"):
            secrets[f"card {n} key {fid}"] = card.state.pki.files[fid]
        pin = lab.pins[card_of[image.stem]]
        secrets[f"card {n} PIN hash"] = sm3(bcd_pin(pin))
        admin = admin_pin(lab.store(), "pki-admin-pin", card_of[image.stem])
        secrets[f"card {n} admin PIN hash"] = sm3(admin)
        pin_file = tmp_path / f"pin{n}"
        pin_file.write_text(pin)
        pin_file.chmod(0o600)
        slot.insert(card)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "cardperso", "-vv", "pki", "verify", "--reader", slot.name,
                 "--chain", str(lab.chain), "--pin-file", str(pin_file)],
                capture_output=True, timeout=120,
            )  # fmt: skip
        finally:
            slot.remove()
        assert done.returncode == 0, done.stderr
        assert b"bytes redacted>" in done.stderr, "the -vv trace was on"
        assert pin.encode() not in done.stdout + done.stderr
        outputs += [done.stdout, done.stderr]
    crl = subprocess.run(
        [sys.executable, "-m", "cardperso", "-vv", "pki", "crl", "--db", str(tmp_path / "j.db"),
         "--keys", str(lab.keys), "--issuer-cert", str(lab.issuing_ca), "--out",
         str(tmp_path / "crl.pem")],
        capture_output=True, timeout=120,
    )  # fmt: skip
    outputs += [crl.stdout, crl.stderr]  # no registry in this database: refused in one line
    assert crl.returncode == 2 and b"no registry" in crl.stderr and b"Traceback" not in crl.stderr

    assert len(secrets) == 3 + 4 * 2
    for blob in outputs:
        assert hits(blob, secrets) == []
    readable = [p for p in tmp_path.rglob("*") if p.is_file()
                and p.stat().st_mode & (stat.S_IROTH | stat.S_IRGRP)]  # fmt: skip
    assert readable, "the certificates and the chain are public files"
    for path in readable:
        assert hits(path.read_bytes(), secrets) == [], path
    for serial in card_of:
        image = tmp_path / "line" / "output" / f"{serial}.json"
        assert stat.S_IMODE(image.stat().st_mode) == 0o600, "a chip image holds keys: 0600"
