"""Files to the partners: comparison requests (the bank, the public-security population
database), the "returned to unit" files, the bank's account-opening data, and the portable
batch archive for the card factory. Formats: docs/registry.md ("Partner files").

Every file here carries personal data by its nature (it is what the partner needs): written
atomically with mode 0600 (:mod:`cardperso.outputs`). Files for programs (the requests, the
account-opening data, the batch) keep raw values; the returned-to-unit file is read by people
at the employer, so its cells are spreadsheet-safe. A returned file names the field that did
not match and why, never the partner's value.

The answers come back through commands that are idempotent: ``registry compare`` (the
population and bank extracts: only ``audited`` applications are compared, so the same answer
twice changes nothing), ``registry accounts`` (answers already recorded are counted as such),
``registry import-results`` and ``registry import-rejects``.
"""

from __future__ import annotations

import csv
import os
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Final

from cardperso.codec.csvcells import safe_row
from cardperso.errors import UsageError
from cardperso.outputs import atomic_output
from cardperso.registry import lifecycle
from cardperso.registry.store import select_apps
from cardperso.storage.db import Database

POPULATION_REQUEST: Final = ("request_id", "ssn", "name", "gender", "birth_date")
BANK_REQUEST: Final = ("request_id", "ssn", "name", "bank_code", "pan")
RETURNED_COLUMNS: Final = ("application_id", "ssn", "name", "service_point", "fields", "reason")
#: The bank stage's input (docs/bank.md "The bank's input"): ``cardperso bank personalize``.
ACCOUNT_OPENING: Final = (
    "chip_serial",
    "ssn",
    "name",
    "name_latin",
    "pan",
    "pan_seq",
    "issue_date",
    "expiry_date",
    "ec_balance",
    "ec_limit",
    "ec_single_limit",
    "ec_reset_threshold",
    "card_no",
)
#: The largest photo put into a batch archive (bytes): far above a card photo's few dozen KiB.
MAX_PHOTO: Final = 2 * 1024 * 1024


def _write(out: Path, header: Iterable[str], rows: Iterable[Iterable[Any]], *, safe: bool) -> None:
    with atomic_output(Path(out)) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(list(header))
        for row in rows:
            writer.writerow(safe_row(row) if safe else ["" if v is None else v for v in row])


def comparison_request(db: Database, to: str, out: Path) -> int:
    """The audited applications as a comparison request to ``population`` (public security)
    or ``bank``; the count. Their answers are the extracts ``registry compare`` reads."""
    apps = select_apps(db, "state = ?", (lifecycle.AUDITED,))
    if to == "population":
        rows = [(a.id, a.ssn, a.name, a.gender, a.birth_date) for a in apps]
        header = POPULATION_REQUEST
    elif to == "bank":
        rows = [(a.id, a.ssn, a.name, a.bank_code, a.pan) for a in apps if a.bank_code or a.pan]
        header = BANK_REQUEST
    else:
        raise UsageError(f"--to {to}: population or bank")
    if not rows:
        raise UsageError("no audited application to compare: no file written")
    _write(out, header, rows, safe=False)
    return len(rows)


#: What a comparison reason says → the field it is about.
_FIELDS: Final = (
    ("identity number", "ssn"),
    ("name ", "name"),
    ("gender ", "gender"),
    ("birth_date ", "birth_date"),
    ("bank card number", "pan"),
    ("bank differs", "bank_code"),
    ("no account request", "bank_code"),
)


def fields_of(reason: str) -> list[str]:
    """The fields a comparison reason names (``name differs from …; bank differs …``)."""
    out: list[str] = []
    for part in reason.split("; "):
        for text, name in _FIELDS:
            if part.startswith(text) and name not in out:
                out.append(name)
                break
    return out


def returned_files(db: Database, out_dir: Path) -> dict[str, int]:
    """One ``returned-UNIT.csv`` per insured unit (``returned-walk-in.csv`` for applications
    without one) in ``out_dir``, listing the applications returned at comparison with the
    fields that did not match and why; {unit: count}."""
    if not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} is not a directory")
    rows = db.execute(
        "SELECT id, ssn, name, service_point, unit, reason FROM reg_applications "
        "WHERE state = ? ORDER BY unit, id",
        (lifecycle.RETURNED,),
    )
    per: dict[str, list[tuple[Any, ...]]] = {}
    for app_id, ssn, name, point, unit, reason in rows:
        text = str(reason or "")
        per.setdefault(str(unit or "walk-in"), []).append(
            (int(app_id), ssn, name, point or "", ",".join(fields_of(text)), text)
        )
    for unit, items in per.items():
        _write(out_dir / f"returned-{unit}.csv", RETURNED_COLUMNS, items, safe=True)
    return {u: len(v) for u, v in per.items()}


def account_opening(db: Database, out: Path, *, bank_code: str | None = None) -> int:
    """The personalized cards the bank has not answered for (of one bank, or all), as the bank
    stage's input; the count."""
    where = "a.state = ? AND c.kind = 'standard' AND c.chip_serial IS NOT NULL"
    params: list[Any] = [lifecycle.PERSONALIZED]
    if bank_code:
        where += " AND a.bank_code = ?"
        params.append(bank_code)
    rows = db.execute(
        "SELECT a.id, c.chip_serial, c.pan, a.pan_seq, c.issue_date, c.expiry_date, c.card_no "
        f"FROM reg_applications a JOIN reg_cards c ON c.card_no = a.card_no WHERE {where} "
        "ORDER BY a.id",
        params,
    )
    apps = {a.id: a for a in select_apps(db, "state = ?", (lifecycle.PERSONALIZED,))}
    out_rows = []
    for app_id, serial, pan, seq, issue, expiry, card_no in rows:
        a = apps[int(app_id)]
        out_rows.append(
            (
                serial, a.ssn, a.name, a.extra.get("name_latin", ""), pan, seq or "01", issue,
                expiry, a.extra.get("ec_balance", ""), a.extra.get("ec_limit", ""),
                a.extra.get("ec_single_limit", ""), a.extra.get("ec_reset_threshold", ""), card_no,
            )
        )  # fmt: skip
    if not out_rows:
        raise UsageError("no personalized card waits for the bank: no file written")
    _write(out, ACCOUNT_OPENING, out_rows, safe=False)
    return len(out_rows)


# -- the portable batch ------------------------------------------------------------------------


def write_archive(fh: IO[bytes], csv_text: str, photos: dict[str, str], name: str) -> int:
    """Write a zip with ``NAME.csv`` and ``photos/…`` to ``fh``: ``photos`` maps each archive
    path the CSV names to the photo file on the centre's disk (a missing, irregular or
    oversized photo stays out: data preparation then rejects that record, and the reject flows
    back). The number of photos put in."""
    put = 0
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}.csv", csv_text)
        for inside, source in photos.items():
            data = _photo(source)
            if data is not None:
                zf.writestr(inside, data, compress_type=zipfile.ZIP_STORED)
                put += 1
    return put


def _photo(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_PHOTO:
            return None
        data = fh.read(MAX_PHOTO + 1)
    return data if len(data) <= MAX_PHOTO else None


def portable_photo(card_no: str, photo: str) -> str:
    """The photo's path inside a batch archive: ``photos/CARD_NO.EXT``."""
    ext = Path(photo).suffix.lower() if photo else ""
    return f"photos/{card_no}{ext or '.jpg'}"
