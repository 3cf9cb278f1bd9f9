"""The centre's office: the audit queue with each applicant's photo beside the data, the
comparison results and returns per insured unit, the dashboard of the time targets, and every
report and partner file to download. For centre staff only (``ACCESS``).

Every rule is the registry's own, called as ``cardperso registry`` calls it: accepting an
application is :func:`cardperso.registry.applications.audit` (for that application alone:
the photo specification, the fields, both signatures), rejecting it is
:func:`~cardperso.registry.applications.reject` with the reason typed; the dashboard's
figures are :func:`~cardperso.registry.breakdown.breakdown`, :func:`~cardperso.registry.reports.
overdue` and :func:`~cardperso.registry.reports.stats`; each download is written by the
function the CLI's ``--out`` calls (atomically, mode 0600, into a private temporary
directory) and sent as it was written, so it is byte for byte the CLI's file. The actor in the
registry's history is ``web:USER``; every view of a photo, decision and download is in the
console's audit log.

Identity numbers are shown in full only on the audit queue (the data being audited); every
other page shows them masked (:func:`cardperso.codec.numbers.mask_id`), PANs and phones masked.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from cardperso.codec.photo import CARD_PHOTO, check_photo
from cardperso.errors import CardPersoError, DataError, UsageError
from cardperso.prep.validate import read_photo
from cardperso.profiles.loader import load_profile
from cardperso.registry import (
    applications,
    breakdown,
    collection,
    find,
    lifecycle,
    lost,
    partners,
    production,
    reports,
    store,
)
from cardperso.registry.calendar import TARGETS, Calendar, load_calendar, parse_day
from cardperso.registry.centre import missing_confirmations, parties
from cardperso.storage.db import Database
from cardperso.web import charts
from cardperso.web.core import BACK, NAV, _db, _page, guarded
from cardperso.web.core import log_action as _log
from cardperso.web.users import CENTRE

__all__ = ["ROUTES"]

OFFICE: Final = frozenset({CENTRE})
#: The profile the CLI's ``registry audit`` validates with by default.
PROFILE: Final = "ssc3-pboc"
#: The most applications the audit queue shows at once (oldest first).
QUEUE: Final = 50
#: The most late and at-risk applications the dashboard lists (all of them: the CSV file).
SHOWN: Final = 200
#: A reason typed by the auditor: what ``registry audit --reason`` would take, kept short.
MAX_REASON: Final = 200

BACK.update(
    dict.fromkeys(("/office/file", "/office/notify", "/office/bank-requests",
                   "/office/export-batch", "/office/box-pack"), "/office/files")
    | {"/office/photo": "/office/audit"}
)  # fmt: skip
NAV += [
    ("/office/audit", "审核 Audit"),
    ("/office/compare", "比对 Comparison"),
    ("/office/targets", "时限 Time targets"),
    ("/office/files", "报表与文件 Reports & files"),
]


def _registry(request: Request) -> Database:
    return store.open_registry(_db(request))  # refuses a schema behind or ahead, as the CLI


def _actor(request: Request) -> str:
    return f"web:{request.state.user.name}"


def _calendar() -> Calendar:
    """The working-day calendar the CLI uses: ``CARDPERSO_CALENDAR``, else weekends only."""
    return load_calendar(os.environ.get("CARDPERSO_CALENDAR") or None)


def _as_of(request: Request) -> datetime.date:
    given = request.query_params.get("as_of", "")
    return parse_day(given, "as_of") if given else datetime.date.today()


#: The filters of ``registry report breakdown`` and ``waiting`` (query parameter → option).
FILTERS: Final = ("from", "to", "unit", "service_point", "bank")


def _filters(request: Request) -> find.Filters:
    """``?from=&to=&unit=&service_point=&bank=``: the reports' ``--from … --bank`` options."""
    q = request.query_params
    return find.filters(
        date_from=q.get("from", ""), date_to=q.get("to", ""), unit=q.get("unit", ""),
        service_point=q.get("service_point", ""), bank=q.get("bank", ""),
    )  # fmt: skip


def _app_id(value: object) -> int:
    text = str(value or "")
    if not (text.isdigit() and len(text) < 9):
        raise UsageError("application: an application id")
    return int(text)


