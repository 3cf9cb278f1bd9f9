"""The virtual card: APDU bytes in, response bytes out, non-volatile memory in one image file.

How this works
--------------
* :class:`VirtualCard` owns the non-volatile state (:class:`~cardperso.card.state.CardState`),
  the applets that act on it (issuer security domain, SSSE, PBOC and its PSE/PPSE directories)
  and the volatile state (power, selected application, secure channel: kept by the applets).
* Every APDU is one EEPROM transaction: after a command that may change non-volatile memory
  the card serializes its state and, when it differs from the last committed image, writes the
  image atomically (:func:`~cardperso.card.state.write_image`). A tearing fault loses power just
  before that commit: the in-memory state is rolled back to the last committed image.
* :meth:`VirtualCard.transmit` never raises for a bad APDU: it answers a status word. It only
  raises the transport faults of :mod:`cardperso.card.faults` (mute, removed, torn) and
  :class:`CardMute` when the card is not powered.
* The card never sleeps: :attr:`VirtualCard.faults` ``.latency(command, response)`` tells the
  driving transport how long to wait.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from cardperso.card import lifecycle
from cardperso.card.applet import (
    SW_CHANNEL_NOT_SUPPORTED,
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS,
    SW_FUNC_NOT_SUPPORTED,
    SW_NOT_FOUND,
    SW_UNKNOWN,
    SW_WRONG_P1P2,
    Applet,
    Command,
    Reply,
    Sw,
    parse_command,
)
from cardperso.card.directory import PPSE_NAME, PSE_NAME, DirectoryApplet
from cardperso.card.faults import CardMute, CardRemoved, CardTorn, FaultPlan
from cardperso.card.isd import IssuerSecurityDomain
from cardperso.card.pboc import PbocApplet
from cardperso.card.perso import Personalizer
from cardperso.card.pki import PKI_MODULE, PKI_PACKAGE, PkiApplet
from cardperso.card.ssse import SsseApplet
from cardperso.card.state import (
    GP_TEST_KEY,
    CardState,
    KeySet,
    Package,
    SecurityDomain,
    dumps,
    loads,
    read_image,
    write_image,
)
from cardperso.crypto import primitives as cp
from cardperso.errors import CardPersoError, UsageError
from cardperso.layouts.gp import ISD_AID

log = logging.getLogger(__name__)

#: Load files present on a blank card (documented in docs/card-dgi-map.md).
SSSE_PACKAGE = bytes.fromhex("D156000005FF01")
SSSE_MODULE = bytes.fromhex("D156000005FF0101")
PBOC_PACKAGE = bytes.fromhex("A0000003330101")
PBOC_MODULE = bytes.fromhex("A000000333010101")

#: Instructions that never change non-volatile memory (their commit check is skipped).
_READ_ONLY_INS = frozenset({0xA4, 0xB0, 0xB2, 0xCA, 0xCB, 0x84, 0xC0, 0xF2})
#: SW1 values after which a command's non-volatile changes are committed (success, warnings).
_KEEP_SW1 = frozenset({0x90, 0x61, 0x62, 0x63})


def build_atr(serial: bytes, lifecycle_state: str) -> bytes:
    """ATR: T=0 and T=1 offered, 12 historical bytes ``00 'CPSS' serial(4) LCS 90 00`` (category
    00: the last three bytes are a status indicator, ISO/IEC 7816-4 8.1.1) and TCK."""
    lcs = lifecycle.CODING.get(lifecycle_state, 0) & 0xFF
    hist = b"\x00CPSS" + serial + bytes((lcs, 0x90, 0x00))
    body = bytes((0x80 | len(hist), 0x80, 0x01)) + hist
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes((tck,))


class VirtualCard:
    """A card with a GP issuer security domain, an SSSE application and a PBOC application."""

    def __init__(self, path: Path, state: CardState, *, strict: bool = False) -> None:
        self.path = Path(path)
        self._nv = state
        self._committed = dumps(state, compact=True)
        self.faults = FaultPlan()
        #: Re-raise unexpected exceptions instead of answering 6F00 (tests and fuzzing).
        self.strict = strict
        self._powered = False
        self.isd = IssuerSecurityDomain(state, self)
        self.ssse = SsseApplet(state)
        self.pboc = PbocApplet(state)
        self.pse = DirectoryApplet(state, contactless=False)
        self.ppse = DirectoryApplet(state, contactless=True)
        self.pki = PkiApplet(state, self)
        #: Supplementary security domains' applets, by AID (hex), made on first selection.
        self._ssd_applets: dict[str, IssuerSecurityDomain] = {}
        self._selected: Applet | None = None

    # -- creation and loading ------------------------------------------------------------------

    @classmethod
    def create_blank(
        cls,
        path: Path,
        *,
        serial: bytes | None = None,
        scp: str = "02",
        max_auth_failures: int = 10,
        transport_key: bytes = GP_TEST_KEY,
    ) -> VirtualCard:
        """Create a blank card image at ``path`` (refuses to overwrite an existing file) whose
        issuer security domain holds the card vendor's ``transport_key`` (ENC = MAC = DEK, key
        version FF; by default the GlobalPlatform test key 40..4F)."""
        path = Path(path)
        if scp not in ("02", "03"):
            raise UsageError("scp must be '02' or '03'")
        if len(transport_key) not in ((16,) if scp == "02" else (16, 24, 32)):
            raise UsageError(f"a transport key for SCP{scp} cannot be {len(transport_key)} bytes")
        if serial is None:
            serial = fresh_serial(path.parent)
        if len(serial) != 4:
            raise UsageError("the chip serial is 4 bytes")
        if path.exists():
            raise UsageError(f"card image {path} already exists")
        state = CardState(
            serial=serial,
            lifecycle="OP_READY",
            isd=SecurityDomain(
                aid=ISD_AID,
                scp=scp,
                keys=[KeySet(0xFF, transport_key, transport_key, transport_key)],
                max_auth_failures=max_auth_failures,
            ),
            packages=[
                Package(SSSE_PACKAGE, SSSE_MODULE, "ssse"),
                Package(PBOC_PACKAGE, PBOC_MODULE, "pboc"),
                Package(PKI_PACKAGE, PKI_MODULE, "pki"),
            ],
            cplc=build_cplc(serial),
        )
        write_image(path, dumps(state))
        return cls(path, state)

    @classmethod
    def load(cls, path: Path) -> VirtualCard:
        """Load a card image written by :meth:`create_blank` or by a previous session."""
        path = Path(path)
        return cls(path, read_image(path))

    # -- inspection --------------------------------------------------------------------------

    @property
    def state(self) -> CardState:
        """The non-volatile state (read it; change it only through APDUs)."""
        return self._nv

    @property
    def serial(self) -> bytes:
        return self._nv.serial

    @property
    def atr(self) -> bytes:
        if self.faults.wrong_atr is not None:
            return self.faults.wrong_atr
        return build_atr(self._nv.serial, self._nv.lifecycle)

    @property
    def powered(self) -> bool:
        return self._powered

    @property
    def contactless(self) -> bool:
        """The card is in a contactless field (volatile: the reader, not the card's memory).
        The PBOC application then answers with its contactless FCI and takes the qPBOC path
        (:mod:`cardperso.card.qpboc`)."""
        return self.pboc.contactless

    @contactless.setter
    def contactless(self, value: bool) -> None:
        self.pboc.contactless = bool(value)

    # -- power -------------------------------------------------------------------------------

    def power_on(self) -> bytes:
        """Power the card on (a cold reset): volatile state is cleared; returns the ATR."""
        self.faults.before_power()
        self._drop_volatile()
        self._powered = True
        self._selected = self.isd
        return self.atr

    def power_off(self) -> None:
        self._drop_volatile()
        self._powered = False

    def reset(self) -> bytes:
        """Warm reset: same effect on the state as a power cycle; returns the ATR."""
        return self.power_on()

    def _drop_volatile(self) -> None:
        for applet in self._applets():
            applet.deselect()
        self._selected = None

    def _applets(self) -> tuple[Applet, ...]:
        return (self.isd, self.ssse, self.pboc, self.pse, self.ppse, self.pki,
                *self._ssd_applets.values())  # fmt: skip

    def _ssd_applet(self, aid: bytes) -> IssuerSecurityDomain:
        key = aid.hex().upper()
        applet = self._ssd_applets.get(key)
        if applet is None:
            applet = self._ssd_applets[key] = IssuerSecurityDomain(self._nv, self, aid)
        return applet

    # -- the APDU path -------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU, return ``data || SW1 SW2``."""
        try:
            self.faults.before_command()
        except CardRemoved:
            self.power_off()  # a removed card has lost its power (and volatile state)
            raise
        if not self._powered:
            raise CardMute("card is not powered")
        apdu = bytes(apdu)
        try:
            response = self._dispatch(apdu)
        except Exception:
            if self.strict:
                raise
            log.exception("virtual card: unexpected error, answering 6F00")
            self._rollback()
            return SW_UNKNOWN.to_bytes(2, "big")
        if len(apdu) < 2 or apdu[1] not in _READ_ONLY_INS:
            self._commit(response[-2] in _KEEP_SW1)
        return response

    def personalizer(self, kind: str) -> Personalizer:
        """The STORE DATA receiver of the application kind ``kind`` (for the ISD)."""
        if kind == "ssse":
            return self.ssse.personalizer()
        if kind == "pboc":
            return self.pboc.personalizer()
        raise UsageError(f"no personalizer for {kind!r}")  # pragma: no cover

    def _commit(self, keep: bool) -> None:
        """End of the APDU's transaction: commit when the command succeeded (or answered a
        warning, e.g. 63Cx after counting a failed PIN), otherwise abort it."""
        text = dumps(self._nv, compact=True)
        if text == self._committed:
            return
        if not keep:
            self._restore()
            return
        if self.faults.tear_next_write:
            self.faults.tear_next_write = False
            write_image(self.path, dumps(self._nv), tear=True)
            self._rollback()
            self.power_off()
            raise CardTorn("power lost while writing non-volatile memory")
        write_image(self.path, dumps(self._nv))
        self._committed = text

    def _restore(self) -> None:
        """Abort the transaction in place: non-volatile memory back to the last commit,
        volatile state (selection, secure channel) kept."""
        old = loads(self._committed)
        for f in dataclasses.fields(old):
            setattr(self._nv, f.name, getattr(old, f.name))

    def _rollback(self) -> None:
        """Abort the transaction: back to the last committed image, volatile state dropped."""
        self._nv = loads(self._committed)
        for applet in self._applets():
            applet.rebind(self._nv)
        self._selected = self.isd if self._powered else None

    def _dispatch(self, apdu: bytes) -> bytes:
        try:
            cmd = parse_command(apdu)
            result = self._route(cmd)
        except Sw as sw:
            return sw.data + sw.sw.to_bytes(2, "big")
        if isinstance(result, Reply):
            return result.data + result.sw.to_bytes(2, "big")
        return result + b"\x90\x00"

    def _route(self, cmd: Command) -> bytes | Reply:
        if cmd.cla & 0x40 or (cmd.cla & 0x60 == 0x20):
            raise Sw(SW_CLA_NOT_SUPPORTED)
        if cmd.cla & 0x03:
            raise Sw(SW_CHANNEL_NOT_SUPPORTED)  # only the basic logical channel
        if cmd.ins == 0x70:  # MANAGE CHANNEL
            raise Sw(SW_FUNC_NOT_SUPPORTED)
        if cmd.ins == 0xA4 and cmd.p1 == 0x04 and cmd.cla & 0x80 == 0:
            return self._select(cmd)
        if self._selected is None:
            raise Sw(SW_CONDITIONS)
        return self._selected.process(cmd)

    def _select(self, cmd: Command) -> bytes | Reply:
        if cmd.p2 & 0xFC not in (0x00, 0x0C) or cmd.p2 & 0x03 not in (0x00, 0x02):
            raise Sw(SW_WRONG_P1P2)
        aid = cmd.data
        target, full = self._find(aid)
        if target is None:
            raise Sw(SW_NOT_FOUND)
        if target is not self._selected and self._selected is not None:
            self._selected.deselect()
        self._selected = target
        return target.select(cmd, full)

    def _find(self, aid: bytes) -> tuple[Applet | None, bytes]:
        if not aid or (ISD_AID.startswith(aid) and len(aid) >= 5):
            return self.isd, ISD_AID
        card_ok = lifecycle.card_usable(self._nv.lifecycle)
        if aid in (PSE_NAME, PPSE_NAME):
            if not card_ok:
                return None, b""
            directory = self.pse if aid == PSE_NAME else self.ppse
            return (directory, aid) if directory.available() else (None, b"")
        for app in self._nv.apps.values():
            if app.aid.startswith(aid) and len(aid) >= 5:
                if not (card_ok and lifecycle.selectable(app.lifecycle)):
                    return None, b""
                applet: Applet
                if app.kind == "ssd":
                    applet = self._ssd_applet(app.aid)
                elif app.kind == "pki":
                    applet = self.pki
                else:
                    applet = self.ssse if app.kind == "ssse" else self.pboc
                return applet, app.aid
        return None, b""


def fresh_serial(directory: Path, draw: Callable[[int], bytes] = cp.random_bytes) -> bytes:
    """A random 4-byte chip serial not used by any card image already in ``directory``
    (random alone would collide within tens of thousands of cards)."""
    used: set[str] = set()
    if directory.is_dir():
        for image in directory.glob("*.json"):
            try:
                used.add(read_image(image).serial.hex())
            except (OSError, CardPersoError):
                continue
    while True:
        serial = draw(4)
        if serial.hex() not in used:
            return serial


def build_cplc(serial: bytes) -> bytes:
    """CPLC data (GP 2.3 table H-2 layout, 42 bytes) carrying the 4-byte IC serial number."""
    fabricator = b"\x47\x90"  # IC fabricator
    ic_type = b"\x50\x40"
    os_id = b"\x47\x91"
    os_date = b"\x63\x26"  # YDDD
    os_level = b"\x01\x00"
    fab_date = b"\x63\x26"
    batch = b"\x00\x01"
    module_fab = b"\x00\x00"
    module_date = b"\x00\x00"
    ic_manuf = b"\x00\x00"
    embed_date = b"\x00\x00"
    pre_perso = b"\x00\x00"
    pre_perso_date = b"\x00\x00"
    pre_perso_equip = b"\x00\x00\x00\x00"
    perso = b"\x00\x00"
    perso_date = b"\x00\x00"
    perso_equip = b"\x00\x00\x00\x00"
    return (
        fabricator
        + ic_type
        + os_id
        + os_date
        + os_level
        + fab_date
        + serial
        + batch
        + module_fab
        + module_date
        + ic_manuf
        + embed_date
        + pre_perso
        + pre_perso_date
        + pre_perso_equip
        + perso
        + perso_date
        + perso_equip
    )
