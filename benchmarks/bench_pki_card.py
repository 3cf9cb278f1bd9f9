"""What the PKI application adds to a card's chip steps (issue 17), in process.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_pki_card.py [--cards 10]

For GP cards and native chips (the virtual ones, driven in process: no pcscd, no reader
latency), the chip steps of ``--cards`` records are timed twice: the product's own steps only,
and with the PKI step (card-generated key pair, PIN, the PKCS#10 request signed by the card,
the signing certificate issued and written, the enveloped encryption pair and its certificate,
read-back). Prints milliseconds per card (median) and commands per card for both, and the
difference: the cost of the PKI per card on the line's host and card simulator together; and
how many cards signed their certificate request from an ISO/IEC 7816-4 command chain (a
request over 224 bytes: a long holder name).
Key generation, signing and SM2 decryption on the virtual card are the same pure-Python SM2 the
host uses; a real chip does them in its crypto coprocessor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

import benchenv  # noqa: E402

from cardperso.card.vcard import VirtualCard  # noqa: E402
from cardperso.chip.drivers import load_drivers  # noqa: E402
from cardperso.chip.pki import pki_step  # noqa: E402
from cardperso.chip.plan import card_data, chip_plan  # noqa: E402
from cardperso.chip.transport import drive  # noqa: E402
from cardperso.prep.container import iter_records, read_header  # noqa: E402
from cardperso.profiles.loader import load_profile  # noqa: E402
from cardperso.storage.db import Database  # noqa: E402
from pki_fixtures import make_lab  # noqa: E402
from test_native_driver import blank_native  # noqa: E402


def measure(tmp: Path, cards: int) -> None:
    (tmp / "lab").mkdir()
    lab = make_lab(tmp / "lab", records=cards, seed=7, batch_id="BPKI")
    store = lab.store()
    profile = load_profile(lab.profile)
    with lab.perso.open("rb") as fh:
        header, _ = read_header(fh)
    bodies = [b for _, b in iter_records(lab.perso, store)]
    plan = chip_plan(profile, header)
    print(f"{'chip':<8} {'steps':<10} {'ms/card':>9} {'APDUs/card':>11}")
    for kind in ("gp", "native"):
        row = {}
        for with_pki in (False, True):
            drivers = load_drivers()
            drivers.use_pki(
                pki_step(profile, store, Database(tmp / f"{kind}{with_pki}.db"))
                if with_pki
                else None
            )
            times, apdus = [], []
            chained: set[int] = set()
            for i, body in enumerate(bodies):
                path = tmp / f"{kind}-{with_pki}-{i}.json"
                card = blank_native(path) if kind == "native" else VirtualCard.create_blank(path)
                atr = card.power_on()
                data = card_data(header, body, i)

                def transmit(
                    apdu: bytes, card: Any = card, i: int = i, chained: set[int] = chained
                ) -> bytes:
                    if apdu[1:4] == b"\x2a\x9e\x9a" and apdu[0] & 0x10:  # a SIGN chain piece
                        chained.add(i)
                    return bytes(card.transmit(apdu))

                t0 = time.perf_counter()
                result = drive(drivers.choose(atr).personalize(data, plan, store, atr), transmit)
                times.append(time.perf_counter() - t0)
                apdus.append(result.apdus)
            ms = statistics.median(times) * 1000
            row[with_pki] = ms
            label = "with PKI" if with_pki else "own only"
            print(f"{kind:<8} {label:<10} {ms:>9.1f} {statistics.median(apdus):>11.0f}")
        print(f"{kind:<8} {'PKI adds':<10} {row[True] - row[False]:>9.1f}")
        print(f"{kind:<8} certificate requests signed from a command chain: {len(chained)} of "
              f"{len(bodies)} cards")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=10)
    args = parser.parse_args()
    run = benchenv.start("bench_pki_card")
    with tempfile.TemporaryDirectory() as tmp:
        measure(Path(tmp), args.cards)
    run.end()


if __name__ == "__main__":
    main()
