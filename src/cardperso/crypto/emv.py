"""EMV issuer-side cryptography (EMV 4.3 Book 2 Annex A; PBOC 3.0 / JR/T 0025.7 follows it).

How this works
--------------
* ICC master keys (A1.4.1): option A, Y = the rightmost 16 digits of PAN || PSN (PBOC uses
  it for 19-digit PANs too). A **batch** function: the Y blocks of all cards and their complements
  go through one TDES-ECB call under the issuer master key; the single-card form is the batch
  form with one element. Results carry odd DES parity.
* Session keys: the EMV common session key (A1.3.1) from a diversification value R (ATC for the
  application-cryptogram key, usually the ARQC for secure messaging); and the PBOC style
  (``00x6 || ATC`` / ``00x6 || ~ATC``) used by many PBOC 2.0/3.0 applets.
* Application cryptograms (ARQC/TC/AAC) and issuer-script MACs are ISO/IEC 9797-1 MAC
  algorithm 3 ("retail MAC"); padding method 2 (``80 00..``) by default, method 1 when a
  scheme asks for it. Verification raises :class:`~cardperso.errors.CryptogramMismatch` or
  :class:`~cardperso.errors.MacMismatch` and compares in constant time.
* ARPC method 1 (A1.2.1 / 8.2.1) and method 2 (8.2.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from cardperso.crypto import primitives as cp
from cardperso.errors import CryptogramMismatch, DataError, UsageError

__all__ = [
    "SESSION_KEY_METHODS",
    "application_cryptogram",
    "arpc_method1",
    "arpc_method2",
    "derive_icc_master_key_a",
    "derive_icc_master_keys_a",
    "issuer_script_mac",
    "issuer_script_mac_input",
    "session_key",
    "session_key_common",
    "session_key_common_r",
    "session_key_pboc",
    "session_keys_pboc",
    "verify_application_cryptogram",
    "verify_issuer_script_mac",
]

_FF8 = b"\xff" * 8


def _check_double_key(key: bytes, what: str) -> None:
    if len(key) != 16:
        raise UsageError(f"{what} must be a 16-byte double-length DES key")


def _digits(value: str, field: str, lo: int, hi: int, record: int) -> str:
    if not (value.isascii() and value.isdigit() and lo <= len(value) <= hi):
        raise DataError(f"must be {lo}-{hi} decimal digits", field=field, record=record)
    return value


def _y_option_a(pan: str, psn: str, record: int) -> bytes:
    """Y = the rightmost 16 digits of PAN || PSN (left-padded with zeros), as 8 BCD bytes."""
    _digits(pan, "pan", 1, 19, record)
    _digits(psn, "psn", 2, 2, record)
    return bytes.fromhex((pan + psn)[-16:].rjust(16, "0"))


def _derive_from_y(imk: bytes, ys: Sequence[bytes]) -> list[bytes]:
    """One ECB call over Y1 || ~Y1 || Y2 || ~Y2 ...; each card's 16-byte key gets odd parity."""
    _check_double_key(imk, "issuer master key")
    if not ys:
        return []
    blocks = b"".join(y + cp.xor(y, _FF8) for y in ys)
    out = cp.odd_parity(cp.ecb_encrypt("3DES", imk, blocks))
    return [out[i : i + 16] for i in range(0, len(out), 16)]


def derive_icc_master_keys_a(imk: bytes, cards: Sequence[tuple[str, str]]) -> list[bytes]:
    """ICC master keys, EMV option A, for many cards: ``cards`` are (PAN digits, 2-digit PSN).

    ``MK = TDES(IMK)[Y] || TDES(IMK)[Y xor FF..FF]`` with odd parity, one cipher call in all.
    """
    return _derive_from_y(imk, [_y_option_a(p, s, i) for i, (p, s) in enumerate(cards)])


def derive_icc_master_key_a(imk: bytes, pan: str, psn: str = "00") -> bytes:
    """One card's option-A ICC master key (the batch form with one element)."""
    return derive_icc_master_keys_a(imk, [(pan, psn)])[0]


# -- session keys --------------------------------------------------------------------------------


def session_key_common_r(mk: bytes, r: bytes) -> bytes:
    """EMV common session key (Book 2 A1.3.1) from an 8-byte diversification value ``r``:
    ``TDES(MK)[r with byte 3 = F0] || TDES(MK)[r with byte 3 = 0F]``, odd parity."""
    _check_double_key(mk, "ICC master key")
    if len(r) != 8:
        raise UsageError("session key diversification value R must be 8 bytes")
    left = r[:2] + b"\xf0" + r[3:]
    right = r[:2] + b"\x0f" + r[3:]
    return cp.odd_parity(cp.ecb_encrypt("3DES", mk, left + right))


def session_key_common(mk: bytes, atc: bytes) -> bytes:
    """EMV common session key for application cryptograms: R = ATC || 00 x 6."""
    if len(atc) != 2:
        raise UsageError("ATC must be 2 bytes")
    return session_key_common_r(mk, atc + bytes(6))


