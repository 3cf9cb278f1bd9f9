"""Command / response APDUs (ISO/IEC 7816-4:2020 5.1-5.2) and status words (5.6, GlobalPlatform
Card Specification 2.3 11.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.codec import status
from cardperso.codec.apdu import CommandAPDU, ResponseAPDU
from cardperso.errors import CardError, DecodeError, UsageError

SSSE_NAME = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")  # "sx1.sh.社会保障" in GBK

VECTORS = [
    # (apdu, expected bytes, case) -- header fields from the cited commands
    (CommandAPDU(0x00, 0x84, 0x00, 0x00, le=8), "0084000008", "2S"),  # GET CHALLENGE 8
    (CommandAPDU(0x80, 0xCA, 0x9F, 0x7F, le=256), "80CA9F7F00", "2S"),  # GET DATA CPLC, Le 00
    (CommandAPDU(0x00, 0xA4, 0x04, 0x00, SSSE_NAME), "00A404000F" + SSSE_NAME.hex(), "3S"),
    (  # SELECT the SSSE DF by name, with Le 00 (social-security-card.md)
        CommandAPDU(0x00, 0xA4, 0x04, 0x00, SSSE_NAME, 256),
        "00A404000F" + SSSE_NAME.hex() + "00",
        "4S",
    ),
    (  # GP INITIALIZE UPDATE, KVN 00, host challenge 0001..07, Le 00 (globalplatform-emv.md)
        CommandAPDU(0x80, 0x50, 0x00, 0x00, bytes(range(8)), 256),
        "8050000008000102030405060700",
        "4S",
    ),
    (CommandAPDU(0x00, 0x70, 0x00, 0x00), "00700000", "1"),  # MANAGE CHANNEL open
    (CommandAPDU(0x00, 0xB0, 0x00, 0x00, le=257), "00B00000000101", "2E"),
    (CommandAPDU(0x00, 0xB0, 0x00, 0x00, le=65536), "00B00000000000", "2E"),
    (
        CommandAPDU(0x80, 0xE2, 0x00, 0x00, b"\xaa" * 256),
        "80E20000000100" + "AA" * 256,
        "3E",
    ),
    (
        CommandAPDU(0x00, 0x2A, 0x9E, 0x9A, b"\x01" * 300, 65536),
        "002A9E9A00012C" + "01" * 300 + "0000",
        "4E",
    ),
    (
        CommandAPDU(0x00, 0x2A, 0x9E, 0x9A, b"\x01" * 3, 300),
        "002A9E9A000003010101012C",
        "4E",
    ),
]


@pytest.mark.parametrize(("apdu", "hexdata", "case"), VECTORS)
def test_vectors(apdu: CommandAPDU, hexdata: str, case: str) -> None:
    raw = bytes.fromhex(hexdata)
    assert apdu.to_bytes() == raw
    assert bytes(apdu) == raw
    assert apdu.case == case
    assert CommandAPDU.parse(raw) == apdu


def test_forced_extended() -> None:
    a = CommandAPDU(0x00, 0xA4, 0x04, 0x00, b"\x01\x02", 256)
    raw = a.to_bytes(extended=True)
    assert raw == bytes.fromhex("00A4040000000201020100")
    assert CommandAPDU.parse(raw) == a
    with pytest.raises(UsageError, match="needs the extended"):
        CommandAPDU(0, 0xB0, 0, 0, le=300).to_bytes(extended=False)
    with pytest.raises(UsageError, match="case 1"):
        CommandAPDU(0, 0x70, 0, 0).to_bytes(extended=True)


@pytest.mark.parametrize(
    ("hexdata", "field", "offset", "why"),
    [
        ("", "header", None, "0 bytes, shorter than the 4-byte header"),
        ("00A404", "header", None, "3 bytes"),
        ("00A404000F0102", "Lc", 4, "short Lc=15 but 2 bytes follow it (expected 15 or 16)"),
        ("00A40400020102AABB", "Lc", 4, "short Lc=2 but 4 bytes follow"),
        ("00A4040000AA", "Lc", 4, "only one byte follows"),
        ("00A404000000000102", "Lc", 5, "extended Lc is 0000"),
        ("00A40400000002AABB01", "Le", 9, "one-byte Le"),
        ("00A40400000003AABB", "Lc", 5, "extended Lc=3 but 2 bytes follow"),
    ],
)
def test_parse_errors(hexdata: str, field: str, offset: int | None, why: str) -> None:
    with pytest.raises(DecodeError) as e:
        CommandAPDU.parse(bytes.fromhex(hexdata))
    assert e.value.field == field
    assert e.value.offset == offset
    assert why in e.value.reason


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"cla": 256}, "cla must be an int"),
        ({"p2": -1}, "p2 must be an int"),
        ({"le": 0}, "le must be None or 1-65536"),
        ({"le": 65537}, "le must be None"),
        ({"data": b"\x00" * 65536}, "max 65535"),
        ({"data": "00"}, "must be bytes"),
    ],
)
def test_bad_construction(kwargs: dict[str, object], why: str) -> None:
    args: dict[str, object] = {"cla": 0, "ins": 0xA4, "p1": 0, "p2": 0} | kwargs
    with pytest.raises(UsageError, match=why):
        CommandAPDU(**args)  # type: ignore[arg-type]


def test_repr_hides_data() -> None:
    verify = CommandAPDU(0x00, 0x20, 0x00, 0x00, bytes.fromhex("123456FFFFFFFFFF"))
    assert repr(verify) == "CommandAPDU(00 20 00 00, Nc=8, Ne=None)"
    assert "123456" not in repr(verify)
    assert repr(ResponseAPDU(b"\x12\x34", 0x9000)) == "ResponseAPDU(2 bytes, sw=9000)"


def test_response() -> None:
    r = ResponseAPDU.parse(bytes.fromhex("6F1A840E9000"))
    assert r.data == bytes.fromhex("6F1A840E") and r.sw == 0x9000
    assert (r.sw1, r.sw2, r.ok) == (0x90, 0x00, True)
    assert r.to_bytes() == bytes.fromhex("6F1A840E9000")
    assert r.check("SELECT") is r
    r2 = ResponseAPDU.parse(bytes.fromhex("63C2"))
    assert r2.data == b"" and not r2.ok and r2.meaning == "verification failed; 2 tries left"
    with pytest.raises(CardError) as e:
        r2.check("VERIFY")
    assert e.value.sw == 0x63C2 and e.value.command == "VERIFY"
    with pytest.raises(DecodeError) as d:
        ResponseAPDU.parse(b"\x90")
    assert d.value.field == "SW" and "1 bytes, a status word needs 2" in d.value.reason
    with pytest.raises(
        UsageError, match=r"status word must be an int from 0000 to FFFF, got 65536"
    ):
        ResponseAPDU(b"", 0x10000)


# --- properties ----------------------------------------------------------------------------

_commands = st.builds(
    CommandAPDU,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.one_of(st.binary(max_size=300), st.binary(min_size=60000, max_size=65535)),
    st.one_of(st.none(), st.integers(1, 65536)),
)


@given(_commands, st.booleans())
def test_round_trip(apdu: CommandAPDU, force: bool) -> None:
    raw = apdu.to_bytes()
    assert CommandAPDU.parse(raw) == apdu
    assert (apdu.case[-1] == "E") == apdu.extended
    if force and apdu.case != "1":
        ext = apdu.to_bytes(extended=True)
        assert CommandAPDU.parse(ext) == apdu


@settings(deadline=None)
@given(_commands.filter(lambda a: len(a.data) < 400), st.binary(min_size=1, max_size=3))
def test_prefixes_and_trailing_bytes(apdu: CommandAPDU, extra: bytes) -> None:
    """A prefix or an extended buffer never crashes the parser and never reads as the same
    command: it is a DecodeError (the card answers 6700) or a different, well-formed APDU."""
    raw = apdu.to_bytes()
    for candidate in [raw[:i] for i in range(len(raw))] + [raw + extra]:
        try:
            got = CommandAPDU.parse(candidate)
        except DecodeError:
            continue
        assert got != apdu


@given(st.binary(max_size=300))
def test_garbage_never_crashes(raw: bytes) -> None:
    try:
        apdu = CommandAPDU.parse(raw)
    except DecodeError as e:
        assert e.field in ("header", "Lc", "Le")
    else:
        extended_form = len(raw) > 5 and raw[4] == 0
        assert apdu.to_bytes(extended=extended_form) == raw


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_response_round_trip(data: bytes, sw: int) -> None:
    r = ResponseAPDU(data, sw)
    assert ResponseAPDU.parse(r.to_bytes()) == r


# --- status words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sw", "meaning"),
    [
        (0x9000, "success"),
        (0x6110, "success; 16 more response bytes available (GET RESPONSE)"),
        (0x6100, "success; 256 more response bytes available (GET RESPONSE)"),
        (0x6C20, "wrong Le field; exact length is 32"),
        (0x6C00, "wrong Le field; exact length is 256"),
        (0x63C0, "verification failed; 0 tries left"),
        (0x63CA, "verification failed; 10 tries left"),
        (
            0x6300,
            "verification failed (no information given; after EXTERNAL AUTHENTICATE: "
            "host cryptogram rejected)",
        ),
        (0x6A82, "file or application not found"),
        (0x6A88, "referenced data or reference data not found"),
        (0x6A8A, "DF name already exists"),
        (0x6982, "security status not satisfied"),
        (0x6983, "authentication method blocked"),
        (0x6985, "conditions of use not satisfied"),
        (0x6700, "wrong length (Lc or Le)"),
        (0x6701, "wrong length"),
        (0x6A99, "wrong parameters P1-P2"),
        (0x9484, "algorithm not supported"),
        (0x9485, "invalid key check value"),
        (0x6581, "memory failure"),
        (0x6D00, "instruction code not supported or invalid"),
        (0x1234, "unknown status word"),
    ],
)
def test_describe(sw: int, meaning: str) -> None:
    assert status.describe(sw) == meaning


def test_table_is_data_and_complete() -> None:
    for sw in (
        "9000",
        "61xx",
        "6281",
        "6283",
        "6300",
        "63Cx",
        "6581",
        "6700",
        "6882",
        "6982",
        "6983",
        "6984",
        "6985",
        "6986",
        "6A80",
        "6A81",
        "6A82",
        "6A83",
        "6A84",
        "6A86",
        "6A88",
        "6B00",
        "6Cxx",
        "6D00",
        "6E00",
        "6F00",
        "9484",
        "9485",
        "6A8A",
    ):
        assert sw in status.STATUS_WORDS
    with pytest.raises(TypeError):
        status.STATUS_WORDS["9000"] = "x"  # type: ignore[index]


def test_check() -> None:
    status.check(0x9000, "SELECT")
    status.check(0x6108, "SELECT")  # response bytes pending: command done
    with pytest.raises(CardError) as e:
        status.check(0x6A82, "SELECT SSSE")
    assert e.value.sw == 0x6A82
    assert e.value.command == "SELECT SSSE"
    assert e.value.meaning == "file or application not found"
    assert str(e.value) == "SELECT SSSE: card returned 6A82 (file or application not found)"
    with pytest.raises(CardError, match=r"^card returned 6283 \(warning: ") as w:
        status.check(0x6283)  # a warning is not success
    assert w.value.sw == 0x6283
    assert [status.category(sw) for sw in (0x9000, 0x6110, 0x6283, 0x63C1, 0x6A80)] == [
        "success",
        "success",
        "warning",
        "warning",
        "error",
    ]
    with pytest.raises(
        UsageError, match=r"status word must be an int from 0000 to FFFF, got 65536"
    ):
        status.describe(0x10000)


@given(st.integers(0, 0xFFFF))
def test_every_sw_has_a_description(sw: int) -> None:
    text = status.describe(sw)
    assert text and "{" not in text
    assert status.is_success(sw) == (sw == 0x9000 or sw >> 8 == 0x61)
