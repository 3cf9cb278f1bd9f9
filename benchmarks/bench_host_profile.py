"""Where the line's host CPU per card goes: the engine with no I/O, timed and profiled.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_host_profile.py [--cards 200] [--top 15]

One ``ssc3-pboc`` card is prepared (sample key store) and personalized once in process against a
blank :class:`~cardperso.card.VirtualCard`, its exchanges recorded with every random number fixed
(as ``bench_line.py --part apdu`` does). Then the station's chip step, ``card_data`` +
``drive(personalize(...))``, runs ``--cards`` times over the recorded responses (no card, no
reader, no PC/SC): the host's own CPU per card (``time.process_time``), then the same loop under
cProfile. Printed:

* host CPU per card and per APDU (without the profiler);
* own time by area (cProfile ``tottime``; time in a C function is charged to the area of the
  Python function that called it, so the Rust side of ``cryptography`` counts as
  ``cryptography``): ``cryptography``, each ``cardperso`` package, the standard library;
* ``cryptography`` ``Cipher`` objects created per card;
* the ``--top`` functions by own time.

Figures under cProfile are slower than without it; the shares are what to read.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_line
import benchenv

from cardperso.chip.plan import card_data, chip_plan
from cardperso.chip.script import personalize
from cardperso.chip.transport import drive
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.container import read_header
from cardperso.profiles.loader import load_profile

CIPHER_INIT = ("cryptography/hazmat/primitives/ciphers/base.py", "__init__")


def area(filename: str) -> str:
    """The area a function's file belongs to."""
    path = filename.replace("\\", "/")
    if "/cryptography/" in path:
        return "cryptography"
    if "/cardperso/" in path:
        rest = path.split("/cardperso/", 1)[1].split("/")
        return "cardperso." + (rest[0] if len(rest) > 1 else rest[0].removesuffix(".py"))
    if "/benchmarks/" in path:
        return "benchmark loop"
    return "standard library and other"


def by_area(stats: pstats.Stats) -> dict[str, float]:
    """Own time per area; a C function's time goes to the area of its Python callers."""
    table = stats.stats  # type: ignore[attr-defined]
    out: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tt, _ct, callers) in table.items():
        if filename != "~":
            out[area(filename)] += tt
            continue
        if not callers:
            out["standard library and other"] += tt
            continue
        for (cfile, _cline, _cname), caller in callers.items():
            out[area(cfile) if cfile != "~" else "standard library and other"] += caller[2]
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cards", type=int, default=200)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    run = benchenv.start("bench_host_profile")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        perso = bench_line.prepare_file(work, 4, "BENCHPROF")
        with perso.open("rb") as fh:
            header, _ = read_header(fh)
        keys = SoftwareKeyStore.load(bench_line.KEYS)
        body = bench_line.first_record(perso, keys)
        plan = chip_plan(load_profile(bench_line.PROFILE), header)
        with bench_line.fixed_random():
            _atr, exchanges = bench_line.record_card(header, body, plan, keys, work)
            responses = [r for _, r in exchanges]

            def host_only() -> None:
                it = iter(responses)
                drive(personalize(card_data(header, body, 0), plan, keys), lambda _apdu: next(it))

            for _ in range(5):  # warm up
                host_only()
            cpu0 = time.process_time()
            for _ in range(args.cards):
                host_only()
            cpu = (time.process_time() - cpu0) / args.cards
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.cards):
                host_only()
            prof.disable()

    n_apdu = len(exchanges)
    print(
        f"\n{bench_line.PROFILE}, {n_apdu} APDUs per card, {args.cards} cards: host CPU "
        f"{cpu * 1e3:.2f} ms per card, {cpu / n_apdu * 1e6:.1f} µs per APDU (no profiler)"
    )
    stats = pstats.Stats(prof)
    areas = by_area(stats)
    total = sum(areas.values())
    print(
        f"\n| area (own time under cProfile, {total / args.cards * 1e3:.2f} ms per card) | share |"
    )
    print("|---|---:|")
    for name, seconds in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {100 * seconds / total:.1f} % |")
    table = stats.stats  # type: ignore[attr-defined]
    ciphers = sum(
        v[1]
        for (f, _line, name), v in table.items()
        if f.replace("\\", "/").endswith(CIPHER_INIT[0]) and name == CIPHER_INIT[1]
    )
    print(f"\n`cryptography` Cipher objects created per card: {ciphers / args.cards:.0f}")
    print(f"\ntop {args.top} functions by own time:")
    stats.sort_stats("tottime").print_stats(args.top)
    run.end()


if __name__ == "__main__":
    main()
