"""Fixtures: a lab of real PC/SC readers (pcscd + vpcd) whose cards are Python objects.

``pcsc_lab`` (session scope) gives ``.slots``: each a :class:`LabSlot` with a PC/SC reader name,
a vpcd port and ``insert(card)`` / ``remove()`` that return once pcscd has seen the change.
``pcsc_slot`` (function scope) is one free slot of the lab, emptied after the test.

How the lab works
-----------------
There is one pcscd per machine (its socket is always ``/run/pcscd/pcscd.comm``), and several
pytest sessions (other developers' runs, xdist workers) may use it at once. So:

* The lab's reader entries (``LAB_SLOTS`` slots on ports 35980, 35981, ..., away from the
  Debian default 35963; one entry and one driver copy per two slots) live in ``LAB_DIR``
  (``CARDPERSO_PCSC_LAB``, default ``/tmp/cardperso-pcsc-lab``).
* Under an exclusive lock, a session reuses a running pcscd that already lists the lab's
  readers; otherwise, as root, it (re)starts ``pcscd -f -c LAB_DIR/reader.conf.d`` (stopping the
  pcscd that runs). Not root and no such pcscd: the session FAILS with what to run.
* Each session claims free slots with one lock file per slot (``CARDPERSO_PCSC_LAB_CLAIM``
  slots, default 8), so parallel sessions never serve two cards on one port.
* The last session to finish stops the pcscd the lab started.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from cardperso.card.faults import FaultPlan
from cardperso.devices import pcsc
from cardperso.errors import TransportError
from cardperso.sim import pcscd
from cardperso.sim.vpcd import CardLike, Slot

LAB_DIR = Path(os.environ.get("CARDPERSO_PCSC_LAB", "/tmp/cardperso-pcsc-lab"))
LAB_PORT = 35980
#: pcsc-lite serves at most 16 readers per client context, and clients such as pcsc_scan add
#: the plug-and-play pseudo reader to that count: with 16 real readers they fail with
#: "SCardGetStatusChange: Invalid parameter given". The lab leaves room for it.
LAB_SLOTS = 14
LAB_NAME = "cardperso-lab"
CLAIM = int(os.environ.get("CARDPERSO_PCSC_LAB_CLAIM", "8"))
#: Reader timeout of lab slots (mute cards): short, the tests do not wait for a real reader.
LAB_READER_TIMEOUT = 0.3
#: pcscd polls card presence every 0.4 s; allow for a loaded machine (a deadline only: the wait
#: returns as soon as pcscd has seen the change; a 2-core CI machine at load 6-8 can stall for
#: seconds).
PRESENCE_TIMEOUT = 20.0


# -- small test cards with the VirtualCard shape ------------------------------------------------


class EchoCard:
    """Answers every command with its data field followed by 9000 (and honours its faults)."""

    ATR = bytes.fromhex("3B8880010000000000000000")

    def __init__(self, atr: bytes | None = None) -> None:
        self.faults = FaultPlan()
        self._atr = atr or self.ATR
        self.powered = False
        self.power_ons = 0
        self.commands: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return self.faults.wrong_atr or self._atr

    def power_on(self) -> bytes:
        self.faults.before_power()
        self.powered = True
        self.power_ons += 1
        return self.atr

    def power_off(self) -> None:
        self.powered = False

    def reset(self) -> bytes:
        return self.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        self.faults.before_command()
        self.commands.append(apdu)
        return self.answer(apdu)

    def answer(self, apdu: bytes) -> bytes:
        data = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
        return data + b"\x90\x00"


class T0Card(EchoCard):
    """A card that answers like a T=0 card (ISO 7816-3 case 2/4 conventions).

    * ``80 CA 00 00 00`` (GET DATA, Le=0) → ``6C 10``; re-sent with Le=10 → 16 bytes + 9000.
    * ``80 CB 00 00 <lc> <data>`` (case 4) → ``61 xx``; GET RESPONSE (``00 C0 00 00 xx``) gives
      the data reversed in chunks of at most 7 bytes, each but the last ending ``61 xx``.
    """

    RECORD = bytes(range(0x10, 0x20))

    def __init__(self) -> None:
        super().__init__(atr=bytes.fromhex("3B6800000073C84013009000"))
        self._pending = b""

    def answer(self, apdu: bytes) -> bytes:
        ins = apdu[1]
        if ins == 0xCA:
            if len(apdu) == 5 and apdu[4] == len(self.RECORD):
                return self.RECORD + b"\x90\x00"
            return bytes([0x6C, len(self.RECORD)])
        if ins == 0xCB:
            self._pending = apdu[5 : 5 + apdu[4]][::-1]
            return bytes([0x61, min(7, len(self._pending))])
        if ins == 0xC0:
            chunk, self._pending = self._pending[: apdu[4]], self._pending[apdu[4] :]
            if self._pending:
                return chunk + bytes([0x61, min(7, len(self._pending))])
            return chunk + b"\x90\x00"
        return super().answer(apdu)


# -- the lab ------------------------------------------------------------------------------------


@dataclass
class LabSlot:
    """One lab reader slot: reader ``name``, vpcd ``port``, and the slot that serves cards."""

    name: str
    port: int
    slot: Slot
    lock: IO[bytes] = field(repr=False)

    @property
    def card(self) -> CardLike | None:
        return self.slot.card

    def insert(self, card: CardLike, *, wait: bool = True) -> None:
        """Put ``card`` in; with ``wait``, return when pcscd has seen and powered it."""
        self.slot.insert(card)
        if wait:
            pcsc.wait_for_card(self.name, PRESENCE_TIMEOUT)

    def remove(self, *, wait: bool = True) -> CardLike | None:
        """Take the card out; with ``wait``, return when pcscd has seen the reader empty."""
        card = self.slot.remove()
        if wait:
            pcsc.wait_for_removal(self.name, PRESENCE_TIMEOUT)
        return card

    def wait_empty(self) -> None:
        pcsc.wait_for_removal(self.name, PRESENCE_TIMEOUT)


@dataclass
class PcscLab:
    """The readers this session owns (see the module docstring)."""

    config_dir: Path
    slots: list[LabSlot]
    started_pcscd: bool

    def heal(self) -> None:
        """Bring the lab's pcscd back if something replaced or stopped it (the slots reconnect).

        One pcscd per machine: a test that starts its own pcscd (a simulated line with its own
        entries) takes the lab's readers away until this runs.
        """
        mine = {s.name for s in self.slots}
        if mine <= set(pcscd.reader_names()):
            return
        setup = _lock(LAB_DIR / "setup.lock", fcntl.LOCK_EX)
        try:
            if mine <= set(pcscd.reader_names()):
                return
            names = [s.name for s in pcscd.reader_layout(LAB_SLOTS, LAB_PORT, LAB_NAME)]
            _, available = _ensure_pcscd(self.config_dir, names, alone=True)
            if not mine <= set(available):
                raise LabUnavailable("pcscd came back without some of this session's readers")
            self.started_pcscd = True
        finally:
            if setup is not None:
                setup.close()

    def free_slot(self) -> LabSlot:
        self.heal()
        for s in self.slots:
            if s.slot.card is None:
                return s
        raise AssertionError("every lab slot holds a card: a test did not clean up")


def _lock(path: Path, how: int) -> IO[bytes] | None:
    """flock ``path`` (created shareable by every user); None if LOCK_NB and it is taken."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # one lab for every user of the machine
    f = os.fdopen(fd, "rb")
    try:
        fcntl.flock(f, how)
    except BlockingIOError:
        f.close()
        return None
    return f


