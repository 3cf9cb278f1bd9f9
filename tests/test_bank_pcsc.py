"""The two-stage flow through the real PC/SC stack (pcscd + vpcd) with the CLI: factory
(SSSE + the bank's SSD), bank personalization, EC load, offline purchase; refusals leave the
balance unchanged; each party's keys are refused on the other's domain; no bank key in any
factory output."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cardperso.bank import terminal
from cardperso.bank.host import AuthRequest, AuthResponse, IssuerHost
from cardperso.bank.twostage import load_two_stage, transport_keys
from cardperso.card import VirtualCard
from cardperso.card.ssse import SSSE_NAME
from cardperso.chip.transport import drive
from cardperso.cli.main import _register, cli
from cardperso.codec.numbers import luhn_check_digit
from cardperso.devices.pcsc import PcscTransport
from cardperso.errors import CardError, CryptogramMismatch
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.sim import bank_demo as demo
from fixtures_pcsc import LabSlot, PcscLab

pytestmark = pytest.mark.pcsc

BANK_KEYS = demo.BANK_KEYS
SERIAL = bytes.fromhex("5A5A0001")


def invoke(*args: str) -> Result:
    _register()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def bank_store() -> SoftwareKeyStore:
    return SoftwareKeyStore.load(BANK_KEYS)


@pytest.fixture
def two_stage_card(pcsc_slot: LabSlot, tmp_path: Path) -> tuple[LabSlot, Path, VirtualCard]:
    """Factory then bank, through the CLI over PC/SC; returns the slot, the work dir, the card."""
    factory_dir = tmp_path / "factory"
    factory_dir.mkdir()
    two = load_two_stage("ssc3-pboc-2stage")
    # the bank makes the delivery file; the factory prepares its batch (no bank key needed)
    out = invoke(
        "bank", "transport-keys", "--profile", "ssc3-pboc-2stage", "--keys", str(BANK_KEYS),
        "--batch", "B1", "--out", str(factory_dir / "delivery.json"),
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    perso, _, fstore = demo.factory_batch(factory_dir, 1, two=two, batch="B1")
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    fstore.save(keys_dir / "factory-keys.json")
    card = VirtualCard.create_blank(tmp_path / "card.json", serial=SERIAL)
    pcsc_slot.insert(card)
    out = invoke(
        "bank", "factory", str(perso), "--reader", pcsc_slot.name, "--keys",
        str(keys_dir / "factory-keys.json"), "--delivery", str(factory_dir / "delivery.json"),
        "--handover", str(factory_dir / "handover.csv"), "--count", "1",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    (factory_dir / "factory-cli.txt").write_text(out.output, encoding="utf-8")
    assert "bank SSD created" in out.output
    # the bank's input: the batch's cardholder, named by SSN (handover maps it to the chip)
    with (factory_dir / "batch.csv").open(encoding="utf-8") as fh:
        person = next(csv.DictReader(fh))
    bank_dir = tmp_path / "bank"
    bank_dir.mkdir()
    accounts_in = bank_dir / "accounts-in.csv"
    accounts_in.write_text(
        "ssn,name,pan,pan_seq,issue_date,expiry_date,pin,ec_balance,ec_limit,ec_single_limit\n"
        f"{person['ssn']},{person['name']},6228480000000007,01,20260115,20360115,123456,0,"
        "10000,2000\n",
        encoding="utf-8",
    )
    # the bank's line: its stations' readers (the bank's encoders have no printer step here)
    line = bank_dir / "bank-line.yaml"
    line.write_text(
        f'stations:\n  - {{name: b1, printer: /dev/null, reader: "{pcsc_slot.name}"}}\n',
        encoding="utf-8",
    )
    out = invoke(
        "bank", "personalize", str(accounts_in), "--profile", "ssc3-pboc-2stage",
        "--keys", str(BANK_KEYS), "--batch", "B1",
        "--icc-pool", demo.bank_pool(bank_dir, bank_store(), 1) or "",
        "--line", str(line), "--count", "1", "--handover", str(factory_dir / "handover.csv"),
        "--out", str(bank_dir / "accounts.csv"), "--rejects", str(bank_dir / "rejects.csv"),
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert person["ssn"] not in out.output and "6228480000000007" not in out.output
    rows = list(csv.DictReader((bank_dir / "accounts.csv").open(encoding="utf-8")))
    assert [(r["chip_serial"], r["pan"], r["ssn"], r["outcome"]) for r in rows] == [
        ("5A5A0001", "6228480000000007", person["ssn"], "account_opened")
    ]
    return pcsc_slot, tmp_path, card


def balance(slot: LabSlot) -> int:
    with PcscTransport(slot.name) as t:
        return drive(terminal.ec_balance(), t.transmit).balance


def test_two_stage_flow_load_and_purchase(
    two_stage_card: tuple[LabSlot, Path, VirtualCard],
) -> None:
    slot, _, _ = two_stage_card
    out = invoke("bank", "verify", "--reader", slot.name, "--keys", str(BANK_KEYS))
    assert out.exit_code == 0 and "arqc" in out.output and "via PSE" in out.output, out.output
    out = invoke("bank", "ec-balance", "--reader", slot.name)
    assert "balance limit          100.00 yuan" in out.output, out.output
    out = invoke(
        "bank", "ec-load", "--reader", slot.name, "--amount", "5000", "--keys", str(BANK_KEYS)
    )
    assert out.exit_code == 0 and "0.00 -> 50.00 yuan" in out.output, out.output
    with PcscTransport(slot.name) as t:
        bought = drive(terminal.ec_purchase(1234), t.transmit)
    assert bought.approved and (bought.balance_before, bought.balance_after) == (5000, 3766)
    assert balance(slot) == 3766


def test_refusals_leave_the_balance_unchanged(
    two_stage_card: tuple[LabSlot, Path, VirtualCard],
) -> None:
    slot, _, _ = two_stage_card
    good = IssuerHost(bank_store())
    with PcscTransport(slot.name) as t:
        drive(terminal.ec_load(good, 1000), t.transmit)
    assert balance(slot) == 1000
    # load past the limit (10000): refused before the card is touched
    out = invoke(
        "bank", "ec-load", "--reader", slot.name, "--amount", "9001", "--keys", str(BANK_KEYS)
    )
    assert out.exit_code == 1 and "balance limit" in out.output
    assert balance(slot) == 1000
    # wrong ARQC: the factory's sample IMKs are not the bank's
    out = invoke("bank", "ec-load", "--reader", slot.name, "--amount", "100", "--keys",
                 str(demo.SAMPLE_KEYS))  # fmt: skip
    assert out.exit_code == 1 and "does not verify" in out.output, out.output
    assert balance(slot) == 1000

    # wrong MAC: the script's MAC bytes are altered on the way
    class BadMac(IssuerHost):
        def authorize_load(self, req: AuthRequest, **kw: int) -> AuthResponse:
            answer = super().authorize_load(req, **kw)
            script = answer.scripts[0]
            return AuthResponse(answer.arc, answer.arpc, (script[:-1] + bytes((script[-1] ^ 1,)),))

    with PcscTransport(slot.name) as t, pytest.raises(CardError) as err:
        drive(terminal.ec_load(BadMac(bank_store()), 100), t.transmit)
    assert err.value.sw == 0x6988
    assert balance(slot) == 1000

    # replayed script: a script captured in one transaction sent in a later one
    captured: list[bytes] = []

    class Capture(IssuerHost):
        def authorize_load(self, req: AuthRequest, **kw: int) -> AuthResponse:
            answer = super().authorize_load(req, **kw)
            captured.extend(answer.scripts)
            return answer

    class Replay(IssuerHost):
        def authorize_load(self, req: AuthRequest, **kw: int) -> AuthResponse:
            answer = super().authorize_load(req, **kw)
            return AuthResponse(answer.arc, answer.arpc, (captured[0],))

    with PcscTransport(slot.name) as t:
        drive(terminal.ec_load(Capture(bank_store()), 500), t.transmit)
    assert balance(slot) == 1500
    with PcscTransport(slot.name) as t, pytest.raises(CardError) as err:
        drive(terminal.ec_load(Replay(bank_store()), 2000), t.transmit)
    assert err.value.sw == 0x6988
    assert balance(slot) == 1500


def test_each_party_refused_on_the_other_domain(
    two_stage_card: tuple[LabSlot, Path, VirtualCard],
) -> None:
    from cardperso.bank.factory import _isd_keys
    from cardperso.bank.personalize import BankPlan, _bank_keys
    from cardperso.chip.gp import install_for_perso, open_domain
    from cardperso.chip.plan import chip_plan
    from cardperso.prep.container import verify

    slot, tmp, card = two_stage_card
    two = load_two_stage("ssc3-pboc-2stage")
    fstore = SoftwareKeyStore.load(tmp / "keys" / "factory-keys.json")
    header = verify(tmp / "factory" / "batch.cppf", fstore).header
    plan = chip_plan(two.factory, header)
    isd_keys = lambda kdd: _isd_keys(fstore, plan, kdd)  # noqa: E731
    bank_keys = lambda kdd: _bank_keys(bank_store(), BankPlan(two, "B1"), kdd)  # noqa: E731
    isd_aid = bytes.fromhex("A000000151000000")
    with PcscTransport(slot.name) as t:
        # the factory's keys do not open the bank's domain (nor do the old transport keys)
        for keys in (isd_keys, transport_keys(bank_store(), two, "B1")):
            with pytest.raises(CryptogramMismatch):
                drive(open_domain(two.ssd.aid, keys, kvn=0), t.transmit)
        with pytest.raises(CardError) as err:  # the transport key set is gone
            drive(open_domain(two.ssd.aid, bank_keys, kvn=two.ssd.transport_kvn), t.transmit)
        assert err.value.sw == 0x6A88

        # the factory's ISD session cannot personalize the bank's application
        def factory_tries():  # type: ignore[no-untyped-def]
            s = yield from open_domain(isd_aid, isd_keys, kvn=plan.new_kvn)
            return (yield from s.send_sw(install_for_perso(two.pboc_aid)))

        assert drive(factory_tries(), t.transmit) == 0x6985
        # the bank's keys do not open the ISD, and its session cannot touch the SSSE
        with pytest.raises(CryptogramMismatch):
            drive(open_domain(isd_aid, bank_keys, kvn=0), t.transmit)

        def bank_tries():  # type: ignore[no-untyped-def]
            s = yield from open_domain(two.ssd.aid, bank_keys, kvn=two.ssd.bank_kvn)
            return (yield from s.send_sw(install_for_perso(SSSE_NAME)))

        assert drive(bank_tries(), t.transmit) == 0x6985
    state = VirtualCard.load(card.path).state
    assert state.isd.auth_failures == 0 and state.ssd(two.ssd.aid).auth_failures == 0  # type: ignore[union-attr]


def test_no_bank_key_in_factory_outputs(two_stage_card: tuple[LabSlot, Path, VirtualCard]) -> None:
    _, tmp, _ = two_stage_card
    doc = json.loads(BANK_KEYS.read_text(encoding="utf-8"))
    # secret keys, and the private parts of the ODA chain's RSA pairs
    values = [bytes.fromhex(v[part]) for k, v in doc["keys"].items() if k != "kek-exchange"
              for part in ("value", "p", "q", "dp", "dq", "qinv") if part in v]  # fmt: skip
    tk = transport_keys(bank_store(), load_two_stage("ssc3-pboc-2stage"), "B1")
    values += [tk.enc, tk.mac, tk.dek]
    needles = [n for v in values for n in (v, v.hex().encode(), v.hex().upper().encode())]
    outputs = [p for p in (tmp / "factory").rglob("*") if p.is_file()]
    assert {"batch.cppf", "delivery.json", "handover.csv", "factory-cli.txt"} <= {
        p.name for p in outputs
    }
    for p in outputs:
        blob = p.read_bytes()
        assert not any(n in blob for n in needles), p.name


@pytest.fixture
def three_slots(pcsc_lab: PcscLab) -> Iterator[list[LabSlot]]:
    pcsc_lab.heal()
    slots = [s for s in pcsc_lab.slots if s.slot.card is None][:3]
    assert len(slots) == 3, "the lab needs three free readers"
    try:
        yield slots
    finally:
        for s in slots:
            if s.slot.card is not None:
                s.remove()


def test_a_factory_batch_then_a_bank_batch_on_three_readers(
    three_slots: list[LabSlot], tmp_path: Path
) -> None:
    """Three cards at once: the factory's desktop encoder on three readers, the bank's line of
    three stations (one thread each), then every card's e-wallet loads and spends."""
    factory_dir = tmp_path / "factory"
    factory_dir.mkdir()
    two = load_two_stage("ssc3-pboc-2stage")
    perso, delivery, fstore = demo.factory_batch(factory_dir, 3, two=two, batch="B3")
    fstore.save(tmp_path / "factory-keys.json")
    cards = []
    for i, slot in enumerate(three_slots):
        card = VirtualCard.create_blank(tmp_path / f"card{i}.json", serial=bytes((0x5B, 0, 0, i)))
        slot.insert(card)
        cards.append(card)
    readers = [a for s in three_slots for a in ("--reader", s.name)]
    out = invoke(
        "bank", "factory", str(perso), *readers, "--keys", str(tmp_path / "factory-keys.json"),
        "--delivery", str(factory_dir / "delivery.json"), "--count", "3",
        "--handover", str(factory_dir / "handover.csv"),
    )  # fmt: skip
    assert out.exit_code == 0 and "3 card(s) made" in out.output, out.output
    # the bank names the cards by chip serial (taken from the handover file)
    with (factory_dir / "handover.csv").open(encoding="utf-8") as fh:
        serials = [r["chip_serial"] for r in csv.DictReader(fh)]
    with (factory_dir / "batch.csv").open(encoding="utf-8") as fh:
        people = list(csv.DictReader(fh))
    by_serial = {c.serial.hex().upper(): c for c in cards}
    lines = ["chip_serial,ssn,name,pan,issue_date,expiry_date,pin"]
    for n, serial in enumerate(serials):
        body = f"62284800000001{n}"  # the product's issuer id 622848
        pan = body + luhn_check_digit(body)
        p = people[n]
        lines.append(f"{serial},{p['ssn']},{p['name']},{pan},20260115,20360115,654321")
    accounts_in = tmp_path / "accounts-in.csv"
    accounts_in.write_text("\n".join(lines) + "\n", encoding="utf-8")
    line = tmp_path / "bank-line.yaml"
    line.write_text(
        "stations:\n"
        + "".join(
            f'  - {{name: b{i}, printer: /dev/null, reader: "{s.name}"}}\n'
            for i, s in enumerate(three_slots)
        ),
        encoding="utf-8",
    )
    out = invoke(
        "bank", "personalize", str(accounts_in), "--profile", "ssc3-pboc-2stage",
        "--keys", str(BANK_KEYS), "--transport", str(factory_dir / "delivery.json"),
        "--icc-pool", demo.bank_pool(tmp_path, bank_store(), 3) or "",
        "--line", str(line), "--count", "3", "--out", str(tmp_path / "accounts.csv"),
        "--rejects", str(tmp_path / "rejects.csv"),
    )  # fmt: skip
    assert out.exit_code == 0 and "accounts opened 3" in out.output, out.output
    assert delivery.batch == "B3" and set(serials) == set(by_serial)
    for i, slot in enumerate(three_slots):
        with PcscTransport(slot.name) as t:
            host = IssuerHost(bank_store())
            assert drive(terminal.ec_load(host, 1000 + i), t.transmit).balance_after == 1000 + i
            bought = drive(terminal.ec_purchase(300), t.transmit)
            assert bought.approved and bought.balance_after == 700 + i
