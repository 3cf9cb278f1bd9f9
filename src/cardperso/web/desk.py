"""The service-point desk: a clerk accepts an application with the applicant at the counter,
prints its two forms and records both signatures, looks an applicant up, records the arrival
of a box of cards and a card's collection, and reports a card lost, then restores or
re-issues it.

Every rule is the library's that the CLI calls: the fields are checked as ``registry import``
checks them (:mod:`cardperso.registry.counter`, also while the clerk types: ``/desk/check``,
called by ``static/desk.js``), the photo by the card photo specification, the forms are
``registry form``'s PDFs, the signatures ``registry confirm``, the collection ``registry
issue`` (and ``registry box receive``), the loss ``registry suspend / restore / reissue``,
the expected date the registry's time target on its working-day calendar
(``CARDPERSO_CALENDAR``, as for the reports). A photo that meets the specification is kept
under its SHA-256 in the photo directory (:mod:`cardperso.web.photos`: ``web serve --photos``)
where the application names it; one refused is not kept, and one whose form is abandoned is
removed after ``--photo-ttl`` (the sweep runs on every desk request).

A clerk works for one service point (``web user add --service-point``): every query is scoped
to it, and another point's applicant or card is refused (403, in the audit log) however it is
asked for: by lookup, by a direct URL or by a form. Identity numbers are shown masked; the
PDF forms (the applicant's own papers) print them as ``registry form`` does.
"""

from __future__ import annotations

import base64
import datetime
import functools
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from cardperso.codec.photo import CARD_PHOTO
from cardperso.errors import UsageError
from cardperso.prep.validate import PHOTO_MAX_BYTES, Reject
from cardperso.profiles.loader import load_profile
from cardperso.profiles.model import Profile
from cardperso.registry import (
    applications,
    cards,
    collection,
    counter,
    find,
    forms,
    lifecycle,
    lost,
)
from cardperso.registry.calendar import deadline, load_calendar, parse_day
from cardperso.registry.centre import Lists, missing_confirmations, parties
from cardperso.registry.store import Application
from cardperso.storage.db import Database
from cardperso.web import photos
from cardperso.web.core import BODY_LIMITS, NAV, Endpoint, _db, _page, _settings, guarded
from cardperso.web.core import log_action as _log
from cardperso.web.users import CLERK

__all__ = ["ROUTES"]

CLERKS: Final = frozenset({CLERK})
#: The validation profile of ``registry import`` (its default).
PROFILE: Final = "ssc3-pboc"
#: A request carrying a photo may be this large: the photo rule's own limit
#: (:data:`~cardperso.prep.validate.PHOTO_MAX_BYTES`, 100 KiB) plus room for the form, so a
#: photo somewhat over the limit is still read and refused with the rule's message.
UPLOAD_LIMIT: Final = 256 * 1024
#: Where uploaded photos are kept when ``--photos`` is not given (see :mod:`.photos`).
PHOTOS_ENV: Final = photos.PHOTOS_ENV
_REF: Final = re.compile(r"[0-9a-f]{64}")

#: What the counter calls each state of an application (beside the registry's name for it).
STATE_TITLES: Final = {
    lifecycle.ACCEPTED: "已受理",
    lifecycle.AUDITED: "已审核",
    lifecycle.COMPARED: "已比对",
    lifecycle.REGISTERED: "已登记",
    lifecycle.IN_PRODUCTION: "制卡中",
    lifecycle.PREP_REJECTED: "制卡数据退回",
    lifecycle.PERSONALIZED: "已制卡",
    lifecycle.ACCOUNT_OPENED: "已开户",
    lifecycle.ACCOUNT_FAILED: "开户失败",
    lifecycle.READY: "待领取",
    lifecycle.ISSUED: "已发放",
    lifecycle.SUSPENDED: "已挂失",
    lifecycle.RETURNED: "已退回单位",
    lifecycle.REJECTED: "审核未通过",
    lifecycle.CANCELLED: "已注销",
}

NAV.append(("/desk", "服务网点 Service desk"))
BODY_LIMITS.update({"/desk/accept": UPLOAD_LIMIT, "/desk/photo-check": UPLOAD_LIMIT})


@functools.cache
def _profile() -> Profile:
    return load_profile(PROFILE)


