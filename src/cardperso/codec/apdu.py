"""Command and response APDUs (ISO/IEC 7816-4:2020, 5.1 and 5.2).

How this works
--------------
A command is ``CLA INS P1 P2 [Lc data] [Le]``. ISO 7816-4 names four cases by whether data
(Nc > 0) and an expected length (Ne) are present, each in a short and an extended form:

=====  ==========================================  =======================================
case   short (Nc <= 255, Ne <= 256)                extended (Nc <= 65535, Ne <= 65536)
=====  ==========================================  =======================================
1      header                                       -
2      header Le (00 = 256)                         header 00 Le1 Le2 (0000 = 65536)
3      header Lc data                               header 00 Lc1 Lc2 data
4      header Lc data Le                            header 00 Lc1 Lc2 data Le1 Le2
=====  ==========================================  =======================================

:attr:`CommandAPDU.le` is *Ne*, the number of bytes expected: ``None`` for no Le field, ``256``
for the short ``Le = 00`` ("up to 256"), ``65536`` for the extended ``0000``. ``le=0`` is
refused as ambiguous. :meth:`CommandAPDU.parse` tells every malformed length apart with a
:class:`~cardperso.errors.DecodeError` whose ``field`` is ``"Lc"``, ``"Le"`` or ``"header"``, so
a card (the virtual card) can answer ``6700``.

Reprs show the header and lengths, never the data: command data carries PINs and keys.

:func:`chain` splits a data field too long for one short command into an ISO/IEC 7816-4
command chain (2005 edition 5.1.1.1; CLA bit b5, table 2): every command but the last has
b5 set (:data:`CLA_CHAIN`), the card gathers the pieces and acts on the last one, which alone
carries Le. A card that does not chain answers ``6884``; one whose chain is broken by another
command answers ``6883`` (last command of the chain expected).
"""

from __future__ import annotations

from dataclasses import dataclass

from cardperso.codec import status
from cardperso.errors import DecodeError, UsageError

__all__ = ["CLA_CHAIN", "CommandAPDU", "ResponseAPDU", "chain"]

MAX_SHORT_NC = 255
MAX_SHORT_NE = 256
MAX_EXTENDED_NC = 65535
MAX_EXTENDED_NE = 65536
#: CLA bit b5 (ISO/IEC 7816-4:2005 5.1.1, table 2): the command is not the last of a chain.
CLA_CHAIN = 0x10


