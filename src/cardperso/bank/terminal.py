"""Terminal-side flows against a PBOC card, sans-IO: generators that yield command APDUs and
are sent the card's responses (flows of :mod:`cardperso.chip.transport`).

How this works
--------------
Every flow is a generator; :func:`cardperso.chip.transport.drive` runs one over
``transmit(apdu) -> response`` (a PC/SC transport, the in-process transport of the virtual
card, a station). The issuer host is a
library object (:class:`~cardperso.bank.host.IssuerHost`) the online flows call between two
commands, as a terminal calls its acquirer.

* :func:`ec_balance` — application selection (PSE, else PPSE, else the AID), then GET DATA
  9F79 / 9F77 / 9F78 / 9F6D.
* :func:`ec_load` — GET DATA balance and limit first, and a load that would pass the limit is
  refused **before anything changes on the card**; then GPO, READ RECORD (AFL), GENERATE AC
  (ARQC) → host verifies → EXTERNAL AUTHENTICATE (ARPC ‖ ARC) → issuer script PUT DATA 9F79 →
  second GENERATE AC (TC) → GET DATA 9F79 read back. The host is sent the card's 9F10 and
  computes the new balance from the balance the card authenticated there
  (:meth:`~cardperso.bank.host.AuthRequest.from_card`), never from the 9F79 this terminal
  read, and checks it against the limit the issuer knows, never the 9F77 read here: those
  reads only let the terminal refuse early (the card refuses a script past its own 9F77). A cryptogram the host refuses ends the
  transaction with a second GENERATE AC asking for an AAC, then raises.
* :func:`verify_card` — the bank's quality control: selection through PSE/PPSE, records, an
  ARQC the host verifies, issuer authentication, a second GENERATE AC.
* :func:`ec_purchase` — an offline electronic-cash purchase: GPO with the EC terminal support
  indicator 9F7A = 01, GENERATE AC asking for a TC; the card approves (TC) and decrements the
  balance when the amount is within the single-transaction limit and the balance, else AAC.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field

from cardperso.bank.host import AuthRequest, AuthResponse, IssuerHost, LoadRefused
from cardperso.chip.gp import ok as _ok
from cardperso.chip.pboc_flows import CID_NAMES, AcAnswer, generate_ac, gpo, read_afl
from cardperso.chip.transport import Flow
from cardperso.codec import tlv
from cardperso.codec.apdu import CommandAPDU, ResponseAPDU
from cardperso.codec.numbers import mask_id
from cardperso.crypto import random_bytes
from cardperso.errors import CardError, DataError, SecurityError

__all__ = [
    "CID_NAMES",
    "PPSE_NAME",
    "PSE_NAME",
    "AcAnswer",
    "AppSelection",
    "CardSession",
    "EcBalance",
    "LoadResult",
    "PurchaseResult",
    "TerminalData",
    "VerifyResult",
    "ec_balance",
    "ec_load",
    "ec_purchase",
    "generate_ac",
    "gpo_and_records",
    "verify_card",
]


PSE_NAME = b"1PAY.SYS.DDF01"
PPSE_NAME = b"2PAY.SYS.DDF01"
#: UnionPay debit/credit AIDs tried when neither directory answers (pboc-financial.md).
KNOWN_AIDS = tuple(
    bytes.fromhex(a) for a in ("A000000333010101", "A000000333010102", "A000000333010106")
)


def _sw(raw: bytes) -> int:
    return ResponseAPDU.parse(raw).sw


@dataclass(frozen=True, slots=True)
class TerminalData:
    """The terminal's data objects for PDOL and CDOL (EMV Book 3 / 4; PBOC defaults)."""

    amount: int = 0
    other_amount: int = 0
    country: bytes = b"\x01\x56"
    currency: bytes = b"\x01\x56"
    transaction_type: int = 0x00
    ec_support: bool = False
    date: _dt.date | None = None
    unpredictable: bytes | None = None
    merchant: bytes = b"cardperso bank".ljust(20, b" ")
    #: terminal transaction qualifiers 9F66 for a contactless PDOL (cardperso.bank.qpboc.ttq)
    ttq: bytes = b""

    def values(self, arc: bytes = b"") -> dict[int, bytes]:
        today = self.date or _dt.datetime.now(_dt.UTC).date()
        values = {
            0x9F02: bytes.fromhex(f"{self.amount:012d}"),
            0x9F03: bytes.fromhex(f"{self.other_amount:012d}"),
            0x9F1A: self.country,
            0x95: bytes(5),
            0x5F2A: self.currency,
            0x9A: bytes.fromhex(today.strftime("%y%m%d")),
            0x9C: bytes((self.transaction_type,)),
            0x9F37: self.unpredictable or random_bytes(4),
            0x9F21: bytes(3),
            0x9F4E: self.merchant,
            0x9F7A: b"\x01" if self.ec_support else b"\x00",
            0xDF69: b"\x00",
        }
        if self.ttq:
            values[0x9F66] = self.ttq
        if arc:
            values[0x8A] = arc
        return values

    def dol_data(self, dol: bytes, arc: bytes = b"") -> bytes:
        values = self.values(arc)
        out = b""
        for tag, length in tlv.parse_dol(dol):
            value = values.get(tag, b"")
            out += (
                value[:length].rjust(length, b"\x00")
                if tag in (0x9F02, 0x9F03)
                else (value[:length].ljust(length, b"\x00"))
            )
        return out


