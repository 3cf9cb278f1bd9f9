"""The PKI application on the two-stage product (issue 17 with issue 11's factory and bank):
the factory makes the SSSE, the bank's security domain and the PKI application (the same PKI
step as on the line, after the factory's own steps), then the bank personalizes the PBOC
application under its domain; the PKI application is whole before and after the bank's stage.

Outside reference: ``openssl verify`` (link by link, standard SM2 ID) and ``openssl pkeyutl
-verify`` check every card's chain and its signature of a challenge after the PIN
(:func:`cardperso.cli.pki.check_readout`)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cardperso.bank.factory import factory_card
from cardperso.bank.twostage import load_two_stage
from cardperso.card.vcard import VirtualCard
from cardperso.chip.pki import load_certificates, pki_step, read_pki
from cardperso.chip.plan import card_data, chip_plan
from cardperso.chip.script import Steps
from cardperso.chip.transport import drive
from cardperso.cli.pki import check_readout, write_pki_files
from cardperso.keystore.sm2keys import PKI_ISSUING_KEY, PKI_ROOT_KEY
from cardperso.pki.testpki import make_test_pki
from cardperso.prep.container import iter_records, verify
from cardperso.sim import bank_demo as demo
from cardperso.sim.inprocess import InProcessTransport
from cardperso.sim.pki_demo import PKI_SECTION, card_pin
from cardperso.storage.db import Database

ROOT = Path(__file__).resolve().parents[1]


def _pki_ok(image: Path, pin: bytes, chain: list[bytes], work: Path) -> bool:
    challenge = b"two-stage card, signed after its PIN"
    with InProcessTransport(VirtualCard.load(image)) as t:
        got = drive(read_pki(pin, challenge), t.transmit)
    work.mkdir(exist_ok=True)
    lines: list[str] = []
    ok = check_readout(got, challenge, chain, work, lines.append)
    assert ok, lines
    return ok


def test_the_two_stage_factory_makes_the_pki_and_the_bank_stage_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the two-stage product with the PKI application (found by name), the sample CA keys
    monkeypatch.setenv("CARDPERSO_PROFILES", str(tmp_path))
    text = (ROOT / "profiles" / "ssc3-pboc-2stage.yaml").read_text(encoding="utf-8")
    text = text.replace("name: ssc3-pboc-2stage", "name: ssc3-pboc-2stage-pki", 1)
    (tmp_path / "ssc3-pboc-2stage-pki.yaml").write_text(
        text + PKI_SECTION.format(issuing=PKI_ISSUING_KEY), encoding="utf-8"
    )
    two = load_two_stage("ssc3-pboc-2stage-pki")
    assert two.factory.pki is not None
    perso, delivery, store = demo.factory_batch(tmp_path, 2, two=two)
    write_pki_files(tmp_path / "pki", make_test_pki(store.sm2_signer(PKI_ROOT_KEY),
                                                    store.sm2_signer(PKI_ISSUING_KEY)))  # fmt: skip
    chain = load_certificates(tmp_path / "pki" / "chain.pem")
    header = verify(perso, store).header
    plan = chip_plan(two.factory, header)
    step = pki_step(two.factory, store, Database(tmp_path / "journal.db"))
    assert step is not None
    with (tmp_path / "batch.csv").open(encoding="utf-8", newline="") as fh:
        rows = dict(enumerate(csv.DictReader(fh), 2))
    cards = []
    for index, (line, body) in enumerate(iter_records(perso)):
        image = tmp_path / f"card{index}.json"
        card = VirtualCard.create_blank(image, serial=(0xB0000000 + index).to_bytes(4, "big"))
        data = card_data(header, body, index)

        def factory(data: object = data) -> Steps:
            made = yield from factory_card(two, data, plan, store, delivery)  # type: ignore[arg-type]
            return made.chip

        with InProcessTransport(card) as t:
            result = drive(step.after(factory(), data, plan, None, b""), t.transmit)
        assert [c for c in result.checks if c.startswith("PKI")] and len(result.checks) >= 2
        state = VirtualCard.load(image).state
        assert state.ssds and state.pki is not None, "the bank's domain and the PKI application"
        pin = card_pin(perso, store, line)  # records are named by their input line
        assert _pki_ok(image, pin, chain, tmp_path / f"w{index}a")
        cards.append((demo.FactoryCard(image, result.chip_serial, result.card_id,
                                       rows[line]["ssn"], rows[line]["name"]), pin))  # fmt: skip
    # the bank's stage opens its domain and personalizes PBOC; the PKI application stays whole
    summary = demo.bank_stage(tmp_path, [c for c, _ in cards])
    assert (summary.opened, summary.failed) == (2, 0)
    for n, (c, pin) in enumerate(cards):
        assert VirtualCard.load(c.image).state.pboc is not None
        assert _pki_ok(c.image, pin, chain, tmp_path / f"w{n}b")
