"""The simulated line: printers on ptys and virtual cards behind real pcscd + vpcd readers.

Each simulated station is a :class:`~cardperso.sim.printer.PrinterCore` served on a pty
(the line opens it with pyserial like a real port) whose contact station is a vpcd reader slot.
When the printer parks a card, a blank :class:`~cardperso.card.vcard.VirtualCard` (its issuer
security domain holding the card vendor's transport key: ``transport_key``, the GP test key by
default) is created in ``DIR/stations/NAME/`` and inserted into the slot; when the card leaves, it is taken out of the
slot and its image moves to ``DIR/output/`` (with the printed face as PNG and the magnetic
tracks as JSON) or ``DIR/rejects/``.

The hopper (``chips``) holds GP cards (``gp``) and/or native-COS chips (``native`` SM4,
``native-3des``; :class:`~cardperso.card.native.NativeCard`, whose transport key is the given
master diversified by the chip serial), fed in the order given, repeated: ``("gp", "native")``
alternates them.

Faults (``--faults``) are a comma-separated list of ``STATION:FAULT@CARD``, the fault applying
to the CARD-th card fed at that station (1-based): card faults ``mute``, ``removed`` (pulled out
in the middle of STORE DATA), ``tear`` (power lost during a write), ``wrong_atr``,
``wrong_transport_key`` (the blank carries another transport key), and for native chips
``tear_create`` / ``tear_key`` (power lost during the first CREATE FILE / WRITE KEY; on a GP
card: the first write) and ``bad_mac`` (the first line-protected command's MAC arrives with a
bit flipped, as after a line fault); printer
faults ``ribbon_out``, ``ribbon_broken``, ``jam``, ``cover_open``, ``feeder_empty``,
``reject_full``, ``mag_write_error`` (injected when that card is parked; they clear themselves
after two refused commands, as an operator would fix them, a magnetic write error after one
card, unless ``!`` follows: ``jam@3!``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cardperso.card.native import NativeCard
from cardperso.card.state import GP_TEST_KEY
from cardperso.card.vcard import VirtualCard, fresh_serial
from cardperso.chip.native import transport_factor
from cardperso.crypto import random_bytes
from cardperso.crypto.ssse import diversify_one
from cardperso.devices import cardface, pcsc
from cardperso.errors import DataError, TransportError
from cardperso.line.linefile import LineOptions, LineSpec, StationSpec, dump_line
from cardperso.outputs import atomic_write_bytes, atomic_write_text
from cardperso.sim import pcscd
from cardperso.sim.printer import FAULTS as PRINTER_FAULTS
from cardperso.sim.printer import PrinterCore, PrintJob, PtyPrinter
from cardperso.sim.vpcd import Slot

log = logging.getLogger("cardperso.sim")

CARD_FAULTS = ("mute", "removed", "tear", "wrong_atr", "tear_create", "tear_key", "bad_mac",
               "wrong_transport_key")  # fmt: skip
#: Chip kinds a simulated hopper can hold (``chips``): GP cards and native-COS chips.
CHIP_KINDS = {"gp": "", "native": "SM4", "native-3des": "3DES"}
#: The native blanks' transport masters by algorithm unless a line is given its own: the
#: sample store's ``native-transport`` / ``native-transport-3des``, the GP test key.
SAMPLE_NATIVE_TRANSPORT = {"SM4": GP_TEST_KEY, "3DES": GP_TEST_KEY}
DEFAULT_PORT = 36200
PRESENCE_TIMEOUT = 5.0


class ReaderSlot(Protocol):
    """A reader slot a simulated station can put cards in (a vpcd slot, or a test lab slot)."""

    name: str

    def insert(self, card: VirtualCard | NativeCard) -> None: ...

    def remove(self) -> object | None: ...


@dataclass(frozen=True, slots=True)
class Fault:
    station: str
    kind: str
    card: int
    sticky: bool = False


def parse_faults(spec: str | None) -> list[Fault]:
    """``st1:mute@2,st2:ribbon_out@3!`` → faults (see the module docstring)."""
    out: list[Fault] = []
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        try:
            station, rest = item.split(":", 1)
            kind, card = rest.split("@", 1)
            sticky = card.endswith("!")
            number = int(card.rstrip("!"))
        except ValueError:
            raise DataError(f"fault {item!r} is not STATION:FAULT@CARD", field="faults") from None
        if kind not in CARD_FAULTS and kind not in PRINTER_FAULTS:
            known = ", ".join((*CARD_FAULTS, *PRINTER_FAULTS))
            raise DataError(f"unknown fault {kind!r} (known: {known})", field="faults")
        out.append(Fault(station, kind, number, sticky))
    return out


class _VpcdReader:
    """A vpcd slot seen through pcscd: insert/remove return once pcscd has seen the change."""

    def __init__(self, name: str, slot: Slot) -> None:
        self.name = name
        self.slot = slot

    def insert(self, card: VirtualCard | NativeCard) -> None:
        self.slot.insert(card)

    def remove(self) -> object | None:
        card = self.slot.remove()
        try:
            pcsc.wait_for_removal(self.name, PRESENCE_TIMEOUT)
        except TransportError:
            log.warning("reader %s still shows a card after removal", self.name)
        return card


@dataclass
class SimStation:
    """One simulated printer and its reader slot (the printer's :class:`PrinterEvents`)."""

    name: str
    reader: ReaderSlot
    state_dir: Path
    faults: list[Fault]
    scp: str = "02"
    apdu_latency: float = 0.0
    feeder: int = 10_000
    #: The card vendor's transport key the blank cards carry (the GP test key by default).
    transport_key: bytes = GP_TEST_KEY
    #: The hopper's chips in feeding order, repeated (``CHIP_KINDS``), and the native chips'
    #: transport masters by algorithm (each chip's key is diversified by its serial).
    chips: tuple[str, ...] = ("gp",)
    native_transport: dict[str, bytes] = field(default_factory=dict)
    core: PrinterCore = field(init=False)
    pty: PtyPrinter = field(init=False)
    cards: dict[int, VirtualCard | NativeCard] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.core = PrinterCore(feeder=self.feeder, serial=f"SIM-{self.name}", events=self)
        self.pty = PtyPrinter(self.core)
        for d in ("stations/" + self.name, "output", "rejects"):
            (self.state_dir / d).mkdir(parents=True, exist_ok=True)

    # -- PrinterEvents ---------------------------------------------------------------------
    def card_parked(self, card_number: int, station: str) -> None:
        path = self.state_dir / "stations" / self.name / f"card-{card_number:06d}.json"
        if path.exists():
            path.unlink()
        mine = {f.kind for f in self.faults if f.card == card_number}
        card = self._blank(path, card_number, wrong_key="wrong_transport_key" in mine)
        card.faults.latency_per_apdu = self.apdu_latency
        for fault in self.faults:
            if fault.card != card_number or fault.kind == "wrong_transport_key":
                continue
            if fault.kind in ("tear_create", "tear_key", "bad_mac"):
                if isinstance(card, NativeCard):  # GP cards: tear on the first write
                    card.tear_on = {"tear_create": 0xE0, "tear_key": 0xD4}.get(fault.kind)
                    card.line_fault = fault.kind == "bad_mac"
                else:
                    card.faults.tear_next_write = fault.kind != "bad_mac"
            elif fault.kind == "mute":
                card.faults.mute = True
            elif fault.kind == "removed":
                card.faults.remove_after = 14  # in the middle of INSTALL / STORE DATA
            elif fault.kind == "tear":
                card.faults.tear_next_write = True
            elif fault.kind == "wrong_atr":
                card.faults.wrong_atr = bytes.fromhex("3B00")
            else:
                # an operator clears a pausing fault after two refusals; a magnetic write error
                # spoils one card only
                once = 1 if fault.kind == "mag_write_error" else 2
                self.core.inject(fault.kind, auto_clear_after=None if fault.sticky else once)
        with self.lock:
            self.cards[card_number] = card
        self.reader.insert(card)

    def _blank(self, path: Path, card_number: int, *, wrong_key: bool) -> VirtualCard | NativeCard:
        kind = self.chips[(card_number - 1) % len(self.chips)]
        if kind == "gp":
            key = random_bytes(16) if wrong_key else self.transport_key
            return VirtualCard.create_blank(path, scp=self.scp, transport_key=key)
        algorithm = CHIP_KINDS[kind]
        serial = fresh_serial(path.parent)
        key = diversify_one(self.native_transport[algorithm], algorithm, transport_factor(serial))
        if wrong_key:
            key = random_bytes(16)
        return NativeCard.create_blank(path, serial=serial, algorithm=algorithm, transport_key=key)

    def card_left(self, card_number: int, destination: str, job: PrintJob) -> None:
        self.reader.remove()
        with self.lock:
            card = self.cards.pop(card_number, None)
        if card is None:
            return
        serial = card.serial.hex().upper()
        target_dir = self.state_dir / ("output" if destination == "output" else "rejects")
        target = target_dir / f"{serial}.json"
        _move_image(card.path, target)
        if destination == "output":
            # the printed face and the stripe hold personal data: private, and whole or absent
            panels = {name: data for (side, name), data in job.panels.items() if side == "front"}
            if panels:
                atomic_write_bytes(
                    target_dir / f"{serial}.png", cardface.to_png(cardface.compose(panels))
                )
            tracks = {str(k): v for k, v in job.written_tracks.items()}
            atomic_write_text(target_dir / f"{serial}.tracks.json", json.dumps(tracks))

    def clear_faults(self) -> None:
        self.core.clear()


def _move_image(source: Path, target: Path) -> None:
    """Move a card image into the output hopper or the reject box whole: a rename, or across
    file systems an atomic copy (never a partial image under the name a crash check reads)."""
    try:
        os.replace(source, target)
    except OSError:
        atomic_write_bytes(target, source.read_bytes())
        source.unlink()


class SimLine:
    """N simulated stations; ``start()`` brings them up, ``spec`` is the line for ``run``."""

    def __init__(
        self,
        stations: int,
        state_dir: Path,
        *,
        faults: str | None = None,
        scp: str = "02",
        apdu_latency: float = 0.0,
        port: int = DEFAULT_PORT,
        readers: list[ReaderSlot] | None = None,
        options: LineOptions | None = None,
        transport_key: bytes = GP_TEST_KEY,
        chips: tuple[str, ...] = ("gp",),
        native_transport: dict[str, bytes] | None = None,
    ) -> None:
        if stations < 1:
            raise DataError("a line needs at least one station", field="stations")
        unknown_chips = [c for c in chips if c not in CHIP_KINDS]
        if unknown_chips or not chips:
            known = ", ".join(CHIP_KINDS)
            raise DataError(f"chips must name {known}, got {chips!r}", field="chips")
        # the native blanks' transport masters: the sample store's native-transport and
        # native-transport-3des (the GP test key, keys-sample/make_sample.py) unless given
        self.native_transport = {**SAMPLE_NATIVE_TRANSPORT, **(native_transport or {})}
        self.chips = tuple(chips)
        self.state_dir = Path(state_dir)
        self.port = port
        self.options = options or LineOptions(card_timeout=10.0, pause_retry=0.5)
        self._own_readers = readers is None
        self._pcscd: pcscd.Pcscd | None = None
        self._slots: list[Slot] = []
        self._readers = readers
        self.n = stations
        self.faults = parse_faults(faults)
        self.scp = scp
        self.apdu_latency = apdu_latency
        self.transport_key = transport_key
        self.stations: list[SimStation] = []

    def start(self, *, replace_pcscd: bool = True) -> SimLine:
        readers = self._readers
        if readers is None:
            conf = self.state_dir / "pcsc" / "reader.conf.d"
            layout = pcscd.write_reader_entries(conf, self.n, self.port, name="cardperso-line")
            self._pcscd = pcscd.Pcscd(conf, log_path=self.state_dir / "pcsc" / "pcscd.log")
            self._pcscd.start(replace=replace_pcscd)
            pcscd.wait_for_readers([s.name for s in layout], timeout=15)
            self._slots = [Slot(s.port, None, name=s.name).start() for s in layout]
            readers = [_VpcdReader(s.name, slot) for s, slot in zip(layout, self._slots)]
        if len(readers) < self.n:
            raise DataError(
                f"{self.n} stations need {self.n} readers, {len(readers)} given", field="stations"
            )
        for i in range(self.n):
            name = f"st{i + 1}"
            mine = [f for f in self.faults if f.station == name]
            st = SimStation(
                name, readers[i], self.state_dir, mine, self.scp, self.apdu_latency,
                transport_key=self.transport_key, chips=self.chips,
                native_transport=self.native_transport,
            )  # fmt: skip
            st.pty.start()
            self.stations.append(st)
        unknown = {f.station for f in self.faults} - {s.name for s in self.stations}
        if unknown:
            self.stop()
            raise DataError(
                f"faults name unknown stations: {', '.join(sorted(unknown))}", field="faults"
            )
        atomic_write_text(self.state_dir / "line.yaml", dump_line(self.spec), mode=0o644)
        return self

    @property
    def spec(self) -> LineSpec:
        return LineSpec(
            tuple(StationSpec(s.name, s.pty.port, s.reader.name) for s in self.stations),
            self.options,
        )

    def stop(self) -> None:
        for st in self.stations:
            st.pty.close()
        for slot in self._slots:
            slot.stop()
        if self._pcscd is not None:
            self._pcscd.stop()

    def __enter__(self) -> SimLine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
