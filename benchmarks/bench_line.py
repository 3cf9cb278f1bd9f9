"""The production line's performance (issue 6, "Performance"): engine overhead per APDU, APDU
count and STORE DATA fill per reference card, and line throughput with 1 and 8 stations.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_line.py                       # everything
    .venv/bin/python benchmarks/bench_line.py --part apdu           # engine overhead, APDU census
    .venv/bin/python benchmarks/bench_line.py --part apdu --store-data-order prepared
    .venv/bin/python benchmarks/bench_line.py --part zero           # zero-latency cards, 1 and 8 stations
    .venv/bin/python benchmarks/bench_line.py --part latency        # ~2 s of chip time per card

Readers: the benchmark borrows slots of the PC/SC test lab (``tests/fixtures_pcsc.py``): it
reuses the pcscd that serves the lab's readers (or, as root with no other session, starts one)
and claims free slots with the lab's per-slot locks, exactly like a pytest session. So it never
restarts a pcscd under a test session running at the same time, and tests and benchmark never
serve two cards on one port. The line parts need 8 free slots (the lab has 16; a test session
claims 8).

Parts
-----
``apdu``: one ``ssc3-pboc`` card (prepared by the real pipeline with the sample key store) is
personalized once in process against a blank :class:`~cardperso.card.VirtualCard` and its
exchanges recorded. During the benchmark every random number (SCP host and card challenges,
SSSE challenges) is a constant, so the engine sends exactly the recorded bytes again. The STORE
DATA order is the profile's (``store_data.order``) unless ``--store-data-order`` says otherwise. Per card,
first against a *replay card* (zero card time: it answers the recorded responses in order):

1. bare pyscard: ``scard.SCardTransmit`` over the recorded commands (prepared lists);
2. ``PcscTransport.transmit`` over the same commands (the transport alone);
3. the engine: ``card_data`` + ``drive(personalize(...), PcscTransport.transmit)`` — the
   station's chip step: SCP02 wrapping, key diversification, KEK unwrapping, DEK encryption,
   read-back checks and ARQC verification included;
4. the engine with no I/O at all (``drive`` over the recorded responses): host CPU per card;

then 1 and 3 against the virtual card itself (a fresh blank card per personalization, swapped
into the slot without a presence-poll wait).

Overhead = (3 − 1) / 1. Rounds are interleaved; median and best round.

``zero`` / ``latency``: a :class:`~cardperso.sim.line.SimLine` on lab readers (printers
on ptys, blank virtual cards), ``run_line`` over a prepared file; cards per second = produced
cards / the run's wall time. ``latency`` sets the virtual card's per-APDU latency so that the
card's chip time is ``--chip-seconds`` (default 2 s) per card. By default the simulator runs in
a child process (as ``cardperso sim line`` does beside ``cardperso run``), so the line's
process CPU time is the host's own; ``--same-process`` keeps both in one process (one GIL).
CPU: the line's process, its station threads alone, the simulator's process and pcscd (from
/proc).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import benchenv  # noqa: E402
from smartcard import scard  # noqa: E402

import cardperso.crypto.primitives as cp  # noqa: E402
from cardperso.card.vcard import VirtualCard  # noqa: E402
from cardperso.chip import script  # noqa: E402
from cardperso.chip import verify as chip_verify  # noqa: E402
from cardperso.chip.model import ChipPlan  # noqa: E402
from cardperso.chip.plan import card_data, chip_plan  # noqa: E402
from cardperso.chip.script import personalize  # noqa: E402
from cardperso.chip.transport import drive  # noqa: E402
from cardperso.devices.pcsc import PcscTransport  # noqa: E402
from cardperso.devices.printer import EvolisPrinter  # noqa: E402
from cardperso.keystore.software import SoftwareKeyStore  # noqa: E402
from cardperso.layouts.persofile import PersoHeader, PersoRecordBody  # noqa: E402
from cardperso.line.linefile import LineOptions, LineSpec, load_line  # noqa: E402
from cardperso.line.runner import RunSummary, run_line  # noqa: E402
from cardperso.prep.container import iter_records, read_header, verify  # noqa: E402
from cardperso.prep.pipeline import PrepOptions, prepare  # noqa: E402
from cardperso.prep.synth import make_batch  # noqa: E402
from cardperso.profiles.loader import load_profile  # noqa: E402
from cardperso.sim import pcscd  # noqa: E402
from cardperso.sim.inprocess import InProcessTransport  # noqa: E402
from cardperso.sim.line import SimLine  # noqa: E402
from cardperso.storage.db import Database  # noqa: E402
from fixtures_pcsc import EchoCard, LabSlot, open_lab  # type: ignore[import-not-found]  # noqa: E402

KEYS = ROOT / "keys-sample" / "keys.json"
PROFILE = "ssc3-pboc"
#: The chip serial of the benchmark's virtual cards (replays need identical cards).
SERIAL = bytes.fromhex("B3C4D5E6")


# -- shared set-up -----------------------------------------------------------------------------


def prepare_file(directory: Path, count: int, batch_id: str) -> Path:
    """A verified ``ssc3-pboc`` perso file of ``count`` synthetic records (cached by name)."""
    out = directory / f"{batch_id}.perso"
    if out.exists():
        return out
    make_batch(directory / f"{batch_id}.csv", count, seed=11)
    store = SoftwareKeyStore.load(KEYS)
    summary = prepare(
        directory / f"{batch_id}.csv",
        load_profile(PROFILE),
        store,
        functools.partial(SoftwareKeyStore.load, KEYS),
        out,
        directory / f"{batch_id}.rejects.csv",
        PrepOptions(batch_id=batch_id, created=1_700_000_000),
    )
    assert summary.prepared == count, summary
    return out


def load_now() -> str:
    return f"load average (1/5/15 min) now: {benchenv.load()}"


@contextmanager
def lab_slots(n: int) -> Iterator[list[LabSlot]]:
    """``n`` free lab slots (see the module docstring), empty and seen empty by pcscd."""
    deadline = time.monotonic() + 300
    while True:
        with open_lab(claim=n) as lab:
            if len(lab.slots) >= n:
                lab.heal()
                for s in lab.slots:
                    s.wait_empty()
                yield lab.slots[:n]
                return
            got = len(lab.slots)
        if time.monotonic() > deadline:
            raise SystemExit(f"only {got} free lab slots for 300 s; {n} needed")
        print(f"  {got} free lab slots, {n} needed: waiting for test sessions to finish")
        time.sleep(10)


# -- deterministic host randomness (so that a recorded card can be replayed) --------------------


@contextmanager
def fixed_random() -> Iterator[None]:
    """Every random number of host and card (SCP host and card challenges, SSSE challenges) is
    a constant, whatever the order of the draws: a recorded card can then be replayed."""
    from cardperso.protocol.scp02 import Scp02Card
    from cardperso.protocol.scp03 import Scp03Card

    def fixed(n: int) -> bytes:
        return bytes(range(0x5A, 0x5A + n))

    patched = ((cp, "random_bytes"), (chip_verify, "random_bytes"))
    saved = [getattr(module, name) for module, name in patched]
    for module, name in patched:
        setattr(module, name, fixed)
    kwdefaults = [c.__init__.__kwdefaults__ or {} for c in (Scp02Card, Scp03Card)]
    for kw in kwdefaults:
        kw["challenge"] = fixed
    try:
        yield
    finally:
        for (module, name), value in zip(patched, saved):
            setattr(module, name, value)
        for kw in kwdefaults:
            kw["challenge"] = cp.random_bytes


class ReplayCard(EchoCard):  # type: ignore[misc]
    """Answers the recorded responses in order (zero card time); counts command mismatches."""

    def __init__(self, atr: bytes, exchanges: list[tuple[bytes, bytes]]) -> None:
        super().__init__(atr=atr)
        self.exchanges = exchanges
        self.i = 0
        self.mismatches = 0

    def transmit(self, apdu: bytes) -> bytes:
        command, response = self.exchanges[self.i]
        if apdu != command:
            self.mismatches += 1
        self.i = (self.i + 1) % len(self.exchanges)
        return response


class SwapCard:
    """A card slot holder whose card can be replaced by a fresh blank card while it stays in
    the reader (no presence-poll wait between two personalizations)."""

    def __init__(self, card: VirtualCard) -> None:
        self.inner = card

    def swap(self, card: VirtualCard) -> None:
        card.power_on()
        self.inner = card

    @property
    def faults(self) -> object:
        return self.inner.faults

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def power_on(self) -> bytes:
        return self.inner.power_on()

    def power_off(self) -> None:
        self.inner.power_off()

    def reset(self) -> bytes:
        return self.inner.reset()

    def transmit(self, apdu: bytes) -> bytes:
        return self.inner.transmit(apdu)


# -- part 1: engine overhead per APDU, APDU census ---------------------------------------------


@dataclass
class Census:
    apdus: int
    by_ins: dict[str, int]
    store_data: list[tuple[int, int]]  # (plain data length, wrapped Lc) per STORE DATA


INS_NAMES = {
    0xA4: "SELECT",
    0xCA: "GET DATA",
    0x50: "INITIALIZE UPDATE",
    0x82: "EXTERNAL AUTHENTICATE",
    0xD8: "PUT KEY",
    0xE6: "INSTALL",
    0xE2: "STORE DATA",
    0xF0: "SET STATUS",
    0x88: "INTERNAL AUTHENTICATE",
    0x84: "GET CHALLENGE",
    0xB2: "READ RECORD",
    0xA8: "GPO",
    0xAE: "GENERATE AC",
}


def record_card(
    header: PersoHeader, body: PersoRecordBody, plan: ChipPlan, keys: SoftwareKeyStore, tmp: Path
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Personalize a blank virtual card in process; (ATR, exchanges)."""
    card = VirtualCard.create_blank(tmp / "recorded.card", scp=plan.scp, serial=SERIAL)
    transport = InProcessTransport(card)
    atr = transport.connect()
    log: list[tuple[bytes, bytes]] = []

    def tx(apdu: bytes) -> bytes:
        response = transport.transmit(apdu)
        log.append((apdu, response))
        return response

    result = drive(personalize(card_data(header, body, 0), plan, keys), tx)
    assert result.checks == ("ssse-records", "pboc-records", "arqc"), result.checks
    return atr, log


