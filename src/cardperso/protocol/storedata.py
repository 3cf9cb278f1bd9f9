"""STORE DATA chaining (GP Card Spec 11.11, EMV CPS 1.1 4.3), sans-IO, both directions.

How this works
--------------
* :func:`build_store_data` turns a list of DGIs into plain ``80 E2 P1 P2 Lc data`` commands
  (the secure channel wraps them afterwards). DGIs are encoded ``DGI || L || data`` and packed
  back to back up to ``max_data`` bytes per command; a DGI too big for one command is split
  across commands and reassembled by the card. Encrypted and clear DGIs never share a command,
  because P1 bits 7-6 (``0x60``) say that every DGI starting in the command is encrypted.
* P1: ``0x80`` on the last command; ``0x60`` for encrypted DGIs; ``dgi_format`` (``0x00`` or the
  GP "DGI format" ``0x08``) on every command. P2 is the sequence number from ``first_sequence``
  (``00``), +1 per command, modulo 256.
* Encrypted DGIs: the plaintext is padded per the profile's rule, then encrypted by the
  callable the caller passes (a secure channel's ``encrypt_dgi_data``: SCP02 session DEK
  TDES-ECB, SCP03 static DEK AES-CBC). Rules: ``"pad80_if_unaligned"`` (the default: ``80 00..``
  only when the plaintext is not a multiple of the block), ``"pad80"`` (always, e.g. RSA CRT
  parts 8201-8205 on some applets) and ``"none"`` (must already be aligned, e.g. 8000, 8010).
* :class:`StoreDataReceiver` is the card side: it checks INS, P2 sequence numbers and P1, and
  reassembles DGIs across commands. A refused command changes nothing; the error carries the
  status word the card answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cardperso.codec.apdu import CommandAPDU
from cardperso.codec.dgi import encode_dgi
from cardperso.crypto import primitives as cp
from cardperso.errors import DataError, UsageError

__all__ = [
    "DgiItem",
    "PaddingRule",
    "ReceivedDgi",
    "StoreDataConventions",
    "StoreDataReceiver",
    "StoreDataRejected",
    "build_store_data",
]

PaddingRule = Literal["none", "pad80", "pad80_if_unaligned"]
P1_LAST, P1_ENCRYPTED, P1_DGI_FORMAT, P1_BER_TLV = 0x80, 0x60, 0x08, 0x10


@dataclass(frozen=True, slots=True, repr=False)
class DgiItem:
    """One DGI to store; ``encrypted`` DGIs go under the DEK. ``repr`` hides the data."""

    dgi: int
    data: bytes
    encrypted: bool = False

    def __repr__(self) -> str:
        flag = ", encrypted" if self.encrypted else ""
        return f"DgiItem({self.dgi:04X}, {len(self.data)} bytes{flag})"


@dataclass(frozen=True, slots=True)
class StoreDataConventions:
    """An applet profile's STORE DATA conventions."""

    cla: int = 0x80
    #: Largest plain command data: 239 leaves room for an 8-byte C-MAC and C-DEC padding
    #: under SCP02 and SCP03; 255 without secure messaging; 247 under C-MAC only.
    max_data: int = 239
    #: P1 bits 5-4 on every command: 0x00 (none) or 0x08 (GP "DGI format").
    dgi_format: int = 0x00
    #: Cipher block of the DEK: 8 for SCP02 (TDES), 16 for SCP03 (AES).
    block_size: int = 8
    padding: PaddingRule = "pad80_if_unaligned"
    #: Per-DGI padding rule overriding ``padding`` (e.g. ``{0x8201: "pad80"}``).
    padding_overrides: Mapping[int, PaddingRule] = field(default_factory=dict)
    #: Pack several DGIs per command (False: one DGI starts per command).
    pack: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_data <= 255:
            raise UsageError("STORE DATA max_data must be 1-255")
        if self.dgi_format not in (0x00, P1_DGI_FORMAT):
            raise UsageError("STORE DATA dgi_format must be 0x00 or 0x08")
        if self.block_size not in (8, 16):
            raise UsageError("DEK block size must be 8 or 16")


def _pad(item: DgiItem, conv: StoreDataConventions) -> bytes:
    rule = conv.padding_overrides.get(item.dgi, conv.padding)
    data, block = item.data, conv.block_size
    if rule == "pad80" or (rule == "pad80_if_unaligned" and (len(data) % block or not data)):
        data = cp.pad_method2(data, block)
    if len(data) % block or not data:
        raise DataError(
            f"encrypted DGI data must be a non-empty multiple of {block} bytes (padding {rule!r})",
            field=f"DGI {item.dgi:04X}",
        )
    return data


