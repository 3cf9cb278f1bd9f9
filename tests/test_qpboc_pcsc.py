"""qPBOC contactless purchases over the real PC/SC stack (pcscd + vpcd) with the ``bank`` CLI,
on a card the factory and the bank personalized from the shipped profiles (ssc3-pboc-2stage,
whose bank stage is ssc3-pboc's ``pboc`` section with its contactless FCI 9103 and qPBOC GPO
template 9207): an e-cash load on the contact interface, then in a contactless field an
offline approval debiting the e-cash, an online approval through the issuer host, and a
decline on an offline-only reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.bank import qpboc
from cardperso.card import VirtualCard
from cardperso.chip.transport import drive
from cardperso.devices import pcsc
from cardperso.devices.pcsc import PcscTransport
from fixtures_pcsc import PRESENCE_TIMEOUT, LabSlot
from test_bank_pcsc import BANK_KEYS, balance, invoke, two_stage_card
from test_card_support import PAN
from test_pcsc_vcard import _cli, _stop
from test_qpboc import card

pytestmark = pytest.mark.pcsc

__all__ = ["two_stage_card"]  # the fixture, used by name


def test_contactless_purchases_through_the_cli(
    two_stage_card: tuple[LabSlot, Path, VirtualCard],
) -> None:
    slot, _, card = two_stage_card
    out = invoke(
        "bank", "ec-load", "--reader", slot.name, "--amount", "5000", "--keys", str(BANK_KEYS)
    )
    assert out.exit_code == 0, out.output
    card.contactless = True  # the card now sits in the contactless reader's field
    out = invoke("bank", "qpboc-purchase", "--reader", slot.name, "--amount", "1200")
    assert out.exit_code == 0, out.output
    assert out.output.startswith("approved offline: 12.00 yuan on ")
    assert "(TC, ATC " in out.output and "available 38.00 yuan)" in out.output, out.output
    assert "6214830000000009" not in out.output  # the PAN only masked
    assert balance(slot) == 3800
    # above the balance: online with the issuer host (no e-cash debit), declined without one
    out = invoke(
        "bank", "qpboc-purchase", "--reader", slot.name, "--amount", "9000",
        "--keys", str(BANK_KEYS),
    )  # fmt: skip
    assert out.exit_code == 0 and out.output.startswith("approved online: 90.00 yuan"), out.output
    assert "checks selected-via-ppse, gpo-arqc, arqc" in out.output
    assert "cardholder verification" not in out.output  # 90.00 <= the card CVM limit 300.00
    out = invoke(
        "bank", "qpboc-purchase", "--reader", slot.name, "--amount", "30001",
        "--keys", str(BANK_KEYS),
    )  # fmt: skip
    assert "cardholder verification: online PIN" in out.output, out.output  # CTQ B1 b8
    out = invoke("bank", "qpboc-purchase", "--reader", slot.name, "--amount", "9000")
    assert out.exit_code == 0 and out.output.startswith("declined: 90.00 yuan"), out.output
    assert balance(slot) == 3800
    # usage: online required without an issuer host
    out = invoke(
        "bank", "qpboc-purchase", "--reader", slot.name, "--amount", "1", "--online-required"
    )
    assert out.exit_code == 2 and "needs --keys" in out.output


def test_the_contact_interface_has_no_qpboc_path(
    two_stage_card: tuple[LabSlot, Path, VirtualCard],
) -> None:
    slot, _, card = two_stage_card
    assert not card.contactless
    out = invoke("bank", "qpboc-purchase", "--reader", slot.name, "--amount", "100")
    assert out.exit_code != 0 and "no qPBOC path" in out.output, out.output


def test_sim_serve_contactless_then_a_purchase(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    """A personalized image served by ``sim serve --contactless`` (another process), bought
    from with ``bank qpboc-purchase`` through pcscd."""
    images = tmp_path / "cards"
    images.mkdir()
    card(images, balance=3000)  # tests/test_qpboc.py's qPBOC card, image cards/card.json
    proc = _cli(
        "sim", "serve", "--cards", str(images), "--port", str(pcsc_slot.port), "--contactless"
    )
    try:
        pcsc.wait_for_card(pcsc_slot.name, 30)
        out = invoke("bank", "qpboc-purchase", "--reader", pcsc_slot.name, "--amount", "250")
    finally:
        _stop(proc)
    assert out.exit_code == 0 and out.output.startswith("approved offline: 2.50 yuan"), out.output
    assert "available 27.50 yuan" in out.output
    pcsc.wait_for_removal(pcsc_slot.name, PRESENCE_TIMEOUT)
    assert VirtualCard.load(images / "card.json").state.pboc.ec_balance == 2750


def test_the_apdu_trace_of_a_contactless_purchase_shows_no_pan(
    pcsc_slot: LabSlot, tmp_path: Path
) -> None:
    """The qPBOC GPO answer carries track 2 (57: PAN and expiry): the PC/SC trace (-vv) shows
    its length only, as it does for records."""
    c = card(tmp_path, balance=3000)
    pcsc_slot.insert(c)
    lines: list[str] = []
    with PcscTransport(pcsc_slot.name, trace=lambda t: lines.append(str(t))) as t:
        got = drive(qpboc.qpboc_purchase(100), t.transmit)
    assert got.approved and got.answer[0x57].hex().upper().startswith(PAN)
    text = "\n".join(lines)
    assert "80A80000" in text and "bytes of records> 9000" in text
    assert PAN not in text.upper() and PAN[-8:] not in text
