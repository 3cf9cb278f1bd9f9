"""The chip catalogue (profiles/chips) and the drivers chosen by ATR (issue 12 item 1).

The line test runs over real pcscd + vpcd: the first card fed answers a foreign chip's ATR and
must be rejected before any command reaches it (the card's own command log is empty and its
image is still blank); its record is made on the next card.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
from pathlib import Path

import pytest

from cardperso.card.vcard import VirtualCard
from cardperso.chip.drivers import GP_COMMANDS, DriverRegistry, load_drivers
from cardperso.chip.model import ChipFailure, ChipPlan
from cardperso.errors import ProfileError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.linefile import LineOptions
from cardperso.line.runner import run_line
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.chips import historical_bytes, load_catalogue, parse_chip
from cardperso.profiles.loader import load_profile
from cardperso.sim.line import SimLine
from cardperso.storage.db import Database

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_KEYS = ROOT / "keys-sample" / "keys.json"
#: An NXP JCOP 2.4.1 ATR (published in Ludovic Rousseau's smartcard_list.txt): a real chip that
#: no profile of the catalogue describes.
FOREIGN_ATR = bytes.fromhex("3BF81300008131FE454A434F5076323431B7")
GP_ATR = bytes.fromhex("3B8C80010043505353010203040190008B")  # tests/test_card_state.py

GOOD = """\
name: acme-gp
title: Acme GP chip
cos: gp
atr: {value: "3B 8C 80 01", mask: "FF FF FF FF"}
transport_key: {scheme: gp-key-set}
limits: {max_data: 128}
commands: [SELECT, GET DATA, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, PUT KEY, INSTALL,
           STORE DATA, SET STATUS, INTERNAL AUTHENTICATE, GET CHALLENGE, READ RECORD,
           GET PROCESSING OPTIONS, GENERATE AC]
