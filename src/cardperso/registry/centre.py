"""The centre's side of an application: where it was accepted, for whom, and how.

The seeds' acceptance (service point 网点): the applicant comes to a **service point** of the
social-security agency, for an **insured unit** (参保单位, the employer that submits a batch) or
alone (a walk-in, ``sporadic``), confirms the **cooperative bank** on the spot (from the
centre's list, not a bare code), gives a contact **phone**, and either authorises the use of
the ID-card photo or brings a photo studio's **receipt** (the studio is one of the city's photo
collection units). The staff member and the applicant both sign the registration form: the two
**confirmations**.

* :data:`KINDS`: the centre's lists (``reg_parties``: service points, units, banks with their
  codes), kept with ``registry service-point|unit|bank add``.
* :func:`check_centre`: the checks of the centre's columns of an application (a pure function
  of the record and the lists), raising :class:`~cardperso.prep.validate.Reject` with the
  field and the rule.
* :func:`applications_input`: an application file whose CSV header (or whose JSON Lines
  records) may carry the centre's columns beside the data-preparation fields.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cardperso.errors import DataError, UsageError
from cardperso.prep.input import MAX_LINE_BYTES, InputFile, open_input
from cardperso.prep.validate import Reject
from cardperso.profiles.fields import canonical
from cardperso.registry.store import is_integrity_error
from cardperso.storage.db import Database

#: The application columns the registry keeps beyond data preparation's fields.
CENTRE_FIELDS: Final = (
    "service_point",
    "unit",
    "phone",
    "photo_source",
    "photo_receipt",
    "staff_confirmed",
    "applicant_confirmed",
)
#: The centre's lists and what each is called in messages.
KINDS: Final = {"service_point": "service point", "unit": "insured unit", "bank": "bank"}

_CODE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: Mainland mobile numbers (11 digits, 13x-19x) and landlines with their area code.
_MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE: Final = re.compile(r"0[1-9][0-9]{1,2}-?[0-9]{7,8}")
_RECEIPT: Final = re.compile(r"[A-Za-z0-9-]{4,32}")
PHOTO_SOURCES: Final = {
    "id_card": "id_card",
    "idcard": "id_card",
    "身份证": "id_card",
    "studio": "studio",
    "照相馆": "studio",
}
_YES: Final = frozenset({"yes", "y", "1", "true", "是", "已签字"})
_NO: Final = frozenset({"", "no", "n", "0", "false", "否"})
_HEADER_LIMIT: Final = 64 * 1024


def mask_phone(phone: str) -> str:
    """``138****5678``."""
    digits = phone.replace("-", "")
    return digits[:3] + "*" * max(0, len(digits) - 7) + digits[-4:] if len(digits) > 7 else ""


# -- the lists ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Party:
    kind: str
    code: str
    name: str
    region: str = ""


def add_party(db: Database, kind: str, code: str, name: str, region: str = "") -> Party:
    """Add a service point, insured unit or bank to the centre's lists (a code once)."""
    if kind not in KINDS:
        raise UsageError(f"unknown list {kind!r}")
    if not _CODE.fullmatch(code):
        raise DataError("is 1-32 letters, digits, - or _", field="code")
    if kind == "bank" and not (code.isdigit() and 3 <= len(code) <= 12):
        raise DataError("a bank code is 3-12 digits (as bank_code of an application)", field="code")
    name = name.strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise DataError("is 1-100 printable characters", field="name")
    try:
        with db.transaction():
            if db.execute("SELECT 1 FROM reg_parties WHERE kind = ? AND code = ?", (kind, code)):
                raise UsageError(f"{KINDS[kind]} {code} is already on the list")
            db.execute(
                "INSERT INTO reg_parties (kind, code, name, region, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (kind, code, name, region or None, time.time()),
            )
    except Exception as exc:
        if not is_integrity_error(exc):
            raise
        raise UsageError(f"{KINDS[kind]} {code} is already on the list") from None
    return Party(kind, code, name, region)


