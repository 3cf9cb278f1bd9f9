"""The vpcd bridge: serve card objects in the slots of vpcd virtual readers (pcscd + vpcd).

How this works
--------------
vpcd is a pcscd reader driver: each of its reader slots *listens* on a TCP port, and the card
program (this module) *connects* to it. A connected program is a card in the reader; closing
the connection takes the card out. Every message, both ways, is a 2-byte big-endian length then
the payload. A 1-byte payload from vpcd is a control byte (``00`` power off, ``01`` power on,
``02`` reset, ``04`` get ATR: the card answers its ATR); a longer payload is a command APDU and
the card answers with the response APDU (data || SW1 SW2). pcscd polls card presence about
every 400 ms with a get-ATR control message.

One :class:`Slot` = one reader slot = one port = one thread. A slot can be empty; a card is put
in with :meth:`Slot.insert` and taken out with :meth:`Slot.remove` at any time, even in the
middle of a command (the printer simulator moves cards in and out of the contact station this
way). The card object is used only by the slot's thread while it is inserted; ``remove``
returns once that thread has let go of it (never share one card between two slots).

The card is sans-IO (see :class:`CardLike`); faults are the card's (:mod:`cardperso.card.faults`)
and this bridge turns them into what a reader would see:

* ``CardMute`` from ``transmit``: no answer. After the reader's waiting time
  (``reader_timeout``) the bridge drops the connection, as a real reader gives up on a mute
  card; pcscd reports a failed transmission. The card stays in the slot and reconnects.
* ``CardRemoved``: the connection is closed in the middle of the command; while
  ``card.faults.removed`` stays true the slot looks empty (a presence poll also notices a
  card removed while idle), and the card comes back by itself once the fault is cleared
  (``card.faults.reinsert()``).
* ``CardTorn`` (power lost during a write): the connection is closed and the card stays away
  for ``REMOVAL_VISIBLE`` seconds, so that pcscd sees it go and come back and powers it up.
* ``card.faults.latency(command, response)`` seconds are slept before each answer.

Latency: a plain socket costs ~48 ms per APDU because of delayed ACKs against vpcd's split
writes. The bridge sets ``TCP_NODELAY`` and re-arms ``TCP_QUICKACK`` before and after every
receive, which brings a round trip through pcscd to ~0.08 ms (docs/virtual-readers.md).

If pcscd (and so vpcd) stops or restarts, the connection breaks: the slot powers its card off
and reconnects as soon as the port listens again.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from cardperso.card.faults import CardMute
from cardperso.errors import TransportError, UsageError

log = logging.getLogger(__name__)

#: vpcd control bytes (vsmartcard's vpcd.h).
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0x00, 0x01, 0x02, 0x04

DEFAULT_HOST = "127.0.0.1"
#: How long a real reader waits for a mute card before it reports an error (seconds).
DEFAULT_READER_TIMEOUT = 1.0
#: Pause between connection attempts while vpcd's port is closed (pcscd not running),
#: doubling up to the maximum.
RECONNECT_INTERVAL = 0.02
RECONNECT_MAX_INTERVAL = 0.25

_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class CardLike(Protocol):
    """What a slot needs from a card (:class:`cardperso.card.VirtualCard` has this shape).

    ``faults`` is optional; when present it is a :class:`~cardperso.card.faults.FaultPlan`
    (``removed`` flag and ``latency(command, response)``).
    """

    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    def reset(self) -> bytes: ...

    def transmit(self, apdu: bytes) -> bytes: ...


def _faults_removed(card: CardLike) -> bool:
    faults = getattr(card, "faults", None)
    return bool(getattr(faults, "removed", False))


def _latency(card: CardLike, command: bytes, response: bytes) -> float:
    faults = getattr(card, "faults", None)
    latency = getattr(faults, "latency", None)
    if latency is None:
        return 0.0
    return float(latency(command, response))


#: How long a card that lost power (tearing) stays away so that pcscd's presence poll sees it
#: go and come back (and powers it up again).
REMOVAL_VISIBLE = 0.6


class _Disconnect(Exception):
    """Internal: end this connection (card removed, mute timeout, vpcd gone, slot stopped).

    ``keep_power``: the card stays powered (a mute card: vpcd drops it silently and accepts
    the reconnection without pcscd noticing). ``linger``: seconds to stay disconnected.
    """

    def __init__(self, reason: str, *, keep_power: bool = False, linger: float = 0.0) -> None:
        super().__init__(reason)
        self.keep_power = keep_power
        self.linger = linger


class Slot:
    """One vpcd reader slot served by one thread (see the module docstring).

    ``name`` is the PC/SC reader name when known (for messages and for the tests' lab).
    """

    def __init__(
        self,
        port: int,
        card: CardLike | None = None,
        *,
        host: str = DEFAULT_HOST,
        name: str | None = None,
        reader_timeout: float = DEFAULT_READER_TIMEOUT,
    ) -> None:
        if not 0 < port < 65536:
            raise UsageError(f"bad vpcd port {port}")
        self.port = port
        self.host = host
        self.name = name or f"vpcd slot on port {port}"
        self.reader_timeout = reader_timeout
        self._card = card
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        #: Set by remove()/stop() to cut short a latency or mute wait.
        self._interrupt = threading.Event()
        #: The card the slot thread is using (connected or connecting), None when idle.
        self._holding: CardLike | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        #: Number of command APDUs answered and of connections made (for tests and stats).
        self.apdus = 0
        self.connections = 0
        self._connected = threading.Event()

    def __repr__(self) -> str:
        return f"Slot(port={self.port}, name={self.name!r}, card={'yes' if self._card else 'no'})"

    # -- the card in the slot --------------------------------------------------------------

    @property
    def card(self) -> CardLike | None:
        """The card in the slot (``None`` when empty)."""
        return self._card

    def insert(self, card: CardLike) -> None:
        """Put ``card`` in the slot (replaces nothing: the slot must be empty)."""
        with self._lock:
            if self._card is not None:
                raise UsageError(f"{self.name}: slot already holds a card")
            self._card = card
            self._changed.notify_all()

    def remove(self, timeout: float = 5.0) -> CardLike | None:
        """Take the card out (closing its connection, even mid-command); returns it.

        Returns once the slot thread has let go of the card (disconnected, powered off), so
        the caller may use the card elsewhere at once.
        """
        with self._lock:
            card, self._card = self._card, None
            self._interrupt.set()
            self._shutdown_socket()
            self._changed.notify_all()
            deadline = time.monotonic() + timeout
            while card is not None and self._holding is card:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportError(f"{self.name}: the slot did not release its card")
                self._changed.wait(left)
        return card

    @property
    def connected(self) -> bool:
        """True while the card is connected to vpcd (pcscd sees a card in the reader)."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the card is connected to vpcd; False on timeout."""
        return self._connected.wait(timeout)

    # -- thread life -----------------------------------------------------------------------

    def start(self) -> Slot:
        if self._thread is not None:
            raise UsageError(f"{self.name}: already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"vpcd-slot-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: the connection is closed, the card powered off (it stays in the slot)."""
        self._stop.set()
        self._interrupt.set()
        with self._lock:
            self._shutdown_socket()
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Slot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _shutdown_socket(self) -> None:
        # Called with the lock held: wakes the slot thread out of recv().
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        while not self._stop.is_set():
            card = self._wait_for_card()
            if card is None:
                return
            try:
                self._connect_and_serve(card)
            finally:
                with self._lock:
                    self._holding = None
                    self._changed.notify_all()

    def _connect_and_serve(self, card: CardLike) -> None:
        with self._lock:
            self._holding = card
            self._interrupt.clear()
        sock = self._connect(card)
        if sock is None:
            return
        keep_power, linger = False, 0.0
        try:
            self._serve(sock, card)
        except _Disconnect as exc:
            log.debug("%s: connection ended: %s", self.name, exc)
            keep_power, linger = exc.keep_power, exc.linger
        except OSError as exc:
            log.debug("%s: connection lost: %s", self.name, exc)
        finally:
            self._connected.clear()
            with self._lock:
                self._sock = None
            # Power goes before the contacts: the card is off once vpcd sees it gone.
            if not keep_power or self._card is not card or self._stop.is_set():
                with contextlib.suppress(Exception):
                    card.power_off()
            sock.close()
        if linger > 0:
            self._interrupt.wait(linger)

    def _wait_for_card(self) -> CardLike | None:
        """Block until the slot holds a card that is not removed (or the slot stops)."""
        with self._lock:
            while not self._stop.is_set():
                card = self._card
                if card is not None and not _faults_removed(card):
                    return card
                # A card "removed" by its fault plan comes back when the fault clears: poll.
                self._changed.wait(0.02 if card is not None else None)
        return None

    def _connect(self, card: CardLike) -> socket.socket | None:
        pause = RECONNECT_INTERVAL
        while not self._stop.is_set():
            with self._lock:
                if self._card is not card:
                    return None
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError:
                self._interrupt.wait(pause)
                pause = min(pause * 2, RECONNECT_MAX_INTERVAL)
                continue
            if sock.getsockname() == sock.getpeername():
                # TCP self-connect: the port is in the ephemeral range and nothing listens, so
                # the kernel gave us that very port; holding it would keep vpcd from binding it.
                sock.close()
                self._interrupt.wait(pause)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._card is not card or self._stop.is_set():
                    sock.close()
                    return None
                self._sock = sock
            self.connections += 1
            self._connected.set()
            log.debug("%s: connected to vpcd", self.name)
            return sock
        return None

    # -- one connection --------------------------------------------------------------------

    def _serve(self, sock: socket.socket, card: CardLike) -> None:
        for message in iter_frames(sock):
            if self._card is not card:
                raise _Disconnect("card taken out")
            if len(message) == 1:
                self._control(sock, card, message[0])
                continue
            try:
                response = card.transmit(message)
            except CardMute:
                # No answer: a reader gives up after its waiting time, then so do we.
                if self._interrupt.wait(self.reader_timeout):
                    raise _Disconnect("interrupted") from None
                raise _Disconnect("mute card: reader timeout", keep_power=True) from None
            except TransportError as exc:
                # Removed (the slot then waits for faults.removed to clear) or torn: a torn
                # card stays away long enough for pcscd to see it go and power it up again.
                linger = 0.0 if _faults_removed(card) else REMOVAL_VISIBLE
                raise _Disconnect(f"card fault: {exc}", linger=linger) from None
            delay = _latency(card, message, response)
            if delay > 0 and self._interrupt.wait(delay):
                raise _Disconnect("interrupted")
            if self._card is not card:
                raise _Disconnect("card taken out")
            self.apdus += 1
            _send(sock, response)

    def _control(self, sock: socket.socket, card: CardLike, code: int) -> None:
        try:
            if code == CTRL_ATR:
                if _faults_removed(card):
                    raise _Disconnect("card removed")
                _send(sock, card.atr)
            elif code == CTRL_ON:
                card.power_on()
            elif code == CTRL_RESET:
                card.reset()
            elif code == CTRL_OFF:
                card.power_off()
            else:
                log.warning("%s: unknown vpcd control byte %02X ignored", self.name, code)
        except TransportError as exc:
            linger = 0.0 if _faults_removed(card) else REMOVAL_VISIBLE
            raise _Disconnect(f"card fault: {exc}", linger=linger) from None


def _quickack(sock: socket.socket) -> None:
    if _TCP_QUICKACK is not None:
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


def iter_frames(sock: socket.socket) -> Iterator[bytes]:
    """Messages from vpcd (length-prefixed, however TCP splits or joins them); ends at EOF.

    ``TCP_QUICKACK`` is re-armed before and after every receive (Linux clears it by itself).
    """
    buf = bytearray()
    while True:
        while len(buf) >= 2:
            size = int.from_bytes(buf[:2], "big")
            if len(buf) < 2 + size:
                break
            message = bytes(buf[2 : 2 + size])
            del buf[: 2 + size]
            yield message
        _quickack(sock)
        chunk = sock.recv(65536)
        _quickack(sock)
        if not chunk:
            return
        buf += chunk


def _send(sock: socket.socket, payload: bytes) -> None:
    if len(payload) > 0xFFFF:
        raise _Disconnect("response longer than the vpcd frame allows")
    sock.sendall(len(payload).to_bytes(2, "big") + payload)


class SlotGroup:
    """Several slots started and stopped together (ports ``port``, ``port + 1``, ...)."""

    def __init__(self, slots: Sequence[Slot]) -> None:
        self.slots = list(slots)

    @classmethod
    def on_ports(
        cls,
        port: int,
        cards: Iterable[CardLike | None],
        *,
        names: Sequence[str] | None = None,
        reader_timeout: float = DEFAULT_READER_TIMEOUT,
    ) -> SlotGroup:
        slots = []
        for i, card in enumerate(cards):
            name = names[i] if names is not None else None
            slots.append(Slot(port + i, card, name=name, reader_timeout=reader_timeout))
        return cls(slots)

    def start(self) -> SlotGroup:
        for slot in self.slots:
            slot.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        for slot in self.slots:
            slot.stop(timeout)

    def __enter__(self) -> SlotGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
