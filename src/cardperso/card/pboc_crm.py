"""Card risk management of the PBOC debit application: the card's own offline limits.

How this works
--------------
The terminal's risk management (floor limit, 9F14 / 9F23 velocity from the records) decides
whether it *asks* for a TC; the card then applies its own checks at the first GENERATE AC and
answers TC (approved offline), ARQC (go online) or AAC (declined). PBOC 3.0 takes these checks
from VIS (JR/T 0025.5 "card risk management"; pboc-conformance.md section 3 gives the tags):

* **data** personalized in 0D01 / 0E01 (answered by GET DATA): 9F58 / 9F59 lower / upper
  consecutive offline limit (9F14 / 9F23 of the records when the card has no 9F58 / 9F59),
  9F53 consecutive offline limit in a currency other than the application's (0 when absent),
  9F54 / 9F5C cumulative total offline amount limit / upper limit (n12, application
  currency), 9F52 application default action (ADA), 9F56 issuer authentication indicator (b8:
  issuer authentication mandatory), 9F51 application currency;
* **counters** in non-volatile memory (:class:`~cardperso.card.state.PbocData`): offline debit
  transactions and their amount since the last online one, the last online ATC (9F13),
  "online transaction not completed", "issuer authentication failed in the last online
  transaction";
* the **rules** are one table, :data:`RULES`: each names its CVR bit, the condition, and what
  it makes the card do - ``online`` (a soft limit: go online, or approve offline when the
  terminal cannot go online) or ``decline`` (a hard limit: no offline approval).

CVR byte 3 (the counters' byte of 9F10's CVR, VIS layout; pboc-conformance.md section 2 and the
public qPBOC card tests that expect ``A0 10 00`` for a new card going online): 80 last online
transaction not completed, 40 PIN try limit exceeded, 20 velocity counters exceeded, 10 new
card, 08 issuer authentication failed in the last online transaction, 04 issuer
authentication not performed after an online authorisation. ADA bits ([inf] VIS, the
numbering the public PBOC personalization scripts' 9F52 values 6010 / 8240 fit): byte 1 80 if
issuer authentication failed, go online next time; 40 if issuer authentication performed and
failed, decline; 20 if issuer authentication is mandatory and no ARPC was received, decline; 02
if the PIN try limit was exceeded before, decline; 01 ... go online; byte 2 80 if new card, go
online; 40 if new card, decline when unable to go online.

Electronic cash (contact with 9F7A = 01, and qPBOC) is limited by its balance and single limit,
not by these counters; they count offline *debit* transactions. JR/T 0025.13's card action
analysis for electronic cash says so: it answers an AAC asked, and skips the online-not-
completed, last issuer authentication, last script, new card, offline PIN and velocity checks
(the text of part 13 as published on www.dybbs8.com/doc/3266674.html).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cardperso.card.state import PbocData

# CVR byte 3 bits (VIS / PBOC)
CVR_LAST_ONLINE_NOT_COMPLETED = 0x80
CVR_PIN_LIMIT_EXCEEDED = 0x40
CVR_VELOCITY_EXCEEDED = 0x20
CVR_NEW_CARD = 0x10
CVR_ISSUER_AUTH_FAILED_LAST = 0x08
CVR_ISSUER_AUTH_NOT_PERFORMED = 0x04
# CVR byte 2 bit
CVR_UNABLE_TO_GO_ONLINE = 0x01

# ADA (9F52) bits: (byte index, mask)
ADA_IA_FAILED_ONLINE_NEXT = (0, 0x80)
ADA_IA_FAILED_DECLINE = (0, 0x40)
ADA_IA_MANDATORY_NO_ARPC_DECLINE = (0, 0x20)
ADA_PIN_LIMIT_PREVIOUS_DECLINE = (0, 0x02)
ADA_PIN_LIMIT_PREVIOUS_ONLINE = (0, 0x01)
ADA_NEW_CARD_ONLINE = (1, 0x80)
ADA_NEW_CARD_DECLINE_OFFLINE = (1, 0x40)

#: ADA of a card personalized without 9F52: decline when issuer authentication failed (what
#: the card did before it read an ADA).
DEFAULT_ADA = bytes((0x40, 0x00))

#: Authorisation response codes a terminal sends in CDOL2 when it could not go online (EMV
#: Book 4 A6: Y3 approved offline, Z3 declined offline).
UNABLE_ONLINE_ARCS = frozenset({b"Y3", b"Z3"})


def bit(value: bytes, which: tuple[int, int]) -> bool:
    """Bit ``(byte index, mask)`` of ``value`` (ADA, TTQ, CTQ ...); absent bytes are 0."""
    index, mask = which
    return len(value) > index and bool(value[index] & mask)


@dataclass(frozen=True, slots=True)
class CrmData:
    """The card's personalized risk-management parameters (``None``: not personalized)."""

    lower: int | None = None
    upper: int | None = None
    cumulative: int | None = None
    cumulative_upper: int | None = None
    intl: int | None = None
    ada: bytes = DEFAULT_ADA
    issuer_auth_mandatory: bool = False
    currency: bytes | None = None

    def ada_bit(self, which: tuple[int, int]) -> bool:
        return bit(self.ada, which)


