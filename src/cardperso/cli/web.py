"""``cardperso web serve`` and ``cardperso web user add/passwd/disable``: the browser console.

The console runs on the same database as the line and the registry (``--db``, default the
journal the other commands use). Passwords come from a no-echo prompt or, with
``--password-stdin``, from the first line of standard input; never from an argument (which
``ps`` and shell histories show).
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from cardperso.cli.db import DB_OPTION
from cardperso.errors import UsageError
from cardperso.storage.db import Database, connect
from cardperso.web import audit, users
from cardperso.web import schema as web_schema
from cardperso.web.photos import PENDING_TTL, check_directory


def _open(db_url: str) -> Database:
    """The database (it must exist: ``cardperso db upgrade`` makes it) with the web tables."""
    db = connect(db_url)
    try:
        web_schema.upgrade(db)
    except BaseException:
        db.close()
        raise
    return db


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline(users.MAX_PASSWORD + 2)
        password = line.rstrip("\r\n")
    else:
        password = click.prompt(
            "password", hide_input=True, confirmation_prompt="repeat the password"
        )
    return users.check_password(password)


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (no prompt).",
)


@click.group("web")
def web_group() -> None:
    """The web console in a browser: the service-point desk, the centre's office, the
    factory floor, users and the audit log."""


@web_group.command("serve")
@DB_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="Send the session cookie over HTTPS only (behind a TLS reverse proxy).",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies whose X-Forwarded-For/-Proto headers are believed (comma-separated).",
)
@click.option(
    "--keys",
    "keys_spec",
    default=None,
    help="Key store that opens the runs' personalization files (rejected cards' faces).",
)
@click.option(
    "--photos",
    "photos_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory (mode 0700) where the desk keeps applicants' photos "
    "[default: CARDPERSO_PHOTOS, or desk-photos/ beside a SQLite database].",
)
@click.option(
    "--photo-ttl",
    type=click.FloatRange(min=1),
    default=PENDING_TTL,
    show_default=True,
    help="Seconds a photo uploaded for an application never accepted is kept.",
)
def serve_cmd(
    db_url: str,
    host: str,
    port: int,
    secure_cookies: bool,
    forwarded_allow_ips: str,
    keys_spec: str | None,
    photos_dir: Path | None,
    photo_ttl: float,
) -> None:
    """Serve the console (stop it with Ctrl-C)."""
    from cardperso.web.app import Settings, create_app
    from cardperso.web.server import serve

    if photos_dir is not None:
        check_directory(photos_dir)
    keys = None
    if keys_spec:
        from cardperso.cli.keys import open_store

        keys = open_store(keys_spec)
    db = _open(db_url)
    try:
        admins = [u for u in users.all_users(db) if u.role == users.ADMIN and not u.disabled]
        if not admins:
            click.echo(
                "no administrator yet: create one with\n"
                f"  cardperso web user add NAME --role admin --db {db_url}\n"
                "(there is no default password; you are asked for one)",
                err=True,
            )
        click.echo(f"cardperso web console on http://{host}:{port}/ ({db!r})", err=True)
        settings = Settings(
            secure_cookies=secure_cookies, keys=keys, photos=photos_dir, photo_ttl=photo_ttl
        )
        app = create_app(db, settings)
        serve(app, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips)
    finally:
        db.close()


@web_group.group("user")
def user_group() -> None:
    """Console users: add, change a password, disable."""


@user_group.command("add")
@click.argument("name")
@click.option(
    "--role", required=True, type=click.Choice(sorted(users.ROLES)), help="What the user may do."
)
@click.option("--service-point", default=None, help="The clerk's service point (clerks only).")
@PASSWORD_STDIN
@DB_OPTION
def user_add(
    name: str, role: str, service_point: str | None, password_stdin: bool, db_url: str
) -> None:
    """Add user NAME with a ROLE (the password is asked for, never given as an argument)."""
    users.check_name(name)
    with _open(db_url) as db:
        if users.get(db, name) is not None:
            raise UsageError(f"user {name} exists (change the password with `web user passwd`)")
        user = users.add(db, name, role, _password(password_stdin), service_point)
        audit.record(db, "user-add", user=_cli_actor(), target=f"{name} {role}")
    click.echo(f"user {user.name} added: {user.role_title}")


@user_group.command("passwd")
@click.argument("name")
@PASSWORD_STDIN
@DB_OPTION
def user_passwd(name: str, password_stdin: bool, db_url: str) -> None:
    """Set a new password for NAME (their sessions end)."""
    with _open(db_url) as db:
        if users.get(db, name) is None:
            raise UsageError(f"no user {name}")
        users.set_password(db, name, _password(password_stdin))
        audit.record(db, "user-passwd", user=_cli_actor(), target=name)
    click.echo(f"password of {name} changed; their sessions ended")


@user_group.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the user again.")
@DB_OPTION
def user_disable(name: str, enable: bool, db_url: str) -> None:
    """Disable NAME (their sessions end at once), or with --enable let them in again."""
    with _open(db_url) as db:
        users.set_disabled(db, name, not enable)
        audit.record(
            db, "user-enable" if enable else "user-disable", user=_cli_actor(), target=name
        )
    click.echo(f"user {name} {'enabled' if enable else 'disabled'}")


COMMANDS = [web_group]
