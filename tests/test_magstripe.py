"""Magnetic-stripe tracks (ISO/IEC 7813 formats) and EMV track 2 equivalent data."""

from __future__ import annotations

import pytest

from cardperso.codec.magstripe import track1, track2, track2_equivalent, tracks, with_sentinels
from cardperso.errors import EncodingError


def test_tracks_exact_text() -> None:
    t = tracks("6212345678901234567", "Zhang/San", "3012", "220", "1010")
    assert t.track1 == "B6212345678901234567^ZHANG/SAN^30122201010"
    assert t.track2 == "6212345678901234567=30122201010"
    assert (
        with_sentinels(1, t.track1).startswith("%B")
        and with_sentinels(2, t.track2) == ";" + t.track2 + "?"
    )


def test_track2_equivalent_is_bcd_with_d_separator_and_f_pad() -> None:
    # EMV Book 3 tag 57: '=' is encoded as the nibble D, odd length padded with F
    assert track2_equivalent("6212345678901234=3012220") == bytes.fromhex(
        "6212345678901234D3012220"
    )
    assert track2_equivalent("621234567890123=301222") == bytes.fromhex("621234567890123D301222")
    assert track2_equivalent("62123=3") == bytes.fromhex("62123D3F")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: track2("62ab", "3012"), "pan"),
        (lambda: track2("6212345678901234", "3013"), "expiry_date"),
        (lambda: track2("6212345678901234", "3012", "22"), "service_code"),
        (lambda: track1("6212345678901234", "张三", "3012"), "name"),
        (lambda: track2("6212345678901234567", "3012", "220", "1" * 20), "track2"),
    ],
)
def test_bad_values_name_the_field(call, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EncodingError) as info:
        call()
    assert info.value.field == field
