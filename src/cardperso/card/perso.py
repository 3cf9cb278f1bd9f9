"""Personalization plumbing shared by the applications: DGI reassembly across STORE DATA
commands and the interface an application offers to the ISD (docs/card-dgi-map.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cardperso.card.applet import SW_WRONG_DATA, Sw


@dataclass(slots=True)
class DgiAssembler:
    """Reassemble DGIs (``DGI(2) ‖ L ‖ data``, L = 1 byte or ``FF`` + 2 bytes) that may span
    several STORE DATA commands. A DGI counts as encrypted when the command carrying its
    header asked for encryption."""

    buffer: bytes = b""
    buffer_encrypted: bool = False
    complete: list[tuple[int, bytes, bool]] = field(default_factory=list)

    def copy(self) -> DgiAssembler:
        return DgiAssembler(self.buffer, self.buffer_encrypted, [])

    @property
    def pending(self) -> bool:
        return bool(self.buffer)

    def feed(self, data: bytes, encrypted: bool) -> list[tuple[int, bytes, bool]]:
        """Add one command's data; return the DGIs completed by it (dgi, value, encrypted)."""
        old = len(self.buffer)
        raw = self.buffer + data
        out: list[tuple[int, bytes, bool]] = []
        pos = 0
        while pos < len(raw):
            enc = self.buffer_encrypted if pos < old else encrypted
            header = _header(raw, pos)
            if header is None:
                break
            dgi, start, n = header
            if start + n > len(raw):
                break
            out.append((dgi, raw[start : start + n], enc))
            pos = start + n
        self.buffer_encrypted = self.buffer_encrypted if pos < old else encrypted
        self.buffer = raw[pos:]
        return out


def _header(raw: bytes, pos: int) -> tuple[int, int, int] | None:
    """``(dgi, value offset, value length)``, or None when the header is not complete yet."""
    if pos + 3 > len(raw):
        return None
    dgi = int.from_bytes(raw[pos : pos + 2], "big")
    if raw[pos + 2] != 0xFF:
        return dgi, pos + 3, raw[pos + 2]
    if pos + 5 > len(raw):
        return None
    return dgi, pos + 5, int.from_bytes(raw[pos + 3 : pos + 5], "big")


class Personalizer:
    """What an application does with the DGIs the ISD routes to it.

    :meth:`store` raises :class:`~cardperso.card.applet.Sw` to refuse a DGI (the whole
    STORE DATA command is then rolled back by the card); :meth:`finish` runs on the last
    block, before the application becomes PERSONALIZED.
    """

    def store(self, dgi: int, value: bytes, encrypted: bool) -> None:
        raise Sw(SW_WRONG_DATA)

    def finish(self) -> None:
        """Check the application is complete enough to become PERSONALIZED."""


def plaintext(value: bytes, length: int, encrypted: bool, *, sensitive: bool = True) -> bytes:
    """The first ``length`` bytes of a decrypted DGI (padding ignored); ``6A80`` when a
    sensitive DGI came in clear or is too short."""
    if sensitive and not encrypted:
        raise Sw(SW_WRONG_DATA)
    if len(value) < length:
        raise Sw(SW_WRONG_DATA)
    return value[:length]
