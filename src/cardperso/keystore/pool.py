"""The ICC key pool: RSA key pairs made ahead of time, protected at rest, each handed out once.

How this works
--------------
A pool is a directory (mode 0700) of ICC RSA key pairs of one size and one public exponent,
protected by one KEK of one key store:

* ``pool.json`` is the state and the only truth: format, bits, exponent, the KEK that protects
  the private parts (name, algorithm, check value), the committed segments, and two cursors,
  ``generated`` (keys committed) and ``consumed`` (keys handed out), with the log of every
  reservation. It is rewritten atomically (temporary file, fsync, rename, fsync of the
  directory: :func:`cardperso.outputs.atomic_write_text`) under an exclusive ``flock``.
* ``seg-<start>.bin`` files hold the keys as fixed-size records. A segment is written
  atomically *before* the state names it; a segment the state does not name (a generator
  killed between the two steps) holds keys nobody was ever given, and the next generation
  deletes it (:func:`cardperso.keystore.poolgen.fill`).

One record (``record_size`` bytes)::

    modulus (bits/8) ‖ E(KEK, pad(q⁻¹ mod p)) ‖ E(KEK, pad(d mod (q−1))) ‖ E(KEK, pad(d mod (p−1)))
                     ‖ E(KEK, pad(q)) ‖ E(KEK, pad(p))

each CRT part ``bits/16`` bytes, padded ``80 00…`` (ISO/IEC 9797-1 method 2, always added) to a
whole number of KEK blocks and encrypted in ECB by the key store's ``wrap`` (one call per batch
of keys; in the PKCS#11 store that is ``C_Encrypt`` in the token under the token's KEK). The
order and the padding are those of the card's private-key DGIs 8201-8205
(``/work/shared/reference/pboc-conformance.md`` section 4), so when the pool's KEK is the
profile's transport KEK the encrypted parts go into the personalization file as they are: no
private key is in clear anywhere at prep. Nothing in the state or in ``status`` is key material.

Consumption
-----------
:meth:`IccKeyPool.reserve` moves ``consumed`` by N in one durable state write and returns a
:class:`Reservation` of the keys ``[start, start + N)``; an exhausted pool raises
:class:`PoolExhausted` and moves nothing. Only after ``reserve`` returned may a caller produce
an output that uses those keys. A run then reads its keys chunk by chunk
(:meth:`Reservation.read`: one ``pread`` per segment the range touches, nothing decrypted).
A crash after the reservation wastes the rest of its range and never reuses it: the next
reservation starts after it.

SM2 pools
---------
A pool whose state says ``"type": "sm2"`` (``bits`` 256, ``exponent`` 0) holds SM2 key pairs
for the PKI application's imported signing keys (docs/pki.md), with the same storage,
reservations and rules. Its record is ``x ‖ y`` (the public key, 64 bytes) ‖ ``E(KEK, pad(d))``
(one part: the 32-byte private key padded ``80 00…``); :mod:`cardperso.keystore.sm2pool` makes
and opens them. A state without ``type`` is an RSA pool.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cardperso.crypto.primitives import BLOCK_SIZE
from cardperso.errors import KeyStoreError, UsageError
from cardperso.outputs import atomic_write_bytes, atomic_write_text

__all__ = [
    "FORMAT",
    "POOL_TYPES",
    "IccKeyPool",
    "PoolExhausted",
    "PoolKeys",
    "PoolStatus",
    "Reservation",
    "part_length",
    "record_layout",
]

FORMAT: Final = "cardperso-icc-pool/1"
STATE: Final = "pool.json"
LOCK: Final = "pool.lock"
#: The order of the CRT parts in a record: the card's DGIs 8201..8205.
PART_DGIS: Final = (0x8201, 0x8202, 0x8203, 0x8204, 0x8205)
#: Key types a pool may hold (state ``type``; absent: ``rsa``).
POOL_TYPES: Final = ("rsa", "sm2")
#: The largest state file read (a pool that served a million runs is still far below it).
_MAX_STATE = 64 * 1024 * 1024


class PoolExhausted(KeyStoreError):
    """The pool has fewer free keys than a run needs; nothing was reserved."""


def part_length(bits: int, block: int) -> int:
    """The padded length of one CRT part: ``bits/16`` bytes, ``80``, zeros to a ``block``
    boundary (1024 bits, 3DES: 72; 1408 bits: 96)."""
    return (bits // 16 + 1 + block - 1) // block * block


def record_layout(kind: str, bits: int) -> tuple[int, int]:
    """(public bytes, private parts) of one record: RSA the modulus and five CRT parts, SM2
    ``x ‖ y`` and the private key."""
    return (64, 1) if kind == "sm2" else (bits // 8, 5)


def segment_name(start: int) -> str:
    return f"seg-{start:012d}.bin"


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """What may be shown about a pool: counts and parameters, never a key."""

    directory: str
    bits: int
    exponent: int
    kek: str
    kek_algorithm: str
    kek_kcv: bytes
    total: int
    used: int
    segments: int
    reservations: int
    kind: str = "rsa"
    #: Keys whose segment files were deleted by :meth:`IccKeyPool.prune` (all handed out).
    pruned: int = 0

    @property
    def free(self) -> int:
        return self.total - self.used


@dataclass(frozen=True, slots=True)
class PoolKeys:
    """Keys read from a pool: public moduli in clear, private parts encrypted under ``kek``.

    ``private`` holds, per key, the five encrypted CRT parts of ``part_len`` bytes each in the
    order of DGIs 8201-8205 (:data:`PART_DGIS`); it never appears in ``repr``.
    """

    bits: int
    exponent: int
    kek: str
    part_len: int
    moduli: tuple[bytes, ...]
    private: bytes = field(repr=False)
    #: Each key's position in the pool (unique for ever: a certificate serial can come from it).
    index: tuple[int, ...] = ()
    #: ``rsa``: ``moduli`` are RSA moduli, 5 parts a key; ``sm2``: ``x ‖ y``, one part a key.
    kind: str = "rsa"

    def __len__(self) -> int:
        return len(self.moduli)

    def wrapped(self, i: int) -> bytes:
        """Key ``i``'s encrypted private part(s) as stored (an SM2 key: ``E(KEK, pad(d))``)."""
        n = len(self.private) // len(self.moduli)
        return self.private[n * i : n * (i + 1)]

    def parts(self, i: int) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """Key ``i``'s encrypted CRT parts (DGIs 8201, 8202, 8203, 8204, 8205)."""
        n = self.part_len
        base = 5 * n * i
        p = self.private
        return (
            p[base : base + n],
            p[base + n : base + 2 * n],
            p[base + 2 * n : base + 3 * n],
            p[base + 3 * n : base + 4 * n],
            p[base + 4 * n : base + 5 * n],
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """Keys ``[start, start + count)`` of a pool, given to one run and never to another.

    Picklable (plain values): a run hands it to its worker processes, each of which reads its
    chunk's keys with :meth:`read` or :meth:`pick`.
    """

    directory: str
    bits: int
    exponent: int
    kek: str
    part_len: int
    start: int
    count: int
    #: (first key, key count) of each segment the range touches, in order.
    segments: tuple[tuple[int, int], ...]
    kind: str = "rsa"

    @property
    def record_size(self) -> int:
        public, parts = record_layout(self.kind, self.bits)
        return public + parts * self.part_len

    def read(self, offset: int, count: int) -> PoolKeys:
        """Keys ``offset .. offset + count`` of this reservation (0 is its first key): one
        ``pread`` per segment the range touches."""
        if offset < 0 or count < 0 or offset + count > self.count:
            raise UsageError(
                f"keys {offset}..{offset + count} are outside this reservation of {self.count}"
            )
        size, nbytes = self.record_size, record_layout(self.kind, self.bits)[0]
        first, end = self.start + offset, self.start + offset + count
        starts = [s for s, _ in self.segments]
        blobs: list[bytes] = []
        pos = first
        while pos < end:
            k = bisect_right(starts, pos) - 1
            seg_start, seg_count = self.segments[k]
            take = min(end, seg_start + seg_count) - pos
            path = Path(self.directory) / segment_name(seg_start)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                raise KeyStoreError(
                    f"ICC key pool {self.directory}: keys {seg_start}..{seg_start + seg_count - 1} "
                    "were pruned (handed out to a run long ago); they are never given again"
                ) from None
            except OSError as exc:
                raise KeyStoreError(f"ICC key pool {self.directory}: {exc.strerror}") from None
            try:
                blob = os.pread(fd, take * size, (pos - seg_start) * size)
            finally:
                os.close(fd)
            if len(blob) != take * size:
                raise KeyStoreError(f"ICC key pool {self.directory}: segment {path.name} is short")
            blobs.append(blob)
            pos += take
        data = b"".join(blobs)
        view = memoryview(data)
        moduli = tuple(bytes(view[i * size : i * size + nbytes]) for i in range(count))
        private = b"".join(view[i * size + nbytes : (i + 1) * size] for i in range(count))
        index = tuple(range(first, end))
        return PoolKeys(
            self.bits, self.exponent, self.kek, self.part_len, moduli, private, index, self.kind
        )

    def pick(self, indices: Sequence[int]) -> PoolKeys:
        """The keys at ``indices`` of this reservation (e.g. the input lines of a chunk's
        records, less the reservation's first line), with one read of the range they span."""
        if not indices:
            return PoolKeys(
                self.bits, self.exponent, self.kek, self.part_len, (), b"", (), self.kind
            )
        if len(set(indices)) != len(indices):
            raise UsageError("a pool key is picked twice in one read: each key serves one card")
        low, high = min(indices), max(indices)
        block = self.read(low, high - low + 1)
        if len(indices) == len(block) and list(indices) == list(range(low, high + 1)):
            return block
        n = record_layout(self.kind, self.bits)[1] * self.part_len
        p = block.private
        return PoolKeys(
            self.bits,
            self.exponent,
            self.kek,
            self.part_len,
            tuple(block.moduli[i - low] for i in indices),
            b"".join(p[(i - low) * n : (i - low + 1) * n] for i in indices),
            tuple(self.start + i for i in indices),
            self.kind,
        )


class IccKeyPool:
    """One pool directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    # -- creation and state --------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        *,
        bits: int,
        exponent: int,
        kek: str,
        kek_algorithm: str,
        kek_kcv: bytes,
        kind: str = "rsa",
    ) -> IccKeyPool:
        """A new, empty pool (the directory is made with mode 0700); refuses an existing one.
        ``kind="sm2"``: SM2 key pairs (``bits`` 256, ``exponent`` 0)."""
        if kind == "sm2":
            if (bits, exponent) != (256, 0):
                raise UsageError("an SM2 key pool holds 256-bit keys (exponent 0)")
        elif kind != "rsa":
            raise UsageError(f"a key pool holds {' or '.join(POOL_TYPES)} keys, not {kind!r}")
        elif bits % 16 or not 512 <= bits <= 4096:
            raise UsageError("ICC key size: a multiple of 16 bits from 512 to 4096")
        if kek_algorithm not in BLOCK_SIZE:
            raise KeyStoreError(f"KEK {kek!r} is {kek_algorithm}: it cannot protect a key pool")
        pool = cls(directory)
        pool.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with pool.locked():
            if (pool.directory / STATE).exists():
                raise KeyStoreError(f"ICC key pool {pool.directory} exists already")
            state = {
                "format": FORMAT,
                "bits": bits,
                "exponent": exponent,
                "kek": kek,
                "kek_algorithm": kek_algorithm,
                "kek_kcv": kek_kcv.hex().upper(),
                "part_len": part_length(512 if kind == "sm2" else bits, BLOCK_SIZE[kek_algorithm]),
                "generated": 0,
                "consumed": 0,
                "segments": [],
                "reservations": [],
            }
            if kind != "rsa":
                state["type"] = kind
            pool._write(state)
        return pool

    def exists(self) -> bool:
        return (self.directory / STATE).exists()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the pool's exclusive lock (state changes: reservations, committed segments)."""
        try:
            fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyStoreError(f"ICC key pool {self.directory}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def state(self) -> dict[str, Any]:
        """The parsed, checked state (no lock needed: the file is replaced atomically)."""
        where = f"ICC key pool {self.directory}"
        path = self.directory / STATE
        try:
            with open(path, "rb") as fh:
                raw = fh.read(_MAX_STATE + 1)
        except FileNotFoundError:
            raise KeyStoreError(
                f"{where}: no pool here (make one with `cardperso keys pool generate`)"
            ) from None
        except OSError as exc:
            raise KeyStoreError(f"{where}: cannot read ({exc.strerror})") from None
        try:
            doc = json.loads(raw)
        except ValueError:
            raise KeyStoreError(f"{where}: {STATE} is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise KeyStoreError(f"{where}: {STATE} is not a {FORMAT} state")
        ints = ("bits", "exponent", "part_len", "generated", "consumed")
        if not all(isinstance(doc.get(k), int) and doc[k] >= 0 for k in ints):
            raise KeyStoreError(f"{where}: {STATE} has a bad count")
        segs = doc.get("segments")
        if not isinstance(segs, list):
            raise KeyStoreError(f"{where}: {STATE} has no segment list")
        pos = 0
        for seg in segs:
            if not (isinstance(seg, list) and len(seg) == 2 and seg[0] == pos and seg[1] > 0):
                raise KeyStoreError(f"{where}: {STATE} has segments that do not follow on")
            pos += seg[1]
        pruned = doc.get("pruned", 0)
        if not isinstance(pruned, int) or not 0 <= pruned <= doc["consumed"]:
            raise KeyStoreError(f"{where}: {STATE} has a bad pruned count")
        if pos != doc["generated"] or doc["consumed"] > doc["generated"]:
            raise KeyStoreError(f"{where}: {STATE} counts do not add up")
        if doc.get("type", "rsa") not in POOL_TYPES:
            raise KeyStoreError(f"{where}: {STATE} holds keys of an unknown type")
        return doc

    def kind(self) -> str:
        """The key type the pool holds (``rsa`` or ``sm2``)."""
        return str(self.state().get("type", "rsa"))

    def _write(self, state: dict[str, Any]) -> None:
        atomic_write_text(self.directory / STATE, json.dumps(state, indent=1) + "\n")

    def status(self) -> PoolStatus:
        s = self.state()
        return PoolStatus(
            str(self.directory),
            s["bits"],
            s["exponent"],
            s["kek"],
            s["kek_algorithm"],
            bytes.fromhex(s["kek_kcv"]),
            s["generated"],
            s["consumed"],
            len(s["segments"]),
            len(s["reservations"]),
            s.get("type", "rsa"),
            int(s.get("pruned", 0)),
        )

    # -- generation side -----------------------------------------------------------------------

    def record_size(self) -> int:
        s = self.state()
        public, parts = record_layout(s.get("type", "rsa"), int(s["bits"]))
        return public + parts * int(s["part_len"])

    def commit_segment(self, records: bytes) -> int:
        """Add whole records as a new segment: the file first (atomic), then the state that
        names it (atomic, durable). Returns the number of keys now generated."""
        with self.locked():
            state = self.state()
            public, parts = record_layout(state.get("type", "rsa"), int(state["bits"]))
            size = public + parts * int(state["part_len"])
            if not records or len(records) % size:
                raise UsageError("a pool segment is a whole, non-zero number of records")
            start, count = int(state["generated"]), len(records) // size
            atomic_write_bytes(self.directory / segment_name(start), records)
            state["segments"].append([start, count])
            state["generated"] = start + count
            self._write(state)
            return start + count

    def remove_orphans(self) -> int:
        """Delete segment files the state does not name and temporary files of an interrupted
        write (keys nobody was given). Call only while no generation runs. Returns the count."""
        removed = 0
        with self.locked():
            named = {segment_name(s) for s, _ in self.state()["segments"]}
            for path in self.directory.iterdir():
                n = path.name
                orphan = n.startswith("seg-") and n.endswith(".bin") and n not in named
                partial = n.startswith(".seg-") and n.endswith(".part")
                if orphan or partial:
                    path.unlink()
                    removed += 1
        return removed

    def prune(self, older_than: float, *, now: float | None = None) -> tuple[int, int]:
        """Delete the segment files whose every key went to reservations made more than
        ``older_than`` seconds ago (their runs are over: the keys are on cards, and the pool
        need not keep them, even encrypted). Returns (segments deleted, keys in them). A run
        that still reads a pruned key gets a clear error, never another key."""
        now = time.time() if now is None else now
        removed = keys = 0
        with self.locked():
            state = self.state()
            cursor = int(state["consumed"])
            for r in state["reservations"]:  # in the order of their start
                if r["time"] > now - older_than:
                    cursor = min(cursor, int(r["start"]))
                    break
            pruned = int(state.get("pruned", 0))
            for start, count in state["segments"]:
                if start >= pruned and start + count <= cursor:
                    (self.directory / segment_name(start)).unlink(missing_ok=True)
                    removed, keys, pruned = removed + 1, keys + count, start + count
            if removed:
                state["pruned"] = pruned
                self._write(state)
        return removed, keys

    # -- consumption side ----------------------------------------------------------------------

    def reserve(self, count: int, *, label: str = "") -> Reservation:
        """Hand ``count`` unused keys to one run, durably, before it writes anything (module
        docstring). :class:`PoolExhausted` when fewer are free (nothing moves then)."""
        if count < 0:
            raise UsageError("a reservation needs a key count of at least 0")
        with self.locked():
            state = self.state()
            start, free = int(state["consumed"]), state["generated"] - state["consumed"]
            if count > free:
                kind = state.get("type", "rsa")
                what, option = (
                    ("SM2", "--type sm2") if kind == "sm2" else (f"{state['bits']}-bit", f"--bits {state['bits']}")
                )  # fmt: skip
                raise PoolExhausted(
                    f"{'SM2' if kind == 'sm2' else 'ICC'} key pool {self.directory} ({what}): "
                    f"the run needs {count:,} keys, {free:,} are free; fill it with "
                    f"`cardperso keys pool generate {option} --count N` first"
                )
            state["consumed"] = start + count
            state["reservations"].append(
                {"start": start, "count": count, "label": label[:80], "time": int(time.time())}
            )
            self._write(state)
        touched = tuple((s, c) for s, c in state["segments"] if s < start + count and s + c > start)
        return Reservation(
            str(self.directory),
            int(state["bits"]),
            int(state["exponent"]),
            str(state["kek"]),
            int(state["part_len"]),
            start,
            count,
            touched,
            str(state.get("type", "rsa")),
        )