def session_keys_pboc(mk: bytes, atcs: Sequence[bytes]) -> list[bytes]:
    """PBOC process (session) keys of one card master key for many ATCs, one cipher call:
    ``SK = TDES(MK)[00 x 6 || ATC] || TDES(MK)[00 x 6 || (ATC xor FFFF)]``, odd parity.

    JR/T 0025 (PBOC 2.0/3.0 debit/credit, the key used for the AC, the ARPC and the
    issuer-script MAC and encryption; pboc-conformance.md section 1, two public sources: the
    CardPlatform and XML2Java issuer simulators). A host verifying a day's authorisations of
    one card, or a test walking the ATC range, derives them all at once."""
    _check_double_key(mk, "ICC master key")
    if any(len(atc) != 2 for atc in atcs):
        raise UsageError("ATC must be 2 bytes")
    if not atcs:
        return []
    blocks = b"".join(bytes(6) + atc + bytes(6) + cp.xor(atc, b"\xff\xff") for atc in atcs)
    out = cp.odd_parity(cp.ecb_encrypt("3DES", mk, blocks))
    return [out[i : i + 16] for i in range(0, len(out), 16)]


def session_key_pboc(mk: bytes, atc: bytes) -> bytes:
    """One PBOC session key (:func:`session_keys_pboc` with one ATC)."""
    return session_keys_pboc(mk, [atc])[0]


#: Session-key derivations by name: ``"pboc"`` the ATC-only PBOC key (CVN 01), ``"emv-csk"``
#: the EMV common session key (Book 2 A1.3.1, R = ATC || 00 x 6) that other schemes use.
SESSION_KEY_METHODS = ("pboc", "emv-csk")


def session_key(method: str, mk: bytes, atc: bytes) -> bytes:
    """The session key of ``mk`` for ``atc`` by ``method`` (:data:`SESSION_KEY_METHODS`)."""
    if method == "pboc":
        return session_key_pboc(mk, atc)
    if method == "emv-csk":
        return session_key_common(mk, atc)
    raise UsageError(f"unknown session-key method {method!r} (pboc, emv-csk)")


# -- application cryptograms and ARPC ------------------------------------------------------------


def application_cryptogram(sk: bytes, data: bytes, *, padding: int = 2) -> bytes:
    """ARQC / TC / AAC: ISO/IEC 9797-1 MAC algorithm 3 over the CDOL data (8 bytes).
    ``padding`` 2 = ``80 00..`` (EMV, PBOC), 1 = zeros (some Visa CVNs)."""
    _check_double_key(sk, "AC session key")
    return cp.mac_algorithm3(sk, data, padding=padding)


def verify_application_cryptogram(
    sk: bytes, data: bytes, cryptogram: bytes, *, padding: int = 2
) -> None:
    """Recompute the cryptogram and compare in constant time; raise
    :class:`CryptogramMismatch` when it does not verify."""
    expected = application_cryptogram(sk, data, padding=padding)
    if len(cryptogram) != 8 or not cp.equal(expected, cryptogram):
        raise CryptogramMismatch("application cryptogram does not verify")


def arpc_method1(sk: bytes, arqc: bytes, arc: bytes) -> bytes:
    """ARPC method 1 (Book 2 8.2.1): ``TDES(SK)[ARQC xor (ARC || 00 x 6)]`` (8 bytes)."""
    _check_double_key(sk, "AC session key")
    if len(arqc) != 8 or len(arc) != 2:
        raise UsageError("ARPC method 1 needs an 8-byte ARQC and a 2-byte ARC")
    return cp.ecb_encrypt("3DES", sk, cp.xor(arqc, arc + bytes(6)))


def arpc_method2(sk: bytes, arqc: bytes, csu: bytes, prop: bytes = b"") -> bytes:
    """ARPC method 2 (Book 2 8.2.2): MAC algorithm 3, padding 2, over ARQC || CSU ||
    proprietary authentication data (0-8 bytes); the leftmost 4 bytes."""
    _check_double_key(sk, "AC session key")
    if len(arqc) != 8 or len(csu) != 4 or len(prop) > 8:
        raise UsageError("ARPC method 2 needs an 8-byte ARQC, 4-byte CSU, 0-8 bytes prop. data")
    return cp.mac_algorithm3(sk, arqc + csu + prop, padding=2)[:4]


# -- issuer scripts ------------------------------------------------------------------------------


def issuer_script_mac_input(header: bytes, atc: bytes, arqc: bytes, data: bytes) -> bytes:
    """The MAC input of an issuer-script command (pboc-financial.md; EMV Book 2 9.2.3):
    ``CLA INS P1 P2 || Lc || ATC || ARQC || data``; Lc counts the data plus a 4-byte MAC."""
    if len(header) != 4 or len(atc) != 2 or len(arqc) != 8:
        raise UsageError("issuer script MAC input needs a 4-byte header, ATC(2) and ARQC(8)")
    lc = len(data) + 4
    if lc > 255:
        raise UsageError("issuer script command data too long")
    return header + bytes([lc]) + atc + arqc + data


def issuer_script_mac(sk_smi: bytes, data: bytes) -> bytes:
    """Issuer-script MAC: MAC algorithm 3, padding 2, under the SMI session key. Returns all
    8 bytes; commands carry the leftmost 4 (or more, per scheme)."""
    _check_double_key(sk_smi, "SMI session key")
    return cp.mac_algorithm3(sk_smi, data, padding=2)


def verify_issuer_script_mac(sk_smi: bytes, data: bytes, mac: bytes) -> None:
    """Check a (4- to 8-byte) issuer-script MAC; raise :class:`MacMismatch`."""
    if not 4 <= len(mac) <= 8:
        raise UsageError("issuer script MAC must be 4 to 8 bytes")
    cp.verify_mac(issuer_script_mac(sk_smi, data)[: len(mac)], mac, "issuer script MAC")
