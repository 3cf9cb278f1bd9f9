"""A qPBOC contactless purchase, the terminal side: a sans-IO flow like those of
:mod:`cardperso.bank.terminal`.

How this works
--------------
JR/T 0025.12's reader (pboc-conformance.md section 5; the qPBOC kernel of S3, PbocCtls.c):

1. SELECT the PPSE, then the application it lists; the contactless FCI's PDOL must ask for the
   terminal transaction qualifiers 9F66 (else the card has no qPBOC path: :class:`CardError`).
2. GET PROCESSING OPTIONS with the PDOL data: TTQ = qPBOC + signature, and online PIN unless
   the reader is offline-only (no issuer host given), B2 b8 when the reader requires an online
   cryptogram, B4 b8 fDDA version 01.
3. The card's answer decides (9F10's CVR byte 5 & 30: 10 TC, 20 ARQC, 00 AAC):

   * **TC**: approved offline; the reader reads the records of the answer's AFL (what a kernel
     needs for fDDA over 9F4B / 9F69, kept in the result) and reports 9F5D, the available
     offline spending amount after the purchase;
   * **ARQC**: the reader sends the cryptogram to the issuer host
     (:meth:`~cardperso.bank.host.AuthRequest.from_card` with the PDOL as the data object list:
     the card MACed the minimum data set from the PDOL data) - approved online when it
     verifies, declined otherwise; an offline-only reader declines;
   * **AAC**: declined.

No GENERATE AC follows on this path. The result never holds the PAN in clear in its ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardperso.bank import terminal
from cardperso.bank.host import AuthRequest, IssuerHost
from cardperso.chip.gp import ok
from cardperso.chip.pboc_flows import read_afl
from cardperso.chip.transport import Flow
from cardperso.codec import tlv
from cardperso.codec.apdu import CommandAPDU
from cardperso.codec.numbers import mask_id
from cardperso.errors import CardError, DataError, SecurityError

__all__ = ["ContactlessResult", "outcome_of", "qpboc_purchase", "ttq"]

#: CVR byte 1 (9F10 byte 5) & 30 -> the card's decision (S3's qPBOC terminal)
_CVR_AC = {0x10: "TC", 0x20: "ARQC"}


def ttq(*, offline_only: bool = False, online_required: bool = False) -> bytes:
    """Terminal transaction qualifiers (9F66) of this reader (module docstring)."""
    b1 = 0x20 | 0x02 | (0x08 if offline_only else 0x04)
    return bytes((b1, 0x80 if online_required else 0x00, 0x00, 0x80))


def outcome_of(iad: bytes) -> str:
    """The card's decision from its 9F10 (TC, ARQC or AAC)."""
    if len(iad) < 5 or iad[3] != 0x03:
        raise CardError(0x6F00, "GET PROCESSING OPTIONS", "9F10 carries no CVR")
    return _CVR_AC.get(iad[4] & 0x30, "AAC")


@dataclass(frozen=True, slots=True)
class ContactlessResult:
    """One contactless purchase: what happened, and what a kernel needs for fDDA."""

    outcome: str  # "approved offline", "approved online" or "declined"
    cid: str
    amount: int
    atc: int
    pan_masked: str
    available: int | None  # 9F5D after the purchase
    ctq: bytes
    checks: tuple[str, ...]
    answer: dict[int, bytes] = field(default_factory=dict, repr=False)  # GPO's data objects
    records: dict[int, bytes] = field(default_factory=dict, repr=False)
    pdol_data: bytes = field(default=b"", repr=False)
    #: the contactless PDOL the data follow (a kernel takes 9F37, 9F02, 5F2A for fDDA from it)
    pdol: bytes = field(default=b"", repr=False)

    @property
    def approved(self) -> bool:
        return self.outcome.startswith("approved")

    @property
    def cvm(self) -> str:
        """The cardholder verification the card asks in its CTQ (JR/T 0025.12 7.8, S3's
        reader): ``"online PIN"`` (B1 b8, online path), ``"signature"`` (b7) or ``"none"``."""
        b1 = self.ctq[0] if self.ctq else 0
        if self.cid == "ARQC" and b1 & 0x80:
            return "online PIN"
        return "signature" if b1 & 0x40 else "none"


def _pan(track2: bytes) -> str:
    digits = track2.hex().upper()
    return digits.split("D", 1)[0]


def qpboc_purchase(
    amount: int,
    host: IssuerHost | None = None,
    *,
    online_required: bool = False,
    term: terminal.TerminalData | None = None,
) -> Flow[ContactlessResult]:
    """A qPBOC purchase of ``amount`` fen; ``host`` None makes an offline-only reader."""
    if amount < 0:
        raise DataError("a purchase needs an amount of 0 or more fen", field="amount")
    sel = yield from terminal.select("PPSE")
    if 0x9F66 not in (tag for tag, _ in tlv.parse_dol(sel.pdol)):
        raise CardError(0x6985, "SELECT application", "the PDOL asks no 9F66: no qPBOC path")
    term = term or terminal.TerminalData(
        amount=amount, ttq=ttq(offline_only=host is None, online_required=online_required)
    )
    pdol_data = term.dol_data(sel.pdol)
    raw = yield CommandAPDU(0x80, 0xA8, 0x00, 0x00, tlv.encode(0x83, pdol_data), le=256).to_bytes()
    items = tlv.parse(ok(raw, "GET PROCESSING OPTIONS"))
    if len(items) != 1 or items[0].tag != 0x77:
        raise CardError(0x6F00, "GET PROCESSING OPTIONS", "a qPBOC answer is a 77 template")
    answer = tlv.to_dict(tlv.parse(items[0].value))
    missing = [f"{t:X}" for t in (0x82, 0x9F36, 0x9F26, 0x9F10, 0x57) if t not in answer]
    if missing:
        raise CardError(0x6F00, "GET PROCESSING OPTIONS", f"no {' '.join(missing)} in the answer")
    cid = outcome_of(answer[0x9F10])
    pan = _pan(answer[0x57])
    checks = [f"selected-via-{sel.via.lower()}", f"gpo-{cid.lower()}"]
    records: dict[int, bytes] = {}
    outcome = "declined"
    if cid == "TC":
        records = yield from read_afl(answer.get(0x94, b""))
        checks.append("records")
        outcome = "approved offline"
    elif cid == "ARQC" and host is not None:
        psn = answer.get(0x5F34, b"\x00").hex()[-2:]
        try:
            req = AuthRequest.from_card(
                pan, psn, atc=answer[0x9F36], arqc=answer[0x9F26], iad=answer[0x9F10],
                aip=answer[0x82], cdol=sel.pdol, cdol_data=pdol_data,
            )  # fmt: skip
            host.authorize(req)
            checks.append("arqc")
            outcome = "approved online"
        except (SecurityError, DataError):
            checks.append("arqc-refused")
    available = answer.get(0x9F5D)
    return ContactlessResult(
        outcome,
        cid,
        amount,
        int.from_bytes(answer[0x9F36], "big"),
        mask_id(pan),
        int(available.hex()) if available and available.hex().isdigit() else None,
        answer.get(0x9F6C, b""),
        tuple(checks),
        answer,
        records,
        pdol_data,
        sel.pdol,
    )
