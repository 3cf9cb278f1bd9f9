"""Fixtures: a private SoftHSM2 token for the PKCS#11 key-store tests.

How this works
--------------
* ``softhsm`` (session scope) writes a private ``softhsm2.conf`` whose token directory lives in
  the pytest temporary directory, points ``SOFTHSM2_CONF`` at it, and initialises one token with
  ``softhsm2-util --init-token``. The SO PIN and the user PIN are fresh random strings typed into
  softhsm2-util's prompts through a pseudo-terminal: no PIN ever appears on a command line
  (``ps`` would show it). The user PIN is then published in an environment variable whose
  *name* the fixture yields (``pin_source="env:VAR"``), the way a production run gets it.
* softhsm2 missing is a test FAILURE with the Debian package to install, never a skip.
* Tests share the one token; each store they build gets its own label prefix
  (``hsm_store_factory``), so their keys never collide.

Measured pitfall (see /work/shared/reference/virtual-readers.md): SoftHSM2 reads
``SOFTHSM2_CONF`` once, when the module is first initialised in the process, so the variable is
set here before anything loads the module.
"""

from __future__ import annotations

import itertools
import os
import secrets
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Debian's softhsm2 module path (override with CARDPERSO_TEST_SOFTHSM_MODULE).
SOFTHSM_MODULE = os.environ.get("CARDPERSO_TEST_SOFTHSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
#: Name of the environment variable that carries the test token's user PIN.
PIN_ENV = "CARDPERSO_TEST_HSM_PIN"
TOKEN_LABEL = "cardperso-test"


@dataclass(frozen=True, slots=True)
class SoftHsm:
    """A ready SoftHSM2 token: what a key-store configuration names."""

    module: str
    token_label: str
    #: Name of the environment variable holding the user PIN (the PIN itself is never here).
    pin_env: str
    conf: Path
    tokendir: Path

    @property
    def pin_source(self) -> str:
        return f"env:{self.pin_env}"


def _fail_missing() -> None:
    util = shutil.which("softhsm2-util")
    if util is None or not Path(SOFTHSM_MODULE).is_file():
        pytest.fail(
            "SoftHSM2 is required for the hsm tests: install the Debian package 'softhsm2' "
            f"(needs softhsm2-util on PATH and the module {SOFTHSM_MODULE})",
            pytrace=False,
        )


def _run_with_prompts(argv: list[str], answers: list[str], env: dict[str, str]) -> str:
    """Run ``argv`` on a pseudo-terminal, typing ``answers`` at its ``...:`` prompts.

    softhsm2-util reads PINs from the terminal only; a pty keeps them off the command line.
    Returns the transcript (softhsm2-util echoes ``*`` for PIN characters, never the PIN).
    """
    master, slave = os.openpty()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    pending = list(answers)
    transcript = b""
    answered_at = 0
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            transcript += chunk
            if pending and transcript[answered_at:].rstrip().endswith(b":"):
                os.write(master, pending.pop(0).encode() + b"\n")
                answered_at = len(transcript)
        rc = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = transcript.decode(errors="replace")
    if rc != 0:
        pytest.fail(f"{' '.join(argv[:2])} failed (rc {rc}):\n{text}", pytrace=False)
    return text


def init_token(conf: Path, label: str, so_pin: str, user_pin: str) -> None:
    """Initialise a free SoftHSM2 slot as token ``label`` (PINs typed at the prompts)."""
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    _run_with_prompts(
        ["softhsm2-util", "--init-token", "--free", "--label", label],
        [so_pin, so_pin, user_pin, user_pin],
        env,
    )


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A private SoftHSM2 token; the user PIN is in ``os.environ[PIN_ENV]``."""
    _fail_missing()
    root = tmp_path_factory.mktemp("softhsm")
    tokendir = root / "tokens"
    tokendir.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\n"
        "slots.removable = false\n"
    )
    previous_conf = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    user_pin = secrets.token_hex(8)
    init_token(conf, TOKEN_LABEL, secrets.token_hex(8), user_pin)
    os.environ[PIN_ENV] = user_pin
    try:
        yield SoftHsm(SOFTHSM_MODULE, TOKEN_LABEL, PIN_ENV, conf, tokendir)
    finally:
        os.environ.pop(PIN_ENV, None)
        if previous_conf is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous_conf


_prefixes = itertools.count(1)


@pytest.fixture
def hsm_store_factory(softhsm: SoftHsm) -> Iterator[Callable[..., Any]]:
    """Build :class:`~cardperso.keystore.pkcs11.Pkcs11KeyStore` objects on the test token, each
    with a fresh label prefix (its own key namespace); closed after the test."""
    from cardperso.keystore.pkcs11 import Pkcs11KeyStore

    stores: list[Pkcs11KeyStore] = []

    def make(**kwargs: Any) -> Pkcs11KeyStore:
        kwargs.setdefault("label_prefix", f"t{os.getpid()}-{next(_prefixes)}/")
        store = Pkcs11KeyStore(softhsm.module, softhsm.token_label, softhsm.pin_source, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        if store._prefix and not store._closed:  # keep the shared token small
            for name in store.names():
                store.delete_key(name)
        store.close()