def _point(request: Request) -> str:
    point: str | None = request.state.user.service_point
    if not point:
        raise UsageError("this clerk has no service point (web user add --service-point)")
    return point


_OTHER_POINT: Final = {
    "applicant": "此申请人属于其他服务网点。This applicant belongs to another service point.",
    "box": "此卡盒寄往其他服务网点。This box was sent to another service point.",
}


def _refused(request: Request, target: str, what: str = "applicant") -> Response:
    """Another service point's applicant, card or box: 403, in the audit log."""
    _log(request, "forbidden", target, "refused: another service point")
    return _page(request, "refused.html", 403, reason="point", message=_OTHER_POINT[what])


class _OtherPoint(Exception):
    """Raised by a desk endpoint on another service point's applicant, card or box."""

    def __init__(self, target: str, what: str = "applicant") -> None:
        super().__init__(target)
        self.target, self.what = target, what


def _desk(path: str) -> Callable[[Endpoint], Endpoint]:
    """Register a desk endpoint for clerks (:func:`guarded`); another service point's
    applicant, card or box it meets is answered with 403 and written to the audit log."""

    def wrap(fn: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            photos.sweep(_db(request), _settings(request).photo_ttl)  # abandoned uploads
            try:
                return await fn(request)
            except _OtherPoint as other:
                return _refused(request, other.target, other.what)

        endpoint.__name__, endpoint.__doc__ = fn.__name__, fn.__doc__
        return guarded(path, CLERKS)(endpoint)

    return wrap


def _point_of(db: Database, app_id: int) -> str:
    rows = db.execute("SELECT service_point FROM reg_applications WHERE id = ?", (app_id,))
    return str(rows[0][0] or "") if rows else ""


def _own(request: Request, key: str) -> Application:
    """The application named by ``key`` (an id or a card number) if it is this clerk's
    point's (:class:`_OtherPoint` if not)."""
    if not key.strip():
        raise UsageError("name an application (id) or a card (number)")
    app = find.resolve(_db(request), key)
    if _point_of(_db(request), app.id) != _point(request):
        raise _OtherPoint(f"application {app.id}")
    return app


async def _field(request: Request, name: str) -> str:
    form = await request.form()
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


# -- the desk ------------------------------------------------------------------------------------


@_desk("/desk")
async def desk_home(request: Request) -> Response:
    point = _point(request)
    _log(request, "view", "/desk")
    return _home(request, point, found=None, message="")


def _home(request: Request, point: str, **context: Any) -> Response:
    """The desk's page: the lookup, its answer, the boxes sent here not yet received, the
    cards waiting to be collected here and the newest applications."""
    db = _db(request)
    mine = find.list_apps(db, find.filters(service_point=point))
    return _page(
        request, "desk_home.html", point=point, recent=mine[-20:][::-1], titles=STATE_TITLES,
        waiting=[r for r in mine if r["state"] == lifecycle.READY],
        boxes=[b for b in collection.boxes(db, point) if not b.received_date], **context,
    )  # fmt: skip


@_desk("/desk/lookup")
async def desk_lookup(request: Request) -> Response:
    """Find an applicant by identity number (a POST: the number stays out of URLs and logs)."""
    db, point = _db(request), _point(request)
    ssn = (await _field(request, "ssn")).upper()
    if not ssn:
        raise UsageError("type the applicant's identity number")
    wrong = counter.problems({"ssn": ssn}, _profile(), Lists.load(db), point=point)
    if "ssn" in wrong:
        message = f"社会保障号码 ssn: {wrong['ssn']}"
        return _home(request, point, found=None, message=message)
    everywhere = find.list_apps(db, find.filters(ssn=ssn))
    found = [_with_deadline(r) for r in everywhere if r["service_point"] == point]
    if everywhere and not found:
        raise _OtherPoint("lookup")
    _log(request, "lookup", f"{len(found)} application(s)")
    message = "" if found else "没有此人的申请。No application for this identity number."
    return _home(request, point, found=found, message=message)


def _with_deadline(row: dict[str, Any]) -> dict[str, Any]:
    """A list row with where it stands against its time target (pending states only)."""
    out = dict(row)
    out["due"] = None
    if row["state"] in lifecycle.PENDING:
        cal = load_calendar(os.environ.get("CARDPERSO_CALENDAR"))
        accepted = parse_day(str(row["accepted_date"]), "accepted_date")
        out["due"] = deadline(cal, accepted, str(row["application_type"]), datetime.date.today())
    return out


# -- accepting an application ----------------------------------------------------------------


def _accept_page(
    request: Request, status: int = 200, *, values: dict[str, str] | None = None,
    problems: dict[str, str] | None = None, photo: tuple[str, str, str] | None = None,
) -> Response:  # fmt: skip
    db = _db(request)
    return _page(
        request, "desk_accept.html", status, point=_point(request),
        banks=list(parties(db, "bank").values()), units=list(parties(db, "unit").values()),
        values=values or {}, problems=problems or {}, photo=photo, fields=counter.TYPED,
        upload_limit=UPLOAD_LIMIT, photo_limit=PHOTO_MAX_BYTES,
    )  # fmt: skip


@_desk("/desk/accept")
async def desk_accept(request: Request) -> Response:
    if request.method == "GET":
        return _accept_page(request)
    db, point, user = _db(request), _point(request), request.state.user
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in counter.TYPED}
    photo = await _photo_from(request)
    path = _photos(request) / f"{photo.ref}.jpg" if photo.ref else None
    try:
        if photo.problem:
            raise Reject("photo", photo.problem)
        if path is None:
            raise Reject("photo", "required: upload the photo (the ID card's, or the studio's)")
        got = counter.accept(
            db, values, _profile(), point=point, photo=path, photo_spec=CARD_PHOTO,
            actor=f"web:{user.name}",
        )  # fmt: skip
    except Reject as rej:
        found = counter.problems(values, _profile(), Lists.load(db), point=point)
        found.setdefault(rej.field, rej.reason)
        _log(request, "accept", f"at {point}", f"refused: {rej.field}")
        return _accept_page(request, 400, values=values, problems=found, photo=photo.preview())
    if path is not None:
        photos.settle(db, path)  # the registry's now, kept with the application
    _log(request, "accept", f"application {got.app_id}")
    return RedirectResponse(f"/desk/app?id={got.app_id}", status_code=303)