def census(
    header: PersoHeader, body: PersoRecordBody, plan: ChipPlan, keys: SoftwareKeyStore
) -> Census:
    """APDUs per card by instruction, and the plain size of every STORE DATA command."""
    from cardperso.protocol.storedata import StoreDataConventions, build_store_data

    with tempfile.TemporaryDirectory() as tmp:
        _, log = record_card(header, body, plan, keys, Path(tmp))
    by_ins: dict[str, int] = {}
    for command, _ in log:
        name = INS_NAMES.get(command[1], f"INS {command[1]:02X}")
        by_ins[name] = by_ins.get(name, 0) + 1
    # the plain commands (before C-MAC / C-DEC), rebuilt as the workflow builds them
    conv = StoreDataConventions(
        max_data=plan.max_data, dgi_format=plan.dgi_format, block_size=16 if plan.scp == "03" else 8
    )
    data = card_data(header, body, 0)
    plain: list[int] = []
    for app in data.apps:
        items = script._secret_items(app, keys, plan.kek, bytes(4), plan)
        if plan.store_data_order == "encrypted-first":  # as script.personalize orders them
            items.sort(key=lambda item: not item.encrypted)
        plain += [c[4] for c in build_store_data(items, conv, lambda b: b)]
    wrapped = [c[4] for c, _ in log if c[1] == 0xE2]
    return Census(len(log), by_ins, list(zip(plain, wrapped)))


