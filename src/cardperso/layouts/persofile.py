"""The personalization file (perso file) container, version 2: header, records, trailer.

Specification: ``docs/prep.md`` ("The personalization file"), the project's own format. All
integers are big-endian. A file is::

    Header  ‖  Record × record_count  ‖  Trailer

* **Header** (:data:`HEADER`): magic ``CPPF``, version, the byte length of the rest of the
  header, record / read / rejected counts, creation time (Unix seconds, UTC), batch id, profile
  name and SHA-256 digest, the SHA-256 of the input file, the transport KEK (name, algorithm, KCV), the MAC scheme, the PIN
  seed wrapped under the KEK, the check values of every key used, the applications (name, AID,
  which of their DGIs are encrypted under the KEK) and the names of the card-face fields.
* **Record** (:data:`RECORD`): body length, the record's input line number (strictly
  increasing through the file), the body and a 16-byte MAC.
* **Record body** (:data:`RECORD_BODY`): in clear only flags, card number, the masked identity
  number and an 8-byte nonce; then the **sealed content** (:data:`RECORD_CONTENT`: identity
  number, PAN, card identification code, per application its AID and DGI stream, card-face
  values joined by ``1F``, magnetic-stripe tracks), encrypted with AES-CTR (counter block =
  nonce ‖ 64-bit block counter from 0) under the batch's content key.
* **Trailer** (:data:`TRAILER`): magic ``CPPE``, record count, 32-byte file MAC.

Keys and MACs (computed in :mod:`cardperso.prep.container`): ``X`` = wrap(KEK,
SHA-256("cardperso-persofile/1" ‖ len ‖ batch id ‖ profile digest)); MAC key = SHA-256("mac" ‖
X); content key = SHA-256("enc" ‖ X ‖ input digest)[:16] (a new key for every different input
file); nonce = the record's input line (8 bytes, unique in a file); record MAC = HMAC-SHA-256(MAC key, "R" ‖ line ‖
SHA-256(body))[:16]; file MAC = HMAC-SHA-256(MAC key, "F" ‖ SHA-256(header) ‖ SHA-256(MAC₀ ‖
MAC₁ ‖ …) ‖ count).

The data-preparation hot path writes records with ``struct`` directly; the tests prove those
bytes equal what these Construct layouts build and parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import construct as cs

from cardperso.errors import DecodeError, EncodingError, UsageError
from cardperso.layouts.base import Layout

__all__ = [
    "BATCH_ID_MAX",
    "CREATED_MAX",
    "FORMAT_VERSION",
    "HEADER",
    "HEADER_FIXED",
    "MAC_SCHEME",
    "MAGIC",
    "RECORD",
    "RECORD_BODY",
    "RECORD_CONTENT",
    "TRAILER",
    "TRAILER_MAGIC",
    "AppRef",
    "KeyRef",
    "PersoApp",
    "PersoHeader",
    "PersoRecord",
    "PersoRecordBody",
    "PersoRecordContent",
    "PersoSealedBody",
    "PersoTrailer",
    "check_batch_id",
    "check_created",
]

MAGIC = b"CPPF"
TRAILER_MAGIC = b"CPPE"
FORMAT_VERSION = 2
MAC_SCHEME = "hmac-sha256-128/kek-ecb-kdf"
#: Bytes before the variable part of the header: magic, version, header_len, three counts,
#: created. ``record_count`` is at offset 10 (patched when the file is complete).
HEADER_FIXED = 4 + 2 + 4 + 4 + 4 + 4 + 8
RECORD_COUNT_OFFSET = 10

#: ``created`` is Unix seconds (UTC) from 1970-01-01 to 9999-12-31T23:59:59: what a calendar
#: date can show. A header outside this range is refused when built and when read.
CREATED_MAX = 253_402_300_799
#: The batch id is a length-prefixed UTF-8 string: at most 255 bytes.
BATCH_ID_MAX = 255
_CREATED_OFFSET = HEADER_FIXED - 8


def check_created(created: int) -> None:
    """Refuse a creation time the header cannot hold or a calendar cannot show (UsageError)."""
    if not 0 <= created <= CREATED_MAX:
        raise UsageError(
            f"--created must be between 1970-01-01 and 9999-12-31 (0 to {CREATED_MAX} Unix seconds)"
        )


def check_batch_id(batch_id: str) -> None:
    """Refuse a batch id the header cannot hold: 1-255 bytes of UTF-8, no control characters."""
    try:
        size = len(batch_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError("--batch-id is not valid text (lone surrogate)") from None
    if not 1 <= size <= BATCH_ID_MAX:
        raise UsageError(f"--batch-id must be 1 to {BATCH_ID_MAX} bytes of UTF-8, got {size}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in batch_id):
        raise UsageError("--batch-id must not contain control characters")
    if not batch_id.strip():
        raise UsageError("--batch-id must not be blank")


_Str8 = cs.PascalString(cs.Int8ub, "utf8")
_Bytes8 = cs.Prefixed(cs.Int8ub, cs.GreedyBytes)


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A key used for the batch: its store name, algorithm and check value (never its value)."""

    name: str
    algorithm: str
    kcv: bytes


