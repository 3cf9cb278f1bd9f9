"""Filling an ICC key pool with every core: interruptible, resumable, nothing half-written.

How this works
--------------
``fill`` forks ``workers`` processes; each opens the key store itself (a PKCS#11 worker
initialises the library and logs in again, as prep's workers do) and lets go of the parent's
generation lock, so a worker left running by a killed parent never blocks the next ``fill``. A worker generates a batch of RSA key pairs with
:func:`cardperso.crypto.rsa.rsa_generate` (OpenSSL's generator), pads their CRT parts and
encrypts them with **one** ``wrap`` call of its own key-store session per batch; it hands back
only records (public modulus, encrypted parts), so a clear private key never leaves the process
that generated it and is never written anywhere. The parent gathers records and commits them
as segments (:meth:`IccKeyPool.commit_segment`: the segment file atomically, then the state).

``count`` is the number of *free* keys the pool must hold at the end: running the same command
again after an interruption generates only what is still missing (resume). A stop (SIGTERM
through :func:`cardperso.cli.main.stop_on_signal`, Ctrl-C) terminates the workers, commits the
records already received, and re-raises; a ``kill -9`` loses at most the uncommitted records,
and the next ``fill`` removes the orphan segment file such a kill may leave.

An SM2 pool (``kind="sm2"``) is filled the same way; its workers make SM2 key pairs
(:func:`cardperso.keystore.sm2keys.sm2_records`).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cardperso.crypto.primitives import BLOCK_SIZE, equal, pad_method2
from cardperso.crypto.rsa import RsaKey, rsa_generate
from cardperso.errors import KeyStoreError, UsageError
from cardperso.keystore.base import KeyStore
from cardperso.keystore.pool import IccKeyPool
from cardperso.keystore.sm2keys import sm2_records

__all__ = ["FillResult", "fill", "pool_record"]

#: Keys per worker task (one ``wrap`` call each) and records per committed segment.
BATCH: Final = 8
SEGMENT: Final = 512

StoreOpener = Callable[[], KeyStore]


@dataclass(frozen=True, slots=True)
class FillResult:
    generated: int  # keys made by this run
    total: int  # keys the pool ever held
    free: int
    seconds: float


def padded_parts(key: RsaKey, block: int) -> bytes:
    """The five CRT parts of ``key`` in DGI order 8201..8205, each padded ``80 00…`` to
    :func:`part_length` (the clear text that is wrapped)."""
    return b"".join(pad_method2(part, block) for part in (key.qinv, key.dq, key.dp, key.q, key.p))


def pool_record(store: KeyStore, kek: str, keys: list[RsaKey]) -> bytes:
    """Records for ``keys``: modulus ‖ encrypted parts, with one ``wrap`` call under ``kek``."""
    block = BLOCK_SIZE[store.info(kek).algorithm]
    clear = b"".join(padded_parts(k, block) for k in keys)
    wrapped = store.wrap(kek, clear)
    n = len(wrapped) // len(keys) if keys else 0
    return b"".join(k.modulus + wrapped[i * n : (i + 1) * n] for i, k in enumerate(keys))


# -- worker processes ------------------------------------------------------------------------

_STORE: KeyStore | BaseException | None = None
_JOB: tuple[str, int, int, str] = ("", 0, 0, "rsa")
#: The parent's generation-lock descriptor, closed in each forked worker.
_LOCK_FD: int | None = None


def _init_worker(
    opener: StoreOpener, kek: str, bits: int, exponent: int, kind: str = "rsa"
) -> None:
    """A worker: Ctrl-C is the parent's business; open this process's own key store. A store
    that does not open is raised by the first task (a ``multiprocessing.Pool`` whose
    initializer raises starts new workers for ever instead of failing)."""
    global _STORE, _JOB
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _LOCK_FD is not None:
        with contextlib.suppress(OSError):
            os.close(_LOCK_FD)
    try:
        _STORE = opener()
    except Exception as exc:  # handed to the parent by _make_batch
        _STORE = exc
    _JOB = (kek, bits, exponent, kind)


def _make_batch(n: int) -> bytes:
    if isinstance(_STORE, BaseException):
        raise _STORE
    assert _STORE is not None
    kek, bits, exponent, kind = _JOB
    if kind == "sm2":
        return sm2_records(_STORE, kek, n)
    return pool_record(_STORE, kek, [rsa_generate(bits, exponent) for _ in range(n)])


# -- the run -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _generation_lock(directory: Path) -> Iterator[None]:
    """One generation per pool at a time (reservations may go on meanwhile)."""
    global _LOCK_FD
    fd = os.open(directory / "generate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KeyStoreError(
                f"ICC key pool {directory}: another generation is filling it"
            ) from None
        _LOCK_FD = fd
        yield
    finally:
        _LOCK_FD = None
        os.close(fd)


def open_or_create(
    directory: str | os.PathLike[str],
    store: KeyStore,
    *,
    bits: int,
    exponent: int,
    kek: str,
    kind: str = "rsa",
) -> IccKeyPool:
    """The pool at ``directory``, created empty if there is none; an existing pool must have
    these parameters and a KEK with the same check value as the store's (``kind="sm2"``: SM2
    key pairs, ``bits`` 256, ``exponent`` 0)."""
    pool = IccKeyPool(directory)
    info = store.info(kek)
    if not pool.exists():
        return IccKeyPool.create(
            directory,
            bits=bits,
            exponent=exponent,
            kek=kek,
            kek_algorithm=info.algorithm,
            kek_kcv=info.kcv,
            kind=kind,
        )
    status = pool.status()
    if status.kind != kind:
        raise UsageError(f"key pool {directory} holds {status.kind} keys, not {kind}")
    if (status.bits, status.exponent, status.kek) != (bits, exponent, kek):
        raise UsageError(
            f"ICC key pool {directory} holds {status.bits}-bit keys (e={status.exponent}) "
            f"under {status.kek!r}: give the same --bits/--kek or another pool directory"
        )
    check_kek(status.kek, status.kek_kcv, store, str(directory))
    return pool


def check_kek(kek: str, kcv: bytes, store: KeyStore, where: str) -> None:
    """Refuse a store whose ``kek`` is not the key that protects the pool (another KCV)."""
    if not equal(store.info(kek).kcv, kcv):
        raise KeyStoreError(
            f"ICC key pool {where}: key {kek!r} of {store.location} is not the KEK that "
            f"protects the pool (check value {kcv.hex().upper()})"
        )


def fill(
    pool: IccKeyPool,
    opener: StoreOpener,
    *,
    count: int,
    workers: int,
    progress: Callable[[int], None] | None = None,
    batch: int = BATCH,
    segment: int = SEGMENT,
) -> FillResult:
    """Generate keys until ``pool`` holds ``count`` free keys (module docstring)."""
    import time

    if count < 0 or workers < 1 or batch < 1 or segment < 1:
        raise UsageError("--count must be at least 0 and --workers at least 1")
    started = time.perf_counter()
    with _generation_lock(pool.directory):
        pool.remove_orphans()
        status = pool.status()
        missing = max(0, count - status.free)
        size = pool.record_size()
        full, rest = divmod(missing, batch)
        ntasks = full + (1 if rest else 0)
        # a lazy task list: a pool of millions of keys is not a list of millions of tasks
        tasks = itertools.chain(itertools.repeat(batch, full), [rest] if rest else [])
        made = 0
        pending: list[bytes] = []
        pending_keys = 0

        def flush() -> None:
            nonlocal pending, pending_keys, made
            if pending_keys:
                pool.commit_segment(b"".join(pending))
                made += pending_keys
                pending, pending_keys = [], 0
                if progress is not None:
                    progress(made)

        if ntasks:
            ctx = multiprocessing.get_context("fork")
            args = (opener, status.kek, status.bits, status.exponent, status.kind)
            mp_pool = ctx.Pool(min(workers, ntasks), _init_worker, args)
            try:
                for records in mp_pool.imap_unordered(_make_batch, tasks):
                    if len(records) % size:
                        raise KeyStoreError("a pool worker returned a partial record")
                    pending.append(records)
                    pending_keys += len(records) // size
                    if pending_keys >= segment:
                        flush()
                mp_pool.close()
            except BaseException:
                mp_pool.terminate()
                flush()  # what the workers finished is whole: keep it
                raise
            finally:
                mp_pool.join()
            flush()
        end = pool.status()
    return FillResult(made, end.total, end.free, time.perf_counter() - started)
