"""Protocol behaviour that the mutation run over cardperso.protocol found unasserted (issue 18):
the SCP02 short-APDU limits on both sides of the edge, the exact refusal of a command without
(or with a bad) C-MAC, and every STORE DATA refusal with the status word the card answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import gp
from cardperso.errors import MacMismatch, UsageError
from cardperso.protocol import storedata as sd
from cardperso.protocol.scp02 import Scp02Messaging

GP_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
SESSION = gp.scp02_session_keys(gp.StaticKeys(GP_KEY, GP_KEY, GP_KEY, "3DES"), b"\x00\x01")


def scp02(level: int = 0x01, i: int = 0x55) -> Scp02Messaging:
    return Scp02Messaging(SESSION, i, level)


def put(data: bytes, cla: int = 0x80) -> CommandAPDU:
    return CommandAPDU(cla, 0xE2, 0, 0, data)


def test_scp02_short_apdu_edges() -> None:
    # C-MAC: 247 data bytes + 8 MAC bytes = 255, the most a short APDU carries
    assert len(scp02().wrap(put(bytes(247)))) == 5 + 255
    with pytest.raises(
        UsageError, match=r"^SCP02 command data too long for a short APDU with a C-MAC$"
    ):
        scp02().wrap(put(bytes(248)))
    # C-DEC: 239 bytes pad to 240, + 8 = 248; 240 bytes pad to 248, + 8 = 256
    assert len(scp02(0x03).wrap(put(bytes(239)))) == 5 + 248
    with pytest.raises(
        UsageError, match=r"^SCP02 encrypted command data too long for a short APDU$"
    ):
        scp02(0x03).wrap(put(bytes(240)))


def test_scp02_card_side_refusals() -> None:
    lacks = r"^command lacks the C-MAC the security level requires$"
    with pytest.raises(MacMismatch, match=lacks):
        scp02().unwrap(put(bytes(8)))  # CLA without the secure-messaging bit
    with pytest.raises(MacMismatch, match=lacks):
        scp02().unwrap(put(bytes(8), cla=0x81))  # logical channel 1, still no SM bit
    with pytest.raises(MacMismatch, match=lacks):
        scp02().unwrap(put(bytes(7), cla=0x84))  # too short to hold a MAC
    with pytest.raises(MacMismatch, match=r"^C-MAC does not verify$"):
        scp02().unwrap(put(bytes(8), cla=0x84))
    with pytest.raises(
        MacMismatch, match=r"^encrypted command data is not a whole number of blocks$"
    ):
        scp02(0x03).unwrap(put(bytes(12), cla=0x84))
    with pytest.raises(MacMismatch, match=r"^encrypted command data has bad padding$"):
        scp02(0x03).unwrap(put(bytes(16), cla=0x84))
    # and what the host wraps, the card takes back
    host, card = scp02(0x03), scp02(0x03)
    assert card.unwrap(CommandAPDU.parse(host.wrap(put(b"\x01\x02\x03")))) == put(b"\x01\x02\x03")


def _after_last() -> None:
    rx = sd.StoreDataReceiver()
    rx.feed(bytes.fromhex("80E2800003010100"))
    rx.feed(bytes.fromhex("80E2800103010100"))


# (case, call, reason, status word the card answers)
RECEIVER: list[tuple[str, Callable[[], Any], str, int]] = [
    ("malformed", lambda: sd.StoreDataReceiver().feed(b"\x80\xe2"), "malformed STORE DATA APDU", 0x6700),
    ("not-store-data", lambda: sd.StoreDataReceiver().feed(bytes.fromhex("80E4000000")), "not a STORE DATA command", 0x6D00),
    ("after-last", _after_last, "STORE DATA after the last block", 0x6985),
    ("sequence", lambda: sd.StoreDataReceiver().feed(bytes.fromhex("80E2000103010100")), "sequence number 01, expected 00", 0x6A86),
    ("ber-tlv", lambda: sd.StoreDataReceiver().feed(bytes.fromhex("80E2100003010100")), "BER-TLV format STORE DATA is not supported", 0x6A86),
    ("incomplete", lambda: sd.StoreDataReceiver().feed(bytes.fromhex("80E280000301010500")), "the last STORE DATA leaves an incomplete DGI", 0x6A80),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "reason", "sw"), RECEIVER, ids=[r[0] for r in RECEIVER])
def test_store_data_refusals_carry_the_status_word(
    case: str, call: Callable[[], Any], reason: str, sw: int
) -> None:
    with pytest.raises(sd.StoreDataRejected) as exc:
        call()
    got = exc.value
    assert (got.sw, got.field, got.reason) == (
        sw,
        "STORE DATA",
        f"{reason} (card answers {sw:04X})",
    )


def test_store_data_sequence_numbers_wrap_at_256() -> None:
    assert sd.StoreDataReceiver(256).expected_sequence == 0
    assert sd.StoreDataReceiver(257).expected_sequence == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_data": 256}, "STORE DATA max_data must be 1-255"),
        ({"max_data": 0}, "STORE DATA max_data must be 1-255"),
        ({"dgi_format": 0x10}, "STORE DATA dgi_format must be 0x00 or 0x08"),
        ({"block_size": 12}, "DEK block size must be 8 or 16"),
    ],
)
def test_store_data_conventions_refusals(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(UsageError) as exc:
        sd.StoreDataConventions(**kwargs)  # type: ignore[arg-type]
    assert str(exc.value) == message


def test_store_data_needs_a_dgi() -> None:
    with pytest.raises(UsageError) as exc:
        sd.build_store_data([])
    assert str(exc.value) == "STORE DATA needs at least one DGI"


_AES = bytes(range(16))
_SCP03 = gp.scp03_session_keys(gp.StaticKeys(_AES, _AES, _AES, "AES"), bytes(16))


def _scp03(level: int = 0x33) -> Any:
    from cardperso.protocol.scp03 import Scp03Messaging

    return Scp03Messaging(_SCP03, level)


def _refusal(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        call()
    except Exception as exc:  # the refusal is the result here
        return type(exc).__name__, str(exc)
    return "no error", ""


def test_channel_and_scp03_refusals() -> None:
    from cardperso.protocol import channel as ch
    from cardperso.protocol import scp02, scp03

    extended = bytes.fromhex("80E20000000100") + bytes(256)
    assert [
        _refusal(call)
        for call in (
            lambda: ch.parse_command(extended),
            lambda: ch.split_response(b"\x90"),
            lambda: ch.check_success(b"\x6a\x82", "SELECT"),
            lambda: scp02._check_i(0x0A),
            lambda: scp02._check_level(0x02),
            lambda: scp03._check_i(0x01),
            lambda: _scp03().unwrap(put(bytes(8))),
            lambda: _scp03().unwrap(put(bytes(8), cla=0x84)),
            lambda: _scp03().wrap(put(bytes(248))),
            lambda: _scp03().unwrap_response(b"\x90\x00"),
        )
    ] == [
        ("UsageError", "secure messaging is implemented for short APDUs only"),
        ("DecodeError", "field 'SW': at offset 0: response shorter than a status word"),
        ("CardError", "SELECT: card returned 6A82 (file or application not found)"),
        (
            "UsageError",
            "SCP02 i=0A is not supported (implicit initiation, AID-based ICV and R-MAC are not "
            "implemented)",
        ),
        ("UsageError", "SCP02 security level 02 is not supported (00, 01, 03)"),
        ("UsageError", "SCP03 i=01 is not supported (S8 mode; bits 10, 20, 40)"),
        ("MacMismatch", "command lacks the C-MAC the security level requires"),
        ("MacMismatch", "C-MAC does not verify"),
        ("UsageError", "SCP03 command data too long for a short APDU with a C-MAC"),
        ("MacMismatch", "response lacks the R-MAC the security level requires"),
    ]
    assert scp03._level_ok(0x33, 0x70) and not scp03._level_ok(0x33, 0x30)
    assert not scp03._level_ok(0x33, 0x31)  # bit 01 is not the R-ENC bit (40)
