"""The PC/SC host transport over pyscard: ``connect`` / ``transmit(bytes) -> bytes`` / ``reset``.

How this works
--------------
* :class:`PcscTransport` drives one reader through pyscard's thin ``smartcard.scard`` layer
  (the PC/SC C API, without pyscard's observer machinery: the engine adds a few microseconds
  per APDU over a bare ``SCardTransmit`` loop).
* It connects with T=0 or T=1, whichever the card offers (or the one asked for), and handles
  the T=0 case conventions in one place: ``61xx`` (fetch the rest with GET RESPONSE, data
  concatenated) and ``6Cxx`` (re-send the same command with Le = xx).
* PC/SC failures become :class:`~cardperso.errors.TransportError` subclasses an operator can
  act on: :class:`NoCard`, :class:`MuteCard`, :class:`UnsupportedCard`, :class:`CardRemoved`,
  :class:`CardReset`, :class:`ReaderUnavailable`. A failed transmission is told apart from a
  removal by asking pcscd for the reader state for up to ``removal_grace`` seconds (pcscd polls
  card presence about every 0.4 s): card gone → :class:`CardRemoved`, else :class:`MuteCard`.
* Timeouts: PC/SC has no per-command timeout; the reader applies the card's waiting time and
  reports a mute card as a failed transmission (the vpcd bridge imitates this with its
  ``reader_timeout``). Waiting for a card to arrive or leave takes a timeout
  (:meth:`PcscTransport.connect`, :func:`wait_for_card`, :func:`wait_for_removal`).
* Tracing: an optional hook receives every exchange on the wire as an :class:`ApduTrace`
  whose command has its secrets **redacted** (:func:`redact_command`): PINs (VERIFY, CHANGE
  REFERENCE DATA, RESET RETRY COUNTER, SSSE CHANGE/RELOAD PIN), keys (PUT KEY, WRITE KEY) and encrypted
  STORE DATA. Cryptograms (EXTERNAL AUTHENTICATE, INITIALIZE UPDATE) are not secret and stay.
  Responses to READ RECORD / READ BINARY (and their GET RESPONSE continuations) carry the
  card's records, personal data (identity number, name): the trace shows their length and status
  word only (:func:`redact_response`).

Threads: a PC/SC connection belongs to the thread that opened it. Never share a
:class:`PcscTransport` across threads: give each worker its own (one per reader). Calls from
another thread raise :class:`~cardperso.errors.UsageError`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from smartcard import scard

from cardperso.errors import TransportError, UsageError

log = logging.getLogger(__name__)


class NoCard(TransportError):
    """There is no card in the reader."""


class MuteCard(TransportError):
    """The card does not answer (no ATR, or no answer to a command within the waiting time)."""


class UnsupportedCard(TransportError):
    """The card's ATR or protocol is not one the reader (or we) can work with."""


class CardRemoved(TransportError):
    """The card was removed from the reader during the session."""


class CardReset(TransportError):
    """The card was reset (by another program or a power glitch): the session state is lost."""


class ReaderUnavailable(TransportError):
    """The reader (or pcscd itself) is not available."""


