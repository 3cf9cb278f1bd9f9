"""Issue 17's long certificate requests on the simulated line (pcscd + vpcd, a GP card and a
native chip in one hopper): records whose holder has the longest name the validation allows
(50 bytes of GBK: 25 Chinese characters) make requests of 291 bytes, more than one short APDU
carries (and, on the GP card, than one command under secure messaging can), so the card's
SIGN arrives as an ISO/IEC 7816-4 command chain (CLA b5, 2005 edition 5.1.1.1), seen on the
wire in the APDU trace. Each card's request signature, as the line's trace carries it, is put
into the PKCS#10 request and checked by ``openssl req -verify`` (SM2, SM3, the default ID): an
outside implementation, not our SM2.

Pre-flight: a record whose request is longer than the PKI application takes (a profile's long
O and OU with the longest name) is refused before the first card is fed, with one line naming
the record and the reason (exit code 1: the data's fault), and no card is spent."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cardperso.card.native import NativeCard
from cardperso.card.native_fs import FORMAT as NATIVE_FORMAT
from cardperso.card.vcard import VirtualCard
from cardperso.crypto.sm2 import signature_to_der
from cardperso.devices.pcsc import ApduTrace
from cardperso.errors import DataError, SignatureMismatch
from cardperso.layouts import x509
from cardperso.pki.ca import CardholderProfile, Holder, cardholder_subject, verify_request
from cardperso.pki.card_app import SIGN_LIMIT
from cardperso.pki.pem import to_pem
from cardperso.storage.db import Database
from openssl_cli import OPENSSL
from pki_fixtures import make_lab, run_mixed_line

DISTID = "distid:1234567812345678"
#: 25 Chinese characters: 50 bytes of GBK, the most the validation allows (30 name + 20
#: extension), 75 bytes of UTF-8 in the certificate's CN.
LONGEST = ["欧阳" + "张" * 23, "司马" + "龙" * 23]


def longest_names(rows: list[dict[str, str]]) -> None:
    for row, name in zip(rows, LONGEST, strict=False):
        row["name"] = name


def test_the_longest_names_make_chained_requests_that_openssl_verifies(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CARDPERSO_PROFILES", str(tmp_path))
    lab = make_lab(tmp_path, records=2, seed=47, batch_id="PKIN", rows_hook=longest_names)
    traces: list[ApduTrace] = []
    summary = run_mixed_line(lab, pcsc_lab.free_slot(), tmp_path, tmp_path / "journal.db",
                             ("gp", "native"), trace=traces.append)  # fmt: skip
    assert summary.done == 2 and summary.failed == 0, summary
    with (tmp_path / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))

    # on the wire: SIGN in pieces, CLA b5 set on all but the last; GP's under secure messaging
    sign_commands = [t for t in traces if t.command[2:8] == "2A9E9A"]
    chained = [t.command[:2] for t in sign_commands if int(t.command[:2], 16) & 0x10]
    assert sorted(chained) == ["10", "14"], "one chained piece on each chip (SM on the GP card)"
    assert all(t.command[8:10] != "00" for t in sign_commands), "short Lc: short APDUs only"
    # the trace names no holder: SIGN's data (the request's subject) is redacted
    assert all("bytes redacted>" in t.command for t in sign_commands)
    wire = "".join(t.command + t.response for t in traces)
    assert not any(name.encode().hex().upper() in wire for name in LONGEST)
    signatures = [bytes.fromhex(t.response[:-4]) for t in sign_commands
                  if t.response.endswith("9000") and len(t.response) == 2 * 66]  # fmt: skip
    assert len(signatures) == 2

    db = Database(tmp_path / "journal.db")
    kinds = set()
    for r in rows:
        # the request the card signed: the record's subject, the key the CA certified
        kind, der = _signing_certificate(tmp_path, r["chip_serial"])
        kinds.add(kind)
        cert = x509.decode_certificate(der)
        name = cert.subject.get("CN") or ""
        assert name in LONGEST, "the certificate names the longest holder"
        holder = Holder(name, _ssn(lab, r["card_no"]))
        tbs = x509.tbs_request(cardholder_subject(holder, CardholderProfile()), cert.public_key)
        assert len(tbs) == 291 > 255
        csr = _the_one_that_verifies(tbs, signatures)
        path = tmp_path / f"req-{r['card_no']}.pem"
        path.write_text(to_pem(csr, "CERTIFICATE REQUEST"))
        done = _openssl("req", "-in", path, "-verify", "-noout", "-vfyopt", DISTID)
        assert "self-signature verify OK" in done.stdout + done.stderr, done.stderr
        text = _openssl("req", "-in", path, "-noout", "-text", "-nameopt", "utf8").stdout
        assert f"CN={name}," in text and "SM2-with-SM3" in text, text
    assert kinds == {"gp", "native"}
    assert db.execute("SELECT COUNT(*) FROM pki_certificates")[0][0] == 4


def test_a_request_the_card_cannot_sign_is_refused_before_the_first_card(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CARDPERSO_PROFILES", str(tmp_path))
    # the profile's longest O and OU (64 characters each) with the longest name: 570 bytes
    long_subject = f"  organization: {'社' * 64}\n  organizational_unit: {'保' * 40}\n"

    def second_is_longest(rows: list[dict[str, str]]) -> None:
        rows[1]["name"] = LONGEST[0]

    lab = make_lab(tmp_path, records=3, seed=53, batch_id="PKIX", pki_extra=long_subject,
                   rows_hook=second_is_longest)  # fmt: skip
    db_path = tmp_path / "journal.db"
    with pytest.raises(DataError) as caught:
        run_mixed_line(lab, pcsc_lab.free_slot(), tmp_path, db_path, ("gp", "native"))
    message = str(caught.value)
    with (tmp_path / "batch.csv").open(newline="", encoding="utf-8") as fh:
        card_no = list(csv.DictReader(fh))[1]["card_no"]
    assert message == (  # the record: its input line (the batch's second row is line 3)
        f"record 3 (card {card_no}): its PKI certificate request is 570 bytes, the card's PKI "
        f"application signs at most {SIGN_LIMIT} (the subject: the holder's name and the "
        "profile's pki organization / organizational_unit)"
    )
    assert "\n" not in message and caught.value.exit_code == 1
    assert LONGEST[0] not in message, "no personal data in the message"
    assert Database(db_path).execute("SELECT COUNT(*) FROM pki_certificates")[0][0] == 0
    assert not (tmp_path / "results.csv").exists(), "no run was opened, no card was fed"
    assert not list((tmp_path / "line" / "output").glob("*.json")), "no card was made"


def _the_one_that_verifies(tbs: bytes, signatures: list[bytes]) -> bytes:
    for signature in signatures:
        csr = x509.signed(tbs, signature_to_der(signature))
        try:
            verify_request(csr)
        except SignatureMismatch:
            continue
        return csr
    raise AssertionError("no SIGN of the trace is this card's request")


def _signing_certificate(tmp: Path, chip_serial: str) -> tuple[str, bytes]:
    """(kind, the signing certificate's DER) of a card the line made."""
    image = tmp / "line" / "output" / f"{chip_serial}.json"
    native = json.loads(image.read_text())["format"] == NATIVE_FORMAT
    card = NativeCard.load(image) if native else VirtualCard.load(image)
    der = card.state.pki.files["0018"]
    return ("native" if native else "gp"), der[: 4 + int.from_bytes(der[2:4], "big")]


def _ssn(lab: Any, card_no: str) -> str:
    with (lab.perso.parent / "batch.csv").open(newline="", encoding="utf-8") as fh:
        return next(r["ssn"] for r in csv.DictReader(fh) if r["card_no"] == card_no)


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENSSL, *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )
