"""Check values of many different 3DES keys: numpy DES vs bitsliced Python ints vs one cipher per key.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_kcv.py [--keys 30000] [--repeat 3]``

Three ways to compute ``TDES(K, 00×8)[:3]`` for every key of a chunk (DGI 9000: three keys per
card, all different):

1. ``cardperso.crypto.kcvbatch.kcv_3des_blob`` - the table-driven numpy DES of
   :mod:`cardperso.crypto.desvec` (what prep uses);
2. the bitsliced implementation over Python integers it replaced, loaded from git
   (``src/cardperso/crypto/kcvbatch.py`` at commit :data:`BITSLICED_COMMIT`) - for comparison only;
3. one ``cryptography`` cipher object per key (``cardperso.crypto.kcv``), the obvious way.

Each figure is the best of ``--repeat`` rounds over the same random keys (the three ways take
turns in each round, so load changes fall on all of them); all three results are
compared byte for byte (the script exits 1 if they differ). Prints µs per key and per card
(three keys) and the machine load (benchenv).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchenv  # noqa: E402

from cardperso.crypto import kcv  # noqa: E402
from cardperso.crypto.kcvbatch import kcv_3des_blob  # noqa: E402

#: The last commit of the bitsliced-int kcvbatch.py.
BITSLICED_COMMIT = "7929466"


def bitsliced() -> ModuleType:
    """The bitsliced-int kcvbatch module as it was at :data:`BITSLICED_COMMIT`."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BITSLICED_COMMIT}:src/cardperso/crypto/kcvbatch.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = ModuleType("kcvbatch_bitsliced")
    exec(compile(source, f"kcvbatch.py@{BITSLICED_COMMIT}", "exec"), module.__dict__)
    return module


def per_key(blob: bytes) -> bytes:
    return b"".join(kcv("3DES", blob[i : i + 16]) for i in range(0, len(blob), 16))


def interleaved(
    ways: list[tuple[str, Callable[[bytes], bytes]]], blob: bytes, repeat: int
) -> list[tuple[float, bytes]]:
    """Best time and result of each way; the ways take turns in every round, so a change of
    machine load between rounds falls on all of them alike."""
    times: list[list[float]] = [[] for _ in ways]
    outs: list[bytes] = [b""] * len(ways)
    for _ in range(repeat):
        for i, (_name, fn) in enumerate(ways):
            t0 = time.perf_counter()
            outs[i] = fn(blob)
            times[i].append(time.perf_counter() - t0)
    return [(min(t), out) for t, out in zip(times, outs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=30000, help="keys per run (a chunk of cards x 3)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    run = benchenv.start("bench_kcv")
    blob = os.urandom(16 * args.keys)
    old = bitsliced()
    ways: list[tuple[str, Callable[[bytes], bytes]]] = [
        ("numpy table-driven DES (kcv_3des_blob)", kcv_3des_blob),
        (f"bitsliced Python ints (commit {BITSLICED_COMMIT})", old.kcv_3des_blob),
        ("one cryptography cipher object per key", per_key),
    ]
    print(f"{args.keys:,} random double-length keys, best of {args.repeat}\n")
    print("| check values | µs per key | µs per card (3 keys) | keys/s |")
    print("|---|---:|---:|---:|")
    results = []
    for (name, _fn), (seconds, out) in zip(ways, interleaved(ways, blob, args.repeat)):
        results.append(out)
        us = seconds * 1e6 / args.keys
        print(f"| {name} | {us:.2f} | {3 * us:.2f} | {args.keys / seconds:,.0f} |")
    run.end()
    if len(set(results)) != 1:
        raise SystemExit("the three ways gave different check values")


if __name__ == "__main__":
    main()
