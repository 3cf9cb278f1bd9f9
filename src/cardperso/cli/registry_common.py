"""Options and helpers shared by the ``cardperso registry`` command modules."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from cardperso.outputs import check_output_dirs, check_paths
from cardperso.registry import store
from cardperso.registry.calendar import parse_day
from cardperso.storage.db import Database, connect, sqlite_path

BY_OPTION = click.option(
    "--by", "actor", default=None, help="Who does this (transition log); default user@host."
)
CALENDAR_OPTION = click.option(
    "--calendar",
    "calendar_file",
    default=None,
    envvar="CARDPERSO_CALENDAR",
    type=click.Path(exists=True, dir_okay=False),
    help="Holiday and make-up workday file (env CARDPERSO_CALENDAR); default weekends only.",
)


@contextmanager
def open_db(db_url: str) -> Iterator[Database]:
    """The registry's database: it must exist (``db upgrade`` makes it); never created here."""
    with connect(db_url) as db:
        yield store.open_registry(db)


def check_output(role: str, out: str | Path | None, db_url: str, **inputs: str | None) -> None:
    """Refuse an output that is the database, an input, a directory or in no directory."""
    check_output_dirs([(role, out)])
    check_paths(outputs={role: out}, inputs={"--db": sqlite_path(db_url), **inputs})


def actor_of(actor: str | None) -> str:
    return actor or store.default_actor()


def day_of(value: str | None, what: str) -> datetime.date:
    return parse_day(value, what) if value else datetime.date.today()