@dataclass(frozen=True, slots=True)
class AppSelection:
    aid: bytes
    fci: bytes
    pdol: bytes
    via: str  # "PSE", "PPSE" or "AID"


@dataclass(slots=True)
class CardSession:
    """What the terminal learnt about the card in one transaction (PAN and records never in a
    repr)."""

    selection: AppSelection
    aip: bytes = b""
    afl: bytes = b""
    records: dict[int, bytes] = field(default_factory=dict, repr=False)  # personal data
    pan: str = field(default="", repr=False)
    psn: str = "00"
    cdol1: bytes = b""
    cdol2: bytes = b""

    @property
    def pan_masked(self) -> str:
        return mask_id(self.pan)


@dataclass(frozen=True, slots=True)
class EcBalance:
    balance: int
    balance_limit: int
    single_limit: int
    reset_threshold: int
    via: str = ""


@dataclass(frozen=True, slots=True)
class LoadResult:
    pan_masked: str
    amount: int
    balance_before: int
    balance_after: int
    atc: int
    second_cid: str


@dataclass(frozen=True, slots=True)
class PurchaseResult:
    pan_masked: str
    amount: int
    cid: str
    balance_before: int
    balance_after: int
    atc: int

    @property
    def approved(self) -> bool:
        return self.cid == "TC"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    pan_masked: str
    aid: bytes
    via: str
    atc: int
    records: int
    checks: tuple[str, ...]


# -- building blocks -------------------------------------------------------------------------