def _int(value: bytes | None, bcd: bool = False) -> int | None:
    if value is None or not value:
        return None
    if bcd:
        text = value.hex()
        return int(text) if text.isdigit() else None
    return int.from_bytes(value, "big")


def crm_data(lookup: Callable[[int], bytes | None]) -> CrmData:
    """The parameters from ``lookup(tag)`` (the card's 0D01 / 0E01 data, then its records)."""
    ada = lookup(0x9F52)
    indicator = lookup(0x9F56)
    return CrmData(
        lower=_int(lookup(0x9F58) or lookup(0x9F14)),
        upper=_int(lookup(0x9F59) or lookup(0x9F23)),
        cumulative=_int(lookup(0x9F54), bcd=True),
        cumulative_upper=_int(lookup(0x9F5C), bcd=True),
        intl=_int(lookup(0x9F53)),
        ada=ada if ada is not None and len(ada) == 2 else DEFAULT_ADA,
        issuer_auth_mandatory=bool(indicator and indicator[0] & 0x80),
        currency=lookup(0x9F51),
    )


@dataclass(frozen=True, slots=True)
class Txn:
    """What the card knows of this transaction at the first GENERATE AC."""

    amount: int
    currency: bytes | None  # 5F2A, when the CDOL carries it


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    cvr_bit: int
    applies: Callable[[PbocData, CrmData, Txn], bool]
    #: ``"online"`` (soft), ``"decline"`` (hard) or ``""`` (only sets its CVR bit)
    action: Callable[[CrmData], str]


def _same_currency(c: CrmData, t: Txn) -> bool:
    return c.currency is None or t.currency is None or c.currency == t.currency


def _passes(d: PbocData, c: CrmData, t: Txn, limit: int | None) -> bool:
    """This transaction would take the offline amount past ``limit`` (application currency)."""
    return limit is not None and _same_currency(c, t) and d.offline_amount + t.amount > limit


def _soft_if(bit: tuple[int, int]) -> Callable[[CrmData], str]:
    return lambda c: "online" if c.ada_bit(bit) else ""


def _pin_action(c: CrmData) -> str:
    if c.ada_bit(ADA_PIN_LIMIT_PREVIOUS_DECLINE):
        return "decline"
    return "online" if c.ada_bit(ADA_PIN_LIMIT_PREVIOUS_ONLINE) else ""


#: The card's checks at the first GENERATE AC, in order (module docstring).
RULES: tuple[Rule, ...] = (
    Rule(
        "last online transaction not completed",
        CVR_LAST_ONLINE_NOT_COMPLETED,
        lambda d, c, t: d.online_pending,
        lambda c: "online",
    ),
    Rule(
        "issuer authentication failed in the last online transaction",
        CVR_ISSUER_AUTH_FAILED_LAST,
        lambda d, c, t: d.issuer_auth_failed,
        _soft_if(ADA_IA_FAILED_ONLINE_NEXT),
    ),
    Rule(
        "PIN try limit exceeded",
        CVR_PIN_LIMIT_EXCEEDED,
        lambda d, c, t: bool(d.pin_block) and d.pin_tries_left == 0,
        _pin_action,
    ),
    Rule(
        "new card",
        CVR_NEW_CARD,
        lambda d, c, t: d.last_online_atc == 0,
        _soft_if(ADA_NEW_CARD_ONLINE),
    ),
    Rule(
        "no offline debit limit personalized",  # offline debit only where the issuer set one
        0,
        lambda d, c, t: c.lower is None,
        lambda c: "online",
    ),
    Rule(
        "lower consecutive offline limit",
        CVR_VELOCITY_EXCEEDED,
        lambda d, c, t: c.lower is not None and d.offline_count >= c.lower,
        lambda c: "online",
    ),
    Rule(
        "cumulative offline amount limit",
        CVR_VELOCITY_EXCEEDED,
        lambda d, c, t: _passes(d, c, t, c.cumulative),
        lambda c: "online",
    ),
    Rule(
        "consecutive offline limit, another currency (9F53)",
        CVR_VELOCITY_EXCEEDED,
        lambda d, c, t: not _same_currency(c, t) and d.offline_intl_count >= (c.intl or 0),
        lambda c: "online",
    ),
)

