"""The bank stage moves registry cards to account_opened / account_failed (SQLite)."""

from __future__ import annotations

import csv
from pathlib import Path

from cardperso.bank.accounts import AccountFile, read_accounts
from cardperso.bank.personalize import BankPlan, personalize_batch, pin_seed_for
from cardperso.bank.registry_link import RegistryRecorder
from cardperso.bank.twostage import load_two_stage
from cardperso.card import VirtualCard
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.registry import cards, production, schema, store
from cardperso.sim import bank_demo as demo
from cardperso.sim.inprocess import InProcessTransport
from cardperso.storage.db import Database
from test_registry import ACTOR, _fake_line_results, _to_compared


def test_accounts_opened_and_failed_in_the_registry(tmp_path: Path) -> None:
    # the registry: three applications made at the "factory" (personalized)
    with Database(str(tmp_path / "registry.db")) as db:
        schema.upgrade(db)
        _to_compared(db, tmp_path / "reg", 3)
        cards.register(db, actor=ACTOR)
        production.export_batch(db, tmp_path / "b.csv", actor=ACTOR, batch_no="K1")
        _fake_line_results(tmp_path / "b.csv", tmp_path / "results.csv")
        production.import_results(
            db, production.read_results_file(tmp_path / "results.csv"), actor=ACTOR
        )
        apps = store.select_apps(db)
        assert [a.state for a in apps] == ["personalized"] * 3
        # two-stage cards for the first two applications, matched by chip serial
        (tmp_path / "cards").mkdir()
        made = demo.factory_cards(tmp_path / "cards", 2)
        made = [
            demo.FactoryCard(c.image, c.serial, c.card_id, a.ssn, a.name)
            for c, a in zip(made, apps, strict=False)
        ]
        # the second card was already personalized once: its domain refuses the transport keys
        assert demo.bank_stage(tmp_path / "cards", [made[1]]).opened == 1
        two = load_two_stage(demo.PROFILE)
        assert two.bank.pboc is not None
        bank = SoftwareKeyStore.load(demo.BANK_KEYS)
        path = demo.bank_input(tmp_path / "cards", made)
        rows = list(csv.DictReader(path.open(encoding="utf-8")))
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=[*rows[0], "card_no"])
            w.writeheader()
            for r, a in zip(rows, apps, strict=False):
                w.writerow({**r, "card_no": a.card_no})
        batch = read_accounts(path, two.bank.pboc, two.bank.pin.length)
        plan = BankPlan(two, "B1", pin_seed=pin_seed_for(bank, "transport-kek", "B1"),
                        icc_pool=demo.bank_pool(tmp_path / "cards", bank, 2))  # fmt: skip
        recorder = RegistryRecorder(db, "bank@test")

        def transports():  # type: ignore[no-untyped-def]
            for c in made:
                with InProcessTransport(VirtualCard.load(c.image)) as t:
                    yield t

        with AccountFile(tmp_path / "accounts.csv") as out:
            summary = personalize_batch(batch, plan, bank, transports(), out, registry=recorder)
        assert (summary.opened, summary.failed) == (1, 1)
        assert (recorder.opened, recorder.failed, recorder.problems) == (1, 1, [])
        states = [a.state for a in store.select_apps(db)]
        assert states == ["account_opened", "account_failed", "personalized"]