@dataclass(frozen=True, slots=True)
class AppRef:
    """An application of the profile: name, AID and the DGIs encrypted under the KEK."""

    name: str
    aid: bytes
    secret_dgis: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PersoHeader:
    version: int
    record_count: int
    read_count: int
    rejected_count: int
    created: int
    batch_id: str
    profile: str
    profile_digest: bytes
    input_digest: bytes
    kek_name: str
    kek_algorithm: str
    kek_kcv: bytes
    mac_scheme: str
    pin_seed: bytes = field(repr=False)
    keys: tuple[KeyRef, ...]
    apps: tuple[AppRef, ...]
    face_fields: tuple[str, ...]


_HEADER_REST = cs.Struct(
    "record_count" / cs.Int32ub,
    "read_count" / cs.Int32ub,
    "rejected_count" / cs.Int32ub,
    "created" / cs.Int64sb,
    "batch_id" / _Str8,
    "profile" / _Str8,
    "profile_digest" / cs.Bytes(32),
    "input_digest" / cs.Bytes(32),
    "kek_name" / _Str8,
    "kek_algorithm" / _Str8,
    "kek_kcv" / cs.Bytes(3),
    "mac_scheme" / _Str8,
    "pin_seed" / _Bytes8,
    "keys"
    / cs.PrefixedArray(
        cs.Int8ub, cs.Struct("name" / _Str8, "algorithm" / _Str8, "kcv" / cs.Bytes(3))
    ),
    "apps"
    / cs.PrefixedArray(
        cs.Int8ub,
        cs.Struct(
            "name" / _Str8,
            "aid" / _Bytes8,
            "secret_dgis" / cs.PrefixedArray(cs.Int8ub, cs.Int16ub),
        ),
    ),
    "face_fields" / cs.PrefixedArray(cs.Int8ub, _Str8),
)

#: Header: ``CPPF`` ‖ version ‖ length of the rest ‖ the rest.
HEADER = cs.Struct(
    "magic" / cs.Const(MAGIC),
    "version" / cs.Const(FORMAT_VERSION, cs.Int16ub),
    "rest" / cs.Prefixed(cs.Int32ub, _HEADER_REST),
)


@dataclass(frozen=True, slots=True)
class PersoApp:
    """One application's data on one card: AID and DGI stream (secret DGIs encrypted)."""

    aid: bytes
    dgis: bytes = field(repr=False)


_Ascii8 = cs.PascalString(cs.Int8ub, "ascii")


@dataclass(frozen=True, slots=True)
class PersoRecordContent:
    """The sealed part of a record body, once opened (personal data and chip data)."""

    ssn: str = field(repr=False)
    pan: str = field(repr=False)
    card_id: bytes = field(repr=False)
    apps: tuple[PersoApp, ...] = field(repr=False)
    face: str = field(repr=False)
    track1: str = field(repr=False)
    track2: str = field(repr=False)
    track3: str = field(repr=False)


#: Sealed content (encrypted in the file): identity number, PAN, card identification code,
#: per application its AID and DGI stream, card-face values joined by ``1F``, the tracks.
RECORD_CONTENT = cs.Struct(
    "ssn" / cs.PaddedString(18, "ascii"),
    "pan" / _Ascii8,
    "card_id" / cs.Bytes(16),
    "apps"
    / cs.PrefixedArray(
        cs.Int8ub,
        cs.Struct("aid" / _Bytes8, "dgis" / cs.Prefixed(cs.Int32ub, cs.GreedyBytes)),
    ),
    "face" / cs.PascalString(cs.Int16ub, "utf8"),
    "track1" / _Ascii8,
    "track2" / _Ascii8,
    "track3" / _Ascii8,
)


