"""A two-stage batch end to end, for demonstrations, tests and the benchmark.

:func:`factory_batch` prepares a synthetic batch with the two-stage profile (the factory's
sample keys plus the key-exchange key), and personalizes blank virtual cards with
:func:`cardperso.bank.factory.factory_card`; :func:`bank_input` writes the bank's input for
those cards; :func:`bank_stage` runs the bank's personalization in process. Every file lands in
one directory so that a hygiene scan can look at the factory's outputs.
"""

from __future__ import annotations

import csv
import datetime
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cardperso.bank.accounts import (
    AccountFile,
    CardRowsFile,
    read_accounts,
    read_handover,
    ssn_digester,
)
from cardperso.bank.factory import factory_card
from cardperso.bank.personalize import BankPlan, BatchSummary, personalize_batch, pin_seed_for
from cardperso.bank.twostage import TransportDelivery, TwoStage, load_two_stage, make_delivery
from cardperso.card.vcard import VirtualCard
from cardperso.chip.plan import card_data, chip_plan
from cardperso.chip.transport import drive
from cardperso.codec.numbers import luhn_check_digit
from cardperso.keystore.base import DEFAULT_KEK, KeyStore
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.outputs import atomic_output, atomic_write_text
from cardperso.prep.container import iter_records, verify
from cardperso.prep.oda_run import ensure_pool
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.sim.inprocess import InProcessTransport

__all__ = [
    "FactoryCard",
    "bank_input",
    "bank_stage",
    "benchmark_in_process",
    "factory_batch",
    "factory_cards",
]

PROFILE = "ssc3-pboc-2stage"
REPO = Path(__file__).resolve().parents[3]
SAMPLE_KEYS = REPO / "keys-sample" / "keys.json"
BANK_KEYS = REPO / "keys-sample" / "bank-keys.json"


@dataclass(frozen=True, slots=True)
class FactoryCard:
    image: Path
    serial: bytes
    card_id: bytes
    ssn: str = field(repr=False)
    name: str = field(repr=False)


def factory_store(directory: Path, bank: KeyStore) -> SoftwareKeyStore:
    """The factory's store: the published factory sample keys plus its copy of the
    key-exchange key (in real life: a key ceremony, ``cardperso keys import-components``)."""
    doc = json.loads(SAMPLE_KEYS.read_text(encoding="utf-8"))
    exchange = SoftwareKeyStore.load(BANK_KEYS).to_document()["keys"]["kek-exchange"]
    doc["keys"]["kek-exchange"] = exchange  # the ceremony's result, for the demonstration
    return SoftwareKeyStore.from_document(doc, where="factory demo store")


def factory_batch(
    directory: Path, count: int, *, two: TwoStage | None = None, batch: str = "B1"
) -> tuple[Path, TransportDelivery, SoftwareKeyStore]:
    """Prepare ``count`` records with the two-stage profile; returns the perso file, the
    transport-key delivery (made by the bank's store) and the factory's store."""
    two = two or load_two_stage(PROFILE)
    bank = SoftwareKeyStore.load(BANK_KEYS)
    delivery = make_delivery(bank, two, batch)
    atomic_write_text(directory / "delivery.json", delivery.to_json())
    store = factory_store(directory, bank)
    csv_path = directory / "batch.csv"
    make_batch(csv_path, count, photos=4)
    perso = directory / "batch.cppf"
    prepare(
        csv_path,
        two.factory,
        store,
        lambda: store,
        perso,
        directory / "rejects.csv",
        PrepOptions(batch_id=batch, created=1_767_225_600),
    )
    return perso, delivery, store


