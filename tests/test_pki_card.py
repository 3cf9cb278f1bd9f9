"""The PKI application on the virtual GP card and the native chip (issue 17), personalized by the
chip driver with the test PKI, then used as a relying party would: certificates read, chain and
signature checked by cardperso and by the ``openssl`` command line (a second implementation,
OpenSSL 3.0: ``verify`` link by link and ``pkeyutl -verify`` with SM3 and the default user
ID), the PIN's try counter blocking, CHANGE PIN, and every personalization command refused
once personalization is over."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cardperso.card.native import NativeCard
from cardperso.card.vcard import VirtualCard
from cardperso.chip.drivers import load_drivers
from cardperso.chip.pki import admin_pin, pki_step, read_pki, unblock_pin
from cardperso.chip.plan import card_data, chip_plan
from cardperso.chip.transport import drive
from cardperso.cli.pki import check_readout
from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import ecb_encrypt
from cardperso.crypto.sm2 import Sm2PrivateKey
from cardperso.errors import CardError, UsageError
from cardperso.layouts import x509
from cardperso.pki.card_app import bcd_pin, change_pin_mac, pin_hash
from cardperso.prep.container import iter_records, read_header
from cardperso.profiles.loader import load_profile
from cardperso.storage.db import Database
from pki_fixtures import PkiLab, make_lab
from test_native_driver import blank_native

ADF = b"SS.CERT.ADF1"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> PkiLab:
    return make_lab(tmp_path_factory.mktemp("pki"), records=2)


def made(lab: PkiLab, kind: str, tmp: Path, index: int = 0):  # type: ignore[no-untyped-def]
    """A card of ``kind`` personalized by the driver with the PKI step; (card, result, db, pin)."""
    store = lab.store()
    profile = load_profile(lab.profile)
    with lab.perso.open("rb") as fh:
        header, _ = read_header(fh)
    bodies = [b for _, b in iter_records(lab.perso, store)]
    db = Database(tmp / "journal.db")
    drivers = load_drivers()
    assert drivers.use_pki(pki_step(profile, store, db)) == []
    path = tmp / f"{kind}.json"
    card = blank_native(path) if kind == "native" else VirtualCard.create_blank(path)
    card.strict = True
    atr = card.power_on()
    data = card_data(header, bodies[index], index)
    result = drive(
        drivers.choose(atr).personalize(data, chip_plan(profile, header), store, atr),
        card.transmit,
    )
    return card, result, db, lab.pins[data.card_no]


def apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    return CommandAPDU(cla, ins, p1, p2, data, le=le).to_bytes()


def sw(card: VirtualCard | NativeCard, command: bytes) -> str:
    return card.transmit(command)[-2:].hex().upper()


def select(card: VirtualCard | NativeCard) -> None:
    card.power_on()
    assert sw(card, apdu(0x00, 0xA4, 0x04, 0x00, ADF)) == "9000"


def verify(card: VirtualCard | NativeCard, pin: str) -> str:
    challenge = card.transmit(apdu(0x00, 0x84, 0x00, 0x00, le=16))[:-2]
    proof = ecb_encrypt("SM4", pin_hash(bcd_pin(pin))[:16], challenge)
    return sw(card, apdu(0x00, 0x20, 0x01, 0x81, proof))


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_cards_hold_certificates_that_chain_and_sign_after_the_pin(
    lab: PkiLab, kind: str, tmp_path: Path
) -> None:
    card, result, db, pin = made(lab, kind, tmp_path)
    assert [c.split()[1] for c in result.checks[1:]] == ["signing", "encryption"]
    rows = db.execute("SELECT usage, card_no, chip_serial FROM pki_certificates ORDER BY usage")
    assert [r[0] for r in rows] == ["encrypt", "sign"]
    assert {r[2] for r in rows} == {card.serial.hex().upper()}
    card.power_on()
    challenge = b"a relying party's challenge " + bytes(range(8))
    got = drive(read_pki(bcd_pin(pin), challenge), card.transmit)
    work = tmp_path / "work"
    work.mkdir()
    from cardperso.chip.pki import load_certificates

    assert check_readout(got, challenge, load_certificates(lab.chain), work)
    cert = x509.decode_certificate(got.signing_certificate)
    assert (cert.subject.get("serialNumber") or "").count("*") == 8, "identity number masked"
    # the encryption private key the envelope carried is the one the certificate names
    enc = x509.decode_certificate(got.encryption_certificate or b"")
    files = card.state.pki.files
    assert Sm2PrivateKey.from_bytes(files["0015"]).public_key.to_bytes() == enc.public_key
    assert Sm2PrivateKey.from_bytes(files["0013"]).public_key.to_bytes() == cert.public_key


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_the_pin_try_counter_blocks_and_signing_needs_the_pin(
    lab: PkiLab, kind: str, tmp_path: Path
) -> None:
    card, _, _, pin = made(lab, kind, tmp_path)
    select(card)
    sign = apdu(0x00, 0x2A, 0x9E, 0x9A, b"challenge", le=256)
    assert sw(card, sign) == "6982", "no signature before the PIN"
    wrong = "000000" if pin != "000000" else "111111"
    assert [verify(card, wrong) for _ in range(3)] == ["63C2", "63C1", "63C0"]
    assert verify(card, pin) == "6983", "blocked: the right PIN no longer helps"
    card.power_on()  # the counter is in non-volatile memory
    select(card)
    assert verify(card, pin) == "6983" and sw(card, sign) == "6982"


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_change_pin_as_the_kiosk_sends_it(lab: PkiLab, kind: str, tmp_path: Path) -> None:
    card, _, _, pin = made(lab, kind, tmp_path)
    select(card)

    def change(old: str, new: str) -> str:
        key = pin_hash(bcd_pin(old))[:16]
        new_bcd = bcd_pin(new)
        block = (bytes((len(new_bcd),)) + new_bcd + b"\x80").ljust(16, b"\x00")
        body = ecb_encrypt("SM4", key, block)
        challenge = card.transmit(apdu(0x00, 0x84, 0x00, 0x00, le=16))[:-2]
        mac = change_pin_mac(key, challenge, bytes.fromhex("845E018114") + body)
        return sw(card, apdu(0x84, 0x5E, 0x01, 0x81, body + mac))

    assert change("999999" if pin != "999999" else "888888", "2468") == "63C2"
    assert change(pin, "2468") == "9000"
    assert verify(card, pin) == "63C2" and verify(card, "2468") == "9000"
    got = card.transmit(apdu(0x00, 0x2A, 0x9E, 0x9A, b"signed after the new PIN", le=256))
    assert got[-2:] == b"\x90\x00" and len(got) == 66


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_personalization_commands_are_refused_afterwards(
    lab: PkiLab, kind: str, tmp_path: Path
) -> None:
    card, _, _, pin = made(lab, kind, tmp_path)
    select(card)
    generate = apdu(0x80, 0x40, 0x00, 0x00, bytes.fromhex("C0020012C2020013"))
    assert sw(card, generate) == "6982"
    assert sw(card, apdu(0x00, 0xA4, 0x00, 0x00, b"\x00\x18")) == "9000"
    assert sw(card, apdu(0x00, 0xD6, 0x00, 0x00, b"\x30\x00")) == "6982", "certificate fixed"
    assert sw(card, apdu(0x00, 0x2C, 0x02, 0x81, b"\x0f\x12\x34")) == "6982"
    assert sw(card, apdu(0x00, 0xA4, 0x00, 0x00, b"\x00\x13")) == "9000"
    assert sw(card, apdu(0x00, 0xB0, 0x00, 0x00, le=32)) == "6982", "a private key is never read"
    assert verify(card, pin) == "9000"
    assert sw(card, apdu(0x00, 0xB0, 0x00, 0x00, le=32)) == "6982", "not even after the PIN"


def test_the_pin_hash_is_sm3_as_openssl_computes_it(lab: PkiLab, tmp_path: Path) -> None:
    """``80 C4 01 03 05 C1 03 <PIN>`` (the kiosk's command, N8) answers SM3 of the PIN's bytes:
    checked against ``openssl dgst -sm3``."""
    card, _, _, pin = made(lab, "gp", tmp_path)
    select(card)
    pin_bytes = bcd_pin(pin)
    answer = card.transmit(apdu(0x80, 0xC4, 0x01, 0x03, b"\xc1\x03" + pin_bytes, le=256))
    assert answer[-2:] == b"\x90\x00"
    done = subprocess.run(
        ["openssl", "dgst", "-sm3", "-binary"], input=pin_bytes, capture_output=True, check=True
    )
    assert answer[:-2] == done.stdout


def test_a_tampered_key_envelope_is_refused(lab: PkiLab, tmp_path: Path) -> None:
    """The key envelope's SM2 cipher text carries its C3 hash: one flipped bit and the card
    answers 6A80 (its SM2 decryption refuses), nothing is imported."""
    from cardperso.card.applet import Sw, parse_command
    from cardperso.card.pki_core import PkiCore, PkiData
    from cardperso.pki.issue import key_envelope

    data = PkiData()
    core = PkiCore(data)
    answer = core.process(parse_command(bytes.fromhex("8040000008C0020012C2020013")), perso=True,
                          confidential=True)  # fmt: skip
    assert isinstance(answer, bytes)
    env = key_envelope(b"\x04" + answer[2:])
    blob = bytearray(env.wrapped_key)
    blob[70] ^= 0x01
    command = (
        bytes.fromhex("804E0001")
        + bytes((4 + 4 + len(blob),))
        + bytes.fromhex("C2020013C18200")
        + bytes((len(blob),))
        + bytes(blob)
    )
    with pytest.raises(Sw) as refused:
        core.process(parse_command(command), perso=True, confidential=True)
    assert refused.value.sw == 0x6A80 and "0015" not in data.files


def test_preflight_refuses_a_missing_or_foreign_ca_before_any_card(
    lab: PkiLab, tmp_path: Path
) -> None:
    profile = load_profile(lab.profile)
    store = lab.store()
    db = Database(tmp_path / "j.db")
    (tmp_path / "other").mkdir()
    (tmp_path / "missing").mkdir()
    other = tmp_path / "other" / "ssc3-pki.yaml"
    other.write_text(
        lab.profile.read_text(encoding="utf-8")
        .replace("issuing_ca_key: pki-issuing-ca", "issuing_ca_key: pki-root")
        .replace("issuing_ca_certificate: pki/", f"issuing_ca_certificate: {lab.chain.parent}/"),
        encoding="utf-8",
    )
    with pytest.raises(UsageError, match="certifies another key than 'pki-root'"):
        pki_step(load_profile(other), store, db)
    missing = tmp_path / "missing" / "ssc3-pki.yaml"
    missing.write_text(
        other.read_text(encoding="utf-8").replace("issuing_ca_key: pki-root",
                                                  "issuing_ca_key: pki-nowhere"),
        encoding="utf-8",
    )  # fmt: skip
    with pytest.raises(UsageError, match="pre-flight: the PKI's issuing CA key"):
        pki_step(load_profile(missing), store, db)
    assert pki_step(profile, store, db) is not None


def test_a_card_refusal_names_the_step(lab: PkiLab, tmp_path: Path) -> None:
    """A wrong PIN in ``read_pki`` leaves as the card's refusal of VERIFY PIN (63C2)."""
    card, _, _, pin = made(lab, "native", tmp_path)
    card.power_on()
    with pytest.raises(CardError) as refused:
        drive(read_pki(bcd_pin("000000" if pin != "000000" else "111111"), b"x"), card.transmit)
    assert refused.value.sw == 0x63C2 and refused.value.command == "VERIFY PIN"


def test_a_chip_whose_profile_lacks_the_pki_commands_is_refused_untouched(
    lab: PkiLab, tmp_path: Path
) -> None:
    import shutil

    from cardperso.chip.model import ChipFailure

    chips = tmp_path / "chips"
    shutil.copytree(Path(__file__).resolve().parents[1] / "profiles" / "chips", chips)
    sm4 = chips / "cardperso-fmcos-sm4.yaml"
    sm4.write_text(sm4.read_text().split("  # the PKI application")[0])
    drivers = load_drivers(directory=chips)
    step = pki_step(load_profile(lab.profile), lab.store(), Database(tmp_path / "j.db"))
    assert drivers.use_pki(step) == ["cardperso-fmcos-sm4"]
    chip = blank_native(tmp_path / "n.json")
    with pytest.raises(ChipFailure, match="cardperso-fmcos-sm4 chip: its profile lacks the PKI"):
        drivers.choose(chip.power_on())
    assert drivers.choose(VirtualCard.create_blank(tmp_path / "g.json").power_on()).pki is step


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_the_administrator_pin_unblocks_the_user_pin(
    lab: PkiLab, kind: str, tmp_path: Path
) -> None:
    """The administrator PIN set at personalization (derived from the store's master and the
    card number) verifies; RESET RETRY COUNTER then gives a blocked user PIN its tries back.
    Without the administrator PIN, or with a wrong one, nothing is unblocked."""
    card, _, _, pin = made(lab, kind, tmp_path)
    select(card)
    wrong = "000000" if pin != "000000" else "111111"
    assert [verify(card, wrong) for _ in range(3)] == ["63C2", "63C1", "63C0"]
    unblock = apdu(0x00, 0x2C, 0x03, 0x81)
    assert sw(card, unblock) == "6982", "no unblocking without the administrator PIN"
    number = next(c for c, p in lab.pins.items() if p == pin)
    with pytest.raises(CardError) as refused:
        drive(unblock_pin(admin_pin(lab.store(), "pki-admin-pin", "99999999X")), card.transmit)
    assert refused.value.sw == 0x63C2 and "administrator" in refused.value.command
    drive(unblock_pin(admin_pin(lab.store(), "pki-admin-pin", number)), card.transmit)
    select(card)
    assert verify(card, pin) == "9000"


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_an_issuer_made_signing_pair_is_imported_under_the_secure_channel(
    tmp_path: Path, kind: str
) -> None:
    """``signing_key: import`` (chips that do not generate): the issuer's pair goes in with
    IMPORT PUBLIC KEY and ``80 C2 C0 00`` inside the enciphered channel; the card proves it holds the key (the request it signs verifies) and openssl checks
    chain and signature as for a card-made pair."""
    (tmp_path / "lab").mkdir()
    lab = make_lab(tmp_path / "lab", records=1, signing_key="import", encryption_pair=False)
    card, result, _, pin = made(lab, kind, tmp_path)
    assert len(result.checks) == 2 and "signing" in result.checks[1]
    card.power_on()
    challenge = b"challenge for an imported key"
    got = drive(read_pki(bcd_pin(pin), challenge), card.transmit)
    assert got.encryption_certificate is None
    work = tmp_path / "work"
    work.mkdir()
    from cardperso.chip.pki import load_certificates

    assert check_readout(got, challenge, load_certificates(lab.chain), work)
    cert = x509.decode_certificate(got.signing_certificate)
    key = Sm2PrivateKey.from_bytes(card.state.pki.files["0013"])
    assert key.public_key.to_bytes() == cert.public_key
