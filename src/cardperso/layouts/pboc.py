"""PBOC / EMV binary layouts: the n12 e-cash amount, AFL entries and the GPO response.

Sources: JR/T 0025-2018 part 13 (electronic cash: 9F79 balance, 9F77 balance limit, 9F78
single-transaction limit, 9F6D reset threshold, all n12 in fen; issuer script PUT DATA
``04 DA 9F 79 0A <n12> <MAC 4>``) and EMV 4.3 Book 3, 10.2 / 6.5.8.4 (AFL: 4 bytes per entry,
SFI in the 5 high bits of the first byte; GET PROCESSING OPTIONS response formats 1 and 2).
See /work/shared/reference/pboc-financial.md. The record templates themselves (70 ...) are
built by :mod:`cardperso.prep`.
"""

from __future__ import annotations

from dataclasses import dataclass

import construct as cs

from cardperso.codec import fields
from cardperso.errors import EncodingError
from cardperso.layouts.base import BerLength, CodecField, Layout

__all__ = [
    "AFL",
    "AFL_ENTRY",
    "EC_DATA_OBJECT",
    "EC_TAGS",
    "GPO_AIP_AFL",
    "GPO_RESPONSE_FORMAT1",
    "GPO_RESPONSE_FORMAT2",
    "N12_AMOUNT",
    "PUT_DATA_EC",
    "Afl",
    "AflEntry",
    "EcAmount",
    "EcDataObject",
    "GpoResponse",
    "PutDataEc",
]

#: The e-cash amounts that are n12 data objects (GET DATA / PUT DATA tags).
EC_TAGS: dict[int, str] = {
    0x9F79: "EC balance",
    0x9F77: "EC balance limit",
    0x9F78: "EC single transaction limit",
    0x9F6D: "EC reset threshold",
}

_N12_MAX = 999_999_999_999


