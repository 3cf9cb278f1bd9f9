"""The web console's users, login, sessions, CSRF and audit log, over HTTP against a real
`cardperso web serve` process and its SQLite database (the browser tests drive the same
console in Chromium: tests/test_web_browser.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import fixtures_web
from cardperso.cli.main import _register, cli
from cardperso.storage.db import Database
from cardperso.web import users
from cardperso.web.app import ACCESS, PUBLIC, ROUTES, Settings, create_app
from fixtures_web import (
    PASSWORDS,
    ROLE_OF,
    Console,
    csrf_of,
    login_client,
    login_token,
    make_users,
    serve_in_thread,
)

console = fixtures_web.console  # the session's fixture, used by name


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app but the public ones, from its route table."""
    out = []
    for route in ROUTES:
        path = getattr(route, "path", "")
        if path in PUBLIC:
            continue
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                out.append((method, path))
    return out


def test_every_route_is_in_the_access_table() -> None:
    walked = {p for _m, p in _routes()}
    assert walked == set(ACCESS), "a route without roles (or roles without a route)"
    assert ("POST", "/floor/resume") in _routes() and ("GET", "/audit") in _routes()


def test_logged_out_is_refused_on_every_route(console: Console) -> None:
    client = httpx.Client(base_url=console.url, follow_redirects=False)
    for method, path in _routes():
        r = client.request(method, path, data={"csrf": "x"} if method == "POST" else None)
        if method == "GET" and path not in ("/floor/live",):
            assert (r.status_code, r.headers.get("location")) == (303, "/login"), (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code)
        assert "op1" not in r.text and "BATCH-" not in r.text


@pytest.mark.parametrize("name", sorted(PASSWORDS))
def test_a_wrong_role_is_refused_on_every_route(console: Console, name: str) -> None:
    client = login_client(console, name)
    csrf = csrf_of(client)
    refused = allowed = 0
    for method, path in _routes():
        data = {"csrf": csrf} if method == "POST" else None
        if path == "/logout":
            continue  # every role may log out (the last step below)
        r = client.request(method, path, data=data)
        if ROLE_OF[name] in ACCESS[path]:
            assert r.status_code != 403, (name, method, path)
            allowed += 1
        else:
            assert r.status_code == 403, (name, method, path, r.status_code)
            assert "Your role may not use this page" in r.text
            refused += 1
    assert refused and allowed
    with Database(console.db_path) as db:
        rows = db.execute(
            "SELECT COUNT(*) FROM web_audit WHERE user_name = ? AND action = 'forbidden' "
            "AND outcome = 'refused'",
            (name,),
        )
    assert rows[0][0] >= refused
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303


