"""The per-card chip workflow end to end, in process: a prepared perso file personalizes blank
virtual cards, which are then read back (SSSE records, PBOC records, an ARQC that verifies)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pytest

from cardperso.card.vcard import VirtualCard
from cardperso.chip.model import ChipFailure
from cardperso.chip.plan import card_data, chip_plan
from cardperso.chip.script import check_atr, personalize
from cardperso.chip.transport import drive
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.container import iter_records, read_header
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from cardperso.sim.inprocess import InProcessTransport

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_KEYS = ROOT / "keys-sample" / "keys.json"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("wf")
    make_batch(tmp / "batch.csv", 4, seed=3)
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    profile = load_profile("ssc3-pboc")
    out = tmp / "batch.perso"
    summary = prepare(
        tmp / "batch.csv", profile, store, functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS),
        out, tmp / "rejects.csv", PrepOptions(batch_id="WF1", created=1_700_000_000),
    )  # fmt: skip
    assert summary.prepared == 4
    return out, profile


def _records(path: Path) -> list[object]:
    return [body for _, body in iter_records(path, SoftwareKeyStore.load(SAMPLE_KEYS))]


@pytest.mark.parametrize("scp", ["02", "03"])
def test_blank_virtual_cards_are_personalized_and_verified(
    prepared: tuple[Path, object], tmp_path: Path, scp: str
) -> None:
    path, profile = prepared
    with path.open("rb") as fh:
        header, _ = read_header(fh)
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    plan = chip_plan(profile, header, scp=scp)  # type: ignore[arg-type]
    for n, body in enumerate(_records(path)[:2]):
        card = VirtualCard.create_blank(tmp_path / f"card{n}.json", scp=scp)
        transport = InProcessTransport(card)
        atr = transport.connect()
        check_atr(atr, plan)
        data = card_data(header, body, n)  # type: ignore[arg-type]
        result = drive(personalize(data, plan, store), transport.transmit)
        assert result.arqc_verified
        assert result.checks == ("ssse-records", "pboc-records", "arqc")
        assert result.chip_serial == card.serial
        assert result.card_id[8:12] == card.serial  # the chip serial went into the card id
        # the transport keys were replaced: they no longer open the card ...
        again = VirtualCard.load(tmp_path / f"card{n}.json")
        t2 = InProcessTransport(again)
        t2.connect()
        with pytest.raises(ChipFailure, match="INITIALIZE UPDATE"):
            drive(personalize(data, plan, store), t2.transmit)
        # ... the per-card keys do, and the personalized card refuses to be personalized again
        per_card = dataclasses.replace(
            plan,
            transport_kmc=plan.kmc,
            transport_diversification=plan.diversification,
            put_key=False,
        )
        t2.reconnect()
        with pytest.raises(ChipFailure, match="INSTALL"):
            drive(personalize(data, per_card, store), t2.transmit)


def test_wrong_kmc_is_an_authentication_failure_never_retried(
    prepared: tuple[Path, object], tmp_path: Path
) -> None:
    path, profile = prepared
    with path.open("rb") as fh:
        header, _ = read_header(fh)
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    plan = chip_plan(profile, header, transport_kmc="pboc-imk-ac")  # type: ignore[arg-type]
    card = VirtualCard.create_blank(tmp_path / "c.json")
    transport = InProcessTransport(card)
    transport.connect()
    with pytest.raises(ChipFailure) as info:
        drive(personalize(card_data(header, _records(path)[0], 0), plan, store), transport.transmit)  # type: ignore[arg-type]
    assert info.value.auth_failure and info.value.step == "INITIALIZE UPDATE"


def test_encrypted_first_order_saves_store_data_commands(
    prepared: tuple[Path, object], tmp_path: Path
) -> None:
    path, profile = prepared
    with path.open("rb") as fh:
        header, _ = read_header(fh)
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    plan = chip_plan(profile, header)  # type: ignore[arg-type]
    body = _records(path)[0]
    counts = {}
    for order in ("prepared", "encrypted-first"):
        card = VirtualCard.create_blank(tmp_path / f"{order}.json")
        transport = InProcessTransport(card)
        transport.connect()
        result = drive(
            personalize(
                card_data(header, body, 0), dataclasses.replace(plan, store_data_order=order), store
            ),  # type: ignore[arg-type]
            transport.transmit,
        )
        assert result.checks == ("ssse-records", "pboc-records", "arqc")
        counts[order] = result.apdus
    assert counts["encrypted-first"] < counts["prepared"]


def _prepare(tmp: Path, profile: object) -> tuple[Path, object]:
    make_batch(tmp / "batch.csv", 1, seed=5)
    out = tmp / "batch.perso"
    summary = prepare(
        tmp / "batch.csv", profile, SoftwareKeyStore.load(SAMPLE_KEYS),  # type: ignore[arg-type]
        functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), out, tmp / "rejects.csv",
        PrepOptions(batch_id="WF2", created=1_700_000_000),
    )  # fmt: skip
    assert summary.prepared == 1
    with out.open("rb") as fh:
        header, _ = read_header(fh)
    return out, header


def _emv_csk_profile(tmp_path: Path) -> object:
    """ssc3-pboc with a 9F10 whose CVN (0A) is not PBOC's, so the cryptograms use the EMV
    common session key over the whole CDOL1 data (pboc.session_key: emv-csk)."""
    text = (ROOT / "profiles" / "ssc3-pboc.yaml").read_text(encoding="utf-8")
    pboc_iad = "iad: 07010103A00000010A01000000000000000000"
    assert pboc_iad in text and "session_key: pboc " in text
    text = text.replace(pboc_iad, "iad: 07010A03A00000010A01000000000000000000")
    text = text.replace("session_key: pboc ", "session_key: emv-csk ")
    text = text.replace("name: ssc3-pboc\n", "name: ssc3-emv-csk\n", 1)
    path = tmp_path / "ssc3-emv-csk.yaml"
    path.write_text(text, encoding="utf-8")
    profile = load_profile(path)
    assert profile.pboc is not None and profile.pboc.session_key == "emv-csk"
    return profile


def test_read_back_verifies_an_emv_common_session_key_card(tmp_path: Path) -> None:
    profile = _emv_csk_profile(tmp_path)
    path, header = _prepare(tmp_path, profile)
    plan = chip_plan(profile, header)  # type: ignore[arg-type]
    card = VirtualCard.create_blank(tmp_path / "card.json")
    transport = InProcessTransport(card)
    transport.connect()
    data = card_data(header, _records(path)[0], 0)  # type: ignore[arg-type]
    result = drive(personalize(data, plan, SoftwareKeyStore.load(SAMPLE_KEYS)), transport.transmit)
    assert result.arqc_verified
    assert result.checks == ("ssse-records", "pboc-records", "arqc")


@pytest.mark.parametrize(
    ("what", "step"),
    [
        ("arqc", "ARQC does not verify with the issuer master key"),
        ("cvn", "the card's 9F10 does not name the personalized DKI and CVN"),
    ],
)
def test_read_back_rejects_a_card_whose_arqc_is_wrong(
    prepared: tuple[Path, object], tmp_path: Path, what: str, step: str
) -> None:
    path, profile = prepared
    with path.open("rb") as fh:
        header, _ = read_header(fh)
    plan = chip_plan(profile, header)  # type: ignore[arg-type]
    card = VirtualCard.create_blank(tmp_path / "card.json")
    transport = InProcessTransport(card)
    transport.connect()

    def wrong_arqc(apdu: bytes) -> bytes:
        # the card's GENERATE AC answer with one bit of its cryptogram 9F26 flipped, or its
        # 9F10 naming CVN 0A (the EMV common session key) instead of the personalized 01
        answer = transport.transmit(apdu)
        mark, offset = (b"\x9f\x26\x08", 0) if what == "arqc" else (b"\x9f\x10\x13", 2)
        at = answer.find(mark) + 3 + offset
        if apdu[1] != 0xAE or at < 3 + offset:
            return answer
        flipped = 0x0B if what == "cvn" else 0x01
        return answer[:at] + bytes((answer[at] ^ flipped,)) + answer[at + 1 :]

    data = card_data(header, _records(path)[0], 0)  # type: ignore[arg-type]
    with pytest.raises(ChipFailure, match=step) as info:
        drive(personalize(data, plan, SoftwareKeyStore.load(SAMPLE_KEYS)), wrong_arqc)
    assert info.value.step == "GENERATE AC"
