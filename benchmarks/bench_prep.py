"""Data-preparation throughput, memory and time breakdown (issue 4, "Performance").

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_prep.py                      # 100k records, 1 and 2 workers
    .venv/bin/python benchmarks/bench_prep.py --count 1000000 --workers 2
    .venv/bin/python benchmarks/bench_prep.py --rss 10000,100000,1000000 --workers 2
    .venv/bin/python benchmarks/bench_prep.py --breakdown           # where a card's time goes

Each run is ``cardperso prep`` (CSV → perso file) then ``cardperso perso-file verify`` in child
processes, for the reference profile ``ssc3-pboc`` with the sample key store. Throughput is
records / wall seconds; "end to end" includes the verification. Peak RSS is the peak of the sum
of the RSS of the ``prep`` process tree (main process + workers), sampled every 20 ms from
/proc. Batches come from the synthetic generator (``cardperso examples make-batch``, 64 shared
photos) and are cached in ``--dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import benchenv

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
KEYS = ROOT / "keys-sample" / "keys.json"


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _ticks(pid: int) -> int:
    """User + system CPU clock ticks of *pid* (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


def _tree(pid: int) -> list[int]:
    """*pid* and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


#: How often the command's processes are sampled (RSS, CPU ticks), and every how many samples
#: their PSS too. The sampler shares the CPUs with what it measures: every 20 ms, with the PSS
#: each time, it took ~0.8 ms of CPU per sample with two 150 MB processes (~4 % of a CPU,
#: taken from the 2-worker run only, whose two processes keep both CPUs busy).
SAMPLE_SECONDS = 0.1
PSS_EVERY = 5
#: The sampler thread's CPU time of each command run (printed: what measuring cost).
SAMPLER_CPU: list[float] = []

#: A command whose processes use no CPU for this long is hung: it is killed and run again once.
HANG_SECONDS = 30.0


class Hung(Exception):
    pass


#: Where the commands' compiled modules are cached (set by main() under --dir).
PYCACHE: Path | None = None


def child_env() -> dict[str, str]:
    """The commands' environment: compiled modules cached under :data:`PYCACHE`, outside the
    tree, even where ``PYTHONDONTWRITEBYTECODE`` is set (as in the agents' shells): without a
    cache each command compiles its modules again, ~0.24 s of start-up that an installed
    cardperso (pip writes the .pyc files) does not spend."""
    env = dict(os.environ)
    if PYCACHE is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run_measured(cmd: list[str]) -> tuple[float, int, str, int, float, float]:
    """Run *cmd*; return (wall s, peak tree RSS kB, output, peak tree PSS kB, CPU s, CPU s of
    the busiest process). With every process busy, the busiest one's CPU time is the wall time
    on free CPUs: the scaling the work allows, whatever the machine's load.

    Raises :class:`Hung` (after killing the process tree) when no process of the tree used CPU
    for ``HANG_SECONDS``: ``cardperso prep -w 2`` was seen once to hang at the end of a batch."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env()
    )
    peak = peak_pss = 0
    done = threading.Event()
    hung: list[str] = []
    last: dict[int, int] = {}  # CPU ticks of each process at its last sample
    before = os.times()

    sampler_cpu = 0.0

    def sample() -> None:
        nonlocal peak, peak_pss, sampler_cpu
        seen: dict[int, int] = {}
        progress = time.monotonic()
        rounds = 0
        while not done.is_set():
            pids = _tree(proc.pid)
            peak = max(peak, sum(_rss_kb(p) for p in pids))
            if rounds % PSS_EVERY == 0:  # smaps_rollup walks the page tables: ~0.3 ms a process
                peak_pss = max(peak_pss, sum(_pss_kb(p) for p in pids))
            rounds += 1
            now = {p: _ticks(p) for p in pids}
            last.update((p, t) for p, t in now.items() if t)
            if now != seen:
                seen, progress = now, time.monotonic()
            elif time.monotonic() - progress > HANG_SECONDS:
                states = ", ".join(f"{p}: {_state(p)}" for p in pids)
                hung.append(f"no CPU used for {HANG_SECONDS:.0f} s by pids {states}")
                for p in reversed(pids):
                    with contextlib.suppress(OSError):
                        os.kill(p, signal.SIGKILL)
                return
            time.sleep(SAMPLE_SECONDS)
        sampler_cpu = time.thread_time()

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    done.set()
    t.join()
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    if hung:
        raise Hung(f"{hung[0]}: {' '.join(cmd)}")
    if proc.returncode not in (0, 1):
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    busiest = max(last.values(), default=0) / os.sysconf("SC_CLK_TCK")
    SAMPLER_CPU.append(sampler_cpu)
    return wall, peak, out, peak_pss, cpu, busiest


def _state(pid: int) -> str:
    """The process state and kernel wait channel of *pid*, for the hang report."""
    try:
        with open(f"/proc/{pid}/wchan") as fh:
            wchan = fh.read().strip()
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
    return f"{state} {wchan}"


def _generator_tag() -> str:
    """A digest of the synthetic generator's source: a cached batch made by other generator code
    is not reused."""
    from cardperso.prep import synth

    return hashlib.sha256(Path(synth.__file__).read_bytes()).hexdigest()[:12]


def batch(directory: Path, count: int) -> Path:
    path = directory / f"batch-{count}-{_generator_tag()}.csv"
    if not path.exists():
        print(f"generating {count} records in {path} ...", flush=True)
        from cardperso.prep.synth import make_batch

        make_batch(path, count, photos=64)
    return path


def distinct_photos_batch(directory: Path, count: int) -> Path:
    """The batch of :func:`batch` with a photo path of its own for every record: hard links
    (``photos-distinct-COUNT/NNNNNNN.jpg``) to the 64 photos, so every record's photo is opened,
    read and checked (the per-path cache never hits) while the disk holds 64 files and the page
    cache serves them. Made once and cached in *directory* (~10 s at 1M)."""
    base = batch(directory, count)
    path = directory / f"{base.stem}-distinct.csv"
    if path.exists():
        return path
    print(f"linking a photo per record for {path} ...", flush=True)
    links = directory / f"photos-distinct-{count}"
    links.mkdir(exist_ok=True)
    from cardperso.outputs import atomic_output

    with open(base, encoding="utf-8", newline="") as src, atomic_output(path) as out:
        header = src.readline()
        out.write(header)
        col = header.rstrip("\r\n").split(",").index("photo")
        for n, line in enumerate(src):
            cells = line.split(",")
            name = f"{links.name}/{n:07d}.jpg"
            if not (directory / name).exists():
                os.link(directory / cells[col], directory / name)
            cells[col] = name
            out.write(",".join(cells))
    return path


def bench(
    directory: Path, count: int, workers: int, profile: str, distinct: bool = False
) -> dict[str, Any]:
    src = distinct_photos_batch(directory, count) if distinct else batch(directory, count)
    out = directory / f"out-{count}-{workers}.cppf"
    rej = directory / f"rejects-{count}-{workers}.csv"
    cli = [PY, "-m", "cardperso"]
    prep_cmd = [*cli, "prep", str(src), "-p", profile, "-k", str(KEYS), "-o", str(out)]
    prep_cmd += ["-r", str(rej), "-w", str(workers), "--created", "2026-01-15T00:00:00Z"]
    try:
        wall, peak, text, pss, cpu, busy = run_measured(prep_cmd)
    except Hung as exc:
        print(f"HUNG, killed, running it again: {exc}", flush=True)
        wall, peak, text, pss, cpu, busy = run_measured(prep_cmd)
    sampler = SAMPLER_CPU[-1]
    vwall, vpeak, vtext, _vpss, vcpu, vbusy = run_measured(
        [*cli, "perso-file", "verify", str(out), "-k", str(KEYS)]
    )
    if "OK" not in vtext:
        raise SystemExit(vtext)
    size = out.stat().st_size
    digest = hashlib.sha256()
    with open(out, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    out.unlink()
    return {
        "count": count,
        "workers": workers,
        "prep_s": wall,
        "prep_rate": count / wall,
        "verify_s": vwall,
        "e2e_rate": count / (wall + vwall),
        "peak_rss_mb": peak / 1024,
        "peak_pss_mb": pss / 1024,
        "cpu_us_per_card": 1e6 * (cpu + vcpu) / count,
        "prep_cpu_us": 1e6 * cpu / count,
        "prep_busiest_us": 1e6 * busy / count,
        "sampler_cpu_s": sampler,
        "verify_busiest_rate": count / vbusy if vbusy else 0.0,
        "verify_cpu_us": 1e6 * vcpu / count,
        "verify_rss_mb": vpeak / 1024,
        "file_mb": size / 1e6,
        "verify_rate": count / vwall,
        "verify_cpu_rate": count / vcpu if vcpu else 0.0,
        "sha256": digest.hexdigest(),
        "summary": text.strip().splitlines()[0] if text.strip() else "",
    }


def report(r: dict[str, Any], rounds: int) -> None:
    """The three lines of one prep + verify run."""
    tag = f"  round {r['round']}" if rounds > 1 else ""
    print(
        f"{r['count']:>9} records  workers {r['workers']}{tag}  prep {r['prep_s']:7.2f} s "
        f"= {r['prep_rate']:8.0f}/s  verify {r['verify_s']:6.2f} s  end-to-end "
        f"{r['e2e_rate']:8.0f}/s  CPU {r['cpu_us_per_card']:5.1f} us/card (prep "
        f"{r['prep_cpu_us']:.1f} + verify {r['verify_cpu_us']:.1f})  peak RSS "
        f"{r['peak_rss_mb']:6.1f} MB (PSS {r['peak_pss_mb']:6.1f} MB, verify "
        f"{r['verify_rss_mb']:.1f} MB)  file {r['file_mb']:.0f} MB  load "
        f"{benchenv.load()}",
        flush=True,
    )
    print(
        f"{r['count']:>9} records  workers {r['workers']}{tag}  perso-file verify "
        f"{r['verify_rate']:8.0f} records/s wall, {r['verify_cpu_rate']:8.0f} per CPU "
        f"second, {r['verify_busiest_rate']:8.0f}/s by its busiest process's CPU time  "
        f"output sha256 {r['sha256'][:16]}",
        flush=True,
    )
    print(
        f"{r['count']:>9} records  workers {r['workers']}{tag}  prep CPU of the busiest "
        f"process {r['prep_busiest_us']:.1f} us/card (all processes "
        f"{r['prep_cpu_us']:.1f}): {1e6 / r['prep_busiest_us']:8.0f} cards/s on free CPUs; "
        f"the benchmark's sampler used {1e3 * r['sampler_cpu_s']:.0f} ms of CPU",
        flush=True,
    )


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over *rows* (the rounds of one worker count); the first row's
    other values."""
    out = dict(rows[0])
    for key, value in rows[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(float(r[key]) for r in rows)
    return out


def breakdown(directory: Path, profile_name: str, kek: str | None, chunks: int = 10) -> None:
    """Per-card CPU time of each stage, single process, on *chunks* chunks of 2,000 records (the
    worker's own clock per stage: parse, validate, photos, derive, wrap, encode, seal, frame,
    MAC), then the main process's duplicates and write (to a file in *directory*: the page
    cache, no fsync), timed apart; then what one distinct photo costs (the batch's photos read
    and checked again with the cache empty)."""
    from cardperso.keystore.software import SoftwareKeyStore
    from cardperso.prep.container import batch_keys
    from cardperso.prep.dedup import FingerprintSet
    from cardperso.prep.input import open_input
    from cardperso.prep.pipeline import Preparer
    from cardperso.prep.runtime import batch_settings
    from cardperso.profiles.loader import load_profile

    # as prepare() does: a chunk's arrays reuse the previous one's memory, fewer collections
    # (held in a local: a context left to the garbage collector sets everything back at once)
    settings = contextlib.ExitStack()
    settings.enter_context(batch_settings())
    src = batch(directory, 2000 * chunks)
    profile = load_profile(profile_name)
    if kek:
        profile = dataclasses.replace(profile, transport_kek=kek)
    store = SoftwareKeyStore.load(KEYS)
    bkeys = batch_keys(store, profile.transport_kek, "bench", profile.digest)
    prep = Preparer(profile, store, str(src.parent), b"\x00" * 32, bkeys)
    parts = list(open_input(src).chunks(2000))
    prep.process(parts[0])  # warm: photo cache, date cache
    prep.stage_seconds = dict.fromkeys(prep.stage_seconds, 0.0)
    results = []
    n = 0
    for chunk in parts:
        res = prep.process(chunk)
        n += res.read
        results.append(res)
    t = dict(prep.stage_seconds)
    tables = [FingerprintSet(1 << 17) for _ in range(3)]
    a = time.process_time()
    for res in results:
        drop: dict[int, int] = {}
        for j, table in enumerate(tables):
            drop |= table.add_many(res.fps[j::3], res.lines, drop)
    t["duplicates (main)"] = time.process_time() - a
    target = directory / "breakdown-write.bin"
    a = time.process_time()
    with open(target, "wb") as sink:
        for res in results:
            sink.write(res.frames)
    t["write (main)"] = time.process_time() - a
    target.unlink()
    total = sum(t.values())
    print(
        f"per-card time, 1 process, {n} records in chunks of 2,000 (profile {profile_name}, "
        f"transport KEK {profile.transport_kek}; photos read and checked, {len(parts)} chunks):"
    )
    for k, v in t.items():
        print(f"  {k:<20} {v / n * 1e6:6.1f} us  {100 * v / total:5.1f} %")
    print(f"  {'total':<20} {total / n * 1e6:6.1f} us")
    # a distinct photo per record: copies of the batch's photos under distinct names, read and
    # checked in chunks of 2,000 as prep does (threads for the reads), the cache empty
    shared = sorted({p for chunk in parts for p in _photo_paths(chunk)})
    copies = directory / "photos-distinct"
    copies.mkdir(exist_ok=True)
    names = []
    for i in range(2000 * 3):
        name = f"{i:05d}.jpg"
        if not (copies / name).exists():
            shutil.copyfile(directory / shared[i % len(shared)], copies / name)
        names.append(f"photos-distinct/{name}")
    validator = prep.validator
    for cache in ("page cache", "off the disk"):
        if cache == "off the disk":  # the kernel's caches dropped (root only)
            os.sync()
            try:
                Path("/proc/sys/vm/drop_caches").write_text("3\n")
            except OSError as exc:
                print(f"photos off the disk: not measured (dropping the caches: {exc.strerror})")
                break
        validator._photo_cache.clear()
        a = time.process_time()
        w = time.perf_counter()
        refused = 0
        for k in range(0, len(names), 2000):
            refused += sum(1 for v in validator.photo_verdicts(names[k : k + 2000]).values() if v)
        took, wall = time.process_time() - a, time.perf_counter() - w
        validator._photo_cache.clear()
        print(
            f"photos ({cache}): a distinct photo per record adds {took / len(names) * 1e6:.1f} "
            f"us of CPU per card ({wall / len(names) * 1e6:.1f} us wall; {len(names):,} copies "
            f"of the batch's {len(shared)} photos under distinct names, read and checked in "
            f"chunks of 2,000, {refused} refused; in the synthetic batches the photos repeat, "
            "so in the table above they are cache look-ups)"
        )


def _photo_paths(chunk: Any) -> list[str]:
    """The photo column of a chunk (prep's own column parser; empty cells left out)."""
    from cardperso.prep.input import parse_columns

    return [p for p in parse_columns(chunk).columns.get("photo", ()) if p]


def cprofile(directory: Path, profile_name: str, chunks: int = 10) -> None:
    """cProfile of the worker's per-chunk function (top functions by own time)."""
    import cProfile
    import pstats

    from cardperso.keystore.software import SoftwareKeyStore
    from cardperso.prep.container import batch_keys
    from cardperso.prep.input import open_input
    from cardperso.prep.pipeline import Preparer
    from cardperso.prep.runtime import batch_settings
    from cardperso.profiles.loader import load_profile

    settings = contextlib.ExitStack()
    settings.enter_context(batch_settings())
    src = batch(directory, 1000 * chunks)
    profile = load_profile(profile_name)
    store = SoftwareKeyStore.load(KEYS)
    bkeys = batch_keys(store, profile.transport_kek, "bench", profile.digest)
    prep = Preparer(profile, store, str(src.parent), b"\x00" * 32, bkeys)
    parts = list(open_input(src).chunks(1000))
    prep.process(parts[0])
    prof = cProfile.Profile()
    prof.enable()
    for chunk in parts:
        prep.process(chunk)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)


def variant_profile(directory: Path, profile_name: str, kek: str | None, no_oda: bool) -> Path:
    """A copy of a shipped profile with its ``transport_kek`` set to *kek* and/or without its
    offline data authentication (``pboc.oda``: one RSA signature per card from the issuer key
    and an ICC key pool as large as the batch; issue 13, measured by its own benchmark)."""
    import yaml

    data = yaml.safe_load((ROOT / "profiles" / f"{profile_name}.yaml").read_text("utf-8"))
    if kek:
        data["transport_kek"] = kek
    if no_oda and isinstance(data.get("pboc"), dict):
        data["pboc"].pop("oda", None)
        for dgi in data["pboc"].get("constant_dgis", []):
            for tlv in dgi.get("tlv", []):
                if str(tlv["tag"]).upper() == "82":  # AIP: no SDA (40), DDA (20), CDA (01)
                    v = str(tlv["value"])
                    tlv["value"] = f"{int(v[:2], 16) & ~0x61:02X}{v[2:]}"
    variant = directory / f"profile-{kek or 'kek'}{'-no-oda' if no_oda else ''}"
    variant.mkdir(exist_ok=True)
    path = variant / f"{profile_name}.yaml"  # the file is named after the profile
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def configuration(profile_name: str, kek: str | None, distinct: bool = False) -> str:
    """The profile, its transport KEK and that key's algorithm, the chunk size."""
    import json

    from cardperso.prep.pipeline import PrepOptions
    from cardperso.profiles.loader import load_profile

    kek = kek or load_profile(profile_name).transport_kek
    algorithm = json.loads(KEYS.read_text())["keys"][kek]["algorithm"]
    chunk = PrepOptions(batch_id="B", created=1_700_000_000).chunk_size
    return (
        f"profile {profile_name}, sample key store {KEYS.relative_to(ROOT)} (software), transport "
        f"KEK {kek} ({algorithm}), chunks of {chunk:,} records (the CLI default), synthetic "
        + (
            "records, each with a photo path of its own (hard links to 64 photos: every photo "
            "opened, read and checked, from the page cache)"
            if distinct
            else "records with 64 shared photos"
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--rss", default=None, help="comma-separated batch sizes for the RSS series")
    ap.add_argument("--profile", default="ssc3-pboc")
    ap.add_argument("--dir", default="/tmp/cardperso-bench")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the worker counts this many times, interleaved (1, 2, 1, 2, ...), and print "
        "the median of each figure and of the scaling: the CPUs' speed drifts between runs",
    )
    ap.add_argument(
        "--distinct-photos",
        action="store_true",
        help="end to end: every record with a photo path of its own (hard links to the 64 "
        "photos: each one opened, read and checked, from the page cache)",
    )
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument(
        "--kek",
        default=None,
        help="the transport KEK in place of the profile's (transport-kek-aes); end to end, a "
        "copy of the profile naming it is written to --dir",
    )
    ap.add_argument("--cprofile", action="store_true", help="cProfile of the worker function")
    ap.add_argument(
        "--naive",
        type=int,
        default=0,
        help="also run the straightforward per-card preparation (bench_prep_naive.py) on this "
        "many records of the same batch source, and print prep's ratio to it",
    )
    ap.add_argument(
        "--no-oda",
        action="store_true",
        help="end to end: the profile without its pboc.oda section (no ICC key pool needed)",
    )
    args = ap.parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    global PYCACHE
    PYCACHE = directory / "pycache"
    # compile every module into the cache once (--help loads them all), before any measurement
    subprocess.run(
        [PY, "-m", "cardperso", "--help"], env=child_env(), stdout=subprocess.DEVNULL, check=True
    )
    run = benchenv.start("bench_prep")
    print(
        f"configuration: {configuration(args.profile, args.kek, args.distinct_photos)}; the "
        "commands' compiled "
        f"modules cached in {PYCACHE}",
        flush=True,
    )
    if args.breakdown:
        breakdown(directory, args.profile, args.kek)
        run.end()
        return
    if args.cprofile:
        cprofile(directory, args.profile)
        run.end()
        return
    profile_arg = args.profile
    if args.kek or args.no_oda:
        profile_arg = str(variant_profile(directory, args.profile, args.kek, args.no_oda))
    counts = [int(x) for x in args.rss.split(",")] if args.rss else [args.count]
    workers = [int(x) for x in args.workers.split(",")]
    rates: dict[tuple[int, int], float] = {}
    digests: dict[tuple[int, int], str] = {}
    busiest: dict[tuple[int, int], float] = {}
    cpu_all: dict[tuple[int, int], float] = {}
    for count in counts:
        per_round: list[dict[int, dict[str, Any]]] = []
        for rnd in range(args.rounds):
            per_round.append({})
            for w in workers:
                one = bench(directory, count, w, profile_arg, args.distinct_photos)
                one["round"] = rnd + 1
                per_round[-1][w] = one
                report(one, args.rounds)
        for w in workers:
            rows = [each[w] for each in per_round]
            r = median_row(rows)
            if len(rows) > 1:
                print(
                    f"{count:>9} records  workers {w}  median of {len(rows)} rounds: prep "
                    f"{r['prep_rate']:8.0f} cards/s (rounds: "
                    + ", ".join(f"{x['prep_rate']:.0f}" for x in rows)
                    + f"), busiest process {r['prep_busiest_us']:.1f} us/card, all processes "
                    f"{r['prep_cpu_us']:.1f}, peak RSS {r['peak_rss_mb']:.1f} MB (highest "
                    f"{max(x['peak_rss_mb'] for x in rows):.1f}), verify "
                    f"{r['verify_rate']:.0f} records/s",
                    flush=True,
                )
            busiest[count, w] = r["prep_busiest_us"]
            cpu_all[count, w] = r["prep_cpu_us"]
            rates[count, w] = r["prep_rate"]
            digests[count, w] = str(r["sha256"])
        if len(workers) > 1:
            lo, hi = min(workers), max(workers)
            each_x = [rnd[hi]["prep_rate"] / rnd[lo]["prep_rate"] for rnd in per_round]
            every = {str(rnd[w]["sha256"]) for rnd in per_round for w in workers}
            detail = (
                f" (of the median rates; each round: {', '.join(f'x{x:.2f}' for x in each_x)})"
                if len(each_x) > 1
                else ""
            )
            print(
                f"{count:>9} records  scaling {lo} -> {hi} workers (prep): "
                f"x{rates[count, hi] / rates[count, lo]:.2f}{detail}; output identical across "
                f"worker counts and rounds: {len(every) == 1}",
                flush=True,
            )
            print(
                f"{count:>9} records  scaling {lo} -> {hi} workers allowed by CPU time (the "
                f"{lo}-worker CPU per card over the {hi}-worker busiest process's, load "
                f"independent): x{cpu_all[count, lo] / busiest[count, hi]:.2f}",
                flush=True,
            )
    if args.naive:
        from bench_prep_naive import run_naive

        src = batch(directory, args.naive)
        naive = run_naive(src, directory / "naive.perso", KEYS, profile_arg)
        best = max(rates.values()) if rates else 0.0
        print(
            f"naive per-card preparation: {naive:,.0f} cards/s ({args.naive:,} records, one "
            f"process, load {benchenv.load()}); prep's rate above (the best worker count's, "
            f"its median with --rounds) is x{best / naive:.1f} (target x10)",
            flush=True,
        )
    print(
        "targets (issue 14): prep >= 60,000 cards/s on 2 CPUs, 1 -> 2 workers >= x1.8, peak RSS "
        "< 300 MB at 1,000,000 records, perso-file verify >= 200,000 records/s"
    )
    run.end()


if __name__ == "__main__":
    main()
