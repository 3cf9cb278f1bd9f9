"""Registry and multi-line journal throughput (issue 7, "Benchmark").

Usage (from the repository root; PostgreSQL at CARDPERSO_TEST_PG or 127.0.0.1:5432/test)::

    .venv/bin/python benchmarks/bench_registry.py                  # claims 1/4/8 workers, import
    .venv/bin/python benchmarks/bench_registry.py --jobs 8000 --records 20000

* **Job claims per second**: W worker processes (1, 4, 8), each with its own connection, work
  one run of ``--jobs`` queued jobs in the line journal on PostgreSQL until none is left.
  "claim only" is :meth:`Journal.claim` alone (``SELECT … FOR UPDATE SKIP LOCKED`` + update +
  event, one transaction); "full job" is claim → chip_ok → printed (three transactions, what a
  station commits per card). Rate = jobs / wall seconds from a common start.
* **Registry import**: ``registry import`` of ``--records`` synthetic applications (the prep
  generator's records; validation included), on SQLite (a file, WAL, synchronous=FULL) and on
  PostgreSQL. Rate = records / wall seconds.

Every PostgreSQL measurement runs in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import benchenv  # noqa: E402

from cardperso.line.journal import JobSeed, Journal  # noqa: E402
from cardperso.storage.db import Database  # noqa: E402

PG = os.environ.get("CARDPERSO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _schema_url(name: str) -> str:
    return f"{PG}{'&' if '?' in PG else '?'}options=-csearch_path%3D{name}"


class Schema:
    def __init__(self) -> None:
        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        self.url = _schema_url(self.name)

    def __enter__(self) -> Schema:
        with Database(PG) as db:
            db.execute(f"CREATE SCHEMA {self.name}")
        return self

    def __exit__(self, *exc: object) -> None:
        with Database(PG) as db:
            db.execute(f"DROP SCHEMA {self.name} CASCADE")


def _worker(url: str, run_id: str, station: str, full: bool, go: object, out: object) -> None:
    db = Database(url)
    journal = Journal(db, run_id)
    go.wait()  # type: ignore[attr-defined]
    n = 0
    while (job := journal.claim(station)) is not None:
        if full:
            job = journal.chip_ok(job, chip_serial=f"{job.index:08X}", atr="3B")
            journal.printed(job)
        n += 1
    out.put(n)  # type: ignore[attr-defined]
    db.close()


def bench_claims(jobs: int, workers: int, full: bool) -> tuple[float, int]:
    with Schema() as schema:
        run_id = "BENCH"
        with Database(schema.url) as db:
            Journal(db, run_id).create(
                (JobSeed(i, f"C{i:08d}") for i in range(jobs)), source="bench", digest="d"
            )
        ctx = mp.get_context("spawn")
        go = ctx.Event()
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_worker, args=(schema.url, run_id, f"w{i}", full, go, out))
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        time.sleep(1.5)  # let every worker connect
        started = time.perf_counter()
        go.set()
        done = sum(out.get() for _ in procs)
        seconds = time.perf_counter() - started
        for p in procs:
            p.join()
        return done / seconds, done


def _applications(path: Path, count: int) -> None:
    from cardperso.prep.synth import make_photo, records

    photos = path.parent / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for j in range(64):
        (photos / f"p{j:04d}.jpg").write_bytes(make_photo(rng))
    cols = None
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        for r in records(count, photos=64):
            if cols is None:
                cols = [c for c in r if c not in ("card_no", "issue_date", "expiry_date", "pin")]
                w.writerow(cols)
            w.writerow([r[c] for c in cols])


def bench_import(url: str, apps: Path) -> tuple[float, int]:
    from cardperso.profiles.loader import load_profile
    from cardperso.registry.applications import import_applications
    from cardperso.registry.schema import upgrade

    with Database(url) as db:
        upgrade(db)
        started = time.perf_counter()
        got = import_applications(db, apps, load_profile("ssc3-pboc"), actor="bench")
        seconds = time.perf_counter() - started
    assert got.rejected == 0, got.rejects[:3]
    return got.accepted / seconds, got.accepted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=4000)
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--workers", default="1,4,8")
    args = ap.parse_args()
    with Database(PG) as db:
        version = str(db.execute("SHOW server_version")[0][0])
    run = benchenv.start("bench_registry")
    print(f"PostgreSQL server {version} (local, TCP: {PG.split('@')[-1]})")
    print("\n| workers | claim only (claims/s) | full job: claim + chip_ok + printed (jobs/s) |")
    print("|---:|---:|---:|")
    for w in (int(x) for x in args.workers.split(",")):
        claim, n1 = bench_claims(args.jobs, w, full=False)
        full, n2 = bench_claims(args.jobs // 2, w, full=True)
        assert n1 == args.jobs and n2 == args.jobs // 2, "every job claimed exactly once"
        print(f"| {w} | {claim:,.0f} | {full:,.0f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        apps = Path(tmp) / "apps.csv"
        _applications(apps, args.records)
        print(f"\n| registry import ({args.records:,} applications) | records/s |")
        print("|---|---:|")
        rate, _ = bench_import(str(Path(tmp) / "registry.db"), apps)
        print(f"| SQLite (WAL, synchronous=FULL) | {rate:,.0f} |", flush=True)
        with Schema() as schema:
            rate, _ = bench_import(schema.url, apps)
        print(f"| PostgreSQL | {rate:,.0f} |")
    run.end()


if __name__ == "__main__":
    main()
