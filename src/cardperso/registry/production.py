"""The factory and the bank: export a batch, take the line's results, the bank's accounts, and
notify cardholders.

* :func:`export_batch` writes the registered applications as a data-preparation input file
  (the ``docs/prep.md`` columns, with the allocated card number and issue/expiry dates) and
  moves them to ``in_production`` in the same transaction (the file appears, by rename, only
  when that transaction committed). ``temporary=True`` exports the applications whose bank
  account could not be opened, for the SSSE-only profile (``ssc3-temporary``): no bank fields;
  a chip already personalized for such a card (it holds the debit application) is recorded
  destroyed in ``reg_old_chips``. An ``out`` ending in ``.zip`` is a portable archive: the
  CSV (photos named ``photos/CARD_NO.jpg``) and the photos themselves.
* :func:`import_results` takes the line's per-card results (``docs/line.md``: card number,
  outcome, chip serial, ATR, card identification code, masked PAN): ``produced`` →
  ``personalized``; a record given up → ``registered`` again (it goes into a later batch).
  :func:`absorb_run` does the same straight from the line's journal when the line and the
  registry share a database (``cardperso run`` calls it after the run).
* :func:`record_answers` (:mod:`cardperso.registry.accounts`) takes the bank's answers (account opened or failed, or no account
  data for a chip), idempotently, checking that an opened account's PAN is on no other
  active card.
* :func:`notify` moves the cards ready for collection and returns them.

The export file holds personal data (it is what data preparation reads): it is written with
mode 0600 through :mod:`cardperso.outputs`. It is a file for a program (data preparation), so
its cells are the raw values: a spreadsheet-safe quote would change the name on the card. Each
record's physical lines in it are kept in ``reg_batch_records``: data preparation's rejects name
those lines (:mod:`cardperso.registry.prep_rejects`).
"""

from __future__ import annotations

import csv
import datetime
import io
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from cardperso.codec.csvcells import unsafe_cell
from cardperso.codec.numbers import mask_id
from cardperso.errors import DataError, UsageError
from cardperso.line.journal import Journal
from cardperso.outputs import AtomicFile
from cardperso.profiles.fields import INPUT_FIELDS
from cardperso.registry import lifecycle
from cardperso.registry.accounts import AccountAnswer as AccountAnswer
from cardperso.registry.accounts import read_accounts_file as read_accounts_file
from cardperso.registry.accounts import record_accounts as record_accounts
from cardperso.registry.accounts import record_answers as record_answers
from cardperso.registry.files import csv_records
from cardperso.registry.partners import portable_photo, write_archive
from cardperso.registry.schema import LATEST, current_version, has_table
from cardperso.registry.store import Application, move, select_apps
from cardperso.storage.db import Database

#: Columns of the exported data-preparation input file.
EXPORT_COLUMNS: Final = tuple(f for f in INPUT_FIELDS if f != "pin")  # a PIN is never stored


#: The migration that made the tables the line's results feed (applications and cards); a
#: registry at this version or later takes them, even before a later ``db upgrade``.
FED_FROM: Final = 2


def registry_present(db: Database) -> bool:
    """Whether ``db`` holds a registry this version of cardperso can feed."""
    return has_table(db, "reg_cards") and FED_FROM <= current_version(db) <= LATEST


#: Validity of a card in years (social-security cards: 10; the chip's date fields allow more).
MAX_VALIDITY_YEARS: Final = 99


def _expiry(issue: datetime.date, years: int) -> datetime.date:
    if not 1 <= years <= MAX_VALIDITY_YEARS:
        raise UsageError(f"--validity-years must be 1 to {MAX_VALIDITY_YEARS}, not {years}")
    if issue.year + years > 9999:
        raise UsageError(f"--issue-date {issue.isoformat()}: the expiry date is past year 9999")
    try:
        return issue.replace(year=issue.year + years)
    except ValueError:  # 29 February
        return issue.replace(year=issue.year + years, day=28)


@dataclass(frozen=True, slots=True)
class Batch:
    batch_no: str
    kind: str
    profile: str
    records: int
    file: str