# -- the audit queue ---------------------------------------------------------------------------
@guarded("/office/audit", OFFICE)
async def audit_queue(request: Request) -> Response:
    """The accepted applications, oldest first, each with its photo and its data."""
    db = _registry(request)
    _log(request, "view", "/office/audit")
    waiting = (lifecycle.ACCEPTED,)
    (total,) = db.execute("SELECT COUNT(*) FROM reg_applications WHERE state = ?", waiting)[0]
    pages = max(1, -(-int(total) // QUEUE))
    page = min(_page_no(request.query_params.get("page", "1")), pages)
    oldest = store.select_apps(
        db, "id IN (SELECT id FROM reg_applications WHERE state = ? ORDER BY id LIMIT ? OFFSET ?)",
        (*waiting, QUEUE, (page - 1) * QUEUE),
    )  # fmt: skip
    items = [_audit_item(db, app) for app in oldest]
    last = None
    if request.query_params.get("last"):
        found = store.select_apps(db, "id = ?", (_app_id(request.query_params["last"]),))
        last = found[0] if found else None
    return _page(
        request, "office_audit.html", items=items, total=int(total), shown=len(items), last=last,
        page=page, pages=pages, first=(page - 1) * QUEUE + 1,
    )  # fmt: skip


def _page_no(text: str) -> int:
    if not (text.isdigit() and 0 < len(text) < 7 and int(text) > 0):
        raise UsageError("page: a page number (1, 2, ...)")
    return int(text)


def _audit_item(db: Database, app: store.Application) -> dict[str, Any]:
    shown = find.show(db, str(app.id))  # the CLI's `registry show`: masked phone and PAN
    photo = read_photo(app.photo) if app.photo else "no photo"
    if isinstance(photo, str):
        quality = f"photo: {photo}"
    else:
        try:
            check_photo(photo, CARD_PHOTO)
            quality = ""
        except DataError as exc:
            quality = f"photo: {exc.reason}"
    return {
        "app": app,
        "shown": shown,
        "has_photo": not isinstance(photo, str),
        "quality": quality,
        "missing": missing_confirmations(shown["staff_confirmed"], shown["applicant_confirmed"])
        if shown["service_point"]
        else [],
    }


@guarded("/office/photo", OFFICE)
async def photo(request: Request) -> Response:
    """An application's photo (read with data preparation's safe reader), never cached."""
    db = _registry(request)
    app_id = _app_id(request.query_params.get("id"))
    found = store.select_apps(db, "id = ?", (app_id,))
    if not found or not found[0].photo:
        raise UsageError(f"application {app_id} has no photo")
    data = read_photo(found[0].photo)
    if isinstance(data, str):
        raise UsageError(f"application {app_id}: photo: {data}")
    if data.startswith(b"\xff\xd8"):
        media = "image/jpeg"
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        media = "image/png"
    else:
        raise UsageError(f"application {app_id}: photo: not a JPEG or PNG image")
    _log(request, "view-photo", f"application {app_id}")
    return Response(data, media_type=media, headers={"Cache-Control": "private, no-store"})


@guarded("/office/audit/accept", OFFICE)
async def audit_accept(request: Request) -> Response:
    """Audit one application: ``registry audit`` for it alone (audited, rejected with the rule
    that failed, or still waiting for the signatures)."""
    db = _registry(request)
    form = await request.form()
    app_id = _app_id(form.get("application"))
    out = applications.audit(
        db, load_profile(PROFILE), actor=_actor(request), photo_spec=CARD_PHOTO, only=app_id
    )
    if not out:
        raise UsageError(f"application {app_id} is not waiting for its audit")
    _log(request, "audit", f"application {app_id}", out[0].state)
    return _back_to_queue(app_id, form.get("page"))


@guarded("/office/audit/reject", OFFICE)
async def audit_reject(request: Request) -> Response:
    """Reject one application with the auditor's reason (``registry audit --reject ID
    --reason TEXT``)."""
    db = _registry(request)
    form = await request.form()
    app_id = _app_id(form.get("application"))
    reason = " ".join(str(form.get("reason", "")).split())
    if not reason:
        raise DataError("--reject needs --reason", field="reason")
    if len(reason) > MAX_REASON:
        raise DataError(f"is longer than {MAX_REASON} characters", field="reason")
    state = applications.reject(db, app_id, reason, actor=_actor(request))
    _log(request, "audit-reject", f"application {app_id}", state)
    return _back_to_queue(app_id, form.get("page"))


def _back_to_queue(app_id: int, page: object) -> Response:
    """Back to the page of the queue the decision was made on, its outcome above it."""
    number = _page_no(str(page or "1"))
    return RedirectResponse(f"/office/audit?last={app_id}&page={number}", status_code=303)


# -- comparison results and returns per unit ---------------------------------------------------
#: Where an application stands with the comparison.
_WAITING: Final = frozenset({lifecycle.ACCEPTED, lifecycle.AUDITED})
_NOT_COMPARED: Final = frozenset({lifecycle.REJECTED})
_POPULATION_FIELDS: Final = frozenset({"ssn", "name", "gender", "birth_date"})


@guarded("/office/compare", OFFICE)
async def compare_page(request: Request) -> Response:
    db = _registry(request)
    _log(request, "view", "/office/compare")
    per_unit: dict[str, dict[str, int]] = {}
    for unit, state, n in db.execute(
        "SELECT unit, state, COUNT(*) FROM reg_applications GROUP BY unit, state"
    ):
        counts = per_unit.setdefault(
            str(unit or "-"), dict.fromkeys(("applications", "waiting", "passed", "returned",
                                             "population", "bank", "rejected"), 0),
        )  # fmt: skip
        counts["applications"] += int(n)
        if state in _WAITING:
            counts["waiting"] += int(n)
        elif state in _NOT_COMPARED:
            counts["rejected"] += int(n)
        elif state == lifecycle.RETURNED:
            counts["returned"] += int(n)
        else:
            counts["passed"] += int(n)
    reasons = {
        int(i): str(r or "")
        for i, r in db.execute(
            "SELECT id, reason FROM reg_applications WHERE state = ?", (lifecycle.RETURNED,)
        )
    }
    returned: list[dict[str, Any]] = []
    for row in find.list_apps(db, find.filters(states=(lifecycle.RETURNED,))):
        reason = reasons.get(row["application_id"], "")
        fields = partners.fields_of(reason)
        against = _against(fields)
        for who in against:
            per_unit[row["unit"] or "-"][who] += 1
        returned.append(dict(row, fields=fields, against=against, reason=reason))
    units = {code: p.name for code, p in parties(db, "unit").items()}
    return _page(
        request, "office_compare.html", per_unit=sorted(per_unit.items()), returned=returned,
        units=units,
    )  # fmt: skip


def _against(fields: list[str]) -> list[str]:
    """Which comparison a returned application failed: the population database, the bank."""
    out = []
    if any(f in _POPULATION_FIELDS for f in fields):
        out.append("population")
    if any(f not in _POPULATION_FIELDS for f in fields):
        out.append("bank")
    return out


# -- the time targets --------------------------------------------------------------------------
@guarded("/office/targets", OFFICE)
async def targets_page(request: Request) -> Response:
    db = _registry(request)
    cal, day = _calendar(), _as_of(request)
    _log(request, "view", "/office/targets")
    chosen = _filters(request)
    by_batch = breakdown.breakdown(db, cal, "batch", chosen, day)
    by_point = breakdown.breakdown(db, cal, "service-point", chosen, day)
    late = reports.overdue(db, cal, day)
    st = reports.stats(db, cal)
    charts_lead = [
        (lt, lt.summary(), charts.histogram(
            lt.values, lt.target, f"lead times, {lt.application_type}: target {lt.target}"))
        for lt in st.lead_times
    ]  # fmt: skip
    point_bars = charts.bars(
        [(g.key, g.late, g.at_risk) for g in by_point], "late and at risk per service point"
    )
    batch_bars = charts.bars(
        [(g.key, g.late, g.at_risk) for g in by_batch], "late and at risk per batch"
    )
    return _page(
        request, "office_targets.html", as_of=day, calendar=cal.source, by_batch=by_batch,
        by_point=by_point, overdue=late[:SHOWN], overdue_total=len(late), lead=charts_lead, point_bars=point_bars,
        batch_bars=batch_bars, targets=TARGETS, columns=breakdown.COLUMNS,
        chosen={k: request.query_params.get(k, "") for k in FILTERS},
    )  # fmt: skip


# -- reports and partner files -----------------------------------------------------------------
Writer = Callable[[Database, Path, Request], str]


def _breakdown(db: Database, out: Path, request: Request) -> str:
    by = request.query_params.get("by", "")
    day = _as_of(request)
    groups = breakdown.breakdown(db, _calendar(), by, _filters(request), day)
    breakdown.write_csv(out, breakdown.COLUMNS, [g.row() for g in groups])
    return f"breakdown-{by}-{day.isoformat()}.csv"


def _waiting(db: Database, out: Path, request: Request) -> str:
    day = _as_of(request)
    got = breakdown.waiting(db, _calendar(), day, _filters(request))
    breakdown.write_csv(out, breakdown.WAITING_COLUMNS, breakdown.waiting_rows(got))
    return f"waiting-{day.isoformat()}.csv"


def _overdue(db: Database, out: Path, request: Request) -> str:
    day = _as_of(request)
    found = reports.overdue(db, _calendar(), day)
    breakdown.write_csv(out, reports.OVERDUE_COLUMNS, reports.overdue_rows(found))
    return f"overdue-{day.isoformat()}.csv"


def _stats(db: Database, out: Path, request: Request) -> str:
    st = reports.stats(db, _calendar())
    breakdown.write_csv(out, reports.STATS_COLUMNS, reports.stats_rows(st))
    return "stats.csv"


def _return_file(db: Database, out: Path, request: Request) -> str:
    batch = request.query_params.get("batch", "")
    reports.return_file(db, batch, out)
    return f"return-{batch}.csv"


def _compare_request(db: Database, out: Path, request: Request) -> str:
    to = request.query_params.get("to", "")
    partners.comparison_request(db, to, out)
    return f"compare-request-{to}.csv"


def _returned(db: Database, out: Path, request: Request) -> str:
    unit = request.query_params.get("unit", "")
    written = partners.returned_files(db, out.parent)  # {unit: count}, one file each
    if unit not in written:
        raise UsageError(f"no application of unit {unit[:40]!r} was returned")
    name = f"returned-{unit}.csv"
    (out.parent / name).replace(out)
    return name


def _account_opening(db: Database, out: Path, request: Request) -> str:
    bank = request.query_params.get("bank", "") or None
    partners.account_opening(db, out, bank_code=bank)
    return f"account-opening{'-' + bank if bank else ''}.csv"


#: ``?name=`` → what writes it (the function behind the CLI's ``--out``).
FILES: Final[dict[str, Writer]] = {
    "breakdown": _breakdown,
    "waiting": _waiting,
    "overdue": _overdue,
    "stats": _stats,
    "return-file": _return_file,
    "compare-request": _compare_request,
    "returned": _returned,
    "account-opening": _account_opening,
}


def _produce(request: Request, writer: Writer, file: str = "out.csv") -> tuple[str, bytes]:
    """Run ``writer`` into a private temporary directory (mode 0700, removed after); the
    file's name and its bytes, exactly as written."""
    db = _registry(request)
    with tempfile.TemporaryDirectory(prefix="cardperso-web-") as tmp:
        out = Path(tmp) / file
        name = writer(db, out, request)
        if not out.is_file():
            raise UsageError("nothing to write: no file")
        return name, out.read_bytes()


def _download(name: str, data: bytes, media: str = "text/csv; charset=utf-8") -> Response:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)  # a batch number may hold anything
    return Response(
        data, media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Cache-Control": "private, no-store"},
    )  # fmt: skip


@guarded("/office/files", OFFICE)
async def files_page(request: Request) -> Response:
    db = _registry(request)
    _log(request, "view", "/office/files")
    batches = [str(b) for (b,) in db.execute("SELECT batch_no FROM reg_batches ORDER BY 1")]
    returned_units = sorted(
        {str(u or "walk-in") for (u,) in db.execute(
            "SELECT unit FROM reg_applications WHERE state = ?", (lifecycle.RETURNED,))}
    )  # fmt: skip
    waiting_requests = int(
        db.execute("SELECT COUNT(*) FROM reg_bank_requests WHERE sent_at IS NULL")[0][0]
    )
    counts = store.counts(db)
    sporadic = len(
        store.select_apps(db, "state = ? AND application_type = ?", (lifecycle.REGISTERED,
                                                                     "sporadic"))
    )  # fmt: skip
    exportable = {
        "standard": counts[lifecycle.REGISTERED],
        "sporadic": sporadic,
        "temporary": counts[lifecycle.ACCOUNT_FAILED],
    }
    return _page(
        request, "office_files.html", batches=batches, groups=list(breakdown.GROUPS),
        returned_units=returned_units, waiting_requests=waiting_requests, exportable=exportable,
        points=parties(db, "service_point"), boxes=collection.boxes(db, "")[-20:],
        to_notify=_to_notify(db), audited=counts[lifecycle.AUDITED], today=f"{datetime.date.today():%Y-%m-%d}",
    )  # fmt: skip


def _to_notify(db: Database) -> int:
    """How many cards ``registry notify`` would make ready now (``/office/notify``, in
    ``office_notify``: accounts opened, made temporary cards)."""
    rows = db.execute(
        "SELECT COUNT(*) FROM reg_applications a JOIN reg_cards c ON c.card_no = a.card_no "
        "WHERE a.state = ? OR (a.state = ? AND c.kind = 'temporary')",
        (lifecycle.ACCOUNT_OPENED, lifecycle.PERSONALIZED),
    )
    return int(rows[0][0])


@guarded("/office/file", OFFICE)
async def file_download(request: Request) -> Response:
    """A report or partner file (``?name=`` one of :data:`FILES`, with its parameters)."""
    what = request.query_params.get("name", "")
    writer = FILES.get(what)
    if writer is None:
        raise UsageError(f"no report {what!r}: one of {', '.join(FILES)}")
    try:
        name, data = _produce(request, writer)
    except CardPersoError as exc:
        _log(request, "download", what, f"refused: {exc}"[:200])
        raise
    _log(request, "download", name)
    return _download(name, data)


@guarded("/office/bank-requests", OFFICE)
async def bank_requests(request: Request) -> Response:
    """The block / unblock / close requests not yet sent (``registry report bank-requests``):
    they are marked sent with this file, so each request is sent once."""
    bank = str((await request.form()).get("bank", "")) or None
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"bank-requests-{stamp}.csv"

    def write(db: Database, out: Path, _request: Request) -> str:
        if not lost.write_requests(db, out, bank_code=bank, downloaded_by=_actor(request)):
            raise UsageError("no bank request waiting (no file written)")
        return name

    _, data = _produce(request, write, name)
    _log(request, "download", name)
    return _download(name, data)


#: The kinds of batch the factory is sent (``registry export-batch`` with no flag,
#: ``--sporadic``, ``--temporary``).
BATCH_KINDS: Final = ("standard", "sporadic", "temporary")


@guarded("/office/export-batch", OFFICE)
async def export_batch(request: Request) -> Response:
    """The batch for the factory as one archive (``registry export-batch --out B.zip``: the
    CSV and its photos, no path of the centre's disk): its applications go into production."""
    form = await request.form()
    kind = str(form.get("kind", "standard"))
    if kind not in BATCH_KINDS:
        raise UsageError(f"kind {kind!r}: one of {', '.join(BATCH_KINDS)}")
    number = str(form.get("batch", "")).strip() or None
    if number is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", number):
        raise DataError("is 1-32 letters, digits, - or _", field="batch")
    made: list[str] = []

    def write(db: Database, out: Path, _request: Request) -> str:
        batch = production.export_batch(
            db, out, actor=_actor(request), batch_no=number, temporary=kind == "temporary",
            application_type="sporadic" if kind == "sporadic" else None,
            downloaded_by=_actor(request),
        )  # fmt: skip
        made.append(batch.batch_no)
        return f"{batch.batch_no}.zip"

    name, data = _produce(request, write, f"{number or 'batch'}.zip")
    _log(request, "export-batch", f"{made[0]} ({kind})")
    return _download(name, data, "application/zip")


@guarded("/office/box-pack", OFFICE)
async def box_pack(request: Request) -> Response:
    """A box of the made cards of a service point, and its manifest (``registry box pack
    --service-point SP --manifest F``: the list that travels with the box)."""
    form = await request.form()
    point = str(form.get("service_point", "")).strip()
    number = str(form.get("box", "")).strip() or None
    if number is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", number):
        raise DataError("is 1-40 letters, digits, - or _", field="box")
    made: list[str] = []

    def write(db: Database, out: Path, _request: Request) -> str:
        box = collection.pack(db, point, out, box_no=number)
        made.append(box.box_no)
        return f"box-{box.box_no}.csv"

    name, data = _produce(request, write)
    _log(request, "box-pack", f"{made[0]} for {point}")
    return _download(name, data)


ROUTES: Final[list[BaseRoute]] = [
    Route("/office/audit", audit_queue),
    Route("/office/photo", photo),
    Route("/office/audit/accept", audit_accept, methods=["POST"]),
    Route("/office/audit/reject", audit_reject, methods=["POST"]),
    Route("/office/compare", compare_page),
    Route("/office/targets", targets_page),
    Route("/office/files", files_page),
    Route("/office/file", file_download),
    Route("/office/bank-requests", bank_requests, methods=["POST"]),
    Route("/office/export-batch", export_batch, methods=["POST"]),
    Route("/office/box-pack", box_pack, methods=["POST"]),
]
