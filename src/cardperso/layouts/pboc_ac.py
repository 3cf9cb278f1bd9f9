"""PBOC application cryptograms: the issuer application data 9F10 and the cryptogram input.

How this works
--------------
Card (:mod:`cardperso.card.pboc`) and issuer host (:mod:`cardperso.bank.host`) build the input
of an ARQC / TC / AAC with the one function here, :func:`ac_input`, so a mistake cannot hide by
being mirrored in two copies.

* **9F10** (JR/T 0025.5 / .13; pboc-conformance.md section 2, sources S1 CardPlatform and S3
  XML2Java, and two published transactions below): ``07`` (length of the standard part) ‖ DKI ‖
  CVN ‖ CVR (``03`` + 3 bytes) ‖ algorithm (01 3DES, 04 SM4), then, optional, the
  issuer-discretionary data with its own length byte: for electronic cash ``0A`` ‖ ``01`` (type:
  EC balance) ‖ the low 10 digits of 9F79 (5 bytes BCD) ‖ a 4-byte MAC.
* **Cryptogram input** for the PBOC CVNs (01, and 17 for qUICS): the fixed minimum data set
  ``9F02 ‖ 9F03 ‖ 9F1A ‖ 95 ‖ 5F2A ‖ 9A ‖ 9C ‖ 9F37`` taken by tag from the CDOL data, then
  ``82 (AIP) ‖ 9F36 (ATC) ‖ CVR`` where the CVR is 9F10 bytes 4-7 *with* its length byte 03
  (EMV Book 2 A1.2 "minimum set"; VIS CVN 10 and PBOC take the CVR that way). Any other CVN is
  cardperso's earlier EMV form: the whole CDOL data ‖ AIP ‖ ATC ‖ CVR.
* **Session key** by CVN: PBOC CVNs use the ATC-only key
  (:func:`cardperso.crypto.emv.session_key_pboc`), others the EMV common session key.
* **EC balance MAC** in 9F10 (S1 only, [1]): MAC algorithm 3 under the card's MAC (SMI) session
  key over ``ATC ‖ balance (5 bytes) ‖ 00``, the leftmost 4 bytes (:func:`idd_mac_input`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import construct as cs

from cardperso.errors import DataError, EncodingError
from cardperso.layouts.base import Layout

__all__ = [
    "AC_INPUT",
    "ALGORITHM_3DES",
    "EC_IDD",
    "IAD",
    "MINIMUM_DATA_SET",
    "PBOC_CVNS",
    "AcInput",
    "EcIdd",
    "PbocIad",
    "ac_input",
    "ec_idd_balance",
    "iad_cvr",
    "idd_mac_input",
    "session_method",
]

#: CVNs whose cryptogram is PBOC's (minimum data set, ATC-only session key): 01 contact
#: debit/credit, 17 qUICS (pboc-conformance.md section 1, S1 accepts both).
PBOC_CVNS = frozenset({0x01, 0x17})

#: The minimum data set of the cryptogram input: (tag, length) in order (EMV Book 2 A1.2 table
#: 26; PBOC's 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37).
MINIMUM_DATA_SET: tuple[tuple[int, int], ...] = (
    (0x9F02, 6),
    (0x9F03, 6),
    (0x9F1A, 2),
    (0x95, 5),
    (0x5F2A, 2),
    (0x9A, 3),
    (0x9C, 1),
    (0x9F37, 4),
)

#: Issuer-discretionary data type 01: electronic-cash balance (and its MAC).
IDD_EC_BALANCE = 0x01

#: 9F10 algorithm byte: 01 3DES (the only one cardperso's cryptograms use), 04 SM4.
ALGORITHM_3DES = 0x01


# --- 9F10 ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PbocIad:
    """Issuer application data 9F10 in PBOC's layout. ``cvr`` is the 3 bytes after the CVR's
    length byte 03; ``idd`` the issuer-discretionary data after its own length byte (``None``
    when 9F10 stops after the algorithm byte)."""

    dki: int
    cvn: int
    cvr: bytes
    algorithm: int
    idd: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.cvr) != 3:
            raise EncodingError("the CVR is 3 bytes after its length byte", field="cvr")
        if self.idd is not None and not 1 <= len(self.idd) <= 255:
            raise EncodingError("issuer-discretionary data is 1-255 bytes", field="idd")


# JR/T 0025 9F10: 07 | DKI | CVN | 03 CVR(3) | algorithm | [L | IDD(L)]
_IAD = cs.Struct(
    cs.Const(b"\x07"),
    "dki" / cs.Int8ub,
    "cvn" / cs.Int8ub,
    cs.Const(b"\x03"),
    "cvr" / cs.Bytes(3),
    "algorithm" / cs.Int8ub,
    "idd"
    / cs.Optional(
        cs.ExprValidator(cs.Prefixed(cs.Int8ub, cs.GreedyBytes), lambda obj, ctx: len(obj) > 0)
    ),
    cs.Terminated,
)

IAD: Layout[PbocIad] = Layout(
    "pboc.iad",
    "JR/T 0025 issuer application data 9F10: 07 DKI CVN CVR(03+3) algorithm [L IDD]",
    _IAD,
    PbocIad,
    vectors=[
        # DspreadOrg/qpos docs/post-transaction.md, a decoded PBOC online message (ATC 008D):
        # 07 | DKI 01 | CVN 01 | CVR 03 A02000 (1st AC ARQC) | 3DES | 0A | 01 0000000000 13F6C042
        (
            PbocIad(1, 1, bytes.fromhex("A02000"), 1, bytes.fromhex("01000000000013F6C042")),
            bytes.fromhex("07010103A02000010A01000000000013F6C042"),
        ),
        # blog.csdn.net/yxstars/article/details/38225371 ("金融系列8《应用密文产生》"), a GENERATE
        # AC answer, "0x01 + 9F79 low 5 bytes + MAC": DKI 00, CVN 01, CVR 03 A03002, alg. 01
        (
            PbocIad(0, 1, bytes.fromhex("A03002"), 1, bytes.fromhex("010000000000B0992D81")),
            bytes.fromhex("07000103A03002010A010000000000B0992D81"),
        ),
        # XML2Java (S3) personalizes 9200 = 07 01 01 03 000000 01: no discretionary part
        (PbocIad(1, 1, bytes(3), 1), bytes.fromhex("0701010300000001")),
    ],
)


@dataclass(frozen=True, slots=True)
class EcIdd:
    """Issuer-discretionary data type 01: the EC balance (low 10 digits of 9F79) and its MAC."""

    balance: int
    mac: bytes

    def __post_init__(self) -> None:
        if isinstance(self.balance, bool) or not 0 <= self.balance <= 9_999_999_999:
            raise EncodingError("the EC balance in 9F10 is 0..9999999999 fen", field="balance")
        if len(self.mac) != 4:
            raise EncodingError("the EC balance MAC is 4 bytes", field="mac")


def _bcd_decode(obj: bytes, ctx: object) -> int:
    text = obj.hex()
    if not text.isdigit():
        raise cs.ValidationError("the EC balance is not BCD")
    return int(text)


_EC_IDD = cs.Struct(
    cs.Const(bytes((IDD_EC_BALANCE,))),
    "balance"
    / cs.ExprAdapter(
        cs.Bytes(5),
        decoder=_bcd_decode,
        encoder=lambda obj, ctx: bytes.fromhex(f"{obj:010d}"),
    ),
    "mac" / cs.Bytes(4),
)

EC_IDD: Layout[EcIdd] = Layout(
    "pboc.ec_idd",
    "JR/T 0025.13: 9F10 issuer-discretionary data type 01 = EC balance (n10) and MAC (4)",
    _EC_IDD,
    EcIdd,
    vectors=[
        # the qpos message above: balance 0, MAC 13F6C042
        (EcIdd(0, bytes.fromhex("13F6C042")), bytes.fromhex("01000000000013F6C042")),
        # constructed: 150.00 yuan = 15000 fen -> 00 00 01 50 00
        (EcIdd(15000, bytes.fromhex("11223344")), bytes.fromhex("010000015000" + "11223344")),
    ],
)


def iad_cvr(iad: bytes) -> bytes:
    """The CVR as the cryptogram takes it: 9F10 bytes 4-7 (length byte 03 and 3 bytes), or
    nothing when 9F10 carries no CVR there."""
    return iad[3:7] if len(iad) >= 7 and iad[3] == 0x03 else b""


def session_method(iad: bytes) -> str:
    """``"pboc"`` when 9F10 is PBOC's with a PBOC CVN, else ``"emv-csk"``."""
    pboc = len(iad) >= 8 and iad[0] == 0x07 and iad[2] in PBOC_CVNS
    return "pboc" if pboc else "emv-csk"


