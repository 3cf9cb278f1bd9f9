"""The console's Starlette application: routes, who may use each, sessions, CSRF and audit.

Every route but ``/login`` and ``/static`` is wrapped by :func:`guarded` with the roles that may
use it (``ACCESS``, the one table the tests walk): no session → the login page (or 401 for a
fragment or a form), another role → 403, a form without the session's CSRF token → 403. Each
action is written to the audit log. The pages call the library the CLI calls: resuming a
station is :func:`cardperso.line.control.request_resume`, like ``cardperso line
resume-station``.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cardperso.errors import UsageError
from cardperso.line.control import request_resume
from cardperso.storage.db import Database
from cardperso.web import audit, desk, floor, office, office_notify, photos, sessions, users
from cardperso.web.core import (
    ACCESS,
    ANYONE,
    BODY_LIMITS,
    HERE,
    NAV,
    PUBLIC,
    Settings,
    _address,
    _db,
    _page,
    _settings,
    guarded,
)
from cardperso.web.users import ADMIN, OPERATOR, SECURITY

__all__ = ["ACCESS", "PUBLIC", "ROUTES", "Settings", "create_app"]

NAV += [
    ("/floor", "工厂车间 Factory floor"),
    ("/audit", "审计日志 Audit log"),
    ("/users", "用户 Users"),
]


# -- login and logout ------------------------------------------------------------------------
async def login_form(request: Request) -> Response:
    token = sessions.new_token()
    response = _page(request, "login.html", login_csrf=token, message="")
    _set_login_cookie(request, response, token)
    return response


def _set_login_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        sessions.LOGIN_COOKIE, token, max_age=1800, httponly=True, samesite="strict",
        secure=_settings(request).secure_cookies, path="/login",
    )  # fmt: skip


async def login(request: Request) -> Response:
    db, settings = _db(request), _settings(request)
    form = await request.form()
    name = str(form.get("user", ""))[:64]
    password = str(form.get("password", ""))
    address = _address(request)
    if not sessions.same(str(form.get("csrf", "")), request.cookies.get(sessions.LOGIN_COOKIE, "")):
        audit.record(
            db, "login", user=None, address=address, outcome="refused: no valid form token"
        )
        return _page(request, "refused.html", 403, reason="csrf")
    try:
        user = await run_in_threadpool(  # Argon2 takes its time: not on the event loop
            users.authenticate, db, name, password, address, max_user=settings.max_user_failures,
            max_address=settings.max_address_failures, window=settings.window,
        )  # fmt: skip
    except users.TooManyAttempts as exc:
        known = users.get(db, name) is not None
        audit.record(
            db, "login", user=name if known else None, address=address,
            outcome="refused: rate limited",
        )  # fmt: skip
        return _retry_login(request, str(exc), 429)
    except users.LoginRefused as exc:
        known = users.get(db, name) is not None  # an unknown name may be a mistyped password
        audit.record(
            db, "login", user=name if known else None, address=address,
            outcome="refused: wrong password" if known else "refused: unknown user name",
        )  # fmt: skip
        return _retry_login(request, str(exc), 401)
    token, _csrf = sessions.start(db, user, request.cookies.get(sessions.COOKIE))
    audit.record(db, "login", user=user.name, role=user.role, address=address)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        sessions.COOKIE, token, httponly=True, samesite="strict",
        secure=settings.secure_cookies, path="/",
    )  # fmt: skip
    response.delete_cookie(sessions.LOGIN_COOKIE, path="/login")
    return response


def _retry_login(request: Request, message: str, status: int) -> Response:
    token = sessions.new_token()
    response = _page(request, "login.html", status, login_csrf=token, message=message)
    _set_login_cookie(request, response, token)
    return response


@guarded("/logout", ANYONE)
async def logout(request: Request) -> Response:
    db, user = _db(request), request.state.user
    sessions.end(db, request.cookies.get(sessions.COOKIE))
    audit.record(db, "logout", user=user.name, role=user.role, address=_address(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# -- pages -----------------------------------------------------------------------------------
@guarded("/", ANYONE)
async def home(request: Request) -> Response:
    return _page(request, "home.html", about=ABOUT)


#: What each page is for, on the home page (beside its entry of the navigation).
ABOUT: Final = {
    "/desk": "受理申请、打印表格、查询、领卡、挂失 accept, forms, look up, collection, loss",
    "/office/audit": "照片与资料对照审核 audit with the photo beside the data",
    "/office/compare": "比对结果与退回单位 comparison results and returns per unit",
    "/office/targets": "逾期、临期与办理周期 late, at risk and lead times",
    "/office/files": "下载报表、合作方文件、批次与通知 reports, partner files, batches, notices",
    "/floor": "工位状态、恢复、废卡 stations, Resume, rejected cards",
    "/audit": "谁在何时做了什么 who did what, when",
    "/users": "控制台用户 the console's users",
}


@guarded("/floor", frozenset({OPERATOR}))
async def floor_page(request: Request) -> Response:
    db = _db(request)
    user = request.state.user
    audit.record(
        db, "view", user=user.name, role=user.role, address=_address(request), target="/floor"
    )
    runs = floor.runs(db)
    wanted = request.query_params.get("run")
    current = next((r for r in runs if r.run_id == wanted), runs[0] if runs else None)
    return _page(request, "floor.html", **_live_context(db, current))


def _live_context(db: Database, current: floor.RunView | None) -> dict[str, Any]:
    if current is None:
        return {"runs": [], "run": None, "stations": [], "rejects": [], "results": []}
    return {
        "runs": floor.runs(db),
        "run": current,
        "stations": floor.stations(db, current.run_id),
        "rejects": floor.rejects(db, current.run_id),
        "results": [p.name for p in floor.result_files(current.source)],
    }


@guarded("/floor/live", frozenset({OPERATOR}), fragment=True)
async def floor_live(request: Request) -> Response:
    db = _db(request)
    current = floor.run(db, request.query_params.get("run", ""))
    return _page(request, "floor_live.html", **_live_context(db, current))


@guarded("/floor/resume", frozenset({OPERATOR}))
async def floor_resume(request: Request) -> Response:
    """The operator cleared a station's fault: the request `line resume-station` makes."""
    db, user = _db(request), request.state.user
    form = await request.form()
    run_id, station = floor.run(db, str(form.get("run", ""))).run_id, str(form.get("station", ""))
    known = {s.name for s in floor.stations(db, run_id)}
    if station not in known:
        raise UsageError(f"run {run_id!r} has no station {station!r}")
    request_resume(db, run_id, station)
    audit.record(
        db, "resume-station", user=user.name, role=user.role, address=_address(request),
        target=f"{run_id} {station}",
    )  # fmt: skip
    return RedirectResponse(f"/floor?run={run_id}", status_code=303)


