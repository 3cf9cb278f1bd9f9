"""PBOC conformance over the real PC/SC stack (pcscd + vpcd), on a card the factory and the bank
personalized from the shipped profiles (ssc3-pboc-2stage, whose bank stage is ssc3-pboc's
``pboc`` section): the card risk-management data of the profile answer GET DATA, the
transaction log records each transaction for READ RECORD, and an online e-cash load starts
from the balance the card authenticated in 9F10, whatever 9F79 the terminal tells the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.bank import terminal
from cardperso.bank.host import AuthRequest, IssuerHost, LoadRefused, n12
from cardperso.card import VirtualCard
from cardperso.card.faults import FaultPlan
from cardperso.chip.transport import drive
from cardperso.codec import tlv
from cardperso.codec.apdu import CommandAPDU, ResponseAPDU
from cardperso.devices.pcsc import PcscTransport
from cardperso.layouts import pboc_ac
from cardperso.profiles import load_profile
from fixtures_pcsc import LabSlot
from test_bank_pcsc import BANK_KEYS, balance, bank_store, invoke, two_stage_card

pytestmark = pytest.mark.pcsc

__all__ = ["two_stage_card"]  # the fixture, used by name

Flow = terminal.Flow


def _get_data(tag: int) -> Flow[tuple[bytes, int]]:
    raw = yield CommandAPDU(0x80, 0xCA, tag >> 8, tag & 0xFF, le=256).to_bytes()
    resp = ResponseAPDU.parse(raw)
    return (tlv.parse_one(resp.data).value if resp.sw == 0x9000 else b"", resp.sw)


def _read_record(sfi: int, rec: int) -> Flow[tuple[bytes, int]]:
    raw = yield CommandAPDU(0x00, 0xB2, rec, sfi << 3 | 4, le=256).to_bytes()
    resp = ResponseAPDU.parse(raw)
    return resp.data, resp.sw


def _crm_and_log() -> Flow[dict[str, tuple[bytes, int]]]:
    yield from terminal.select()
    out: dict[str, tuple[bytes, int]] = {}
    for tag in (0x9F52, 0x9F56, 0x9F58, 0x9F59, 0x9F54, 0x9F5C, 0x9F4F, 0x9F4D, 0x9F13):
        out[f"{tag:04X}"] = yield from _get_data(tag)
    out["log1"] = yield from _read_record(11, 1)
    out["log2"] = yield from _read_record(11, 2)
    return out


def _lying_load(host: IssuerHost, amount: int, told_balance: int) -> Flow[tuple[bytes, int]]:
    """An online load whose terminal tells the host ``told_balance`` as 9F79 but forwards the
    card's 9F10 (as an authorisation message carries the ICC data); returns (9F10, balance)."""
    sel = yield from terminal.select()
    term = terminal.TerminalData(amount=amount, transaction_type=0x63)
    session = yield from terminal.gpo_and_records(sel, term)
    data = term.dol_data(session.cdol1)
    first = yield from terminal.generate_ac("ARQC", data)
    req = AuthRequest.from_card(
        session.pan, session.psn, atc=first.atc, arqc=first.ac, iad=first.iad,
        aip=session.aip, cdol=session.cdol1, cdol_data=data,
    )  # fmt: skip
    try:
        answer = host.authorize_load(req, balance=told_balance, limit=10000, amount=amount)
    except LoadRefused:
        yield from terminal.generate_ac("AAC", term.dol_data(session.cdol2 or session.cdol1, b"Z3"))
        raise
    raw = yield CommandAPDU(0x00, 0x82, 0x00, 0x00, answer.external_authenticate_data).to_bytes()
    assert ResponseAPDU.parse(raw).sw == 0x9000
    for script in answer.scripts:
        assert ResponseAPDU.parse((yield script)).sw == 0x9000
    yield from terminal.generate_ac("TC", term.dol_data(session.cdol2 or session.cdol1, b"00"))
    after = yield from terminal.get_data_amount(0x9F79)
    return first.iad, after


