"""qPBOC (JR/T 0025.12): the PBOC application's quick contactless path, decided at GPO.

How this works
--------------
On the contactless interface (:attr:`cardperso.card.vcard.VirtualCard.contactless`) the
application answers SELECT with its contactless FCI (DGI 9103, PDOL with 9F66), and GET
PROCESSING OPTIONS reads the terminal transaction qualifiers 9F66 (TTQ; pboc-conformance.md
section 5): B1 b6 qPBOC, b7 contactless PBOC (the full path, as on contact), b4 offline-only
reader, b3 online PIN, b2 signature; B2 b8 online cryptogram required, b7 CVM required; B4 b8
fDDA 01. A TTQ with neither path the card offers is refused (6985).

On the qPBOC path the card makes the whole decision in GPO (no GENERATE AC follows), from the
electronic-cash balance (PBOC 3.0's qPBOC offline spending is electronic cash):

* **offline approval (TC)** when the amount fits the balance (9F79) and the single limit (9F78),
  the currency is the application's (9F51), and nothing sends it online; the balance is debited
  at once; the answer carries 82 94 9F36 9F26 9F10 57 5F34 9F6C 9F5D (the list a PBOC card test
  tool expects, S1), and 9F4B / 9F69 (fDDA) when the card holds an ICC key;
* **online (ARQC)** when the reader requires it (TTQ B2 b8), the amount does not fit offline, or
  the card's application default action sends a new card / one whose last issuer
  authentication failed online (:mod:`cardperso.card.pboc_crm`): 82 9F36 57 5F34 9F10 9F26 9F6C
  9F5D (and 5F20 / 9F63 when personalized). The cryptogram is the contact one
  (:func:`cardperso.layouts.pboc_ac.ac_input` over the PDOL data, which carry the minimum data
  set), so the issuer host verifies it unchanged;
* **decline (AAC)** when it may not approve offline and the reader is offline-only.

The outcome is in the CVR of 9F10 (byte 5 & 30: 10 TC, 20 ARQC, 00 AAC; the qPBOC terminal of
S3 reads it there): ``90`` / ``A0`` / ``80`` as the public qPBOC card tests expect. 9F10 is DGI
9207's when it carries one, else the contact 9200. The card transaction qualifiers 9F6C (CTQ)
start from the personalized value; the card asks for online PIN (B1 b8) or a signature (b7)
when a CVM is needed (TTQ B2 b7, or the amount above the card CVM limit 9F6B). 9F5D, the
available offline spending amount, is the balance after the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cardperso.card import pboc_crm
from cardperso.card.applet import SW_CONDITIONS, SW_WRONG_DATA, Sw, need
from cardperso.card.pboc_crm import bit
from cardperso.codec import tlv
from cardperso.crypto import emv, random_bytes
from cardperso.errors import DataError, DecodeError
from cardperso.layouts import pboc_ac

if TYPE_CHECKING:
    from cardperso.card.pboc import PbocApplet

# TTQ (9F66) bits: (byte index, mask)
TTQ_CONTACTLESS_PBOC = (0, 0x40)
TTQ_QPBOC = (0, 0x20)
TTQ_OFFLINE_ONLY = (0, 0x08)
TTQ_ONLINE_PIN = (0, 0x04)
TTQ_SIGNATURE = (0, 0x02)
TTQ_ONLINE_REQUIRED = (1, 0x80)
TTQ_CVM_REQUIRED = (1, 0x40)
TTQ_FDDA_01 = (3, 0x80)

#: 9F4B rides in the GPO answer up to this many bytes, else in the virtual record SFI 6 record 1
#: (pboc-conformance.md section 5, S3).
FDDA_IN_GPO = 128
FDDA_RECORD = (6, 1)

# CTQ (9F6C) byte 1 bits
CTQ_ONLINE_PIN = 0x80
CTQ_SIGNATURE = 0x40

#: The answer's data objects per outcome, in order (module docstring; S1's lists).
ANSWER_TAGS: dict[str, tuple[int, ...]] = {
    "TC": (0x82, 0x94, 0x9F36, 0x9F26, 0x9F10, 0x57, 0x5F34, 0x9F4B, 0x9F69, 0x9F6C, 0x9F5D),
    "ARQC": (0x82, 0x9F36, 0x57, 0x5F34, 0x9F10, 0x9F26, 0x9F63, 0x9F6C, 0x9F5D, 0x5F20),
    "AAC": (0x82, 0x9F36, 0x57, 0x5F34, 0x9F10, 0x9F26, 0x9F6C),
}


def route(ttq: bytes, has_qpboc: bool) -> str:
    """``"qpboc"``, ``"full"`` (the contact flow over the contactless interface) or 6985."""
    if has_qpboc and bit(ttq, TTQ_QPBOC):
        return "qpboc"
    if bit(ttq, TTQ_CONTACTLESS_PBOC):
        return "full"
    raise Sw(SW_CONDITIONS)


def _n(value: bytes | None) -> int:
    text = (value or b"").hex()
    if text and not text.isdigit():
        raise Sw(SW_WRONG_DATA)
    return int(text) if text else 0


def decide(applet: PbocApplet, ttq: bytes, amount: int, currency: bytes | None) -> tuple[str, int]:
    """The qPBOC outcome (TC / ARQC / AAC) and CVR byte-3 bits (module docstring)."""
    d = applet.data
    crm = pboc_crm.crm_data(applet._lookup)
    cvr, online = 0, False
    if d.last_online_atc == 0:
        cvr |= pboc_crm.CVR_NEW_CARD
        online |= crm.ada_bit(pboc_crm.ADA_NEW_CARD_ONLINE)
    if d.issuer_auth_failed:
        cvr |= pboc_crm.CVR_ISSUER_AUTH_FAILED_LAST
        online |= crm.ada_bit(pboc_crm.ADA_IA_FAILED_ONLINE_NEXT)
    fits = (
        amount <= d.ec_balance
        and amount <= d.ec_single_limit
        and (crm.currency is None or currency is None or currency == crm.currency)
    )
    new_card_declines = d.last_online_atc == 0 and crm.ada_bit(
        pboc_crm.ADA_NEW_CARD_DECLINE_OFFLINE
    )
    online |= bit(ttq, TTQ_ONLINE_REQUIRED) or not fits
    if not bit(ttq, TTQ_OFFLINE_ONLY) and online:
        return "ARQC", cvr
    if not fits or bit(ttq, TTQ_ONLINE_REQUIRED) or new_card_declines:
        return "AAC", cvr
    return "TC", cvr


def ctq(applet: PbocApplet, ttq: bytes, amount: int, decision: str) -> bytes:
    """The CTQ of this answer: personalized 9F6C, with the CVM the card asks for."""
    base = bytearray((applet._lookup(0x9F6C) or bytes(2)).ljust(2, b"\0")[:2])
    limit = applet._lookup(0x9F6B)
    cvm = bit(ttq, TTQ_CVM_REQUIRED) or (limit is not None and amount > _n(limit))
    if cvm:
        if decision == "ARQC" and bit(ttq, TTQ_ONLINE_PIN):
            base[0] |= CTQ_ONLINE_PIN
        elif bit(ttq, TTQ_SIGNATURE):
            base[0] |= CTQ_SIGNATURE
    return bytes(base)


#: Signs fDDA for a TC: ``(applet, values, 9F69 or None for fDDA 00) -> 9F4B``, or ``None``
#: when the card holds no ICC key (installed by :mod:`cardperso.card.pboc_oda`).
FddaSigner = Callable[["PbocApplet", dict[int, bytes], bytes | None], bytes | None]


def gpo(
    applet: PbocApplet, values: dict[int, bytes], pdol_data: bytes, fdda: FddaSigner | None
) -> bytes:
    """GET PROCESSING OPTIONS on the qPBOC path: decide, debit, answer (module docstring)."""
    d = applet.data
    try:
        template = tlv.to_dict(tlv.parse(d.dgis["9207"]))
    except (KeyError, DecodeError):
        raise Sw(SW_CONDITIONS) from None
    aip, afl = template.get(0x82, b""), template.get(0x94, b"")
    need(len(aip) == 2 and d.atc < 0xFFFF and bool(d.ac_key), SW_CONDITIONS)
    ttq = values[0x9F66]
    amount = _n(values.get(0x9F02))
    decision, applet.crm_cvr = decide(applet, ttq, amount, values.get(0x5F2A))
    d.atc += 1
    atc = d.atc.to_bytes(2, "big")
    applet.path, applet.aip, applet.pdol_values = "qpboc", aip, values
    if decision == "TC":
        d.ec_balance -= amount
    iad = applet._iad(decision, atc, template.get(0x9F10))  # CVR: a first AC, the 2nd not asked
    applet.ac_count, applet.first_ac = 2, decision  # no GENERATE AC follows on this path
    try:
        data = pboc_ac.ac_input(iad, values, pdol_data, aip, atc)
    except DataError:
        raise Sw(SW_CONDITIONS) from None  # a PDOL without the minimum data set
    ac = emv.application_cryptogram(
        emv.session_key(pboc_ac.session_method(iad), d.ac_key, atc), data
    )
    objects: dict[int, bytes] = {
        0x82: aip, 0x94: afl, 0x9F36: atc, 0x9F26: ac, 0x9F10: iad,
        0x9F6C: ctq(applet, ttq, amount, decision),
        0x9F5D: bytes.fromhex(f"{d.ec_balance:012d}"),
    }  # fmt: skip
    for tag in (0x57, 0x5F34, 0x5F20, 0x9F63):
        value = applet._lookup(tag)
        if value is not None:
            objects[tag] = value
    if decision == "TC" and fdda is not None:
        card_auth = None  # fDDA 00 for a reader without fDDA 01 (TTQ B4 b8): over 9F37 alone
        if bit(ttq, TTQ_FDDA_01):
            card_auth = b"\x01" + random_bytes(4) + objects[0x9F6C]  # 9F69: 01, UN, CTQ
        sdad = fdda(applet, values, card_auth)
        if sdad is not None and len(sdad) <= FDDA_IN_GPO:
            objects[0x9F4B] = sdad
            if card_auth is not None:
                objects[0x9F69] = card_auth
        elif sdad is not None:  # a key above 1024 bits: the virtual record SFI 6 record 1
            extra = tlv.encode(0x9F69, card_auth) if card_auth is not None else b""
            applet.fdda_record = tlv.encode(0x70, tlv.encode(0x9F4B, sdad) + extra)
    if decision != "ARQC":
        applet._log({**values, 0x9F36: atc})
    body = b"".join(tlv.encode(t, objects[t]) for t in ANSWER_TAGS[decision] if t in objects)
    return tlv.encode(0x77, body)