def _index(request: Request) -> int:
    try:
        return int(request.query_params.get("index", ""))
    except ValueError:
        raise UsageError("index: a record number") from None


@guarded("/floor/face", frozenset({OPERATOR}))
async def floor_face(request: Request) -> Response:
    """A rejected card's face (the card in the operator's hand), identity number masked."""
    db, user = _db(request), request.state.user
    current = floor.run(db, request.query_params.get("run", ""))
    index = _index(request)
    if index not in {r.index for r in floor.rejects(db, current.run_id, limit=10_000)}:
        raise UsageError(f"record {index} of run {current.run_id} has no rejected card")
    audit.record(
        db, "view-face", user=user.name, role=user.role, address=_address(request),
        target=f"{current.run_id} record {index}",
    )  # fmt: skip
    png = request.app.state.faces.png(current.source, index)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=600"})


@guarded("/floor/results", frozenset({OPERATOR}))
async def floor_results(request: Request) -> Response:
    db, user = _db(request), request.state.user
    current = floor.run(db, request.query_params.get("run", ""))
    name = request.query_params.get("file", "")
    files = {p.name: p for p in floor.result_files(current.source)}
    if name not in files:
        raise UsageError(f"no results file {name!r} beside run {current.run_id}")
    audit.record(
        db, "download", user=user.name, role=user.role, address=_address(request),
        target=f"{current.run_id} {name}",
    )  # fmt: skip
    return FileResponse(files[name], media_type="text/csv", filename=name)


@guarded("/audit", frozenset({SECURITY, ADMIN}))
async def audit_page(request: Request) -> Response:
    db, user = _db(request), request.state.user
    audit.record(
        db, "view", user=user.name, role=user.role, address=_address(request), target="/audit"
    )
    q = request.query_params
    who, action = q.get("user", "")[:64], q.get("action", "")[:64]
    before = q.get("before", "")
    if before and not (before.isdigit() and len(before) < 16):
        raise UsageError("before: an entry number")
    entries = audit.recent(
        db, AUDIT_PAGE, user=who, action=action, before=int(before) if before else None
    )
    return _page(
        request, "audit.html", entries=entries, chosen={"user": who, "action": action},
        actions=audit.actions(db), people=[u.name for u in users.all_users(db)],
        older=entries[-1].id if len(entries) == AUDIT_PAGE else None, newest=not before,
    )  # fmt: skip


#: Entries on one page of the audit log (newest first; "Older" pages back).
AUDIT_PAGE: Final = 200


@guarded("/users", frozenset({ADMIN}))
async def users_page(request: Request) -> Response:
    db, user = _db(request), request.state.user
    audit.record(
        db, "view", user=user.name, role=user.role, address=_address(request), target="/users"
    )
    return _page(request, "users.html", people=users.all_users(db))


# -- the application -------------------------------------------------------------------------
class Guard:
    """Around every request: no framing, no foreign scripts, no caching of pages that hold
    personal data; and a request body over ``MAX_BODY`` bytes is refused with 413 before it
    is read into memory (by its Content-Length, or as it streams in without one); a route in
    ``BODY_LIMITS`` (the desk's photo upload) admits its own larger limit."""

    MAX_BODY: Final = 64 * 1024
    HEADERS: Final = {
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for k, v in self.HEADERS.items():
                    headers.setdefault(k, v)
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        limit = BODY_LIMITS.get(scope.get("path", ""), self.MAX_BODY)
        length = dict(scope.get("headers", ())).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > limit:
            await PlainTextResponse("request too large", 413)(scope, receive, send_with_headers)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _TooLarge:
            if not started:
                await PlainTextResponse("request too large", 413)(scope, receive, send_with_headers)


class _TooLarge(Exception):
    pass


ROUTES: Final[list[BaseRoute]] = [
    Route("/", home),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/floor", floor_page),
    Route("/floor/live", floor_live),
    Route("/floor/resume", floor_resume, methods=["POST"]),
    Route("/floor/face", floor_face),
    Route("/floor/results", floor_results),
    Route("/audit", audit_page),
    Route("/users", users_page),
    *office.ROUTES,
    *office_notify.ROUTES,
    *desk.ROUTES,
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]


def create_app(db: Database, settings: Settings | None = None) -> Starlette:
    """The console over ``db`` (whose web tables ``cardperso db upgrade`` made)."""
    app = Starlette(routes=list(ROUTES))
    app.state.db = db
    app.state.settings = settings or Settings()
    app.state.faces = floor.Faces(app.state.settings.keys)
    photos.sweep(db, app.state.settings.photo_ttl)  # uploads of forms abandoned before a stop
    app.add_middleware(Guard)
    return app