@_desk("/desk/check")
async def desk_check(request: Request) -> Response:
    """The rules of ``registry import`` on what is typed so far: ``{"problems": {field:
    reason}}`` (only ``field``'s when the form names one)."""
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in counter.TYPED}
    found = counter.problems(values, _profile(), Lists.load(_db(request)), point=_point(request))
    one = str(form.get("field", ""))
    if one:
        found = {one: found[one]} if one in found else {}
    return JSONResponse({"problems": found}, headers={"Cache-Control": "no-store"})


@_desk("/desk/photo-check")
async def desk_photo_check(request: Request) -> Response:
    """Say which rule of the card photo specification the photo chosen fails, and keep it if
    none: ``{"ref": …, "problem": ""}`` (``ref`` empty for a photo refused)."""
    photo = await _photo_from(request)
    if not photo.data and not photo.problem:
        raise UsageError("choose a photo file")
    outcome = f"refused: {photo.problem[:60]}" if photo.problem else "ok"
    _log(request, "photo-check", "photo", outcome)
    answer = {"ref": photo.ref, "problem": photo.problem}
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


def _photos(request: Request) -> Path:
    return photos.directory(_db(request), _settings(request).photos)


@dataclass(frozen=True, slots=True)
class _Photo:
    """The photo of a request: its reference (SHA-256, "" when none is kept), the rule it
    fails ("" when none) and its bytes (to show it beside the rule)."""

    ref: str = ""
    problem: str = ""
    data: bytes = b""

    def preview(self) -> tuple[str, str, str] | None:
        """(reference, data: URL, rule failed) for the accept form."""
        if not self.data or len(self.data) > UPLOAD_LIMIT:
            return None
        url = "data:image/jpeg;base64," + base64.b64encode(self.data).decode()
        return self.ref, url, self.problem