_ERRORS: dict[int, tuple[type[TransportError], str]] = {
    scard.SCARD_E_NO_SMARTCARD: (NoCard, "no card in the reader"),
    scard.SCARD_W_REMOVED_CARD: (CardRemoved, "the card was removed"),
    scard.SCARD_W_RESET_CARD: (CardReset, "the card was reset; start the session again"),
    scard.SCARD_W_UNRESPONSIVE_CARD: (MuteCard, "the card does not answer (mute card)"),
    scard.SCARD_W_UNPOWERED_CARD: (MuteCard, "the card cannot be powered (mute card)"),
    scard.SCARD_W_UNSUPPORTED_CARD: (UnsupportedCard, "unsupported card (ATR not usable)"),
    scard.SCARD_E_PROTO_MISMATCH: (
        UnsupportedCard,
        "the card's ATR offers none of the requested protocols (T=0/T=1) or does not parse",
    ),
    scard.SCARD_E_CARD_UNSUPPORTED: (UnsupportedCard, "unsupported card"),
    scard.SCARD_E_UNKNOWN_READER: (ReaderUnavailable, "no such reader"),
    scard.SCARD_E_READER_UNAVAILABLE: (ReaderUnavailable, "the reader is not available"),
    scard.SCARD_E_NO_READERS_AVAILABLE: (ReaderUnavailable, "no readers available"),
    scard.SCARD_E_NO_SERVICE: (
        ReaderUnavailable,
        "pcscd is not running (start it, see docs/virtual-readers.md)",
    ),
    scard.SCARD_E_SERVICE_STOPPED: (ReaderUnavailable, "pcscd stopped"),
    scard.SCARD_E_SHARING_VIOLATION: (
        ReaderUnavailable,
        "the card is in use by another program (exclusive access)",
    ),
    scard.SCARD_E_TIMEOUT: (NoCard, "timed out"),
}
#: Transmission failures: the card went mute, or was removed (we ask pcscd which).
_TRANSMIT_FAILURES = frozenset(
    {
        scard.SCARD_E_NOT_TRANSACTED,
        scard.SCARD_F_COMM_ERROR,
        scard.SCARD_E_COMM_DATA_LOST,
        scard.SCARD_F_UNKNOWN_ERROR,
    }
)


def pcsc_error(rc: int, reader: str, what: str) -> TransportError:
    """The :class:`TransportError` for PC/SC result ``rc`` of operation ``what``."""
    cls, meaning = _ERRORS.get(rc, (TransportError, ""))
    if not meaning:
        meaning = f"{scard.SCardGetErrorMessage(rc).strip()} (0x{rc & 0xFFFFFFFF:08X})"
    return cls(f"{reader}: {what}: {meaning}")


# -- tracing ----------------------------------------------------------------------------------

#: INS bytes whose command data are secret (PINs, keys); see :func:`redact_command`.
SECRET_INS = {
    0x20: "VERIFY",
    0x21: "VERIFY",
    0x24: "CHANGE REFERENCE DATA",
    0x2C: "RESET RETRY COUNTER",
    0x5E: "CHANGE/RELOAD PIN",
    0xD8: "PUT KEY",
    0xD4: "WRITE KEY",  # native COS (FMCOS): keys and PINs, enciphered or not
    0xC4: "PIN HASH",  # the PKI application (docs/pki.md): the PIN in clear
    0x4E: "KEY ENVELOPE",  # the PKI application: the SM2-encrypted SM4 key
    0xC2: "IMPORT KEY",  # the PKI application: a private key under the envelope's key
}
INS_STORE_DATA = 0xE2


#: INS bytes whose command data are personal records (UPDATE BINARY / UPDATE RECORD), or name
#: the holder (PERFORM SECURITY OPERATION: the PKI's SIGN of a certificate request, whose
#: subject is the holder's name in clear on a native chip).
RECORD_WRITE_INS = frozenset({0xD6, 0xD7, 0xDC, 0xDD, 0x2A})


def command_is_secret(apdu: bytes) -> bool:
    """True when the command data carry a secret or personal data: PINs, keys, and every
    STORE DATA (encrypted DGIs, and in clear the cardholder's records) and record update."""
    if len(apdu) < 4:
        return False
    ins = apdu[1]
    return ins in SECRET_INS or ins == INS_STORE_DATA or ins in RECORD_WRITE_INS


def redact_command(apdu: bytes) -> str:
    """The command as hex, with the data field replaced by ``<N bytes redacted>`` if secret."""
    if not command_is_secret(apdu) or len(apdu) <= 5:
        return apdu.hex().upper()
    if apdu[4] == 0 and len(apdu) >= 7:
        lc_len, lc = 3, int.from_bytes(apdu[5:7], "big")
    else:
        lc_len, lc = 1, apdu[4]
    head = apdu[: 4 + lc_len].hex().upper()
    tail = apdu[4 + lc_len + lc :].hex().upper()
    return f"{head} <{lc} bytes redacted>{' ' + tail if tail else ''}"


#: INS bytes whose responses are the card's records (personal data); see :func:`redact_response`.
RECORD_INS = {
    0xB0: "READ BINARY",
    0xB1: "READ BINARY",
    0xB2: "READ RECORD",
    0xB3: "READ RECORD",
    0xA8: "GET PROCESSING OPTIONS",  # a qPBOC answer carries 57 (track 2: the PAN) and 5F20
}


