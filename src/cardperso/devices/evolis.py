"""Evolis-style card-printer command set: a sans-IO codec for both ends of the serial line.

How this works
--------------
A command is ``ESC name [';' param]* CR`` (``ESC`` may be missing after a CR). Panel downloads
(``Db;panel;levels;data``) carry a binary payload after the last ``;`` whose length follows
from the panel geometry and the number of levels, so the parser reads it by length, not up to
a CR (the payload may contain 0x0D). The printer answers in ACK/NACK mode: ``ACK`` optionally
followed by ``;value``, or ``NACK`` followed by one error-code character, then CR.

:class:`CommandParser` (printer side) and :class:`ReplyParser` (host side) are incremental:
feed them any chunking of the byte stream and they yield whole messages.
Reference: Evolis Card Printers Programming Guide A5013 (see card-printer.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cardperso.errors import DecodeError

ESC = 0x1B
CR = 0x0D

#: Panel geometry at 300 dpi for a CR-80 card, printed in portrait orientation of the head.
PANEL_WIDTH = 648
PANEL_HEIGHT = 1016

#: NACK codes and their meaning for an operator.
NACK_CODES: dict[str, str] = {
    "1": "command error",
    "2": "parameter error",
    "T": "time-out or mechanical error (card jam)",
    "C": "cover open",
    "F": "feeder empty",
    "R": "ribbon out or broken",
    "B": "reject box full",
    "K": "magnetic checksum error",
    "D": "magnetic data error",
    "W": "magnetic write error",
}

#: Commands the codec knows, with the number of ';' parameters they take (None = any).
COMMANDS: dict[str, int | None] = {
    "Ss": 0, "Se": 0, "Sis": 0, "Sic": 0, "Ser": 0, "Seb": 0, "Sr": 0, "Sv": 0,
    "Pr": 1, "Db": 3, "Dm": 2, "Smw": 0, "Smr": 1, "Pmc": 1, "Rfv": 0, "Rsn": 0, "Rtp": 0,
    "Rlr": 1, "Rse": None, "Srs": 0, "Sp": 0,
}  # fmt: skip


def panel_bytes(levels: int) -> int:
    """Payload length of one panel download with ``levels`` grey levels per dot."""
    if levels < 2 or levels & (levels - 1):
        raise DecodeError(f"panel levels must be a power of two >= 2, not {levels}", field="Db")
    bits = levels.bit_length() - 1
    return (PANEL_WIDTH * PANEL_HEIGHT * bits + 7) // 8


@dataclass(frozen=True, slots=True)
class Command:
    """One printer command: its name and its parameters (the last may be binary)."""

    name: str
    params: tuple[bytes, ...] = ()

    def to_bytes(self) -> bytes:
        return encode_command(self.name, *self.params)

    def __repr__(self) -> str:  # payloads can be 80 kB; show their size only
        shown = [
            p.decode("ascii", "replace") if len(p) <= 32 else f"<{len(p)} bytes>"
            for p in self.params
        ]
        return f"Command({self.name!r}, {shown})"


@dataclass(frozen=True, slots=True)
class Reply:
    """The printer's answer: ``ok`` with an optional value, or a NACK with its code."""

    ok: bool
    value: str = ""
    code: str = ""

    @property
    def meaning(self) -> str:
        return (
            NACK_CODES.get(self.code, f"unknown error code {self.code!r}") if not self.ok else "ok"
        )

    def to_bytes(self) -> bytes:
        if self.ok:
            return b"ACK" + (b";" + self.value.encode("ascii") if self.value else b"") + b"\r"
        return b"NACK" + self.code.encode("ascii") + b"\r"


def encode_command(name: str, *params: str | bytes | int) -> bytes:
    """``ESC name;p1;p2 CR``. Parameters may be text, integers or bytes (a binary payload)."""
    if name not in COMMANDS:
        raise DecodeError(f"unknown printer command {name!r}", field="command")
    out = bytearray([ESC]) + name.encode("ascii")
    for p in params:
        out += b";"
        out += p if isinstance(p, bytes) else str(p).encode("ascii")
    out.append(CR)
    return bytes(out)


class CommandParser:
    """Printer-side incremental parser: ``feed(bytes)`` yields :class:`Command` objects.

    Unknown commands and malformed parameters yield a :class:`Command` named ``"?"`` carrying
    the raw text, so the printer can answer ``NACK1``/``NACK2`` and carry on.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete command waiting for more input."""
        return len(self._buf)

    def reset(self) -> None:
        """Drop an incomplete command (a receive time-out: the sender went away mid-command)."""
        self._buf.clear()

    def feed(self, data: bytes) -> Iterator[Command]:
        self._buf += data
        while True:
            cmd = self._next()
            if cmd is None:
                return
            yield cmd

    def _next(self) -> Command | None:
        buf = self._buf
        # skip stray CRs / line noise before a command
        start = 0
        while start < len(buf) and buf[start] in (CR, 0x0A):
            start += 1
        if start:
            del buf[:start]
        if not buf:
            return None
        head = 1 if buf[0] == ESC else 0  # a missing ESC after a CR is tolerated
        if buf[head : head + 3] == b"Db;":
            return self._next_download(head)
        end = buf.find(CR, head)
        if end < 0:
            return None
        text = bytes(buf[head:end])
        del buf[: end + 1]
        name, *params = text.split(b";")
        sname = name.decode("ascii", "replace")
        expected = COMMANDS.get(sname, -1)
        if expected == -1:
            return Command("?", (text,))
        if expected is not None and len(params) != expected:
            return Command("?", (text,))
        return Command(sname, tuple(params))

    def _next_download(self, head: int) -> Command | None:
        buf = self._buf
        # Db;panel;levels;<payload>CR
        p1 = buf.find(b";", head + 3)
        p2 = buf.find(b";", p1 + 1) if p1 >= 0 else -1
        cr = buf.find(CR, head, p2 if p2 >= 0 else len(buf))  # only the header may hold a CR
        if p2 < 0 or (0 <= cr < p2):
            if cr < 0:
                return None  # header not complete yet
            text = bytes(buf[head:cr])  # a CR before the header is complete: malformed
            del buf[: cr + 1]
            return Command("?", (text,))
        panel = bytes(buf[head + 3 : p1])
        levels_txt = bytes(buf[p1 + 1 : p2])
        try:
            length = panel_bytes(int(levels_txt))
        except (ValueError, DecodeError):
            end = buf.find(CR, p2)
            if end < 0:
                return None
            del buf[: end + 1]
            return Command("?", (b"Db;" + panel + b";" + levels_txt,))
        total = p2 + 1 + length + 1
        if len(buf) < total:
            return None
        payload = bytes(buf[p2 + 1 : p2 + 1 + length])
        trailer = buf[total - 1]
        del buf[:total]
        if trailer != CR:
            return Command(
                "?", (b"Db;" + panel + b";" + levels_txt + b": payload not followed by CR",)
            )
        return Command("Db", (panel, levels_txt, payload))


class ReplyParser:
    """Host-side incremental parser of printer replies."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[Reply]:
        self._buf += data
        while (end := self._buf.find(CR)) >= 0:
            line = bytes(self._buf[:end]).lstrip(b"\n")
            del self._buf[: end + 1]
            if line.startswith(b"ACK"):
                rest = line[3:]
                yield Reply(
                    True, rest[1:].decode("ascii", "replace") if rest.startswith(b";") else ""
                )
            elif line.startswith(b"NACK"):
                yield Reply(False, code=line[4:5].decode("ascii", "replace") or "1")
            else:
                raise DecodeError(f"unexpected printer reply {line[:20]!r}", field="reply")
