"""Write, verify and read personalization files (layout: :mod:`cardperso.layouts.persofile`).

How this works
--------------
* :func:`file_key` derives the batch's MAC key from the transport KEK through the key store
  (one ``wrap`` of a label naming the batch id and the profile digest), so only a holder of the
  KEK can make or check a file, and files of other batches or profiles never verify.
* :class:`PersoWriter` writes the header (record count patched when the file is closed),
  then records framed as ``length ‖ line ‖ body ‖ MAC`` and the trailer with the file MAC.
  The worker processes frame and MAC the records themselves (the MAC binds the record's input
  line number, which only grows through a file), so the writer only appends bytes and hashes
  the 16-byte MACs into the file MAC.
* :func:`verify` streams the file and refuses it on the first problem: bad magic or version,
  KEK check value that differs from the store's, a record MAC that fails (tampering, mixing),
  a line number that does not grow (reordering), a missing trailer or wrong counts
  (truncation), trailing bytes, a file MAC that fails. Nothing is handed to a station before
  the whole file verified (:func:`read_verified`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

import numpy as np
from numpy.typing import NDArray

from cardperso.codec.columns import Var, assemble, var_of
from cardperso.crypto import ecb_encrypt
from cardperso.errors import DecodeError, KeyStoreError, MacMismatch, UsageError
from cardperso.keystore import KeyStore
from cardperso.layouts import persofile as pf
from cardperso.outputs import AtomicFile

__all__ = [
    "BatchKeys",
    "PersoWriter",
    "RecordMacs",
    "VerifyResult",
    "batch_keys",
    "file_key",
    "iter_records",
    "iter_sealed",
    "open_body",
    "read_header",
    "record_mac",
    "seal_chunk",
    "seal_many",
    "verify",
]

_LABEL = b"cardperso-persofile/1"
_SEQ = struct.Struct(">I")
_FRAME = struct.Struct(">II")


def _label(batch_id: str, profile_digest: bytes) -> bytes:
    bid = batch_id.encode("utf-8")
    return hashlib.sha256(_LABEL + bytes((len(bid),)) + bid + profile_digest).digest()


@dataclass(frozen=True, slots=True)
class BatchKeys:
    """The keys of one batch's file, derived from the transport KEK (never in ``repr``)."""

    mac: bytes = field(repr=False)
    pin_seed: bytes = field(repr=False)
    content: bytes = field(repr=False)  # AES-128 key of the sealed record contents


def batch_keys(
    store: KeyStore, kek: str, batch_id: str, profile_digest: bytes, input_digest: bytes = b""
) -> BatchKeys:
    """All keys of a batch from one ``wrap`` under the KEK (see the layout's docstring). The
    content key also depends on the input file's digest, so that record nonces (input line
    numbers) never repeat under one key."""
    x = store.wrap(kek, _label(batch_id, profile_digest))
    sha = hashlib.sha256
    return BatchKeys(
        sha(b"mac" + x).digest(),
        sha(b"pin" + x).digest(),
        sha(b"enc" + x + input_digest).digest()[:16],
    )


def file_key(
    store: KeyStore, kek: str, batch_id: str, profile_digest: bytes
) -> tuple[bytes, bytes]:
    """(MAC key, default PIN seed) of a batch, derived from the KEK."""
    keys = batch_keys(store, kek, batch_id, profile_digest)
    return keys.mac, keys.pin_seed


_CTR_TABLE = b"".join(j.to_bytes(8, "big") for j in range(4096))
#: Records sealed per AES call: the temporaries stay a few MB whatever the chunk size.
_SEAL_GROUP = 4096


def _counters(n: int) -> bytes:
    if n <= 4096:
        return _CTR_TABLE[: 8 * n]
    return b"".join(j.to_bytes(8, "big") for j in range(n))


