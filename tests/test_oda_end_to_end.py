"""Issue 13's Done-when, end to end over pcscd + vpcd: cards of the reference product
(profiles/ssc3-pboc.yaml, with its ``pboc.oda`` section) made by the factory line (``keys pool
generate`` -> ``prep`` -> ``run`` on a simulated line) and by the two-stage flow (factory line,
then the bank's ``personalize`` with the bank's issuer key and ICC key pool) pass the terminal
kernel of ``cardperso bank verify --capk FILE``, FILE from ``cardperso keys export-capk``: every
step ok (AIP claims, CA key, issuer and ICC certificates, SDA, DDA, CDA, the ARQC under PBOC's
session key, the 9F10 layout, card risk management answered by GET DATA).

Outside check: the certificates read from such a card over PC/SC are opened with OpenSSL's
raw public operation (``openssl pkeyutl -pubin``, rsa_padding_mode:none; tests/openssl_rsa.py)
with the exported CA public key, and their fields, hash input and hash are checked against EMV
4.3 Book 2 table 6 (issuer public-key certificate, recovered data) and table 14 (ICC public-key
certificate), the static data per EMV 4.3 Book 3 section 10.3 (records the AFL marks, SFI 1-10
without their tag 70 and length, then the AIP that 9F4A lists). The TLV reading here is this
file's own, not cardperso's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cardperso.card.vcard import VirtualCard
from cardperso.cli.main import _register, cli
from cardperso.devices.pcsc import PcscTransport
from cardperso.line.linefile import LineOptions
from cardperso.prep.synth import make_batch
from cardperso.sim import bank_demo as demo
from cardperso.sim.line import SimLine
from fixtures_pcsc import LabSlot
from openssl_rsa import public_pem, recover_with

pytestmark = pytest.mark.pcsc

REPO = Path(__file__).resolve().parents[1]
SAMPLE_KEYS = REPO / "keys-sample" / "keys.json"

#: The kernel's steps that must all say ok for a card of the reference product.
STEPS = (
    "select", "records", "aip", "ca public key", "issuer certificate", "static data",
    "icc certificate",
    "sda", "dda", "cda", "9f10", "arqc", "issuer authentication",
    "second generate ac", "crm get data",
)  # fmt: skip


def invoke(*args: str) -> Result:
    _register()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def kernel_steps(output: str) -> dict[str, str]:
    """``bank verify``'s step lines: name -> ``ok`` / ``FAILED``."""
    steps: dict[str, str] = {}
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ok", "FAILED") and ":" in rest:
            steps[rest.split(":", 1)[0]] = word
    return steps


def verify_on_reader(slot: LabSlot, image: Path, keys: Path, capk: Path) -> str:
    slot.insert(VirtualCard.load(image))
    try:
        out = invoke("bank", "verify", "--reader", slot.name, "--keys", str(keys),
                     "--capk", str(capk))  # fmt: skip
    finally:
        slot.remove()
    steps = kernel_steps(out.output)
    missing = [s for s in STEPS if steps.get(s) != "ok"]
    assert not missing and out.exit_code == 0, (missing, out.output)
    assert all(v == "ok" for v in steps.values()), out.output
    return out.output


# -- the outside check ------------------------------------------------------------------------


def tlvs(data: bytes) -> dict[int, bytes]:
    """BER-TLV (EMV Book 3 annex B) of one level, tag -> value."""
    out, i = {}, 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):
            i += 1
            continue
        start = i
        i += 1
        if data[start] & 0x1F == 0x1F:
            while data[i] & 0x80:
                i += 1
            i += 1
        tag = int.from_bytes(data[start:i], "big")
        n = data[i]
        i += 1
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[i : i + k], "big")
            i += k
        out[tag] = data[i : i + n]
        i += n
    return out


def send(t: PcscTransport, apdu: str | bytes) -> bytes:
    raw = t.transmit(bytes.fromhex(apdu) if isinstance(apdu, str) else apdu)
    assert raw[-2:] == b"\x90\x00", raw.hex()
    return raw[:-2]


