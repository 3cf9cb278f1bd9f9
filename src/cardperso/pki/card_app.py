"""The card's PKI application as both sides see it: names, file identifiers and the PIN rules.

Shared by the card models (:mod:`cardperso.card.pki_core`) and the host
(:mod:`cardperso.chip.pki`) so that neither can drift from the other. Sources: the names, FIDs,
``80 C4`` PIN hash and the SM4 challenge-response of VERIFY / CHANGE PIN follow a public kiosk
program that personalizes third-generation cards (native-cos.md N8,
leithergit/Z390Kylin ``evolis_z390_printer.cpp``); ``docs/pki.md`` lists every command.
"""

from __future__ import annotations

from cardperso.crypto import primitives as cp
from cardperso.crypto.sm2 import sm3

__all__ = [
    "ADMIN_PIN",
    "CERT_SIZE",
    "ENC_CERT",
    "ENC_PRIV",
    "ENC_PUB",
    "FILES",
    "PKI_ADF_NAME",
    "PKI_DDF_NAME",
    "PKI_MODULE",
    "PKI_PACKAGE",
    "PRIVATE",
    "SIGN_CERT",
    "SIGN_LIMIT",
    "SIGN_PRIV",
    "SIGN_PUB",
    "USER_PIN",
    "bcd_pin",
    "change_pin_mac",
    "decimal_pin",
    "pin_hash",
]

#: "PKI.社会保障" (GBK) and "SS.CERT.ADF1": the DF names the kiosk program selects (N8).
PKI_DDF_NAME = b"PKI." + "社会保障".encode("gbk")
PKI_ADF_NAME = b"SS.CERT.ADF1"
#: The PKI load file and module on the virtual GP card (this project's test AIDs, beside the
#: SSSE's D156000005FF01); the applet instance's AID is :data:`PKI_ADF_NAME`.
PKI_PACKAGE = bytes.fromhex("D156000005FF03")
PKI_MODULE = bytes.fromhex("D156000005FF0301")

SIGN_PUB, SIGN_PRIV, ENC_PUB, ENC_PRIV, SIGN_CERT, ENC_CERT = (
    0x0012, 0x0013, 0x0014, 0x0015, 0x0018, 0x0019,
)  # fmt: skip
#: A certificate file's size (DER, then zeros).
CERT_SIZE = 0x800
#: File sizes: public keys ``CA 40 x y`` (66 bytes, N8 reads 0x42), private keys (32 bytes).
FILES = {SIGN_PUB: 66, SIGN_PRIV: 32, ENC_PUB: 66, ENC_PRIV: 32, SIGN_CERT: CERT_SIZE,
         ENC_CERT: CERT_SIZE}  # fmt: skip
#: Files never readable.
PRIVATE = frozenset({SIGN_PRIV, ENC_PRIV})
#: PIN references (N8: VERIFY P2 81 the user PIN, 00 the administrator PIN).
USER_PIN, ADMIN_PIN = 0x81, 0x00
#: The longest message SIGN takes, gathered from an ISO/IEC 7816-4 command chain: the applet's
#: transient buffer, two short APDUs' worth (ours: no public source gives a real card's). A
#: request with the longest name the validation allows is 291 bytes under the default subject
#: O / OU; a profile's O and OU (up to 64 characters each) can take it past this, so the
#: line's pre-flight checks every record's request against it.
SIGN_LIMIT = 512


def pin_hash(pin: bytes) -> bytes:
    """What ``80 C4`` answers for a PIN (packed BCD): SM3 of its bytes; the first 16 bytes are
    the SM4 key of VERIFY and CHANGE PIN [inferred: N8 shows a 32-byte answer used that way]."""
    return sm3(pin)


def change_pin_mac(key: bytes, challenge: bytes, header_and_data: bytes) -> bytes:
    """CHANGE PIN's MAC: SM4-CBC over ``84 5E 01 ref Lc`` ‖ the enciphered new PIN, padded
    ``80 00..``, IV = the 16-byte challenge, first 4 bytes (N8)."""
    return cp.mac_algorithm1("SM4", key, header_and_data, padding=2, iv=challenge)[:4]


def bcd_pin(digits: str) -> bytes:
    """A PIN's digits as packed BCD, ``F``-padded when odd."""
    if not digits.isdigit() or not 4 <= len(digits) <= 12:
        raise ValueError("a PIN is 4 to 12 digits")
    return bytes.fromhex(digits + ("F" if len(digits) % 2 else ""))


def decimal_pin(key: bytes, length: int = 8) -> str:
    """``length`` digits from a per-card key (the administrator PIN): the key's hex digits that
    are decimal, in order, then the others less 10 (the IBM 3624 decimalization)."""
    hexed = key.hex().upper()
    digits = [c for c in hexed if c.isdigit()] + [
        str(int(c, 16) - 10) for c in hexed if not c.isdigit()
    ]
    return "".join(digits[:length])