@dataclass(frozen=True, slots=True)
class PersoSealedBody:
    """A record body as stored: what ``perso-file show`` may print in clear, then the content
    encrypted with AES-CTR under the batch's content key (nonce = 8 bytes)."""

    flags: int
    card_no: str
    ssn_masked: str
    nonce: bytes
    sealed: bytes = field(repr=False)


#: Record body. ``flags`` bit 0: the card has a financial (PBOC) application.
RECORD_BODY = cs.Struct(
    "flags" / cs.Int8ub,
    "card_no" / cs.PaddedString(9, "ascii"),
    "ssn_masked" / cs.PaddedString(18, "ascii"),
    "nonce" / cs.Bytes(8),
    "sealed" / cs.Prefixed(cs.Int32ub, cs.GreedyBytes),
)


@dataclass(frozen=True, slots=True)
class PersoRecordBody:
    """One card's record, opened (:func:`cardperso.prep.container.iter_records`). Identity
    number, PAN, chip data, card face and tracks are personal data: never in ``repr``."""

    flags: int
    card_no: str
    ssn: str = field(repr=False)
    pan: str = field(repr=False)
    card_id: bytes = field(repr=False)
    apps: tuple[PersoApp, ...] = field(repr=False)
    face: str = field(repr=False)
    track1: str = field(repr=False)
    track2: str = field(repr=False)
    track3: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PersoRecord:
    line: int
    body: bytes = field(repr=False)
    mac: bytes


#: Record frame: body length ‖ input line number ‖ body ‖ MAC (16).
RECORD = cs.Struct(
    "length" / cs.Rebuild(cs.Int32ub, cs.len_(cs.this.body)),
    "line" / cs.Int32ub,
    "body" / cs.Bytes(cs.this.length),
    "mac" / cs.Bytes(16),
)


@dataclass(frozen=True, slots=True)
class PersoTrailer:
    record_count: int
    file_mac: bytes


TRAILER = cs.Struct(
    "magic" / cs.Const(TRAILER_MAGIC),
    "record_count" / cs.Int32ub,
    "file_mac" / cs.Bytes(32),
)
TRAILER_SIZE = 4 + 4 + 32


def _header_to_model(c: cs.Container) -> PersoHeader:
    r = c["rest"]
    if not 0 <= r["created"] <= CREATED_MAX:
        raise DecodeError(
            "persofile.header: creation time is out of range (corrupt file)",
            offset=_CREATED_OFFSET,
            field="created",
        )
    return PersoHeader(
        version=int(c["version"]),
        record_count=r["record_count"],
        read_count=r["read_count"],
        rejected_count=r["rejected_count"],
        created=r["created"],
        batch_id=r["batch_id"],
        profile=r["profile"],
        profile_digest=bytes(r["profile_digest"]),
        input_digest=bytes(r["input_digest"]),
        kek_name=r["kek_name"],
        kek_algorithm=r["kek_algorithm"],
        kek_kcv=bytes(r["kek_kcv"]),
        mac_scheme=r["mac_scheme"],
        pin_seed=bytes(r["pin_seed"]),
        keys=tuple(KeyRef(k["name"], k["algorithm"], bytes(k["kcv"])) for k in r["keys"]),
        apps=tuple(AppRef(a["name"], bytes(a["aid"]), tuple(a["secret_dgis"])) for a in r["apps"]),
        face_fields=tuple(r["face_fields"]),
    )


def _header_from_model(h: PersoHeader) -> dict[str, object]:
    if not 0 <= h.created <= CREATED_MAX:
        raise EncodingError("persofile.header: creation time is out of range", field="created")
    return {
        "magic": MAGIC,
        "version": h.version,
        "rest": {
            "record_count": h.record_count,
            "read_count": h.read_count,
            "rejected_count": h.rejected_count,
            "created": h.created,
            "batch_id": h.batch_id,
            "profile": h.profile,
            "profile_digest": h.profile_digest,
            "input_digest": h.input_digest,
            "kek_name": h.kek_name,
            "kek_algorithm": h.kek_algorithm,
            "kek_kcv": h.kek_kcv,
            "mac_scheme": h.mac_scheme,
            "pin_seed": h.pin_seed,
            "keys": [{"name": k.name, "algorithm": k.algorithm, "kcv": k.kcv} for k in h.keys],
            "apps": [
                {"name": a.name, "aid": a.aid, "secret_dgis": list(a.secret_dgis)} for a in h.apps
            ],
            "face_fields": list(h.face_fields),
        },
    }


