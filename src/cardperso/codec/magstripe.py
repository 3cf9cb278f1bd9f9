"""Magnetic-stripe tracks 1 and 2 (ISO/IEC 7813 financial formats, ISO/IEC 7811 encoding).

Track 1 (IATA, 210 bpi, alphanumeric, at most 79 characters including sentinels and LRC):
``%B<PAN>^<NAME>^<YYMM><service code><discretionary>?``.
Track 2 (ABA, 75 bpi, numeric, at most 40 characters including sentinels and LRC):
``;<PAN>=<YYMM><service code><discretionary>?``.

:func:`track1` and :func:`track2` return the data between the sentinels (what a printer's
``Dm`` command takes; the encoder adds sentinels and the LRC). :func:`with_sentinels` adds them
for display or for encoders that want them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardperso.errors import EncodingError

TRACK1_MAX = 79 - 3  # start sentinel, end sentinel, LRC
TRACK2_MAX = 40 - 3
_TRACK1_CHARS = set(" !\"#&'()*+,-./0123456789:;<=>@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]_")


@dataclass(frozen=True, slots=True, repr=False)
class Tracks:
    track1: str
    track2: str

    def __repr__(self) -> str:  # PAN and cardholder name in clear: lengths only
        return f"Tracks(<track 1: {len(self.track1)} chars>, <track 2: {len(self.track2)} chars>)"


def _check_common(pan: str, expiry_yymm: str, service_code: str) -> None:
    if not pan.isdigit() or not 12 <= len(pan) <= 19:
        raise EncodingError("PAN must be 12 to 19 digits", field="pan")
    if len(expiry_yymm) != 4 or not expiry_yymm.isdigit() or not 1 <= int(expiry_yymm[2:]) <= 12:
        raise EncodingError("expiry must be YYMM", field="expiry_date")
    if len(service_code) != 3 or not service_code.isdigit():
        raise EncodingError("service code must be 3 digits", field="service_code")


def track1(
    pan: str, name: str, expiry_yymm: str, service_code: str = "220", discretionary: str = ""
) -> str:
    """Track 1 data (format code B); ``name`` is Latin (pinyin) ``SURNAME/GIVEN``, 2-26 chars."""
    _check_common(pan, expiry_yymm, service_code)
    name = name.upper()
    if not 2 <= len(name) <= 26 or not set(name) <= _TRACK1_CHARS or "^" in name:
        raise EncodingError("track 1 name must be 2-26 Latin characters (pinyin)", field="name")
    data = f"B{pan}^{name}^{expiry_yymm}{service_code}{discretionary}"
    if len(data) > TRACK1_MAX:
        raise EncodingError(
            f"track 1 is {len(data)} characters, at most {TRACK1_MAX}", field="track1"
        )
    return data


def track2(pan: str, expiry_yymm: str, service_code: str = "220", discretionary: str = "") -> str:
    """Track 2 data. ``discretionary`` is digits only."""
    _check_common(pan, expiry_yymm, service_code)
    if discretionary and not discretionary.isdigit():
        raise EncodingError("track 2 discretionary data must be digits", field="track2")
    data = f"{pan}={expiry_yymm}{service_code}{discretionary}"
    if len(data) > TRACK2_MAX:
        raise EncodingError(
            f"track 2 is {len(data)} characters, at most {TRACK2_MAX}", field="track2"
        )
    return data


def tracks(
    pan: str, name: str, expiry_yymm: str, service_code: str = "220", discretionary: str = ""
) -> Tracks:
    return Tracks(
        track1(pan, name, expiry_yymm, service_code, discretionary),
        track2(pan, expiry_yymm, service_code, "".join(c for c in discretionary if c.isdigit())),
    )


def with_sentinels(track: int, data: str) -> str:
    """Add start and end sentinels: ``%…?`` for track 1, ``;…?`` for tracks 2 and 3."""
    return ("%" if track == 1 else ";") + data + "?"


def track2_equivalent(data: str) -> bytes:
    """EMV tag 57 (track 2 equivalent data): digits as BCD, ``=`` as ``D``, ``F``-padded."""
    nibbles = data.replace("=", "D")
    if not all(c in "0123456789D" for c in nibbles):
        raise EncodingError("track 2 data has characters outside 0-9 and '='", field="track2")
    if len(nibbles) % 2:
        nibbles += "F"
    return bytes.fromhex(nibbles)
