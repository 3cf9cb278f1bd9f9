"""A physical reader and card (skipped unless CARDPERSO_HARDWARE_READER names a reader).

Set CARDPERSO_HARDWARE_READER to the reader's PC/SC name (see ``cardperso readers``) with a
GlobalPlatform card in it; the test only reads (SELECT the card manager, GET DATA CPLC).
"""

from __future__ import annotations

import os

import pytest

from cardperso.devices.pcsc import PcscTransport, list_readers

READER = os.environ.get("CARDPERSO_HARDWARE_READER", "")

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(not READER, reason="CARDPERSO_HARDWARE_READER is not set"),
]


def test_physical_reader_round_trip() -> None:
    assert READER in {r.name for r in list_readers()}
    with PcscTransport(READER) as t:
        assert t.atr[:1] in (b"\x3b", b"\x3f")
        assert t.protocol in ("T=0", "T=1")
        # SELECT by AID with Le: a T=0 card answers 61xx and the transport fetches the FCI.
        response = t.transmit(bytes.fromhex("00A4040000"))
        assert len(response) >= 2
        cplc = t.transmit(bytes.fromhex("80CA9F7F00"))
        assert cplc[-2:] in (b"\x90\x00", b"\x6a\x88", b"\x6d\x00", b"\x6e\x00")
