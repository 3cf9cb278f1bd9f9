"""GlobalPlatform layouts: behaviour beyond the registry vectors (errors, modes, dates)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardperso.errors import DecodeError, EncodingError, UsageError
from cardperso.layouts import gp

# pySim tests/unittests/test_globalplatform.py, SCP02_Test.init_update_resp
SCP02_RESP = bytes.fromhex("00000000000000000000700200016B4524ABEE7CF32EA3838BC148F3")


def test_cplc_is_42_bytes_and_tlv_45() -> None:
    assert gp.CPLC.size == 42
    assert gp.CPLC_TLV.size == 45


def test_cplc_tlv_rejects_another_tag() -> None:
    _, data = gp.CPLC_TLV.vectors[0]
    with pytest.raises(DecodeError) as info:
        gp.CPLC_TLV.decode(b"\x9f\x7e" + data[2:])
    assert info.value.offset == 0


def test_cplc_short_read_names_field_and_offset() -> None:
    _, data = gp.CPLC.vectors[0]
    with pytest.raises(DecodeError) as info:
        gp.CPLC.decode(data[:31])
    assert info.value.offset == 30
    assert info.value.field == "ic_prepersonalization_equipment_id"


def test_cplc_encode_wrong_length_names_field() -> None:
    model, _ = gp.CPLC.vectors[0]
    with pytest.raises(EncodingError) as info:
        gp.CPLC.encode(dataclasses.replace(model, ic_serial_number=b"\x01\x02"))
    assert info.value.field == "ic_serial_number"


def test_encode_wrong_model_type_is_usage_error() -> None:
    model, _ = gp.CPLC.vectors[0]
    with pytest.raises(UsageError, match=r"encodes Scp02InitializeUpdateResponse, got Cplc"):
        gp.SCP02_INITIALIZE_UPDATE_RESPONSE.encode(model)  # type: ignore[arg-type]


def test_scp02_response_rejects_scp03_identifier() -> None:
    bad = SCP02_RESP[:11] + b"\x03" + SCP02_RESP[12:]
    with pytest.raises(DecodeError) as info:
        gp.SCP02_INITIALIZE_UPDATE_RESPONSE.decode(bad)
    assert info.value.offset == 11
    assert info.value.field == "scp"


@pytest.mark.parametrize("length", [28, 27, 29])
def test_scp02_length(length: int) -> None:
    data = (SCP02_RESP + b"\x00")[:length]
    if length == 28:
        assert gp.SCP02_INITIALIZE_UPDATE_RESPONSE.decode(data).kvn == 0x70
    else:
        with pytest.raises(DecodeError):
            gp.SCP02_INITIALIZE_UPDATE_RESPONSE.decode(data)


def test_scp03_s16_mode() -> None:
    # Constructed: i = 71 (S16 mode, bit 1 set; pseudo-random challenge) -> 16-byte challenge
    # and cryptogram, then a 3-byte counter: 10 + 3 + 16 + 16 + 3 = 48 bytes.
    data = bytes(10) + bytes.fromhex("300371") + bytes(range(16)) + bytes(range(16, 32))
    data += bytes.fromhex("00002A")
    resp = gp.SCP03_INITIALIZE_UPDATE_RESPONSE.decode(data)
    assert resp.card_challenge == bytes(range(16))
    assert resp.card_cryptogram == bytes(range(16, 32))
    assert resp.sequence_counter == bytes.fromhex("00002A")
    assert gp.SCP03_INITIALIZE_UPDATE_RESPONSE.encode(resp) == data


def test_scp03_rejects_bad_counter_length() -> None:
    _, data = gp.SCP03_INITIALIZE_UPDATE_RESPONSE.vectors[0]
    with pytest.raises(DecodeError, match=r"2 unexpected trailing byte\(s\)"):
        gp.SCP03_INITIALIZE_UPDATE_RESPONSE.decode(data[:-1])


def test_key_information_template_long_form_length() -> None:
    # 22 DES keys of 6 bytes each = 132 bytes > 127, so the E0 length is 81 84.
    kit = gp.KeyInformationTemplate(
        tuple(gp.KeyInfo(i, 1, (gp.KeyComponent(0x80, 16),)) for i in range(1, 23))
    )
    data = gp.KEY_INFORMATION_TEMPLATE.encode(kit)
    assert data[:3] == bytes.fromhex("E08184")
    assert len(data) == 3 + 132
    assert gp.KEY_INFORMATION_TEMPLATE.decode(data) == kit


def test_key_information_template_rejects_extended_format() -> None:
    with pytest.raises(DecodeError, match="key_information_template: expected end of stream"):
        gp.KEY_INFORMATION_TEMPLATE.decode(bytes.fromhex("E008C0060101FF800010"))


def test_key_information_template_rejects_entry_overrun() -> None:
    with pytest.raises(DecodeError, match="key_information_template: expected end of stream"):
        gp.KEY_INFORMATION_TEMPLATE.decode(bytes.fromhex("E006C00501018010"))


@given(
    st.lists(
        st.builds(
            gp.KeyInfo,
            st.integers(0, 255),
            st.integers(0, 255),
            st.lists(
                st.builds(gp.KeyComponent, st.integers(0, 0xFE), st.integers(0, 255)),
                max_size=4,
            ).map(tuple),
        ),
        max_size=30,
    ).map(lambda keys: gp.KeyInformationTemplate(tuple(keys)))
)
def test_key_information_template_round_trip(kit: gp.KeyInformationTemplate) -> None:
    assert gp.KEY_INFORMATION_TEMPLATE.decode(gp.KEY_INFORMATION_TEMPLATE.encode(kit)) == kit


@pytest.mark.parametrize(
    ("raw", "reference", "expected"),
    [
        # YDDD: year digit 3, day 332 -> 2023-11-28 seen from 2026 (the latest 2023 before it)
        ("3332", datetime.date(2026, 11, 22), datetime.date(2023, 11, 28)),
        # year digit 6, day 330 is in the future in 2026 -> 2016-11-25 (2016 is a leap year)
        ("6330", datetime.date(2026, 11, 22), datetime.date(2016, 11, 25)),
        ("0078", datetime.date(2026, 11, 22), datetime.date(2020, 3, 18)),
        ("0000", datetime.date(2026, 11, 22), None),
    ],
)
def test_cplc_date(raw: str, reference: datetime.date, expected: datetime.date | None) -> None:
    assert gp.cplc_date(bytes.fromhex(raw), reference) == expected


@pytest.mark.parametrize("raw", ["E4D8", "3000", "3367", "12"])
def test_cplc_date_rejects(raw: str) -> None:
    with pytest.raises(DecodeError):
        gp.cplc_date(bytes.fromhex(raw), datetime.date(2026, 11, 22))
