"""Status words as data: ISO/IEC 7816-4, GlobalPlatform and PBOC / JR/T 0025 meanings.

How this works
--------------
:data:`STATUS_WORDS` maps a 4-character pattern to a meaning. A pattern is hex with ``x`` for
"any nibble": ``"9000"`` is exact, ``"63Cx"`` matches 63C0-63CF, ``"61xx"`` matches a whole SW1.
The meaning may use ``{x}``, replaced by the wildcard part as a number (``61xx`` ->
``"{x} more response bytes available"``; ``6Cxx`` -> the exact Le; ``63Cx`` -> tries left).
:func:`describe` picks the most specific pattern (fewest ``x``), so a table entry for an exact
SW always wins over its SW1 family.

:func:`check` treats ``9000`` and ``61xx`` as success: ``61xx`` means the card executed the
command and holds response bytes to fetch with GET RESPONSE (T=0), which transports do
before the application sees the answer. Everything else, warnings (``62xx``/``63xx``)
included, raises :class:`~cardperso.errors.CardError`: a personalization step that produced a
warning did not do what was asked (``63Cx`` after VERIFY is a wrong PIN, ``6283`` a locked
application).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cardperso.errors import CardError, UsageError

__all__ = ["STATUS_WORDS", "category", "check", "describe", "is_success"]

_TABLE: dict[str, str] = {
    # --- ISO/IEC 7816-4:2020 5.6 Table 6: normal processing ---
    "9000": "success",
    "61xx": "success; {x} more response bytes available (GET RESPONSE)",
    # --- warnings (state of non-volatile memory unchanged / changed) ---
    "62xx": "warning: state of non-volatile memory unchanged",
    "6200": "warning: no information given, non-volatile memory unchanged",
    "6281": "warning: part of returned data may be corrupted",
    "6282": "warning: end of file or record reached before reading Ne bytes",
    "6283": "warning: selected file or application invalidated (locked)",
    "6284": "warning: file control information not formatted as expected",
    "6285": "warning: selected file in termination state",
    "6286": "warning: no input data available from a sensor",
    "63xx": "warning: state of non-volatile memory changed",
    "6300": "verification failed (no information given; after EXTERNAL AUTHENTICATE: "
    "host cryptogram rejected)",
    "6310": "more data available (GlobalPlatform GET STATUS)",
    "6381": "warning: file filled up by the last write",
    "63Cx": "verification failed; {x} tries left",
    # --- execution errors ---
    "64xx": "execution error: state of non-volatile memory unchanged",
    "6400": "execution error: no information given",
    "6401": "execution error: immediate response required by the card",
    "65xx": "execution error: state of non-volatile memory changed",
    "6500": "execution error: non-volatile memory changed, no information given",
    "6581": "memory failure",
    "66xx": "security-related issue",
    # --- checking errors ---
    "67xx": "wrong length",
    "6700": "wrong length (Lc or Le)",
    "68xx": "functions in CLA not supported",
    "6800": "functions in CLA not supported",
    "6881": "logical channel not supported",
    "6882": "secure messaging not supported",
    "6883": "last command of the chain expected",
    "6884": "command chaining not supported",
    "69xx": "command not allowed",
    "6900": "command not allowed (no information given)",
    "6981": "command incompatible with file structure",
    "6982": "security status not satisfied",
    "6983": "authentication method blocked",
    "6984": "reference data not usable (invalidated)",
    "6985": "conditions of use not satisfied",
    "6986": "command not allowed (no current EF)",
    "6987": "expected secure-messaging data objects missing",
    "6988": "incorrect secure-messaging data objects",
    "6999": "applet selection failed (GlobalPlatform)",
    "6Axx": "wrong parameters P1-P2",
    "6A00": "wrong parameters P1-P2 (no information given)",
    "6A80": "incorrect parameters in the command data field",
    "6A81": "function not supported (card or application locked)",
    "6A82": "file or application not found",
    "6A83": "record not found",
    "6A84": "not enough memory space in the file",
    "6A85": "Nc inconsistent with TLV structure",
    "6A86": "incorrect parameters P1-P2",
    "6A87": "Nc inconsistent with parameters P1-P2",
    "6A88": "referenced data or reference data not found",
    "6A89": "file already exists",
    "6A8A": "DF name already exists",
    "6Bxx": "wrong parameters P1-P2",
    "6B00": "wrong parameters P1-P2 (offset outside the EF)",
    "6Cxx": "wrong Le field; exact length is {x}",
    "6D00": "instruction code not supported or invalid",
    "6Dxx": "instruction code not supported or invalid",
    "6E00": "class not supported",
    "6Exx": "class not supported",
    "6F00": "no precise diagnosis",
    "6Fxx": "no precise diagnosis",
    # --- GlobalPlatform Card Specification 2.3, 11.1.3 (DELETE / INSTALL / PUT KEY ...) ---
    "9484": "algorithm not supported",
    "9485": "invalid key check value",
    # --- PBOC / JR/T 0025 and Chinese CPU-card practice (SSSE cards share them) ---
    "9302": "MAC invalid",
    "9303": "application permanently locked",
    "9401": "insufficient balance",
    "9403": "key index not supported",
    "9406": "required MAC not available",
}

#: The status-word table, read only: pattern (hex, ``x`` = any nibble) -> meaning.
STATUS_WORDS: Mapping[str, str] = MappingProxyType(_TABLE)


def _compile(table: Mapping[str, str]) -> list[tuple[int, int, int, str]]:
    """(mask, value, wildcard shift, meaning), most specific first."""
    out: list[tuple[int, int, int, str]] = []
    for pattern, meaning in table.items():
        if len(pattern) != 4:
            raise ValueError(f"status-word pattern {pattern!r} is not 4 characters")
        mask = value = 0
        for ch in pattern:
            mask <<= 4
            value <<= 4
            if ch not in "xX":
                mask |= 0xF
                value |= int(ch, 16)
        wild = pattern.count("x") + pattern.count("X")
        out.append((mask, value, wild, meaning))
    out.sort(key=lambda e: e[2])
    return out


_PATTERNS = _compile(_TABLE)
_ZERO_MEANS_256 = frozenset({0x6100, 0x6C00})


def _check_sw(sw: int) -> None:
    if isinstance(sw, bool) or not isinstance(sw, int) or not 0 <= sw <= 0xFFFF:
        raise UsageError(f"status word must be an int from 0000 to FFFF, got {sw!r}")


def describe(sw: int) -> str:
    """The meaning of *sw* from :data:`STATUS_WORDS` (``"unknown status word"`` otherwise)."""
    _check_sw(sw)
    for mask, value, wild, meaning in _PATTERNS:
        if sw & mask == value:
            if "{x}" in meaning:
                x = sw & ((1 << (4 * wild)) - 1)
                if x == 0 and mask == 0xFF00 and value in _ZERO_MEANS_256:
                    x = 256  # 6100: 256 bytes available; 6C00: exact Le is 256
                return meaning.format(x=x)
            return meaning
    return "unknown status word"


def is_success(sw: int) -> bool:
    """True for ``9000`` and ``61xx`` (command done, response bytes pending)."""
    _check_sw(sw)
    return sw == 0x9000 or sw >> 8 == 0x61


def category(sw: int) -> str:
    """``"success"``, ``"warning"`` (62xx, 63xx) or ``"error"``."""
    if is_success(sw):
        return "success"
    if sw >> 8 in (0x62, 0x63):
        return "warning"
    return "error"


def check(sw: int, command: str = "") -> None:
    """Raise :class:`CardError` (SW, command, meaning) unless *sw* is a success (9000 / 61xx)."""
    if not is_success(sw):
        raise CardError(sw, command, describe(sw))
