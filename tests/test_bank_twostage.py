"""Two-stage personalization in process: the factory (SSSE + the bank's SSD, PBOC installed
under it), then the bank (SSD keys, PBOC with the bank's keys), then EC load and purchase."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cardperso.bank import terminal
from cardperso.bank.accounts import AccountFile, read_accounts
from cardperso.bank.host import IssuerHost
from cardperso.bank.personalize import BankPlan, personalize_batch, pin_seed_for
from cardperso.bank.twostage import (
    TransportDelivery,
    batch_kdd,
    load_two_stage,
    make_delivery,
)
from cardperso.card import VirtualCard
from cardperso.chip.transport import drive
from cardperso.crypto import gp
from cardperso.errors import DataError, KeyStoreError, ProfileError
from cardperso.keystore.software import SoftwareKeyStore, generate_file
from cardperso.prep.rejects import RejectsWriter
from cardperso.sim import bank_demo as demo
from cardperso.sim.inprocess import InProcessTransport


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[demo.FactoryCard]]:
    d = tmp_path_factory.mktemp("twostage")
    return d, demo.factory_cards(d, 3)


def bank_store() -> SoftwareKeyStore:
    return SoftwareKeyStore.load(demo.BANK_KEYS)


def test_profile_two_stage_section() -> None:
    two = load_two_stage("ssc3-pboc-2stage")
    assert two.factory.pboc is None and two.bank.pboc is not None
    assert two.ssd.aid == bytes.fromhex("A00000033353534401") and two.ssd.privileges[0] & 0xA0
    with pytest.raises(ProfileError, match="two_stage"):
        load_two_stage("ssc3-pboc")  # no two_stage section


def test_delivery_round_trip_and_kek_check(tmp_path: Path) -> None:
    two = load_two_stage("ssc3-pboc-2stage")
    bank = bank_store()
    d = make_delivery(bank, two, "B7")
    again = TransportDelivery.from_json(d.to_json())
    assert again == d
    # the bank holds the exchange key too; the clear keys are the batch's diversified keys
    kmc = bank._key(two.ssd.transport_kmc).value
    (expected,) = gp.diversify(kmc, [batch_kdd("B7")], two.ssd.diversification)
    clear = again.unwrap(bank)
    assert (clear.enc, clear.mac, clear.dek) == (expected.enc, expected.mac, expected.dek)
    assert (d.batch, d.kek, d.kek_kcv) == ("B7", two.ssd.key_exchange_kek, bank.kcv(d.kek))
    other = generate_file(tmp_path / "other.json")
    other.generate_key("kek-exchange", "3DES")
    with pytest.raises(KeyStoreError, match="is not the key-exchange key of this delivery"):
        again.unwrap(other)
    with pytest.raises(DataError, match=r"not a .* file") as exc:
        TransportDelivery.from_json('{"format": "x"}')
    assert exc.value.field == "format"


def test_factory_leaves_pboc_installed_under_the_ssd(
    factory: tuple[Path, list[demo.FactoryCard]],
) -> None:
    _, cards = factory
    state = VirtualCard.load(cards[0].image).state
    two = load_two_stage("ssc3-pboc-2stage")
    pboc = state.app(two.pboc_aid)
    assert pboc is not None and pboc.lifecycle == "INSTALLED" and pboc.domain == two.ssd.aid
    assert not state.pboc.ac_key and not state.pboc.dgis
    assert (
        state.app(state.ssse and bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")).lifecycle
        == "PERSONALIZED"
    )  # type: ignore[union-attr]
    assert state.ssd(two.ssd.aid).keys[0].kvn == two.ssd.transport_kvn  # type: ignore[union-attr]


def test_no_bank_key_in_any_factory_output(factory: tuple[Path, list[demo.FactoryCard]]) -> None:
    d, _cards = factory
    doc = bank_store().to_document()
    # secret keys, and the private parts of the ODA chain's RSA pairs
    secrets = [bytes.fromhex(v[part]) for k, v in doc["keys"].items() if k != "kek-exchange"
               for part in ("value", "p", "q", "dp", "dq", "qinv") if part in v]  # fmt: skip
    # every bank key but the key-exchange key (shared with the factory by design): the bank's
    # keys, their hex in both cases, and the transport keys in clear
    two = load_two_stage("ssc3-pboc-2stage")
    from cardperso.bank.twostage import transport_keys

    tk = transport_keys(bank_store(), two, "B1")
    outputs = [p for p in d.rglob("*") if p.is_file() and "bank" not in p.relative_to(d).parts]
    assert any(p.name == "batch.cppf" for p in outputs) and any(
        p.name == "delivery.json" for p in outputs
    )
    for keys, where in (
        (secrets, outputs),
        # the transport keys are in the cards themselves (the simulator's EEPROM) and nowhere else
        ([tk.enc, tk.mac, tk.dek], [p for p in outputs if "cards" not in p.relative_to(d).parts]),
    ):
        needles = [x for v in keys for x in (v, v.hex().encode(), v.hex().upper().encode())]
        for p in where:
            blob = p.read_bytes()
            for needle in needles:
                assert needle not in blob, f"bank key material in factory output {p.name}"


def test_bank_stage_ec_load_and_purchase(tmp_path: Path) -> None:
    cards = demo.factory_cards(tmp_path, 2)
    summary = demo.bank_stage(tmp_path, cards)
    assert (summary.opened, summary.failed) == (2, 0)
    rows = list(csv.DictReader((tmp_path / "bank" / "accounts.out.csv").open()))
    assert [r["outcome"] for r in rows] == ["account_opened"] * 2
    assert (
        rows[0]["chip_serial"] == cards[0].serial.hex().upper() and rows[0]["ssn"] == cards[0].ssn
    )
    host = IssuerHost(bank_store())
    with InProcessTransport(VirtualCard.load(cards[0].image)) as t:
        got = drive(terminal.ec_load(host, 5000), t.transmit)
        assert (got.balance_before, got.balance_after) == (0, 5000)
        bought = drive(terminal.ec_purchase(999), t.transmit)
        assert bought.approved and bought.balance_after == 4001
        assert drive(terminal.ec_balance(), t.transmit).balance == 4001
    # a second bank run finds the transport keys replaced: the card fails, nothing changes
    again = demo.bank_stage(tmp_path, cards[:1])
    assert again.failed == 1
    assert VirtualCard.load(cards[0].image).state.pboc.ec_balance == 4001


@pytest.mark.parametrize("key", ["card_id", "ssn"])
def test_cards_matched_by_card_id_or_ssn(tmp_path: Path, key: str) -> None:
    cards = demo.factory_cards(tmp_path, 2)
    summary = demo.bank_stage(tmp_path, cards, key=key)
    assert summary.opened == 2, summary


def test_wrong_transport_keys_stop_the_batch_after_three_cards(tmp_path: Path) -> None:
    from cardperso.errors import SecurityError

    cards = demo.factory_cards(tmp_path, 4)
    with pytest.raises(SecurityError, match="3 cards in a row"):
        demo.bank_stage(tmp_path, cards, batch="B2")  # another batch's transport keys
    assert not VirtualCard.load(cards[3].image).state.pboc.ac_key
    state = VirtualCard.load(cards[0].image).state
    assert state.ssd(bytes.fromhex("A00000033353534401")).auth_failures == 0  # type: ignore[union-attr]


def test_wrong_bank_keys_fail_the_card(tmp_path: Path) -> None:
    cards = demo.factory_cards(tmp_path, 1)
    other = generate_file(tmp_path / "other.json")
    for name in ("bank-kmc", "bank-ssd-transport-kmc", "kek-exchange"):
        other.generate_key(name, "3DES")
    summary = demo.bank_stage(tmp_path, cards, store=other)
    assert summary.failed == 1
    assert not VirtualCard.load(cards[0].image).state.pboc.ac_key


def test_bank_input_validation_and_rejects(tmp_path: Path) -> None:
    two = load_two_stage("ssc3-pboc-2stage")
    assert two.bank.pboc is not None
    good = "A0000001,,110101193501010014,张三,6214830000000009,01,20260115,20360115,123456,0"
    lines = [
        "chip_serial,card_id,ssn,name,pan,pan_seq,issue_date,expiry_date,pin,ec_balance",
        good,
        good.replace("6214830000000009", "6214830000000017").replace("A0000001", "A0000002")
        .replace("110101193501010014", "110101193501010015"),  # bad check character
        good.replace("A0000001", "A0000003").replace("0009", "0008"),  # Luhn
        good.replace("A0000001", "A0000004"),  # duplicate PAN
        good.replace("A0000001", "A0000005").replace("6214830000000009", "6214830000000025")
        .replace(",123456,0", ",123456,99999"),  # balance over the limit
        good.replace("A0000001", "XYZ").replace("6214830000000009", "6214830000000033"),
    ]  # fmt: skip
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rejects = RejectsWriter(tmp_path / "rejects.csv")
    batch = read_accounts(path, two.bank.pboc, 6, rejects)
    rejects.close()
    assert (batch.read, batch.rejected, len(batch)) == (6, 5, 1)
    rows = list(csv.DictReader((tmp_path / "rejects.csv").open(encoding="utf-8")))
    assert [r["field"] for r in rows] == ["ssn", "pan", "pan", "ec_balance", "chip_serial"]
    assert all("110101193501010014" not in r["ssn_masked"] for r in rows)


@pytest.mark.parametrize("after", [4, 9, 14])
def test_card_pulled_out_during_bank_personalization_resumes(tmp_path: Path, after: int) -> None:
    """The card leaves the reader part-way (before PUT KEY, after it, during STORE DATA): the
    card fails, and a second run on the same card completes it."""
    cards = demo.factory_cards(tmp_path, 1)
    card = VirtualCard.load(cards[0].image)
    card.faults.remove_after = after
    two = load_two_stage("ssc3-pboc-2stage")
    assert two.bank.pboc is not None
    store = bank_store()
    batch = read_accounts(demo.bank_input(tmp_path, cards), two.bank.pboc, 6)
    plan = BankPlan(two, "B1", pin_seed=pin_seed_for(store, "transport-kek", "B1"),
                    icc_pool=demo.bank_pool(tmp_path, store, 4))  # fmt: skip
    t = InProcessTransport(card)
    t.connect()
    with AccountFile(tmp_path / "a1.csv") as out:
        first = personalize_batch(batch, plan, store, iter([t]), out)
    assert first.failed == 1
    rows = list(csv.DictReader((tmp_path / "a1.csv").open(encoding="utf-8")))
    assert [r["outcome"] for r in rows] == ["card_error"]  # not an account failure: retry
    card.faults.reinsert()
    again = demo.bank_stage(tmp_path, cards)
    assert again.opened == 1, list(csv.DictReader((tmp_path / "bank" / "accounts.out.csv").open()))
    with InProcessTransport(VirtualCard.load(cards[0].image)) as t2:
        host = IssuerHost(store)
        assert drive(terminal.ec_load(host, 100), t2.transmit).balance_after == 100


def test_several_stations_at_once(tmp_path: Path) -> None:
    from cardperso.bank.personalize import personalize_stations

    cards = demo.factory_cards(tmp_path, 4)
    two = load_two_stage("ssc3-pboc-2stage")
    assert two.bank.pboc is not None
    store = bank_store()
    batch = read_accounts(demo.bank_input(tmp_path, cards), two.bank.pboc, 6)
    plan = BankPlan(two, "B1", pin_seed=pin_seed_for(store, "transport-kek", "B1"),
                    icc_pool=demo.bank_pool(tmp_path, store, 4))  # fmt: skip

    def station(mine: list[demo.FactoryCard]):  # type: ignore[no-untyped-def]
        for c in mine:
            with InProcessTransport(VirtualCard.load(c.image)) as t:
                yield t

    with AccountFile(tmp_path / "acc.csv") as out:
        summary = personalize_stations(
            batch, plan, store, [station(cards[0::2]), station(cards[1::2])], out
        )
    assert (summary.cards, summary.opened) == (4, 4)
    rows = list(csv.DictReader((tmp_path / "acc.csv").open(encoding="utf-8")))
    assert sorted(r["chip_serial"] for r in rows) == sorted(c.serial.hex().upper() for c in cards)


def test_personalize_cli_needs_one_batch_source(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cardperso.cli.main import _register, cli

    _register()
    path = tmp_path / "in.csv"
    path.write_text("ssn\n", encoding="utf-8")
    common = ["bank", "personalize", str(path), "--profile", "ssc3-pboc-2stage"]
    common += ["--keys", str(demo.BANK_KEYS), "--reader", "none"]
    for extra in ([], ["--batch", "B1", "--transport", str(path)]):
        out = CliRunner().invoke(cli, [*common, *extra])
        assert out.exit_code == 2 and "exactly one of" in out.output, out.output
