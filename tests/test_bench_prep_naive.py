"""The naive baseline of benchmarks/bench_prep_naive.py does prep's work: on a batch with every
bad-record class of the synthetic generator it rejects the same records with the same field
and reason as ``cardperso prep``, and prepares the rest. (A benchmark ratio means nothing if the
baseline skips work.)"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_prep_naive


def test_naive_rejects_what_prep_rejects(tmp_path: Path, sample_keystore_path: Path) -> None:
    batch = tmp_path / "batch.csv"
    counts = make_batch(batch, 300, seed=11, photos=6, errors=40)
    assert counts["bad"] > 0
    rate = bench_prep_naive.run_naive(batch, tmp_path / "naive.perso", sample_keystore_path)
    assert rate > 0
    store = SoftwareKeyStore.load(sample_keystore_path)
    summary = prepare(
        batch,
        load_profile("ssc3-pboc"),
        store,
        lambda: store,
        tmp_path / "prep.perso",
        tmp_path / "prep-rejects.csv",
        PrepOptions(batch_id="N", created=1767225600),
    )
    with (tmp_path / "naive.rejects.csv").open(newline="") as fh:
        naive = [tuple(r[:3]) for r in list(csv.reader(fh))[1:]]
    with (tmp_path / "prep-rejects.csv").open(newline="") as fh:
        prep = [tuple(r[:3]) for r in list(csv.reader(fh))[1:]]
    assert naive == prep and len(naive) == counts["bad"]
    data = (tmp_path / "naive.perso").read_bytes()
    assert data.startswith(b"naive-perso/1\n") and summary.prepared == counts["records"] - len(prep)
    # one framed record per prepared card: length, line, body, MAC
    pos, framed = len(b"naive-perso/1\n"), 0
    while not data.startswith(b"END", pos):
        length = int.from_bytes(data[pos : pos + 4], "big")
        pos += 12 + length + 16
        framed += 1
    assert framed == summary.prepared
