"""``perso-file verify`` in two processes: each checks half of the records.

The file has no index, so the split point is found by walking the frames' length fields to the
middle of the file (about 0.2 µs per record). The main process checks the first half and a forked
process the second (the MAC key reaches it by the fork, never through a pipe); the second half
sends back its 16-byte record MACs, which the file MAC hashes in order. This is the fast path
for a good file only: on any problem in either half, at the seam (input lines not increasing
across it) or in the trailer, the file is checked again from the start by
:func:`cardperso.prep.container.verify`, one process, which names the first bad record exactly
as it always did. A tampered file costs up to twice the time; a good one about half.
"""

from __future__ import annotations

import hashlib
import hmac
import mmap
import multiprocessing
import os
import struct

from cardperso.keystore import KeyStore
from cardperso.layouts import persofile as pf
from cardperso.prep import container as ct

#: Files smaller than this are checked in one process (a fork costs more than it saves).
MIN_SPLIT_BYTES = 8 << 20

#: Checked pages are dropped from the process every this many bytes (they stay in the page
#: cache): without it the mapping of a 1.4 GB file would show as 1.4 GB of resident memory.
_RELEASE = 8 << 20

_LIMIT = (1 << 24) - 24  # the longest record body (as container.verify)
_KEY = b""  # the batch MAC key, in the forked process (set before the fork)


class _Bad(Exception):
    """Something in a half is not right: check the whole file in order for the exact reason."""


def _check_range(mm: mmap.mmap, off: int, end: int, key: bytes) -> tuple[bytes, int, int, int]:
    """Check the records that fill ``[off, end)`` exactly: their MACs, their input lines
    increasing. Returns (their MACs, count, first line, last line); :class:`_Bad` if any is
    wrong."""
    macs = ct.RecordMacs(key)
    inner, outer = macs._inner.copy, macs._outer.copy
    unpack, sha, same = ct._FRAME.unpack_from, hashlib.sha256, hmac.compare_digest
    out = bytearray()
    first = last = -1
    count = 0
    done = off - off % mmap.PAGESIZE  # start of the pages not yet released
    while off < end:
        if off - done >= _RELEASE:
            done = _release(mm, done, off)
        if off + 8 > end:
            raise _Bad
        length, line = unpack(mm, off)
        stop = off + 8 + length
        if length > _LIMIT or stop + 16 > end or line <= last:
            raise _Bad
        if count == 0:
            first = line
        last = line
        ih = inner()
        ih.update(b"R" + mm[off + 4 : off + 8] + sha(mm[off + 8 : stop]).digest())
        oh = outer()
        oh.update(ih.digest())
        mac = mm[stop : stop + 16]
        if not same(oh.digest()[:16], mac):
            raise _Bad
        out += mac
        count += 1
        off = stop + 16
    return bytes(out), count, first, last


def _release(mm: mmap.mmap, done: int, off: int) -> int:
    """Drop the pages of ``[done, off)`` from this process (not from the page cache)."""
    upto = off - off % mmap.PAGESIZE
    mm.madvise(mmap.MADV_DONTNEED, done, upto - done)
    return upto


def _half(path: str, off: int, end: int) -> tuple[bytes, int, int, int] | None:
    """The forked process's half (None: something is wrong in it)."""
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _check_range(mm, off, end, _KEY)
    except (_Bad, ValueError, struct.error, OSError):
        return None


def _init(key: bytes) -> None:
    global _KEY
    _KEY = key


#: The share of the records' bytes the main process checks: it also walks its share's length
#: fields (~0.6 µs per record against ~6 µs to check one), so a little less than half.
_MAIN_SHARE = (10, 21)


def _split_point(mm: mmap.mmap, off: int, end: int) -> int:
    """The offset of the first frame at or past :data:`_MAIN_SHARE` of ``[off, end)``."""
    target = off + (end - off) * _MAIN_SHARE[0] // _MAIN_SHARE[1]
    unpack = ct._FRAME.unpack_from
    done = off - off % mmap.PAGESIZE
    while off < target:
        if off - done >= _RELEASE:
            done = _release(mm, done, off)
        length, _line = unpack(mm, off)
        if length > _LIMIT:
            raise _Bad
        off += 24 + length
    if off > end:
        raise _Bad
    return off


def verify(path: str | os.PathLike[str], store: KeyStore, workers: int = 2) -> ct.VerifyResult:
    """:func:`cardperso.prep.container.verify`, with the records checked by *workers* (1 or 2)
    processes; the same result and, for a bad file, the same error."""
    size = os.path.getsize(path)
    if workers < 2 or size < MIN_SPLIT_BYTES:
        return ct.verify(path, store)
    try:
        got = _verify_split(os.fspath(path), store, size)
    except (_Bad, ValueError, struct.error):
        got = None
    return got if got is not None else ct.verify(path, store)


def _verify_split(path: str, store: KeyStore, size: int) -> ct.VerifyResult | None:
    with open(path, "rb") as fh:
        header, raw = ct.read_header(fh)
        ct._check_kek(store, header)
        bkeys = ct.batch_keys(
            store, header.kek_name, header.batch_id, header.profile_digest, header.input_digest
        )
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            tpos = size - pf.TRAILER_SIZE
            if tpos < len(raw) or mm[tpos : tpos + 4] != pf.TRAILER_MAGIC:
                return None
            split = _split_point(mm, len(raw), tpos)
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(1, initializer=_init, initargs=(bkeys.mac,)) as pool:
                second = pool.apply_async(_half, (path, split, tpos))
                try:
                    macs1, n1, _first1, last1 = _check_range(mm, len(raw), split, bkeys.mac)
                finally:
                    rest = second.get()
            trailer = mm[tpos:size]
    if rest is None:
        return None
    macs2, n2, first2, _last2 = rest
    count = n1 + n2
    if n1 and n2 and first2 <= last1:
        return None
    stated = int.from_bytes(trailer[4:8], "big")
    if stated != count or header.record_count != count:
        return None
    digest = hashlib.sha256(macs1)
    digest.update(macs2)
    if not hmac.compare_digest(ct._file_mac(bkeys.mac, raw, digest.digest(), count), trailer[8:]):
        return None
    ct._VERIFIED[(os.path.realpath(path), hashlib.sha256(raw).digest())] = bkeys
    return ct.VerifyResult(header, count, size)