def _next_batch_no(db: Database, day: datetime.date) -> str:
    stem = f"B{day:%Y%m%d}"
    rows = db.execute("SELECT batch_no FROM reg_batches WHERE batch_no LIKE ?", (stem + "-%",))
    n = max(
        (int(str(b).rsplit("-", 1)[1]) for (b,) in rows if str(b).rsplit("-", 1)[1].isdigit()),
        default=0,
    )
    return f"{stem}-{n + 1:03d}"


def _recorded(out: Path, number: str, downloaded_by: str | None) -> str:
    if downloaded_by is None:
        return str(out)
    return f"{number}{out.suffix} (downloaded by {downloaded_by})"


def export_batch(
    db: Database,
    out: Path,
    *,
    actor: str,
    batch_no: str | None = None,
    profile: str | None = None,
    issue_date: datetime.date | None = None,
    validity_years: int = 10,
    temporary: bool = False,
    limit: int | None = None,
    application_type: str | None = None,
    downloaded_by: str | None = None,
) -> Batch:
    """Export registered (or, ``temporary``, account-failed) applications; see the module
    docstring. Refused when there is nothing to export. The batch's file is recorded as
    ``out``, or, for a file sent as a download (``downloaded_by``: the web console's user,
    ``out`` a temporary file), as the download's name and who downloaded it."""
    issue = issue_date or datetime.date.today()
    expiry = _expiry(issue, validity_years)
    kind = "temporary" if temporary else "standard"
    profile = profile or ("ssc3-temporary" if temporary else "ssc3-pboc")
    state = lifecycle.ACCOUNT_FAILED if temporary else lifecycle.REGISTERED
    event = "export_temporary" if temporary else "export"
    out = Path(out)
    portable = out.suffix.lower() == ".zip"
    # 0600; appears under its name only after the commit below
    file = AtomicFile(out, binary=portable)
    try:
        with db.transaction():
            number = batch_no or _next_batch_no(db, issue)
            if db.execute("SELECT 1 FROM reg_batches WHERE batch_no = ?", (number,)):
                raise UsageError(f"batch {number} exists already")
            # a concurrent export of the same applications fails on the transition (rolled back)
            if application_type:  # walk-ins only: the 5-working-day target, same-day line
                apps = select_apps(
                    db, "state = ? AND application_type = ?", (state, application_type)
                )[:limit]
            else:
                apps = select_apps(db, "state = ?", (state,))[:limit]
            if not apps:
                what = f"{application_type} application" if application_type else "application"
                raise UsageError(f"no {what} is {state}: nothing to export")
            if portable:  # one archive: the CSV and its photos, with relative paths
                text = io.StringIO(newline="")
                lines = _write_export(text, apps, issue, expiry, temporary, portable=True)
                photos = {portable_photo(a.card_no, a.photo): a.photo for a in apps if a.photo}
                write_archive(file.fh, text.getvalue(), photos, number)
            else:
                lines = _write_export(file.fh, apps, issue, expiry, temporary)
            file.fh.flush()
            os.fsync(file.fh.fileno())
            for app, (first, last) in zip(apps, lines, strict=True):
                detail = f"batch {number}"
                if temporary and _retire_chip(db, app.card_no):
                    detail += "; its personalized chip (debit application) marked destroyed"
                db.execute(
                    "UPDATE reg_cards SET batch_no = ?, profile = ?, kind = ?, issue_date = ?, "
                    "expiry_date = ?"
                    + (
                        ", pan = NULL, chip_serial = NULL, atr = NULL, card_id_code = NULL"
                        if temporary
                        else ""
                    )
                    + " WHERE card_no = ?",
                    (number, profile, kind, f"{issue:%Y%m%d}", f"{expiry:%Y%m%d}", app.card_no),
                )
                db.execute(
                    "INSERT INTO reg_batch_records (batch_no, line, end_line, application_id, "
                    "card_no) VALUES (?, ?, ?, ?, ?)",
                    (number, first, last, app.id, app.card_no),
                )
                move(db, app.id, event, actor=actor, detail=detail)
            db.execute(
                "INSERT INTO reg_batches (batch_no, kind, profile, records, file, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    number,
                    kind,
                    profile,
                    len(apps),
                    _recorded(out, number, downloaded_by),
                    time.time(),
                ),
            )
    except BaseException:
        file.abort()
        raise
    file.commit()
    return Batch(number, kind, profile, len(apps), str(out))