def ec_idd_balance(iad: bytes) -> EcIdd | None:
    """The EC balance and MAC a PBOC 9F10 carries (type 01), else ``None``; a 9F10 that is not
    PBOC's layout raises :class:`~cardperso.errors.DecodeError`."""
    parsed = IAD.decode(iad)
    if parsed.idd is None or parsed.idd[:1] != bytes((IDD_EC_BALANCE,)):
        return None
    return EC_IDD.decode(parsed.idd)


def idd_mac_input(atc: bytes, balance5: bytes) -> bytes:
    """What the 9F10 EC balance MAC covers: ``ATC ‖ balance (5 bytes) ‖ 00`` ([1]: S1)."""
    if len(atc) != 2 or len(balance5) != 5:
        raise DataError("the balance MAC needs a 2-byte ATC and a 5-byte balance", field="9F10")
    return atc + balance5 + b"\x00"


# --- the cryptogram input ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcInput:
    """The PBOC cryptogram input, field by field (amounts in minor units)."""

    amount: int
    other_amount: int
    country: bytes
    tvr: bytes
    currency: bytes
    date: bytes
    transaction_type: int
    unpredictable: bytes
    aip: bytes
    atc: bytes
    cvr: bytes


_N12 = cs.ExprAdapter(
    cs.Bytes(6),
    decoder=_bcd_decode,
    encoder=lambda obj, ctx: bytes.fromhex(f"{obj:012d}"),
)

