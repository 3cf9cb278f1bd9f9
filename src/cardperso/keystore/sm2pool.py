"""SM2 key pairs from a key pool for chips that cannot make their own (the PKI application's
``signing_key: import``, docs/pki.md).

How this works
--------------
The pool is an ordinary key pool of ``type`` ``sm2`` (:mod:`cardperso.keystore.pool`, filled by
``cardperso keys pool generate --type sm2``): the same storage, the same KEK check, the same
durable reservations, each key handed out once, ever. A line takes keys one card at a time
from a :class:`Sm2KeySource`:

* before the first card, :meth:`Sm2KeySource.check` refuses a pool of another type, under
  another KEK than the store's, or with fewer free keys than the run still has cards to make
  (``PoolExhausted``, reported as a pre-flight error: no card is fed);
* :meth:`Sm2KeySource.take` hands out the next key of the current reservation; when that is
  used up it reserves the next block (:data:`BLOCK` keys, or as many as the run still needs),
  durably, before any of its keys can go to a card. Station threads share one source (a lock).

A crash wastes the rest of the block it held and never reuses a key: the next run's
reservation starts after it. A card rejected after its key went in wastes that key too (the
record is made again with the next one).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Final

from cardperso.crypto.sm2 import Sm2PrivateKey
from cardperso.errors import KeyStoreError, UsageError
from cardperso.keystore.base import KeyStore
from cardperso.keystore.pool import IccKeyPool, PoolExhausted, Reservation
from cardperso.keystore.poolgen import check_kek
from cardperso.keystore.sm2keys import open_pool_keys

__all__ = ["BLOCK", "Sm2KeySource", "default_pool_directory"]

#: Keys reserved at a time by a line (a crash wastes at most this many per line process).
BLOCK: Final = 32
#: The directory name of a key store's SM2 pool beside its RSA pools.
SM2_POOL: Final = "sm2"


def default_pool_directory(store: KeyStore) -> Path:
    """A software key store's SM2 pool: ``KEYSTORE.icc-pool/sm2`` beside its file (where
    ``cardperso keys pool generate --type sm2 KEYSTORE`` puts it)."""
    location = store.location
    if not location.startswith("file:"):
        raise UsageError(
            f"pre-flight: key store {location} has no file to find its SM2 key pool beside: "
            "name the pool directory in the profile (pki.key_pool)"
        )
    return Path(location[len("file:") :] + ".icc-pool") / SM2_POOL


class Sm2KeySource:
    """SM2 key pairs handed out one at a time from a pool (module docstring)."""

    def __init__(
        self, directory: str | os.PathLike[str], store: KeyStore, *, label: str = ""
    ) -> None:
        self.pool = IccKeyPool(directory)
        self.store = store
        self.label = label
        self._lock = threading.Lock()
        self._reservation: Reservation | None = None
        self._next = 0
        #: Cards the run still has to make (set by :meth:`check`; each take counts one down).
        self._needed = 0
        #: Keys handed out by this source (a rejected card's key is gone all the same).
        self.taken = 0

    def check(self, needed: int) -> None:
        """Before the first card: the pool holds SM2 keys under this store's KEK and has at
        least ``needed`` free keys (:class:`UsageError` naming the pool otherwise)."""
        where = str(self.pool.directory)
        if not self.pool.exists():
            raise UsageError(
                f"pre-flight: no SM2 key pool at {where}: make one with `cardperso keys pool "
                "generate KEYSTORE --type sm2 --count N` (or name it in the profile: pki.key_pool)"
            )
        try:
            status = self.pool.status()
            if status.kind != "sm2":
                raise UsageError(f"key pool {where} holds {status.kind} keys, not SM2 key pairs")
            check_kek(status.kek, status.kek_kcv, self.store, where)
        except KeyStoreError as exc:
            raise UsageError(f"pre-flight: the PKI's signing keys: {exc}") from None
        if status.free < needed:
            raise UsageError(
                f"pre-flight: SM2 key pool {where}: the run needs {needed:,} keys, "
                f"{status.free:,} are free; fill it with `cardperso keys pool generate "
                "--type sm2 --count N` first"
            )
        with self._lock:
            self._needed = needed

    def take(self) -> Sm2PrivateKey:
        """The next key, never handed out before (reserved durably before it is returned);
        :class:`~cardperso.keystore.pool.PoolExhausted` when the pool has run dry."""
        with self._lock:
            res = self._reservation
            if res is None or self._next >= res.count:
                block = max(1, min(BLOCK, self._needed or 1))
                free = self.pool.status().free
                if free < 1:
                    raise PoolExhausted(
                        f"SM2 key pool {self.pool.directory}: no free key left (rejected cards "
                        "used some): fill it with `cardperso keys pool generate --type sm2`"
                    )
                res = self.pool.reserve(min(block, free), label=self.label)
                self._reservation, self._next = res, 0
            offset = self._next
            self._next += 1
            self._needed = max(0, self._needed - 1)
            self.taken += 1
        return open_pool_keys(self.store, res.read(offset, 1))[0]