def test_a_form_without_its_csrf_token_is_refused(console: Console) -> None:
    client = login_client(console, "admin1")
    for data in ({}, {"csrf": "forged"}, {"csrf": ""}):
        r = client.post("/logout", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
        assert client.get("/users").status_code == 200, "still logged in: the logout was refused"
    # the login form too: a token that is not the one its cookie carries
    other = httpx.Client(base_url=console.url, follow_redirects=False)
    login_token(other)
    r = other.post("/login", data={"user": "op1", "password": PASSWORDS["op1"], "csrf": "forged"})
    assert r.status_code == 403
    assert "cardperso_session" not in r.headers.get("set-cookie", "")


def test_session_id_is_rotated_at_login(console: Console) -> None:
    """An id planted in the browser before login (session fixation) is not adopted: login
    gives a new one, and the planted one opens nothing."""
    client = httpx.Client(base_url=console.url, follow_redirects=False)
    planted = "attacker-chosen-session-id-0123456789abcdef"
    client.cookies.set("cardperso_session", planted, domain="127.0.0.1")
    token = login_token(client)
    r = client.post("/login", data={"user": "op1", "password": PASSWORDS["op1"], "csrf": token})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    new = re.search(r"cardperso_session=([^;]+)", cookie)
    assert new and new.group(1) != planted
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    attacker = httpx.Client(base_url=console.url, follow_redirects=False)
    attacker.cookies.set("cardperso_session", planted, domain="127.0.0.1")
    assert attacker.get("/floor").status_code == 303
    # a logged-in user who logs in again gets a new id and the old one ends
    old = new.group(1)
    logged = httpx.Client(base_url=console.url, follow_redirects=False)
    logged.cookies.set("cardperso_session", old, domain="127.0.0.1")
    assert logged.get("/floor").status_code == 200
    r = logged.post(
        "/login", data={"user": "op1", "password": PASSWORDS["op1"], "csrf": login_token(logged)}
    )
    assert r.status_code == 303
    stale = httpx.Client(base_url=console.url, follow_redirects=False)
    stale.cookies.set("cardperso_session", old, domain="127.0.0.1")
    assert stale.get("/floor").status_code == 303


def test_login_is_rate_limited_per_user_and_per_address(console: Console) -> None:
    """Five wrong passwords for a user (from anywhere) or twenty from one address, and even
    the right password is refused there for a while; others are not affected."""
    with Database(console.db_path) as db:
        users.add(db, "victim", users.OPERATOR, "victim-Secret-0001", None)

    def attempt(name: str, password: str, address: str) -> httpx.Response:
        c = httpx.Client(
            base_url=console.url, headers={"X-Forwarded-For": address}, follow_redirects=False
        )
        return c.post("/login", data={"user": name, "password": password, "csrf": login_token(c)})

    for i in range(users.MAX_USER_FAILURES):
        r = attempt("victim", f"guess-number-{i}", f"10.1.0.{i}")
        assert r.status_code == 401 and "wrong user name or password" in r.text
    r = attempt("victim", "victim-Secret-0001", "10.1.0.99")
    assert r.status_code == 429 and "too many failed logins" in r.text
    assert attempt("op1", PASSWORDS["op1"], "10.1.0.99").status_code == 303

    for i in range(users.MAX_ADDRESS_FAILURES):
        assert attempt(f"nobody{i}", "whatever-it-is", "10.2.0.7").status_code == 401
    assert attempt("op1", PASSWORDS["op1"], "10.2.0.7").status_code == 429
    assert attempt("op1", PASSWORDS["op1"], "10.2.0.8").status_code == 303
    with Database(console.db_path) as db:
        limited = db.execute(
            "SELECT COUNT(*) FROM web_audit WHERE action = 'login' AND outcome = "
            "'refused: rate limited' AND address IN ('10.1.0.99', '10.2.0.7')"
        )
    assert limited[0][0] == 2


def test_passwords_are_never_logged_nor_stored(console: Console) -> None:
    """After logins (good and bad), the server's log, the audit log and every table of the
    database hold no password; the users' rows hold Argon2id hashes."""
    wrong = "Wrong-Password-Typed-9931"
    typo = "Password-In-The-User-Field-77"  # typed into the wrong field
    login_client(console, "sec1")
    c = httpx.Client(base_url=console.url, follow_redirects=False)
    c.post("/login", data={"user": "sec1", "password": wrong, "csrf": login_token(c)})
    c.post("/login", data={"user": typo, "password": "sec1", "csrf": login_token(c)})
    text = console.log()
    assert "POST /login" in text  # the access log is there, and it is what we search
    with Database(console.db_path) as db:
        dump = []
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            dump += [repr(r) for r in db.execute(f'SELECT * FROM "{table}"')]
        hashes = [str(h) for (h,) in db.execute("SELECT password_hash FROM web_users")]
    for secret in [*PASSWORDS.values(), wrong, typo]:
        assert secret not in text
        assert not any(secret in row for row in dump)
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


def test_the_audit_log_names_user_action_and_time(console: Console) -> None:
    client = login_client(console, "sec1")
    page = client.get("/audit")
    assert page.status_code == 200
    assert re.search(
        r"<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td><td>sec1</td><td>security</td>", page.text
    )
    with Database(console.db_path) as db:
        rows = db.execute(
            "SELECT action, outcome, at FROM web_audit WHERE user_name = 'sec1' ORDER BY id"
        )
    actions = [(a, o) for a, o, _at in rows]
    assert ("login", "ok") in actions and ("view", "ok") in actions


def test_secure_cookies_behind_tls(tmp_path: Path) -> None:
    """--secure-cookies (behind a TLS proxy): the session and login cookies carry Secure."""
    db_path = tmp_path / "c.db"
    make_users(db_path)
    db = Database(db_path)
    url, thread, server = serve_in_thread(create_app(db, Settings(secure_cookies=True)))
    try:
        c = httpx.Client(base_url=url, follow_redirects=False)
        page = c.get("/login")
        assert "Secure" in page.headers["set-cookie"]
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        c.cookies.set("cardperso_login", page.cookies["cardperso_login"], domain="127.0.0.1")
        r = c.post("/login", data={"user": "op1", "password": PASSWORDS["op1"], "csrf": token})
        assert r.status_code == 303
        assert re.search(
            r"cardperso_session=[^;]+; HttpOnly; Path=/; SameSite=strict; Secure",
            r.headers["set-cookie"],
        )
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join()
        db.close()


# -- `cardperso web user` -------------------------------------------------------------------------
def _cardperso(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardperso", *args], input=stdin, capture_output=True, text=True
    )


def test_web_user_add_passwd_disable(tmp_path: Path) -> None:
    db = str(tmp_path / "u.db")
    assert _cardperso("db", "upgrade", "--db", db).returncode == 0
    added = _cardperso("web", "user", "add", "boss", "--role", "admin", "--password-stdin",
                       "--db", db, stdin="first-Password-1\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout == "user boss added: administrator\n"
    with Database(db) as conn:
        assert users.authenticate(conn, "boss", "first-Password-1", "t").role == users.ADMIN
    changed = _cardperso("web", "user", "passwd", "boss", "--password-stdin", "--db", db,
                         stdin="second-Password-2\n")  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    with Database(db) as conn:
        with pytest.raises(users.LoginRefused, match="wrong user name or password"):
            users.authenticate(conn, "boss", "first-Password-1", "t")
        assert users.authenticate(conn, "boss", "second-Password-2", "t").name == "boss"
    assert _cardperso("web", "user", "disable", "boss", "--db", db).returncode == 0
    with Database(db) as conn:
        with pytest.raises(users.LoginRefused):
            users.authenticate(conn, "boss", "second-Password-2", "t")
        audit = [a for (a,) in conn.execute("SELECT action FROM web_audit ORDER BY id")]
    assert audit == ["user-add", "user-passwd", "user-disable"]
    for out in (added, changed):
        assert "Password" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "operator"], "short\n", "password: 10 to 1024 characters"),
        (["--role", "clerk"], "long-enough-pw\n",
         "--service-point: required for a clerk, and only for a clerk"),
        (["--role", "operator", "--service-point", "SP1"], "long-enough-pw\n",
         "--service-point: required for a clerk, and only for a clerk"),
        (["--role", "clerk", "--service-point", "SP9"], "long-enough-pw\n",
         "--service-point SP9: not on the centre's list of service points (add it with: "
         "cardperso registry service-point add SP9 NAME)"),
    ],
)  # fmt: skip
def test_web_user_add_refusals(tmp_path: Path, args: list[str], stdin: str, message: str) -> None:
    db = str(tmp_path / "u.db")
    assert _cardperso("db", "upgrade", "--db", db).returncode == 0
    out = _cardperso(
        "web", "user", "add", "someone", *args, "--password-stdin", "--db", db, stdin=stdin
    )
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {message}"