def redact_response(command: bytes, response: bytes) -> str:
    """The response as hex; for READ RECORD / READ BINARY / GET PROCESSING OPTIONS ``command``
    the data field is replaced by ``<N bytes of records>`` (records, and a qPBOC GPO answer,
    hold personal data), the status word stays."""
    if len(command) >= 2 and command[1] in RECORD_INS and len(response) > 2:
        return f"<{len(response) - 2} bytes of records> {response[-2:].hex().upper()}"
    return response.hex().upper()


@dataclass(frozen=True, slots=True)
class ApduTrace:
    """One exchange on the wire: the command (secrets redacted), the response, the time."""

    reader: str
    command: str
    response: str
    seconds: float

    def __str__(self) -> str:
        return f"{self.reader}: > {self.command}  < {self.response}  ({self.seconds * 1e3:.2f} ms)"


TraceHook = Callable[[ApduTrace], None]


def log_trace(logger: logging.Logger | None = None, level: int = logging.DEBUG) -> TraceHook:
    """A trace hook that logs each exchange (already redacted) to ``logger``."""
    target = logger or log

    def hook(trace: ApduTrace) -> None:
        target.log(level, "%s", trace)

    return hook


# -- the transport ----------------------------------------------------------------------------

_PROTOCOLS = {
    "any": scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
    "T=0": scard.SCARD_PROTOCOL_T0,
    "T=1": scard.SCARD_PROTOCOL_T1,
}
_PROTOCOL_NAMES = {scard.SCARD_PROTOCOL_T0: "T=0", scard.SCARD_PROTOCOL_T1: "T=1"}
#: At most this many GET RESPONSE commands for one command (a card looping on 61xx is broken).
MAX_GET_RESPONSE = 256


def _establish() -> int:
    rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rc != scard.SCARD_S_SUCCESS:
        raise pcsc_error(rc, "PC/SC", "establish context")
    return int(ctx)


def _with_le(apdu: bytes, le: int) -> bytes | None:
    """The same short command with Le set to ``le`` (for a 6Cxx re-send); None if extended."""
    if len(apdu) > 5 and apdu[4] == 0:
        return None  # extended length: 6Cxx does not apply
    if len(apdu) == 4:
        return apdu + bytes([le])
    if len(apdu) == 5:
        return apdu[:4] + bytes([le])
    lc = apdu[4]
    if len(apdu) == 5 + lc:
        return apdu + bytes([le])
    return apdu[: 5 + lc] + bytes([le])


def _get_response_cla(cla: int) -> int:
    # Keep the logical-channel bits of the command's class (ISO 7816-4 5.4.1).
    return cla & 0x03 if cla & 0x40 == 0 else 0x40 | (cla & 0x0F)


