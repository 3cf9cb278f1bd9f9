"""``cardperso db upgrade``: apply the schema migrations (SQLite file or PostgreSQL URL)."""

from __future__ import annotations

import click

from cardperso.registry.schema import LATEST, current_version, upgrade
from cardperso.storage.db import Database, connect, exposed_mode, sqlite_path
from cardperso.web import schema as web_schema

DEFAULT_DB = "cardperso-journal.db"
DB_OPTION = click.option(
    "--db",
    "db_url",
    default=DEFAULT_DB,
    show_default=True,
    envvar="CARDPERSO_DB",
    help="SQLite file or postgresql:// URL (env CARDPERSO_DB).",
)


def _warn_exposed(db: Database) -> None:
    mode = exposed_mode(db)
    if mode is not None:
        path = sqlite_path(db.url)
        click.echo(
            f"warning: {path} is open to group or others (mode {mode:04o}) and holds personal "
            f"data: chmod 600 {path}",
            err=True,
        )


@click.group("db")
def db_group() -> None:
    """The database shared by the line's journal and the registry."""


@db_group.command("upgrade")
@DB_OPTION
def upgrade_cmd(db_url: str) -> None:
    """Create the database (mode 0600) or apply its missing schema migrations."""
    with Database(db_url) as db:
        _warn_exposed(db)
        applied = upgrade(db)
        for version, name in applied:
            click.echo(f"applied migration {version}: {name}")
        for version, name in web_schema.upgrade(db):  # the web console's own tables
            click.echo(f"applied web migration {version}: {name}")
        click.echo(f"{db!r}: schema at version {current_version(db)} (latest {LATEST})")


@db_group.command("version")
@DB_OPTION
def version_cmd(db_url: str) -> None:
    """Show the schema version of the database (never creates one)."""
    with connect(db_url) as db:
        _warn_exposed(db)
        click.echo(f"schema version {current_version(db)} (this cardperso: {LATEST})")


COMMANDS = [db_group]
