"""Offline data authentication by the PBOC card: DDA, CDA and fDDA with the ICC private key.

How this works
--------------
* **The key** arrives in DGIs 8201-8205 (pboc-conformance.md section 4): q⁻¹ mod p, d mod
  (q−1), d mod (p−1), q, p, each encrypted under the STORE DATA session DEK (the ISD decrypts)
  and ``80``-padded (ISO 9797-1 method 2, always present). The card keeps each part without its
  padding; at the end of personalization the five must make one RSA key
  (:meth:`cardperso.crypto.rsa.RsaKey.from_crt`: n = pq, e·dp ≡ 1 mod p−1 ...), else the last
  STORE DATA is refused (6A80). The public exponent is the records' 9F47 (else 3 or 65537,
  whichever the parts invert).
* **DDA** (EMV 4.3 Book 2 6.5): INTERNAL AUTHENTICATE ``00 88 00 00`` with the DDOL data
  (9F49; at least the terminal's 9F37). The card answers ``77 { 9F4B }``: the signed dynamic
  application data, format 05, over ICC dynamic data = ``08 ‖`` an 8-byte ICC dynamic number
  drawn for the command, and the command's data.
* **CDA** (Book 2 6.6): GENERATE AC with P1 b5 (``10``) on a TC or ARQC: the answer is
  ``77 { 9F27, 9F36, 9F4B, 9F10 }`` - the AC travels only inside 9F4B, whose ICC dynamic data
  are ``Ldn ‖ IDN ‖ CID ‖ AC ‖ transaction data hash code`` (SHA-1 of the PDOL data, the CDOL1
  data, for the second GENERATE AC the CDOL2 data, and the answer's other data objects), signed
  over the 9F37 of the CDOL data. An AAC carries no signature (Book 2 6.6.1).
* **fDDA** (JR/T 0025.12 annex B, version 01; qPBOC offline approvals,
  :mod:`cardperso.card.qpboc`): 9F4B over 9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69, where 9F69 = ``01`` ‖ a card
  unpredictable number ‖ the CTQ; the ICC dynamic number is the ATC [inf]. A signature of at
  most 128 bytes rides in the GPO answer; a longer one (an ICC key above 1024 bits) is in the
  virtual record SFI 6 record 1, ``70 { 9F4B, 9F69 }``, for READ RECORD in this transaction
  (S3; the qPBOC AFL, DGI 9207, names it, and a personalized record 0601 takes precedence).

The signature blocks are :mod:`cardperso.layouts.emv_cert`'s (one definition with the prep and
the terminal kernel); the private operation is :func:`cardperso.crypto.rsa.rsa_sign_raw`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cardperso.card.applet import (
    SW_CONDITIONS,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    Command,
    Sw,
    need,
)
from cardperso.card.state import PbocData
from cardperso.codec import tlv
from cardperso.crypto import primitives as cp
from cardperso.crypto import random_bytes
from cardperso.crypto.rsa import RsaKey, rsa_sign_raw
from cardperso.errors import UsageError
from cardperso.layouts import emv_cert

if TYPE_CHECKING:
    from collections.abc import Callable

    from cardperso.card.pboc import PbocApplet

#: DGI -> CRT part (pboc-conformance.md section 4; keystore.pool.PART_DGIS order)
PART_DGIS = {"8201": "qinv", "8202": "dq", "8203": "dp", "8204": "q", "8205": "p"}

#: GENERATE AC P1 b5: CDA signature requested (EMV 4.3 Book 3 table 12).
P1_CDA = 0x10


def store_part(d: PbocData, dgi: int, value: bytes, encrypted: bool) -> None:
    """Keep one CRT part without its mandatory ``80`` padding (6A80 for a clear or unpadded
    one: a private key never travels in clear)."""
    need(encrypted, SW_WRONG_DATA)
    try:
        part = cp.unpad_method2(value)
    except UsageError:
        raise Sw(SW_WRONG_DATA) from None
    need(bool(part.lstrip(b"\0")), SW_WRONG_DATA)
    d.dgis[f"{dgi:04X}"] = part


def _exponent(parts: dict[str, int], lookup: Callable[[int], bytes | None]) -> int:
    given = lookup(0x9F47)
    if given:
        return int.from_bytes(given, "big")
    for e in (3, 65537):
        if (e * parts["dp"]) % (parts["p"] - 1) == 1:
            return e
    return 3


def icc_key(d: PbocData, lookup: Callable[[int], bytes | None]) -> RsaKey | None:
    """The ICC private key of DGIs 8201-8205, ``None`` when the card has none; 6A80 when the
    parts do not make one key."""
    raw = {name: d.dgis.get(dgi) for dgi, name in PART_DGIS.items()}
    if all(v is None for v in raw.values()):
        return None
    need(all(v is not None for v in raw.values()), SW_WRONG_DATA)
    parts = {k: int.from_bytes(v or b"", "big") for k, v in raw.items()}
    n = parts["p"] * parts["q"]
    modulus = n.to_bytes((n.bit_length() + 7) // 8, "big")
    try:
        return RsaKey.from_crt(
            modulus,
            _exponent(parts, lookup),
            *(raw[k] or b"" for k in ("p", "q", "dp", "dq", "qinv")),
        )
    except UsageError:
        raise Sw(SW_WRONG_DATA) from None


def _key(applet: PbocApplet) -> RsaKey:
    key = icc_key(applet.data, applet._lookup)
    need(key is not None, SW_CONDITIONS)
    assert key is not None
    return key


def _signer(key: RsaKey) -> Callable[[bytes], bytes]:
    return lambda block: rsa_sign_raw(key, block)


def internal_authenticate(applet: PbocApplet, cmd: Command) -> bytes:
    """DDA: ``77 { 9F4B }`` over an 8-byte ICC dynamic number and the DDOL data."""
    need(cmd.p1 == 0 and cmd.p2 == 0, SW_WRONG_P1P2)
    need(bool(cmd.data), SW_WRONG_LENGTH)
    key = _key(applet)
    sdad = emv_cert.build_sdad(
        _signer(key),
        len(key.modulus),
        dynamic_data=emv_cert.dda_dynamic_data(random_bytes(8)),
        terminal_data=cmd.data,
    )
    return tlv.encode(0x77, tlv.encode(0x9F4B, sdad))


def cda_answer(
    applet: PbocApplet, cid: int, atc: bytes, ac: bytes, iad: bytes, un: bytes | None
) -> bytes:
    """The GENERATE AC answer with a CDA signature in place of the AC (module docstring)."""
    need(un is not None and len(un) == 4, SW_CONDITIONS)
    assert un is not None
    key = _key(applet)
    objects = tlv.encode(0x9F27, bytes((cid,))) + tlv.encode(0x9F36, atc) + tlv.encode(0x9F10, iad)
    cdol_data = applet.cdol1_data + applet.cdol2_data  # CDOL2's only at the second
    digest = emv_cert.cda_transaction_hash(applet.pdol_data, cdol_data, objects)
    dynamic = emv_cert.cda_dynamic_data(random_bytes(8), cid, ac, digest)
    sdad = emv_cert.build_sdad(
        _signer(key), len(key.modulus), dynamic_data=dynamic, terminal_data=un
    )
    return tlv.encode(
        0x77,
        tlv.encode(0x9F27, bytes((cid,)))
        + tlv.encode(0x9F36, atc)
        + tlv.encode(0x9F4B, sdad)
        + tlv.encode(0x9F10, iad),
    )


def fdda(applet: PbocApplet, values: dict[int, bytes], card_auth: bytes | None) -> bytes | None:
    """fDDA for a qPBOC offline approval - version 01 over 9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69 with
    ``card_auth`` (9F69), version 00 over 9F37 alone without it - or ``None`` (no key). Where
    it travels (the GPO answer up to :data:`cardperso.card.qpboc.FDDA_IN_GPO` bytes, else the
    virtual record) is :mod:`cardperso.card.qpboc`'s."""
    key = icc_key(applet.data, applet._lookup)
    if key is None:
        return None
    un, amount, currency = (values.get(t, b"") for t in (0x9F37, 0x9F02, 0x5F2A))
    need(len(un) == 4, SW_CONDITIONS)
    terminal_data = un
    if card_auth is not None:
        need(len(amount) == 6 and len(currency) == 2, SW_CONDITIONS)
        terminal_data = emv_cert.fdda_terminal_data(un, amount, currency, card_auth)
    return emv_cert.build_sdad(
        _signer(key),
        len(key.modulus),
        dynamic_data=emv_cert.dda_dynamic_data(applet.data.atc.to_bytes(2, "big")),
        terminal_data=terminal_data,
    )
