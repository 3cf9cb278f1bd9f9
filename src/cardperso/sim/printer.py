"""A simulated Evolis-style card printer: the sans-IO core and a pseudo-terminal front.

The core (:class:`PrinterCore`) answers :class:`~cardperso.devices.evolis.Command` objects with
:class:`~cardperso.devices.evolis.Reply` objects and tells its owner, through
:class:`PrinterEvents`, when a card arrives at the contact station (so a virtual card can be put
in the paired reader slot) and where a card leaves to (output hopper or reject box). It keeps a
feeder of blank cards, the downloaded panels, the magnetic tracks, and models print time.

Faults on demand (``inject``): ribbon out, ribbon broken, card jam, cover open, feeder empty,
reject box full, magnetic write error. A fault makes the matching commands answer NACK until it
is cleared (``clear``), optionally automatically after a number of refused commands, so a test
can check that the host pauses and resumes without losing or duplicating a card.

:class:`PtyPrinter` serves the core on a pty; pyserial opens ``.port`` like a real serial port.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field
from typing import Protocol

from cardperso.devices.evolis import Command, CommandParser, Reply

FAULTS: dict[str, str] = {
    "ribbon_out": "R",
    "ribbon_broken": "R",
    "jam": "T",
    "cover_open": "C",
    "feeder_empty": "F",
    "reject_full": "B",
    "mag_write_error": "W",
}

#: Which commands each fault refuses.
_REFUSES: dict[str, frozenset[str]] = {
    "ribbon_out": frozenset({"Se"}),
    "ribbon_broken": frozenset({"Se"}),
    "jam": frozenset({"Sis", "Sic", "Se", "Ser", "Seb"}),
    "cover_open": frozenset({"Ss", "Sis", "Sic", "Se", "Ser", "Seb", "Smw"}),
    "feeder_empty": frozenset({"Sis", "Sic"}),
    "reject_full": frozenset({"Ser", "Seb"}),
    "mag_write_error": frozenset({"Smw"}),
}


class PrinterEvents(Protocol):
    """What the printer tells the station around it."""

    def card_parked(self, card_number: int, station: str) -> None: ...

    def card_left(self, card_number: int, destination: str, job: PrintJob) -> None: ...


@dataclass
class PrintJob:
    """What was printed and encoded on one card (handed over when the card leaves)."""

    ribbon: str = ""
    panels: dict[tuple[str, str], tuple[int, bytes]] = field(default_factory=dict)
    tracks: dict[int, str] = field(default_factory=dict)
    written_tracks: dict[int, str] = field(default_factory=dict)


class _NoEvents:
    def card_parked(self, card_number: int, station: str) -> None:
        pass

    def card_left(self, card_number: int, destination: str, job: PrintJob) -> None:
        pass


@dataclass
class _Fault:
    name: str
    auto_clear_after: int | None  # refused commands before it clears itself


class PrinterCore:
    """The printer's behaviour, independent of any serial line."""

    def __init__(
        self,
        *,
        feeder: int = 100,
        serial: str = "SIM00001",
        events: PrinterEvents | None = None,
        seconds_per_panel: float = 0.0,
        reject_capacity: int = 100,
    ) -> None:
        self.feeder = feeder
        self.serial = serial
        self.events: PrinterEvents = events or _NoEvents()
        self.seconds_per_panel = seconds_per_panel
        self.reject_capacity = reject_capacity
        self.position = "none"
        self.card: int | None = None
        self.cards_fed = 0
        self.output: list[int] = []
        self.rejected: list[int] = []
        self.job = PrintJob()
        self.side = "front"
        self.coercivity = "h"
        self._faults: dict[str, _Fault] = {}
        self._in_sequence = False
        self.lock = threading.Lock()

    # -- faults ----------------------------------------------------------------------------
    def inject(self, fault: str, *, auto_clear_after: int | None = None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown printer fault {fault!r}; known: {sorted(FAULTS)}")
        self._faults[fault] = _Fault(fault, auto_clear_after)

    def clear(self, fault: str | None = None) -> None:
        if fault is None:
            self._faults.clear()
        else:
            self._faults.pop(fault, None)

    @property
    def faults(self) -> tuple[str, ...]:
        return tuple(sorted(self._faults))

    def _refusal(self, name: str) -> str | None:
        for fault in list(self._faults.values()):
            if name in _REFUSES[fault.name]:
                if fault.auto_clear_after is not None:
                    fault.auto_clear_after -= 1
                    if fault.auto_clear_after < 0:
                        del self._faults[fault.name]
                        continue
                return FAULTS[fault.name]
        if name in ("Ser", "Seb") and len(self.rejected) >= self.reject_capacity:
            return "B"
        if name in ("Sis", "Sic") and self.feeder <= 0:
            return "F"
        return None

    # -- commands --------------------------------------------------------------------------
    def handle(self, cmd: Command) -> Reply:
        with self.lock:
            return self._handle(cmd)

    def _handle(self, cmd: Command) -> Reply:
        name = cmd.name
        if name == "?":
            return Reply(False, code="1")
        code = self._refusal(name)
        if code is not None:
            return Reply(False, code=code)
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            return Reply(False, code="1")
        result: Reply = handler(*cmd.params)
        return result

    def _cmd_Ss(self) -> Reply:
        self._in_sequence = True
        self.job = PrintJob()
        return Reply(True)

    def _feed(self, station: str) -> Reply:
        if self.card is not None:
            if self.position == station:
                return Reply(True)  # already parked there (idempotent re-send)
            return Reply(False, code="2")
        self.feeder -= 1
        self.cards_fed += 1
        self.card = self.cards_fed
        self.position = station
        self.events.card_parked(self.card, station)
        return Reply(True)

    def _cmd_Sis(self) -> Reply:
        return self._feed("contact")

    def _cmd_Sic(self) -> Reply:
        return self._feed("contactless")

    def _leave(self, destination: str) -> Reply:
        if self.card is None:
            return Reply(False, code="2")
        card, job = self.card, self.job
        (self.output if destination == "output" else self.rejected).append(card)
        self.card, self.position, self.job = None, "none", PrintJob()
        self._in_sequence = False
        self.events.card_left(card, destination, job)
        return Reply(True)

    def _cmd_Se(self) -> Reply:
        if self.card is None:
            return Reply(False, code="2")
        if self.seconds_per_panel and self.job.panels:
            time.sleep(self.seconds_per_panel * len(self.job.panels))
        self.position = "print"
        return self._leave("output")

    def _cmd_Ser(self) -> Reply:
        return self._leave("reject")

    _cmd_Seb = _cmd_Ser

    def _cmd_Sr(self) -> Reply:
        self.side = "front"
        return Reply(True)

    def _cmd_Sv(self) -> Reply:
        self.side = "back"
        return Reply(True)

    def _cmd_Pr(self, ribbon: bytes) -> Reply:
        if ribbon not in (b"ymcko", b"k", b"ko", b"ymckok", b"kr"):
            return Reply(False, code="2")
        self.job.ribbon = ribbon.decode()
        return Reply(True)

    def _cmd_Db(self, panel: bytes, levels: bytes, data: bytes) -> Reply:
        if panel not in (b"y", b"m", b"c", b"k", b"o"):
            return Reply(False, code="2")
        self.job.panels[(self.side, panel.decode())] = (int(levels), data)
        return Reply(True)

    def _cmd_Dm(self, track: bytes, data: bytes) -> Reply:
        if track not in (b"1", b"2", b"3"):
            return Reply(False, code="2")
        limits = {1: 79, 2: 40, 3: 107}
        number = int(track)
        text = data.decode("ascii", "replace")
        if len(text) > limits[number]:
            return Reply(False, code="D")
        self.job.tracks[number] = text
        return Reply(True)

    def _cmd_Smw(self) -> Reply:
        if self.card is None:
            return Reply(False, code="2")
        self.job.written_tracks = dict(self.job.tracks)
        return Reply(True)

    def _cmd_Smr(self, track: bytes) -> Reply:
        if self.card is None or not track.isdigit():
            return Reply(False, code="2")
        return Reply(True, self.job.written_tracks.get(int(track), ""))

    def _cmd_Pmc(self, level: bytes) -> Reply:
        if level not in (b"h", b"l"):
            return Reply(False, code="2")
        self.coercivity = level.decode()
        return Reply(True)

    def _cmd_Rfv(self) -> Reply:
        return Reply(True, "SIM-1.0")

    def _cmd_Rsn(self) -> Reply:
        return Reply(True, self.serial)

    def _cmd_Rtp(self) -> Reply:
        return Reply(True, "cardperso simulated printer")

    def _cmd_Rlr(self, _what: bytes) -> Reply:
        return Reply(True, self.position)

    def _cmd_Rse(self, *_args: bytes) -> Reply:
        cover = "open" if "cover_open" in self._faults else "closed"
        ribbon = "out" if {"ribbon_out", "ribbon_broken"} & set(self._faults) else "ok"
        value = (
            f"cover={cover},feeder={self.feeder},card={self.position},ribbon={ribbon},"
            f"rejects={len(self.rejected)}/{self.reject_capacity}"
        )
        return Reply(True, value)

    def _cmd_Srs(self) -> Reply:
        self.side = "front"
        return Reply(True)

    def _cmd_Sp(self) -> Reply:
        return Reply(True)


class PtyPrinter:
    """Serves a :class:`PrinterCore` on a pseudo-terminal; ``port`` is the path to open."""

    def __init__(self, core: PrinterCore) -> None:
        self.core = core
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"printer-{core.serial}", daemon=True
        )

    def start(self) -> PtyPrinter:
        self._thread.start()
        return self

    #: A command left incomplete this long is dropped (its sender went away mid-command).
    RECEIVE_TIMEOUT = 0.5

    def _run(self) -> None:
        parser = CommandParser()
        last = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                if parser.pending and time.monotonic() - last > self.RECEIVE_TIMEOUT:
                    parser.reset()
                continue
            last = time.monotonic()
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            for cmd in parser.feed(data):
                reply = self.core.handle(cmd)
                os.write(self._master, reply.to_bytes())

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyPrinter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