def seal_chunk(keys: BatchKeys, lines: NDArray[np.int64], content: Var) -> Var:
    """Encrypt the record contents of a chunk at once (one AES-ECB call per group of records).

    AES-CTR with the counter block ``nonce ‖ block number`` (64-bit, from 0); the nonce is the
    record's input line (unique in a file; the content key is unique per input file), so the
    output is deterministic. Returns each ciphertext with the keystream of its last block
    whole (padded to 16 bytes): the first ``len(content)`` bytes of each are the ciphertext
    (:class:`cardperso.codec.columns.Cut` takes them when the records are framed)."""
    n = len(lines)
    if n > _SEAL_GROUP:
        parts = []
        starts = np.concatenate(([0], np.cumsum(content.lengths)))
        for a in range(0, n, _SEAL_GROUP):
            b = min(n, a + _SEAL_GROUP)
            sub = Var(content.data[starts[a] : starts[b]], content.lengths[a:b])
            parts.append(seal_chunk(keys, lines[a:b], sub).data)
        # each group's ciphertexts are padded to whole blocks, as below
        return Var(np.concatenate(parts), ((content.lengths + 15) >> 4) << 4)
    if n == 0:
        return content
    blocks = (content.lengths + 15) >> 4
    pad = (blocks << 4) - content.lengths
    if pad.any():
        padded = assemble(n, [content, Var(np.zeros(int(pad.sum()), np.uint8), pad)])
    else:  # already whole blocks (the chunk builder pads)
        padded = content
    total = int(blocks.sum())
    counter = np.empty((total, 2), ">u8")
    counter[:, 0] = np.repeat(np.asarray(lines, np.uint64), blocks)
    first = np.repeat(np.cumsum(blocks) - blocks, blocks)
    counter[:, 1] = np.arange(total) - first
    stream = np.frombuffer(ecb_encrypt("AES", keys.content, counter.tobytes()), np.uint8)
    return Var(padded.data ^ stream, blocks << 4)


def seal_many(keys: BatchKeys, items: list[tuple[int, bytes]]) -> list[tuple[bytes, bytes]]:
    """(nonce, ciphertext) for each (line, content): :func:`seal_chunk` for a list."""
    if not items:
        return []
    lines = np.array([line for line, _c in items], np.int64)
    sealed = seal_chunk(keys, lines, var_of([c for _l, c in items]))
    return [
        (line.to_bytes(8, "big"), c[: len(content)])
        for (line, content), c in zip(items, sealed.items())
    ]


