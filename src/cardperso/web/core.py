"""What every page of the console shares: the settings, the role table (``ACCESS``), the
navigation, the templates, and ``guarded``, which wraps an endpoint with the session, role and
CSRF checks. Page modules (``app``, ``desk``, ``office``) register their routes through it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from cardperso.codec.numbers import NATIONS
from cardperso.errors import CardPersoError
from cardperso.keystore.base import KeyStore
from cardperso.storage.db import Database
from cardperso.web import audit, sessions, users
from cardperso.web.users import ROLES

log = logging.getLogger("cardperso.web")
HERE: Final = Path(__file__).parent
ANYONE: Final = frozenset(ROLES)
POLL_MS: Final = 2000  # the live view's polling period (the issue asks for <= 2 s)

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Settings:
    """How the console runs: ``secure_cookies`` behind TLS (the cookie is sent over HTTPS
    only), ``keys`` to draw rejected cards' faces from the run's personalization file, where
    the desk keeps photos and for how long an abandoned upload, and the login rate limits."""

    secure_cookies: bool = False
    keys: KeyStore | None = None
    #: the desk's photo directory (``--photos``; else ``CARDPERSO_PHOTOS`` or beside SQLite)
    photos: Path | None = None
    #: how long a photo uploaded for an application never accepted is kept (seconds)
    photo_ttl: float = 30 * 60.0
    max_user_failures: int = users.MAX_USER_FAILURES
    max_address_failures: int = users.MAX_ADDRESS_FAILURES
    window: float = users.WINDOW


#: path → roles that may use it (every route of the app but the public ones).
ACCESS: dict[str, frozenset[str]] = {}
#: path → the largest request body it admits, where that is more than the Guard's 64 KiB
#: (a photo upload at the service-point desk).
BODY_LIMITS: dict[str, int] = {}
PUBLIC: Final = frozenset({"/login", "/static"})

_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
_env.filters["utc"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
#: An imported application's source is its file's path on the centre's disk (and the line):
#: the pages show the file's name only.
_env.filters["file_name"] = lambda d: d.rsplit("/", 1)[-1] if str(d).startswith("/") else d
#: GB/T 3304 names of the ethnic-group codes, shown beside the code (and offered as you type).
_env.globals["nations"] = NATIONS
templates = Jinja2Templates(env=_env)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


def _page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    user = getattr(request.state, "user", None)
    context |= {
        "user": user,
        "csrf": getattr(request.state, "csrf", ""),
        "roles": ROLES,
        "poll_ms": POLL_MS,
        "nav": [] if user is None else _nav(user.role),
    }
    return templates.TemplateResponse(request, name, context, status_code=status)


def log_action(request: Request, action: str, target: str = "", outcome: str = "ok") -> None:
    """Write ``action`` on ``target`` by the request's user to the audit log."""
    user = request.state.user
    audit.record(
        _db(request), action, user=user.name, role=user.role, address=_address(request),
        target=target, outcome=outcome,
    )  # fmt: skip


#: the navigation bar, in order; a page module appends its own entries when it is imported.
NAV: list[tuple[str, str]] = [("/", "首页 Home")]
#: route → the page whose form or link it serves (where "Back" leads after an error), for
#: routes that are not under a page of the navigation.
BACK: dict[str, str] = {}


def back_to(path: str, role: str) -> str:
    """The page to go back to from ``path`` after an error: its entry in :data:`BACK`, else
    the longest navigation entry it is under, else the home page."""
    if path in BACK:
        return BACK[path]
    under = [p for p, _t in _nav(role) if p != "/" and (path == p or path.startswith(p + "/"))]
    return max(under, key=len, default="/")


def _nav(role: str) -> list[tuple[str, str]]:
    return [(path, title) for path, title in NAV if role in ACCESS.get(path, ANYONE)]


def guarded(
    path: str, roles: frozenset[str], *, fragment: bool = False
) -> Callable[[Endpoint], Endpoint]:
    """Register ``path`` for ``roles`` and wrap its endpoint with the session, role and CSRF
    checks. A ``fragment`` (polled by the page) answers 401 rather than the login page."""

    def wrap(fn: Endpoint) -> Endpoint:
        ACCESS[path] = roles

        async def endpoint(request: Request) -> Response:
            db = _db(request)
            found = sessions.lookup(db, request.cookies.get(sessions.COOKIE))
            if found is None:
                if request.method == "GET" and not fragment:
                    return RedirectResponse("/login", status_code=303)
                return PlainTextResponse("log in first", status_code=401)
            user, csrf = found
            request.state.user, request.state.csrf = user, csrf
            if user.role not in roles:
                audit.record(
                    db, "forbidden", user=user.name, role=user.role, address=_address(request),
                    target=path, outcome="refused",
                )  # fmt: skip
                return _page(request, "refused.html", 403, reason="role")
            if request.method == "POST":
                form = await request.form()
                if not sessions.same(str(form.get("csrf", "")), csrf):
                    audit.record(
                        db, "csrf", user=user.name, role=user.role, address=_address(request),
                        target=path, outcome="refused: no valid form token",
                    )  # fmt: skip
                    return _page(request, "refused.html", 403, reason="csrf")
            try:
                return await fn(request)
            except CardPersoError as exc:
                return _page(
                    request, "refused.html", 400, reason="error", message=str(exc),
                    back=back_to(request.url.path, user.role),
                )  # fmt: skip

        endpoint.__name__ = fn.__name__
        endpoint.__doc__ = fn.__doc__
        return endpoint

    return wrap
