"""Reports broken down by batch, region, bank, insured unit or service point, for a date range
of acceptance, as text or CSV; and the cards waiting to be collected, per service point.

:func:`breakdown` gives one row per group: the applications, how many are still on their way
(not yet notified), ready for collection, issued, stopped (returned, rejected, cancelled), late
and at risk against their time target on ``as_of`` (working days, the calendar), and the lead
times of the notified ones (median, within target). :func:`waiting` lists the cards ready for
collection with their service point and how long they have waited. Neither holds personal
data beyond a masked identity number.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cardperso.codec.csvcells import safe_row
from cardperso.codec.numbers import mask_id
from cardperso.errors import UsageError
from cardperso.outputs import atomic_output
from cardperso.registry import lifecycle
from cardperso.registry.calendar import AT_RISK, TARGETS, Calendar, deadline, parse_day
from cardperso.registry.find import Filters, where_clause
from cardperso.storage.db import Database

#: ``--by`` → the column it groups on.
GROUPS: Final = {
    "batch": "c.batch_no",
    "region": "a.region",
    "bank": "a.bank_code",
    "unit": "a.unit",
    "service-point": "a.service_point",
}
STOPPED: Final = frozenset({lifecycle.RETURNED, lifecycle.REJECTED, lifecycle.CANCELLED})
DONE: Final = frozenset({lifecycle.ISSUED, lifecycle.SUSPENDED})


@dataclass
class Group:
    key: str
    applications: int = 0
    on_the_way: int = 0
    ready: int = 0
    issued: int = 0
    stopped: int = 0
    late: int = 0
    at_risk: int = 0
    lead_times: list[int] = field(default_factory=list)
    within_target: int = 0

    def row(self) -> list[Any]:
        median = statistics.median(self.lead_times) if self.lead_times else ""
        return [
            self.key,
            self.applications,
            self.on_the_way,
            self.ready,
            self.issued,
            self.stopped,
            self.late,
            self.at_risk,
            len(self.lead_times),
            median,
            self.within_target,
        ]


COLUMNS: Final = (
    "group",
    "applications",
    "on_the_way",
    "ready_for_collection",
    "issued",
    "stopped",
    "late",
    "at_risk",
    "notified",
    "median_lead_days",
    "within_target",
)


def _group_column(by: str) -> str:
    try:
        return GROUPS[by]
    except KeyError:
        raise UsageError(f"--by {by}: one of {', '.join(GROUPS)}") from None


def breakdown(
    db: Database, cal: Calendar, by: str, f: Filters, as_of: datetime.date
) -> list[Group]:
    """One :class:`Group` per value of ``by`` (``-`` for none), in key order."""
    column = _group_column(by)
    where, params = where_clause(f)
    rows = db.execute(
        f"SELECT {column}, a.state, a.application_type, a.accepted_date, a.notified_date "
        f"FROM reg_applications a LEFT JOIN reg_cards c ON c.card_no = a.card_no{where}",
        params,
    )
    groups: dict[str, Group] = {}
    for key, state, kind, accepted, notified in rows:
        g = groups.setdefault(str(key or "-"), Group(str(key or "-")))
        g.applications += 1
        state = str(state)
        if state in lifecycle.PENDING:
            g.on_the_way += 1
            d = deadline(cal, parse_day(str(accepted), "accepted_date"), str(kind), as_of)
            if d.days_left < 0:
                g.late += 1
            elif d.days_left <= AT_RISK.get(str(kind), AT_RISK["batch"]):
                g.at_risk += 1
        elif state == lifecycle.READY:
            g.ready += 1
        elif state in DONE:
            g.issued += 1
        elif state in STOPPED:
            g.stopped += 1
        if notified:
            days = cal.working_days_between(
                parse_day(str(accepted), "accepted_date"), parse_day(str(notified), "notified")
            )
            g.lead_times.append(days)
            g.within_target += days <= TARGETS.get(str(kind), TARGETS["batch"])
    return [groups[k] for k in sorted(groups)]


@dataclass(frozen=True, slots=True)
class Waiting:
    card_no: str
    ssn_masked: str
    service_point: str
    notified: datetime.date
    working_days: int
    kind: str


WAITING_COLUMNS: Final = (
    "service_point",
    "card_no",
    "ssn_masked",
    "notified_date",
    "working_days_waiting",
    "kind",
)


def waiting(db: Database, cal: Calendar, as_of: datetime.date, f: Filters) -> list[Waiting]:
    """The cards ready for collection (notified, not yet collected), by service point, longest
    waiting first."""
    where, params = where_clause(dataclasses.replace(f, states=(lifecycle.READY,)))
    rows = db.execute(
        "SELECT a.card_no, a.ssn, a.service_point, a.notified_date, c.kind "
        f"FROM reg_applications a LEFT JOIN reg_cards c ON c.card_no = a.card_no{where}",
        params,
    )
    out = []
    for card_no, ssn, point, notified, kind in rows:
        day = parse_day(str(notified), "notified_date")
        out.append(
            Waiting(
                str(card_no),
                mask_id(str(ssn)),
                str(point or "-"),
                day,
                cal.working_days_between(day, as_of),
                str(kind or ""),
            )
        )
    out.sort(key=lambda w: (w.service_point, -w.working_days, w.card_no))
    return out


def waiting_rows(got: list[Waiting]) -> list[tuple[Any, ...]]:
    """The rows of ``registry report waiting`` (:data:`WAITING_COLUMNS`)."""
    return [
        (w.service_point, w.card_no, w.ssn_masked, w.notified.isoformat(), w.working_days, w.kind)
        for w in got
    ]


def write_csv(out: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A report as CSV for people (spreadsheet-safe cells), atomically, mode 0600."""
    with atomic_output(Path(out)) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(safe_row(row))