class PcscTransport:
    """One PC/SC reader: ``connect`` → ``transmit(bytes) -> bytes`` … → ``disconnect``.

    ``protocol`` is ``"any"`` (T=0 or T=1, as the card allows), ``"T=0"`` or ``"T=1"``;
    ``exclusive`` asks pcscd for exclusive access; ``trace`` receives every exchange with
    secrets redacted. Use from one thread only (see the module docstring).
    """

    def __init__(
        self,
        reader: str,
        *,
        protocol: str = "any",
        exclusive: bool = False,
        trace: TraceHook | None = None,
        removal_grace: float = 1.0,
    ) -> None:
        if protocol not in _PROTOCOLS:
            raise UsageError(f"protocol must be one of {', '.join(_PROTOCOLS)}")
        self.reader = reader
        self.trace = trace
        self.removal_grace = removal_grace
        self._want = _PROTOCOLS[protocol]
        self._share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        self._ctx: int | None = None
        self._card: int | None = None
        self._proto = 0
        self._atr = b""
        self._owner = 0

    def __repr__(self) -> str:
        state = "connected" if self._card is not None else "disconnected"
        return f"PcscTransport({self.reader!r}, {state})"

    # -- connection ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._card is not None

    @property
    def atr(self) -> bytes:
        """The card's answer to reset (empty before :meth:`connect`)."""
        return self._atr

    @property
    def protocol(self) -> str:
        """``"T=0"`` or ``"T=1"`` once connected."""
        return _PROTOCOL_NAMES.get(self._proto, "")

    def connect(self, timeout: float = 0.0) -> bytes:
        """Connect to the card (waiting up to ``timeout`` s for one to arrive); returns the ATR."""
        if self._card is not None:
            raise UsageError(f"{self.reader}: already connected")
        me = threading.get_ident()
        if self._ctx is not None and self._owner != me:
            # A context left by a failed connect in another thread: contexts stay per thread.
            scard.SCardReleaseContext(self._ctx)
            self._ctx = None
        self._owner = me
        if self._ctx is None:
            self._ctx = _establish()
        if (
            timeout > 0
            and _wait_state(self._ctx, self.reader, present=True, timeout=timeout) is None
        ):
            raise NoCard(f"{self.reader}: no card arrived within {timeout:g} s")
        rc, card, proto = scard.SCardConnect(self._ctx, self.reader, self._share, self._want)
        if rc != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rc, self.reader, "connect")
        self._card, self._proto = int(card), int(proto)
        self._atr = self._status_atr()
        return self._atr

    def _status_atr(self) -> bytes:
        assert self._card is not None
        rc, _name, _state, _proto, atr = scard.SCardStatus(self._card)
        if rc != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rc, self.reader, "status")
        return bytes(atr)

    def reset(self, *, cold: bool = False) -> bytes:
        """Warm reset (``cold=True``: power cycle) and reconnect; returns the new ATR."""
        card = self._connected_card()
        how = scard.SCARD_UNPOWER_CARD if cold else scard.SCARD_RESET_CARD
        rc, proto = scard.SCardReconnect(card, self._share, self._want, how)
        if rc != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rc, self.reader, "reset")
        self._proto = int(proto)
        self._atr = self._status_atr()
        return self._atr

    def reconnect(self) -> bytes:
        """Warm reset (the name :class:`~cardperso.sim.inprocess.InProcessTransport` uses)."""
        return self.reset()

    def disconnect(self, *, unpower: bool = False) -> None:
        """Release the card (left powered unless ``unpower``) and the PC/SC context."""
        if self._card is not None:
            how = scard.SCARD_UNPOWER_CARD if unpower else scard.SCARD_LEAVE_CARD
            scard.SCardDisconnect(self._card, how)  # failures here change nothing for us
            self._card = None
        if self._ctx is not None:
            scard.SCardReleaseContext(self._ctx)
            self._ctx = None
        self._atr = b""
        self._proto = 0

    def __enter__(self) -> PcscTransport:
        if self._card is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def _connected_card(self) -> int:
        if self._card is None:
            raise UsageError(f"{self.reader}: not connected")
        if threading.get_ident() != self._owner:
            raise UsageError(
                f"{self.reader}: a PC/SC connection is used from one thread only; "
                "open one transport per worker thread"
            )
        return self._card

    # -- APDUs ----------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        """Send a command APDU, return ``data || SW1 SW2`` (61xx and 6Cxx handled here)."""
        response = self._exchange(apdu)
        sw1 = response[-2]
        if sw1 == 0x6C and len(apdu) >= 4:
            again = _with_le(apdu, response[-1])
            if again is not None:
                response = self._exchange(again)
                sw1 = response[-2]
        if sw1 == 0x61:
            data = bytearray(response[:-2])
            get_response = bytes([_get_response_cla(apdu[0]), 0xC0, 0x00, 0x00, 0])
            for _ in range(MAX_GET_RESPONSE):
                response = self._exchange(get_response[:4] + response[-1:], about=apdu)
                data += response[:-2]
                if response[-2] != 0x61:
                    break
            else:
                raise MuteCard(f"{self.reader}: the card keeps answering 61xx (GET RESPONSE loop)")
            response = bytes(data) + response[-2:]
        return response

    def _exchange(self, apdu: bytes, *, about: bytes | None = None) -> bytes:
        """One SCardTransmit; ``about`` is the command a GET RESPONSE continues (for the trace)."""
        card = self._connected_card()
        if self.trace is not None:
            started = time.perf_counter()
        rc, answer = scard.SCardTransmit(card, self._proto, list(apdu))
        if rc != scard.SCARD_S_SUCCESS:
            raise self._transmit_error(rc)
        if len(answer) < 2:
            # vpcd answers an empty response when the card program went away mid-command.
            raise self._transmit_error(None)
        response = bytes(answer)
        if self.trace is not None:
            self.trace(
                ApduTrace(
                    self.reader,
                    redact_command(apdu),
                    redact_response(about or apdu, response),
                    time.perf_counter() - started,
                )
            )
        return response

    def _transmit_error(self, rc: int | None) -> TransportError:
        if rc is not None and rc not in _TRANSMIT_FAILURES:
            return pcsc_error(rc, self.reader, "transmit")
        # Mute, or removed before pcscd noticed? Ask pcscd for a little while.
        assert self._ctx is not None
        try:
            gone = _wait_state(self._ctx, self.reader, present=False, timeout=self.removal_grace)
        except TransportError as exc:
            return exc
        if gone is None:
            return MuteCard(f"{self.reader}: the card did not answer the command (mute card)")
        return CardRemoved(f"{self.reader}: the card was removed during the command")


