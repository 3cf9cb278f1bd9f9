"""Batch data preparation: input records in, a protected personalization file out.

How this works
--------------
::

    main process (prepares too)        forked processes (--workers N: N-1 of them)
    ------------                       ----------------------------------------------------
    read pieces of whole lines  ─────▶ parse into columns, validate with array masks
    (chunks of 1,000)                  (prep.cards), derive the chunk's keys (1 store call per
                                       master key), fill the compiled templates (prep.build),
                                       seal (one AES call), frame + record MACs
    in input order:            ◀────── framed records (in a segment file), MACs, fingerprints,
      duplicates (ssn, card_no, PAN: first occurrence wins),            rejects
      copy the kept frames in (copy_file_range); rejects file; totals

The forked processes always have chunks queued (one each at first, up to four when they run
dry) and the main process takes every other chunk itself, so neither waits while there is work
(:func:`_run_chunks`). At most ``6 * workers - 2`` chunks are in flight, so memory does not grow
with the batch. The output
depends only on the input, the profile, the keys and the options: the worker count and the
chunk size change nothing in the file.

A forked process writes its chunk's framed records to a segment file of its own (a private
temporary directory beside the output, removed with it) and sends back only their offsets, MACs
and fingerprints: the records never go through a pipe, and the main process copies them into
the output in the kernel (:meth:`PersoWriter.add_segment`). Pickling them both ways cost the
main process ~2.7 µs of CPU per card with 2 workers (docs/prep.md, "Two processes").
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import shutil
import signal
import struct
import tempfile
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardperso.codec.columns import Var, assemble, be_uint
from cardperso.errors import DataError, UsageError
from cardperso.keystore import KeyStore
from cardperso.layouts import persofile as pf
from cardperso.prep.build import SSSE_PIN_DGI, ChunkBuilder, refused_rows, ssse_key_dgi
from cardperso.prep.cards import Cards, ColumnChecker, RejectRow
from cardperso.prep.container import BatchKeys, PersoWriter, RecordMacs, batch_keys, seal_chunk
from cardperso.prep.dedup import FingerprintSet, card_no_fp, fingerprints, pan_fp, ssn_fp
from cardperso.prep.input import Chunk, open_input, parse_columns
from cardperso.prep.keys import ChunkKeys
from cardperso.prep.oda_run import SECRET_DGIS, OdaRun, count_lines, plan_run
from cardperso.prep.rejects import RejectsWriter
from cardperso.prep.runtime import batch_settings
from cardperso.prep.validate import Validator
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

#: The stages of a chunk whose time :attr:`Preparer.stage_seconds` adds up (bench_prep.py).
STAGES = ("parse", "validate", "photos", "derive", "wrap", "encode", "seal", "frame", "MAC")

_BODY_HEAD = struct.Struct(">B9s18s8sI")  # flags, card number, masked ssn, nonce, length


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
    #: The ICC key pool of a profile with ODA (``pboc.oda``: :mod:`cardperso.prep.oda_run`).
    icc_pool: str | None = None

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
    ends: list[int]  # end offset of each frame in *frames*
    macs: bytes  # the 16-byte MAC of each frame, concatenated
    fps: array[int]  # 3 per record: ssn, card_no, pan (0 = none)
    lines: list[int]
    rejects: list[RejectRow]  # line, field, reason, masked ssn, end line
    segment: str = ""  # a forked worker's file holding *frames* (then ``b""`` here)


class Preparer:
    """Everything a worker needs for one profile and key store: compiled once per process."""

    def __init__(
        self,
        profile: Profile,
        store: KeyStore | None,
        base_dir: str,
        pin_seed: bytes,
        batch: BatchKeys | None = None,
        oda: OdaRun | None = None,
    ) -> None:
        self.profile = profile
        self.batch = batch
        self.validator = Validator(profile, base_dir)
        self.checker = ColumnChecker(self.validator)
        self.builder = ChunkBuilder(profile)
        if oda is not None and store is not None:
            self.builder.extra_pboc = oda.stage(profile, store)
        self.keys = ChunkKeys(store, profile, pin_seed) if store is not None else None
        self.macs = RecordMacs(batch.mac) if batch is not None else None
        self.flags = bytes((1 if profile.pboc is not None else 0,))
        self.stage_seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    def validate_chunk(self, chunk: Chunk) -> tuple[Cards, list[RejectRow], int]:
        """The chunk's good records as typed columns, its rejects, and its record count."""
        t0 = time.process_time()
        parsed = parse_columns(chunk)
        t1 = time.process_time()
        photos = self.checker.photo_seconds
        cards, bad = self.checker.check(parsed.columns, parsed.lines, parsed.record)
        photos = self.checker.photo_seconds - photos
        self.stage_seconds["parse"] += t1 - t0
        self.stage_seconds["validate"] += time.process_time() - t1 - photos
        self.stage_seconds["photos"] += photos
        return cards, parsed.rejects + bad, parsed.read

    def process(self, chunk: Chunk) -> ChunkResult:
        cards, bad, read = self.validate_chunk(chunk)
        assert self.keys is not None and self.batch is not None and self.macs is not None
        clock = time.process_time  # CPU time of this process: the machine may be shared
        stage = self.stage_seconds
        t0 = clock()
        wrap = self.keys.wrap_seconds
        keys = self.keys.derive(cards)
        t1 = clock()
        wrap = self.keys.wrap_seconds - wrap
        built = self.builder.build(cards, keys)
        content, size = built.content, built.sizes
        lines = cards.lines
        fps = fingerprints(cards, self.profile.pboc is not None)
        card_no, masked = cards.fixed["card_no"], cards.masked
        if built.refused:
            bad += refused_rows(cards, built.refused)
            keep = np.ones(cards.n, np.bool_)
            keep[[i for i, _f, _r in built.refused]] = False
            content = Var(content.data[np.repeat(keep, content.lengths)], content.lengths[keep])
            lines, fps, card_no, masked = lines[keep], fps[keep], card_no[keep], masked[keep]
            size = size[keep]
        t2 = clock()
        sealed = seal_chunk(self.batch, lines, content)
        t3 = clock()
        n = len(lines)
        heads = assemble(
            n, [self.flags, card_no, masked, be_uint(lines, 8), be_uint(size, 4)]
        ).data.tobytes()
        t4 = clock()
        padded = sealed.lengths
        starts = (np.cumsum(padded) - padded).tolist()
        line_list = lines.tolist()
        frames, ends, macs = self.macs.frame_chunk(
            line_list, heads, sealed.data, starts, size.tolist()
        )
        t5 = clock()
        bad.sort()
        stage["derive"] += t1 - t0 - wrap
        stage["wrap"] += wrap
        stage["encode"] += t2 - t1
        stage["seal"] += t3 - t2
        stage["frame"] += t4 - t3
        stage["MAC"] += t5 - t4
        return ChunkResult(
            chunk.index,
            read,
            frames,
            ends,
            macs,
            array("Q", fps.tobytes()),
            line_list,
            bad,
        )