def outside_check(slot: LabSlot, image: Path, capk_file: Path, tmp: Path) -> None:
    """Open the card's certificates with OpenSSL from the exported CAPK (module docstring)."""
    capk = {(c["rid"], c["index"]): c for c in json.loads(capk_file.read_text())}
    slot.insert(VirtualCard.load(image))
    try:
        with PcscTransport(slot.name) as t:
            send(t, "00A4040008A000000333010101")
            # GPO with the contact PDOL (9F7A01 9F0206 5F2A02 DF6901 of DGI 9102): 10 bytes
            gpo = tlvs(send(t, "80A800000C830A" + "00" * 10 + "00"))
            gpo = tlvs(gpo[0x77]) if 0x77 in gpo else gpo
            aip, afl = gpo[0x82], gpo[0x94]
            records: list[tuple[int, bytes]] = []
            for e in range(0, len(afl), 4):
                sfi, first, last, oda = afl[e] >> 3, afl[e + 1], afl[e + 2], afl[e + 3]
                for rec in range(first, last + 1):
                    raw = send(t, bytes([0, 0xB2, rec, (sfi << 3) | 4, 0]))
                    records.append((sfi, raw))
                    if rec - first < oda:  # Book 3 10.3: SFI 1-10, without tag 70 and length
                        assert raw[0] == 0x70 and sfi <= 10
                        static_part = tlvs(raw)[0x70]
                        records.append((-1, static_part))
    finally:
        slot.remove()
    tags: dict[int, bytes] = {}
    for sfi, raw in records:
        if sfi >= 0:
            tags.update(tlvs(tlvs(raw)[0x70]))
    static = b"".join(raw for sfi, raw in records if sfi < 0)
    assert tags[0x9F4A] == b"\x82" and aip == bytes.fromhex("7D00")
    static += aip
    ca = capk[("A000000333", f"{tags[0x8F][0]:02X}")]
    ca_n = bytes.fromhex(ca["modulus"])
    # issuer certificate (Book 2 table 6): 6A 02 | id(4) | MMYY | serial(3) | 01 01 | N_I len |
    # e len | key (N_CA - 36) | SHA-1(02 .. key ‖ 92 ‖ 9F32) | BC
    block = recover_with(public_pem(ca_n, int(ca["exponent"], 16), tmp), tags[0x90])
    assert len(block) == len(ca_n) and block[:2] == b"\x6a\x02" and block[-1] == 0xBC
    assert block[2:6] == bytes.fromhex("622848FF")  # profiles/ssc3-pboc.yaml issuer_id
    assert block[6:8] == bytes.fromhex("1249") and block[11:13] == b"\x01\x01"
    n_i, e_len = block[13], block[14]
    room = len(ca_n) - 36
    rem = tags.get(0x92, b"")
    assert len(rem) == max(0, n_i - room) and e_len == len(tags[0x9F32])
    issuer_n = (block[15 : 15 + room] + rem)[:n_i]
    hashed = block[1:-21] + rem + tags[0x9F32]
    assert block[-21:-1] == hashlib.sha1(hashed).digest()
    # ICC certificate (Book 2 table 14): 6A 04 | PAN(10) | MMYY | serial(3) | 01 01 | N_IC len |
    # e len | key (N_I - 42) | SHA-1(04 .. key ‖ 9F48 ‖ 9F47 ‖ static data) | BC
    issuer_e = int.from_bytes(tags[0x9F32], "big")
    iblock = recover_with(public_pem(issuer_n, issuer_e, tmp), tags[0x9F46])
    assert len(iblock) == n_i and iblock[:2] == b"\x6a\x04" and iblock[-1] == 0xBC
    pan = tags[0x5A].hex().upper().rstrip("F")
    assert iblock[2:12].hex().upper().rstrip("F") == pan and pan.startswith("622848")
    expiry = tags[0x5F24].hex()  # YYMMDD
    assert iblock[12:14] == bytes.fromhex(expiry[2:4] + expiry[:2])
    assert iblock[17:19] == b"\x01\x01" and iblock[19] * 8 == 1024  # pboc.oda.icc_bits
    icc_rem = tags.get(0x9F48, b"")
    hashed = iblock[1:-21] + icc_rem + tags[0x9F47] + static
    assert iblock[-21:-1] == hashlib.sha1(hashed).digest()


