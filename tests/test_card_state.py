"""Non-volatile memory of the virtual card: image file, atomic commits, tearing, faults, power."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.card import CardMute, CardRemoved, CardTorn, VirtualCard
from cardperso.card.ssse import SSSE_NAME
from cardperso.card.state import dumps, read_image
from cardperso.card.vcard import fresh_serial
from cardperso.errors import DataError, TransportError, UsageError
from cardperso.sim.inprocess import InProcessTransport
from test_card_support import Host, install_ssse, new_card, ssse_dgis

SELECT_SSSE = bytes((0x00, 0xA4, 0x04, 0x00, 0x0F)) + SSSE_NAME


def personalized(tmp_path: Path) -> Host:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_ssse(host)
    host.personalize(SSSE_NAME, ssse_dgis(0x01, generation=2))
    return host


def test_blank_card_image(tmp_path: Path) -> None:
    card = VirtualCard.create_blank(tmp_path / "c.json", serial=bytes.fromhex("01020304"))
    state = read_image(card.path)
    assert state.lifecycle == "OP_READY"
    assert state.isd.aid == bytes.fromhex("A000000151000000")
    assert state.isd.keys[0].kvn == 0xFF and state.isd.keys[0].enc == bytes(range(0x40, 0x50))
    assert [p.kind for p in state.packages] == ["ssse", "pboc", "pki"] and not state.apps
    assert card.atr == bytes.fromhex("3B8C80010043505353010203040190008B")
    image = card.path.read_bytes()
    with pytest.raises(UsageError, match=r"c\.json already exists"):
        VirtualCard.create_blank(tmp_path / "c.json")
    assert card.path.read_bytes() == image  # the existing card is left alone


def test_state_survives_reload(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    reloaded = VirtualCard.load(host.card.path)
    assert dumps(reloaded.state) == dumps(host.card.state)
    h2 = Host(reloaded)
    h2.ok(SELECT_SSSE)
    assert h2.ok("00B2032C00") == b"\x03\x043.00"


def test_tearing_keeps_previous_state(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    card = host.card
    before = card.path.read_bytes()
    host.ok(SELECT_SSSE)
    card.faults.tear_next_write = True
    # reads do not write: the tear waits for the next write
    assert host.send("00B2012C00")[1] == 0x9000
    with pytest.raises(CardTorn):
        host.send("0020000003000000")  # a wrong PIN would decrement the try counter
    assert not card.powered and not card.faults.tear_next_write
    assert card.path.read_bytes() == before
    assert card.state.ssse.pin_tries_left == 3
    # a half-written temporary file may be left behind: load ignores it
    assert any(p.name.endswith(".part") for p in tmp_path.iterdir())
    reloaded = VirtualCard.load(card.path)
    assert reloaded.state.ssse.pin_tries_left == 3
    host.transport.connect()
    host.ok(SELECT_SSSE)
    assert host.send("0020000003000000")[1] == 0x63C2
    assert VirtualCard.load(card.path).state.ssse.pin_tries_left == 2


def test_tearing_during_store_data(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    host = Host(card)
    host.authenticate(0x03)
    install_ssse(host)
    assert host.install_for_perso(SSSE_NAME) == 0x9000
    card.faults.tear_next_write = True
    with pytest.raises(CardTorn):
        host.secure("80E2000005" + "9F0C020303")
    assert VirtualCard.load(card.path).state.ssse.algorithm == 0
    assert card.state.ssse.algorithm == 0


def test_refused_command_changes_nothing(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    host = Host(card)
    host.authenticate(0x03)
    install_ssse(host)
    assert host.install_for_perso(SSSE_NAME) == 0x9000
    image = card.path.read_bytes()
    # first DGI fine, second one malformed: the whole command is refused
    _, sw = host.secure("80E200000A" + "9F0C020303" + "0501" + "02" + "0105")
    assert sw == 0x6A80
    assert card.state.ssse.algorithm == 0 and card.path.read_bytes() == image


def test_mute_card(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    card.power_on()
    card.faults.mute = True
    with pytest.raises(CardMute):
        card.transmit(bytes.fromhex("00A4040000"))
    card.faults.clear()
    assert card.transmit(bytes.fromhex("00A4040000"))[-2:] == b"\x90\x00"


def test_removed_mid_command(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    card.power_on()
    card.faults.remove_after = 2
    card.transmit(bytes.fromhex("00A4040000"))
    card.transmit(bytes.fromhex("00A4040000"))
    with pytest.raises(CardRemoved):
        card.transmit(bytes.fromhex("00A4040000"))
    assert not card.powered
    with pytest.raises(CardRemoved):
        card.power_on()
    card.faults.reinsert()
    assert card.power_on() == card.atr


def test_wrong_atr_and_latency(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    good = card.atr
    card.faults.wrong_atr = bytes.fromhex("3B00")
    assert card.power_on() == bytes.fromhex("3B00")
    card.faults.wrong_atr = None
    assert card.atr == good
    card.faults.latency_per_apdu, card.faults.latency_per_byte = 0.01, 0.001
    assert card.faults.latency(bytes(5), bytes(2)) == pytest.approx(0.017)


def test_unpowered_card_does_not_answer(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    with pytest.raises(CardMute):
        card.transmit(bytes.fromhex("00A4040000"))
    assert isinstance(CardMute("x"), TransportError)


def test_power_cycle_clears_volatile_state(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    assert host.authenticate(0x01) == 0x9000
    host.card.reset()
    # the secure channel is gone: a MACed command is refused
    assert host.secure("80CA00E000")[1] == 0x6982


def test_in_process_transport_shape(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    transport = InProcessTransport(card)
    with pytest.raises(TransportError, match=r"^not connected$"):
        transport.transmit(b"\x00\xa4\x04\x00\x00")
    with transport:
        assert transport.atr == card.atr
        assert transport.transmit(b"\x00\xa4\x04\x00\x00")[-2:] == b"\x90\x00"
    assert not card.powered


def test_bad_images_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("not json")
    with pytest.raises(DataError, match="card image is not JSON") as info:
        VirtualCard.load(path)
    assert info.value.field == "image"
    path.write_text('{"format": "cardperso-vcard/1", "card": {"serial": 5}}')
    with pytest.raises(DataError, match="expected a hex string") as info:
        VirtualCard.load(path)
    assert info.value.field == "card.serial"


def test_fresh_serials_avoid_cards_in_the_directory(tmp_path: Path) -> None:
    VirtualCard.create_blank(tmp_path / "a.json", serial=b"\x00\x00\x00\x01")
    draws = iter([b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"])
    assert fresh_serial(tmp_path, lambda n: next(draws)) == b"\x00\x00\x00\x02"
