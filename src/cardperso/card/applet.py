"""What every on-card application shares: the parsed command, status-word exits, the base class.

An applet method either returns response data (the dispatcher appends ``90 00``), returns a
full :class:`Reply` (data and a status word other than 9000), or raises :class:`Sw` with a
status word. Nothing else may escape: the dispatcher turns any other exception into ``6F00``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cardperso.codec.apdu import CommandAPDU
from cardperso.errors import CardPersoError

if TYPE_CHECKING:
    from cardperso.card.state import CardState


class Sw(Exception):
    """Leave command processing with status word ``sw`` (and optional response data)."""

    def __init__(self, sw: int, data: bytes = b"") -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw
        self.data = data


# Status words the card uses (ISO/IEC 7816-4, GlobalPlatform, EMV).
SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_CHANNEL_NOT_SUPPORTED = 0x6881
SW_SM_NOT_SUPPORTED = 0x6882
SW_CHAIN_LAST_EXPECTED = 0x6883
SW_CHAINING_NOT_SUPPORTED = 0x6884
SW_SECURITY = 0x6982
SW_AUTH_BLOCKED = 0x6983
SW_CONDITIONS = 0x6985
SW_SM_INCORRECT = 0x6988
SW_WRONG_DATA = 0x6A80
SW_FUNC_NOT_SUPPORTED = 0x6A81
SW_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
SW_WRONG_P1P2 = 0x6A86
SW_REF_NOT_FOUND = 0x6A88
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_UNKNOWN = 0x6F00


@dataclass(frozen=True, slots=True)
class Command:
    """A command APDU as the card sees it (short or extended length)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None
    raw: bytes

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))


def parse_command(raw: bytes) -> Command:
    """Parse ISO/IEC 7816-3 cases 1-4 (short and extended) with :mod:`cardperso.codec.apdu`;
    raise :class:`Sw` 6700 when the length fields do not match the bytes received, 6E00 /
    6D00 for a CLA / INS no card may use (``FF``; ``6x``, ``9x``)."""
    if len(raw) >= 2 and raw[0] == 0xFF:
        raise Sw(SW_CLA_NOT_SUPPORTED)
    if len(raw) >= 2 and raw[1] & 0xF0 in (0x60, 0x90):
        raise Sw(SW_INS_NOT_SUPPORTED)
    try:
        c = CommandAPDU.parse(raw)
    except CardPersoError:
        raise Sw(SW_WRONG_LENGTH) from None
    return Command(c.cla, c.ins, c.p1, c.p2, c.data, c.le, bytes(raw))


@dataclass(frozen=True, slots=True)
class Reply:
    """Response data with a status word other than 9000 (e.g. 63Cx with no data)."""

    data: bytes
    sw: int


class Applet:
    """Base class of on-card applications: selection hooks and command processing."""

    kind = "applet"

    def __init__(self, nv: CardState) -> None:
        self.nv = nv

    def rebind(self, nv: CardState) -> None:
        """Point the applet at a (reloaded) non-volatile state and drop volatile state."""
        self.nv = nv
        self.deselect()

    def select(self, cmd: Command, aid: bytes) -> bytes | Reply:
        """Answer SELECT (the FCI)."""
        raise Sw(SW_NOT_FOUND)

    def deselect(self) -> None:
        """Drop volatile state (another application was selected, reset, power off)."""

    def process(self, cmd: Command) -> bytes | Reply:
        """Process one command while selected."""
        raise Sw(SW_INS_NOT_SUPPORTED)


def need(condition: bool, sw: int) -> None:
    """Raise :class:`Sw` ``sw`` unless ``condition``."""
    if not condition:
        raise Sw(sw)