def select(prefer: str = "PSE") -> Flow[AppSelection]:
    """Application selection: the PSE (contact) or PPSE directory, else the known AIDs."""
    order = [PSE_NAME, PPSE_NAME] if prefer == "PSE" else [PPSE_NAME, PSE_NAME]
    aid = b""
    via = "AID"
    for name in order:
        raw = yield CommandAPDU(0x00, 0xA4, 0x04, 0x00, name, le=256).to_bytes()
        if _sw(raw) != 0x9000:
            continue
        fci = tlv.parse(ResponseAPDU.parse(raw).data)
        if name == PPSE_NAME:
            directory = tlv.find(fci, 0xBF0C)
            entries = tlv.parse(directory.value) if directory is not None else []
        else:
            sfi_obj = tlv.find(fci, 0x88)
            sfi = sfi_obj.value[0] if sfi_obj is not None and sfi_obj.value else 1
            rec = yield CommandAPDU(0x00, 0xB2, 0x01, (sfi << 3) | 4, le=256).to_bytes()
            entries = []
            if _sw(rec) == 0x9000:
                found = tlv.find(tlv.parse(ResponseAPDU.parse(rec).data), 0x70)
                entries = tlv.parse(found.value) if found is not None else []
        for entry in entries:
            if entry.tag == 0x61:
                adf = tlv.find(tlv.parse(entry.value), 0x4F)
                if adf is not None:
                    aid = adf.value
                    via = "PSE" if name == PSE_NAME else "PPSE"
                    break
        if aid:
            break
    candidates = [aid] if aid else list(KNOWN_AIDS)
    for cand in candidates:
        raw = yield CommandAPDU(0x00, 0xA4, 0x04, 0x00, cand, le=256).to_bytes()
        if _sw(raw) == 0x9000:
            fci_data = ResponseAPDU.parse(raw).data
            pdol = tlv.find(tlv.parse(fci_data), 0x9F38)
            return AppSelection(cand, fci_data, pdol.value if pdol else b"", via)
    raise CardError(0x6A82, "SELECT application", "no PBOC application on this card")


def get_data_amount(tag: int) -> Flow[int]:
    data = _ok(
        (yield CommandAPDU(0x80, 0xCA, tag >> 8, tag & 0xFF, le=256).to_bytes()),
        f"GET DATA {tag:04X}",
    )
    found = tlv.find(tlv.parse(data), tag)
    if found is None or len(found.value) != 6 or not found.value.hex().isdigit():
        raise CardError(0x6F00, f"GET DATA {tag:04X}", "not an n12 amount")
    return int(found.value.hex())


def read_ec(via: str = "") -> Flow[EcBalance]:
    values = []
    for tag in (0x9F79, 0x9F77, 0x9F78, 0x9F6D):
        values.append((yield from get_data_amount(tag)))
    return EcBalance(values[0], values[1], values[2], values[3], via)


def gpo_and_records(sel: AppSelection, term: TerminalData) -> Flow[CardSession]:
    """GET PROCESSING OPTIONS with the PDOL data, then READ RECORD of every AFL record (the
    commands of :mod:`cardperso.chip.pboc_flows`, which the line's read-back sends too)."""
    session = CardSession(sel)
    session.aip, session.afl = yield from gpo(term.dol_data(sel.pdol))
    session.records = yield from read_afl(session.afl)
    for data in session.records.values():
        template = tlv.find(tlv.parse(data), 0x70)
        for item in tlv.parse(template.value) if template is not None else []:
            if item.tag == 0x5A:
                session.pan = item.value.hex().rstrip("f").rstrip("F")
            elif item.tag == 0x5F34:
                session.psn = item.value.hex()[-2:]
            elif item.tag == 0x8C:
                session.cdol1 = item.value
            elif item.tag == 0x8D:
                session.cdol2 = item.value
    if not session.pan:
        raise CardError(0x6A83, "READ RECORD", "no PAN (5A) in the application's records")
    return session