def open_sealed(keys: BatchKeys, nonce: bytes, sealed: bytes) -> bytes:
    """Decrypt one record's sealed content (the inverse of :func:`seal_many`)."""
    n = (len(sealed) + 15) >> 4
    buf = bytearray(16 * n)
    q = memoryview(buf).cast("Q")
    q[0::2] = memoryview(nonce * n).cast("Q")
    q[1::2] = memoryview(_counters(n)).cast("Q")
    stream = ecb_encrypt("AES", keys.content, bytes(buf))[: len(sealed)]
    return (int.from_bytes(sealed, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        len(sealed), "little"
    )


def open_body(keys: BatchKeys, body: bytes) -> pf.PersoRecordBody:
    """Decode a record body and open its sealed content."""
    outer = pf.PERSO_RECORD_BODY.decode(body)
    content = pf.PERSO_RECORD_CONTENT.decode(open_sealed(keys, outer.nonce, outer.sealed))
    return pf.PersoRecordBody(
        outer.flags,
        outer.card_no,
        content.ssn,
        content.pan,
        content.card_id,
        content.apps,
        content.face,
        content.track1,
        content.track2,
        content.track3,
    )


class RecordMacs:
    """Record MACs ``HMAC-SHA-256(K, "R" ‖ line ‖ SHA-256(body))[:16]`` with the key's HMAC
    pads hashed once (RFC 2104), so a record costs two hash copies, not a new HMAC."""

    def __init__(self, key: bytes) -> None:
        k = hashlib.sha256(key).digest() if len(key) > 64 else key
        k = k.ljust(64, b"\0")
        self._inner = hashlib.sha256(k.translate(_IPAD))
        self._outer = hashlib.sha256(k.translate(_OPAD))

    def _of(self, seq: bytes, body_digest: bytes) -> bytes:
        i = self._inner.copy()
        i.update(b"R" + seq + body_digest)
        o = self._outer.copy()
        o.update(i.digest())
        return o.digest()[:16]

    def mac(self, line: int, body: bytes | memoryview) -> bytes:
        return self._of(_SEQ.pack(line), hashlib.sha256(body).digest())

    def frame_chunk(
        self, lines: Sequence[int], heads: bytes, sealed: NDArray[np.uint8], starts: Sequence[int],
        sizes: Sequence[int],
    ) -> tuple[bytes, list[int], bytes]:  # fmt: skip
        """The frames ``length ‖ line ‖ body ‖ MAC`` of a chunk's records (:func:`frame` for
        each), whose body is ``heads[i]`` (equal sizes, back to back) then ``sizes[i]`` bytes of
        *sealed* from ``starts[i]``; returns the frames, each frame's end offset, the MACs."""
        n = len(lines)
        hs = len(heads) // n if n else 0
        view = memoryview(sealed.data)
        sha = hashlib.sha256
        inner, outer = self._inner.copy, self._outer.copy
        size_arr = np.asarray(sizes, np.int64)
        fh = np.empty((n, 2), ">u4")  # length ‖ line of each frame
        fh[:, 0] = size_arr + hs
        fh[:, 1] = np.asarray(lines, np.int64)
        fheads = fh.tobytes()
        parts: list[bytes | memoryview] = []
        macs: list[bytes] = []
        for i, (start, size) in enumerate(zip(starts, sizes)):
            head = heads[i * hs : i * hs + hs]
            content = view[start : start + size]
            h = sha(head)
            h.update(content)
            frame_head = fheads[8 * i : 8 * i + 8]
            ih = inner()
            ih.update(b"R" + frame_head[4:] + h.digest())
            oh = outer()
            oh.update(ih.digest())
            mac = oh.digest()[:16]
            parts += (frame_head, head, content, mac)
            macs.append(mac)
        ends = np.cumsum(size_arr + (hs + 24)).tolist()
        return b"".join(parts), ends, b"".join(macs)


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def record_mac(key: bytes, line: int, body: bytes) -> bytes:
    """The 16-byte MAC of the record from input *line* with *body*."""
    return RecordMacs(key).mac(line, body)


def frame(key: bytes, line: int, body: bytes) -> bytes:
    """One framed record: ``length ‖ line ‖ body ‖ MAC``."""
    return _FRAME.pack(len(body), line) + body + record_mac(key, line, body)


def _file_mac(key: bytes, header: bytes, macs_digest: bytes, count: int) -> bytes:
    msg = b"F" + hashlib.sha256(header).digest() + macs_digest + _SEQ.pack(count)
    return hmac.digest(key, msg, "sha256")


class PersoWriter:
    """Streams a personalization file: header, records in order, trailer (see module doc).

    The file is written through :class:`cardperso.outputs.AtomicFile`: a hidden temporary
    file beside *path* that becomes *path* only in :meth:`close`. :meth:`abort` (any failure,
    SIGTERM) removes it; a process killed outright (SIGKILL, power loss) may leave only the
    hidden ``.NAME.*.part`` file, never a partial file under the final name. The header is
    encoded before anything is created, so a header that cannot be built leaves no file.
    """

    #: Framed records buffered in this process before they are written out.
    FLUSH_BYTES = 1 << 22

    def __init__(self, path: str | os.PathLike[str], header: pf.PersoHeader, key: bytes) -> None:
        self.path = os.fspath(path)
        self._key = key
        self._header = pf.PERSO_HEADER.encode(header)  # may raise: nothing created yet
        self._out = AtomicFile(self.path, binary=True)
        self._fh: IO[bytes] = self._out.fh
        try:
            self._fh.write(self._header)
        except BaseException:
            self._out.abort()
            raise
        self._macs = hashlib.sha256()
        self.count = 0
        self._pending: list[bytes] = []
        self._pending_size = 0

    def add_frames(self, frames: bytes, macs: bytes, count: int) -> None:
        """Append *count* framed records (see :func:`frame`) and their MACs, in input order."""
        self._macs.update(macs)
        self.count += count
        self._pending.append(frames)
        self._pending_size += len(frames)
        if self._pending_size > self.FLUSH_BYTES:
            self.flush()

    def add_segment(
        self, path: str, ranges: Sequence[tuple[int, int]], macs: bytes, count: int
    ) -> None:
        """Append *count* framed records, the bytes at *ranges* (``start, end`` offsets, in
        input order) of the file *path* (a worker's segment), and their MACs; the bytes are
        copied in the kernel (``copy_file_range``), never read into this process."""
        self.flush()
        self._fh.flush()
        out = self._fh.fileno()
        src = os.open(path, os.O_RDONLY)
        try:
            for start, end in _merged(ranges):
                while start < end:
                    try:
                        done = os.copy_file_range(src, out, end - start, start)
                    except OSError:  # no copy_file_range between these files: copy by hand
                        done = os.write(out, os.pread(src, min(end - start, 1 << 22), start))
                    if done <= 0:
                        raise OSError(f"segment {path} ends before byte {end}")
                    start += done
        finally:
            os.close(src)
        end = self._fh.seek(0, os.SEEK_END)  # the buffered file learns where the descriptor is
        self._out.write_behind(end)
        self._macs.update(macs)
        self.count += count

    def flush(self) -> None:
        if self._pending:
            self._fh.write(b"".join(self._pending))
            self._pending.clear()
            self._pending_size = 0
            self._fh.flush()
            self._out.write_behind(self._fh.tell())

    def close(self, read_count: int, rejected_count: int) -> None:
        """Write the trailer, patch the counts in the header and commit the file under its
        final name (fsync, rename, fsync of the directory). On failure nothing is left."""
        try:
            self.flush()
            head = bytearray(self._header)
            struct.pack_into(
                ">III", head, pf.RECORD_COUNT_OFFSET, self.count, read_count, rejected_count
            )
            mac = _file_mac(self._key, bytes(head), self._macs.digest(), self.count)
            self._fh.write(pf.TRAILER_MAGIC + _SEQ.pack(self.count) + mac)
            self._fh.seek(0)
            self._fh.write(head)
        except BaseException:
            self._out.abort()
            raise
        self._out.commit()

    def abort(self) -> None:
        """Throw the temporary file away; the final name keeps what it had (or nothing)."""
        self._out.abort()


def _merged(ranges: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Adjacent byte ranges joined (a chunk without duplicates is one copy)."""
    it = iter(ranges)
    first = next(it, None)
    if first is None:
        return
    start, end = first
    for a, b in it:
        if a == end:
            end = b
        else:
            yield start, end
            start, end = a, b
    yield start, end


def read_header(fh: IO[bytes]) -> tuple[pf.PersoHeader, bytes]:
    """Read and decode the header at the start of *fh*; returns (header, its bytes)."""
    fixed = fh.read(10)
    if len(fixed) < 10 or fixed[:4] != pf.MAGIC:
        raise DecodeError("not a cardperso personalization file (bad magic)", offset=0)
    version = int.from_bytes(fixed[4:6], "big")
    if version != pf.FORMAT_VERSION:
        raise DecodeError(f"unsupported personalization file version {version}", offset=4)
    rest_len = int.from_bytes(fixed[6:10], "big")
    if rest_len > 1 << 20:
        raise DecodeError("header length is implausible", offset=6)
    rest = fh.read(rest_len)
    if len(rest) != rest_len:
        raise DecodeError("file is truncated inside the header", offset=10 + len(rest))
    raw = fixed + rest
    return pf.PERSO_HEADER.decode(raw), raw


@dataclass(frozen=True, slots=True)
class VerifyResult:
    header: pf.PersoHeader
    records: int
    size: int


def _check_kek(store: KeyStore, header: pf.PersoHeader) -> None:
    info = store.info(header.kek_name)
    if not hmac.compare_digest(info.kcv, header.kek_kcv):
        raise KeyStoreError(
            f"the file was made under a different {header.kek_name!r} "
            f"(KCV {header.kek_kcv.hex().upper()}, this store has {info.kcv.hex().upper()})"
        )


def _records(fh: IO[bytes], start: int) -> Iterator[tuple[int, int, bytes, bytes]]:
    """Yield (line, offset, body, mac) per record; at the trailer yield
    (-1, offset, record count (4 bytes), file MAC) after checking nothing follows it."""
    pos = start
    buf = b""
    bufpos = 0
    chunk = 1 << 22

    def need(n: int) -> bytes | None:
        nonlocal buf, bufpos
        while len(buf) - bufpos < n:
            more = fh.read(max(chunk, n))
            if not more:
                return None
            buf = buf[bufpos:] + more
            bufpos = 0
        out = buf[bufpos : bufpos + n]
        bufpos += n
        return out

    while True:
        head = need(8)
        if head is None:
            raise DecodeError("file is truncated: no trailer", offset=pos)
        if head[:4] == pf.TRAILER_MAGIC:
            file_mac = need(32)
            if file_mac is None:
                raise DecodeError("file is truncated inside the trailer", offset=pos)
            extra = need(1)
            if extra is not None:
                raise DecodeError("unexpected bytes after the trailer", offset=pos + 40)
            yield (-1, pos, head[4:8], file_mac)
            return
        length, seq = _FRAME.unpack(head)
        if length > 1 << 24:
            raise DecodeError("record length is implausible (corrupt file)", offset=pos)
        rest = need(length + 16)
        if rest is None:
            raise DecodeError("file is truncated inside a record", offset=pos)
        yield (seq, pos, rest[:length], rest[length:])
        pos += 24 + length


def verify(path: str | os.PathLike[str], store: KeyStore) -> VerifyResult:
    """Check every MAC, the order, the counts and the end of the file; raise on the first
    problem (:class:`MacMismatch` or :class:`DecodeError`), else return what was checked."""
    with open(path, "rb") as fh:
        header, raw = read_header(fh)
        _check_kek(store, header)
        bkeys = batch_keys(
            store, header.kek_name, header.batch_id, header.profile_digest, header.input_digest
        )
        key = bkeys.mac
        macs = hashlib.sha256()
        count = 0
        last_line = -1
        sha = hashlib.sha256
        record_macs = RecordMacs(key)
        inner, outer = record_macs._inner.copy, record_macs._outer.copy
        same = hmac.compare_digest
        unpack = _FRAME.unpack_from
        block = 1 << 22
        base = len(raw)  # file offset of buf[0]
        buf = b""
        view = memoryview(buf)
        off = 0
        trailer = pf.TRAILER_MAGIC
        trailer_int = int.from_bytes(trailer, "big")
        size = 0
        while True:
            if off + 8 <= size:
                length, line = unpack(buf, off)
                if length == trailer_int:
                    need = 8
                elif length > (1 << 24) - 24:
                    raise DecodeError(
                        "record length is implausible (corrupt file)", offset=base + off
                    )
                else:
                    end = off + 8 + length
                    if end + 16 <= size:  # the common case: a whole record in the buffer
                        if line <= last_line:
                            raise DecodeError(
                                f"record {count} (input line {line}) comes after input line "
                                f"{last_line}: reordered or spliced file",
                                offset=base + off,
                            )
                        last_line = line
                        mac = view[end : end + 16]
                        ih = inner()
                        ih.update(b"R" + buf[off + 4 : off + 8] + sha(view[off + 8 : end]).digest())
                        oh = outer()
                        oh.update(ih.digest())
                        if not same(oh.digest()[:16], mac):
                            raise MacMismatch(
                                f"record {count} (input line {line}, offset {base + off}) MAC "
                                "does not verify"
                            )
                        macs.update(mac)
                        count += 1
                        off = end + 16
                        continue
                    need = 24 + length
            else:
                need = 8
            avail = size - off
            if avail < need:
                more = fh.read(block)
                if not more:
                    if avail < 8 or buf[off : off + 4] != trailer:
                        what = ": no trailer" if avail < 8 else " inside a record"
                        raise DecodeError(f"file is truncated{what}", offset=base + off)
                else:
                    base += off
                    buf = buf[off:] + more
                    view = memoryview(buf)
                    size = len(buf)
                    off = 0
                    continue
            pos = base + off
            tail = buf[off:] + fh.read()
            if len(tail) < pf.TRAILER_SIZE:
                raise DecodeError("file is truncated inside the trailer", offset=pos)
            if len(tail) > pf.TRAILER_SIZE:
                raise DecodeError("unexpected bytes after the trailer", offset=pos + 40)
            stated = int.from_bytes(tail[4:8], "big")
            if stated != count or header.record_count != count:
                raise DecodeError(
                    f"record count mismatch: header {header.record_count}, trailer "
                    f"{stated}, file {count} (truncated or spliced file)",
                    offset=pos,
                )
            want_file = _file_mac(key, raw, macs.digest(), count)
            if not same(want_file, tail[8:40]):
                raise MacMismatch("file MAC does not verify (tampered, truncated or mixed)")
            _VERIFIED[(os.path.realpath(path), hashlib.sha256(raw).digest())] = bkeys
            return VerifyResult(header, count, pos + pf.TRAILER_SIZE)


#: Batch keys of files that verified in this process, so that :func:`iter_records` can open
#: the records of a file just verified with a key store (the station's flow).
_VERIFIED: dict[tuple[str, bytes], BatchKeys] = {}


def _keys_for(path: str | os.PathLike[str], header_raw: bytes, store: KeyStore | None) -> BatchKeys:
    ident = (os.path.realpath(path), hashlib.sha256(header_raw).digest())
    if store is None:
        got = _VERIFIED.get(ident)
        if got is None:
            raise UsageError(
                "the records of a personalization file are encrypted: pass the key store "
                "(or verify the file with it first)"
            )
        return got
    header = pf.PERSO_HEADER.decode(header_raw)
    _check_kek(store, header)
    return batch_keys(
        store, header.kek_name, header.batch_id, header.profile_digest, header.input_digest
    )


def iter_sealed(path: str | os.PathLike[str]) -> Iterator[tuple[int, pf.PersoSealedBody]]:
    """(input line, body as stored) of every record: card number and masked identity number
    in clear, the rest sealed. No key needed, no MAC checked."""
    with open(path, "rb") as fh:
        _header, raw = read_header(fh)
        for line, _pos, body, _mac in _records(fh, len(raw)):
            if line < 0:
                return
            yield line, pf.PERSO_RECORD_BODY.decode(body)


def iter_records(
    path: str | os.PathLike[str], store: KeyStore | None = None
) -> Iterator[tuple[int, pf.PersoRecordBody]]:
    """(input line, opened body) of every record. Needs the key store holding the KEK, or a
    successful :func:`verify` of the file in this process. Call :func:`verify` first: this
    checks no MAC."""
    with open(path, "rb") as fh:
        _header, raw = read_header(fh)
        keys = _keys_for(path, raw, store)
        for line, _pos, body, _mac in _records(fh, len(raw)):
            if line < 0:
                return
            yield line, open_body(keys, body)
