"""The centre's office pages over a large registry (issue 16 part 2).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_web_office.py                 # 10,000 applications
    .venv/bin/python benchmarks/bench_web_office.py --records 50000 --repeat 5

A SQLite registry (a file, WAL, synchronous=FULL) gets ``--records`` synthetic applications
(the prep generator's records, accepted over the last 60 days, service points SP01-SP08,
units U01-U20; ``registry import``, photo specification checked), all waiting for their audit,
so every one of them counts in the time targets. The console's Starlette application is then
asked for each office page and some files through Starlette's in-process test client (the
server's routing, session, role and CSRF checks, templates and the registry's queries; no
network), ``--repeat`` times each; the figure is the median time per answer.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the registry tests' card photos

import benchenv  # noqa: E402

from cardperso.codec.photo import CARD_PHOTO  # noqa: E402
from cardperso.prep.synth import records  # noqa: E402
from cardperso.profiles.loader import load_profile  # noqa: E402
from cardperso.registry import centre  # noqa: E402
from cardperso.registry import schema as registry_schema  # noqa: E402
from cardperso.registry.applications import import_applications  # noqa: E402
from cardperso.storage.db import Database  # noqa: E402
from cardperso.web import schema as web_schema  # noqa: E402
from cardperso.web import users  # noqa: E402
from centre_photos import spec_photo  # noqa: E402

COLUMNS = (
    "ssn", "name", "gender", "nation", "birth_date", "birth_place", "region", "photo",
    "bank_code", "pan", "pan_seq", "application_type", "accepted_date", "service_point", "unit",
)  # fmt: skip
PASSWORD = "bench-Secret-0001"


def build(directory: Path, count: int) -> tuple[Path, float]:
    """The registry with ``count`` accepted applications; (its path, import seconds)."""
    photos = directory / "photos"
    photos.mkdir()
    for j in range(4):
        (photos / f"p{j:04d}.jpg").write_bytes(spec_photo(random.Random(j)))
    today = datetime.date.today()
    rng = random.Random(16)
    apps = directory / "apps.csv"
    with apps.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for i, r in enumerate(records(count, seed=16, photos=4)):
            r["accepted_date"] = f"{today - datetime.timedelta(days=rng.randint(0, 60)):%Y%m%d}"
            r["service_point"] = f"SP{i % 8 + 1:02d}"
            r["unit"] = f"U{i % 20 + 1:02d}" if i % 7 else ""
            w.writerow([r.get(c, "") for c in COLUMNS])
    path = directory / "registry.db"
    with Database(path) as db:
        registry_schema.upgrade(db)
        web_schema.upgrade(db)
        for k in range(8):
            centre.add_party(db, "service_point", f"SP{k + 1:02d}", f"网点{k + 1}")
        for k in range(20):
            centre.add_party(db, "unit", f"U{k + 1:02d}", f"单位{k + 1}")
        users.add(db, "staff", users.CENTRE, PASSWORD, None)
        t0 = time.perf_counter()
        got = import_applications(
            db, apps, load_profile("ssc3-pboc"), actor="bench", photo_spec=CARD_PHOTO
        )
        seconds = time.perf_counter() - t0
    assert got.accepted == count, got.rejects[:3]
    return path, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from starlette.testclient import TestClient

    from cardperso.web.app import create_app

    run = benchenv.start("bench_web_office")
    with tempfile.TemporaryDirectory() as tmp:
        path, seconds = build(Path(tmp), args.records)
        print(f"registry: {args.records:,} accepted applications, imported in {seconds:.1f} s")
        with Database(path) as db:
            client = TestClient(create_app(db), follow_redirects=False)
            page = client.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token
            r = client.post(
                "/login", data={"user": "staff", "password": PASSWORD, "csrf": token.group(1)}
            )
            assert r.status_code == 303, r.text
            print(f"\n| page or file ({args.records:,} applications) | median ms | bytes |")
            print("|---|---:|---:|")
            for what, url in (
                ("audit queue (the oldest 50, photos checked)", "/office/audit"),
                ("time targets (breakdowns, overdue, stats, charts)", "/office/targets"),
                ("comparison per unit", "/office/compare"),
                ("reports & files", "/office/files"),
                ("breakdown by service point (CSV)", "/office/file?name=breakdown&by=service-point"),
                ("late and at risk (CSV)", "/office/file?name=overdue"),
                ("one photo", "/office/photo?id=1"),
            ):  # fmt: skip
                times = []
                size = 0
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    r = client.get(url)
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200, (url, r.text[:200])
                    size = len(r.content)
                print(f"| {what} | {1000 * statistics.median(times):,.0f} | {size:,} |", flush=True)
    run.end()


if __name__ == "__main__":
    main()