def interleaved(
    variants: Mapping[str, Callable[[int], None]], rounds: int, cards: int
) -> dict[str, tuple[float, float]]:
    """Seconds per card of each variant (called with the card number): (median, best round).
    Rounds are interleaved so that machine load hits every variant alike."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        for label, fn in variants.items():
            t0 = time.perf_counter()
            for k in range(cards):
                fn(r * cards + k)
            times[label].append((time.perf_counter() - t0) / cards)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def print_times(res: dict[str, tuple[float, float]], n_apdu: int, bare: str, engine: str) -> None:
    print("| path | ms per card (median round) | µs per APDU (median) | µs per APDU (best round) |")
    print("|---|---:|---:|---:|")
    for label, (med, best) in res.items():
        print(
            f"| {label} | {med * 1e3:.2f} | {med / n_apdu * 1e6:.1f} | {best / n_apdu * 1e6:.1f} |"
        )
    b, e = res[bare], res[engine]
    for i, what in enumerate(("median", "best")):
        print(
            f"engine overhead over bare pyscard ({what} rounds): "
            f"{100 * (e[i] - b[i]) / b[i]:+.1f} % ({(e[i] - b[i]) / n_apdu * 1e6:+.1f} µs per APDU)"
        )


def first_record(perso: Path, keys: SoftwareKeyStore) -> PersoRecordBody:
    """The first record of a verified perso file (verifying also opens its sealed parts)."""
    verify(perso, keys)
    return next(b for _, b in iter_records(perso))


def apdus_per_card(work: Path) -> int:
    """APDUs the line sends to one reference card (personalized in process)."""
    perso = prepare_file(work, 4, "BENCHAPDU")
    with perso.open("rb") as fh:
        header, _ = read_header(fh)
    keys = SoftwareKeyStore.load(KEYS)
    body = first_record(perso, keys)
    return census(header, body, chip_plan(load_profile(PROFILE), header), keys).apdus


def part_apdu(work: Path, rounds: int, cards: int, order: str) -> None:
    perso = prepare_file(work, 4, "BENCHAPDU")
    with perso.open("rb") as fh:
        header, _ = read_header(fh)
    keys = SoftwareKeyStore.load(KEYS)
    body = first_record(perso, keys)
    plan = chip_plan(load_profile(PROFILE), header)
    if order != "profile":
        plan = dataclasses.replace(plan, store_data_order=order)

    c = census(header, body, plan, keys)
    print(
        f"\nAPDUs per {PROFILE} card (SCP{plan.scp}, PUT KEY, read-back, GENERATE AC; STORE DATA "
        f"order {plan.store_data_order!r}{' from the profile' if order == 'profile' else ''}): "
        f"{c.apdus}"
    )
    print("| command | APDUs |\n|---|---:|")
    for name, n in c.by_ins.items():
        print(f"| {name} | {n} |")
    print(f"STORE DATA commands: {len(c.store_data)}; plain data bytes (max {plan.max_data}) / Lc")
    print("  " + ", ".join(f"{p}/{w}" for p, w in c.store_data))
    total = sum(p for p, _ in c.store_data)
    print(
        f"  {total} plain bytes in {len(c.store_data)} commands: average fill "
        f"{100 * total / (len(c.store_data) * plan.max_data):.0f} %"
    )

    bare_label = "bare pyscard `scard.SCardTransmit` (recorded commands, prepared lists)"
    engine_label = "engine: `card_data` + `drive(personalize(…), PcscTransport.transmit)`"
    with fixed_random(), tempfile.TemporaryDirectory(dir=work) as tmp, lab_slots(1) as (slot,):
        atr, exchanges = record_card(header, body, plan, keys, Path(tmp))
        commands = [c for c, _ in exchanges]
        responses = [r for _, r in exchanges]
        prepared = [list(c) for c in commands]
        n_apdu = len(commands)
        transport = PcscTransport(slot.name)
        handle: list[int] = []

        def connect() -> None:
            rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            rc, card, proto = scard.SCardConnect(
                ctx, slot.name, scard.SCARD_SHARE_SHARED,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            )  # fmt: skip
            assert rc == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(rc)
            handle[:] = [ctx, card, proto]
            transport.connect()

        def disconnect() -> None:
            transport.disconnect()
            scard.SCardDisconnect(handle[1], scard.SCARD_LEAVE_CARD)
            scard.SCardReleaseContext(handle[0])

        def bare(_: int) -> None:
            _, card, proto = handle
            for cmd in prepared:
                scard.SCardTransmit(card, proto, cmd)

        def ours_transport(_: int) -> None:
            for cmd in commands:
                transport.transmit(cmd)

        def engine(_: int) -> None:
            drive(personalize(card_data(header, body, 0), plan, keys), transport.transmit)

        def host_only(_: int) -> None:
            it = iter(responses)
            drive(personalize(card_data(header, body, 0), plan, keys), lambda _apdu: next(it))

        # 1. a replay card: zero card time, the PC/SC stack and the host only
        replay = ReplayCard(atr, exchanges)
        slot.insert(replay)
        connect()
        variants = {
            bare_label: bare,
            "`PcscTransport.transmit` (recorded commands)": ours_transport,
            engine_label: engine,
            "engine with no I/O (`drive` over the recorded responses): host CPU": host_only,
        }
        for fn in variants.values():  # warm up
            for k in range(3):
                fn(k)
        res_replay = interleaved(variants, rounds, cards)
        assert replay.mismatches == 0, "the engine's commands differ from the recording"
        disconnect()
        slot.remove()

        # 2. the real virtual card (a fresh blank card per personalization, swapped in place)
        n_cards = (rounds + 1) * cards + 6
        blanks = [
            VirtualCard.create_blank(Path(tmp) / f"blank-{k:05d}.card", scp=plan.scp, serial=SERIAL)
            for k in range(2 * n_cards)
        ]
        holder = SwapCard(blanks.pop())
        slot.insert(holder)
        connect()
        last: list[bytes] = []

        def bare_real(_: int) -> None:
            holder.swap(blanks.pop())
            _, card, proto = handle
            for cmd in prepared:
                _rc, answer = scard.SCardTransmit(card, proto, cmd)
            last[:] = [bytes(answer)]

        def engine_real(_: int) -> None:
            holder.swap(blanks.pop())
            engine(0)

        for k in range(3):  # warm up, and check that the card accepts the replayed commands
            bare_real(k)
            assert last[0] == responses[-1], "the virtual card did not accept the replay"
            engine_real(k)
        res_real = interleaved({bare_label: bare_real, engine_label: engine_real}, rounds, cards)
        disconnect()
        slot.remove()

    print(f"\n{load_now()}")
    print(f"{n_apdu} APDUs per card; {cards} cards x {rounds} rounds, rounds interleaved\n")
    print("Replay card (answers the recorded responses: zero card time):")
    print_times(res_replay, n_apdu, bare_label, engine_label)
    print("\nThe virtual card itself (a fresh blank `VirtualCard` per personalization):")
    print_times(res_real, n_apdu, bare_label, engine_label)
    print("target: within 20 %")


# -- parts 2 and 3: line throughput ------------------------------------------------------------


class _CpuPrinter(EvolisPrinter):
    """The line's printer driver; on ``close`` (the station thread's last act) it records the
    station thread's CPU time. The line's device check also opens and closes every printer,
    in the main thread, before the stations start: those closes are not station threads and
    are not counted (counting them added the main thread's whole CPU time once per station)."""

    cpu: ClassVar[list[float]] = []

    def close(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            _CpuPrinter.cpu.append(time.thread_time())
        super().close()


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LineRunFigures:
    stations: int
    cards: int
    seconds: float
    process_cpu: float  # the line's process (host engine; with --same-process also the simulator)
    station_cpu: float  # the station threads alone
    sim_cpu: float  # the simulator's process (0 with --same-process)
    pcscd_cpu: float
    apdus_per_card: float

    @property
    def cards_per_second(self) -> float:
        return self.cards / self.seconds


def serve_sim(stations: int, latency: float, state: Path) -> None:
    """The simulator's process: a SimLine on lab slots until stdin closes."""
    with lab_slots(stations) as slots:
        line = SimLine(
            stations,
            state,
            readers=slots,
            apdu_latency=latency,
            options=LineOptions(card_timeout=10, pause_retry=0.5),
        )
        with line:
            print("READY", flush=True)
            sys.stdin.read()


@contextmanager
def sim_line(
    slots: list[LabSlot] | None, stations: int, latency: float, state: Path
) -> Iterator[tuple[LineSpec, int | None]]:
    """The simulated line's spec and the simulator's pid: in this process on ``slots``, or
    (``slots`` None) in a child process that claims its own lab slots."""
    if slots is not None:
        line = SimLine(
            stations,
            state,
            readers=slots[:stations],
            apdu_latency=latency,
            options=LineOptions(card_timeout=10, pause_retry=0.5),
        )
        with line:
            yield line.spec, None
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-sim", str(stations), str(latency), str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        for line_out in child.stdout:
            if line_out.strip() == "READY":
                break
            print("  " + line_out.rstrip())
        else:
            raise SystemExit("the simulator process stopped before it was ready")
        yield load_line(state / "line.yaml"), child.pid
    finally:
        child.stdin.close()
        child.wait(timeout=60)


def line_run(
    work: Path, slots: list[LabSlot] | None, stations: int, cards: int, latency: float, tag: str
) -> LineRunFigures:
    perso = prepare_file(work, cards, f"BENCHLINE{cards}")
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        state = Path(tmp)
        keys = SoftwareKeyStore.load(KEYS)
        with sim_line(slots, stations, latency, state / "line") as (spec, sim_pid):
            _CpuPrinter.cpu = []
            pcscd0 = {p: _proc_cpu(p) for p in pcscd.pcscd_pids()}
            sim0 = _proc_cpu(sim_pid) if sim_pid else 0.0
            cpu0 = time.process_time()
            summary: RunSummary = run_line(
                perso,
                spec,
                keys,
                Database(state / "journal.db"),
                state / "results.csv",
                printer_factory=_CpuPrinter,
            )
            cpu = time.process_time() - cpu0
            sim_cpu = _proc_cpu(sim_pid) - sim0 if sim_pid else 0.0
            # a pcscd restarted meanwhile (a test session healing the lab) is not counted
            pcscd_cpu = sum(max(0.0, _proc_cpu(p) - c) for p, c in pcscd0.items())
    if summary.done != cards or summary.stopped:
        raise SystemExit(
            f"{tag}: {summary.done}/{cards} cards made ({summary.stopped or summary.counts})"
        )
    return LineRunFigures(
        stations, cards, summary.seconds, cpu, sum(_CpuPrinter.cpu), sim_cpu, pcscd_cpu,
        summary.apdus_per_card,
    )  # fmt: skip


def part_line(
    work: Path,
    label: str,
    latency: float,
    station_counts: list[int],
    cards: dict[int, int],
    rounds: int,
    same_process: bool,
) -> dict[int, list[LineRunFigures]]:
    figures: dict[int, list[LineRunFigures]] = {n: [] for n in station_counts}
    where = "simulator in this process" if same_process else "simulator in its own process"
    print(f"\n{label} ({where})")
    with contextlib.ExitStack() as stack:
        slots = stack.enter_context(lab_slots(max(station_counts))) if same_process else None
        for r in range(rounds):
            for n in station_counts:
                f = line_run(work, slots, n, cards[n], latency, f"{label} {n} stations")
                figures[n].append(f)
                print(
                    f"  round {r + 1}, {n} station(s): {f.cards} cards in {f.seconds:.2f} s = "
                    f"{f.cards_per_second:.2f} cards/s; CPU: line process {f.process_cpu:.2f} s "
                    f"(station threads {f.station_cpu:.2f} s), simulator {f.sim_cpu:.2f} s, "
                    f"pcscd {f.pcscd_cpu:.2f} s; load {os.getloadavg()[0]:.2f}"
                )
    print(f"\n{load_now()}")
    print(f"{label}, {where} (median of {rounds} rounds)")
    print(
        "| stations | cards | cards/s | s per card per station | line process CPU per card | "
        "station threads CPU per card | simulator CPU per card | pcscd CPU per card | "
        "line CPU per station (cores) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    med: dict[int, float] = {}
    for n, runs in figures.items():
        cps = statistics.median(f.cards_per_second for f in runs)
        med[n] = cps

        def per_card(attr: str, runs: list[LineRunFigures] = runs) -> str:
            return f"{statistics.median(getattr(f, attr) / f.cards for f in runs) * 1e3:.0f} ms"

        share = statistics.median(f.process_cpu / f.seconds / f.stations for f in runs)
        print(
            f"| {n} | {runs[0].cards} | {cps:.2f} | {n / cps:.2f} | {per_card('process_cpu')} | "
            f"{per_card('station_cpu')} | {per_card('sim_cpu')} | {per_card('pcscd_cpu')} | "
            f"{share:.3f} |"
        )
    if len(station_counts) > 1:
        lo, hi = min(station_counts), max(station_counts)
        print(f"throughput {hi} stations / {lo} station: {med[hi] / med[lo]:.2f}x")
    print(f"APDUs per card: {figures[station_counts[0]][0].apdus_per_card:.1f}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="apdu,zero,latency")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (apdu part)")
    parser.add_argument("--cards", type=int, default=100, help="cards per round (apdu part)")
    parser.add_argument(
        "--store-data-order",
        choices=("profile", "prepared", "encrypted-first"),
        default="profile",
        help="apdu part: the STORE DATA order (default: the profile's)",
    )
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "cardperso-bench-line"
    )
    parser.add_argument("--line-rounds", type=int, default=3, help="rounds (line parts)")
    parser.add_argument("--zero-cards", type=int, default=20, help="cards per station (zero)")
    parser.add_argument("--latency-cards", type=int, default=5, help="cards per station (latency)")
    parser.add_argument("--chip-seconds", type=float, default=2.0, help="chip time per card")
    parser.add_argument(
        "--apdus-per-card", type=int, default=0, help="to set the latency (0: count them)"
    )
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="run the simulator (printers, virtual cards) in the line's process",
    )
    parser.add_argument("--serve-sim", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sim:
        serve_sim(int(args.serve_sim[0]), float(args.serve_sim[1]), Path(args.serve_sim[2]))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    run = benchenv.start("bench_line")
    with tempfile.TemporaryDirectory(dir=args.dir) as work:  # perso files of this version
        run_parts(args, Path(work))
    run.end()


def run_parts(args: argparse.Namespace, work: Path) -> None:
    parts = args.part.split(",")
    if "apdu" in parts:
        part_apdu(work, args.rounds, args.cards, args.store_data_order)
    if "zero" in parts:
        part_line(
            work, "zero-latency virtual cards", 0.0, [1, 8],
            {1: args.zero_cards, 8: 8 * args.zero_cards}, args.line_rounds, args.same_process,
        )  # fmt: skip
    if "latency" in parts:
        latency = args.chip_seconds / (args.apdus_per_card or apdus_per_card(work))
        part_line(
            work,
            f"chip latency {latency * 1e3:.1f} ms per APDU (~{args.chip_seconds:g} s of chip "
            f"time per card)",
            latency, [1, 8], {1: args.latency_cards, 8: 8 * args.latency_cards}, args.line_rounds,
            args.same_process,
        )  # fmt: skip


if __name__ == "__main__":
    main()
