"""The vpcd bridge on the wire: a test peer plays vpcd's side of the protocol.

The peer speaks exactly what vpcd sends (vsmartcard's vpcd.c: 2-byte big-endian length, then
a control byte or an APDU), so these tests cover what pcscd cannot be made to do on demand:
vpcd going away and coming back, frames split or pipelined, the mute-card reader timeout.
The same behaviours through the real pcscd + vpcd are in test_pcsc_transport.py.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.errors import UsageError
from cardperso.sim.vpcd import (
    CTRL_ATR,
    CTRL_OFF,
    CTRL_ON,
    CTRL_RESET,
    Slot,
    SlotGroup,
    iter_frames,
)
from fixtures_pcsc import PRESENCE_TIMEOUT, EchoCard


class Peer:
    """vpcd's end: listens, accepts the card program, sends frames, reads answers."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self, timeout: float = 5.0) -> bool:
        self.server.settimeout(timeout)
        try:
            self.conn, _ = self.server.accept()
        except TimeoutError:
            return False
        self.conn.settimeout(5.0)
        return True

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(len(payload).to_bytes(2, "big") + payload)

    def recv_exact(self, n: int) -> bytes:
        assert self.conn is not None
        out = b""
        while len(out) < n:
            chunk = self.conn.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def recv(self) -> bytes:
        size = int.from_bytes(self.recv_exact(2), "big")
        return self.recv_exact(size)

    def ask(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.recv()

    def closed_by_card(self, timeout: float = 5.0) -> bool:
        assert self.conn is not None
        self.conn.settimeout(timeout)
        try:
            return self.conn.recv(1) == b""
        except ConnectionResetError:
            return True

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self.server.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    try:
        yield p
    finally:
        p.close()


def test_control_bytes_and_apdus(peer: Peer) -> None:
    card = EchoCard()
    with Slot(peer.port, card):
        assert peer.accept()
        assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR
        assert not card.powered
        peer.send(bytes([CTRL_ON]))
        assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR
        assert card.powered and card.power_ons == 1
        assert peer.ask(bytes.fromhex("00A4040002AABB")) == bytes.fromhex("AABB9000")
        peer.send(bytes([CTRL_RESET]))
        assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR
        assert card.power_ons == 2
        peer.send(bytes([CTRL_OFF]))
        assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR
        assert not card.powered
        peer.send(bytes([0x7F]))  # unknown control byte: ignored, the link stays up
        assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR


def test_split_and_pipelined_frames(peer: Peer) -> None:
    card = EchoCard()
    with Slot(peer.port, card):
        assert peer.accept()
        assert peer.conn is not None
        frame = b"\x00\x07" + bytes.fromhex("80E2000002CAFE")
        for b in frame:  # one byte per segment
            peer.conn.sendall(bytes([b]))
            time.sleep(0.001)
        assert peer.recv() == bytes.fromhex("CAFE9000")
        peer.conn.sendall(b"\x00\x01\x04" * 3 + frame)  # four frames in one segment
        assert [peer.recv() for _ in range(4)] == [EchoCard.ATR] * 3 + [bytes.fromhex("CAFE9000")]


def test_reconnects_when_vpcd_restarts(peer: Peer) -> None:
    card = EchoCard()
    with Slot(peer.port, card) as slot:
        assert peer.accept()
        peer.send(bytes([CTRL_ON]))
        assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR
        peer.drop()  # pcscd stopped
        assert peer.accept()  # ... and started again: the card is back
        assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR
        assert not card.powered  # a restarted reader powers the card up itself
        assert slot.connections == 2


def test_waits_for_vpcd_to_listen() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    card = EchoCard()
    with Slot(port, card) as slot:
        time.sleep(0.2)  # nothing listens yet: the slot keeps trying
        assert not slot.connected
        late = Peer(port)
        try:
            assert late.accept()
            assert late.ask(bytes([CTRL_ATR])) == EchoCard.ATR
            assert slot.wait_connected(PRESENCE_TIMEOUT)
        finally:
            late.close()


def test_latency_from_the_fault_plan(peer: Peer) -> None:
    card = EchoCard()
    card.faults.latency_per_apdu = 0.05
    card.faults.latency_per_byte = 0.001
    apdu = bytes.fromhex("80E2000002CAFE")
    expected = card.faults.latency(apdu, bytes.fromhex("CAFE9000"))
    with Slot(peer.port, card):
        assert peer.accept()
        peer.send(bytes([CTRL_ON]))
        started = time.monotonic()
        assert peer.ask(apdu) == bytes.fromhex("CAFE9000")
        assert time.monotonic() - started >= expected  # a lower bound: the bridge slept


def test_mute_card_gets_the_reader_timeout_then_reconnects(peer: Peer) -> None:
    card = EchoCard()
    with Slot(peer.port, card, reader_timeout=0.1) as slot:
        assert peer.accept()
        peer.send(bytes([CTRL_ON]))
        card.faults.mute = True
        peer.send(bytes.fromhex("00A4040002AABB"))
        assert peer.closed_by_card()  # no answer; the reader gave up
        peer.drop()
        assert peer.accept()  # still in the reader, still powered
        assert card.powered
        card.faults.mute = False
        assert peer.ask(bytes.fromhex("00A4040002AABB")) == bytes.fromhex("AABB9000")
        assert slot.apdus == 1


def test_remove_and_insert(peer: Peer) -> None:
    card = EchoCard()
    with Slot(peer.port, card) as slot:
        assert peer.accept()
        peer.send(bytes([CTRL_ON]))
        assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR
        assert slot.remove() is card
        assert peer.closed_by_card()
        assert not card.powered
        peer.drop()
        assert not peer.accept(timeout=0.3)  # an empty slot does not connect
        other = EchoCard(atr=bytes.fromhex("3B00"))
        slot.insert(other)
        with pytest.raises(UsageError, match="already holds"):
            slot.insert(card)
        assert peer.accept()
        assert peer.ask(bytes([CTRL_ATR])) == bytes.fromhex("3B00")


def test_removed_fault_takes_the_card_out_until_reinserted(peer: Peer) -> None:
    card = EchoCard()
    with Slot(peer.port, card) as slot:
        assert peer.accept()
        peer.send(bytes([CTRL_ON]))
        card.faults.remove_after = 0
        peer.send(bytes.fromhex("00A4040002AABB"))
        assert peer.closed_by_card()  # removed in the middle of the command
        peer.drop()
        assert not peer.accept(timeout=0.3)
        assert slot.card is card  # still "in the slot", but out of the reader
        card.faults.reinsert()
        assert peer.accept()
        assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR
        # The presence poll notices a card removed while idle.
        card.faults.removed = True
        peer.send(bytes([CTRL_ATR]))
        assert peer.closed_by_card()


def test_stop_closes_and_powers_off(peer: Peer) -> None:
    card = EchoCard()
    slot = Slot(peer.port, card).start()
    assert peer.accept()
    peer.send(bytes([CTRL_ON]))
    assert peer.ask(bytes([CTRL_ATR])) == EchoCard.ATR
    slot.stop()
    assert peer.closed_by_card()
    assert not card.powered
    assert slot.card is card


def test_slot_group_ports() -> None:
    group = SlotGroup.on_ports(40000, [EchoCard(), None, EchoCard()], names=["a", "b", "c"])
    assert [(s.port, s.name, s.card is None) for s in group.slots] == [
        (40000, "a", False),
        (40001, "b", True),
        (40002, "c", False),
    ]
    with pytest.raises(UsageError, match="bad vpcd port 0"):
        Slot(0)


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair on localhost (the bridge sets TCP options on its socket)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        a = socket.create_connection(server.getsockname())
        b, _ = server.accept()
    return a, b


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    cuts=st.lists(st.integers(1, 64), max_size=40),
    trailing=st.binary(max_size=3),
)
def test_frames_however_tcp_splits_them(
    messages: list[bytes], cuts: list[int], trailing: bytes
) -> None:
    """Frames fed whole, in arbitrary pieces, and with a truncated frame at the end."""
    stream = b"".join(len(m).to_bytes(2, "big") + m for m in messages)
    a, b = _tcp_pair()
    try:
        pos = 0
        for cut in [*cuts, len(stream)]:
            piece = stream[pos : pos + cut]
            if piece:
                a.sendall(piece)
            pos += len(piece)
        a.sendall(trailing[:1])  # at most one byte of a next length: never a whole frame
        a.shutdown(socket.SHUT_WR)
        assert list(iter_frames(b)) == messages
    finally:
        a.close()
        b.close()
