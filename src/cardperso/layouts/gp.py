"""GlobalPlatform structures: CPLC, INITIALIZE UPDATE responses, Key Information Template.

Sources: GlobalPlatform Card Specification 2.3 (CPLC: the GET DATA ``9F7F`` object; SCP02:
appendix E.5.1.6, INITIALIZE UPDATE response; Key Information Template: section 11.3.3.1,
tag ``E0`` with ``C0`` entries); GlobalPlatform Amendment D (SCP03) section 7.1.1.6.
See /work/shared/reference/globalplatform-emv.md.

All identifiers and dates of the CPLC are kept as raw bytes: the fields are issuer/vendor
codes and "YDDD" BCD dates that real cards do not always fill with BCD. :func:`cplc_date`
interprets a date field when a caller wants one.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import construct as cs

from cardperso.errors import DecodeError
from cardperso.layouts.base import BerLength, Layout

__all__ = [
    "CPLC",
    "CPLC_TLV",
    "ISD_AID",
    "KEY_INFORMATION_TEMPLATE",
    "SCP02_INITIALIZE_UPDATE_RESPONSE",
    "SCP03_INITIALIZE_UPDATE_RESPONSE",
    "Cplc",
    "KeyComponent",
    "KeyInfo",
    "KeyInformationTemplate",
    "Scp02InitializeUpdateResponse",
    "Scp03InitializeUpdateResponse",
    "cplc_date",
]

#: The issuer security domain's default AID (GlobalPlatform RID A000000151, GP Card Spec).
ISD_AID = bytes.fromhex("A000000151000000")


def _strict(subcon: cs.Construct) -> cs.Construct:
    """*subcon* followed by end of stream (used inside ``Prefixed`` so no byte is ignored)."""
    return cs.FocusedSeq("value", "value" / subcon, cs.Terminated)


# --- CPLC ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cplc:
    """Card Production Life Cycle data (42 bytes). Dates are 2-byte ``YDDD`` values."""

    ic_fabricator: bytes
    ic_type: bytes
    os_id: bytes
    os_release_date: bytes
    os_release_level: bytes
    ic_fabrication_date: bytes
    ic_serial_number: bytes
    ic_batch_id: bytes
    ic_module_fabricator: bytes
    ic_module_packaging_date: bytes
    icc_manufacturer: bytes
    ic_embedding_date: bytes
    ic_prepersonalizer: bytes
    ic_prepersonalization_date: bytes
    ic_prepersonalization_equipment_id: bytes
    ic_personalizer: bytes
    ic_personalization_date: bytes
    ic_personalization_equipment_id: bytes


# GP Card Spec 2.3, GET DATA tag 9F7F "Card Production Life Cycle": 18 fields, 42 bytes.
_CPLC_FIELDS = (
    "ic_fabricator" / cs.Bytes(2),
    "ic_type" / cs.Bytes(2),
    "os_id" / cs.Bytes(2),
    "os_release_date" / cs.Bytes(2),
    "os_release_level" / cs.Bytes(2),
    "ic_fabrication_date" / cs.Bytes(2),
    "ic_serial_number" / cs.Bytes(4),
    "ic_batch_id" / cs.Bytes(2),
    "ic_module_fabricator" / cs.Bytes(2),
    "ic_module_packaging_date" / cs.Bytes(2),
    "icc_manufacturer" / cs.Bytes(2),
    "ic_embedding_date" / cs.Bytes(2),
    "ic_prepersonalizer" / cs.Bytes(2),
    "ic_prepersonalization_date" / cs.Bytes(2),
    "ic_prepersonalization_equipment_id" / cs.Bytes(4),
    "ic_personalizer" / cs.Bytes(2),
    "ic_personalization_date" / cs.Bytes(2),
    "ic_personalization_equipment_id" / cs.Bytes(4),
)

# openjavacard-tools, GPLifeCycleTest.java (CPLC_BYTES, each field asserted there).
_OJC = bytes.fromhex(
    "479050384791007833003332A0B1C2D3ABCD4812333900000000060F2032A0B1C2D30000000000000000"
)
_OJC_MODEL = Cplc(
    ic_fabricator=bytes.fromhex("4790"),
    ic_type=bytes.fromhex("5038"),
    os_id=bytes.fromhex("4791"),
    os_release_date=bytes.fromhex("0078"),
    os_release_level=bytes.fromhex("3300"),
    ic_fabrication_date=bytes.fromhex("3332"),
    ic_serial_number=bytes.fromhex("A0B1C2D3"),
    ic_batch_id=bytes.fromhex("ABCD"),
    ic_module_fabricator=bytes.fromhex("4812"),
    ic_module_packaging_date=bytes.fromhex("3339"),
    icc_manufacturer=bytes.fromhex("0000"),
    ic_embedding_date=bytes.fromhex("0000"),
    ic_prepersonalizer=bytes.fromhex("060F"),
    ic_prepersonalization_date=bytes.fromhex("2032"),
    ic_prepersonalization_equipment_id=bytes.fromhex("A0B1C2D3"),
    ic_personalizer=bytes.fromhex("0000"),
    ic_personalization_date=bytes.fromhex("0000"),
    ic_personalization_equipment_id=bytes.fromhex("00000000"),
)
# fidesmo/fdsm FidesmoCardTest.java: a real card's GET DATA 9F7F response (SW 9000 dropped),
# fields split by hand at the offsets 0,2,4,6,8,10,12,16,18,20,22,24,26,28,30,34,36,38.
_FIDESMO = bytes.fromhex(
    "47906B644700E4D80300816500485399064800000000000000005758594E4E4E4E4E0000000000000000"
)
_FIDESMO_MODEL = Cplc(
    ic_fabricator=bytes.fromhex("4790"),  # NXP
    ic_type=bytes.fromhex("6B64"),
    os_id=bytes.fromhex("4700"),
    os_release_date=bytes.fromhex("E4D8"),
    os_release_level=bytes.fromhex("0300"),
    ic_fabrication_date=bytes.fromhex("8165"),
    ic_serial_number=bytes.fromhex("00485399"),
    ic_batch_id=bytes.fromhex("0648"),
    ic_module_fabricator=bytes.fromhex("0000"),
    ic_module_packaging_date=bytes.fromhex("0000"),
    icc_manufacturer=bytes.fromhex("0000"),
    ic_embedding_date=bytes.fromhex("0000"),
    ic_prepersonalizer=bytes.fromhex("5758"),
    ic_prepersonalization_date=bytes.fromhex("594E"),
    ic_prepersonalization_equipment_id=bytes.fromhex("4E4E4E4E"),
    ic_personalizer=bytes.fromhex("0000"),
    ic_personalization_date=bytes.fromhex("0000"),
    ic_personalization_equipment_id=bytes.fromhex("00000000"),
)

#: GP Card Spec 2.3, CPLC data object value (42 bytes).
CPLC: Layout[Cplc] = Layout(
    "gp.cplc",
    "GlobalPlatform Card Specification 2.3, GET DATA 9F7F (Card Production Life Cycle)",
    cs.Struct(*_CPLC_FIELDS),
    Cplc,
    vectors=[(_OJC_MODEL, _OJC), (_FIDESMO_MODEL, _FIDESMO)],
)

#: The same value inside its TLV as a GET DATA 9F7F response returns it: ``9F 7F 2A <42 bytes>``.
CPLC_TLV: Layout[Cplc] = Layout(
    "gp.cplc_tlv",
    "GlobalPlatform Card Specification 2.3, GET DATA 9F7F response (tag 9F7F, length 2A)",
    cs.Struct(cs.Const(b"\x9f\x7f\x2a"), *_CPLC_FIELDS),
    Cplc,
    vectors=[(_OJC_MODEL, b"\x9f\x7f\x2a" + _OJC), (_FIDESMO_MODEL, b"\x9f\x7f\x2a" + _FIDESMO)],
)


def cplc_date(value: bytes, reference: datetime.date) -> datetime.date | None:
    """Interpret a CPLC ``YDDD`` date (last digit of the year, day of the year, BCD).

    The decade is the latest one that puts the date on or before *reference*. ``0000`` (not
    set) gives ``None``; a value that is not BCD or has no such day raises DecodeError.
    """
    if len(value) != 2:
        raise DecodeError(f"CPLC date is {len(value)} bytes, expected 2")
    if value == b"\x00\x00":
        return None
    digits = value.hex()
    if not digits.isdigit():
        raise DecodeError("CPLC date is not BCD")
    year_digit, day = int(digits[0]), int(digits[1:])
    if not 1 <= day <= 366:
        raise DecodeError(f"CPLC date has day of year {day}")
    year = reference.year - (reference.year - year_digit) % 10
    for candidate in (year, year - 10):
        try:
            date = datetime.date(candidate, 1, 1) + datetime.timedelta(days=day - 1)
        except OverflowError:
            continue
        if date.year == candidate and date <= reference:
            return date
    raise DecodeError(f"CPLC date day {day} does not exist in a year ending in {year_digit}")


# --- INITIALIZE UPDATE responses -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scp02InitializeUpdateResponse:
    """SCP02 INITIALIZE UPDATE response data (28 bytes)."""

    kdd: bytes  # key diversification data, 10 bytes
    kvn: int  # key version number
    sequence_counter: bytes  # 2 bytes
    card_challenge: bytes  # 6 bytes
    card_cryptogram: bytes  # 8 bytes


@dataclass(frozen=True, slots=True)
class Scp03InitializeUpdateResponse:
    """SCP03 INITIALIZE UPDATE response data (29/32 bytes in S8 mode, 45/48 in S16 mode).

    The challenge and cryptogram are 8 bytes in S8 mode and 16 in S16 mode (bit 1 of *i*).
    The 3-byte sequence counter is present only when the card uses pseudo-random challenges.
    """

    kdd: bytes  # 10 bytes
    kvn: int
    i: int  # SCP03 "i" parameter
    card_challenge: bytes
    card_cryptogram: bytes
    sequence_counter: bytes | None = None  # 3 bytes


# GP Card Spec 2.3 appendix E.5.1.6 (SCP02 INITIALIZE UPDATE response data field).
_SCP02_IU = cs.Struct(
    "kdd" / cs.Bytes(10),
    "kvn" / cs.Int8ub,
    "scp" / cs.Const(b"\x02"),
    "sequence_counter" / cs.Bytes(2),
    "card_challenge" / cs.Bytes(6),
    "card_cryptogram" / cs.Bytes(8),
)

# pySim tests/unittests/test_globalplatform.py, SCP02_Test.init_update_resp:
# KDD 00x10 | KVN 70 | SCP 02 | seq 0001 | card challenge 6B4524ABEE7C | cryptogram F32EA383...
_PYSIM_SCP02 = bytes.fromhex("00000000000000000000700200016B4524ABEE7CF32EA3838BC148F3")

SCP02_INITIALIZE_UPDATE_RESPONSE: Layout[Scp02InitializeUpdateResponse] = Layout(
    "gp.scp02_initialize_update_response",
    "GlobalPlatform Card Specification 2.3, E.5.1.6 INITIALIZE UPDATE response (SCP02)",
    _SCP02_IU,
    Scp02InitializeUpdateResponse,
    vectors=[
        (
            Scp02InitializeUpdateResponse(
                kdd=bytes(10),
                kvn=0x70,
                sequence_counter=bytes.fromhex("0001"),
                card_challenge=bytes.fromhex("6B4524ABEE7C"),
                card_cryptogram=bytes.fromhex("F32EA3838BC148F3"),
            ),
            _PYSIM_SCP02,
        ),
    ],
)


def _s_len(ctx: cs.Container) -> int:
    """8 bytes in S8 mode, 16 in S16 mode (i bit 1)."""
    return 16 if ctx.i & 0x01 else 8


# GP Amendment D (SCP03) 7.1.1.6: KDD | KVN | 03 | i | card challenge | card cryptogram [| seq].
_SCP03_IU = cs.Struct(
    "kdd" / cs.Bytes(10),
    "kvn" / cs.Int8ub,
    "scp" / cs.Const(b"\x03"),
    "i" / cs.Int8ub,
    "card_challenge" / cs.Bytes(_s_len),
    "card_cryptogram" / cs.Bytes(_s_len),
    "sequence_counter" / cs.Optional(cs.Bytes(3)),
)

SCP03_INITIALIZE_UPDATE_RESPONSE: Layout[Scp03InitializeUpdateResponse] = Layout(
    "gp.scp03_initialize_update_response",
    "GlobalPlatform Amendment D (SCP03) 7.1.1.6, INITIALIZE UPDATE response",
    _SCP03_IU,
    Scp03InitializeUpdateResponse,
    vectors=[
        # pySim tests/unittests/test_globalplatform.py, SCP03_Test_AES128_11.init_upd_rsp:
        # KDD 00x10 | KVN 30 | SCP 03 | i 70 (pseudo-random challenge, so seq follows) |
        # challenge 3EB51047495B249F | cryptogram 66C484C1D2EF1948 | seq 000002 (32 bytes).
        (
            Scp03InitializeUpdateResponse(
                kdd=bytes(10),
                kvn=0x30,
                i=0x70,
                card_challenge=bytes.fromhex("3EB51047495B249F"),
                card_cryptogram=bytes.fromhex("66C484C1D2EF1948"),
                sequence_counter=bytes.fromhex("000002"),
            ),
            bytes.fromhex("000000000000000000003003703EB51047495B249F66C484C1D2EF1948000002"),
        ),
        # Constructed here (no public 29-byte vector at hand): random challenge (i = 00),
        # so no sequence counter. KDD 00..09 | KVN 01 | 03 | 00 | challenge 11..18 |
        # cryptogram 21..28 = 10 + 1 + 1 + 1 + 8 + 8 = 29 bytes.
        (
            Scp03InitializeUpdateResponse(
                kdd=bytes(range(10)),
                kvn=0x01,
                i=0x00,
                card_challenge=bytes.fromhex("1112131415161718"),
                card_cryptogram=bytes.fromhex("2122232425262728"),
            ),
            bytes.fromhex("00010203040506070809" + "01" + "03" + "00")
            + bytes.fromhex("1112131415161718" + "2122232425262728"),
        ),
    ],
)


# --- Key Information Template --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyComponent:
    """One (key type, key length) pair: types 80 DES, 88 AES, 85 PSK-TLS, A1 RSA public e ..."""

    key_type: int
    length: int


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One ``C0`` entry: key identifier, key version number and the key's components."""

    key_id: int
    kvn: int
    components: tuple[KeyComponent, ...]


