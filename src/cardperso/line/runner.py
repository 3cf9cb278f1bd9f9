"""Running a personalization file on a line: one worker thread per station, a shared journal.

How this works
--------------
:func:`run_line` verifies the personalization file (MACs, KEK check value) before any card is
touched, checks everything that is not the card's (:mod:`cardperso.line.preflight`: profile,
keys, readers, printers), creates (or, with ``resume``, reopens) the run in the journal, named
by the file's own identity (:mod:`cardperso.line.identity`), and starts one worker per
station. Each worker owns its printer and its PC/SC connection (never shared across threads)
and repeats: claim the next queued record → park a blank card at the contact station → wait
for it in the reader → check the ATR → drive the chip workflow → print the face and write the
magnetic stripe → eject. Any chip failure rejects the card and queues the record again (until
its attempts run out). A failed card cryptogram is never retried on the same card; after
``stop_after_auth_failures`` in a row (wrong keys loaded) the whole line stops.

A printer fault that needs an operator (ribbon, cover, feeder, jam, reject box) pauses the
station with a message; it retries every ``pause_retry`` seconds or at once when an operator
resumes it (``cardperso line resume-station``, through the journal's database). Nothing is
lost or made twice: every step is in the journal before the next one starts.

Several lines on one run (``join``): each line process holds its own stations in the journal,
a heartbeat thread beats for them (and the jobs they hold) every ``heartbeat`` seconds and
releases the jobs of lines whose beat stopped more than ``stale_after`` seconds ago. A station
that finds no queued job while other lines still hold jobs waits (one of them may die and its
job come back) until every job is finished. Before printing (the step that cannot be undone)
a station confirms that its claim is still its own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cardperso.chip.drivers import DriverRegistry, load_drivers
from cardperso.chip.model import CardData, ChipFailure, ChipPlan
from cardperso.chip.pki import pki_step
from cardperso.chip.plan import card_data, chip_plan
from cardperso.chip.script import Steps, check_atr, personalize
from cardperso.chip.transport import drive
from cardperso.codec.numbers import mask_id
from cardperso.devices import cardface
from cardperso.devices.pcsc import (
    NoCard,
    PcscTransport,
    ReaderUnavailable,
    TraceHook,
    wait_for_card,
)
from cardperso.devices.printer import CardPrinter, EvolisPrinter, PrinterFault
from cardperso.errors import CardPersoError, DeviceError, KeyStoreError, UsageError
from cardperso.keystore.base import KeyStore
from cardperso.layouts.persofile import PersoHeader, PersoRecordBody
from cardperso.line import jobs
from cardperso.line.control import ensure_control_table, request_resume
from cardperso.line.identity import check_continuation, file_identity
from cardperso.line.journal import ClaimLost, Job, JobSeed, Journal, member_id
from cardperso.line.linefile import LineSpec, StationSpec
from cardperso.line.preflight import check_devices, check_keys
from cardperso.line.results import RESULT_COLUMNS, write_results
from cardperso.line.stations import StationBoard
from cardperso.prep.container import iter_records, verify
from cardperso.profiles.loader import load_profile
from cardperso.storage.db import Database

log = logging.getLogger("cardperso.line")

#: A card's chip workflow: what :func:`cardperso.chip.script.personalize` is.
ChipWorkflow = Callable[[CardData, ChipPlan, KeyStore], Steps]


class Transport(Protocol):
    def connect(self, timeout: float = 0.0) -> bytes: ...

    def transmit(self, apdu: bytes) -> bytes: ...

    def disconnect(self, *, unpower: bool = False) -> None: ...


@dataclass
class StationStatus:
    name: str
    state: str = "idle"
    message: str = ""
    made: int = 0
    rejected: int = 0
    busy_seconds: float = 0.0


@dataclass
class RunSummary:
    run_id: str
    counts: dict[str, int]
    stations: list[StationStatus]
    seconds: float
    results_file: str
    stopped: str = ""
    apdus_per_card: float = 0.0

    @property
    def done(self) -> int:
        return self.counts.get(jobs.DONE, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(jobs.FAILED, 0)


@dataclass
class _Shared:
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    auth_failures_in_a_row: int = 0
    stopped_reason: str = ""
    apdus: int = 0
    chips: int = 0


def _face_fields(header: PersoHeader, body: PersoRecordBody) -> dict[str, str]:
    values = body.face.split("\x1f") if body.face else []
    return dict(zip(header.face_fields, values))


def _photo(value: str, base: Path) -> bytes | None:
    if not value:
        return None
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    try:
        return path.read_bytes()
    except OSError:
        return None


class Station:
    """One printer + reader pair, driven by one thread."""

    def __init__(
        self,
        spec: StationSpec,
        run: LineRun,
        printer_factory: Callable[[str], CardPrinter],
        transport_factory: Callable[[str], Transport],
    ) -> None:
        self.spec = spec
        self.run = run
        self.status = StationStatus(spec.name)
        self._printer_factory = printer_factory
        self._transport_factory = transport_factory
        self.thread = threading.Thread(target=self._main, name=f"station-{spec.name}", daemon=True)
        #: Parked cards that never reached the reader, in a row (see :meth:`_no_card`).
        self.no_card_in_a_row = 0

    # -- printer commands that may pause the station -----------------------------------------
    def _printer_step(self, what: str, action: Callable[[], None]) -> None:
        while True:
            try:
                action()
                if self.status.state == "paused":
                    log.warning("station %s resumed", self.spec.name)
                self.status.state = "busy"
                self.status.message = ""
                return
            except PrinterFault as fault:
                if not fault.pauses_station:
                    raise
                self.status.state = "paused"
                self.status.message = str(fault)
                log.error("station %s paused during %s: %s", self.spec.name, what, fault)
                self.run.wait_for_resume(self.spec.name)
                if self.run.shared.stop.is_set():
                    raise

    def _main(self) -> None:
        printer = self._printer_factory(self.spec.printer)
        try:
            self._clear_leftover(printer)
            while not self.run.shared.stop.is_set():
                job = self.run.journal.claim(self.spec.name)
                if job is None:
                    if self.run.join and self.run.journal.in_flight():
                        self.status.state = "waiting"
                        self.run.shared.stop.wait(self.run.heartbeat)
                        continue
                    break
                started = time.monotonic()
                self._make(job, printer)
                self.status.busy_seconds += time.monotonic() - started
        except CardPersoError as exc:  # a station that cannot go on stops the line
            self.run.stop(f"station {self.spec.name}: {exc}")
        finally:
            self.status.state = "stopped"
            printer.close()

    def _clear_leftover(self, printer: CardPrinter) -> None:
        """A card left in the printer by an interrupted run is suspect: reject it."""
        status = printer.status()
        if status.get("card", "none") not in ("none", ""):
            log.warning("station %s: rejecting a card left from an interrupted run", self.spec.name)
            self._printer_step("reject", printer.reject)

    def _make(self, job: Job, printer: CardPrinter) -> None:
        name = self.spec.name
        body = self.run.records[job.index]
        self.status.state = "busy"
        self._printer_step("park", printer.park_for_encoding)
        transport: Transport | None = None
        key_used = self.run.plan.transport_kmc  # the transport key the chip is opened with
        try:
            wait_for_card(self.spec.reader, self.run.spec.options.card_timeout)
            transport = self._transport_factory(self.spec.reader)
            atr = transport.connect(self.run.spec.options.card_timeout)
            driver = self.run.drivers.choose(atr)  # an unknown chip: no command sent
            if driver.cos != "gp":
                key_used = driver.chip.transport_key
            if driver.cos == "gp":
                check_atr(atr, self.run.plan)
            data = card_data(self.run.header, body, job.index)
            result = drive(
                driver.personalize(data, self.run.plan, self.run.keys, atr), transport.transmit
            )
        except ChipFailure as exc:
            self._reject(job, printer, str(exc), auth=exc.auth_failure, key=key_used)
            return
        except NoCard as exc:
            self._no_card(job, printer, exc)
            return
        except (KeyStoreError, UsageError, ReaderUnavailable) as exc:
            self._station_fault(job, printer, exc)
            return
        except CardPersoError as exc:
            self._reject(job, printer, f"{type(exc).__name__}: {exc}")
            return
        finally:
            if transport is not None:
                with contextlib.suppress(CardPersoError):
                    transport.disconnect()
        self.run.auth_ok()
        self.no_card_in_a_row = 0
        self.run.count_apdus(result.apdus)
        try:
            job = self.run.journal.chip_ok(
                job,
                chip_serial=result.chip_serial.hex().upper(),
                atr=atr.hex().upper(),
                card_id_code=result.card_id.hex().upper(),
                pan_masked=mask_id(body.pan),
            )
            self.run.journal.confirm(job)  # the claim is still ours: print
        except ClaimLost as lost:
            self._lost(job, printer, lost)
            return
        fields = _face_fields(self.run.header, body)
        photo = _photo(fields.pop("photo", ""), self.run.base_dir)
        panels = cardface.panels(cardface.render(fields, photo))
        tracks = {n: t for n, t in ((1, body.track1), (2, body.track2), (3, body.track3)) if t}
        try:
            self._printer_step("print", lambda: printer.print_and_eject(panels, tracks, "ymcko"))
        except PrinterFault as fault:  # magnetic errors: the card is spoiled, make it again
            self._reject(
                job, printer, f"printer: {fault}", chip_serial=result.chip_serial.hex().upper()
            )
            return
        try:
            self.run.journal.printed(job)
        except ClaimLost as lost:  # our beat stopped for longer than stale_after
            log.error("station %s: %s (the card is in the output hopper)", name, lost)
            return
        self.status.made += 1
        log.info("station %s made card %s (record %d)", name, body.card_no, job.index)

    #: Parked cards in a row that never reach the reader before the line stops: the reader or
    #: the printer's contact station is at fault, not the cards.
    NO_CARD_LIMIT = 3

    def _no_card(self, job: Job, printer: CardPrinter, exc: CardPersoError) -> None:
        """The parked card never reached the reader: the card goes to the reject box (it was
        not touched), the record keeps its attempt; after :data:`NO_CARD_LIMIT` in a row the
        station is at fault and the line stops."""
        self.no_card_in_a_row += 1
        n = self.no_card_in_a_row
        if n >= self.NO_CARD_LIMIT:
            self._station_fault(job, printer, exc, f"{n} parked cards in a row never reached it")
            return
        reason = f"{type(exc).__name__}: {exc}"
        log.warning(
            "station %s rejects a card that never reached the reader: %s", self.spec.name, reason
        )
        self._printer_step("reject", printer.reject)
        self.status.rejected += 1
        try:
            self.run.journal.release(job, reason)
        except ClaimLost as lost:
            log.error("station %s: %s", self.spec.name, lost)

    def _station_fault(
        self, job: Job, printer: CardPrinter, exc: CardPersoError, why: str = ""
    ) -> None:
        """The key store or the reader failed in the middle of a card: not the card's fault. The
        card (suspect) goes to the reject box, the record keeps its attempts, the line stops
        (every next card would meet the same fault)."""
        reason = f"{type(exc).__name__}: {exc}" + (f" ({why})" if why else "")
        log.error("station %s: %s: not the card's fault, the line stops", self.spec.name, reason)
        self._printer_step("reject", printer.reject)
        self.status.rejected += 1
        try:
            self.run.journal.release(job, reason)
        except ClaimLost as lost:
            log.error("station %s: %s", self.spec.name, lost)
        self.run.stop(
            f"station {self.spec.name}: {reason} (not the card's fault: fix it, then --resume)"
        )

    def _lost(self, job: Job, printer: CardPrinter, lost: ClaimLost) -> None:
        """Another line released this claim (ours looked dead): the card is not ours to keep."""
        log.error("station %s rejects the card of record %d: %s", self.spec.name, job.index, lost)
        self._printer_step("reject", printer.reject)
        self.status.rejected += 1

    def _reject(
        self,
        job: Job,
        printer: CardPrinter,
        reason: str,
        *,
        auth: bool = False,
        chip_serial: str | None = None,
        key: str = "",
    ) -> None:
        log.warning(
            "station %s rejects the card of record %d: %s", self.spec.name, job.index, reason
        )
        self._printer_step("reject", printer.reject)
        self.status.rejected += 1
        try:
            self.run.journal.fail(job, reason, chip_serial=chip_serial)
        except ClaimLost as lost:
            log.error("station %s: %s", self.spec.name, lost)
            return
        if auth:
            self.run.auth_failed(self.spec.name, key or self.run.plan.transport_kmc)


class LineRun:
    """One run of a personalization file on a line."""

    def __init__(
        self,
        perso_file: Path,
        spec: LineSpec,
        keys: KeyStore,
        db: Database,
        *,
        resume: bool = False,
        printer_factory: Callable[[str], CardPrinter] = EvolisPrinter,
        transport_factory: Callable[[str], Transport] | None = None,
        scp: str | None = None,
        trace: TraceHook | None = None,
        join: bool = False,
        heartbeat: float = 1.0,
        stale_after: float = 15.0,
        workflow: ChipWorkflow = personalize,
        drivers: DriverRegistry | None = None,
    ) -> None:
        """``trace`` receives every APDU exchange of the stations' PC/SC transports, secrets
        redacted (e.g. :func:`cardperso.devices.pcsc.log_trace`); it is ignored when a
        ``transport_factory`` is given."""
        self._pcsc = transport_factory is None  # the stations' readers are PC/SC readers
        if transport_factory is None:
            transport_factory = functools.partial(PcscTransport, trace=trace)
        #: The chip workflow of each card (the line's own, or e.g. the two-stage factory's).
        self.workflow = workflow
        #: The chip catalogue's drivers, chosen by ATR (the GP driver runs ``workflow``).
        self.drivers = drivers or load_drivers({"gp": workflow})
        self.perso_file = Path(perso_file)
        self.base_dir = self.perso_file.parent
        self.spec = spec
        self.keys = keys
        self.db = db
        self.shared = _Shared()
        checked = verify(self.perso_file, keys)  # refuses tampered/truncated/mixed files
        self.header = checked.header
        profile = load_profile(self.header.profile)
        if profile.digest != self.header.profile_digest:
            raise UsageError(
                f"pre-flight: profile {profile.name} changed since the file was prepared "
                "(digest differs): install the profile the file was prepared with"
            )
        self.plan: ChipPlan = chip_plan(
            profile, self.header, scp=scp, verify_ac=spec.options.verify_ac
        )
        check_keys(keys, self.plan)  # every key a card needs, before the first card
        for chip in self.drivers.use_pki(pki_step(profile, keys, db)):  # the PKI's CA too
            log.info("chip %s has no PKI application: refused untouched", chip)
        for chip in self.drivers.without_keys(keys):
            log.info("chip %s cannot be made (no transport key loaded): refused untouched", chip)
        self.records: dict[int, PersoRecordBody] = dict(iter_records(self.perso_file))
        if self.drivers.pki is not None:  # every record's certificate request fits SIGN
            self.drivers.pki.check_requests(
                (card_data(self.header, body, i) for i, body in self.records.items()),
                self.plan.ssse_aid,
            )
        #: The run is the file's own identity (batch id + file MAC), not its name.
        self.identity = file_identity(self.perso_file, self.header, checked.size)
        self.journal = Journal(db, self.identity.run_id)
        ensure_control_table(db)  # operators' resume requests (`cardperso line resume-station`)
        self.join = join
        self.resume = resume
        self._exists = check_continuation(db, self.identity, resume=resume, join=join)
        if self.drivers.pki is not None:  # pooled PKI signing keys for the cards still to make
            left = sum(n for s, n in self.journal.counts().items() if s not in ("done", "failed"))
            self.drivers.pki.check_pool(left if self._exists else len(self.records))
        self.heartbeat = min(heartbeat, stale_after / 3)  # several beats before a claim is stale
        self.stale_after = stale_after
        self.member = member_id()
        check = spec.options.output_check
        self._in_output: Callable[[str], bool] | None = (
            (lambda serial: (Path(check) / f"{serial}.json").exists()) if check else None
        )
        self._printer_factory = printer_factory
        self.stations = [
            Station(s, self, printer_factory, transport_factory) for s in spec.stations
        ]
        self._resume_events = {s.name: threading.Event() for s in spec.stations}
        self._beating = threading.Event()

    # -- heartbeat -------------------------------------------------------------------------------
    def _beat_loop(self) -> None:
        """Beat for our stations; with ``join``, release the jobs of lines that stopped beating."""
        names = [s.name for s in self.spec.stations]
        while not self._beating.wait(self.heartbeat):
            try:
                self.journal.beat(self.member, names)
                if self.join:
                    stale = self.journal.recover(
                        stale_after=self.stale_after, in_output=self._in_output
                    )
                    if stale:
                        log.warning(
                            "released %d job(s) of a line that stopped beating: made again",
                            len(stale),
                        )
            except CardPersoError as exc:
                log.error("heartbeat: %s", exc)
            except Exception as exc:  # a lost database connection: the line's claims go stale
                log.error("heartbeat failed: %s", type(exc).__name__)

    # -- coordination --------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        with self.shared.lock:
            if not self.shared.stopped_reason:
                self.shared.stopped_reason = reason
                log.error("line stopped: %s", reason)
        self.shared.stop.set()
        for event in self._resume_events.values():
            event.set()

    def auth_failed(self, station: str, key: str) -> None:  # key: the one the driver used
        with self.shared.lock:
            self.shared.auth_failures_in_a_row += 1
            n = self.shared.auth_failures_in_a_row
        log.error(
            "ALERT station %s: card authentication failed (%d in a row): check the transport "
            "key %r loaded",
            station,
            n,
            key,
        )
        if n >= self.spec.options.stop_after_auth_failures:
            self.stop(
                f"{n} card authentication failures in a row: wrong keys loaded? (check the card "
                f"vendor's transport key {key!r} and its diversification)"
            )

    def auth_ok(self) -> None:
        with self.shared.lock:
            self.shared.auth_failures_in_a_row = 0

    def count_apdus(self, n: int) -> None:
        with self.shared.lock:
            self.shared.apdus += n
            self.shared.chips += 1

    def resume_station(self, name: str) -> None:
        if name not in self._resume_events:
            raise UsageError(f"no station named {name!r}")
        self._resume_events[name].set()

    #: How often a paused station looks for an operator's resume request in the database.
    RESUME_POLL = 0.5

    def wait_for_resume(self, name: str) -> None:
        """Return when the station should retry: after ``pause_retry`` seconds, at once when an
        operator resumes it (``cardperso line resume-station``, through the database, possibly
        from another process or machine), or when the line stops."""
        event = self._resume_events[name]
        deadline = time.monotonic() + self.spec.options.pause_retry
        while not self._resume_requested(name):
            left = deadline - time.monotonic()
            if left <= 0 or event.wait(min(self.RESUME_POLL, left)):
                break
        event.clear()

    def _resume_requested(self, name: str) -> bool:
        rows = self.db.execute(
            "SELECT id FROM line_control WHERE run_id = ? AND station = ? AND done = 0",
            (self.journal.run_id, name),
        )
        if rows:
            self.db.execute("UPDATE line_control SET done = 1 WHERE id = ?", (rows[0][0],))
            return True
        return False

    # -- running ---------------------------------------------------------------------------
    def _open_run(self) -> None:
        """Create, resume or join the run in the journal (after every pre-flight check)."""
        run_id, digest = self.identity.run_id, self.identity.digest
        seeds = [JobSeed(i, b.card_no, mask_id(b.ssn)) for i, b in sorted(self.records.items())]
        options = self.spec.options
        if self.join:
            created = self.journal.create_or_join(
                seeds, source=str(self.perso_file), digest=digest, max_attempts=options.max_attempts
            )
            names = [s.name for s in self.spec.stations]
            self.journal.hold_stations(self.member, names, stale_after=self.stale_after)
            for name in names:  # our own stations' claims from a previous life of this line
                self.journal.recover(station=name, in_output=self._in_output)
            log.info("%s run %s", "created" if created else "joined", run_id)
        elif self._exists:
            suspects = self.journal.recover(in_output=self._in_output)
            if suspects:
                log.warning(
                    "%d suspect card(s) from the interrupted run: records made again", len(suspects)
                )
        else:
            self.journal.create(
                seeds, source=str(self.perso_file), digest=digest, max_attempts=options.max_attempts
            )

    def run(
        self, results_file: Path, *, on_tick: Callable[[LineRun], None] | None = None
    ) -> RunSummary:
        """Check the devices, open the run in the journal, run every station to the end."""
        check_devices(
            self.spec, self._printer_factory, readers=self._pcsc
        )  # before the first card is fed
        self._open_run()
        started = time.monotonic()
        beat = threading.Thread(target=self._beat_loop, name="line-heartbeat", daemon=True)
        beat.start()
        for station in self.stations:
            station.thread.start()
        board = StationBoard(self.db, self.journal.run_id)  # what the web console's floor shows
        while any(s.thread.is_alive() for s in self.stations):
            board.publish(s.status for s in self.stations)
            if on_tick is not None:
                on_tick(self)
            for s in self.stations:
                s.thread.join(timeout=0.2)
        board.publish(s.status for s in self.stations)
        if on_tick is not None:
            on_tick(self)
        self._beating.set()
        beat.join()
        if self.join:
            self.journal.release_stations(self.member)
        write_results(self.journal, results_file)
        chips = self.shared.chips or 1
        return RunSummary(
            self.journal.run_id,
            self.journal.counts(),
            [s.status for s in self.stations],
            time.monotonic() - started,
            str(results_file),
            self.shared.stopped_reason,
            self.shared.apdus / chips,
        )


def run_line(
    perso_file: Path,
    spec: LineSpec,
    keys: KeyStore,
    db: Database,
    results_file: Path,
    *,
    resume: bool = False,
    on_tick: Callable[[LineRun], None] | None = None,
    **factories: object,
) -> RunSummary:
    run = LineRun(perso_file, spec, keys, db, resume=resume, **factories)  # type: ignore[arg-type]
    return run.run(results_file, on_tick=on_tick)


__all__ = [
    "RESULT_COLUMNS",
    "DeviceError",
    "LineRun",
    "RunSummary",
    "Station",
    "request_resume",
    "run_line",
    "write_results",
]
