"""A run's offline data authentication (cardperso.prep.oda_run): an exhausted ICC key pool
stops prep and the bank's two-stage batch before the first record or card, a product whose AIP
claims SDA, DDA or CDA without the data is refused, and a run that names no pool makes at most
SCRATCH_MAX keys of its own (removed afterwards)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.bank.accounts import AccountFile, read_accounts
from cardperso.bank.personalize import BankPlan, personalize_batch, pin_seed_for
from cardperso.bank.twostage import load_two_stage
from cardperso.card.vcard import VirtualCard
from cardperso.cli.main import _register, cli
from cardperso.errors import UsageError
from cardperso.keystore.pool import IccKeyPool, PoolExhausted
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.oda_run import SCRATCH_MAX, ensure_pool, plan_run
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from cardperso.sim import bank_demo as demo
from cardperso.sim.inprocess import InProcessTransport

SAMPLE = Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json"


def test_prep_refuses_an_exhausted_pool_before_any_output(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    shutil.copy(SAMPLE, keys)
    _register()
    run = CliRunner().invoke
    made = run(cli, ["keys", "pool", "generate", str(keys), "--bits", "1024", "--count", "2"])
    assert made.exit_code == 0, made.output
    make_batch(tmp_path / "batch.csv", 4, photos=1)  # 5 lines: 4 keys needed
    out = run(cli, ["prep", str(tmp_path / "batch.csv"), "-p", "ssc3-pboc", "-k", str(keys),
                    "-o", str(tmp_path / "b.cppf"), "-r", str(tmp_path / "r.csv")])  # fmt: skip
    assert out.exit_code != 0
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and "the run needs 4 keys, 2 are free" in lines[0], out.output
    assert "keys pool generate --bits 1024" in lines[0] and "Traceback" not in out.output
    assert not (tmp_path / "b.cppf").exists() and not (tmp_path / "r.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file
    status = IccKeyPool(tmp_path / "keys.json.icc-pool" / "rsa1024").status()
    assert (status.total, status.free) == (2, 2)  # nothing reserved


def test_an_aip_that_claims_oda_without_its_data_is_refused(
    sample_keystore: SoftwareKeyStore,
) -> None:
    profile = load_profile("ssc3-pboc")
    assert profile.pboc is not None
    bare = dataclasses.replace(profile, pboc=dataclasses.replace(profile.pboc, oda=None))
    with pytest.raises(UsageError, match=r"DGI 9104 claims SDA, DDA, CDA without the data"):
        plan_run(bare, sample_keystore, None, lines=lambda: 1, first_line=2, label="x")
    no_93 = dataclasses.replace(
        profile,
        pboc=dataclasses.replace(
            profile.pboc, oda=dataclasses.replace(profile.pboc.oda, ssad_dgi=None)
        ),
    )
    with pytest.raises(UsageError, match=r"claims SDA without the data"):
        plan_run(no_93, sample_keystore, None, lines=lambda: 1, first_line=2, label="x")
    # ssc2-pboc carries no chain and claims none (AIP 1C00): nothing to plan
    assert plan_run(load_profile("ssc2-pboc"), sample_keystore, None, lines=lambda: 1,
                    first_line=2, label="x") is None  # fmt: skip


def test_a_run_without_a_pool_makes_few_keys_of_its_own(
    sample_keystore: SoftwareKeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a temporary directory of the test's own: the machine's /tmp is shared with other runs,
    # whose scratch pools would come and go under the comparison below
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    profile = load_profile("ssc3-pboc")
    before = set(Path(tempfile.gettempdir()).glob("cardperso-icc-*"))
    assert before == set()
    with pytest.raises(UsageError, match="input lines need a pool"):
        plan_run(profile, sample_keystore, None, lines=lambda: SCRATCH_MAX + 1, first_line=2,
                 label="x")  # fmt: skip
    run = plan_run(profile, sample_keystore, None, lines=lambda: 2, first_line=2, label="x")
    assert run is not None and run.scratch is not None
    assert Path(run.scratch).parent == tmp_path / "tmp"  # made where the test looks
    assert (run.reservation.count, run.reservation.bits) == (2, 1024)
    run.close()
    assert set(Path(tempfile.gettempdir()).glob("cardperso-icc-*")) == before


def test_bank_batch_refuses_an_exhausted_pool_before_the_first_card(tmp_path: Path) -> None:
    cards = demo.factory_cards(tmp_path, 2)
    two = load_two_stage("ssc3-pboc-2stage")
    assert two.bank.pboc is not None
    store = SoftwareKeyStore.load(demo.BANK_KEYS)
    pool = ensure_pool(two.bank, store, lambda: store, tmp_path / "pool", 1)
    assert pool is not None
    batch = read_accounts(demo.bank_input(tmp_path, cards), two.bank.pboc, 6)
    plan = BankPlan(two, "B1", pin_seed=pin_seed_for(store, "transport-kek", "B1"),
                    icc_pool=pool[0])  # fmt: skip
    touched: list[bytes] = []

    def transports():  # type: ignore[no-untyped-def]
        for c in cards:
            touched.append(c.serial)
            with InProcessTransport(VirtualCard.load(c.image)) as t:
                yield t

    with (
        AccountFile(tmp_path / "accounts.csv") as out,
        pytest.raises(PoolExhausted, match="the run needs 2 keys, 1 are free"),
    ):
        personalize_batch(batch, plan, store, transports(), out)
    assert touched == []
    assert all(not VirtualCard.load(c.image).state.pboc.ac_key for c in cards)
    assert IccKeyPool(tmp_path / "pool").status().free == 1
    no_pool = dataclasses.replace(plan, icc_pool=None)
    with AccountFile(tmp_path / "a2.csv") as out, pytest.raises(UsageError, match="--icc-pool"):
        personalize_batch(batch, no_pool, store, transports(), out)


def test_profile_check_refuses_an_aip_claim_without_the_data(tmp_path: Path) -> None:
    from profile_variants import REFERENCE, without_oda

    text = without_oda(REFERENCE.read_text(encoding="utf-8")).replace(
        "value: 1C00}", "value: 7C00}"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("name: ssc3-pboc", "name: bad", 1), encoding="utf-8")
    _register()
    out = CliRunner().invoke(cli, ["profile", "check", str(bad)])
    assert out.exit_code == 2 and "claims SDA, DDA without the data (pboc.oda)" in out.output
    ok = CliRunner().invoke(cli, ["profile", "check", str(REFERENCE)])
    assert ok.exit_code == 0, ok.output


def test_a_pan_of_another_issuer_is_rejected_with_its_field(tmp_path: Path) -> None:
    import csv

    from cardperso.codec.numbers import luhn_check_digit

    make_batch(tmp_path / "batch.csv", 3, photos=1)
    rows = list(csv.DictReader((tmp_path / "batch.csv").open(encoding="utf-8", newline="")))
    body = "621700" + rows[1]["pan"][6:-1]  # another bank's prefix: the certificate cannot match
    rows[1]["pan"] = body + luhn_check_digit(body)
    with (tmp_path / "batch.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    _register()
    out = CliRunner().invoke(
        cli, ["prep", str(tmp_path / "batch.csv"), "-p", "ssc3-pboc", "-k", str(SAMPLE),
              "-o", str(tmp_path / "b.cppf"), "-r", str(tmp_path / "r.csv")],
    )  # fmt: skip
    assert out.exit_code == 1 and "prepared 2, rejected 1" in out.output, out.output
    (rej,) = list(csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8")))
    assert (rej["line"], rej["field"]) == ("3", "pan")
    assert rej["reason"] == "does not start with the issuer identifier 622848 (pboc.oda.issuer_id)"
    assert rows[1]["pan"] not in (tmp_path / "r.csv").read_text(encoding="utf-8")


def test_bank_refuses_a_pan_of_another_issuer_before_touching_the_card(tmp_path: Path) -> None:
    import csv

    from cardperso.codec.numbers import luhn_check_digit

    cards = demo.factory_cards(tmp_path, 1)
    two = load_two_stage("ssc3-pboc-2stage")
    assert two.bank.pboc is not None
    store = SoftwareKeyStore.load(demo.BANK_KEYS)
    path = demo.bank_input(tmp_path, cards)
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    body = "621700" + rows[0]["pan"][6:-1]
    rows[0]["pan"] = body + luhn_check_digit(body)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    batch = read_accounts(path, two.bank.pboc, 6)
    plan = BankPlan(two, "B1", pin_seed=pin_seed_for(store, "transport-kek", "B1"),
                    icc_pool=demo.bank_pool(tmp_path, store, 1))  # fmt: skip

    def transports():  # type: ignore[no-untyped-def]
        with InProcessTransport(VirtualCard.load(cards[0].image)) as t:
            yield t

    with AccountFile(tmp_path / "accounts.csv") as out:
        summary = personalize_batch(batch, plan, store, transports(), out)
    assert (summary.opened, summary.failed) == (0, 1)
    (row,) = list(csv.DictReader((tmp_path / "accounts.csv").open(encoding="utf-8")))
    assert row["outcome"] == "account_failed" and "issuer identifier 622848" in row["reason"]
    assert not VirtualCard.load(cards[0].image).state.pboc.ac_key  # nothing written