def parties(db: Database, kind: str) -> dict[str, Party]:
    """The list of ``kind``, by code."""
    return {
        str(c): Party(kind, str(c), str(n), str(r or ""))
        for c, n, r in db.execute(
            "SELECT code, name, region FROM reg_parties WHERE kind = ? ORDER BY code", (kind,)
        )
    }


@dataclass(frozen=True, slots=True)
class Lists:
    """The centre's lists as an import checks them against."""

    service_points: Mapping[str, Party]
    units: Mapping[str, Party]
    banks: Mapping[str, Party]

    @classmethod
    def load(cls, db: Database) -> Lists:
        return cls(parties(db, "service_point"), parties(db, "unit"), parties(db, "bank"))


# -- the checks ----------------------------------------------------------------------------------


def check_centre(values: dict[str, str], lists: Lists) -> dict[str, str]:
    """The centre's columns of one application, checked and normalised (empty ones omitted).

    Rules: a service point or unit must be on the centre's list; once the centre keeps a bank
    list, the chosen bank must be on it; a phone is a mainland mobile (11 digits) or a landline
    with its area code; the photo comes from the ID card (authorised, no receipt) or from a
    studio (its receipt number, 4-32 letters or digits); a receipt alone means a studio; the
    staff confirmation names who signed (at most 64 characters), the applicant's is yes or no.
    """
    out: dict[str, str] = {}
    for name, table in (("service_point", lists.service_points), ("unit", lists.units)):
        code = values.get(name, "").strip()
        if code:
            if code not in table:
                raise Reject(name, f"is not on the centre's list of {KINDS[name]}s")
            out[name] = code
    bank = values.get("bank_code", "").strip()
    if bank and lists.banks and bank not in lists.banks:
        raise Reject("bank_code", "is not one of the centre's cooperative banks")
    phone = values.get("phone", "").strip().replace(" ", "")
    if phone:
        if not (_MOBILE.fullmatch(phone) or _LANDLINE.fullmatch(phone)):
            raise Reject("phone", "is not a mobile (11 digits) or a landline with its area code")
        out["phone"] = phone
    source_text = values.get("photo_source", "").strip()
    receipt = values.get("photo_receipt", "").strip()
    source = PHOTO_SOURCES.get(source_text.lower(), "") if source_text else ""
    if source_text and not source:
        raise Reject("photo_source", "is id_card (authorised ID-card photo) or studio")
    if receipt and not source:
        source = "studio"
    if source == "studio":
        if not _RECEIPT.fullmatch(receipt):
            raise Reject(
                "photo_receipt",
                "a studio photo needs the studio's receipt number (4-32 letters or digits)",
            )
        out["photo_receipt"] = receipt
    elif source == "id_card" and receipt:
        raise Reject("photo_receipt", "is for a studio photo, not the ID-card photo")
    if source:
        out["photo_source"] = source
    staff = values.get("staff_confirmed", "").strip()
    if staff:
        if len(staff) > 64 or any(ord(c) < 32 for c in staff):
            raise Reject("staff_confirmed", "names the staff member (at most 64 characters)")
        out["staff_confirmed"] = staff
    applicant = values.get("applicant_confirmed", "").strip().lower()
    if applicant not in _YES | _NO:
        raise Reject("applicant_confirmed", "is yes or no")
    if applicant in _YES:
        out["applicant_confirmed"] = "yes"
    elif applicant:  # "no": not signed (stored empty, so audit waits for the signature)
        out["applicant_confirmed"] = ""
    return out


def missing_confirmations(staff: str, applicant: str) -> list[str]:
    """Who has not yet signed an application accepted at a service point."""
    return [who for who, got in (("staff", staff), ("applicant", applicant)) if not got]


# -- the file ----------------------------------------------------------------------------------