async def _photo_from(request: Request) -> _Photo:
    """The photo of this request (a file uploaded, or ``photo_ref``: one uploaded before). One
    that meets the specification is kept under its SHA-256 (mode 0600), pending until its
    application is accepted (:mod:`.photos`); one that fails it is not kept."""
    db = _db(request)
    form = await request.form()
    upload = form.get("photo")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(UPLOAD_LIMIT + 1)
        ref, path, fresh = photos.keep(db, _photos(request), data)
        problem = counter.photo_problem(path, CARD_PHOTO)
        if problem and fresh:
            photos.drop(db, path)
        return _Photo("" if problem else ref, problem, data)
    ref = str(form.get("photo_ref", ""))
    if not ref:
        return _Photo()
    path = _photos(request) / f"{ref}.jpg"
    if not _REF.fullmatch(ref) or not path.is_file():
        return _Photo(problem="the photo chosen before is gone: choose it again")
    photos.touch(db, path)  # the form is still in use: kept a while longer
    return _Photo(ref, counter.photo_problem(path, CARD_PHOTO), path.read_bytes())


# -- one application -------------------------------------------------------------------------


@_desk("/desk/app")
async def desk_app(request: Request) -> Response:
    db = _db(request)
    app = _own(request, request.query_params.get("id", ""))
    _log(request, "view", f"application {app.id}")
    shown = find.show(db, str(app.id))
    row = _with_deadline(
        {"state": app.state, "accepted_date": app.accepted_date,
         "application_type": app.application_type}
    )  # fmt: skip
    photo_ok = ""
    if app.photo:
        photo_ok = counter.photo_problem(app.photo, CARD_PHOTO) or "ok"
    missing = missing_confirmations(shown["staff_confirmed"], shown["applicant_confirmed"])
    return _page(
        request, "desk_app.html", app=app, shown=shown, due=row["due"], photo_ok=photo_ok,
        missing=missing, bank=parties(db, "bank").get(app.bank_code), lifecycle=lifecycle,
        titles=STATE_TITLES,
        today=f"{datetime.date.today():%Y-%m-%d}",
    )  # fmt: skip