# -- the two flows ----------------------------------------------------------------------------


def test_line_cards_pass_the_kernel_and_openssl(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keys = tmp_path / "keys.json"
    shutil.copy(SAMPLE_KEYS, keys)
    out = invoke("keys", "pool", "generate", str(keys), "--bits", "1024", "--count", "4")
    assert out.exit_code == 0, out.output
    make_batch(tmp_path / "batch.csv", 3, photos=2, seed=13)
    perso = tmp_path / "batch.cppf"
    out = invoke("prep", str(tmp_path / "batch.csv"), "-p", "ssc3-pboc", "-k", str(keys),
                 "-o", str(perso), "-r", str(tmp_path / "rejects.csv"))  # fmt: skip
    assert out.exit_code == 0, out.output
    status = invoke("keys", "pool", "status", str(keys), "--bits", "1024")
    assert "used 3  free 1" in status.output, status.output  # one key per input line
    readers = [s for s in pcsc_lab.slots if s.card is None][:2]
    line = SimLine(2, tmp_path / "line", readers=readers,
                   options=LineOptions(card_timeout=5, pause_retry=0.2))  # fmt: skip
    with line:
        out = invoke("run", str(perso), "--line", str(tmp_path / "line" / "line.yaml"),
                     "--keys", str(keys), "--db", str(tmp_path / "j.db"))  # fmt: skip
    assert out.exit_code == 0, out.output
    images = sorted(p for p in (tmp_path / "line" / "output").glob("*.json")
                    if not p.name.endswith(".tracks.json"))  # fmt: skip
    assert len(images) == 3
    capk = tmp_path / "capk.json"
    assert invoke("keys", "export-capk", str(keys), "--out", str(capk)).exit_code == 0
    slot = pcsc_lab.free_slot()
    with (tmp_path / "batch.csv").open(encoding="utf-8") as fh:
        pans = [r["pan"] for r in csv.DictReader(fh)]
    for image in images:
        output = verify_on_reader(slot, image, keys, capk)
        assert not any(p in output for p in pans)  # masked
    outside_check(slot, images[0], capk, tmp_path)
    # contactless (qPBOC, 9207 with the same AIP and ODA records): an e-cash load on contact,
    # then an offline purchase whose fDDA 01 the kernel checks from the same CAPK file
    slot.insert(VirtualCard.load(images[0]))
    try:
        out = invoke("bank", "ec-load", "--reader", slot.name, "--amount", "2000", "--keys",
                     str(keys))  # fmt: skip
        assert out.exit_code == 0, out.output
    finally:
        slot.remove()
    card = VirtualCard.load(images[0])
    card.contactless = True
    slot.insert(card)
    try:
        out = invoke("bank", "qpboc-purchase", "--reader", slot.name, "--amount", "500",
                     "--capk", str(capk))  # fmt: skip
    finally:
        slot.remove()
    assert out.exit_code == 0 and "approved offline" in out.output, out.output
    steps = kernel_steps(out.output)
    assert all(steps.get(s) == "ok" for s in ("issuer certificate", "icc certificate", "fdda"))
    assert "fDDA 01" in out.output, out.output


def test_two_stage_cards_pass_the_kernel_and_openssl(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cards = demo.factory_cards(tmp_path, 2)
    summary = demo.bank_stage(tmp_path, cards)  # the bank's issuer key, the bank's ICC pool
    assert summary.opened == 2, summary
    capk = tmp_path / "bank-capk.json"
    out = invoke("keys", "export-capk", str(demo.BANK_KEYS), "--out", str(capk))
    assert out.exit_code == 0, out.output
    slot = pcsc_lab.free_slot()
    for c in cards:
        verify_on_reader(slot, c.image, demo.BANK_KEYS, capk)
    outside_check(slot, cards[1].image, capk, tmp_path)