def test_web_user_add_refuses_a_bad_name_and_a_second_user_of_that_name(tmp_path: Path) -> None:
    _register()
    db = str(tmp_path / "u.db")
    runner = CliRunner()
    bad = runner.invoke(cli, ["web", "user", "add", "Bob Smith", "--role", "admin", "--db", db])
    assert bad.exit_code == 2 and "user name: 2-32 characters" in bad.output
    ok = runner.invoke(
        cli, ["web", "user", "add", "bob", "--role", "admin", "--password-stdin", "--db", db],
        input="bobs-Password-1\n",
    )  # fmt: skip
    assert ok.exit_code == 2 and "does not exist" in ok.output  # no db upgrade: never created
    assert runner.invoke(cli, ["db", "upgrade", "--db", db]).exit_code == 0
    ok = runner.invoke(
        cli, ["web", "user", "add", "bob", "--role", "admin", "--password-stdin", "--db", db],
        input="bobs-Password-1\n",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(
        cli, ["web", "user", "add", "bob", "--role", "operator", "--password-stdin", "--db", db],
        input="bobs-Password-2\n",
    )  # fmt: skip
    assert again.exit_code == 2 and "user bob exists" in again.output


def test_first_start_says_how_to_create_the_administrator(tmp_path: Path) -> None:
    from fixtures_web import start_console

    db = tmp_path / "fresh.db"
    assert _cardperso("db", "upgrade", "--db", str(db)).returncode == 0
    c = start_console(db, tmp_path / "serve.log")
    try:
        login = httpx.get(c.url + "/login")
        assert login.status_code == 200 and "登录 Log in" in login.text
    finally:
        c.stop()
    assert (
        f"no administrator yet: create one with\n  cardperso web user add NAME --role admin --db {db}"
        in c.log()
    )


def test_a_request_body_over_the_limit_is_refused_unread(console: Console) -> None:
    """A form over 64 KiB is refused (413) by its Content-Length, or as it streams in without
    one, and the console goes on answering."""
    c = httpx.Client(base_url=console.url, follow_redirects=False)
    big = {"user": "op1", "password": "x" * (65 * 1024), "csrf": login_token(c)}
    assert c.post("/login", data=big).status_code == 413

    def chunks():  # type: ignore[no-untyped-def]
        yield b"user=op1&password="
        for _ in range(256):
            yield b"y" * 4096

    r = c.post(
        "/login", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 413 and "request too large" in r.text
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert c.get("/login").status_code == 200


@pytest.mark.postgres
def test_two_consoles_share_users_sessions_and_limits_on_postgresql(tmp_path: Path) -> None:
    """Several offices, one PostgreSQL database: `db upgrade` makes the console's tables, two
    `web serve` processes honour each other's sessions and rate limits, and `web user passwd`
    ends a user's lock-out."""
    import uuid

    from fixtures_web import start_console

    pg = os.environ.get("CARDPERSO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"t_web_{uuid.uuid4().hex[:10]}"
    with Database(pg) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    url = f"{pg}{'&' if '?' in pg else '?'}options=-csearch_path%3D{name}"
    try:
        upgraded = _cardperso("db", "upgrade", "--db", url)
        assert upgraded.returncode == 0, upgraded.stderr
        assert "applied web migration 1: web console" in upgraded.stdout
        assert "applied web migration" not in _cardperso("db", "upgrade", "--db", url).stdout
        with Database(url) as db:
            for user in ("admin1", "op1"):
                users.add(db, user, ROLE_OF[user], PASSWORDS[user], None)
        east = start_console(url, tmp_path / "east.log")
        west = start_console(url, tmp_path / "west.log")
        try:
            client = login_client(east, "admin1")
            session = client.cookies["cardperso_session"]
            other = httpx.Client(base_url=west.url, follow_redirects=False)
            other.cookies.set("cardperso_session", session, domain="127.0.0.1")
            assert other.get("/users").status_code == 200  # a session made in the east office
            for i in range(users.MAX_USER_FAILURES):
                c = httpx.Client(base_url=east.url if i % 2 else west.url)
                r = c.post("/login", data={"user": "op1", "password": f"bad-{i}-guess",
                                           "csrf": login_token(c)})  # fmt: skip
                assert r.status_code == 401
            c = httpx.Client(base_url=east.url, follow_redirects=False)
            r = c.post(
                "/login", data={"user": "op1", "password": PASSWORDS["op1"], "csrf": login_token(c)}
            )
            assert r.status_code == 429  # the failures of both offices count
            reset = _cardperso("web", "user", "passwd", "op1", "--password-stdin", "--db", url,
                               stdin="op1-new-Password\n")  # fmt: skip
            assert reset.returncode == 0, reset.stderr
            assert login_client(west, "op1", "op1-new-Password").get("/floor").status_code == 200
        finally:
            east.stop()
            west.stop()
        with Database(url) as db:
            actions = {a for (a,) in db.execute("SELECT action FROM web_audit")}
        assert {"login", "view", "user-passwd"} <= actions
    finally:
        with Database(pg) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")


def test_a_clerk_works_for_a_service_point_on_the_centres_list(tmp_path: Path) -> None:
    db = str(tmp_path / "u.db")
    assert _cardperso("db", "upgrade", "--db", db).returncode == 0
    listed = _cardperso("registry", "service-point", "add", "SP7", "西城区社保服务网点", "--db", db)
    assert listed.returncode == 0, listed.stderr
    out = _cardperso("web", "user", "add", "clerk7", "--role", "clerk", "--service-point", "SP7",
                     "--password-stdin", "--db", db, stdin="clerk7-Password\n")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "user clerk7 added: service-point clerk\n"
    with Database(db) as conn:
        assert users.get(conn, "clerk7") == users.User("clerk7", users.CLERK, "SP7", False)