def _byte(name: str, v: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFF:
        raise UsageError(f"APDU {name} must be an int from 00 to FF, got {v!r}")


@dataclass(frozen=True, slots=True)
class CommandAPDU:
    """A command APDU; ``le`` is Ne (None = no Le field, 256 = short ``00``)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            _byte(name, getattr(self, name))
        if not isinstance(self.data, bytes):
            if not isinstance(self.data, (bytearray, memoryview)):
                raise UsageError(f"APDU data must be bytes, got {type(self.data).__name__}")
            object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) > MAX_EXTENDED_NC:
            raise UsageError(f"APDU data is {len(self.data)} bytes, max {MAX_EXTENDED_NC}")
        le = self.le
        if le is not None and (
            isinstance(le, bool) or not isinstance(le, int) or not 1 <= le <= MAX_EXTENDED_NE
        ):
            raise UsageError(
                f"APDU le must be None or 1-{MAX_EXTENDED_NE} (256 for a short Le of 00), "
                f"got {le!r}"
            )

    # --- encoding ---------------------------------------------------------------------------

    @property
    def extended(self) -> bool:
        """True when the lengths need the extended form."""
        return len(self.data) > MAX_SHORT_NC or (self.le is not None and self.le > MAX_SHORT_NE)

    @property
    def case(self) -> str:
        """ISO 7816-4 case of the encoding :meth:`to_bytes` chooses: 1, 2S, 3S, 4S, 2E, 3E, 4E."""
        n = 1 + (1 if self.le is not None else 0) + (2 if self.data else 0)
        return "1" if n == 1 else f"{n}{'E' if self.extended else 'S'}"

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def to_bytes(self, *, extended: bool | None = None) -> bytes:
        """Encode; short form unless a length needs extended (or ``extended=True`` forces it)."""
        ext = self.extended if extended is None else extended
        if not ext and self.extended:
            raise UsageError(f"{self!r} needs the extended length form")
        if ext and not self.data and self.le is None:
            raise UsageError("a case 1 APDU has no extended form")
        out = bytearray(self.header)
        nc = len(self.data)
        if ext:
            if nc:
                out += b"\x00" + nc.to_bytes(2, "big") + self.data
            if self.le is not None:
                if not nc:
                    out += b"\x00"
                out += (self.le % 65536).to_bytes(2, "big")
        else:
            if nc:
                out += bytes([nc]) + self.data
            if self.le is not None:
                out.append(self.le % 256)
        return bytes(out)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    # --- decoding ---------------------------------------------------------------------------

    @classmethod
    def parse(cls, raw: bytes) -> CommandAPDU:
        """Decode any of cases 1, 2S, 3S, 4S, 2E, 3E, 4E; malformed lengths raise DecodeError."""
        apdu = bytes(raw)
        n = len(apdu)
        if n < 4:
            raise DecodeError(f"APDU is {n} bytes, shorter than the 4-byte header", field="header")
        cla, ins, p1, p2 = apdu[:4]
        if n == 4:  # case 1
            return cls(cla, ins, p1, p2)
        if n == 5:  # case 2S
            return cls(cla, ins, p1, p2, b"", apdu[4] or 256)
        if apdu[4] != 0:  # case 3S or 4S
            nc = apdu[4]
            if n == 5 + nc:
                return cls(cla, ins, p1, p2, apdu[5:])
            if n == 6 + nc:
                return cls(cla, ins, p1, p2, apdu[5:-1], apdu[-1] or 256)
            raise DecodeError(
                f"short Lc={nc} but {n - 5} bytes follow it (expected {nc} or {nc + 1})",
                offset=4,
                field="Lc",
            )
        # apdu[4] == 00 and more than 5 bytes: extended lengths
        if n == 6:
            raise DecodeError(
                "byte 5 is 00 (extended length) but only one byte follows it", offset=4, field="Lc"
            )
        if n == 7:  # case 2E
            return cls(cla, ins, p1, p2, b"", int.from_bytes(apdu[5:7], "big") or 65536)
        nc = int.from_bytes(apdu[5:7], "big")
        if nc == 0:
            raise DecodeError(
                f"extended Lc is 0000 but {n - 7} bytes follow it", offset=5, field="Lc"
            )
        if n == 7 + nc:  # case 3E
            return cls(cla, ins, p1, p2, apdu[7:])
        if n == 9 + nc:  # case 4E
            return cls(cla, ins, p1, p2, apdu[7:-2], int.from_bytes(apdu[-2:], "big") or 65536)
        if n == 8 + nc:
            raise DecodeError(
                f"extended Lc={nc}: a one-byte Le follows the data, extended Le needs two",
                offset=n - 1,
                field="Le",
            )
        raise DecodeError(
            f"extended Lc={nc} but {n - 7} bytes follow it (expected {nc} or {nc + 2})",
            offset=5,
            field="Lc",
        )

    def __repr__(self) -> str:
        le = "None" if self.le is None else str(self.le)
        return (
            f"CommandAPDU({self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X}, "
            f"Nc={len(self.data)}, Ne={le})"
        )


def chain(
    cla: int, ins: int, p1: int, p2: int, data: bytes, piece: int, le: int | None = None
) -> list[CommandAPDU]:
    """``data`` as a command chain (ISO/IEC 7816-4:2005 5.1.1.1): pieces of at most ``piece``
    bytes in order, :data:`CLA_CHAIN` set on every command but the last, Le (``le``) on the
    last only. Data that fits one piece is one ordinary command."""
    if isinstance(piece, bool) or not 1 <= piece <= MAX_SHORT_NC:
        raise UsageError(f"a chain's piece must be 1-{MAX_SHORT_NC} bytes, got {piece!r}")
    if cla & CLA_CHAIN:
        raise UsageError(f"CLA {cla:02X} already has the chaining bit: give the plain CLA")
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)] or [b""]
    last = len(pieces) - 1
    return [
        CommandAPDU(cla | (CLA_CHAIN if n < last else 0), ins, p1, p2, p, le if n == last else None)
        for n, p in enumerate(pieces)
    ]


@dataclass(frozen=True, slots=True)
class ResponseAPDU:
    """A response APDU: data and the two status bytes as one int."""

    data: bytes
    sw: int

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            if not isinstance(self.data, (bytearray, memoryview)):
                raise UsageError(f"response data must be bytes, got {type(self.data).__name__}")
            object.__setattr__(self, "data", bytes(self.data))
        if isinstance(self.sw, bool) or not isinstance(self.sw, int) or not 0 <= self.sw <= 0xFFFF:
            raise UsageError(f"status word must be an int from 0000 to FFFF, got {self.sw!r}")

    @classmethod
    def parse(cls, raw: bytes) -> ResponseAPDU:
        """Split ``data ‖ SW1 SW2``; fewer than 2 bytes is a DecodeError."""
        resp = bytes(raw)
        if len(resp) < 2:
            raise DecodeError(
                f"response is {len(resp)} bytes, a status word needs 2", offset=0, field="SW"
            )
        return cls(resp[:-2], int.from_bytes(resp[-2:], "big"))

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        """True only for 9000 (use :func:`cardperso.codec.status.is_success` to accept 61xx)."""
        return self.sw == 0x9000

    @property
    def meaning(self) -> str:
        return status.describe(self.sw)

    def check(self, command: str = "") -> ResponseAPDU:
        """Raise :class:`~cardperso.errors.CardError` unless successful; return self to chain."""
        status.check(self.sw, command)
        return self

    def __repr__(self) -> str:
        return f"ResponseAPDU({len(self.data)} bytes, sw={self.sw:04X})"