# Vectors: built by hand from the field list above (tests/test_persofile.py cross-checks the
# fast writer against these layouts).
_HEADER_VECTOR = PersoHeader(
    version=2,
    record_count=2,
    read_count=3,
    rejected_count=1,
    created=1767225600,  # 2026-01-01T00:00:00Z
    batch_id="B1",
    profile="p",
    profile_digest=bytes(range(32)),
    input_digest=bytes(range(32, 64)),
    kek_name="k",
    kek_algorithm="3DES",
    kek_kcv=bytes.fromhex("C68821"),
    mac_scheme="m",
    pin_seed=b"\xaa\xbb",
    keys=(KeyRef("k", "3DES", bytes.fromhex("C68821")),),
    apps=(AppRef("ssse", b"\x01\x02", (0x8F01,)),),
    face_fields=("name",),
)
_HEADER_BYTES = (
    b"CPPF\x00\x02"
    + (
        4 + 4 + 4 + 8 + 3 + 2 + 32 + 32 + 2 + 5 + 3 + 2 + 3 + 1 + 2 + 5 + 3 + 1 + 5 + 3 + 3 + 1 + 5
    ).to_bytes(4, "big")
    + bytes.fromhex("00000002 00000003 00000001 000000006955B900")
    + b"\x02B1"
    + b"\x01p"
    + bytes(range(32))
    + bytes(range(32, 64))
    + b"\x01k"
    + b"\x043DES"
    + bytes.fromhex("C68821")
    + b"\x01m"
    + b"\x02\xaa\xbb"
    + b"\x01"
    + b"\x01k\x043DES"
    + bytes.fromhex("C68821")
    + b"\x01"
    + b"\x04ssse"
    + b"\x02\x01\x02"
    + b"\x01\x8f\x01"
    + b"\x01\x04name"
)

PERSO_HEADER: Layout[PersoHeader] = Layout(
    "persofile.header",
    "docs/prep.md, personalization file v2: header",
    HEADER,
    PersoHeader,
    vectors=[(_HEADER_VECTOR, _HEADER_BYTES)],
    to_model=_header_to_model,
    from_model=_header_from_model,
)

_CONTENT_VECTOR = PersoRecordContent(
    ssn="360426199101010071",
    pan="62",
    card_id=bytes(16),
    apps=(PersoApp(b"\xa0", b"\x01\x01\x00"),),
    face="a\x1fb",
    track1="",
    track2="t",
    track3="",
)
_CONTENT_BYTES = (
    b"360426199101010071\x0262"
    + bytes(16)
    + b"\x01\x01\xa0\x00\x00\x00\x03\x01\x01\x00"
    + b"\x00\x03a\x1fb"
    + b"\x00\x01t\x00"
)

PERSO_RECORD_CONTENT: Layout[PersoRecordContent] = Layout(
    "persofile.record_content",
    "docs/prep.md, personalization file v2: sealed record content",
    RECORD_CONTENT,
    PersoRecordContent,
    vectors=[(_CONTENT_VECTOR, _CONTENT_BYTES)],
)

PERSO_RECORD_BODY: Layout[PersoSealedBody] = Layout(
    "persofile.record_body",
    "docs/prep.md, personalization file v2: record body",
    RECORD_BODY,
    PersoSealedBody,
    vectors=[
        (
            PersoSealedBody(1, "X00000019", "360426********0071", bytes(range(8)), b"\x99\x98"),
            b"\x01X00000019360426********0071" + bytes(range(8)) + b"\x00\x00\x00\x02\x99\x98",
        )
    ],
)

PERSO_RECORD: Layout[PersoRecord] = Layout(
    "persofile.record",
    "docs/prep.md, personalization file v2: record frame",
    RECORD,
    PersoRecord,
    vectors=[
        (
            PersoRecord(7, b"\x01\x02\x03", bytes(range(16))),
            b"\x00\x00\x00\x03\x00\x00\x00\x07\x01\x02\x03" + bytes(range(16)),
        )
    ],
)

PERSO_TRAILER: Layout[PersoTrailer] = Layout(
    "persofile.trailer",
    "docs/prep.md, personalization file v2: trailer",
    TRAILER,
    PersoTrailer,
    vectors=[(PersoTrailer(5, bytes(32)), b"CPPE\x00\x00\x00\x05" + bytes(32))],
)
