"""GlobalPlatform secure channels with virtual cards through the real PC/SC stack.

Our host side (cardperso.protocol) talks to a blank VirtualCard through pyscard -> pcscd -> vpcd
-> the bridge, with the GlobalPlatform test keys 404142...4F (KVN FF) every blank card carries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.card import VirtualCard
from cardperso.card.state import GP_TEST_KEY
from cardperso.crypto.gp import StaticKeys
from cardperso.devices.pcsc import ApduTrace, PcscTransport
from cardperso.errors import CryptogramMismatch
from cardperso.protocol.scp02 import Scp02Host
from cardperso.protocol.scp03 import Scp03Host
from fixtures_pcsc import LabSlot

pytestmark = pytest.mark.pcsc

SELECT_ISD = bytes.fromhex("00A4040008A000000151000000")


def gp_keys(scp: str, mac: bytes = GP_TEST_KEY) -> StaticKeys:
    return StaticKeys(GP_TEST_KEY, mac, GP_TEST_KEY, "3DES" if scp == "02" else "AES")


def open_channel(
    t: PcscTransport, scp: str, level: int, keys: StaticKeys
) -> tuple[Scp02Host | Scp03Host, int]:
    """SELECT the ISD, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE; the host and the final SW."""
    assert t.transmit(SELECT_ISD)[-2:] == b"\x90\x00"
    host: Scp02Host | Scp03Host = Scp02Host(keys, level) if scp == "02" else Scp03Host(keys, level)
    response = t.transmit(host.initialize_update())
    assert response[-2:] == b"\x90\x00", response.hex()
    response = t.transmit(host.process_initialize_update_response(response))
    sw = int.from_bytes(response[-2:], "big")
    if sw == 0x9000:
        host.process_external_authenticate_response(response)
    return host, sw


@pytest.mark.parametrize("scp", ["02", "03"])
@pytest.mark.parametrize("level", [0x01, 0x03])
def test_blank_card_authenticates_with_test_keys(
    pcsc_slot: LabSlot, tmp_path: Path, scp: str, level: int
) -> None:
    card = VirtualCard.create_blank(tmp_path / "c.card", scp=scp)
    pcsc_slot.insert(card)
    traces: list[ApduTrace] = []
    with PcscTransport(pcsc_slot.name, trace=traces.append) as t:
        host, sw = open_channel(t, scp, level, gp_keys(scp))
        assert sw == 0x9000 and host.is_open
        response = host.unwrap(t.transmit(host.wrap(bytes.fromhex("80CA00E000"))))
        assert response[-2:] == b"\x90\x00"
        assert response[0] == 0xE0  # key information template
    # The EXTERNAL AUTHENTICATE cryptogram is not a secret: the trace shows it whole.
    ext_auth = next(x for x in traces if x.command[2:4] == "82")
    assert "redacted" not in ext_auth.command and len(ext_auth.command) == 2 * (5 + 16)


def test_wrong_keys_are_caught_before_external_authenticate(
    pcsc_slot: LabSlot, tmp_path: Path
) -> None:
    card = VirtualCard.create_blank(tmp_path / "c.card")
    pcsc_slot.insert(card)
    wrong = StaticKeys(b"\x11" * 16, b"\x11" * 16, b"\x11" * 16)
    with PcscTransport(pcsc_slot.name) as t, pytest.raises(CryptogramMismatch):
        open_channel(t, "02", 0x01, wrong)
    pcsc_slot.remove()
    assert VirtualCard.load(card.path).state.isd.auth_failures == 0  # nothing reached the card


def test_blocked_domain_stays_blocked_across_restarts(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    path = tmp_path / "c.card"
    VirtualCard.create_blank(path, max_auth_failures=2)
    # Right ENC key (the card cryptogram verifies), wrong MAC key: the card sees a bad MAC on
    # EXTERNAL AUTHENTICATE and counts a failed authentication.
    half_wrong = gp_keys("02", mac=b"\x11" * 16)
    pcsc_slot.insert(VirtualCard.load(path))
    with PcscTransport(pcsc_slot.name) as t:
        for _ in range(2):
            assert open_channel(t, "02", 0x01, half_wrong)[1] == 0x6300
        assert t.transmit(Scp02Host(gp_keys("02")).initialize_update())[-2:] == b"\x69\x83"
    pcsc_slot.remove()
    pcsc_slot.slot.stop()
    pcsc_slot.slot.start()
    pcsc_slot.insert(VirtualCard.load(path))
    with PcscTransport(pcsc_slot.name) as t:
        t.transmit(SELECT_ISD)
        assert t.transmit(Scp02Host(gp_keys("02")).initialize_update())[-2:] == b"\x69\x83"
