"""Jobs that survive crashes: `cardperso run` is SIGKILLed at random points and resumed with
--resume; in the end every record is produced exactly once, suspect cards were rejected."""

from __future__ import annotations

import csv
import functools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.linefile import LineOptions
from cardperso.prep.container import iter_records
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from cardperso.sim.line import SimLine

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_KEYS = ROOT / "keys-sample" / "keys.json"

pytestmark = [pytest.mark.pcsc, pytest.mark.slow]


def test_sigkill_at_random_points_then_resume(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    count = 10
    make_batch(tmp_path / "batch.csv", count, seed=5)
    perso = tmp_path / "batch.perso"
    prepare(
        tmp_path / "batch.csv", load_profile("ssc3-pboc"), SoftwareKeyStore.load(SAMPLE_KEYS),
        functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), perso, tmp_path / "rejects.csv",
        PrepOptions(batch_id="CRASH", created=1_700_000_000),
    )  # fmt: skip
    readers = [s for s in pcsc_lab.slots if s.card is None][:2]
    line = SimLine(
        2,
        tmp_path / "line",
        readers=readers,
        apdu_latency=0.004,  # type: ignore[arg-type]
        # a kill while the printer prints leaves a finished card in the hopper whose record is
        # not yet journaled `printed`: the output check finds it there on --resume
        options=LineOptions(
            card_timeout=5,
            pause_retry=0.2,
            max_attempts=10,
            output_check=str(tmp_path / "line" / "output"),
        ),
    )
    rng = random.Random(20261122)
    cmd = [
        sys.executable,
        "-m",
        "cardperso",
        "run",
        str(perso),
        "--line",
        str(tmp_path / "line" / "line.yaml"),
        "--keys",
        str(SAMPLE_KEYS),
        "--db",
        str(tmp_path / "journal.db"),
        "--results",
        str(tmp_path / "results.csv"),
    ]
    env = dict(os.environ, CI="true")
    kills = 0
    with line:
        for attempt in range(5):
            proc = subprocess.Popen(
                cmd + (["--resume"] if attempt else []),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            time.sleep(rng.uniform(0.8, 2.5))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        final = subprocess.run(
            [*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300
        )
    assert final.returncode == 0, final.stdout + final.stderr
    assert kills >= 2, "the run must have been killed mid-way at least twice"
    with (tmp_path / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["record"]) for r in rows) == sorted(
        line for line, _ in iter_records(perso, SoftwareKeyStore.load(SAMPLE_KEYS))
    )
    assert all(r["outcome"] == "produced" for r in rows)
    output = tmp_path / "line" / "output"
    produced = {p.stem for p in output.glob("*.json") if not p.name.endswith(".tracks.json")}
    assert len(produced) == count, "no record produced twice, none lost"
    assert produced == {r["chip_serial"] for r in rows}, (
        "each record paired with the chip in the hopper"
    )