def _online(
    session: CardSession,
    term: TerminalData,
    decide: Callable[[AuthRequest], AuthResponse],
    checks: list[str],
) -> Flow[tuple[AcAnswer, AcAnswer, AuthResponse]]:
    """First GENERATE AC (ARQC) → host → EXTERNAL AUTHENTICATE → scripts → second GENERATE AC.

    When the host refuses (cryptogram mismatch, load refused) the transaction is closed with
    a second GENERATE AC asking for an AAC and the host's error is raised."""
    first = yield from generate_ac("ARQC", term.dol_data(session.cdol1))
    if first.cid != "ARQC":
        raise CardError(0x6985, "GENERATE AC", f"the card answered {first.cid}, not an ARQC")
    try:
        # the request carries the card's 9F10 (its CVN picks the session key, its EC part the
        # balance the card authenticated) and the input the card MACed (pboc_ac.ac_input)
        req = AuthRequest.from_card(
            session.pan, session.psn, atc=first.atc, arqc=first.ac, iad=first.iad,
            aip=session.aip, cdol=session.cdol1, cdol_data=first.cdol_data,
        )  # fmt: skip
        answer = decide(req)
    except (SecurityError, DataError):
        yield from generate_ac("AAC", term.dol_data(session.cdol2 or session.cdol1, b"Z3"))
        raise
    checks.append("arqc")
    _ok(
        (yield CommandAPDU(0x00, 0x82, 0x00, 0x00, answer.external_authenticate_data).to_bytes()),
        "EXTERNAL AUTHENTICATE",
    )
    checks.append("issuer-authentication")
    for n, script in enumerate(answer.scripts):
        raw = yield script
        if _sw(raw) != 0x9000:  # close the transaction (AAC: its CVR shows the failed script)
            yield from generate_ac("AAC", term.dol_data(session.cdol2 or session.cdol1, answer.arc))
            _ok(raw, f"issuer script #{n + 1}")
        checks.append(f"script-{n + 1}")
    second = yield from generate_ac("TC", term.dol_data(session.cdol2 or session.cdol1, answer.arc))
    return first, second, answer


# -- the flows -------------------------------------------------------------------------------


def ec_balance(prefer: str = "PSE") -> Flow[EcBalance]:
    """Select the application and read the electronic-cash balance and limits."""
    sel = yield from select(prefer)
    return (yield from read_ec(sel.via))


def ec_load(host: IssuerHost, amount: int, term: TerminalData | None = None) -> Flow[LoadResult]:
    """An online electronic-cash load of ``amount`` fen (see the module docstring)."""
    if amount <= 0:
        raise LoadRefused("a load needs a positive amount", field="amount")
    sel = yield from select()
    before = yield from get_data_amount(0x9F79)
    limit = yield from get_data_amount(0x9F77)
    if before + amount > limit:
        raise LoadRefused(
            f"balance {before} + load {amount} would pass the balance limit {limit} (fen)",
            field="amount",
        )
    term = term or TerminalData(amount=amount, transaction_type=0x63)
    session = yield from gpo_and_records(sel, term)
    checks: list[str] = []
    _, second, _ = yield from _online(
        session,
        term,
        # neither the 9F79 nor the 9F77 read here goes to the host: it loads onto the balance
        # the card authenticated in 9F10, within the limit it knows; the card checks its 9F77
        lambda req: host.authorize_load(req, amount=amount),
        checks,
    )
    after = yield from get_data_amount(0x9F79)
    return LoadResult(
        session.pan_masked, amount, before, after, int.from_bytes(second.atc, "big"), second.cid
    )


def verify_card(host: IssuerHost, prefer: str = "PSE") -> Flow[VerifyResult]:
    """Quality control of a personalized card: selection, records, an ARQC the host verifies."""
    sel = yield from select(prefer)
    checks = [f"selected-via-{sel.via.lower()}"]
    term = TerminalData(amount=0)
    session = yield from gpo_and_records(sel, term)
    checks.append("records")
    _, second, _ = yield from _online(session, term, host.authorize, checks)
    return VerifyResult(
        session.pan_masked,
        sel.aid,
        sel.via,
        int.from_bytes(second.atc, "big"),
        len(session.records),
        tuple(checks),
    )


def ec_purchase(amount: int, term: TerminalData | None = None) -> Flow[PurchaseResult]:
    """An offline electronic-cash purchase of ``amount`` fen (TC approves, AAC declines)."""
    sel = yield from select()
    before = yield from get_data_amount(0x9F79)
    term = term or TerminalData(amount=amount, ec_support=True)
    session = yield from gpo_and_records(sel, term)
    answer = yield from generate_ac("TC", term.dol_data(session.cdol1))
    after = yield from get_data_amount(0x9F79)
    return PurchaseResult(
        session.pan_masked, amount, answer.cid, before, after, int.from_bytes(answer.atc, "big")
    )