def factory_cards(directory: Path, count: int, batch: str = "B1") -> list[FactoryCard]:
    """Factory stage for ``count`` blank virtual cards (in process); writes the handover file."""
    two = load_two_stage(PROFILE)
    perso, delivery, store = factory_batch(directory, count, two=two, batch=batch)
    header = verify(perso, store).header
    plan = chip_plan(two.factory, header)
    rows = {}
    with (directory / "batch.csv").open(encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), 2):
            rows[n] = row
    out = []
    cards_dir = directory / "cards"
    cards_dir.mkdir(exist_ok=True)
    for index, (line, body) in enumerate(iter_records(perso)):
        image = cards_dir / f"card{index:05d}.json"
        card = VirtualCard.create_blank(image, serial=(0xA0000000 + index).to_bytes(4, "big"))
        with InProcessTransport(card) as t:
            result = drive(
                factory_card(two, card_data(header, body, index), plan, store, delivery), t.transmit
            )
        row = rows[line]
        out.append(
            FactoryCard(
                image, result.chip.chip_serial, result.chip.card_id, row["ssn"], row["name"]
            )
        )
    digest = ssn_digester(store, two.ssd.key_exchange_kek)
    with CardRowsFile(directory / "handover.csv", ("chip_serial", "card_id", "ssn_digest")) as h:
        for c in out:
            h.write((c.serial.hex().upper(), c.card_id.hex().upper(), digest(c.ssn)))
    return out


def bank_input(directory: Path, cards: list[FactoryCard], *, key: str = "chip_serial") -> Path:
    """The bank's input for ``cards`` (PANs 622848..., balance 0, the profile's limits)."""
    path = directory / "bank" / "accounts.csv"
    path.parent.mkdir(exist_ok=True)
    issue = datetime.date(2026, 1, 15)
    with atomic_output(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            ("chip_serial", "card_id", "ssn", "name", "pan", "pan_seq", "issue_date",
             "expiry_date", "pin", "ec_balance")
        )  # fmt: skip
        for i, c in enumerate(cards):
            body = f"622848{i:09d}"  # the product's issuer identifier (pboc.oda.issuer_id)
            pan = body + luhn_check_digit(body)
            w.writerow(
                (
                    c.serial.hex().upper() if key == "chip_serial" else "",
                    c.card_id.hex().upper() if key == "card_id" else "",
                    c.ssn,
                    c.name,
                    pan,
                    "01",
                    issue.strftime("%Y%m%d"),
                    issue.replace(year=issue.year + 10).strftime("%Y%m%d"),
                    "123456",
                    "0",
                )
            )
    return path


def bank_pool(directory: Path, store: KeyStore, count: int) -> str | None:
    """The bank's small ICC key pool for the demonstration (``bank/icc-pool``, ``count`` free
    keys), when the bank profile asks for offline data authentication."""
    two = load_two_stage(PROFILE)
    made = ensure_pool(two.bank, store, lambda: store, directory / "bank" / "icc-pool", count)
    return made[0] if made is not None else None


def bank_stage(
    directory: Path,
    cards: list[FactoryCard],
    *,
    key: str = "chip_serial",
    batch: str = "B1",
    store: KeyStore | None = None,
) -> BatchSummary:
    """The bank's personalization of ``cards`` in process; account file ``bank/accounts.out.csv``."""
    two = load_two_stage(PROFILE)
    store = store or SoftwareKeyStore.load(BANK_KEYS)
    assert two.bank.pboc is not None
    accounts = read_accounts(
        bank_input(directory, cards, key=key), two.bank.pboc, two.bank.pin.length
    )
    plan = BankPlan(
        two, batch, pin_seed=pin_seed_for(store, DEFAULT_KEK, batch),
        icc_pool=bank_pool(directory, store, len(accounts)),
    )  # fmt: skip
    handover = None
    if key == "ssn":
        digest = ssn_digester(store, two.ssd.key_exchange_kek)
        handover = read_handover(directory / "handover.csv", digest)

    def transports() -> Iterator[InProcessTransport]:
        for c in cards:
            t = InProcessTransport(VirtualCard.load(c.image))
            t.connect()
            yield t
            t.disconnect()

    with AccountFile(directory / "bank" / "accounts.out.csv") as out:
        return personalize_batch(accounts, plan, store, transports(), out, handover=handover)


def benchmark_in_process(directory: Path, count: int) -> float:
    """Cards per second of the bank stage against in-process virtual cards (benchmarks)."""
    cards = factory_cards(directory, count)
    t0 = time.perf_counter()
    bank_stage(directory, cards)
    return count / (time.perf_counter() - t0)