#: Hard limits: what a card may not exceed offline even when the terminal cannot go online.
HARD_RULES: tuple[Rule, ...] = (
    Rule(
        "upper consecutive offline limit",
        CVR_VELOCITY_EXCEEDED,
        lambda d, c, t: c.upper is not None and d.offline_count >= c.upper,
        lambda c: "decline",
    ),
    Rule(
        "cumulative offline amount upper limit",
        CVR_VELOCITY_EXCEEDED,
        lambda d, c, t: _passes(d, c, t, c.cumulative_upper),
        lambda c: "decline",
    ),
    Rule(
        "new card, unable to go online",
        CVR_NEW_CARD,
        lambda d, c, t: d.last_online_atc == 0,
        lambda c: "decline" if c.ada_bit(ADA_NEW_CARD_DECLINE_OFFLINE) else "",
    ),
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The checks' result: CVR byte-3 bits and the names of the rules that fired."""

    cvr: int
    online: tuple[str, ...]
    decline: tuple[str, ...]


def check(rules: tuple[Rule, ...], d: PbocData, c: CrmData, t: Txn) -> Outcome:
    cvr, online, decline = 0, [], []
    for rule in rules:
        if not rule.applies(d, c, t):
            continue
        cvr |= rule.cvr_bit
        action = rule.action(c)
        if action == "online":
            online.append(rule.name)
        elif action == "decline":
            decline.append(rule.name)
    return Outcome(cvr, tuple(online), tuple(decline))


def first_ac(d: PbocData, c: CrmData, t: Txn, requested: str) -> tuple[str, int]:
    """Card action analysis of a debit transaction at the first GENERATE AC: the card's answer
    (AAC, TC or ARQC) to ``requested`` and the CVR byte-3 bits."""
    soft = check(RULES, d, c, t)
    if requested == "AAC" or soft.decline:
        return "AAC", soft.cvr
    if requested == "ARQC" or soft.online:
        return "ARQC", soft.cvr
    hard = check(HARD_RULES, d, c, t)  # a terminal asking TC within the soft limits
    return ("AAC" if hard.decline else "TC"), soft.cvr | hard.cvr


def offline_after_unable_online(d: PbocData, c: CrmData, t: Txn) -> tuple[bool, int]:
    """Second GENERATE AC after the terminal could not go online (ARC Y3 / Z3): approve offline
    unless a hard limit is reached; returns (approve, CVR byte-3 bits)."""
    hard = check(HARD_RULES, d, c, t)
    return not hard.decline, hard.cvr


def second_ac_online(c: CrmData, issuer_auth: bool | None, requested: str) -> tuple[str, int]:
    """Second GENERATE AC after an online authorisation: the answer and CVR byte-3 bits.
    ``issuer_auth`` is the EXTERNAL AUTHENTICATE outcome (``None``: no ARPC received)."""
    cvr = CVR_ISSUER_AUTH_NOT_PERFORMED if issuer_auth is None else 0
    if requested != "TC":
        return "AAC", cvr
    if issuer_auth is False and c.ada_bit(ADA_IA_FAILED_DECLINE):
        return "AAC", cvr
    no_arpc_declines = c.ada_bit(ADA_IA_MANDATORY_NO_ARPC_DECLINE)
    if issuer_auth is None and c.issuer_auth_mandatory and no_arpc_declines:
        return "AAC", cvr
    return "TC", cvr


def count_offline(d: PbocData, t: Txn, c: CrmData) -> None:
    """An offline-approved debit transaction: one more, and its amount when in the
    application currency (else one more in another currency)."""
    d.offline_count = min(d.offline_count + 1, 0xFF)
    if _same_currency(c, t):
        d.offline_amount = min(d.offline_amount + t.amount, 999_999_999_999)
    else:
        d.offline_intl_count = min(d.offline_intl_count + 1, 0xFF)


def online_done(d: PbocData, c: CrmData, issuer_auth: bool | None, approved: bool) -> None:
    """The end of an online transaction (second GENERATE AC): the pending flag clears; an
    approval with successful issuer authentication (or none required and none received)
    resets the offline counters; a failed issuer authentication is remembered."""
    d.online_pending = False
    d.issuer_auth_failed = issuer_auth is False
    if approved and (issuer_auth is True or (issuer_auth is None and not c.issuer_auth_mandatory)):
        d.offline_count = d.offline_intl_count = 0
        d.offline_amount = 0
