"""DDA and fDDA over the real PC/SC stack (pcscd + vpcd): INTERNAL AUTHENTICATE and a qPBOC
offline purchase through a lab reader, each signature opened by OpenSSL's raw public operation
and checked against EMV 4.3 Book 2 table 17 (tests/test_pboc_oda.py has the rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.bank import qpboc
from cardperso.chip.pboc_flows import dol_values
from cardperso.chip.transport import drive
from cardperso.codec import tlv
from cardperso.devices.pcsc import PcscTransport
from fixtures_pcsc import LabSlot
from openssl_rsa import OpensslRsa, genrsa
from test_pboc_oda import UN, card, check_format_05, opened
from test_qpboc import CL_PDOL, qpboc_dgis

pytestmark = pytest.mark.pcsc


def test_dda_and_fdda_through_a_pcsc_reader(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    key: OpensslRsa = genrsa(tmp_path, 1024, 3)
    host = card(tmp_path, key, qpboc_dgis(5000))
    pcsc_slot.insert(host.card)
    with PcscTransport(pcsc_slot.name) as t:
        assert t.transmit(bytes.fromhex("00A4040008A000000333010101"))[-2:] == b"\x90\x00"
        raw = t.transmit(b"\x00\x88\x00\x00\x04" + UN + b"\x00")
        assert raw[-2:] == b"\x90\x00"
        sdad = tlv.to_dict(tlv.parse_one(raw[:-2]).children)[0x9F4B]
        check_format_05(opened(key, sdad, tmp_path), UN)
    host.card.contactless = True
    with PcscTransport(pcsc_slot.name) as t:
        got = drive(qpboc.qpboc_purchase(900), t.transmit)
    assert (got.outcome, got.available) == ("approved offline", 4100)
    v = dol_values(CL_PDOL, got.pdol_data)
    card_auth = got.answer[0x9F69]
    data = v[0x9F37] + v[0x9F02] + v[0x5F2A] + card_auth
    check_format_05(opened(key, got.answer[0x9F4B], tmp_path), data)