def _pid_alive_pcscd(pid: int) -> bool:
    return pid in pcscd.pcscd_pids()


class LabUnavailable(Exception):
    """The lab cannot run here (not root and no pcscd with the lab's readers)."""


def _ensure_pcscd(config_dir: Path, names: list[str], *, alone: bool) -> tuple[bool, list[str]]:
    """Make pcscd serve the lab; (whether we started it, the lab readers it lists).

    A pcscd that lists lab readers is reused as it is when another session may be using it
    (restarting it would pull the readers from under that session's tests).
    """
    listed = [n for n in names if n in set(pcscd.reader_names())]
    if listed and (len(listed) == len(names) or not alone):
        return False, listed
    if os.geteuid() != 0:
        if listed:
            return False, listed
        running = pcscd.pcscd_pids()
        raise LabUnavailable(
            "the PC/SC tests need pcscd serving the lab's vpcd readers "
            f"({names[0]} ...), and only root can (re)start pcscd. Ask an administrator "
            f"to run: `sudo python -m fixtures_pcsc` from tests/ (writes the entries into "
            f"{config_dir.resolve()}), then `sudo pkill -x pcscd; sudo pcscd -f -c "
            f"{config_dir.resolve()} &` "
            f"(pcscd running now: {'pid ' + str(running[0]) if running else 'none'}). "
            "See docs/virtual-readers.md."
        )
    for attempt in range(3):
        pcscd.write_reader_entries(config_dir, LAB_SLOTS, LAB_PORT, name=LAB_NAME)
        daemon = pcscd.Pcscd(config_dir, log_path=LAB_DIR / "pcscd.log")
        daemon.start(replace=True, detach=True)
        (LAB_DIR / "pcscd.pid").write_text(str(daemon.pid))
        with contextlib.suppress(TransportError):
            pcscd.wait_for_readers(names, timeout=15.0)  # else pcscd is started again
            return True, names
        # A reader whose port another program holds (vpcd: "Address already in use"; the lab
        # ports are inside the kernel's ephemeral range) fails; try again, then make do.
        listed = [n for n in names if n in set(pcscd.reader_names())]
        if attempt < 2:
            time.sleep(1.0)
    if listed:
        return True, listed
    raise LabUnavailable(f"pcscd did not create the lab's readers; see {LAB_DIR / 'pcscd.log'}")


