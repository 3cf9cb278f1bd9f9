"""The bank's input (account data per card), its validation, and the account-opening file.

How this works
--------------
The input (CSV with a header row, or JSON Lines) has one row per card. A row names its card
by **one** of ``chip_serial`` (8 hex digits, the CPLC IC serial number), ``card_id`` (the
32-hex-digit card identification code, whose bytes 9–12 are the chip serial) or ``ssn`` (then
the factory's handover file maps it to the chip serial), and carries the account data:

| column | content |
|---|---|
| ``ssn`` | identity number (GB 11643), always required: it goes to 9F61 |
| ``name`` | the cardholder's name (GBK, up to 45 bytes: 9F0B) |
| ``name_latin`` | optional pinyin for 5F20 (else the profile's default) |
| ``pan``, ``pan_seq`` | bank card number (Luhn, 16–19 digits) and PSN (2 digits) |
| ``issue_date``, ``expiry_date`` | ``YYYYMMDD`` (5F25, 5F24) |
| ``pin`` | optional initial PIN (the profile's length); else seeded |
| ``ec_balance``, ``ec_limit``, ``ec_single_limit``, ``ec_reset_threshold`` | fen, optional (profile defaults) |
| ``card_no`` | optional social-security card number (the registry's key) |

Every physical line is a row or a reject (:mod:`cardperso.bank.rows`: limits on line length,
no field spans lines). Every row is validated before any card is touched; a bad row goes to the
rejects file (:class:`cardperso.prep.rejects.RejectsWriter`, same columns as data preparation)
with its line, field and reason, and the good rows go on. Duplicate PANs or card keys are rejected
(the first one wins).

The **account-opening file** (for the bank's core system) has one row per card processed:
``line, chip_serial, card_id, pan, ssn, card_no, outcome, reason`` — full PAN and identity
number (the core system needs them: the file is personal data, written with mode 0600); the
log and the console only ever show masked values.

Files that list cards already made (the account-opening file, the factory's handover file) are
:class:`CardRowsFile`: written to a hidden temporary file beside the final name
(``.NAME.*.part``, flushed after every card, so a killed run leaves its rows there) and renamed
onto the final name when the run ends - also when it ends on an error after some cards, since
those cards exist; a run that fails before any card leaves the previous file as it was.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cardperso.bank.rows import csv_rows, rows
from cardperso.codec import numbers
from cardperso.errors import DataError
from cardperso.keystore.base import KeyStore
from cardperso.outputs import AtomicFile
from cardperso.profiles.model import PbocSpec

__all__ = [
    "ACCOUNT_COLUMNS",
    "AccountFile",
    "AccountRecord",
    "CardRowsFile",
    "Handover",
    "read_accounts",
    "read_handover",
    "ssn_digester",
]

ACCOUNT_COLUMNS = ("line", "chip_serial", "card_id", "pan", "ssn", "card_no", "outcome", "reason")
_KNOWN = {
    "chip_serial",
    "card_id",
    "ssn",
    "name",
    "name_latin",
    "pan",
    "pan_seq",
    "issue_date",
    "expiry_date",
    "pin",
    "ec_balance",
    "ec_limit",
    "ec_single_limit",
    "ec_reset_threshold",
    "card_no",
}


def ssn_digester(store: KeyStore, kek: str) -> Callable[[str], str]:
    """What the factory's handover file carries instead of an identity number: a **keyed**
    digest, ``MAC-alg3(kek, SHA-256("cardperso ssn " ‖ ssn))`` (8 bytes, hex) under the
    key-exchange key both parties hold (an unkeyed hash of an 18-character identity number
    could be reversed by trying every birth date and sequence number)."""

    def digest(ssn: str) -> str:
        inner = hashlib.sha256(b"cardperso ssn " + ssn.encode("ascii", "replace")).digest()
        return store.mac(kek, inner, "alg3").hex().upper()

    return digest


@dataclass(frozen=True, slots=True)
class Handover:
    """The factory's handover: chip serial → keyed SSN digest, and the digest function."""

    serials: dict[bytes, str]
    digest: Callable[[str], str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One validated input row (personal data never in ``repr``)."""

    line: int
    chip_serial: bytes
    card_id: bytes
    ssn: str = field(repr=False)
    name_gbk: bytes = field(repr=False)
    name_latin: str = field(repr=False)
    pan: str = field(repr=False)
    pan_seq: str
    issue_date: str
    expiry_date: str
    pin: str = field(repr=False)
    ec: tuple[int, int, int, int]
    card_no: str = ""

    @property
    def ssn_masked(self) -> str:
        return numbers.mask_id(self.ssn)

    @property
    def pan_masked(self) -> str:
        return numbers.mask_id(self.pan)

    def template_values(self) -> dict[str, Any]:
        """The values :class:`cardperso.prep.templates.PbocTemplate` reads."""
        return {
            "pan": self.pan,
            "pan_seq": self.pan_seq,
            "expiry_date": self.expiry_date,
            "expiry_yymm": self.expiry_date[2:6],
            "issue_date": self.issue_date,
            "name_latin": self.name_latin,
            "name_head": self.name_gbk,
            "name_ext": b"",
            "ssn": self.ssn,
            "ec": self.ec,
        }


def _digits(text: str) -> bool:
    """ASCII decimal digits only (``str.isdigit`` also accepts ``²`` or Arabic-Indic digits)."""
    return text.isascii() and text.isdigit()


def _amount(row: dict[str, str], key: str, default: int) -> int:
    text = row.get(key, "")
    if not text:
        return default
    if not _digits(text):
        raise DataError("must be a whole number of fen", field=key)
    return int(text)


def validate(row: dict[str, str], line: int, pboc: PbocSpec, pin_length: int) -> AccountRecord:
    """One row → :class:`AccountRecord`, or :class:`DataError` naming the field."""
    serial = row.get("chip_serial", "")
    card_id = row.get("card_id", "")
    ssn = row.get("ssn", "")
    if not ssn:
        raise DataError("required field is empty", field="ssn")
    numbers.check_resident_id(ssn, "ssn")
    chip = b""
    if serial:
        if len(serial) != 8 or not all(c in "0123456789abcdefABCDEF" for c in serial):
            raise DataError("must be 8 hex digits (the CPLC IC serial number)", field="chip_serial")
        chip = bytes.fromhex(serial)
    cid = b""
    if card_id:
        if len(card_id) != 32 or not all(c in "0123456789abcdefABCDEF" for c in card_id):
            raise DataError("must be 32 hex digits", field="card_id")
        cid = bytes.fromhex(card_id)
        if chip and cid[8:12] != chip:
            raise DataError("bytes 9-12 differ from chip_serial", field="card_id")
        chip = chip or cid[8:12]
    name = row.get("name", "")
    if not name:
        raise DataError("required field is empty", field="name")
    try:
        gbk = name.encode("gbk")
    except UnicodeEncodeError:
        raise DataError("cannot be encoded in GBK", field="name") from None
    if len(gbk) > 45:
        raise DataError(f"is {len(gbk)} bytes in GBK, max 45 (9F0B)", field="name")
    latin = row.get("name_latin", "") or pboc.latin_name_default
    if not (2 <= len(latin) <= 26 and all(" " <= c <= "~" for c in latin)):
        raise DataError("must be 2-26 printable ASCII characters", field="name_latin")
    pan = numbers.check_pan(row.get("pan", ""), field="pan")
    psn = row.get("pan_seq", "") or "01"
    if len(psn) != 2 or not _digits(psn):
        raise DataError("must be 2 digits", field="pan_seq")
    issue = row.get("issue_date", "")
    expiry = row.get("expiry_date", "")
    d_issue = numbers.parse_date(issue, "issue_date")
    d_expiry = numbers.parse_date(expiry, "expiry_date")
    if d_expiry <= d_issue:
        raise DataError("must be after issue_date", field="expiry_date")
    pin = row.get("pin", "")
    if pin and (len(pin) != pin_length or not _digits(pin)):
        raise DataError(f"must be {pin_length} digits", field="pin")
    ec = pboc.ec
    bal = _amount(row, "ec_balance", ec.default_balance)
    lim = _amount(row, "ec_limit", ec.default_limit)
    single = _amount(row, "ec_single_limit", ec.default_single_limit)
    reset = _amount(row, "ec_reset_threshold", ec.default_reset_threshold)
    if lim > ec.max_balance_limit:
        raise DataError(f"exceeds the profile maximum {ec.max_balance_limit}", field="ec_limit")
    if bal > lim:
        raise DataError("exceeds ec_limit", field="ec_balance")
    if single > min(lim, ec.max_single_limit):
        raise DataError("exceeds ec_limit or the profile maximum", field="ec_single_limit")
    if reset > min(lim, ec.max_reset_threshold):
        raise DataError("exceeds ec_limit or the profile maximum", field="ec_reset_threshold")
    card_no = row.get("card_no", "")
    if card_no:
        numbers.check_card_number(card_no, "card_no")
    if not chip and not ssn:
        raise DataError("needs chip_serial, card_id or ssn", field="(row)")
    return AccountRecord(
        line, chip, cid, ssn, gbk, latin.upper(), pan, psn, issue, expiry, pin,
        (bal, lim, single, reset), card_no,
    )  # fmt: skip


@dataclass(slots=True)
class AccountBatch:
    """The validated rows, indexed by chip serial (or by identity number until matched)."""

    by_serial: dict[bytes, AccountRecord] = field(default_factory=dict)
    by_ssn: dict[str, AccountRecord] = field(default_factory=dict)
    read: int = 0
    rejected: int = 0
    _by_digest: dict[str, AccountRecord] | None = None

    def __len__(self) -> int:
        return len(self.by_serial) + len(self.by_ssn)

    def match(self, serial: bytes, handover: Handover | None = None) -> AccountRecord | None:
        """The row of the card with chip ``serial`` (rows named by SSN through ``handover``)."""
        rec = self.by_serial.get(serial)
        if rec is not None or handover is None:
            return rec
        digest = handover.serials.get(serial)
        if digest is None:
            return None
        if self._by_digest is None:  # one MAC per SSN row, once
            self._by_digest = {handover.digest(ssn): r for ssn, r in self.by_ssn.items()}
        return self._by_digest.get(digest.upper())


def read_accounts(
    path: Path, pboc: PbocSpec, pin_length: int, rejects: Any | None = None
) -> AccountBatch:
    """Read and validate the bank's input; bad rows go to ``rejects`` (a RejectsWriter)."""
    batch = AccountBatch()
    seen_pan: dict[str, int] = {}
    seen_key: dict[object, int] = {}
    for line, got in rows(path, _KNOWN):
        batch.read += 1
        row = got if isinstance(got, dict) else {}
        try:
            if isinstance(got, DataError):
                raise got
            rec = validate(row, line, pboc, pin_length)
            if rec.pan in seen_pan:
                raise DataError(f"duplicate of line {seen_pan[rec.pan]}", field="pan")
            key: object = rec.chip_serial or rec.ssn
            if key in seen_key:
                raise DataError(
                    f"duplicate of line {seen_key[key]}",
                    field="chip_serial" if rec.chip_serial else "ssn",
                )
        except DataError as exc:
            batch.rejected += 1
            if rejects is not None:
                ssn = row.get("ssn", "")
                masked = numbers.mask_id(ssn)
                rejects.add(line, exc.field or "(row)", exc.reason, masked)
            continue
        seen_pan[rec.pan] = line
        seen_key[key] = line
        if rec.chip_serial:
            batch.by_serial[rec.chip_serial] = rec
        else:
            batch.by_ssn[rec.ssn] = rec
    return batch


def read_handover(path: Path, digest: Callable[[str], str]) -> Handover:
    """The factory's handover file: ``chip_serial,card_id,ssn_digest`` rows."""
    out: dict[bytes, str] = {}
    for n, row in csv_rows(path):
        if isinstance(row, DataError):
            raise DataError(row.reason, field="handover", record=n)
        try:
            out[bytes.fromhex(row["chip_serial"])] = row["ssn_digest"].upper()
        except (KeyError, ValueError):
            raise DataError(
                "needs chip_serial and ssn_digest columns", field="handover", record=n
            ) from None
    return Handover(out, digest)


class CardRowsFile:
    """A CSV of cards already made (mode 0600): rows stream into a hidden temporary file and
    appear under ``path`` when the run ends (module docstring).

    Use it as a context manager: a clean exit commits; an exception commits when rows were
    written (they describe real cards) and otherwise throws the temporary file away, keeping
    the previous file.
    """

    def __init__(self, path: str | os.PathLike[str], columns: tuple[str, ...]) -> None:
        self.path = Path(path)
        self._out = AtomicFile(self.path)
        self._csv = csv.writer(self._out.fh, lineterminator="\n")
        self._csv.writerow(columns)
        self._out.fh.flush()
        self.rows = 0

    def write(self, row: tuple[object, ...]) -> None:
        """One card's row, flushed at once (a killed run keeps it in the temporary file)."""
        self.rows += 1
        self._csv.writerow(row)
        self._out.fh.flush()

    def close(self) -> None:
        """The file appears under its name (fsync, rename)."""
        self._out.commit()

    def abort(self) -> None:
        """No file: the previous one (if any) stays under the name."""
        self._out.abort()

    def __enter__(self) -> CardRowsFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None or self.rows:
            self.close()
        else:
            self.abort()


class AccountFile(CardRowsFile):
    """The account-opening file (CSV, mode 0600), one row per card processed."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, ACCOUNT_COLUMNS)

    def add(
        self,
        rec: AccountRecord | None,
        serial: bytes,
        outcome: str,
        reason: str = "",
    ) -> None:
        self.write(
            (
                rec.line if rec else "",
                serial.hex().upper(),
                rec.card_id.hex().upper() if rec and rec.card_id else "",
                rec.pan if rec else "",
                rec.ssn if rec else "",
                rec.card_no if rec else "",
                outcome,
                reason,
            )
        )

    def __enter__(self) -> AccountFile:
        return self
