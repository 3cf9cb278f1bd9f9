"""SSSE record files of the social-security card: EF05, EF06 and EF0D.

Source: LD/T 32.6-2015 (data structures) as reconstructed from public reader/writer programs;
see /work/shared/reference/social-security-card.md, "Record format", "EF05", "EF06".

How this works
--------------
Each record of these linear files is one simple TLV: tag (1 byte) | length (1 byte) | value,
with a fixed value length. A file is described by a table of :class:`RecordSpec` rows (record
number, tag, model field, length, format) - data, not code - so a profile can change a length
or a record number (:func:`override`) and the 1.0 layout of EF06 (gender in record 3, no name
extension) is just another table. :func:`record_file` turns a table into a
:class:`RecordFile` layout whose concatenated form is the records in record-number order;
:meth:`RecordFile.encode_records` gives one simple TLV per record for UPDATE RECORD.

Formats: ``b`` raw bytes; ``an`` ASCII, 00 padded; ``gbk`` GBK text, 00 padded; ``cn``
packed BCD, F padded; ``date`` cn with all 8 digits ``YYYYMMDD`` (or all F: not set). The name (tag 09, 30 bytes) continues
in the name extension (tag 4E, 20 bytes): the model holds the whole name and the layout splits
it on a character boundary with :func:`cardperso.codec.fields.split_gbk`; a name longer than
both records, or with a character GBK cannot encode, is an EncodingError, never truncated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import construct as cs

from cardperso.codec import fields
from cardperso.errors import DataError, DecodeError, EncodingError, UsageError
from cardperso.layouts.base import CodecField, FieldError, Layout, codec_error

__all__ = [
    "CARD_IDENTIFICATION_CODE",
    "CIC_CONSTANT",
    "EF0D",
    "EF0D_RECORDS",
    "EF05",
    "EF05_RECORDS",
    "EF06",
    "EF06_RECORDS",
    "EF06_RECORDS_V1",
    "EF06_V1",
    "FORMATS",
    "SELECT_FCI",
    "SSSE_DF_NAME",
    "TABLES",
    "CardIdentificationCode",
    "Ef0D",
    "Ef05",
    "Ef06",
    "RecordFile",
    "RecordSpec",
    "SsseFci",
    "override",
    "record_file",
    "record_template",
]

M = TypeVar("M")


def _decode_text(raw: bytes, charset: str, field: str) -> str:
    """decode_an, refusing text that encode_an would refuse (a 00 byte before the padding, a
    control character): whatever a layout decodes, it can encode back."""
    text = fields.decode_an(raw, charset, field)
    nul = text.find("\x00")
    if nul >= 0:
        raise DecodeError(
            "00 byte inside the value (00 is only allowed as trailing padding)",
            offset=len(text[:nul].encode(charset)),
            field=field,
        )
    try:
        fields.encode_an(text, len(raw), field, charset=charset)
    except EncodingError as exc:
        raise DecodeError(exc.reason, field=field) from None
    return text


def _decode_date(raw: bytes, length: int, field: str) -> str:
    digits = fields.decode_cn(raw, field)
    if digits and len(digits) != 2 * length:
        raise DecodeError(f"date has {len(digits)} digits, expected {2 * length}", field=field)
    return digits


def _encode_date(value: str, length: int, field: str) -> bytes:
    if not isinstance(value, str) or (value and len(value) != 2 * length):
        raise EncodingError(f"date must be {2 * length} digits (YYYYMMDD) or empty", field=field)
    return fields.encode_cn(value, length, field)


#: Record value formats: name -> (decode(raw, length, field), encode(value, length, field)).
FORMATS: Mapping[str, tuple[Callable[[bytes, int, str], Any], Callable[[Any, int, str], bytes]]] = {
    "b": (
        lambda raw, n, f: fields.decode_b(raw, n, f),
        lambda v, n, f: fields.encode_b(v, n, f),
    ),
    "an": (
        lambda raw, n, f: _decode_text(raw, "ascii", f),
        lambda v, n, f: fields.encode_an(v, n, f, charset="ascii"),
    ),
    "gbk": (
        lambda raw, n, f: _decode_text(raw, "gbk", f),
        lambda v, n, f: fields.encode_an(v, n, f, charset="gbk"),
    ),
    "cn": (
        lambda raw, n, f: fields.decode_cn(raw, f),
        lambda v, n, f: fields.encode_cn(v, n, f),
    ),
    # cn holding a date: every digit present (YYYYMMDD in 4 bytes), or all F for "not set".
    # Calendar validity is checked where the data is prepared (cardperso.codec.numbers).
    "date": (_decode_date, _encode_date),
}

#: The name and its extension: the model's ``name`` spans both records.
_NAME, _NAME_EXT = "name", "name_extension"


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """One record of an SSSE file: number, simple-TLV tag, model field, value length, format."""

    rec: int
    tag: int
    name: str
    length: int
    fmt: str
    label: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.rec <= 254:
            raise UsageError(f"record {self.name}: record number {self.rec} out of 1..254")
        if not 0x01 <= self.tag <= 0xFE:  # 00 and FF are padding in simple TLV
            raise UsageError(f"record {self.name}: tag {self.tag} out of 01..FE")
        if not 0 <= self.length <= 254:  # FF announces the 3-byte length form
            raise UsageError(f"record {self.name}: length {self.length} out of 0..254")
        if self.fmt not in FORMATS:
            raise UsageError(f"record {self.name}: unknown format {self.fmt!r}")


# --- the tables (social-security-card.md, "EF05" and "EF06"; EF0D from one source only) -----

#: EF05 issuer / card data, SFI 05.
EF05_RECORDS: tuple[RecordSpec, ...] = (
    RecordSpec(1, 0x01, "card_identification_code", 16, "b", "卡的识别码"),
    RecordSpec(2, 0x02, "card_category", 1, "an", "卡的类别"),
    RecordSpec(3, 0x03, "spec_version", 4, "an", "规范版本"),
    RecordSpec(4, 0x04, "initialising_institution", 12, "cn", "初始化机构编号"),
    RecordSpec(5, 0x05, "issue_date", 4, "date", "发卡日期"),
    RecordSpec(6, 0x06, "expiry_date", 4, "date", "卡有效期"),
    RecordSpec(7, 0x07, "card_number", 9, "an", "卡号"),
)

#: EF06 cardholder basic data, SFI 06, specification 2.0 and later (gender in record 4).
EF06_RECORDS: tuple[RecordSpec, ...] = (
    RecordSpec(1, 0x08, "social_security_number", 18, "an", "社会保障号码"),
    RecordSpec(2, 0x09, _NAME, 30, "gbk", "姓名"),
    RecordSpec(3, 0x4E, _NAME_EXT, 20, "gbk", "姓名扩展"),
    RecordSpec(4, 0x0A, "gender", 1, "an", "性别"),
    RecordSpec(5, 0x0B, "nation", 1, "cn", "民族"),
    RecordSpec(6, 0x0C, "birth_place", 3, "cn", "出生地"),
    RecordSpec(7, 0x0D, "birth_date", 4, "date", "出生日期"),
)

#: EF06 on 1.0 cards: gender is record 3. The reference only states the gender position; the
#: absence of the name extension (and so records 4-6 for the rest) is inferred from it: the
#: 2.0 rows without 4E, renumbered 1-6.
EF06_RECORDS_V1: tuple[RecordSpec, ...] = tuple(
    dataclasses.replace(row, rec=rec)
    for rec, row in enumerate((r for r in EF06_RECORDS if r.tag != 0x4E), start=1)
)

#: EF0D (3rd generation). One public source only: keep it overridable.
EF0D_RECORDS: tuple[RecordSpec, ...] = (
    RecordSpec(1, 0xEA, "person_identification_code", 12, "an", "人员识别码"),
    RecordSpec(2, 0xEB, "first_application_place", 3, "cn", "初次申领地"),
)

#: The default tables by name, for profiles to start from.
TABLES: Mapping[str, tuple[RecordSpec, ...]] = {
    "ef05": EF05_RECORDS,
    "ef06": EF06_RECORDS,
    "ef06_v1": EF06_RECORDS_V1,
    "ef0d": EF0D_RECORDS,
}


def override(
    table: Iterable[RecordSpec], changes: Mapping[str, Mapping[str, Any]]
) -> tuple[RecordSpec, ...]:
    """A copy of *table* with the rows named in *changes* updated, e.g.
    ``override(EF05_RECORDS, {"card_number": {"rec": 8}})``. Unknown names or attributes are
    a UsageError (a profile typo must not pass silently)."""
    rows = list(table)
    known = {r.name for r in rows}
    unknown = set(changes) - known
    if unknown:
        raise UsageError(f"override names unknown records: {', '.join(sorted(unknown))}")
    allowed = {"rec", "tag", "length", "fmt", "label"}
    out = []
    for row in rows:
        change = dict(changes.get(row.name, {}))
        bad = set(change) - allowed
        if bad:
            raise UsageError(f"record {row.name}: cannot override {', '.join(sorted(bad))}")
        out.append(dataclasses.replace(row, **change))
    return tuple(out)


# --- models --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ef05:
    """EF05 issuer / card data. Dates are ``YYYYMMDD``; the institution code is up to 24 digits."""

    card_identification_code: bytes
    card_category: str
    spec_version: str
    initialising_institution: str
    issue_date: str
    expiry_date: str
    card_number: str


@dataclass(frozen=True, slots=True)
class Ef06:
    """EF06 cardholder basic data. *name* is the whole name (records 09 and 4E together)."""

    social_security_number: str
    name: str
    gender: str
    nation: str
    birth_place: str
    birth_date: str

    def __repr__(self) -> str:
        # Personal data stays out of logs and tracebacks.
        return "Ef06(<personal data>)"


@dataclass(frozen=True, slots=True)
class Ef0D:
    """EF0D (3rd generation): person identification code and first application place."""

    person_identification_code: str
    first_application_place: str

    def __repr__(self) -> str:
        return "Ef0D(<personal data>)"


# --- the record construct ------------------------------------------------------------------------


class _Record(cs.Construct):  # type: ignore[misc]
    """One fixed-length simple-TLV record ``tag | length | value`` as described by a RecordSpec."""

    def __init__(self, spec: RecordSpec) -> None:
        super().__init__()
        self.spec = spec
        self._decode_fn, self._encode_fn = FORMATS[spec.fmt]

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        spec = self.spec
        start = cs.stream_tell(stream, path)
        tag, length = cs.stream_read(stream, 2, path)
        if tag != spec.tag:
            raise FieldError(
                f"record {spec.rec}: expected tag {spec.tag:02X}, found {tag:02X}",
                path=path,
                offset=start,
                field=spec.name,
            )
        if length != spec.length:
            raise FieldError(
                f"record {spec.rec} (tag {tag:02X}): length {length}, expected {spec.length}",
                path=path,
                offset=start + 1,
                field=spec.name,
            )
        raw = cs.stream_read(stream, length, path)
        try:
            return self._decode_fn(raw, length, spec.name)
        except DataError as exc:
            raise codec_error(
                exc, path=path, start=start + 2, field=spec.name, prefix=f"record {spec.rec}: "
            ) from None

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        spec = self.spec
        try:
            value = self._encode_fn(obj, spec.length, spec.name)
        except DataError as exc:
            raise codec_error(exc, path=path, start=None, field=spec.name) from None
        data = bytes([spec.tag, spec.length]) + value
        cs.stream_write(stream, data, len(data), path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        return 2 + self.spec.length


def record_template(tag: int, length: int, fmt: str, value: Any = None) -> bytes:
    """One record's simple TLV ``tag | length | value`` built by the record construct: the
    record of a profile whose value is the same on every card (*value* in format *fmt*), or,
    with *value* None, the record with a zero value that batch preparation fills per card at
    offset 2 (the construct is the one definition of the record's bytes)."""
    if value is None:
        return bytes(_Record(RecordSpec(1, tag, "value", length, "b")).build(bytes(length)))
    return bytes(_Record(RecordSpec(1, tag, "value", length, fmt)).build(value))


# --- the record-file layout ----------------------------------------------------------------------


class RecordFile(Layout[M]):
    """A record file layout: concatenated records, plus per-record encode / decode."""

    __slots__ = ("records",)

    def __init__(
        self,
        name: str,
        spec: str,
        model: type[M],
        table: Sequence[RecordSpec],
        *,
        vectors: Iterable[tuple[M, bytes]] = (),
        register: bool = False,
    ) -> None:
        rows = tuple(sorted(table, key=lambda r: r.rec))
        _check_table(name, model, rows)
        self.records: tuple[RecordSpec, ...] = rows
        split = _NAME_EXT in {r.name for r in rows} or any(
            f.name == _NAME
            for f in dataclasses.fields(model)  # type: ignore[arg-type]
        )
        super().__init__(
            name,
            spec,
            cs.Struct(*(r.name / _Record(r) for r in rows)),
            model,
            vectors=vectors,
            to_model=self._join if split else None,
            from_model=self._split if split else None,
            register=register,
        )

    # name <-> name + name extension
    def _spec(self, field: str) -> RecordSpec | None:
        return next((r for r in self.records if r.name == field), None)

    def _join(self, container: Mapping[str, Any]) -> M:
        values = {f.name: container[f.name] for f in dataclasses.fields(self.model)}  # type: ignore[arg-type]
        if _NAME_EXT in container:
            values[_NAME] = container[_NAME] + container[_NAME_EXT]
        try:
            return self.model(**values)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{self.name}: {exc}") from None

    def _split(self, obj: M) -> Mapping[str, Any]:
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
        name_spec, ext_spec = self._spec(_NAME), self._spec(_NAME_EXT)
        if name_spec is not None and name_spec.fmt == "gbk":
            ext_len = ext_spec.length if ext_spec is not None else 0
            head, tail = fields.split_gbk(values[_NAME], name_spec.length, ext_len, _NAME)
            values[_NAME] = head.decode("gbk")
            if ext_spec is not None:
                values[_NAME_EXT] = tail.decode("gbk")
        return values

    def encode_numbered(self, obj: M) -> list[tuple[int, bytes]]:
        """``(record number, simple TLV)`` for every record, in record-number order."""
        data = self.encode(obj)
        out, pos = [], 0
        for row in self.records:
            out.append((row.rec, data[pos : pos + 2 + row.length]))
            pos += 2 + row.length
        return out

    def encode_records(self, obj: M) -> list[bytes]:
        """One simple TLV per record, in record-number order (the UPDATE RECORD data fields)."""
        return [data for _, data in self.encode_numbered(obj)]

    def decode_records(self, records: Sequence[bytes]) -> M:
        """Decode the records as READ RECORD returns them, one per record, in record order."""
        if len(records) != len(self.records):
            raise DecodeError(
                f"{self.name}: {len(records)} records, the layout has {len(self.records)}"
            )
        return self.decode(b"".join(bytes(r) for r in records))

    def record_for_tag(self, tag: int) -> RecordSpec:
        """The row for a simple-TLV tag (READ/UPDATE RECORD by tag uses it)."""
        for row in self.records:
            if row.tag == tag:
                return row
        raise DecodeError(f"{self.name}: no record with tag {tag:02X}")


def _check_table(name: str, model: type[Any], rows: Sequence[RecordSpec]) -> None:
    for attr in ("rec", "tag", "name"):
        values = [getattr(r, attr) for r in rows]
        if len(values) != len(set(values)):
            raise UsageError(f"layout {name!r}: duplicate {attr} in the record table")
    names = {r.name for r in rows} - {_NAME_EXT}
    if _NAME_EXT in {r.name for r in rows} and _NAME not in names:
        raise UsageError(f"layout {name!r}: a name extension needs a name record")
    wanted = {f.name for f in dataclasses.fields(model)}
    if names != wanted:
        missing, extra = sorted(wanted - names), sorted(names - wanted)
        raise UsageError(
            f"layout {name!r}: record table does not match {model.__name__}"
            f" (missing {missing}, unknown {extra})"
        )


def record_file(
    name: str,
    spec: str,
    model: type[M],
    table: Sequence[RecordSpec],
    *,
    vectors: Iterable[tuple[M, bytes]] = (),
    register: bool = False,
) -> RecordFile[M]:
    """A :class:`RecordFile` for *model* from a record table (profiles call this, unregistered)."""
    return RecordFile(name, spec, model, table, vectors=vectors, register=register)


# --- the default layouts and their vectors -------------------------------------------------------

_REF = "social-security-card.md (LD/T 32.6-2015 as reconstructed), "

# EF05, constructed and checked by hand:
#   01 10 | 36 04 00 | D1 56 00 00 05 | 12 34 56 78 | 9A BC DE F0
#          region 360400 in BCD, the constant RID, a chip serial, a check value (16 bytes, b)
#   02 01 | 31                      card category "1" in ASCII
#   03 04 | 33 2E 30 30             "3.00" in ASCII
#   04 0C | 36 04 00 00 00 00 00 00 00 01 FF FF
#          20 digits "36040000000000000001" packed BCD, F padded to 12 bytes (24 nibbles)
#   05 04 | 20 24 01 01             issue date 20240101, cn: one BCD digit per nibble
#   06 04 | 20 34 01 01             expiry date 20340101
#   07 09 | 58 30 30 30 30 30 30 31 39   card number "X00000019" ('X' = 58, '0' = 30 ...)
_EF05_MODEL = Ef05(
    card_identification_code=bytes.fromhex("360400D156000005123456789ABCDEF0"),
    card_category="1",
    spec_version="3.00",
    initialising_institution="36040000000000000001",
    issue_date="20240101",
    expiry_date="20340101",
    card_number="X00000019",
)
_EF05_BYTES = bytes.fromhex(
    "0110" "360400" "D156000005" "12345678" "9ABCDEF0"
    "0201" "31"
    "0304" "332E3030"
    "040C" "360400000000000000" "01FFFF"
    "0504" "20240101"
    "0604" "20340101"
    "0709" "583030303030303139"
)  # fmt: skip

EF05: RecordFile[Ef05] = RecordFile(
    "ssse.ef05",
    _REF + "EF05 issuer / card data (SFI 05, records 1-7)",
    Ef05,
    EF05_RECORDS,
    vectors=[(_EF05_MODEL, _EF05_BYTES)],
    register=True,
)

# EF06 2.0+, constructed and checked by hand (a valid resident ID from the reference):
#   08 12 | 33 36 30 34 32 36 31 39 39 31 30 31 30 31 30 30 37 31
#          "360426199101010071", 18 ASCII digits ('0' = 30 ... '9' = 39)
#   09 1E | D5 C5 C8 FD + 26 x 00
#          张 = GB 2312 row 53 col 37 -> D5 C5, 三 = row 40 col 93 -> C8 FD (row/col + A0),
#          00-padded to 30 bytes
#   4E 14 | 20 x 00                 no name extension: the name fits record 09
#   0A 01 | 31                      gender '1' (male; the 17th ID digit 7 is odd)
#   0B 01 | 01                      nation 01 (Han), cn1: two BCD digits in one byte
#   0C 03 | 36 04 26                birth place 360426, cn3
#   0D 04 | 19 91 01 01             birth date 19910101, cn4
_EF06_MODEL = Ef06(
    social_security_number="360426199101010071",
    name="张三",
    gender="1",
    nation="01",
    birth_place="360426",
    birth_date="19910101",
)
_EF06_TAIL = "0A0131" "0B0101" "0C03360426" "0D0419910101"  # fmt: skip
_EF06_SSN = "0812" "333630343236313939313031303130303731"  # fmt: skip
_EF06_BYTES = bytes.fromhex(
    _EF06_SSN + "091E" + "D5C5C8FD" + "00" * 26 + "4E14" + "00" * 20 + _EF06_TAIL
)

# A long name that continues in 4E: 阿卜杜热合曼·买买提吐尔逊·艾则孜, 17 characters, 34 GBK
# bytes (the middle dot U+00B7 is A1 A4). The first 15 characters (30 bytes, up to 艾 = B0 AC,
# GB 2312 row 16 col 12) fill record 09; 则 D4 F2 and 孜 D7 CE go to 4E, 00-padded to 20.
_LONG_NAME = "阿卜杜热合曼·买买提吐尔逊·艾则孜"
_EF06_LONG_BYTES = bytes.fromhex(
    _EF06_SSN
    + "091E"
    + "B0A2B2B7B6C5C8C8BACFC2FC" + "A1A4" + "C2F2C2F2CCE1CDC2B6FBD1B7" + "A1A4" + "B0AC"
    + "4E14" + "D4F2D7CE" + "00" * 16
    + _EF06_TAIL
)  # fmt: skip

EF06: RecordFile[Ef06] = RecordFile(
    "ssse.ef06",
    _REF + "EF06 cardholder basic data (SFI 06, records 1-7, specification 2.0+)",
    Ef06,
    EF06_RECORDS,
    vectors=[
        (_EF06_MODEL, _EF06_BYTES),
        (dataclasses.replace(_EF06_MODEL, name=_LONG_NAME), _EF06_LONG_BYTES),
    ],
    register=True,
)

# EF06 1.0: the same person without the 4E record; gender is record 3.
EF06_V1: RecordFile[Ef06] = RecordFile(
    "ssse.ef06_v1",
    _REF + "EF06 on 1.0 cards (gender in record 3)",
    Ef06,
    EF06_RECORDS_V1,
    vectors=[
        (
            _EF06_MODEL,
            bytes.fromhex(_EF06_SSN + "091E" + "D5C5C8FD" + "00" * 26 + _EF06_TAIL),
        )
    ],
    register=True,
)

# EF0D, constructed: EA 0C | "360426000001" in ASCII (33 36 30 34 32 36 30 30 30 30 30 31);
# EB 03 | 36 04 26 (first application place 360426, cn3).
_EF0D_BYTES = bytes.fromhex("EA0C" "333630343236303030303031" "EB03" "360426")  # fmt: skip
EF0D: RecordFile[Ef0D] = RecordFile(
    "ssse.ef0d",
    _REF + "EF0D (3rd generation): EA person identification code, EB first application place",
    Ef0D,
    EF0D_RECORDS,
    vectors=[
        (
            Ef0D(person_identification_code="360426000001", first_application_place="360426"),
            _EF0D_BYTES,
        )
    ],
    register=True,
)


# --- card identification code and the SSSE FCI ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardIdentificationCode:
    """The 16-byte card identification code (卡识别码, EF05 record 1), as inferred from real
    cards: issuing region (6 digits, BCD) | D1 56 00 00 05 | chip serial (4 bytes, also in the
    ATR) | a 4-byte issuer check value whose algorithm is not public (profile-selected)."""

    region: str
    chip_serial: bytes
    check: bytes


#: The constant bytes 4-8 of the card identification code (the SSSE RID D156000005).
CIC_CONSTANT = bytes.fromhex("D156000005")

CARD_IDENTIFICATION_CODE: Layout[CardIdentificationCode] = Layout(
    "ssse.card_identification_code",
    "social-security-card.md, 'Card identification code' (inferred from real examples)",
    cs.Struct(
        "region" / CodecField(3, fields.decode_cn, lambda v, f: fields.encode_cn(v, 3, f)),
        cs.Const(CIC_CONSTANT),
        "chip_serial" / cs.Bytes(4),
        "check" / cs.Bytes(4),
    ),
    CardIdentificationCode,
    vectors=[
        # The EF05 vector's code: 36 04 00 (region 360400) | D1 56 00 00 05 | 12 34 56 78 |
        # 9A BC DE F0
        (
            CardIdentificationCode("360400", bytes.fromhex("12345678"), bytes.fromhex("9ABCDEF0")),
            _EF05_MODEL.card_identification_code,
        ),
    ],
)

#: The SSSE DF name "sx1.sh.社会保障" in GBK (15 bytes), also its AID for SELECT and INSTALL.
SSSE_DF_NAME = "sx1.sh.社会保障".encode("gbk")


@dataclass(frozen=True, slots=True)
class SsseFci:
    """The FCI the SSSE answers to SELECT: its DF name and the algorithm indicator."""

    algorithm: int  # 03 = SM4, other values 3DES (social-security-card.md, "Directory")


SELECT_FCI: Layout[SsseFci] = Layout(
    "ssse.select_fci",
    "social-security-card.md 'Directory'; docs/card-dgi-map.md 'SSSE commands' (SELECT)",
    cs.Struct(
        # 6F 19 | 84 0F <15-byte name> | A5 06 | 9F 0C 03 | 86 01 xx
        # (6F value: 2 + 15 + 2 + 6 = 25 = 19h; A5 value: 3 + 3 = 6)
        cs.Const(b"\x6f\x19\x84\x0f" + SSSE_DF_NAME + b"\xa5\x06\x9f\x0c\x03\x86\x01"),
        "algorithm" / cs.Int8ub,
    ),
    SsseFci,
    vectors=[
        (
            SsseFci(0x03),
            bytes.fromhex("6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860103"),
        ),
    ],
)