def _retire_chip(db: Database, card_no: str) -> bool:
    """Before a card is re-made as a temporary card: its old chip, personalized with the debit
    application, is recorded destroyed (``reg_old_chips``); whether it had one."""
    serial, atr, code, profile = db.execute(
        "SELECT chip_serial, atr, card_id_code, profile FROM reg_cards WHERE card_no = ?",
        (card_no,),
    )[0]
    if not serial:
        return False
    db.execute(
        "INSERT INTO reg_old_chips (card_no, chip_serial, atr, card_id_code, profile, reason, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            card_no,
            serial,
            atr,
            code,
            profile,
            "destroyed: holds the debit application, card re-made as a temporary card",
            time.time(),
        ),
    )
    return True


_BREAK: Final = re.compile(r"\r\n|\r|\n")


def _write_export(
    fh: IO[str],
    apps: list[Application],
    issue: datetime.date,
    expiry: datetime.date,
    temporary: bool,
    *,
    portable: bool = False,
) -> list[tuple[int, int]]:
    """Write the header and one row per application; each row's first and last physical line
    (the header is line 1; a value with a line break makes its row span lines)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    line = 1 + buf.getvalue().count("\n")
    fh.write(buf.getvalue())
    spans: list[tuple[int, int]] = []
    for app in apps:
        buf.seek(0)
        buf.truncate()
        writer.writerow(_export_row(app, issue, expiry, temporary, portable))
        row = buf.getvalue()
        height = len(_BREAK.findall(row))  # CR LF, CR or LF: one physical line break each
        spans.append((line, line + height - 1))
        line += height
        fh.write(row)
    return spans


def _export_row(
    app: Application,
    issue: datetime.date,
    expiry: datetime.date,
    temporary: bool,
    portable: bool = False,
) -> list[str]:
    values = {
        "ssn": app.ssn,
        "name": app.name,
        "gender": app.gender,
        "nation": app.nation,
        "birth_date": app.birth_date,
        "birth_place": app.birth_place,
        "region": app.region,
        "card_no": app.card_no,
        "issue_date": f"{issue:%Y%m%d}",
        "expiry_date": f"{expiry:%Y%m%d}",
        "photo": portable_photo(app.card_no, app.photo) if portable and app.photo else app.photo,
        "application_type": app.application_type,
        "accepted_date": app.accepted_date,
        **app.extra,
    }
    if not temporary:
        values.update(bank_code=app.bank_code, pan=app.pan, pan_seq=app.pan_seq)
    return [values.get(c, "") for c in EXPORT_COLUMNS]


# -- results from the line --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineResult:
    card_no: str
    outcome: str  # produced | rejected | anything else (not finished)
    chip_serial: str = ""
    atr: str = ""
    card_id_code: str = ""
    pan_masked: str = ""
    reason: str = ""


@dataclass
class Absorbed:
    personalized: int = 0
    requeued: int = 0
    unchanged: int = 0
    unfinished: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.personalized + self.requeued + len(self.problems)

    def describe(self) -> str:
        text = (
            f"{self.personalized} personalized, {self.requeued} back to registered (given up "
            f"on the line), {self.unchanged} already recorded, {self.unfinished} not finished"
        )
        return text + (f", {len(self.problems)} problem(s)" if self.problems else "")


def _mask_pan(pan: str) -> str:
    return pan[:6] + "*" * max(0, len(pan) - 10) + pan[-4:] if len(pan) > 10 else ""


def import_results(db: Database, results: Iterable[LineResult], *, actor: str) -> Absorbed:
    """Record the line's results (see the module docstring); idempotent."""
    out = Absorbed()
    for r in results:
        if r.outcome not in ("produced", "rejected"):
            out.unfinished += 1
            continue
        with db.transaction():  # the row lock makes two lines feeding one run agree
            problem = _absorb_one(db, r, out, actor=actor)
        if problem:
            out.problems.append(f"card {r.card_no}: {problem}")
    return out