"""


def test_historical_bytes_follow_the_interface_bytes() -> None:
    assert historical_bytes(GP_ATR) == bytes.fromhex("004350535301020304019000")
    # JCOP: T0 = F8 (TA1 TB1 TC1 TD1, K = 8), TD1 = 81 (TD2), TD2 = 31 (TA3), TA3 = FE
    assert historical_bytes(FOREIGN_ATR) == b"EJCOPv241"[1:]
    assert historical_bytes(bytes.fromhex("3B00")) == b""
    assert historical_bytes(bytes.fromhex("3BF8")) == b"", "truncated: no historical bytes"
    assert historical_bytes(b"\x00\x88" + bytes(8)) == b"", "TS must be 3B or 3F"


def test_the_catalogue_matches_its_own_chips_only() -> None:
    chips = load_catalogue()
    gp = next(c for c in chips if c.name == "cardperso-gp")
    assert gp.cos == "gp" and gp.max_data == 239 and not gp.extended_length
    assert gp.matches(GP_ATR)
    assert not gp.matches(FOREIGN_ATR) and not gp.matches(bytes.fromhex("3B00"))
    acme = parse_chip(GOOD, "acme-gp.yaml")
    assert acme.matches(GP_ATR) and not acme.matches(GP_ATR[:3])
    assert acme.matches(bytes.fromhex("3B8C8001FF")) and not acme.matches(FOREIGN_ATR)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("cos: gp", "cos: mifare"), r"acme-gp.yaml:3: field 'cos': 'mifare' is not one of gp"),
        (('mask: "FF FF FF FF"', 'mask: "FF FF"'), r"field 'atr.mask': must be as long"),
        (('mask: "FF FF FF FF"', 'mask: "00 00 00 00"'), r"field 'atr.mask': an all-zero mask"),
        (("atr: {", 'historical: "00"\natr: {'), r"field 'atr': give exactly one of"),
        (("max_data: 128", "max_data: 8"), r"field 'limits.max_data': must be >= 16"),
        (("SELECT,", "SELEKT,"), r"field 'commands\[0\]': 'SELEKT' is not one of"),
        (("scheme: gp-key-set", "scheme: native-master-key"), r"a gp chip's transport key"),
        (("cos: gp", "cos: native"), r"a native chip needs scheme native-master-key"),
        (
            ("cos: gp\n", "cos: native\nalgorithm: SM4\n"),
            r"a native chip needs scheme native-master-key and a key",
        ),
        (("title: Acme GP chip\n", "title: Acme\nvendor: x\n"), r"field 'vendor': unknown"),
    ],
)
def test_a_bad_chip_profile_names_file_line_and_field(
    change: tuple[str, str], message: str
) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_chip(GOOD.replace(*change), "acme-gp.yaml")


def test_the_registry_refuses_a_chip_the_driver_cannot_drive(tmp_path: Path) -> None:
    (tmp_path / "acme-gp.yaml").write_text(GOOD.replace(" PUT KEY,", ""))
    with pytest.raises(ProfileError, match=r"acme-gp.yaml: field 'commands': .* needs PUT KEY"):
        load_drivers(directory=tmp_path)
    (tmp_path / "acme-gp.yaml").write_text(GOOD.replace("name: acme-gp", "name: other"))
    with pytest.raises(ProfileError, match=r"'other' differs from the file name"):
        load_drivers(directory=tmp_path)
    with pytest.raises(ProfileError, match="none-here: the chip catalogue is not a directory"):
        load_drivers(directory=tmp_path / "none-here")
    (tmp_path / "acme-gp.yaml").unlink()
    with pytest.raises(ProfileError, match="the chip catalogue is empty"):
        load_drivers(directory=tmp_path)


def test_choose_by_atr_unknown_and_ambiguous(tmp_path: Path) -> None:
    registry = load_drivers()
    driver = registry.choose(GP_ATR)
    assert driver.cos == "gp" and driver.chip.name == "cardperso-gp"
    assert driver.chip.commands >= GP_COMMANDS
    with pytest.raises(ChipFailure, match="unknown chip: ATR 3BF81300") as exc:
        registry.choose(FOREIGN_ATR)
    assert exc.value.step == "ATR" and not exc.value.auth_failure
    two = DriverRegistry([*load_catalogue(), parse_chip(GOOD, "acme-gp.yaml")])
    with pytest.raises(ChipFailure, match=r"ambiguous chip: .* matches cardperso-gp, acme-gp"):
        two.choose(GP_ATR)
    # the chip's limit caps the plan's command data field; a larger limit leaves it
    small = DriverRegistry([parse_chip(GOOD, "acme-gp.yaml")]).choose(GP_ATR)
    assert small.plan(ChipPlan(kmc="k", kek="e")).max_data == 128
    assert driver.plan(ChipPlan(kmc="k", kek="e", max_data=200)).max_data == 200


# -- over real pcscd + vpcd ---------------------------------------------------------------------


class RecordingCard:
    """A virtual card whose commands are logged (the card's own command log)."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.faults = card.faults
        self.commands: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def power_on(self) -> bytes:
        return self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def reset(self) -> bytes:
        return self.card.reset()

    def transmit(self, apdu: bytes) -> bytes:
        self.commands.append(apdu)
        return self.card.transmit(apdu)


class RecordingReader:
    """A lab slot that logs each card's commands; the cards listed in ``foreign`` (1-based
    order fed) answer a foreign chip's ATR."""

    def __init__(self, slot: object, foreign: set[int]) -> None:
        self.slot = slot
        self.name: str = slot.name  # type: ignore[attr-defined]
        self.foreign = foreign
        self.fed: list[RecordingCard] = []

    def insert(self, card: VirtualCard) -> None:
        wrapped = RecordingCard(card)
        self.fed.append(wrapped)
        if len(self.fed) in self.foreign:
            card.faults.wrong_atr = FOREIGN_ATR
        self.slot.insert(wrapped)  # type: ignore[attr-defined]

    def remove(self) -> object | None:
        return self.slot.remove()  # type: ignore[attr-defined,no-any-return]


def test_an_unknown_chip_gets_no_command_and_its_record_is_made_again(
    pcsc_lab, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    make_batch(tmp_path / "batch.csv", 2, seed=12)
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    perso = tmp_path / "batch.perso"
    prepare(
        tmp_path / "batch.csv", load_profile("ssc3-pboc"), store,
        functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), perso, tmp_path / "rejects.csv",
        PrepOptions(batch_id="CAT1", created=1_700_000_000),
    )  # fmt: skip
    reader = RecordingReader(pcsc_lab.free_slot(), foreign={1})
    line = SimLine(
        1,
        tmp_path / "line",
        readers=[reader],
        options=LineOptions(card_timeout=5, pause_retry=0.2, max_attempts=3),
    )
    with caplog.at_level(logging.WARNING, "cardperso.line"), line:
        summary = run_line(
            perso, line.spec, store, Database(tmp_path / "journal.db"), tmp_path / "results.csv"
        )
    assert summary.done == 2 and summary.failed == 0, summary
    assert summary.stations[0].rejected == 1
    foreign, *made = reader.fed
    assert foreign.commands == [], "the unknown chip received no command at all"
    assert all(len(card.commands) > 20 for card in made), "the others were personalized"
    blank = VirtualCard.load(next((tmp_path / "line" / "rejects").glob("*.json")))
    assert blank.state.lifecycle == "OP_READY" and not blank.state.apps
    assert "unknown chip: ATR 3BF81300008131FE454A434F5076323431B7 matches no chip" in caplog.text
    with (tmp_path / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["outcome"] for r in rows) == ["produced", "produced"]
    assert {r["attempts"] for r in rows} == {"1", "2"}, "the first record went round again"


def test_the_native_chips_of_the_catalogue() -> None:
    from cardperso.card.native import build_native_atr

    registry = load_drivers()
    serial = bytes.fromhex("C0FFEE01")
    for algorithm, name in (("SM4", "cardperso-fmcos-sm4"), ("3DES", "cardperso-fmcos-3des")):
        driver = registry.choose(build_native_atr(serial, algorithm))
        assert (driver.cos, driver.chip.name, driver.chip.algorithm) == ("native", name, algorithm)
        assert driver.chip.serial(build_native_atr(serial, algorithm)) == serial
        assert driver.chip.transport_scheme == "native-master-key"
    assert registry.choose(GP_ATR).chip.serial(GP_ATR) == b"", "GP chips: the serial is in CPLC"
    native = (ROOT / "profiles" / "chips" / "cardperso-fmcos-sm4.yaml").read_text()
    with pytest.raises(ProfileError, match=r"field 'serial_offset': a native chip needs where"):
        parse_chip(native.replace("serial_offset: 6\n", ""), "x.yaml")
    with pytest.raises(ProfileError, match=r"x.yaml:\d+: field 'algorithm': 'AES' is not one"):
        parse_chip(native.replace("algorithm: SM4", "algorithm: AES"), "x.yaml")


def test_the_line_s_own_gp_workflow_replaces_the_default() -> None:
    from cardperso.chip.script import personalize

    def two_stage(*args: object) -> object:  # stands for e.g. the two-stage factory's workflow
        raise AssertionError("not driven here")

    assert load_drivers().choose(GP_ATR).workflow is personalize
    chosen = load_drivers({"gp": two_stage}).choose(GP_ATR)  # type: ignore[dict-item]
    assert chosen.workflow is two_stage


def test_native_chips_without_their_transport_key_are_refused_untouched(tmp_path: Path) -> None:
    from cardperso.card.native import build_native_atr

    registry = load_drivers()
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    assert {"native-transport", "native-transport-3des"} <= set(store.names())
    assert registry.without_keys(store) == [], "the sample store opens the simulated blanks"
    doc = json.loads(SAMPLE_KEYS.read_text())
    for name in ("native-transport", "native-transport-3des"):
        del doc["keys"][name]
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    off = registry.without_keys(SoftwareKeyStore.load(path))  # no native-transport
    assert sorted(off) == ["cardperso-fmcos-3des", "cardperso-fmcos-sm4"]
    with pytest.raises(ChipFailure, match="transport key 'native-transport' is not loaded"):
        registry.choose(build_native_atr(b"\1\2\3\4", "SM4"))
    assert registry.choose(GP_ATR).cos == "gp", "GP chips are made as before"
