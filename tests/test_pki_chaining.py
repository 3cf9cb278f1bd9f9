"""SIGN in an ISO/IEC 7816-4 command chain (issue 17): the codec's chain, and the PKI application
of the virtual GP card and of the native chip gathering a long message, refusing a chain broken
by another command, a chain longer than the application takes, and chaining of any other
command.

Rules (ISO/IEC 7816-4:2005): CLA b5 set on every command of a chain but the last (5.1.1, table
2; 5.1.1.1); status words (5.1.3, table 6) ``6883`` last command of the chain expected, ``6884``
command chaining not supported, ``6700`` wrong length. The long message's signature, made by the
card from the chain, is checked by ``openssl pkeyutl -verify`` (SM2, SM3, the default user ID),
not by our own SM2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardperso.card.native import NativeCard
from cardperso.card.vcard import VirtualCard
from cardperso.chip.pki import SIGN_PIECE, send_plain, sign
from cardperso.chip.transport import drive
from cardperso.codec.apdu import CLA_CHAIN, CommandAPDU, chain
from cardperso.crypto.sm2 import signature_to_der
from cardperso.errors import UsageError
from cardperso.layouts import x509
from cardperso.pki.card_app import SIGN_LIMIT
from cardperso.pki.pem import to_pem
from openssl_cli import OPENSSL
from pki_fixtures import PkiLab
from test_pki_card import ADF, apdu, made, select, sw, verify

DISTID = "distid:1234567812345678"


# -- the codec ----------------------------------------------------------------------------------


def test_a_chain_sets_cla_b5_on_all_but_the_last_and_le_on_the_last_only() -> None:
    pieces = chain(0x00, 0x2A, 0x9E, 0x9A, bytes(range(250)) * 2, 0xE0, le=256)
    assert [p.cla for p in pieces] == [0x10, 0x10, 0x00]
    assert [len(p.data) for p in pieces] == [224, 224, 52]
    assert [p.le for p in pieces] == [None, None, 256]
    assert all(not p.extended for p in pieces)
    assert pieces[0].to_bytes()[:5] == bytes.fromhex("102A9E9AE0")
    assert pieces[-1].to_bytes()[-1] == 0x00  # Le 00: up to 256
    one = chain(0x80, 0xE2, 0x00, 0x00, b"short", 0xE0)
    assert one == [CommandAPDU(0x80, 0xE2, 0x00, 0x00, b"short")], "fits: one plain command"
    assert chain(0x00, 0x2A, 0x9E, 0x9A, bytes(0xE0), 0xE0)[0].cla == 0x00, "exactly one piece"
    with pytest.raises(UsageError, match="piece must be 1-255 bytes"):
        chain(0x00, 0x2A, 0x9E, 0x9A, b"x", 256)
    with pytest.raises(UsageError, match="already has the chaining bit"):
        chain(0x10, 0x2A, 0x9E, 0x9A, b"x", 16)


@given(data=st.binary(max_size=1200), piece=st.integers(1, 255))
def test_a_chain_carries_the_data_in_order(data: bytes, piece: int) -> None:
    pieces = chain(0x00, 0x2A, 0x9E, 0x9A, data, piece, le=256)
    assert b"".join(p.data for p in pieces) == data
    assert all(p.cla == CLA_CHAIN for p in pieces[:-1]) and pieces[-1].cla == 0
    assert all(1 <= len(p.data) <= piece for p in pieces) or data == b""
    assert [CommandAPDU.parse(p.to_bytes()) for p in pieces] == pieces


# -- the card models ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> PkiLab:
    from pki_fixtures import make_lab

    return make_lab(tmp_path_factory.mktemp("pkichain"), records=1, encryption_pair=False)


def openssl_verifies(card: VirtualCard | NativeCard, message: bytes, signature: bytes,
                     tmp: Path) -> bool:  # fmt: skip
    """``openssl pkeyutl -verify`` of ``signature`` (r ‖ s) over ``message`` with the card's
    signing public key (EF 0012, ``CA 40 x y``), SM3 and the default user ID."""
    public = b"\x04" + card.state.pki.files["0012"][2:]
    pub = tmp / "card-pub.pem"
    pub.write_text(to_pem(x509.public_key_info(public), "PUBLIC KEY"))
    (tmp / "msg.bin").write_bytes(message)
    (tmp / "sig.der").write_bytes(signature_to_der(signature))
    done = subprocess.run(
        [OPENSSL, "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin", "-digest", "sm3",
         "-pkeyopt", DISTID, "-in", str(tmp / "msg.bin"), "-sigfile", str(tmp / "sig.der")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return "Signature Verified Successfully" in done.stdout


def ready(lab: PkiLab, kind: str, tmp: Path) -> tuple[VirtualCard | NativeCard, str]:
    """A personalized card, selected, its user PIN verified (SIGN may run); its PIN."""
    card, _, _, pin = made(lab, kind, tmp)
    select(card)
    assert verify(card, pin) == "9000"
    return card, pin


def send_chain(card: VirtualCard | NativeCard, data: bytes, piece: int = SIGN_PIECE) -> list[str]:
    """Every piece of a SIGN chain of ``data``; the status words (the last with its data)."""
    out = []
    for p in chain(0x00, 0x2A, 0x9E, 0x9A, data, piece, le=256):
        answer = card.transmit(p.to_bytes())
        out.append(answer.hex().upper() if len(answer) > 2 else answer[-2:].hex().upper())
    return out


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_a_chained_sign_of_the_longest_message_verifies_with_openssl(
    lab: PkiLab, kind: str, tmp_path: Path
) -> None:
    card, _pin = ready(lab, kind, tmp_path)
    message = bytes((i * 7) & 0xFF for i in range(SIGN_LIMIT))  # 3 pieces: 224, 224, 64
    signature = drive(sign(send_plain, message), card.transmit)
    assert openssl_verifies(card, message, signature, tmp_path)
    # the card signed the whole message, not its last piece
    assert not openssl_verifies(card, message[-64:], signature, tmp_path)


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_a_chain_broken_by_another_command_answers_6883_and_is_dropped(
    lab: PkiLab, kind: str, tmp_path: Path
) -> None:
    card, pin = ready(lab, kind, tmp_path)
    first, second = bytes(range(200)), b"the rest of the request"
    assert sw(card, apdu(0x10, 0x2A, 0x9E, 0x9A, first)) == "9000"
    # READ BINARY (the application's), GET CHALLENGE (16 bytes: the application's; 8 bytes on
    # the native chip: the chip's own), SELECT of a file
    breakers = [apdu(0x00, 0xB0, 0x00, 0x00, le=4), apdu(0x00, 0x84, 0x00, 0x00, le=16),
                apdu(0x00, 0xA4, 0x00, 0x00, b"\x00\x18")]  # fmt: skip
    breakers.append(apdu(0x80, 0xE0, 0x00, 0x01))  # END PERSONALIZATION / END OF CREATION
    if kind == "native":
        breakers.append(apdu(0x00, 0x84, 0x00, 0x00, le=8))
    else:  # INITIALIZE UPDATE: a secure channel opened through the applet
        breakers.append(apdu(0x80, 0x50, 0x00, 0x00, bytes(8), le=256))
    for breaker in breakers:
        assert sw(card, apdu(0x10, 0x2A, 0x9E, 0x9A, first)) == "9000"
        assert sw(card, breaker) == "6883", breaker.hex()
    # a piece of another command (other P1-P2) breaks it too
    assert sw(card, apdu(0x10, 0x2A, 0x9E, 0x9A, first)) == "9000"
    assert sw(card, apdu(0x00, 0x2A, 0x9E, 0x9B, second, le=256)) == "6883"
    # dropped: the last piece alone is a command of its own, signed as such
    assert sw(card, apdu(0x10, 0x2A, 0x9E, 0x9A, first)) == "9000"
    assert sw(card, apdu(0x00, 0xB0, 0x00, 0x00, le=4)) == "6883"
    answer = card.transmit(apdu(0x00, 0x2A, 0x9E, 0x9A, second, le=256))
    assert answer[-2:] == b"\x90\x00"
    assert openssl_verifies(card, second, answer[:-2], tmp_path)
    # selecting the application again drops a chain without a word (GP: a new selection of
    # the applet; native: a DF selected), the next command is no longer "in the middle"
    assert sw(card, apdu(0x10, 0x2A, 0x9E, 0x9A, first)) == "9000"
    assert sw(card, apdu(0x00, 0xA4, 0x04, 0x00, ADF)) == "9000"
    assert sw(card, apdu(0x00, 0xA4, 0x00, 0x00, b"\x00\x18")) == "9000"
    assert verify(card, pin) == "9000"
    # after the refusals, a whole chain still signs
    answers = send_chain(card, first + second, piece=0x80)
    assert answers[:-1] == ["9000"] and answers[-1].endswith("9000")
    assert openssl_verifies(card, first + second, bytes.fromhex(answers[-1][:-4]), tmp_path)


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_a_chain_longer_than_the_application_takes_is_refused_6700(
    lab: PkiLab, kind: str, tmp_path: Path
) -> None:
    card, _pin = ready(lab, kind, tmp_path)
    # 513 bytes in pieces of 128: four gather 512 (the limit), the last one crosses it
    assert send_chain(card, bytes(SIGN_LIMIT + 1), piece=0x80) == ["9000"] * 4 + ["6700"]
    # 712 bytes: the 5th piece (still chained) crosses it, the chain is dropped there; the 6th,
    # the chain's last, then arrives as a command of its own and signs its own 72 bytes only
    message = bytes(range(256)) * 2 + bytes(200)
    answers = send_chain(card, message, piece=0x80)
    assert answers[:5] == ["9000"] * 4 + ["6700"] and answers[5].endswith("9000")
    assert openssl_verifies(card, message[640:], bytes.fromhex(answers[5][:-4]), tmp_path)


def test_the_host_refuses_a_message_over_the_limit_before_any_command() -> None:
    sent: list[bytes] = []

    def transmit(command: bytes) -> bytes:
        sent.append(command)
        return b"\x90\x00"

    with pytest.raises(UsageError, match="513 bytes, the PKI application signs at most 512"):
        drive(sign(send_plain, bytes(SIGN_LIMIT + 1)), transmit)
    assert sent == []


@pytest.mark.parametrize("kind", ["gp", "native"])
def test_chaining_any_other_command_answers_6884(lab: PkiLab, kind: str, tmp_path: Path) -> None:
    card, _pin = ready(lab, kind, tmp_path)
    assert sw(card, apdu(0x00, 0xA4, 0x00, 0x00, b"\x00\x18")) == "9000"
    assert sw(card, apdu(0x10, 0xB0, 0x00, 0x00, le=4)) == "6884"
    assert sw(card, apdu(0x10, 0x20, 0x01, 0x81, bytes(16))) == "6884"
    assert sw(card, apdu(0x00, 0xB0, 0x00, 0x00, le=4)) == "9000", "nothing left pending"
    if kind == "native":  # outside the PKI ADF the chip chains nothing
        assert sw(card, apdu(0x00, 0xA4, 0x00, 0x00, b"\x3f\x00")) == "9000"
        assert sw(card, apdu(0x10, 0xB0, 0x00, 0x00, le=4)) == "6884"
