"""APDU traces redact secrets and personal data (PINs, keys, STORE DATA, record updates) and
keep everything else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cardperso.devices.pcsc import ApduTrace, command_is_secret, redact_command

PIN_BLOCK = bytes.fromhex("241234FFFFFFFFFF")


def test_verify_pin_is_redacted() -> None:
    apdu = bytes.fromhex("0020008008") + PIN_BLOCK
    assert redact_command(apdu) == "0020008008 <8 bytes redacted>"
    assert PIN_BLOCK.hex().upper() not in redact_command(apdu)


def test_put_key_and_change_pin_are_redacted() -> None:
    put_key = bytes.fromhex("80D8018117") + bytes(range(0x17)) + b"\x00"
    assert redact_command(put_key) == "80D8018117 <23 bytes redacted> 00"
    change_pin = bytes.fromhex("805E010007") + bytes.fromhex("123456FF654321")
    assert redact_command(change_pin) == "805E010007 <7 bytes redacted>"
    unblock = bytes.fromhex("842C000010") + bytes(16)
    assert "redacted" in redact_command(unblock)


def test_store_data_and_record_updates_are_always_redacted() -> None:
    # GP STORE DATA P1 b6-b5 = 11: DGI data encrypted under the session DEK.
    encrypted = bytes.fromhex("80E260000B") + bytes.fromhex("8000081122334455667788")
    assert redact_command(encrypted) == "80E260000B <11 bytes redacted>"
    # in clear, STORE DATA carries the cardholder's records (name, identity number, PAN)
    plain = bytes.fromhex("80E200000B") + bytes.fromhex("0101085A08123456789012")
    assert redact_command(plain) == "80E200000B <11 bytes redacted>"
    app_dependent = bytes.fromhex("80E220010300AABB")
    assert command_is_secret(app_dependent)
    update_record = bytes.fromhex("00DC01340300010A")
    assert redact_command(update_record) == "00DC013403 <3 bytes redacted>"


def test_cryptograms_and_headers_stay() -> None:
    ext_auth = bytes.fromhex("8482010010") + bytes(range(16))
    assert redact_command(ext_auth) == ext_auth.hex().upper()
    assert redact_command(bytes.fromhex("0020008000")) == "0020008000"  # no data: PIN status
    assert redact_command(bytes.fromhex("0020")) == "0020"


def test_extended_length_data_is_redacted() -> None:
    data = bytes(300)
    apdu = bytes.fromhex("80D80181") + b"\x00" + len(data).to_bytes(2, "big") + data
    assert redact_command(apdu) == "80D8018100012C <300 bytes redacted>"


def test_trace_str() -> None:
    trace = ApduTrace("r 00 00", "0020008008 <8 bytes redacted>", "9000", 0.000125)
    assert str(trace) == "r 00 00: > 0020008008 <8 bytes redacted>  < 9000  (0.12 ms)"


@given(
    ins=st.sampled_from([0x20, 0x24, 0x2C, 0x5E, 0xD8]),
    cla=st.sampled_from([0x00, 0x80, 0x84]),
    p1=st.integers(0, 255),
    secret=st.binary(min_size=1, max_size=255),
    le=st.booleans(),
)
def test_secret_data_never_appears(ins: int, cla: int, p1: int, secret: bytes, le: bool) -> None:
    apdu = bytes([cla, ins, p1, 0, len(secret)]) + secret + (b"\x00" if le else b"")
    text = redact_command(apdu)
    assert text.startswith(apdu[:5].hex().upper() + f" <{len(secret)} bytes redacted>")
    assert text.endswith(" 00" if le else "redacted>")


@given(st.binary(max_size=300))
def test_redaction_never_fails(apdu: bytes) -> None:
    text = redact_command(apdu)
    if not command_is_secret(apdu) or len(apdu) <= 5:
        assert text == apdu.hex().upper()
