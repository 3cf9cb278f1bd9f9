"""Processes entering one PKCS#11 token at once (the SoftHSM2 NoSuchToken flake of the CI).

SoftHSM2's file store rewrites the token's ``token.object`` on every C_Login; another process
initialising the module or reading the token's label at that moment does not find the token
(``NoSuchToken``) or fails (``GeneralError``). A key pool's forked workers (and prep's) each
initialise the module and log in, all at once: measured on SoftHSM 2.6.1, ``fill`` with 4
workers failed 20 of 40 times, with 2 workers 3 of 40 (the CI's one failure in ~2,460 tests).
:func:`cardperso.keystore.pkcs11.token.token_entry` lets one process at a time initialise, find
the token and log in, and a forked child initialises the module at its first use, inside that
lock, not at the fork (with the lock but the fork-time initialisation, still 10 of 40 failed).
"""

from __future__ import annotations

import fcntl
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cardperso.keystore.pkcs11.token import entry_lock_path, token_entry
from cardperso.keystore.poolgen import fill, open_or_create

WORKERS = 6
ROUNDS = 4


@pytest.mark.hsm
def test_forked_workers_initialise_and_log_in_on_one_token_at_once(
    hsm_store_factory: Callable[..., Any], softhsm: Any, tmp_path: Path
) -> None:
    """The race made on purpose: each fill forks 6 workers with one task each, so all 6
    initialise the module and log in together (before the fix about half the fills of 4 workers
    failed, so 4 rounds of 6 all passing by luck is well under 1 %)."""
    from cardperso.keystore.pkcs11 import Pkcs11KeyStore

    prefix = f"entry{os.getpid()}/"
    hsm = hsm_store_factory(label_prefix=prefix)
    hsm.generate_key("kek", "3DES", 16)
    opener = functools.partial(
        Pkcs11KeyStore, softhsm.module, softhsm.token_label, softhsm.pin_source,
        label_prefix=prefix,
    )  # fmt: skip
    for r in range(ROUNDS):
        pool = open_or_create(tmp_path / f"p{r}", hsm, bits=1024, exponent=3, kek="kek")
        result = fill(pool, opener, count=WORKERS, workers=WORKERS, batch=1)
        assert (result.generated, result.free) == (WORKERS, WORKERS)
        assert len(set(pool.reserve(WORKERS).read(0, WORKERS).moduli)) == WORKERS


def _try_lock(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing the only copy releases a lock taken here
    return True


def test_the_entry_lock_shuts_out_every_other_opener_until_released() -> None:
    """Held: another open file description (another process, or a forked child's own open)
    cannot take it; re-entered by the same thread it does not deadlock; released: free."""
    with token_entry():
        path = entry_lock_path()
        assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600
        assert not _try_lock(path)
        with token_entry():  # the store's constructor holds it around module_lib and login
            assert not _try_lock(path)
        assert not _try_lock(path)  # the inner exit did not release the outer hold
    assert _try_lock(path)


def test_a_lock_file_planted_by_someone_else_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A symlink in the lock's place is not followed (O_NOFOLLOW): the entry goes on, ordered
    within this process only, and says so once in the log."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    target = tmp_path / "elsewhere"
    entry_lock_path().symlink_to(target)
    with token_entry():
        pass
    assert not target.exists()
    assert "entry lock" in caplog.text and "not ordered" in caplog.text
