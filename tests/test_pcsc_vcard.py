"""Virtual cards (cardperso.card.VirtualCard) behind real PC/SC readers, and the sim CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cardperso.card import VirtualCard
from cardperso.devices import pcsc
from cardperso.devices.pcsc import PcscTransport
from fixtures_pcsc import PRESENCE_TIMEOUT, LabSlot

pytestmark = pytest.mark.pcsc

SELECT_ISD = bytes.fromhex("00A4040008A000000151000000")
GET_CPLC = bytes.fromhex("80CA9F7F00")
ROOT = Path(__file__).parents[1]


def _failed_authentication(t: PcscTransport) -> None:
    """INITIALIZE UPDATE, then EXTERNAL AUTHENTICATE with a wrong host cryptogram (6300)."""
    assert t.transmit(SELECT_ISD)[-2:] == b"\x90\x00"
    assert t.transmit(bytes.fromhex("8050000008") + bytes(8))[-2:] == b"\x90\x00"
    assert t.transmit(bytes.fromhex("8482000010") + bytes(16)) == b"\x63\x00"


def test_state_survives_stopping_and_restarting_the_card(
    pcsc_slot: LabSlot, tmp_path: Path
) -> None:
    path = tmp_path / "card.card"
    card = VirtualCard.create_blank(path, serial=bytes.fromhex("01020304"))
    pcsc_slot.insert(card)
    with PcscTransport(pcsc_slot.name) as t:
        assert t.atr == card.atr
        t.transmit(SELECT_ISD)
        cplc = t.transmit(GET_CPLC)
        assert cplc[-2:] == b"\x90\x00"
        _failed_authentication(t)
    pcsc_slot.remove()
    pcsc_slot.slot.stop()  # the simulator stops ...
    pcsc_slot.slot.start()  # ... and starts again with the card image from disk
    again = VirtualCard.load(path)
    assert again.state.isd.auth_failures == 1
    pcsc_slot.insert(again)
    with PcscTransport(pcsc_slot.name) as t:
        t.transmit(SELECT_ISD)
        assert t.transmit(GET_CPLC) == cplc
        _failed_authentication(t)
    pcsc_slot.remove()
    assert VirtualCard.load(path).state.isd.auth_failures == 2


def _cli(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen(
        [sys.executable, "-m", "cardperso", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


def test_sim_cards_creates_and_serves_blank_cards(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    state = tmp_path / "cards"
    proc = _cli(
        "sim", "cards", "--slots", "1", "--port", str(pcsc_slot.port), "--state", str(state)
    )
    try:
        atr = pcsc.wait_for_card(pcsc_slot.name, 30)
        with PcscTransport(pcsc_slot.name) as t:
            assert t.transmit(SELECT_ISD)[-2:] == b"\x90\x00"
            serial = t.transmit(GET_CPLC)
    finally:
        out = _stop(proc)
    image = state / "card-00.card"
    assert f"created blank card {image}" in out
    card = VirtualCard.load(image)
    assert card.atr == atr
    assert card.serial.hex() in serial.hex()
    pcsc.wait_for_removal(pcsc_slot.name, PRESENCE_TIMEOUT)


def test_sim_serve_serves_stored_images(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    images = tmp_path / "done"
    images.mkdir()
    VirtualCard.create_blank(images / "a.card", serial=bytes.fromhex("A1A2A3A4"))
    proc = _cli("sim", "serve", "--cards", str(images), "--port", str(pcsc_slot.port))
    try:
        pcsc.wait_for_card(pcsc_slot.name, 30)
        with PcscTransport(pcsc_slot.name) as t:
            t.transmit(SELECT_ISD)
            assert "A1A2A3A4" in t.transmit(GET_CPLC).hex().upper()
    finally:
        out = _stop(proc)
    assert "a.card" in out
    pcsc.wait_for_removal(pcsc_slot.name, PRESENCE_TIMEOUT)


def test_sim_serve_without_images_is_a_usage_error(tmp_path: Path) -> None:
    proc = _cli("sim", "serve", "--cards", str(tmp_path), "--port", "35990")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "no card images" in out


def test_sim_cards_writes_reader_entries(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    readers = tmp_path / "readers"
    proc = _cli(
        "sim", "cards", "--slots", "1", "--port", str(pcsc_slot.port),
        "--state", str(tmp_path / "cards"), "--write-readers", str(readers), "--name", "ci",
    )  # fmt: skip
    try:
        pcsc.wait_for_card(pcsc_slot.name, 30)  # served on the lab's port meanwhile
    finally:
        out = _stop(proc)
    entry = readers / f"cardperso-vpcd-{pcsc_slot.port}"
    assert f'FRIENDLYNAME "ci {pcsc_slot.port}"' in entry.read_text()
    assert f"ci {pcsc_slot.port} 00 00  <-  " in out
    assert "(re)start pcscd" in out and str(readers.resolve()) in out
    pcsc.wait_for_removal(pcsc_slot.name, PRESENCE_TIMEOUT)
