"""Batch data preparation: input records in, a protected personalization file out.

How this works
--------------
::

    main process                      worker processes (or the main one with workers=1)
    ------------                      ----------------------------------------------------
    read lines, group records  ─────▶ parse CSV/JSONL, validate every rule,
    (chunks of 1,000)                 derive keys for the chunk (1 store call per master key),
                                      fill the precompiled DGI templates, hash each body
    in input order:           ◀───── bodies (one bytes blob), SHA-256s, fingerprints, rejects
      duplicates (ssn, card_no, PAN: first occurrence wins),
      sequence numbers, record MACs, write; rejects file; totals

At most ``workers + 2`` chunks are in flight, so memory does not grow with the batch. The
output depends only on the input, the profile, the keys and the options: the worker count and
the chunk size change nothing in the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import multiprocessing
import os
import signal
import struct
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardperso.codec import magstripe
from cardperso.codec.numbers import mask_id
from cardperso.errors import DataError, UsageError
from cardperso.keystore import KeyStore
from cardperso.layouts import persofile as pf
from cardperso.prep.container import BatchKeys, PersoWriter, batch_keys, seal_many
from cardperso.prep.dedup import FingerprintSet, card_no_fp, pan_fp, ssn_fp
from cardperso.prep.input import Chunk, open_input, parse_chunk
from cardperso.prep.keys import ChunkKeys
from cardperso.prep.rejects import RejectsWriter
from cardperso.prep.templates import SSSE_PIN_DGI, PbocTemplate, SsseTemplate, ssse_key_dgi
from cardperso.prep.validate import Reject, Validator
from cardperso.profiles.model import Profile

__all__ = [
    "MAX_WORKERS",
    "PrepOptions",
    "PrepSummary",
    "build_header",
    "check_workers",
    "prepare",
    "validate_only",
]

StoreOpener = Callable[[], KeyStore]

_BODY_HEAD = struct.Struct(">B9s18s8sI")
_FRAME = struct.Struct(">II")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


#: The most worker processes a batch may use (``--workers``), and the largest chunk.
MAX_WORKERS = 64
MAX_CHUNK_SIZE = 100_000


def check_workers(workers: int) -> None:
    """Refuse a worker count outside ``1..MAX_WORKERS`` (a usage error, nothing started)."""
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}, got {workers}")


@dataclass(frozen=True, slots=True)
class PrepOptions:
    """Options of one batch, checked when made: every value fits the personalization file's
    header (batch id, creation time) and the machine (workers, chunk size), so that nothing is
    created for a batch that could never be written."""

    batch_id: str
    created: int
    workers: int = 1
    chunk_size: int = 1000
    pin_seed: bytes | None = field(default=None, repr=False)
    input_format: str | None = None

    def __post_init__(self) -> None:
        pf.check_batch_id(self.batch_id)
        pf.check_created(self.created)
        check_workers(self.workers)
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise UsageError(f"--chunk-size must be between 1 and {MAX_CHUNK_SIZE}")


@dataclass(slots=True)
class PrepSummary:
    read: int = 0
    prepared: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    output: str = ""

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class ChunkResult:
    index: int
    read: int
    frames: bytes  # framed records: length ‖ line ‖ body ‖ MAC, in input order
    ends: array[int]  # end offset of each frame in *frames*
    macs: bytes  # the 16-byte MAC of each frame, concatenated
    fps: array[int]  # 3 per record: ssn, card_no, pan (0 = none)
    lines: array[int]
    rejects: list[tuple[int, str, str, str, int]]  # line, field, reason, masked ssn, end line


def _mask(ssn: Any) -> str:
    """The one masking rule (:func:`cardperso.codec.numbers.mask_id`); no SSN, no mask."""
    return mask_id(ssn) if isinstance(ssn, str) else ""


class Preparer:
    """Everything a worker needs for one profile and key store: compiled once per process."""

    def __init__(
        self,
        profile: Profile,
        store: KeyStore | None,
        base_dir: str,
        pin_seed: bytes,
        batch: BatchKeys | None = None,
    ) -> None:
        self.profile = profile
        self.batch = batch
        self.last_read = 0
        self.validator = Validator(profile, base_dir)
        self.ssse = SsseTemplate(profile)
        self.pboc = PbocTemplate(profile) if profile.pboc is not None else None
        self.keys = ChunkKeys(store, profile, pin_seed) if store is not None else None
        self.ssse_aid_head = bytes((len(profile.ssse.df_name),)) + profile.ssse.df_name
        self.pboc_aid_head = (
            bytes((len(profile.pboc.aid),)) + profile.pboc.aid if profile.pboc else b""
        )
        self.flags = 1 if profile.pboc is not None else 0
        self.napps = b"\x02" if profile.pboc is not None else b"\x01"
        self.face = tuple(f.src for f in profile.card_face)
        self._blank = ("",) * len(self.face)
        ms = profile.mag_stripe
        self.tracks = (ms.track1, ms.track2) if ms is not None else ()
        if profile.pboc is not None:
            self.service_code = profile.pboc.service_code
            self.disc = profile.pboc.track2_discretionary
            self.latin_default = profile.pboc.latin_name_default
        else:
            self.service_code = self.disc = self.latin_default = ""

    def validate_chunk(
        self, chunk: Chunk
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str, str, str, int]]]:
        good: list[tuple[int, dict[str, Any]]] = []
        bad: list[tuple[int, str, str, str, int]] = []
        check = self.validator.check
        self.last_read = 0
        for line, rec in parse_chunk(chunk):
            self.last_read += 1
            if isinstance(rec, Reject):
                bad.append((line, rec.field, rec.reason, "", rec.end_line))
                continue
            try:
                good.append((line, check(rec)))
            except Reject as rej:
                bad.append((line, rej.field, rej.reason, _mask(rec.get("ssn")), 0))
            except Exception as exc:
                bad.append((line, "(record)", f"internal error: {type(exc).__name__}", "", 0))
        return good, bad

    def _face_tracks(self, v: dict[str, Any]) -> tuple[bytes, bytes]:
        """Card-face values joined by 1F (UTF-8) and the three tracks, length-prefixed.

        Tracks 1 and 2 are ISO/IEC 7813 data from :mod:`cardperso.codec.magstripe`."""
        latin = (v.get("name_latin") or self.latin_default).upper()
        v["name_latin"] = latin
        get = v.get
        face = "\x1f".join(
            [
                x.hex().upper() if isinstance(x, bytes) else x
                for x in map(get, self.face, self._blank)
            ]
        ).encode("utf-8")
        if len(face) > 0xFFFF:
            raise Reject("(record)", "card-face data is too long")
        if self.pboc is None:
            return _U16.pack(len(face)) + face, b"\x00\x00\x00"
        try:
            t = magstripe.tracks(v["pan"], latin, v["expiry_yymm"], self.service_code, self.disc)
        except DataError as exc:
            raise Reject(exc.field or "(record)", f"magnetic stripe: {exc.reason}") from None
        v["track2_data"] = t.track2  # also the source of tag 57 (DGI 0101)
        if not self.tracks:
            return _U16.pack(len(face)) + face, b"\x00\x00\x00"
        t1 = t.track1.encode("ascii") if self.tracks[0] else b""
        t2 = t.track2.encode("ascii") if self.tracks[1] else b""
        return (
            _U16.pack(len(face)) + face,
            bytes((len(t1),)) + t1 + bytes((len(t2),)) + t2 + b"\x00",
        )

    def process(self, chunk: Chunk) -> ChunkResult:
        good, bad = self.validate_chunk(chunk)
        read = self.last_read
        assert self.keys is not None and self.batch is not None
        keys = self.keys.derive([v for _line, v in good])
        ssse_build, pboc = self.ssse.build, self.pboc
        pboc_dgis = pboc.dgis if pboc is not None else None
        u32 = _U32.pack
        napps = self.napps
        ssse_aid_head, pboc_aid_head = self.ssse_aid_head, self.pboc_aid_head
        contents: list[tuple[int, bytes]] = []
        kept: list[dict[str, Any]] = []
        for (line, v), k in zip(good, keys):
            try:
                sdgis = ssse_build(v, k.ssse_keys, k.pin)
                face, tracks = self._face_tracks(v)
                ssn = v["ssn"].encode()
                if pboc_dgis is not None:
                    pan = v["pan"].encode()
                    pdgis = pboc_dgis(v, k.pboc_mk, k.pboc_kcv, k.pin)
                    content = b"".join(
                        (
                            ssn,
                            bytes((len(pan),)),
                            pan,
                            v["card_id"],
                            napps,
                            ssse_aid_head,
                            u32(len(sdgis)),
                            sdgis,
                            pboc_aid_head,
                            u32(len(pdgis)),
                            pdgis,
                            face,
                            tracks,
                        )
                    )
                else:
                    content = b"".join(
                        (
                            ssn,
                            b"\x00",
                            v["card_id"],
                            napps,
                            ssse_aid_head,
                            u32(len(sdgis)),
                            sdgis,
                            face,
                            tracks,
                        )
                    )
            except Reject as rej:
                bad.append((line, rej.field, rej.reason, _mask(v.get("ssn")), 0))
                continue
            except Exception as exc:  # one record never stops the batch
                reason = f"cannot be encoded ({type(exc).__name__})"
                bad.append((line, "(record)", reason, _mask(v.get("ssn")), 0))
                continue
            contents.append((line, content))
            kept.append(v)
        sealed = seal_many(self.batch, contents)
        frames: list[bytes] = []
        ends = array("I")
        macs: list[bytes] = []
        fps = array("Q")
        lines = array("I")
        pos = 0
        sha = hashlib.sha256
        hmac_digest = hmac.digest
        key = self.batch.mac
        frame_head = _FRAME.pack
        body_head = _BODY_HEAD.pack
        flags = self.flags
        for (line, _content), (nonce, cipher), v in zip(contents, sealed, kept):
            card_no, ssn_s = v["card_no"], v["ssn"]
            body = body_head(flags, card_no.encode(), _mask(ssn_s).encode(), nonce, len(cipher))
            body += cipher
            head = frame_head(len(body), line)
            mac = hmac_digest(key, b"R" + head[4:] + sha(body).digest(), "sha256")[:16]
            frames += (head, body, mac)
            macs.append(mac)
            pos += len(body) + 24
            ends.append(pos)
            fps.append(int(ssn_s[:17]) + 1)
            fps.append(int(card_no[:8], 36) + 1)
            fps.append(pan_fp(v["pan"]) if pboc is not None else 0)
            lines.append(line)
        bad.sort()
        return ChunkResult(
            chunk.index, read, b"".join(frames), ends, b"".join(macs), fps, lines, bad
        )


# -- worker processes ------------------------------------------------------------------------

_WORKER: Preparer | None = None


def _init_worker(
    profile: Profile,
    opener: StoreOpener | None,
    base_dir: str,
    pin_seed: bytes,
    batch: BatchKeys | None = None,
) -> None:
    global _WORKER
    store = opener() if opener is not None else None
    _WORKER = Preparer(profile, store, base_dir, pin_seed, batch)


def _init_pool_worker(*args: Any) -> None:
    """A forked worker: the default action for stop signals (the parent's handler, which
    unwinds prep and removes its temporary files, is not the worker's), then the preparer."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    _init_worker(*args)


def _work(chunk: Chunk) -> ChunkResult:
    assert _WORKER is not None
    return _WORKER.process(chunk)


def _validate_work(chunk: Chunk) -> tuple[int, list[tuple[int, dict[str, Any]]], list[Any]]:
    assert _WORKER is not None
    good, bad = _WORKER.validate_chunk(chunk)
    slim = [
        (line, {"ssn": v["ssn"], "card_no": v["card_no"], "pan": v.get("pan", "")})
        for line, v in good
    ]
    return _WORKER.last_read, slim, bad


# -- the batch ---------------------------------------------------------------------------------


def build_header(
    profile: Profile,
    store: KeyStore,
    batch_id: str,
    created: int,
    pin_seed_wrapped: bytes,
    input_digest: bytes = bytes(32),
) -> pf.PersoHeader:
    kek = store.info(profile.transport_kek)
    keys = tuple(
        pf.KeyRef(n, store.info(n).algorithm, store.info(n).kcv) for n in profile.master_key_names()
    )
    ssse_secret = (*(ssse_key_dgi(k.id) for k in profile.ssse.keys), SSSE_PIN_DGI)
    apps = [pf.AppRef("ssse", profile.ssse.df_name, ssse_secret)]
    if profile.pboc is not None:
        apps.append(pf.AppRef("pboc", profile.pboc.aid, (0x8000, 0x8010)))
    return pf.PersoHeader(
        version=pf.FORMAT_VERSION,
        record_count=0,
        read_count=0,
        rejected_count=0,
        created=created,
        batch_id=batch_id,
        profile=profile.name,
        profile_digest=profile.digest,
        input_digest=input_digest,
        kek_name=profile.transport_kek,
        kek_algorithm=kek.algorithm,
        kek_kcv=kek.kcv,
        mac_scheme=pf.MAC_SCHEME,
        pin_seed=pin_seed_wrapped,
        keys=keys,
        apps=tuple(apps),
        face_fields=tuple(f.name for f in profile.card_face),
    )


def _required_columns(profile: Profile, fmt: str) -> frozenset[str]:
    if fmt == "jsonl":
        return frozenset()
    return Validator(profile).required


def _run_chunks(
    worker_fn: Callable[[Chunk], Any],
    chunks: Any,
    workers: int,
    init_args: tuple[Any, ...],
    sink: Callable[[Any], None],
) -> None:
    """Run *worker_fn* over *chunks* in order (bounded in flight) and feed *sink* in order."""
    if workers <= 1:
        _init_worker(*init_args)
        for chunk in chunks:
            sink(worker_fn(chunk))
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init_pool_worker, initargs=init_args) as pool:
        inflight: deque[Any] = deque()
        limit = workers + 2
        for chunk in chunks:
            inflight.append(pool.apply_async(worker_fn, (chunk,)))
            if len(inflight) >= limit:
                sink(inflight.popleft().get())
        while inflight:
            sink(inflight.popleft().get())


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGHUP and SIGINT while output files are created or committed: a stop
    then takes effect right after the block, never between two steps that go together."""
    held = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def prepare(
    input_path: str | os.PathLike[str],
    profile: Profile,
    store: KeyStore,
    opener: StoreOpener,
    out_path: str | os.PathLike[str],
    rejects_path: str | os.PathLike[str],
    options: PrepOptions,
    progress: Callable[[int], None] | None = None,
) -> PrepSummary:
    """Prepare a batch (see the module docstring); returns the totals. The personalization
    file and the rejects file appear under their names only when the whole batch is done
    (rejects first, then the personalization file); on any failure neither is left."""
    started = time.perf_counter()
    src = open_input(input_path, options.input_format)
    required = _required_columns(profile, src.fmt)
    missing = sorted(required - set(src.columns)) if src.fmt == "csv" else []
    if missing:
        raise DataError(
            f"required column(s) missing: {', '.join(missing)}", field="header", record=1
        )
    kek = profile.transport_kek
    digest = hashlib.sha256()
    with open(input_path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    input_digest = digest.digest()
    bkeys = batch_keys(store, kek, options.batch_id, profile.digest, input_digest)
    pin_seed = options.pin_seed if options.pin_seed is not None else bkeys.pin_seed
    seed_wrapped = store.wrap(kek, pin_seed, pad=True)
    header = build_header(
        profile, store, options.batch_id, options.created, seed_wrapped, input_digest
    )
    # fail on missing keys before touching the input
    ChunkKeys(store, profile, pin_seed)
    summary = PrepSummary(output=os.fspath(out_path))
    # size the duplicate tables for the whole file up front (no growth spikes): a record is
    # at least ~130 bytes of CSV, so this over-estimates the count a little
    estimate = os.path.getsize(input_path) // 130
    capacity = max(1 << 16, int(estimate / 0.65))
    # allocated at the first result, after the worker processes forked (not in their memory)
    dup_sets: list[FingerprintSet] = []
    ntables = 3 if profile.pboc else 2
    dup_names = ("ssn", "card_no", "pan")

    def sink(res: ChunkResult) -> None:
        summary.read += res.read
        rej = list(res.rejects)
        fps, lines = res.fps, res.lines
        drop: dict[int, int] = {}
        if not dup_sets:
            dup_sets.extend(FingerprintSet(capacity) for _ in range(ntables))
        for j, table in enumerate(dup_sets):
            found = table.add_many(fps[j::3], lines, drop)
            for i, first in found.items():
                rej.append((lines[i], dup_names[j], f"duplicate of line {first}", "", 0))
            drop |= found
        if not drop:
            writer.add_frames(res.frames, res.macs, len(res.ends))
        else:
            start = 0
            for i, end in enumerate(res.ends):
                if i not in drop:
                    writer.add_frames(res.frames[start:end], res.macs[16 * i : 16 * i + 16], 1)
                start = end
            rej.sort()
        for line, fld, reason, masked, end in rej:
            rejects.add(line, fld, reason, masked, end)
            summary.reasons[fld] += 1
        summary.rejected += len(rej)
        if progress is not None:
            progress(res.read)

    base_dir = str(Path(os.fspath(input_path)).resolve().parent)
    init_args = (
        profile,
        opener if options.workers > 1 else (lambda: store),
        base_dir,
        pin_seed,
        bkeys,
    )
    # From the creation of the output files to their commit, any failure or stop (SIGTERM
    # unwinds as an exception, see cardperso.cli.main.stop_on_signal) throws both away; signals
    # are held while they are created and committed, so none falls between two steps.
    opened: list[PersoWriter | RejectsWriter] = []
    try:
        with _signals_held():
            writer = PersoWriter(out_path, header, bkeys.mac)
            opened.append(writer)
            rejects = RejectsWriter(rejects_path)
            opened.append(rejects)
        _run_chunks(_work, src.chunks(options.chunk_size), options.workers, init_args, sink)
        summary.prepared = writer.count
        # the rejects file first: a personalization file under its name means the batch is done
        with _signals_held():  # both files or neither
            rejects.close()
            writer.close(summary.read, summary.rejected)
    except BaseException:
        for output in opened:
            output.abort()
        raise
    summary.seconds = time.perf_counter() - started
    if summary.read != summary.prepared + summary.rejected:  # pragma: no cover - invariant
        raise UsageError("internal error: read != prepared + rejected")
    return summary


def validate_only(
    input_path: str | os.PathLike[str],
    profile: Profile,
    rejects_path: str | os.PathLike[str] | None,
    *,
    workers: int = 1,
    chunk_size: int = 1000,
    input_format: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> PrepSummary:
    """Check a batch without keys and without preparing it (same rules, same rejects)."""
    check_workers(workers)
    started = time.perf_counter()
    src = open_input(input_path, input_format)
    required = _required_columns(profile, src.fmt)
    missing = sorted(required - set(src.columns)) if src.fmt == "csv" else []
    if missing:
        raise DataError(
            f"required column(s) missing: {', '.join(missing)}", field="header", record=1
        )
    rejects: RejectsWriter | None = None  # opened just before the run (see prepare)
    summary = PrepSummary()
    dup_sets = (FingerprintSet(), FingerprintSet(), FingerprintSet())

    def sink(res: tuple[int, list[tuple[int, dict[str, Any]]], list[Any]]) -> None:
        read, good, bad = res
        summary.read += read
        rej = list(bad)
        for line, v in good:
            pan = v["pan"]
            for j, (name, fp) in enumerate(
                (
                    ("ssn", ssn_fp(v["ssn"])),
                    ("card_no", card_no_fp(v["card_no"])),
                    ("pan", pan_fp(pan) if pan else 0),
                )
            ):
                if fp:
                    first = dup_sets[j].add(fp, line)
                    if first:
                        rej.append((line, name, f"duplicate of line {first}", "", 0))
                        break
            else:
                summary.prepared += 1
        rej.sort()
        for line, fld, reason, masked, end in rej:
            if rejects is not None:
                rejects.add(line, fld, reason, masked, end)
            summary.reasons[fld] += 1
        summary.rejected += len(rej)
        if progress is not None:
            progress(read)

    base_dir = str(Path(os.fspath(input_path)).resolve().parent)
    init_args = (profile, None, base_dir, b"")
    try:
        with _signals_held():  # a stop while the file is created must not orphan it
            rejects = RejectsWriter(rejects_path) if rejects_path else None
        _run_chunks(_validate_work, src.chunks(chunk_size), workers, init_args, sink)
    except BaseException:
        if rejects is not None:
            rejects.abort()
        raise
    if rejects is not None:
        rejects.close()
    summary.seconds = time.perf_counter() - started
    return summary
