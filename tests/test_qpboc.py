"""qPBOC contactless on the virtual card and the terminal flow (issue 13 item 5), in-process.

Outside references: the TTQ / CTQ bits and the GPO answer lists of pboc-conformance.md section
5 (S1 CardPlatform's GPO checks, S3 XML2Java's qPBOC kernel), the CVR values a public qPBOC
card test suite expects in 9F10 (``90`` offline approved, ``A0`` online, ``80`` declined), and
the ARQC verified by the issuer host from the issuer master key (the PBOC session key and
minimum data set are pinned by published vectors in tests/test_vectors_pboc.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.bank import qpboc, terminal
from cardperso.bank.host import IssuerHost
from cardperso.card import VirtualCard
from cardperso.chip.pboc_flows import dol_values
from cardperso.chip.transport import drive
from cardperso.codec import tlv
from cardperso.crypto import emv
from cardperso.errors import CardError
from cardperso.layouts import pboc_ac
from cardperso.sim.inprocess import InProcessTransport
from test_bank_host import store
from test_card_pboc import SELECT_PBOC, issuer_keys
from test_card_support import IAD, PBOC_AID, Host, install_pboc, new_card, pboc_dgis

H = bytes.fromhex
CL_PDOL = H("9F66049F7A019F02069F03069F1A0295055F2A029A039C019F3704")


def qpboc_dgis(balance: int, **crm: str) -> list[tuple[int, bytes, bool]]:
    fci = (
        tlv.encode(0x50, b"PBOC DEBIT")
        + tlv.encode(0x87, b"\x01")
        + tlv.encode(0x9F38, CL_PDOL)
        + tlv.encode(0xBF0C, H("9F4D020B0A"))
    )
    gpo = tlv.encode(0x82, H("0000")) + tlv.encode(0x94, H("08010100")) + tlv.encode(0x9F10, IAD)
    e01 = {"x9F4F": "9A039F02069C019F3602", "x9F6C": "0000", "x9F6B": "000000003000", **crm}
    data = b"".join(tlv.encode(int(t[1:], 16), H(v)) for t, v in e01.items())
    return [
        *pboc_dgis(balance=balance),
        (0x9103, fci, False),
        (0x9207, gpo, False),
        (0x0E01, data, False),
    ]


def card(tmp_path: Path, balance: int = 5000, **crm: str) -> VirtualCard:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    host.personalize(PBOC_AID, qpboc_dgis(balance, **crm))
    host.card.contactless = True
    return host.card


def run(c: VirtualCard, flow: terminal.Flow[qpboc.ContactlessResult]) -> qpboc.ContactlessResult:
    transport = InProcessTransport(c)
    transport.connect()
    return drive(flow, transport.transmit)


def test_offline_approval_debits_the_balance(tmp_path: Path) -> None:
    c = card(tmp_path)
    got = run(c, qpboc.qpboc_purchase(800))
    assert (got.outcome, got.cid, got.available) == ("approved offline", "TC", 4200)
    assert c.state.pboc.ec_balance == 4200
    # the answer carries S1's offline list, in order (no ICC key: no 9F4B / 9F69)
    assert list(got.answer) == [0x82, 0x94, 0x9F36, 0x9F26, 0x9F10, 0x57, 0x5F34, 0x9F6C, 0x9F5D]
    iad = pboc_ac.IAD.decode(got.answer[0x9F10])
    assert iad.cvr == H("901000")  # 2nd AC not requested, TC; new card
    assert pboc_ac.ec_idd_balance(got.answer[0x9F10]).balance == 4200  # type: ignore[union-attr]
    # the TC is PBOC's cryptogram over the minimum data set taken from the PDOL data
    sk_ac, _ = issuer_keys(got.answer[0x9F36])
    values = dol_values(CL_PDOL, got.pdol_data)
    assert values[0x9F66] == qpboc.ttq(offline_only=True) == H("2A000080")
    data = pboc_ac.ac_input(
        got.answer[0x9F10], values, got.pdol_data, got.answer[0x82], got.answer[0x9F36]
    )
    emv.verify_application_cryptogram(sk_ac, data, got.answer[0x9F26])
    # the log got the purchase; a second purchase goes on from the new balance
    assert run(c, qpboc.qpboc_purchase(200)).available == 4000


def test_above_the_balance_goes_online_and_the_host_verifies(tmp_path: Path) -> None:
    c = card(tmp_path, balance=500)
    host = IssuerHost(store())
    got = run(c, qpboc.qpboc_purchase(900, host))
    assert (got.outcome, got.cid) == ("approved online", "ARQC")
    assert "arqc" in got.checks and c.state.pboc.ec_balance == 500  # online: no e-cash debit
    assert list(got.answer)[:6] == [0x82, 0x9F36, 0x57, 0x5F34, 0x9F10, 0x9F26]
    assert pboc_ac.IAD.decode(got.answer[0x9F10]).cvr[:1] == H("A0")
    # a wrong issuer master key: the host refuses, the reader declines
    got = run(c, qpboc.qpboc_purchase(900, IssuerHost(store(ac=H("00" * 16)))))
    assert (got.outcome, got.checks[-1]) == ("declined", "arqc-refused")


def test_an_offline_only_reader_is_declined_what_would_go_online(tmp_path: Path) -> None:
    c = card(tmp_path, balance=500)
    got = run(c, qpboc.qpboc_purchase(900))
    assert (got.outcome, got.cid) == ("declined", "AAC")
    assert pboc_ac.IAD.decode(got.answer[0x9F10]).cvr[:1] == H("80")
    assert c.state.pboc.ec_balance == 500


def test_the_reader_can_require_an_online_cryptogram(tmp_path: Path) -> None:
    c = card(tmp_path)
    got = run(c, qpboc.qpboc_purchase(100, IssuerHost(store()), online_required=True))
    assert (got.outcome, got.cid) == ("approved online", "ARQC")


def test_ada_new_card_online_and_single_limit(tmp_path: Path) -> None:
    c = card(tmp_path, x9F52="0080")
    got = run(c, qpboc.qpboc_purchase(100, IssuerHost(store())))
    assert got.cid == "ARQC" and pboc_ac.IAD.decode(got.answer[0x9F10]).cvr == H("A01000")
    (tmp_path / "b").mkdir()
    c = card(tmp_path / "b")  # single limit 10.00 (pboc_dgis): 10.01 goes online
    assert run(c, qpboc.qpboc_purchase(1001, IssuerHost(store()))).cid == "ARQC"
    assert run(c, qpboc.qpboc_purchase(1000)).cid == "TC"


def test_ctq_asks_for_a_cvm_above_the_card_cvm_limit(tmp_path: Path) -> None:
    c = card(tmp_path, balance=9000)  # card CVM limit 30.00, single limit 10.00
    c.state.pboc.ec_single_limit = 9000
    got = run(c, qpboc.qpboc_purchase(3001))
    assert got.cid == "TC" and got.ctq == H("4000") and got.cvm == "signature"  # CTQ B1 b7
    got = run(c, qpboc.qpboc_purchase(100, IssuerHost(store()), online_required=True))
    assert got.ctq == H("0000") and got.cvm == "none"
    got = run(c, qpboc.qpboc_purchase(3001, IssuerHost(store()), online_required=True))
    assert got.ctq[0] & 0x80 and got.cvm == "online PIN"  # online, a reader that can do it


def test_contact_interface_and_ttq_routing(tmp_path: Path) -> None:
    c = card(tmp_path)
    c.contactless = False  # contact: the contact FCI (no 9F66), the contact flow
    with pytest.raises(CardError, match="no qPBOC path"):
        run(c, qpboc.qpboc_purchase(100))
    c.contactless = True
    host = Host(c)
    host.ok(SELECT_PBOC)
    pdol = bytes(34)  # TTQ 00000000: neither qPBOC nor contactless PBOC
    assert host.send(b"\x80\xa8\x00\x00" + bytes((len(pdol) + 2, 0x83, len(pdol))) + pdol)[1] == (
        0x6985
    )
    # TTQ contactless PBOC (B1 b7) only: the full path (AIP/AFL of 9104, then GENERATE AC)
    pdol = H("40000000") + bytes(30)
    host.ok(SELECT_PBOC)
    answer = host.ok(b"\x80\xa8\x00\x00" + bytes((len(pdol) + 2, 0x83, len(pdol))) + pdol)
    assert tlv.find(tlv.parse(tlv.parse_one(answer).value), 0x9F26) is None


def test_no_generate_ac_after_the_qpboc_answer(tmp_path: Path) -> None:
    c = card(tmp_path)
    run(c, qpboc.qpboc_purchase(100))
    host = Host(c)
    host.ok(SELECT_PBOC)
    pdol = H("20000080") + bytes(30)
    host.ok(b"\x80\xa8\x00\x00" + bytes((len(pdol) + 2, 0x83, len(pdol))) + pdol)
    assert host.send(b"\x80\xae\x40\x00\x21" + bytes(0x21))[1] == 0x6985


def test_a_malformed_qpboc_template_is_refused_at_personalization(tmp_path: Path) -> None:
    for n, template in enumerate(
        [
            # the public script's 9208: 9F10 whose length byte 0A promises 10 bytes, 1 follows
            tlv.encode(0x82, H("0000")) + tlv.encode(0x9F10, H("07010103000000010A01")),
            tlv.encode(0x94, H("08010100")) + tlv.encode(0x9F10, IAD),  # no AIP
            tlv.encode(0x82, H("0000")) + tlv.encode(0x9F10, IAD[:7] + b"\x04" + IAD[8:]),  # SM4
        ]
    ):
        (tmp_path / str(n)).mkdir()
        host = Host(new_card(tmp_path / str(n)))
        host.authenticate(0x03)
        install_pboc(host)
        assert host.install_for_perso(PBOC_AID) == 0x9000
        assert host.store_data([(0x9207, template, False)])[0] == 0x6A80, n


def test_get_data_9f5d_and_the_log_follow_the_purchase(tmp_path: Path) -> None:
    c = card(tmp_path)
    assert run(c, qpboc.qpboc_purchase(834)).cid == "TC"
    host = Host(c)
    host.ok(SELECT_PBOC)
    assert tlv.parse_one(host.ok("80CA9F5D00")).value == H("000000004166")
    log = host.ok("00B2015C00")  # SFI 11 record 1, format 9A 9F02 9C 9F36 (0E01's 9F4F)
    assert log[3:9] == H("000000000834") and log[-2:] == b"\x00\x01"
