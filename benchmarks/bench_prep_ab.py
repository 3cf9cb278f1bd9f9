"""Data preparation of two commits in turn: CPU time per card, before against after (issue 14).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_prep_ab.py --base 43ac2f5 --count 1000000 --workers 2
    .venv/bin/python benchmarks/bench_prep_ab.py --base HEAD~3 --count 100000 --rounds 4

Why this exists: on this shared VM the CPU time of the same command moves by ±40 % from one
minute to the next (other jobs share the caches and the CPUs), so a figure of one commit taken
at one time and one of another commit taken later say little about the change between them.
Here ``cardperso prep`` runs from the working tree's ``src/`` and from ``--base``'s ``src/``
(extracted with ``git archive`` into a temporary directory and put first on ``PYTHONPATH``)
one after the other, ``--rounds`` times, on the same batch, profile, keys and options, and the
script prints each run's CPU time per card (all processes, and the busiest one) and the
output's SHA-256, then the best and the median of each side. Batches, the profile variant and
the compiled-module cache are those of ``bench_prep.py`` (``--dir``); each side's modules are
compiled into that cache before the first round.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import tarfile
import tempfile
from pathlib import Path

import bench_prep as bp
import benchenv


def _extract(commit: str, into: Path) -> Path:
    """``src/`` of *commit* under *into* (``git archive``; the repository is only read)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "src"], cwd=bp.ROOT, check=True,
        capture_output=True,
    ).stdout  # fmt: skip
    tar_path = into / "src.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _run(src_dir: Path, cmd: list[str], out: Path, count: int) -> tuple[float, float, str]:
    """One prep run with *src_dir* first on the path: (CPU µs per card in all processes, in
    the busiest one, the output's SHA-256 prefix)."""
    env_before = dict(os.environ)
    os.environ["PYTHONPATH"] = str(src_dir)
    try:
        _wall, _peak, text, _pss, cpu, busy = bp.run_measured(cmd)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    if "wrote" not in text:
        raise SystemExit(text)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
    return 1e6 * cpu / count, 1e6 * busy / count, digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", required=True, help="the commit to compare the working tree with")
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--profile", default="ssc3-pboc")
    ap.add_argument("--kek", default="transport-kek-aes")
    ap.add_argument("--dir", default="/tmp/cardperso-bench")
    args = ap.parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    bp.PYCACHE = directory / "pycache"
    run = benchenv.start("bench_prep_ab")
    src = bp.batch(directory, args.count)
    profile = bp.variant_profile(directory, args.profile, args.kek, True)
    out = directory / f"ab-{args.count}-{args.workers}.cppf"
    cmd = [bp.PY, "-m", "cardperso", "prep", str(src), "-p", str(profile), "-k", str(bp.KEYS)]
    cmd += ["-o", str(out), "-r", str(directory / "ab-rejects.csv"), "-w", str(args.workers)]
    cmd += ["--created", "2026-01-15T00:00:00Z"]
    print(
        f"{args.count:,} records, {args.workers} worker(s), profile {args.profile} without "
        f"pboc.oda, KEK {args.kek}; base {args.base} against the working tree, "
        f"{args.rounds} round(s), in turn",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-prep-ab-") as tmp:
        sides = {f"base {args.base}": _extract(args.base, Path(tmp)), "tree": bp.ROOT / "src"}
        got: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
        for src_dir in sides.values():  # compile each side's modules into the cache first
            env = dict(bp.child_env(), PYTHONPATH=str(src_dir))
            subprocess.run([bp.PY, "-m", "cardperso", "--help"], env=env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        for r in range(args.rounds):
            for name, src_dir in sides.items():
                cpu, busy, digest = _run(src_dir, cmd, out, args.count)
                got[name].append((cpu, busy))
                load = os.getloadavg()[0]
                print(
                    f"  round {r + 1}  {name:<14} {cpu:6.1f} us/card in all processes, "
                    f"{busy:6.1f} in the busiest  output sha256 {digest}  load {load:.2f}",
                    flush=True,
                )
        out.unlink(missing_ok=True)
    for name, runs in got.items():
        alls, busiest = [a for a, _ in runs], [b for _, b in runs]
        print(
            f"{name:<14} all processes: best {min(alls):.1f}, median "
            f"{statistics.median(alls):.1f} us/card; busiest: best {min(busiest):.1f}, median "
            f"{statistics.median(busiest):.1f}"
        )
    run.end()


if __name__ == "__main__":
    main()
