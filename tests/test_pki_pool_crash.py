"""The SM2 key pool through line crashes: `cardperso run` making PKI cards whose signing pairs
come from the pool (``signing_key: import``) is SIGKILLed at random points and resumed; in the
end every record is produced once, and no pool key is on two cards: the produced cards and the
suspect cards rejected on resume all hold different signing keys, each a key of the pool."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cardperso.card.vcard import VirtualCard
from cardperso.keystore.pool import IccKeyPool
from cardperso.line.linefile import LineOptions
from cardperso.sim.line import SimLine
from pki_fixtures import make_lab
from test_pki_pool import _every_key

pytestmark = [pytest.mark.pcsc, pytest.mark.slow]
COUNT = 6


def _signing_key(image: Path) -> bytes | None:
    """The signing public key a card holds (EF 0012 ``CA 40 x y``), read from the key file and
    not from the certificate: a run killed while it wrote EF 0018 leaves a card with the pool
    key and half a certificate, and that card must count too."""
    held = VirtualCard.load(image).state.pki
    if held is None or not held.files.get("0012", b"").startswith(b"\xca\x40"):
        return None  # a suspect card rejected before its key pair was imported
    return b"\x04" + held.files["0012"][2:66]


def _reservations(pool_dir: Path) -> int:
    return IccKeyPool(pool_dir).status().reservations if pool_dir.exists() else 0


def test_sigkill_mid_run_then_resume_never_puts_a_pool_key_on_two_cards(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path
) -> None:
    lab = make_lab(tmp_path, records=COUNT, seed=47, signing_key="import",
                   encryption_pair=False, batch_id="PKIK", pool_keys=3 * COUNT)  # fmt: skip
    readers = [s for s in pcsc_lab.slots if s.card is None][:2]
    line = SimLine(2, tmp_path / "line", readers=readers, apdu_latency=0.004,
                   options=LineOptions(card_timeout=5, pause_retry=0.2, max_attempts=10,
                                       output_check=str(tmp_path / "line" / "output")))  # fmt: skip
    cmd = [sys.executable, "-m", "cardperso", "run", str(lab.perso), "--line",
           str(tmp_path / "line" / "line.yaml"), "--keys", str(lab.keys), "--db",
           str(tmp_path / "journal.db"), "--results", str(tmp_path / "results.csv")]  # fmt: skip
    env = dict(os.environ, CI="true", CARDPERSO_PROFILES=str(tmp_path))
    rng = random.Random(20261204)
    output = tmp_path / "line" / "output"
    pool_dir = Path(f"{lab.keys}.icc-pool") / "sm2"
    kills = 0
    with line:
        for attempt in range(2):
            before = len(list(output.glob("*.png"))) if output.exists() else 0
            reserved = _reservations(pool_dir)
            proc = subprocess.Popen(cmd + (["--resume"] if attempt else []), env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
            # kill once this run has reserved its block of pool keys and made a card, in the
            # middle of the next ones (a card face the killed run had sent to the printer may
            # land after `before` was counted: the reservation says this run is the one going)
            deadline = time.monotonic() + 120
            while (
                time.monotonic() < deadline
                and proc.poll() is None
                and (
                    not output.exists()
                    or len(list(output.glob("*.png"))) <= before
                    or _reservations(pool_dir) <= reserved
                )
            ):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.5))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        final = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True,
                               timeout=300)  # fmt: skip
    assert final.returncode == 0, final.stdout + final.stderr
    assert kills == 2, "the run must have been killed mid-way, twice"
    with (tmp_path / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == COUNT and {r["outcome"] for r in rows} == {"produced"}
    images = [p for d in ("output", "rejects") for p in (tmp_path / "line" / d).glob("*.json")
              if not p.name.endswith(".tracks.json")]  # fmt: skip
    keys = [k for k in map(_signing_key, images) if k is not None]
    assert len(keys) >= COUNT
    assert len(set(keys)) == len(keys), "a pool key went on two cards"
    pool = _every_key(pool_dir)
    assert set(keys) <= {b"\x04" + p for p in pool.moduli}
    status = IccKeyPool(pool_dir).status()
    # each run reserved its own block (a killed run's unused keys stay used: wasted, never reused)
    assert status.used >= len(keys) and status.reservations == kills + 1
