"""PcscTransport through the real stack: pyscard -> pcscd -> vpcd -> our bridge -> a card object."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cardperso.devices import pcsc
from cardperso.devices.pcsc import (
    ApduTrace,
    CardRemoved,
    CardReset,
    MuteCard,
    NoCard,
    PcscTransport,
    ReaderUnavailable,
    UnsupportedCard,
)
from cardperso.errors import TransportError, UsageError
from fixtures_pcsc import PRESENCE_TIMEOUT, EchoCard, LabSlot, PcscLab, T0Card

pytestmark = pytest.mark.pcsc

SELECT = bytes.fromhex("00A4040008A000000151000000")


def test_power_on_and_atr_seen_by_pyscard(pcsc_slot: LabSlot) -> None:
    card = EchoCard()
    pcsc_slot.insert(card)
    assert card.powered and card.power_ons >= 1
    listed = {r.name: r for r in pcsc.list_readers()}
    assert listed[pcsc_slot.name].card_present
    assert listed[pcsc_slot.name].atr == EchoCard.ATR
    with PcscTransport(pcsc_slot.name) as t:
        assert t.atr == EchoCard.ATR
        assert t.protocol == "T=1"  # the ATR's TD1 offers T=1


def test_apdus_round_trip(pcsc_slot: LabSlot) -> None:
    card = EchoCard()
    pcsc_slot.insert(card)
    with PcscTransport(pcsc_slot.name) as t:
        assert t.transmit(SELECT) == bytes.fromhex("A000000151000000") + b"\x90\x00"
        for size in (0, 1, 128, 255):
            data = bytes((i * 7) & 0xFF for i in range(size))
            apdu = bytes([0x80, 0xE2, 0x00, 0x00, size]) + data if size else b"\x80\xca\x9f\x7f"
            assert t.transmit(apdu) == data + b"\x90\x00"
    assert card.commands[0] == SELECT
    assert len(card.commands) == 5


def test_t0_card_and_protocol_choice(pcsc_slot: LabSlot) -> None:
    pcsc_slot.insert(T0Card())  # ATR 3B68...: no TD1, so T=0 only
    with PcscTransport(pcsc_slot.name) as t:
        assert t.protocol == "T=0"
    with PcscTransport(pcsc_slot.name, protocol="T=0") as t:
        assert t.protocol == "T=0"
    t = PcscTransport(pcsc_slot.name, protocol="T=1")
    with pytest.raises(UnsupportedCard, match="T=0/T=1"):
        t.connect()
    t.disconnect()
    with pytest.raises(UsageError, match="protocol must be one of any, T=0, T=1"):
        PcscTransport(pcsc_slot.name, protocol="T=2")


def test_unusable_atr(pcsc_slot: LabSlot) -> None:
    card = EchoCard()
    card.faults.wrong_atr = b"\xff"  # not an ATR (TS must be 3B or 3F)
    pcsc_slot.insert(card)
    t = PcscTransport(pcsc_slot.name)
    with pytest.raises(UnsupportedCard, match="ATR offers none of the requested protocols"):
        t.connect()
    t.disconnect()


def test_no_card(pcsc_slot: LabSlot) -> None:
    t = PcscTransport(pcsc_slot.name)
    with pytest.raises(NoCard, match="no card"):
        t.connect()
    t.disconnect()
    with pytest.raises(NoCard, match="no card arrived"):
        t.connect(timeout=0.2)
    t.disconnect()


def test_unknown_reader(pcsc_lab: PcscLab) -> None:
    # with pcscd running (the lab): the reader name is what is refused, not the daemon
    with pytest.raises(TransportError, match=r"^no such reader 00 00: connect: no such reader$"):
        PcscTransport("no such reader 00 00").connect()


def test_connect_waits_for_the_card(pcsc_slot: LabSlot) -> None:
    card = EchoCard()
    timer = threading.Timer(0.2, pcsc_slot.slot.insert, (card,))
    timer.start()
    t = PcscTransport(pcsc_slot.name)
    try:
        assert t.connect(timeout=5) == EchoCard.ATR
    finally:
        t.disconnect()
        timer.join()


def test_get_response_and_wrong_le(pcsc_slot: LabSlot) -> None:
    pcsc_slot.insert(T0Card())
    traces: list[ApduTrace] = []
    with PcscTransport(pcsc_slot.name, trace=traces.append) as t:
        # 6C10 -> re-sent with Le = 10
        assert t.transmit(bytes.fromhex("80CA000000")) == T0Card.RECORD + b"\x90\x00"
        assert [x.command for x in traces] == ["80CA000000", "80CA000010"]
        assert traces[0].response == "6C10"
        # Extended-length commands are not re-sent (6Cxx is a short-APDU convention).
        assert t.transmit(bytes.fromhex("80CA0000000000")) == bytes.fromhex("6C10")
        # 61xx -> GET RESPONSE until 9000, data concatenated
        traces.clear()
        data = bytes(range(20))
        assert t.transmit(bytes([0x80, 0xCB, 0, 0, len(data)]) + data) == data[::-1] + b"\x90\x00"
        assert [x.command[:8] for x in traces] == ["80CB0000", "00C00000", "00C00000", "00C00000"]
        assert [x.response[-4:] for x in traces] == ["6107", "6107", "6106", "9000"]


def test_card_removed_between_commands(pcsc_slot: LabSlot) -> None:
    pcsc_slot.insert(EchoCard())
    with PcscTransport(pcsc_slot.name) as t:
        t.transmit(SELECT)
        pcsc_slot.remove(wait=False)
        with pytest.raises(CardRemoved, match="removed"):
            t.transmit(SELECT)


def test_card_removed_after_pcscd_noticed(pcsc_slot: LabSlot) -> None:
    pcsc_slot.insert(EchoCard())
    with PcscTransport(pcsc_slot.name) as t:
        pcsc_slot.remove()
        with pytest.raises(CardRemoved):
            t.transmit(SELECT)


def test_card_removed_mid_command(pcsc_slot: LabSlot) -> None:
    card = EchoCard()
    pcsc_slot.insert(card)
    with PcscTransport(pcsc_slot.name) as t:
        card.faults.remove_after = 1
        assert t.transmit(SELECT)[-2:] == b"\x90\x00"
        with pytest.raises(CardRemoved):
            t.transmit(SELECT)
    assert len(card.commands) == 1
    # The fault cleared, the card is back in the reader by itself.
    card.faults.reinsert()
    assert pcsc.wait_for_card(pcsc_slot.name, PRESENCE_TIMEOUT) == EchoCard.ATR
    with PcscTransport(pcsc_slot.name) as t:
        assert t.transmit(SELECT)[-2:] == b"\x90\x00"


def test_mute_card(pcsc_slot: LabSlot) -> None:
    card = EchoCard()
    pcsc_slot.insert(card)
    with PcscTransport(pcsc_slot.name, removal_grace=0.5) as t:
        card.faults.mute = True
        with pytest.raises(MuteCard, match="did not answer"):
            t.transmit(SELECT)
        assert isinstance(MuteCard("x"), TransportError)


def test_reset_by_another_connection(pcsc_slot: LabSlot) -> None:
    card = EchoCard()
    pcsc_slot.insert(card)
    with PcscTransport(pcsc_slot.name) as t:
        t.transmit(SELECT)
        before = card.power_ons
        with PcscTransport(pcsc_slot.name) as other:
            assert other.reset() == EchoCard.ATR
        assert card.power_ons == before + 1
        with pytest.raises(CardReset, match="reset"):
            t.transmit(SELECT)
        # Our own reset brings the session back.
        assert t.reset() == EchoCard.ATR
        assert t.transmit(SELECT)[-2:] == b"\x90\x00"


def test_exclusive_access(pcsc_slot: LabSlot) -> None:
    pcsc_slot.insert(EchoCard())
    with PcscTransport(pcsc_slot.name, exclusive=True) as t:
        other = PcscTransport(pcsc_slot.name)
        with pytest.raises(ReaderUnavailable, match="another program"):
            other.connect()
        other.disconnect()
        assert t.transmit(SELECT)[-2:] == b"\x90\x00"
    with PcscTransport(pcsc_slot.name) as t:  # released
        assert t.transmit(SELECT)[-2:] == b"\x90\x00"


def test_connection_belongs_to_its_thread(pcsc_slot: LabSlot) -> None:
    pcsc_slot.insert(EchoCard())
    errors: list[BaseException] = []
    with PcscTransport(pcsc_slot.name) as t:

        def other() -> None:
            try:
                t.transmit(SELECT)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        assert len(errors) == 1 and isinstance(errors[0], UsageError)
        assert t.transmit(SELECT)[-2:] == b"\x90\x00"


def test_parallel_transports_one_per_thread(pcsc_lab: PcscLab) -> None:
    """One worker per reader, each with its own connection (the line's model)."""
    free = [s for s in pcsc_lab.slots if s.card is None][:4]
    cards = [EchoCard() for _ in free]
    for s, c in zip(free, cards, strict=True):
        s.insert(c)
    results: dict[str, int] = {}

    def worker(slot: LabSlot) -> None:
        with PcscTransport(slot.name) as t:
            n = 0
            for i in range(200):
                apdu = bytes([0x80, 0xE2, 0, 0, 2, i & 0xFF, slot.port & 0xFF])
                assert t.transmit(apdu) == apdu[5:] + b"\x90\x00"
                n += 1
            results[slot.name] = n

    try:
        threads = [threading.Thread(target=worker, args=(s,)) for s in free]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert results == {s.name: 200 for s in free}
        # Each card got exactly its own reader's commands.
        for s, c in zip(free, cards, strict=True):
            assert {cmd[6] for cmd in c.commands} == {s.port & 0xFF}
    finally:
        for s in free:
            s.remove()


def test_readers_cli_lists_cards(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    pcsc_slot.insert(EchoCard())
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    out = subprocess.run(
        [sys.executable, "-m", "cardperso", "readers"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith(pcsc_slot.name))
    assert "ATR " + EchoCard.ATR.hex().upper() in line