def _absorb_one(db: Database, r: LineResult, out: Absorbed, *, actor: str) -> str:
    rows = db.execute("SELECT application_id FROM reg_cards WHERE card_no = ?", (r.card_no,))
    if not rows:
        return "not in the registry"
    app_id = int(rows[0][0])
    state = db.execute(
        "SELECT state FROM reg_applications WHERE id = ?" + db.for_update, (app_id,)
    )[0][0]
    # read the card after the lock: another line's feed may just have recorded it
    pan, serial = db.execute(
        "SELECT pan, chip_serial FROM reg_cards WHERE card_no = ?", (r.card_no,)
    )[0]
    pan = pan or ""
    if state != lifecycle.IN_PRODUCTION:
        if (serial and serial == r.chip_serial) or r.outcome == "rejected":
            out.unchanged += 1
            return ""
        return f"is {state}, not in production"
    if r.outcome == "rejected":
        move(db, app_id, "production_failed", actor=actor, detail=r.reason or "given up")
        out.requeued += 1
        return ""
    if r.pan_masked and pan and _mask_pan(pan) != r.pan_masked:
        return "the line's PAN does not match the registry's"
    if r.chip_serial:  # a chip is one card: never two cards, never a destroyed chip again
        other = db.execute(
            "SELECT card_no FROM reg_cards WHERE chip_serial = ? AND card_no <> ?",
            (r.chip_serial, r.card_no),
        )
        if other:
            return f"chip {r.chip_serial} is already card {other[0][0]}'s"
        if db.execute("SELECT 1 FROM reg_old_chips WHERE chip_serial = ?", (r.chip_serial,)):
            return f"chip {r.chip_serial} was recorded destroyed"
    db.execute(
        "UPDATE reg_cards SET chip_serial = ?, atr = ?, card_id_code = ? WHERE card_no = ?",
        (r.chip_serial, r.atr, r.card_id_code, r.card_no),
    )
    move(db, app_id, "produced", actor=actor, detail=f"chip {r.chip_serial}")
    out.personalized += 1
    return ""


def read_results_file(path: str | os.PathLike[str]) -> list[LineResult]:
    """The line's per-card result file (``cardperso run --results``)."""
    need = frozenset({"card_no", "outcome", "chip_serial", "atr", "card_id_code"})
    out = []
    for _, raw in csv_records(path, "results", need):
        row = {k: unsafe_cell(v) for k, v in raw.items()}  # as written for a spreadsheet or not
        out.append(
            LineResult(
                row["card_no"],
                row["outcome"],
                row["chip_serial"],
                row["atr"],
                row["card_id_code"],
                row.get("pan_masked", ""),
                row.get("reject_reason", ""),
            )
        )
    return out


def absorb_run(db: Database, run_id: str, *, actor: str) -> Absorbed:
    """Feed a line run's results from the journal in the same database."""
    outcome = {"done": "produced", "failed": "rejected"}
    results = [
        LineResult(
            str(r["card_no"]),
            outcome.get(str(r["state"]), str(r["state"])),
            str(r["chip_serial"] or ""),
            str(r["atr"] or ""),
            str(r["card_id_code"] or ""),
            str(r["pan_masked"] or ""),
            str(r["reason"] or ""),
        )
        for r in Journal(db, run_id).results()
    ]
    return import_results(db, results, actor=actor)


# -- the bank and collection ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    card_no: str
    ssn_masked: str
    region: str
    kind: str
    accepted_date: str
    app_id: int = 0


def notify(db: Database, *, date: datetime.date, actor: str) -> list[Notice]:
    """Cards ready for collection: accounts opened, and personalized temporary cards. A
    notification date in the future is refused."""
    if date > datetime.date.today():
        raise DataError(f"{date.isoformat()} is in the future", field="date")
    rows = db.execute(
        "SELECT a.id, a.card_no, a.ssn, a.region, c.kind, a.state, a.accepted_date "
        "FROM reg_applications a JOIN reg_cards c ON c.card_no = a.card_no "
        "WHERE a.state = ? OR (a.state = ? AND c.kind = 'temporary') ORDER BY a.id",
        (lifecycle.ACCOUNT_OPENED, lifecycle.PERSONALIZED),
    )
    out: list[Notice] = []
    for app_id, card_no, ssn, region, kind, state, accepted in rows:
        event = "notify" if state == lifecycle.ACCOUNT_OPENED else "notify_temporary"
        with db.transaction():
            move(db, int(app_id), event, actor=actor, notified_date=f"{date:%Y%m%d}")
        out.append(
            Notice(
                str(card_no), mask_id(str(ssn)), str(region), str(kind), str(accepted), int(app_id)
            )
        )
    return out
