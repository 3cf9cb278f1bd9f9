"""Reports: the card-return file (回盘), applications late or at risk, and statistics.

The return file is a deliverable that, by its nature, holds personal data (identity number and
name of every cardholder of the batch): it is written with mode 0600 (atomically, through
:mod:`cardperso.outputs`) and belongs on the protected exchange with the social-security
centre, never in logs or tickets. People open it in a spreadsheet, so its cells are
spreadsheet-safe (:mod:`cardperso.codec.csvcells`: a name such as ``=HYPERLINK(…)`` gets a
leading quote); the registry keeps the raw value.
"""

from __future__ import annotations

import csv
import datetime
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cardperso.codec.csvcells import safe_row
from cardperso.errors import UsageError
from cardperso.outputs import atomic_output
from cardperso.registry import lifecycle
from cardperso.registry.calendar import AT_RISK, TARGETS, Calendar, deadline, parse_day
from cardperso.registry.store import counts, select_apps
from cardperso.storage.db import Database

RETURN_COLUMNS: Final = (
    "card_no",
    "ssn",
    "name",
    "issue_date",
    "expiry_date",
    "card_id_code",
    "atr",
    "bank_card_no",
    "batch_no",
    "outcome",
    "reason",
)


def return_file(db: Database, batch_no: str, out: Path) -> tuple[int, int]:
    """Write the card-return report (回盘) of ``batch_no``: the cards the line produced in it
    (``outcome`` produced) and the batch's records that did not become a card of this batch
    (``outcome`` failed, with the reason: data preparation's reject, given up on the line and
    back in the queue, re-made in another batch). (produced, failed)."""
    if not db.execute("SELECT 1 FROM reg_batches WHERE batch_no = ?", (batch_no,)):
        raise UsageError(f"no batch {batch_no} in the registry")
    rows = db.execute(
        "SELECT c.card_no, a.ssn, a.name, c.issue_date, c.expiry_date, c.card_id_code, c.atr, "
        "c.pan, c.batch_no FROM reg_cards c JOIN reg_applications a ON a.id = c.application_id "
        "WHERE c.batch_no = ? AND c.chip_serial IS NOT NULL ORDER BY c.card_no",
        (batch_no,),
    )
    produced = {str(r[0]) for r in rows}
    failed = []
    for card_no, ssn, name, prep_reject, batch_now, state, app_id in db.execute(
        "SELECT r.card_no, a.ssn, a.name, r.prep_reject, c.batch_no, a.state, a.id "
        "FROM reg_batch_records r JOIN reg_applications a ON a.id = r.application_id "
        "LEFT JOIN reg_cards c ON c.card_no = r.card_no WHERE r.batch_no = ? ORDER BY r.line",
        (batch_no,),
    ):
        if str(card_no) in produced:
            continue
        if prep_reject:
            why = f"rejected at data preparation: {prep_reject}"
        elif batch_now and batch_now != batch_no:
            why = f"re-made in batch {batch_now}"
        else:
            given_up = db.execute(
                "SELECT detail FROM reg_transitions WHERE application_id = ? "
                "AND event = 'production_failed' ORDER BY id DESC",
                (int(app_id),),
            )
            why = (
                f"given up on the line: {given_up[0][0] or 'no reason'}"
                if given_up
                else f"not produced ({state})"
            )
        failed.append((card_no, ssn, name, "", "", "", "", "", batch_no, "failed", why))
    with atomic_output(Path(out)) as fh:  # 0600, appears whole or not at all
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(RETURN_COLUMNS)
        for row in rows:
            writer.writerow(safe_row([*row, "produced", ""]))
        for row in failed:
            writer.writerow(safe_row(row))
    return len(rows), len(failed)


@dataclass(frozen=True, slots=True)
class Overdue:
    app_id: int
    card_no: str
    ssn_masked: str
    application_type: str
    stage: str
    accepted: datetime.date
    due: datetime.date
    days_left: int

    @property
    def status(self) -> str:
        return "LATE" if self.days_left < 0 else "at risk"