# -- worker processes ------------------------------------------------------------------------

_WORKER: Preparer | None = None
#: A forked worker's directory for its chunks' segment files (None in the main process).
_SEGMENTS: str | None = None


def _init_worker(
    profile: Profile,
    opener: StoreOpener | None,
    base_dir: str,
    pin_seed: bytes,
    batch: BatchKeys | None = None,
    oda: OdaRun | None = None,
) -> None:
    global _WORKER
    store = opener() if opener is not None else None
    _WORKER = Preparer(profile, store, base_dir, pin_seed, batch, oda)


def _init_pool_worker(segments: str | None, *args: Any) -> None:
    """A forked worker: the default action for stop signals (the parent's handler, which
    unwinds prep and removes its temporary files, is not the worker's), then the preparer."""
    global _SEGMENTS
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    _SEGMENTS = segments
    _init_worker(*args)


def _work(chunk: Chunk) -> ChunkResult:
    assert _WORKER is not None
    res = _WORKER.process(chunk)
    if _SEGMENTS is not None and res.frames:
        path = os.path.join(_SEGMENTS, f"{chunk.index}.seg")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(res.frames)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        res.frames, res.segment = b"", path
    return res


def _validate_work(chunk: Chunk) -> tuple[int, list[tuple[int, str, str, str]], list[Any]]:
    assert _WORKER is not None
    cards, bad, read = _WORKER.validate_chunk(chunk)
    t = cards.text
    pans = t.get("pan") or [""] * cards.n
    slim = list(zip(cards.lines.tolist(), t["ssn"], t["card_no"], pans))
    return read, slim, bad


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
        oda_secret = SECRET_DGIS if profile.pboc.oda is not None else ()
        apps.append(pf.AppRef("pboc", profile.pboc.aid, (0x8000, 0x8010, *oda_secret)))
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