def build_store_data(
    items: Sequence[DgiItem],
    conventions: StoreDataConventions | None = None,
    encrypt: Callable[[bytes], bytes] | None = None,
    *,
    first_sequence: int = 0,
) -> list[bytes]:
    """Plain STORE DATA APDUs for ``items`` in order (see the module docstring)."""
    conv = conventions or StoreDataConventions()
    if not items:
        raise UsageError("STORE DATA needs at least one DGI")
    commands: list[tuple[bool, bytearray]] = []  # (encrypted, data)
    fresh = True  # the last command may take no more DGIs (pack=False)
    for item in items:
        if item.encrypted:
            if encrypt is None:
                raise UsageError("encrypted DGIs need an encrypt function (the channel's DEK)")
            value = encrypt(_pad(item, conv))
        else:
            value = item.data
        payload = encode_dgi(item.dgi, value)
        last = commands[-1] if commands else None
        room = conv.max_data - len(last[1]) if last is not None else 0
        same = last is not None and last[0] == item.encrypted and conv.pack and not fresh
        if not (same and (len(payload) <= room or len(payload) > conv.max_data)):
            commands.append((item.encrypted, bytearray()))
            room = conv.max_data
        # fill the current command, then as many further commands as the DGI needs
        while payload:
            chunk, payload = payload[:room], payload[room:]
            commands[-1][1].extend(chunk)
            if payload:
                commands.append((item.encrypted, bytearray()))
                room = conv.max_data
        fresh = not conv.pack
    apdus = []
    for n, (enc, data) in enumerate(commands):
        p1 = (
            conv.dgi_format
            | (P1_ENCRYPTED if enc else 0)
            | (P1_LAST if n == len(commands) - 1 else 0)
        )
        p2 = (first_sequence + n) % 256
        apdus.append(CommandAPDU(conv.cla, 0xE2, p1, p2, bytes(data)).to_bytes())
    return apdus


# -- card side -----------------------------------------------------------------------------------


class StoreDataRejected(DataError):
    """The card refuses a STORE DATA command; ``sw`` is what it answers. Nothing was stored."""

    def __init__(self, reason: str, sw: int) -> None:
        self.sw = sw
        super().__init__(f"{reason} (card answers {sw:04X})", field="STORE DATA")


@dataclass(frozen=True, slots=True, repr=False)
class ReceivedDgi:
    """A DGI reassembled by the card; ``data`` is still encrypted when ``encrypted``."""

    dgi: int
    data: bytes
    encrypted: bool

    def __repr__(self) -> str:
        flag = ", encrypted" if self.encrypted else ""
        return f"ReceivedDgi({self.dgi:04X}, {len(self.data)} bytes{flag})"


def _dgi_header(buf: bytes, pos: int) -> tuple[int, int, int] | None:
    """(dgi, length, header size) at ``pos``, or None when the header is incomplete."""
    if len(buf) - pos < 3:
        return None
    dgi, n = int.from_bytes(buf[pos : pos + 2], "big"), buf[pos + 2]
    if n != 0xFF:
        return dgi, n, 3
    if len(buf) - pos < 5:
        return None
    return dgi, int.from_bytes(buf[pos + 3 : pos + 5], "big"), 5


class StoreDataReceiver:
    """Card-side reassembly of a STORE DATA sequence (one per INSTALL [for personalization]).

    :meth:`feed` takes a plain (already unwrapped) command and returns the DGIs completed by
    it; it raises :class:`StoreDataRejected` (with the status word) and then stores nothing.
    """

    def __init__(self, first_sequence: int = 0, *, accept_ber_tlv: bool = False) -> None:
        self.expected_sequence = first_sequence % 256
        self.accept_ber_tlv = accept_ber_tlv
        self.finished = False
        self._pending = b""  # bytes of a DGI not yet complete
        self._pending_encrypted = False

    def feed(self, apdu: bytes) -> list[ReceivedDgi]:
        try:
            cmd = CommandAPDU.parse(apdu)
        except DataError:
            raise StoreDataRejected("malformed STORE DATA APDU", 0x6700) from None
        if cmd.ins != 0xE2:
            raise StoreDataRejected("not a STORE DATA command", 0x6D00)
        if self.finished:
            raise StoreDataRejected("STORE DATA after the last block", 0x6985)
        if cmd.p2 != self.expected_sequence:
            raise StoreDataRejected(
                f"sequence number {cmd.p2:02X}, expected {self.expected_sequence:02X}", 0x6A86
            )
        if cmd.p1 & P1_BER_TLV and not self.accept_ber_tlv:
            raise StoreDataRejected("BER-TLV format STORE DATA is not supported", 0x6A86)
        enc_bits = cmd.p1 & P1_ENCRYPTED
        if enc_bits not in (0, P1_ENCRYPTED):
            raise StoreDataRejected(
                "application-dependent encryption bits are not supported", 0x6A86
            )
        last = bool(cmd.p1 & P1_LAST)
        encrypted = enc_bits == P1_ENCRYPTED

        buf = self._pending + cmd.data
        out: list[ReceivedDgi] = []
        pos = 0
        pending_encrypted = self._pending_encrypted
        while pos < len(buf):
            flag = pending_encrypted if pos < len(self._pending) else encrypted
            header = _dgi_header(buf, pos)
            if header is None or len(buf) - pos - header[2] < header[1]:
                break
            dgi, n, hsize = header
            out.append(ReceivedDgi(dgi, buf[pos + hsize : pos + hsize + n], flag))
            pos += hsize + n
        rest = buf[pos:]
        if last and rest:
            raise StoreDataRejected("the last STORE DATA leaves an incomplete DGI", 0x6A80)
        # commit
        new_pending_flag = (
            (self._pending_encrypted if pos < len(self._pending) else encrypted) if rest else False
        )
        self._pending, self._pending_encrypted = rest, new_pending_flag
        self.expected_sequence = (self.expected_sequence + 1) % 256
        self.finished = last
        return out