@_desk("/desk/photo")
async def desk_photo(request: Request) -> Response:
    app = _own(request, request.query_params.get("id", ""))
    if not app.photo or not Path(app.photo).is_file():
        raise UsageError(f"application {app.id} has no photo file")
    _log(request, "view-photo", f"application {app.id}")
    return FileResponse(app.photo, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@_desk("/desk/form")
async def desk_form(request: Request) -> Response:
    """One of the two forms as PDF (``registry form application|issuing``)."""
    db = _db(request)
    app = _own(request, request.query_params.get("id", ""))
    kind = request.query_params.get("kind", "")
    make = {"application": forms.application_form, "issuing": forms.issuing_form}.get(kind)
    if make is None:
        raise UsageError("kind: application or issuing")
    with tempfile.TemporaryDirectory(prefix="cardperso-form-") as tmp:
        out = Path(tmp) / "form.pdf"
        make(db, str(app.id), out)
        pdf = out.read_bytes()
    _log(request, "print-form", f"application {app.id} {kind}")
    name = f"{kind}-{app.id}.pdf"
    return Response(
        pdf, media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"},
    )  # fmt: skip


@_desk("/desk/confirm")
async def desk_confirm(request: Request) -> Response:
    """The staff member's (this clerk's) or the applicant's signature on the registration form
    (``registry confirm``)."""
    db, user = _db(request), request.state.user
    app = _own(request, await _field(request, "id"))
    who = await _field(request, "who")
    if who not in ("staff", "applicant"):
        raise UsageError("who: staff or applicant")
    applications.confirm(
        db, app.id, staff=user.name if who == "staff" else "", applicant=who == "applicant",
        actor=f"web:{user.name}",
    )  # fmt: skip
    _log(request, "confirm", f"application {app.id} {who}")
    return RedirectResponse(f"/desk/app?id={app.id}", status_code=303)


# -- cards: collection, loss -----------------------------------------------------------------


@_desk("/desk/box-receive")
async def desk_box_receive(request: Request) -> Response:
    """A box of cards sent to this service point arrived (``registry box receive``, by this
    clerk, today): its cards can be collected here."""
    db, point = _db(request), _point(request)
    box_no = await _field(request, "box_no")
    sent_to = {b.box_no: b.service_point for b in collection.boxes(db)}
    if box_no not in sent_to:
        raise UsageError(f"no box {box_no!r} in the registry")
    if sent_to[box_no] != point:
        raise _OtherPoint(f"box {box_no}", "box")
    box = collection.receive(
        db, box_no, by=request.state.user.name, date=f"{datetime.date.today():%Y%m%d}"
    )
    _log(request, "box-receive", f"box {box_no} ({box.cards} cards)")
    return RedirectResponse("/desk", status_code=303)


async def _own_card(request: Request) -> tuple[str, Application]:
    card_no = await _field(request, "card_no")
    if not card_no or (card_no.isdigit() and len(card_no) < 9):
        raise UsageError("card_no: a card number")
    return card_no, _own(request, card_no)


@_desk("/desk/collect")
async def desk_collect(request: Request) -> Response:
    """The holder, or an agent with the agent's identity number, collected the card here
    (``registry issue``)."""
    db, point, user = _db(request), _point(request), request.state.user
    card_no, app = await _own_card(request)
    agent = (await _field(request, "agent_id")).upper()
    to = await _field(request, "to")
    if agent and not to:
        raise UsageError("to: an agent's collection needs the agent's name")
    day = parse_day(await _field(request, "date") or f"{datetime.date.today():%Y%m%d}", "date")
    cards.issue(
        db, card_no, to=to or "holder", date=f"{day:%Y%m%d}", actor=f"web:{user.name}",
        agent_ssn=agent, service_point=point,
    )  # fmt: skip
    _log(request, "collect", f"card {card_no} by {'agent' if agent else 'holder'}")
    return RedirectResponse(f"/desk/app?id={app.id}", status_code=303)


def _loss(path: str, action: Callable[..., bool], default: str, doc: str) -> Endpoint:
    """The endpoint of ``path``: ``action`` (:func:`lost.suspend` or :func:`lost.restore`)
    on this point's card, with the reason typed or ``default``."""

    async def endpoint(request: Request) -> Response:
        card_no, app = await _own_card(request)
        reason = (await _field(request, "reason") or default)[:200]
        action(_db(request), card_no, reason=reason, actor=f"web:{request.state.user.name}")
        _log(request, path.rsplit("/", 1)[1], f"card {card_no}")
        return RedirectResponse(f"/desk/app?id={app.id}", status_code=303)

    endpoint.__name__, endpoint.__doc__ = f"desk_{path.rsplit('/', 1)[1]}", doc
    return _desk(path)(endpoint)


desk_suspend = _loss(
    "/desk/suspend", lost.suspend, "reported lost",
    "挂失 (``registry suspend``): the bank is asked to block the account.",
)  # fmt: skip
desk_restore = _loss(
    "/desk/restore", lost.restore, "found by the cardholder",
    "解挂 (``registry restore``): found again, issued again; the bank unblocks it.",
)  # fmt: skip


@_desk("/desk/reissue")
async def desk_reissue(request: Request) -> Response:
    """补卡 (``registry reissue``): the lost card is cancelled and a new application accepted
    here replaces it (to be signed again)."""
    point = _point(request)
    card_no, _app = await _own_card(request)  # this point's card, or refused
    got = lost.reissue(
        _db(request), card_no, accepted_date=f"{datetime.date.today():%Y%m%d}",
        actor=f"web:{request.state.user.name}", service_point=point,
    )  # fmt: skip
    _log(request, "reissue", f"card {card_no} application {got.app_id}")
    return RedirectResponse(f"/desk/app?id={got.app_id}", status_code=303)


ROUTES: Final[list[BaseRoute]] = [
    Route("/desk", desk_home),
    Route("/desk/lookup", desk_lookup, methods=["POST"]),
    Route("/desk/accept", desk_accept, methods=["GET", "POST"]),
    Route("/desk/check", desk_check, methods=["POST"]),
    Route("/desk/photo-check", desk_photo_check, methods=["POST"]),
    Route("/desk/app", desk_app),
    Route("/desk/photo", desk_photo),
    Route("/desk/form", desk_form),
    Route("/desk/confirm", desk_confirm, methods=["POST"]),
    Route("/desk/box-receive", desk_box_receive, methods=["POST"]),
    Route("/desk/collect", desk_collect, methods=["POST"]),
    Route("/desk/suspend", desk_suspend, methods=["POST"]),
    Route("/desk/restore", desk_restore, methods=["POST"]),
    Route("/desk/reissue", desk_reissue, methods=["POST"]),
]
