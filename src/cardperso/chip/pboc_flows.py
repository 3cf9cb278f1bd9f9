"""The PBOC commands that both the line's read-back (:mod:`cardperso.chip.verify`) and the bank's
terminal (:mod:`cardperso.bank.terminal`) send, sans-IO (flows of
:mod:`cardperso.chip.transport`): GET PROCESSING OPTIONS, READ RECORD of every record the AFL
names, GENERATE AC. Written once here so the two cannot read a card differently.

A status word other than 9000 raises :class:`~cardperso.errors.CardError` naming the command
(:func:`cardperso.chip.gp.ok`); an answer without what it must carry raises ``CardError`` with
status 6F00 and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardperso.chip.gp import ok
from cardperso.chip.transport import Flow
from cardperso.codec import tlv
from cardperso.codec.apdu import CommandAPDU
from cardperso.errors import CardError

__all__ = [
    "CID_NAMES",
    "AcAnswer",
    "dol_values",
    "generate_ac",
    "gpo",
    "internal_authenticate",
    "read_afl",
]

CID_NAMES = {0x00: "AAC", 0x40: "TC", 0x80: "ARQC"}


def gpo(pdol_data: bytes) -> Flow[tuple[bytes, bytes]]:
    """GET PROCESSING OPTIONS with ``pdol_data``; returns (AIP, AFL) from a format 1 (80) or
    format 2 (77 with 82 and 94) answer (EMV 4.3 Book 3 6.5.8.4)."""
    apdu = CommandAPDU(0x80, 0xA8, 0x00, 0x00, tlv.encode(0x83, pdol_data), le=256)
    items = tlv.parse(ok((yield apdu.to_bytes()), "GET PROCESSING OPTIONS"))
    if len(items) == 1 and items[0].tag == 0x80 and len(items[0].value) >= 2:
        return items[0].value[:2], items[0].value[2:]
    inner = tlv.parse(items[0].value) if items and items[0].tag == 0x77 else items
    aip, afl = tlv.find(inner, 0x82), tlv.find(inner, 0x94)
    if aip is None or afl is None:
        raise CardError(0x6F00, "GET PROCESSING OPTIONS", "no AIP/AFL in the answer")
    return aip.value, afl.value


def read_afl(afl: bytes) -> Flow[dict[int, bytes]]:
    """READ RECORD of every record the AFL names (4-byte entries: SFI << 3, first, last, number
    for offline authentication); returns the records by ``SFI << 8 | record``."""
    records: dict[int, bytes] = {}
    for i in range(0, len(afl) - 3, 4):
        sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
        for rec in range(first, last + 1):
            records[sfi << 8 | rec] = ok(
                (yield CommandAPDU(0x00, 0xB2, rec, sfi << 3 | 4, le=256).to_bytes()),
                f"READ RECORD SFI {sfi} record {rec}",
            )
    return records


def dol_values(dol: bytes, data: bytes) -> dict[int, bytes]:
    """The values of ``data`` by tag, as the data object list ``dol`` lays them out."""
    values: dict[int, bytes] = {}
    pos = 0
    for tag, length in tlv.parse_dol(dol):
        values[tag] = data[pos : pos + length]
        pos += length
    return values


@dataclass(frozen=True, slots=True)
class AcAnswer:
    """A GENERATE AC answer: cryptogram information (AAC / TC / ARQC), ATC, the cryptogram, the
    issuer application data 9F10, and the CDOL data the terminal sent for it."""

    cid: str
    atc: bytes
    ac: bytes
    iad: bytes
    cdol_data: bytes


def generate_ac(kind: str, cdol_data: bytes) -> Flow[AcAnswer]:
    """GENERATE AC asking for ``kind`` (AAC, TC or ARQC) with ``cdol_data``; format 1 (80: CID ‖
    ATC ‖ AC ‖ IAD) and format 2 (77 with 9F27, 9F36, 9F26, 9F10) answers."""
    p1 = {"AAC": 0x00, "TC": 0x40, "ARQC": 0x80}[kind]
    raw = yield CommandAPDU(0x80, 0xAE, p1, 0x00, cdol_data, le=256).to_bytes()
    items = tlv.parse(ok(raw, f"GENERATE AC ({kind})"))
    if len(items) == 1 and items[0].tag == 0x80:
        v = items[0].value
        if len(v) < 11:
            raise CardError(0x6F00, "GENERATE AC", "a format 1 answer shorter than 11 bytes")
        return AcAnswer(CID_NAMES.get(v[0] & 0xC0, "?"), v[1:3], v[3:11], v[11:], cdol_data)
    inner = tlv.parse(items[0].value) if items and items[0].tag == 0x77 else items
    cid, atc, ac = tlv.find(inner, 0x9F27), tlv.find(inner, 0x9F36), tlv.find(inner, 0x9F26)
    iad = tlv.find(inner, 0x9F10)
    if cid is None or atc is None or ac is None or not cid.value:
        raise CardError(0x6F00, "GENERATE AC", "no CID, ATC or cryptogram in the answer")
    if len(atc.value) != 2 or len(ac.value) != 8:
        raise CardError(0x6F00, "GENERATE AC", "an ATC not of 2 bytes or a cryptogram not of 8")
    return AcAnswer(
        CID_NAMES.get(cid.value[0] & 0xC0, "?"),
        atc.value,
        ac.value,
        iad.value if iad else b"",
        cdol_data,
    )


def internal_authenticate(ddol_data: bytes) -> Flow[bytes]:
    """INTERNAL AUTHENTICATE (DDA, EMV 4.3 Book 3 6.5.9) with the DDOL data; returns the signed
    dynamic application data 9F4B from a format 1 (80) or format 2 (77) answer."""
    raw = yield CommandAPDU(0x00, 0x88, 0x00, 0x00, ddol_data, le=256).to_bytes()
    items = tlv.parse(ok(raw, "INTERNAL AUTHENTICATE"))
    if len(items) == 1 and items[0].tag == 0x80 and items[0].value:
        return items[0].value
    found = tlv.find(tlv.parse(items[0].value), 0x9F4B) if items and items[0].tag == 0x77 else None
    if found is None or not found.value:
        raise CardError(0x6F00, "INTERNAL AUTHENTICATE", "no signed dynamic data in the answer")
    return found.value