@dataclass(frozen=True, slots=True)
class KeyInformationTemplate:
    """The Key Information Template (GET DATA ``00 CA 00 E0``)."""

    keys: tuple[KeyInfo, ...]


# GP Card Spec 2.3, 11.3.3.1 "Key Information Data Structure - Basic": C0 L id KVN (type len)*.
# The extended structure (key type FF ...) is not decoded: it fails as an unexpected byte layout.
_KEY_COMPONENT = cs.Struct(
    "key_type" / cs.ExprValidator(cs.Int8ub, lambda obj, ctx: obj != 0xFF),
    "length" / cs.Int8ub,
)
_KEY_INFO = cs.FocusedSeq(
    "info",
    cs.Const(b"\xc0"),
    "info"
    / cs.Prefixed(
        cs.Int8ub,
        _strict(
            cs.Struct(
                "key_id" / cs.Int8ub,
                "kvn" / cs.Int8ub,
                "components" / cs.GreedyRange(_KEY_COMPONENT),
            )
        ),
    ),
)
_KIT = cs.Struct(
    cs.Const(b"\xe0"),
    "keys" / cs.Prefixed(BerLength, _strict(cs.GreedyRange(_KEY_INFO))),
)


def _kit_keys(*entries: tuple[int, int, int, int]) -> KeyInformationTemplate:
    return KeyInformationTemplate(
        tuple(KeyInfo(i, v, (KeyComponent(t, n),)) for i, v, t, n in entries)
    )


