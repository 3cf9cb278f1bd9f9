"""Bank-stage figures (issue 8, "Tests and measures").

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_bank.py                 # ARQC verifications per second
    .venv/bin/python benchmarks/bench_bank.py --count 20000 --cards 2000
    .venv/bin/python benchmarks/bench_bank.py --perso 20       # bank personalization, in process

``arqc``: the issuer host (:class:`cardperso.bank.host.IssuerHost`) over the software store with
the published bank TEST keys (``keys-sample/bank-keys.json``): each verification derives the
card's AC master key (option A), the session key from the ATC (the host's default method for a
request without the card's 9F10, printed), and recomputes the cryptogram (MAC algorithm 3) over
a 43-byte CDOL1 + AIP + ATC + CVR input, then compares. A
"load" adds the ARPC (method 1) and the PUT DATA 9F79 script MAC (SMI key), i.e. a whole online
EC-load authorisation. ``--perso N``: the bank's personalization of N two-stage cards (SSD
secure channel, PUT KEY, PBOC STORE DATA, read-back with a verified ARQC) against in-process
virtual cards, cards per second (the chip exchange dominates; no reader latency).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import benchenv  # noqa: E402

from cardperso.bank.host import AuthRequest, HostKeys, IssuerHost  # noqa: E402
from cardperso.crypto import emv  # noqa: E402
from cardperso.keystore.software import SoftwareKeyStore  # noqa: E402

BANK_KEYS = ROOT / "keys-sample" / "bank-keys.json"


def _requests(store: SoftwareKeyStore, cards: int, session: str) -> list[AuthRequest]:
    # cryptograms computed with the clear sample key (the benchmark's own card side), with the
    # session-key method the host uses for a request without the card's 9F10
    imk = store._key("pboc-imk-ac").value
    session_key = {"common": emv.session_key_common, "pboc": emv.session_key_pboc}[session]
    out = []
    for i in range(cards):
        body = f"62148300{i:08d}"
        pan = body + str(_luhn(body))
        atc = (i % 65535 + 1).to_bytes(2, "big")
        data = os.urandom(43) + b"\x7c\x00" + atc + bytes.fromhex("03A00000")
        mk = emv.derive_icc_master_key_a(imk, pan, "01")
        ac = emv.application_cryptogram(session_key(mk, atc), data)
        out.append(AuthRequest(pan, "01", atc, ac, data))
    return out


def _luhn(body: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


def bench_arqc(count: int, cards: int) -> None:
    store = SoftwareKeyStore.load(BANK_KEYS)
    # the requests carry no 9F10: this host takes the load's balance from the request itself
    host = IssuerHost(store, HostKeys(require_card_balance=False))
    session = str(host.keys.session)
    reqs = _requests(store, cards, session)
    print(f"session keys: {session!r} (the host's default for a request without 9F10)")
    t0 = time.perf_counter()
    for i in range(count):
        host.verify(reqs[i % cards])
    dt = time.perf_counter() - t0
    print(f"ARQC verifications: {count} in {dt:.3f} s = {count / dt:,.0f} per second (1 thread)")
    t0 = time.perf_counter()
    n = count // 4
    for i in range(n):
        host.authorize_load(reqs[i % cards], balance=0, limit=10**9, amount=100)
    dt = time.perf_counter() - t0
    print(f"EC load authorisations (ARQC + ARPC + script MAC): {n / dt:,.0f} per second")


def bench_perso(count: int) -> None:
    import tempfile

    from cardperso.sim import bank_demo

    with tempfile.TemporaryDirectory() as tmp:
        rate = bank_demo.benchmark_in_process(Path(tmp), count)
    print(f"bank personalization (in process, no reader latency): {rate:.1f} cards per second")


def bench_pcsc(count: int, stations: int) -> None:
    """Bank personalization through pcscd + vpcd (the test lab's readers), ``stations``
    readers at once (one thread each, as ``bank personalize --line`` runs them)."""
    import tempfile

    sys.path.insert(0, str(ROOT / "tests"))
    from cardperso.bank.accounts import AccountFile, read_accounts
    from cardperso.bank.personalize import BankPlan, personalize_stations, pin_seed_for
    from cardperso.bank.twostage import load_two_stage
    from cardperso.card.vcard import VirtualCard
    from cardperso.devices.pcsc import PcscTransport
    from cardperso.sim import bank_demo as demo
    from fixtures_pcsc import open_lab

    with tempfile.TemporaryDirectory() as tmp, open_lab(claim=stations) as lab:
        d = Path(tmp)
        cards = demo.factory_cards(d, count)
        two = load_two_stage(demo.PROFILE)
        assert two.bank.pboc is not None
        store = SoftwareKeyStore.load(BANK_KEYS)
        accounts = read_accounts(demo.bank_input(d, cards), two.bank.pboc, two.bank.pin.length)
        plan = BankPlan(
            two,
            "B1",
            pin_seed=pin_seed_for(store, "transport-kek", "B1"),
            icc_pool=demo.bank_pool(d, store, count),  # the bank profile's ODA: one key per card
        )
        lab.heal()
        slots = [s for s in lab.slots if s.slot.card is None][:stations]
        assert len(slots) == stations, "not enough free lab readers"
        chip = [0.0]

        def transports(slot, mine):  # type: ignore[no-untyped-def]
            for c in mine:
                slot.insert(VirtualCard.load(c.image))
                with PcscTransport(slot.name) as t:
                    t0 = time.perf_counter()
                    yield t
                    chip[0] += time.perf_counter() - t0
                slot.remove()

        queues = [transports(slot, cards[i::stations]) for i, slot in enumerate(slots)]
        t0 = time.perf_counter()
        with AccountFile(d / "accounts.csv") as out:
            summary = personalize_stations(accounts, plan, store, queues, out)
        dt = time.perf_counter() - t0
        assert summary.opened == count, summary
    print(
        f"bank personalization through pcscd + vpcd, {stations} reader(s), card swaps included: "
        f"{count / dt:.1f} cards per second; chip time {1000 * chip[0] / count:.0f} ms per card"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--cards", type=int, default=1000)
    ap.add_argument("--perso", type=int, default=0, help="cards for the personalization run")
    ap.add_argument("--pcsc", type=int, default=0, help="cards through pcscd + vpcd")
    ap.add_argument("--stations", type=int, default=1, help="readers at once (with --pcsc)")
    args = ap.parse_args()
    run = benchenv.start("bench_bank")
    bench_arqc(args.count, args.cards)
    if args.perso:
        bench_perso(args.perso)
    if args.pcsc:
        bench_pcsc(args.pcsc, args.stations)
    run.end()


if __name__ == "__main__":
    main()