class _Done:
    """A chunk the main process prepared itself (in the queue beside the pool's results)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def ready(self) -> bool:
        return True

    def get(self) -> Any:
        return self.value


class _Pooled:
    """A chunk given to the forked workers (in the queue beside the main process's own)."""

    __slots__ = ("async_result",)

    def __init__(self, async_result: Any) -> None:
        self.async_result = async_result

    def ready(self) -> bool:
        return bool(self.async_result.ready())

    def get(self) -> Any:
        return self.async_result.get()


def _pool_sizes(workers: int) -> tuple[int, int, int]:
    """(chunks queued for the forked workers at the start, the most that are ever queued, the
    most chunks in flight) for *workers*.

    The queue starts at one chunk per forked worker and grows by one per worker, up to four,
    each time the main process finds the forked ones without a chunk waiting (they may have
    sat idle): slow chunks (prep with ODA, ~0.75 s per 1,000 cards) keep a short queue, so the
    main process takes its share of a batch of a few chunks; fast ones (~25 ms) need four, or
    a forked worker runs dry while the main process is busy with a chunk of its own, its
    duplicates and the output, and while the pool's threads, which hand chunks and results
    over, wait for the main thread's GIL. With two per worker and the main process holding
    back to the forked one's CPU time, the two processes of a 1M batch sat idle for ~4.2 s in
    all; with four, ~1.8 s, most of it the start-up and the end (docs/prep.md, "Third
    pass")."""
    forked = workers - 1
    return forked, 4 * forked, 4 * forked + 2 * workers + 2


def _run_chunks(
    worker_fn: Callable[[Chunk], Any],
    chunks: Any,
    workers: int,
    init_args: tuple[Any, ...],
    sink: Callable[[Any], None],
    local_args: tuple[Any, ...] | None = None,
    segments: str | None = None,
) -> None:
    """Run *worker_fn* over *chunks* and feed *sink* in input order, with *workers* processes
    preparing: ``workers - 1`` forked ones and the main one. The forked ones always have a few
    chunks queued (:func:`_pool_sizes`) and the main process takes every other chunk itself,
    so no process waits while there is work: the main one, which also reads the input, checks
    duplicates and writes the output, simply takes fewer chunks. Two processes use two CPUs,
    and the memory of a third process is not spent. At most ``limit`` chunks are in flight, so
    memory does not grow with the batch. *local_args* initialize the main process's preparer
    (default *init_args*); the forked ones write their output to segment files in *segments*
    (:func:`_work`) when it is given."""
    if workers <= 1:
        _init_worker(*(local_args or init_args))
        for chunk in chunks:
            sink(worker_fn(chunk))
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(
        workers - 1, initializer=_init_pool_worker, initargs=(segments, *init_args)
    ) as pool:
        _init_worker(*(local_args or init_args))  # after the fork: not in the workers' memory
        inflight: deque[_Pooled | _Done] = deque()
        queued, most, limit = _pool_sizes(workers)
        pooled = False  # whether a chunk went to the forked workers yet
        for chunk in chunks:
            while inflight and inflight[0].ready():
                sink(inflight.popleft().get())
            waiting = sum(1 for r in inflight if isinstance(r, _Pooled) and not r.ready())
            if waiting == 0 and pooled:  # the forked workers ran dry: a longer queue
                queued = min(most, queued + workers - 1)
            if waiting < queued:
                pooled = True
                inflight.append(_Pooled(pool.apply_async(worker_fn, (chunk,))))
            else:
                inflight.append(_Done(worker_fn(chunk)))
            while len(inflight) >= limit:
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
    # ODA: the ICC keys reserved, one per input line, before any output (prep.oda_run)
    first = src.header_line + 1
    oda = plan_run(
        profile, store, options.icc_pool, lines=lambda: count_lines(input_path) - first + 1,
        first_line=first, label=f"prep {options.batch_id}", opener=opener,
    )  # fmt: skip
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
        if res.segment:
            n = len(res.ends)
            if not drop:
                writer.add_segment(res.segment, [(0, res.ends[-1])], res.macs, n)
            else:
                starts = [0, *res.ends[:-1]]
                kept = [i for i in range(n) if i not in drop]
                ranges = [(starts[i], res.ends[i]) for i in kept]
                macs = b"".join(res.macs[16 * i : 16 * i + 16] for i in kept)
                writer.add_segment(res.segment, ranges, macs, len(kept))
                rej.sort()
            os.unlink(res.segment)
        elif not drop:
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
    init_args = (profile, opener, base_dir, pin_seed, bkeys, oda)
    local_args = (profile, lambda: store, base_dir, pin_seed, bkeys, oda)
    # From the creation of the output files to their commit, any failure or stop (SIGTERM
    # unwinds as an exception, see cardperso.cli.main.stop_on_signal) throws both away; signals
    # are held while they are created and committed, so none falls between two steps.
    opened: list[PersoWriter | RejectsWriter] = []
    segments: str | None = None
    try:
        with _signals_held():
            writer = PersoWriter(out_path, header, bkeys.mac)
            opened.append(writer)
            rejects = RejectsWriter(rejects_path)
            opened.append(rejects)
        if options.workers > 1:  # private (0700), beside the output: same file system;
            # hidden like the output's temporary (a SIGKILL leaves it: ``.NAME.*.segments``)
            out_dir, out_name = os.path.split(os.path.abspath(out_path))
            segments = tempfile.mkdtemp(".segments", f".{out_name}.", out_dir)
        with batch_settings():  # before the workers fork: they inherit it
            _run_chunks(
                _work,
                src.chunks(options.chunk_size),
                options.workers,
                init_args,
                sink,
                local_args,
                segments,
            )
        summary.prepared = writer.count
        # the rejects file first: a personalization file under its name means the batch is done
        with _signals_held():  # both files or neither
            rejects.close()
            writer.close(summary.read, summary.rejected)
    except BaseException:
        for output in opened:
            output.abort()
        raise
    finally:
        if segments is not None:
            shutil.rmtree(segments, ignore_errors=True)
        if oda is not None:
            oda.close()
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

    def sink(res: tuple[int, list[tuple[int, str, str, str]], list[Any]]) -> None:
        read, good, bad = res
        summary.read += read
        rej = list(bad)
        lines = [g[0] for g in good]
        fps = (
            [ssn_fp(g[1]) for g in good],
            [card_no_fp(g[2]) for g in good],
            [pan_fp(g[3]) if g[3] else 0 for g in good],
        )
        drop: dict[int, int] = {}
        for j, name in enumerate(("ssn", "card_no", "pan")):
            found = dup_sets[j].add_many(fps[j], lines, drop)
            for i, first in found.items():
                rej.append((lines[i], name, f"duplicate of line {first}", "", 0))
            drop |= found
        summary.prepared += len(good) - len(drop)
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