@contextlib.contextmanager
def open_lab(claim: int = CLAIM) -> Iterator[PcscLab]:
    """The lab as a context manager (for the fixture and for benchmarks)."""
    if not LAB_DIR.exists():
        LAB_DIR.mkdir(parents=True)
        LAB_DIR.chmod(0o1777)  # shared like /tmp: other users' sessions take slot locks here
    config_dir = LAB_DIR / "reader.conf.d"
    layout = pcscd.reader_layout(LAB_SLOTS, LAB_PORT, LAB_NAME)
    setup = _lock(LAB_DIR / "setup.lock", fcntl.LOCK_EX)
    assert setup is not None
    try:
        # Alone: no other session holds the lab (then we may restart its pcscd).
        session = _lock(LAB_DIR / "sessions.lock", fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone = session is not None
        if session is not None:
            fcntl.flock(session, fcntl.LOCK_SH)
        else:
            session = _lock(LAB_DIR / "sessions.lock", fcntl.LOCK_SH)
        assert session is not None
        try:
            started, available = _ensure_pcscd(config_dir, [s.name for s in layout], alone=alone)
        except BaseException:
            session.close()
            raise
    finally:
        setup.close()
    slots: list[LabSlot] = []
    deadline = time.monotonic() + 120
    while not slots:
        for rs in layout:
            if rs.name not in available:
                continue
            held = _lock(LAB_DIR / f"slot-{rs.index:02d}.lock", fcntl.LOCK_EX | fcntl.LOCK_NB)
            if held is None:
                continue
            slot = Slot(rs.port, name=rs.name, reader_timeout=LAB_READER_TIMEOUT).start()
            slots.append(LabSlot(rs.name, rs.port, slot, held))
            if len(slots) == claim:
                break
        if not slots:
            if time.monotonic() > deadline:
                session.close()
                raise LabUnavailable("no free PC/SC lab slot for 120 s (other sessions hold them)")
            time.sleep(0.5)
    lab = PcscLab(config_dir, slots, started)
    try:
        yield lab
    finally:
        for s in slots:
            s.slot.stop()
            s.lock.close()
        setup = _lock(LAB_DIR / "setup.lock", fcntl.LOCK_EX)
        try:
            session.close()
            last = _lock(LAB_DIR / "sessions.lock", fcntl.LOCK_EX | fcntl.LOCK_NB)
            if last is not None:
                pidfile = LAB_DIR / "pcscd.pid"
                with contextlib.suppress(FileNotFoundError, ValueError):
                    pid = int(pidfile.read_text())
                    if _pid_alive_pcscd(pid):
                        pcscd.stop_pcscd(pid)
                    pidfile.unlink()
                last.close()
        finally:
            if setup is not None:
                setup.close()


@pytest.fixture(scope="session")
def pcsc_lab() -> Iterator[PcscLab]:
    """The session's lab readers; FAILS (never skips) when the lab cannot run here."""
    with contextlib.ExitStack() as stack:
        try:
            lab = stack.enter_context(open_lab())
        except LabUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        yield lab


@pytest.fixture
def pcsc_slot(pcsc_lab: PcscLab) -> Iterator[LabSlot]:
    """One free lab slot, emptied (and seen empty by pcscd) after the test."""
    slot = pcsc_lab.free_slot()
    slot.wait_empty()
    try:
        yield slot
    finally:
        if slot.slot.card is not None:
            slot.remove()


if __name__ == "__main__":
    # For an administrator: write the lab's reader entries (then start pcscd with them).
    if not LAB_DIR.exists():
        LAB_DIR.mkdir(parents=True)
        LAB_DIR.chmod(0o1777)
    written = pcscd.write_reader_entries(
        LAB_DIR / "reader.conf.d", LAB_SLOTS, LAB_PORT, name=LAB_NAME
    )
    print(f"wrote {len(written)} lab slots; now: pcscd -f -c {(LAB_DIR / 'reader.conf.d')}")
