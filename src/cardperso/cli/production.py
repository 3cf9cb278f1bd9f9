"""``--production`` and ``--allow-software-keystore``: the production guard on the command line.

A run (``cardperso prep``, ``cardperso run``) is a **production** run when ``--production`` is
given or its profile says ``production: true``. A production run refuses, before any record is
read or any card touched (:func:`cardperso.keystore.base.production_guard`):

* a key whose check value is one of the published sample keys (``keys-sample/``), whatever its
  name, and a key marked as a test key;
* a software key store (keys in clear in host memory), unless ``--allow-software-keystore``:
  that override is logged at WARNING, naming the store, every time it is used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

import click

from cardperso.keystore.base import KeyStore, production_guard
from cardperso.prep.container import read_header
from cardperso.profiles.loader import load_profile

__all__ = ["check_production", "perso_file_is_production", "production_options"]

log = logging.getLogger("cardperso.production")

F = TypeVar("F", bound=Callable[..., object])


def production_options(command: F) -> F:
    """Add ``--production`` and ``--allow-software-keystore`` to a click command."""
    command = click.option(
        "--allow-software-keystore",
        "allow_software_keystore",
        is_flag=True,
        help="Production: accept a software key store (the override is logged).",
    )(command)
    command = click.option(
        "--production",
        is_flag=True,
        help="Production run: refuse the sample keys, test keys and software key stores.",
    )(command)
    return command


def check_production(
    store: KeyStore,
    *,
    production: bool,
    allow_software_keystore: bool,
    what: str,
) -> None:
    """Apply the production guard to ``store`` for the run ``what`` (e.g. ``"prep batch.csv"``).

    Raises :class:`~cardperso.errors.KeyStoreError` when production refuses the store.
    """
    if not production:
        if allow_software_keystore:
            log.warning("%s: --allow-software-keystore has no effect: not a production run", what)
        return
    if allow_software_keystore and store.is_software:
        log.warning(
            "%s: PRODUCTION OVERRIDE --allow-software-keystore: software key store %s accepted "
            "(its keys are in clear in host memory)",
            what,
            store.location,
        )
    production_guard(store, allow_software_store=allow_software_keystore)
    log.info("%s: production run; key store %s passed the production guard", what, store.location)


def perso_file_is_production(path: str | os.PathLike[str]) -> bool:
    """True when the profile a personalization file was prepared for says ``production: true``."""
    with open(path, "rb") as fh:
        header, _raw = read_header(fh)
    return load_profile(header.profile).production