KEY_INFORMATION_TEMPLATE: Layout[KeyInformationTemplate] = Layout(
    "gp.key_information_template",
    "GlobalPlatform Card Specification 2.3, 11.3.3.1 Key Information Template (tag E0/C0)",
    _KIT,
    KeyInformationTemplate,
    vectors=[
        # cryptnox-id-cli tests (KEY_INFO_RESP): keys 01/02/03, KVN 01, type 80 (DES), 16 bytes.
        # E0 12 (18 = 3 x 6) | C0 04 01 01 80 10 | C0 04 02 01 80 10 | C0 04 03 01 80 10
        (
            _kit_keys((1, 1, 0x80, 16), (2, 1, 0x80, 16), (3, 1, 0x80, 16)),
            bytes.fromhex("E012C00401018010C00402018010C00403018010"),
        ),
        # Constructed: one AES-128 key set, KVN 30 (SCP03), plus an RSA key (types A1 modulus
        # 0x80 bytes, A0 exponent 3 bytes) as key 71, KVN 73: a two-component entry.
        # E0 | 1A (26 = 6 + 6 + 6 + 8) | C0 04 01 30 88 10 | C0 04 02 30 88 10 |
        # C0 04 03 30 88 10 | C0 06 71 73 A1 80 A0 03
        (
            KeyInformationTemplate(
                (
                    KeyInfo(1, 0x30, (KeyComponent(0x88, 16),)),
                    KeyInfo(2, 0x30, (KeyComponent(0x88, 16),)),
                    KeyInfo(3, 0x30, (KeyComponent(0x88, 16),)),
                    KeyInfo(0x71, 0x73, (KeyComponent(0xA1, 0x80), KeyComponent(0xA0, 3))),
                )
            ),
            bytes.fromhex("E01AC00401308810C00402308810C00403308810C0067173A180A003"),
        ),
    ],
)