def _check_amount(value: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _N12_MAX:
        raise EncodingError("amount must be an int from 0 to 999999999999 fen (n12)", field=field)


def _check_ec_tag(tag: int) -> None:
    if tag not in EC_TAGS:
        raise EncodingError(
            f"tag {tag:04X} is not an e-cash amount ({', '.join(f'{t:04X}' for t in EC_TAGS)})",
            field="tag",
        )


#: n12: 6 bytes of BCD, right aligned, 0 padded (EMV Book 3 4.3 "n" format).
_N12 = CodecField(
    6, lambda raw, f: fields.decode_n(raw, f), lambda v, f: fields.encode_n(v, 6, f), kind="n12"
)


# --- the n12 amount ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EcAmount:
    """An e-cash amount in fen (1/100 yuan)."""

    fen: int

    def __post_init__(self) -> None:
        _check_amount(self.fen, "fen")


N12_AMOUNT: Layout[EcAmount] = Layout(
    "pboc.n12_amount",
    "JR/T 0025-2018 part 13 / EMV 4.3 Book 3 4.3: amount n12 (6 bytes BCD, in fen)",
    cs.Struct("fen" / _N12),
    EcAmount,
    vectors=[
        # 150.00 yuan (the sample 9F77 of pboc-financial.md) = 15000 fen: digits
        # 000000015000 two per byte -> 00 00 00 01 50 00
        (EcAmount(15000), bytes.fromhex("000000015000")),
        # 10.00 yuan = 1000 fen -> 00 00 00 00 10 00 (the sample 9F78)
        (EcAmount(1000), bytes.fromhex("000000001000")),
        (EcAmount(0), bytes(6)),
        (EcAmount(_N12_MAX), bytes.fromhex("999999999999")),
    ],
)


@dataclass(frozen=True, slots=True)
class EcDataObject:
    """A GET DATA response for one e-cash amount: ``tag | 06 | n12``."""

    tag: int
    fen: int

    def __post_init__(self) -> None:
        _check_ec_tag(self.tag)
        _check_amount(self.fen, "fen")


EC_DATA_OBJECT: Layout[EcDataObject] = Layout(
    "pboc.ec_data_object",
    "JR/T 0025-2018 part 13: GET DATA 9F79 / 9F77 / 9F78 / 9F6D response (tag, 06, n12)",
    cs.Struct("tag" / cs.Int16ub, cs.Const(b"\x06"), "fen" / _N12),
    EcDataObject,
    vectors=[
        # 9F 79 | 06 | 00 00 00 00 00 00 : balance 0 (the sample script's 9F79)
        (EcDataObject(0x9F79, 0), bytes.fromhex("9F7906000000000000")),
        # 9F 6D | 06 | 00 00 00 00 15 00 : reset threshold 15.00 yuan = 1500 fen
        (EcDataObject(0x9F6D, 1500), bytes.fromhex("9F6D06000000001500")),
    ],
)


@dataclass(frozen=True, slots=True)
class PutDataEc:
    """Issuer script PUT DATA for an e-cash amount: ``04 DA <tag> 0A <n12> <MAC 4>``."""

    tag: int
    fen: int
    mac: bytes

    def __post_init__(self) -> None:
        _check_ec_tag(self.tag)
        _check_amount(self.fen, "fen")


PUT_DATA_EC: Layout[PutDataEc] = Layout(
    "pboc.put_data_ec",
    "JR/T 0025-2018 part 13: issuer script PUT DATA 04 DA <tag> 0A <n12> <MAC 4>",
    cs.Struct(
        cs.Const(b"\x04\xda"),
        "tag" / cs.Int16ub,
        cs.Const(b"\x0a"),  # Lc = 6 (amount) + 4 (MAC)
        "fen" / _N12,
        "mac" / cs.Bytes(4),
    ),
    PutDataEc,
    vectors=[
        # Constructed: set the balance to 100.00 yuan = 10000 fen -> 00 00 00 01 00 00;
        # the MAC bytes are placeholders (the MAC itself is cardperso.crypto.emv's job).
        (
            PutDataEc(0x9F79, 10000, bytes.fromhex("11223344")),
            bytes.fromhex("04DA9F790A" + "000000010000" + "11223344"),
        ),
    ],
)


# --- AFL -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AflEntry:
    """One AFL entry: SFI, first and last record, number of records for offline data auth."""

    sfi: int
    first: int
    last: int
    oda_records: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.sfi <= 30:
            raise EncodingError(f"SFI {self.sfi} out of 1..30", field="sfi")
        if not 1 <= self.first <= self.last <= 254:
            raise EncodingError(
                f"records {self.first}..{self.last}: need 1 <= first <= last <= 254",
                field="first",
            )
        if not 0 <= self.oda_records <= self.last - self.first + 1:
            raise EncodingError(
                f"{self.oda_records} ODA records in a range of {self.last - self.first + 1}",
                field="oda_records",
            )


# EMV 4.3 Book 3 10.2: byte 1 = SFI << 3 (low 3 bits 0), byte 2 first record, byte 3 last
# record, byte 4 number of records (from the first) used in offline data authentication.
_AFL_ENTRY = cs.Struct(
    "sfi"
    / cs.ExprAdapter(
        cs.ExprValidator(cs.Int8ub, lambda obj, ctx: obj & 0x07 == 0),
        decoder=lambda obj, ctx: obj >> 3,
        encoder=lambda obj, ctx: obj << 3,
    ),
    "first" / cs.Int8ub,
    "last" / cs.Int8ub,
    "oda_records" / cs.Int8ub,
)

AFL_ENTRY: Layout[AflEntry] = Layout(
    "pboc.afl_entry",
    "EMV 4.3 Book 3 10.2: Application File Locator entry (4 bytes)",
    _AFL_ENTRY,
    AflEntry,
    vectors=[
        # SFI 1 -> 1 << 3 = 08 | records 01..01 | 01 ODA record
        (AflEntry(1, 1, 1, 1), bytes.fromhex("08010101")),
        # SFI 3 -> 18 | records 01..03 | no ODA record
        (AflEntry(3, 1, 3, 0), bytes.fromhex("18010300")),
        # SFI 30 -> 30 << 3 = F0 | records 01..FE | 00
        (AflEntry(30, 1, 254, 0), bytes.fromhex("F001FE00")),
    ],
)


@dataclass(frozen=True, slots=True)
class Afl:
    """An Application File Locator: the value of tag 94, a list of entries."""

    entries: tuple[AflEntry, ...]


# The record map of pboc-financial.md (DGIs 0101, 0201-0202, 0301-0303, 0401-0403) as an AFL:
# 08 01 01 00 | 10 01 02 01 | 18 01 03 00 | 20 01 03 00 (SFI 2 record 1 counted for ODA).
_SAMPLE_AFL = Afl(
    (AflEntry(1, 1, 1, 0), AflEntry(2, 1, 2, 1), AflEntry(3, 1, 3, 0), AflEntry(4, 1, 3, 0))
)
_SAMPLE_AFL_HEX = "08010100" "10010201" "18010300" "20010300"  # fmt: skip

AFL: Layout[Afl] = Layout(
    "pboc.afl",
    "EMV 4.3 Book 3 10.2: Application File Locator (tag 94 value, 4 bytes per entry)",
    cs.Struct("entries" / cs.GreedyRange(_AFL_ENTRY)),
    Afl,
    vectors=[(_SAMPLE_AFL, bytes.fromhex(_SAMPLE_AFL_HEX))],
)


# --- GET PROCESSING OPTIONS response ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpoResponse:
    """GET PROCESSING OPTIONS response: Application Interchange Profile and AFL."""

    aip: bytes
    afl: tuple[AflEntry, ...]


def _strict(subcon: cs.Construct) -> cs.Construct:
    return cs.FocusedSeq("value", "value" / subcon, cs.Terminated)


# EMV 4.3 Book 3 6.5.8.4, format 1: 80 L AIP(2) AFL.
_GPO1 = cs.FocusedSeq(
    "body",
    cs.Const(b"\x80"),
    "body"
    / cs.Prefixed(
        BerLength, cs.Struct("aip" / cs.Bytes(2), "afl" / _strict(cs.GreedyRange(_AFL_ENTRY)))
    ),
)

# Format 2 content: { 82 02 AIP, 94 L AFL } - exactly these two objects in this order (what a
# contact PBOC debit GPO returns); responses with more objects need the TLV codec. This is also
# the value of the GPO-response DGIs 9104 / 9203 (docs/card-dgi-map.md).
_AIP_AFL = cs.Struct(
    cs.Const(b"\x82\x02"),
    "aip" / cs.Bytes(2),
    cs.Const(b"\x94"),
    "afl" / cs.Prefixed(BerLength, _strict(cs.GreedyRange(_AFL_ENTRY))),
)

# Format 2: 77 L { 82 02 AIP, 94 L AFL }.
_GPO2 = cs.FocusedSeq("body", cs.Const(b"\x77"), "body" / cs.Prefixed(BerLength, _strict(_AIP_AFL)))

# Constructed: AIP 7C 00 = SDA, DDA, cardholder verification, terminal risk management and
# issuer authentication supported (byte 1 bits 7-3), and the sample AFL above.
_SAMPLE_GPO = GpoResponse(bytes.fromhex("7C00"), _SAMPLE_AFL.entries)

GPO_RESPONSE_FORMAT1: Layout[GpoResponse] = Layout(
    "pboc.gpo_response_format1",
    "EMV 4.3 Book 3 6.5.8.4: GET PROCESSING OPTIONS response format 1 (tag 80)",
    _GPO1,
    GpoResponse,
    # 80 | 12 (2 + 16 = 18) | 7C 00 | AFL
    vectors=[(_SAMPLE_GPO, bytes.fromhex("8012" + "7C00" + _SAMPLE_AFL_HEX))],
)

GPO_RESPONSE_FORMAT2: Layout[GpoResponse] = Layout(
    "pboc.gpo_response_format2",
    "EMV 4.3 Book 3 6.5.8.4: GET PROCESSING OPTIONS response format 2 (template 77: 82, 94)",
    _GPO2,
    GpoResponse,
    # 77 | 16 (4 + 2 + 16 = 22) | 82 02 7C 00 | 94 10 (16) | AFL
    vectors=[(_SAMPLE_GPO, bytes.fromhex("7716" + "82027C00" + "9410" + _SAMPLE_AFL_HEX))],
)

GPO_AIP_AFL: Layout[GpoResponse] = Layout(
    "pboc.gpo_aip_afl",
    "EMV 4.3 Book 3 6.5.8.4 format 2 content; EMV CPS DGI 9104 / 9203 (docs/card-dgi-map.md)",
    _AIP_AFL,
    GpoResponse,
    # 82 02 7C 00 | 94 10 (16) | AFL - the format 2 vector without its 77 16 header
    vectors=[(_SAMPLE_GPO, bytes.fromhex("82027C00" + "9410" + _SAMPLE_AFL_HEX))],
)