@contextmanager
def applications_input(
    path: str | os.PathLike[str], required: frozenset[str]
) -> Iterator[tuple[InputFile, dict[int, dict[str, str]]]]:
    """An application file for :func:`cardperso.prep.input.parse_chunk` and the centre's
    values of each line: a CSV header may name the centre's columns (:func:`open_applications`);
    in JSON Lines, the centre's keys of each record are taken out (by line) and the rest goes to
    data preparation's reader through a private temporary copy, line for line (a line that is
    not a flat JSON object, too long or with a key twice is copied as it is: the reader rejects
    it with its own reason)."""
    p = os.fspath(path)
    if not p.lower().endswith((".jsonl", ".ndjson", ".json")):
        yield open_applications(p, required), {}
        return
    found: dict[int, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="cardperso-apps-") as tmp:
        copy = Path(tmp) / "applications.jsonl"
        with open(p, "rb") as src, open(copy, "wb") as dst:
            os.fchmod(dst.fileno(), 0o600)
            line = 0
            while chunk := src.readline(MAX_LINE_BYTES + 1):
                line += 1
                got = _split_json(chunk) if len(chunk) <= MAX_LINE_BYTES else None
                if got is None:
                    dst.write(chunk)
                    if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
                        while rest := src.readline(MAX_LINE_BYTES + 1):  # the same long line
                            dst.write(rest)
                            if rest.endswith(b"\n"):
                                break
                    continue
                rest_json, centre = got
                if centre:
                    found[line] = centre
                dst.write(rest_json)
        yield open_input(copy, required=required), found


def _split_json(raw: bytes) -> tuple[bytes, dict[str, str]] | None:
    """A JSON Lines record without its centre keys, and those; ``None`` to copy it as it is."""
    seen: set[str] = set()

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        for k, _ in items:
            if k in seen:
                raise ValueError("a key twice")
            seen.add(k)
        return dict(items)

    try:
        obj = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=pairs)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or not any(k in CENTRE_FIELDS for k in obj):
        return None
    centre = {k: obj.pop(k) for k in CENTRE_FIELDS if k in obj}
    if any(isinstance(v, dict | list) for v in centre.values()):
        return None
    values = {k: "" if v is None else str(v) for k, v in centre.items()}
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n", values


def open_applications(path: str | os.PathLike[str], required: frozenset[str]) -> InputFile:
    """An application file for :func:`cardperso.prep.input.parse_chunk`: data preparation's
    reader, but a CSV header may also name the centre's columns (:data:`CENTRE_FIELDS`)."""
    p = os.fspath(path)
    if p.lower().endswith((".jsonl", ".ndjson", ".json")):
        return open_input(p, required=required)
    with open(p, "rb") as fh:
        first = fh.readline(_HEADER_LIMIT + 1)
    if len(first) > _HEADER_LIMIT:
        raise DataError(
            f"the header row is longer than {_HEADER_LIMIT:,} bytes", field="header", record=1
        )
    try:
        names = next(csv.reader([first.decode("utf-8-sig").rstrip("\r\n")]), [])
    except (UnicodeDecodeError, csv.Error):
        names = []
    if not any(n.strip().lower() in CENTRE_FIELDS for n in names):
        return open_input(p, required=required)  # the prep reader's own checks and messages
    columns: list[str] = []
    for i, raw in enumerate(names):
        name = raw.strip().lower()
        canon = name if name in CENTRE_FIELDS else canonical(raw)
        if canon is None:
            raise DataError(
                f"column {i + 1} is neither an input field nor a centre column "
                f"({', '.join(CENTRE_FIELDS)})",
                field="header",
                record=1,
            )
        if canon in columns:
            raise DataError(f"column {canon!r} appears twice", field="header", record=1)
        columns.append(canon)
    missing = sorted(required - set(columns))
    if missing:
        raise DataError(
            f"required column(s) missing: {', '.join(missing)}", field="header", record=1
        )
    return InputFile(str(Path(p)), "csv", tuple(columns), len(first))