_AC_INPUT = cs.Struct(
    "amount" / _N12,
    "other_amount" / _N12,
    "country" / cs.Bytes(2),
    "tvr" / cs.Bytes(5),
    "currency" / cs.Bytes(2),
    "date" / cs.Bytes(3),
    "transaction_type" / cs.Int8ub,
    "unpredictable" / cs.Bytes(4),
    "aip" / cs.Bytes(2),
    "atc" / cs.Bytes(2),
    "cvr" / cs.Select(cs.FocusedSeq("c", "c" / cs.Bytes(4), cs.Terminated), cs.Bytes(0)),
)

_PYEMV = "000000002000000000000000012400000080000124110309003804823E"

AC_INPUT: Layout[AcInput] = Layout(
    "pboc.ac_input",
    "EMV Book 2 A1.2 / JR/T 0025: cryptogram input = minimum data set ‖ AIP ‖ ATC ‖ CVR",
    _AC_INPUT,
    AcInput,
    vectors=[
        # pyemv pyemv/ac.py docstring of generate_ac: the minimum set, AIP 5800, ATC 0001 (no
        # CVR); it MACs to ARQC 3B76CF10FECD8789 (tests/test_vectors_pboc.py)
        (
            AcInput(
                2000,
                0,
                bytes.fromhex("0124"),
                bytes.fromhex("0000008000"),
                bytes.fromhex("0124"),
                bytes.fromhex("110309"),
                0,
                bytes.fromhex("3804823E"),
                bytes.fromhex("5800"),
                bytes.fromhex("0001"),
                b"",
            ),
            bytes.fromhex(_PYEMV + "5800" + "0001"),
        ),
        # the same with the CVR of the qpos 9F10 above (03 A02000), AIP 7C00, ATC 008D
        (
            AcInput(
                2000,
                0,
                bytes.fromhex("0124"),
                bytes.fromhex("0000008000"),
                bytes.fromhex("0124"),
                bytes.fromhex("110309"),
                0,
                bytes.fromhex("3804823E"),
                bytes.fromhex("7C00"),
                bytes.fromhex("008D"),
                bytes.fromhex("03A02000"),
            ),
            bytes.fromhex(_PYEMV + "7C00" + "008D" + "03A02000"),
        ),
    ],
)


def ac_input(
    iad: bytes, values: Mapping[int, bytes], cdol_data: bytes, aip: bytes, atc: bytes
) -> bytes:
    """The bytes an ARQC / TC / AAC is computed over (module docstring): the minimum data set
    from ``values`` (the CDOL data by tag) for a PBOC 9F10, else ``cdol_data`` whole; then AIP,
    ATC and the CVR. A missing or short minimum-set value is a :class:`DataError` naming it."""
    if len(aip) != 2 or len(atc) != 2:
        raise DataError("the cryptogram input needs a 2-byte AIP and ATC", field="82/9F36")
    cvr = iad_cvr(iad)
    if session_method(iad) != "pboc":
        return cdol_data + aip + atc + cvr
    parts = []
    for tag, length in MINIMUM_DATA_SET:
        value = values.get(tag)
        if value is None or len(value) != length:
            raise DataError(f"the CDOL data lack {tag:X} ({length} bytes)", field=f"{tag:X}")
        parts.append(value)
    return b"".join(parts) + aip + atc + cvr