def overdue(db: Database, cal: Calendar, as_of: datetime.date) -> list[Overdue]:
    """Applications not yet notified whose time target has passed or is near (fewest working
    days left first)."""
    pending = tuple(sorted(lifecycle.PENDING))
    marks = ", ".join("?" for _ in pending)
    out: list[Overdue] = []
    for app in select_apps(db, f"state IN ({marks})", pending):
        accepted = parse_day(app.accepted_date, "accepted_date")
        d = deadline(cal, accepted, app.application_type, as_of)
        if d.days_left <= AT_RISK.get(app.application_type, AT_RISK["batch"]):
            out.append(
                Overdue(
                    app.id,
                    app.card_no,
                    app.ssn_masked,
                    app.application_type,
                    app.state,
                    accepted,
                    d.deadline,
                    d.days_left,
                )
            )
    out.sort(key=lambda o: (o.days_left, o.app_id))
    return out


#: ``registry overdue --out``'s columns (and the web console's download).
OVERDUE_COLUMNS: Final = (
    "status",
    "application_id",
    "card_no",
    "ssn_masked",
    "application_type",
    "stage",
    "accepted",
    "due",
    "working_days_left",
)


def overdue_rows(found: list[Overdue]) -> list[tuple[Any, ...]]:
    """The rows of ``registry overdue --out`` (:data:`OVERDUE_COLUMNS`)."""
    return [
        (o.status, o.app_id, o.card_no, o.ssn_masked, o.application_type, o.stage,
         o.accepted.isoformat(), o.due.isoformat(), o.days_left)
        for o in found
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class LeadTimes:
    """Working days from acceptance to notification, for one application type."""

    application_type: str
    target: int
    values: tuple[int, ...]

    @property
    def within_target(self) -> int:
        return sum(v <= self.target for v in self.values)

    def summary(self) -> dict[str, float]:
        v = sorted(self.values)
        if not v:
            return {}
        p90 = v[min(len(v) - 1, round(0.9 * (len(v) - 1)))]
        return {
            "n": len(v),
            "min": v[0],
            "median": statistics.median(v),
            "p90": p90,
            "max": v[-1],
            "within_target": self.within_target,
        }

    def histogram(self, edges: tuple[int, ...] = (5, 10, 20, 30)) -> list[tuple[str, int]]:
        out = []
        low = 0
        for edge in edges:
            out.append((f"{low}-{edge}", sum(low <= x <= edge for x in self.values)))
            low = edge + 1
        out.append((f">{edges[-1]}", sum(x > edges[-1] for x in self.values)))
        return out


@dataclass(frozen=True, slots=True)
class Stats:
    per_stage: dict[str, int]
    lead_times: tuple[LeadTimes, ...]


def stats(db: Database, cal: Calendar) -> Stats:
    values: dict[str, list[int]] = {t: [] for t in TARGETS}
    rows = db.execute(
        "SELECT application_type, accepted_date, notified_date FROM reg_applications "
        "WHERE notified_date IS NOT NULL"
    )
    for kind, accepted, notified in rows:
        days = cal.working_days_between(
            parse_day(str(accepted), "accepted_date"), parse_day(str(notified), "notified_date")
        )
        values.setdefault(str(kind), []).append(days)
    lead = tuple(
        LeadTimes(k, TARGETS.get(k, TARGETS["batch"]), tuple(v)) for k, v in values.items()
    )
    return Stats(counts(db), lead)


#: ``registry stats --out``'s columns.
STATS_COLUMNS: Final = ("measure", "key", "value")


def stats_rows(st: Stats) -> list[tuple[str, str, object]]:
    """The rows of ``registry stats --out`` (:data:`STATS_COLUMNS`): stage counts, then per
    application type its lead-time summary and histogram."""
    rows: list[tuple[str, str, object]] = [("stage", k, n) for k, n in st.per_stage.items()]
    for lt in st.lead_times:
        rows += [(f"lead_time {lt.application_type}", k, v) for k, v in lt.summary().items()]
        rows += [(f"histogram {lt.application_type}", b, n) for b, n in lt.histogram()]
    return rows