# -- readers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    """A PC/SC reader as pcscd reports it now."""

    name: str
    card_present: bool
    atr: bytes


@contextlib.contextmanager
def _context() -> Iterator[int]:
    """A PC/SC context for one call in this thread, released on exit."""
    ctx = _establish()
    try:
        yield ctx
    finally:
        scard.SCardReleaseContext(ctx)


def list_readers() -> list[ReaderInfo]:
    """Every PC/SC reader with whether a card is present and its ATR (like ``pcsc_scan``)."""
    with _context() as ctx:
        rc, names = scard.SCardListReaders(ctx, [])
        if rc == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if rc != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rc, "PC/SC", "list readers")
        if not names:
            return []
        rc, states = scard.SCardGetStatusChange(
            ctx, 0, [(str(n), scard.SCARD_STATE_UNAWARE) for n in names]
        )
        if rc != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rc, "PC/SC", "reader states")
        out = []
        for name, event, atr in states:
            present = bool(event & scard.SCARD_STATE_PRESENT)
            out.append(ReaderInfo(str(name), present, bytes(atr) if present else b""))
        return out


def _wait_state(ctx: int, reader: str, *, present: bool, timeout: float) -> bytes | None:
    """Wait until ``reader`` has (or has no) card: its ATR (b"" if none), or None on timeout."""
    want = scard.SCARD_STATE_PRESENT if present else scard.SCARD_STATE_EMPTY
    deadline = time.monotonic() + timeout
    state = scard.SCARD_STATE_UNAWARE
    while True:
        left = max(0, int((deadline - time.monotonic()) * 1000))
        rc, states = scard.SCardGetStatusChange(ctx, left if state else 0, [(reader, state)])
        if rc == scard.SCARD_E_TIMEOUT:
            break
        if rc != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rc, reader, "wait for the card")
        _name, event, atr = states[0]
        if event & scard.SCARD_STATE_UNKNOWN:
            raise ReaderUnavailable(f"{reader}: no such reader")
        if event & want:
            return bytes(atr)
        state = event & ~scard.SCARD_STATE_CHANGED
        if time.monotonic() >= deadline:
            break
    return None


def wait_for_card(reader: str, timeout: float) -> bytes:
    """Wait up to ``timeout`` s for a card in ``reader``; returns its ATR, or raises NoCard."""
    with _context() as ctx:
        atr = _wait_state(ctx, reader, present=True, timeout=timeout)
    if atr is None:
        raise NoCard(f"{reader}: no card arrived within {timeout:g} s")
    return atr


def wait_for_removal(reader: str, timeout: float) -> None:
    """Wait up to ``timeout`` s until ``reader`` is empty (TransportError on timeout)."""
    with _context() as ctx:
        gone = _wait_state(ctx, reader, present=False, timeout=timeout)
    if gone is None:
        raise TransportError(f"{reader}: the card was not taken out within {timeout:g} s")