def test_profile_crm_data_log_and_authenticated_load_over_pcsc(
    two_stage_card: tuple[LabSlot, Path, VirtualCard],
) -> None:
    slot, _, _ = two_stage_card
    spec = load_profile("ssc3-pboc").pboc
    assert spec is not None
    (crm,) = [c for c in spec.constant_dgis if c.dgi == 0x0E01]
    wanted = {t.tag: t.value for t in crm.tlv}
    host = IssuerHost(bank_store())
    with PcscTransport(slot.name) as t:
        # the card starts at 0 fen (limit 100.00 yuan); the terminal claims 9000 fen: a load
        # of 5000 computed from 9000 would be refused (limit 10000), from the card's 0 it is not
        iad, after = drive(_lying_load(host, 5000, told_balance=9000), t.transmit)
        assert pboc_ac.ec_idd_balance(iad) is not None
        assert after == 5000
        # now the terminal claims 0 to load 6000: the card's authenticated 5000 + 6000 > 10000
        with pytest.raises(LoadRefused, match=r"balance 5000 \+ load 6000"):
            drive(_lying_load(host, 6000, told_balance=0), t.transmit)
        bought = drive(terminal.ec_purchase(1234), t.transmit)
        assert bought.approved
        got = drive(_crm_and_log(), t.transmit)
    for tag in (0x9F52, 0x9F56, 0x9F58, 0x9F59, 0x9F54, 0x9F5C, 0x9F4F):
        assert got[f"{tag:04X}"] == (wanted[tag], 0x9000), f"{tag:04X}"
    assert got["9F4D"] == (bytes.fromhex("0B0A"), 0x9000)
    # log records in 9F4F's format: 9A 9F21 9F02 9F03 9F1A 5F2A 9F4E 9C 9F36, newest first:
    # the purchase (1234 fen), then the refused load's AAC (6000 fen)
    (newest, sw1), (older, sw2) = got["log1"], got["log2"]
    assert (sw1, sw2) == (0x9000, 0x9000)
    assert newest[6:12] == bytes.fromhex("000000001234")
    assert older[6:12] == bytes.fromhex("000000006000") and older[-3] == 0x63
    assert int.from_bytes(older[-2:], "big") + 1 == int.from_bytes(newest[-2:], "big")


class LyingReader:
    """A tampered terminal's reader: everything goes to the card and back, except that GET DATA
    9F79 answers ``claim`` fen whatever the card's balance is."""

    def __init__(self, card: VirtualCard, claim: int) -> None:
        self.card, self.claim = card, claim

    @property
    def faults(self) -> FaultPlan:
        return self.card.faults

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def power_on(self) -> bytes:
        return self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def reset(self) -> bytes:
        return self.card.reset()

    def transmit(self, apdu: bytes) -> bytes:
        answer = self.card.transmit(apdu)
        if apdu[:4] == bytes.fromhex("80CA9F79") and answer[-2:] == b"\x90\x00":
            return tlv.encode(0x9F79, n12(self.claim)) + b"\x90\x00"
        return answer


def test_cli_ec_load_through_a_terminal_lying_about_9f79_gains_nothing(
    two_stage_card: tuple[LabSlot, Path, VirtualCard],
) -> None:
    slot, _, card = two_stage_card
    slot.remove()
    # the card holds 0 fen (limit 100.00 yuan); the reader tells the terminal 40.00 yuan
    slot.insert(LyingReader(card, claim=4000))
    out = invoke(
        "bank", "ec-load", "--reader", slot.name, "--amount", "1000", "--keys", str(BANK_KEYS)
    )
    assert out.exit_code == 0, out.output
    slot.remove()
    slot.insert(card)
    # the host loaded 10.00 yuan onto the card's authenticated 0, not onto the claimed 40.00
    assert balance(slot) == 1000
    # a claim of 0 does not slip a load past the limit either: 1000 + 9500 > 10000. The host
    # takes no 9F77 from the terminal (its ceiling is 1000 yuan) and makes the script, but the
    # card refuses a balance past its own 9F77: the terminal closes with an AAC, exit 3
    slot.remove()
    slot.insert(LyingReader(card, claim=0))
    out = invoke(
        "bank", "ec-load", "--reader", slot.name, "--amount", "9500", "--keys", str(BANK_KEYS)
    )
    assert out.exit_code == 3, out.output
    assert "issuer script #1: card returned 6A80" in out.output
    slot.remove()
    slot.insert(card)
    assert balance(slot) == 1000
