"""A mixed hopper (issue 12 item 4): one simulated line over real pcscd + vpcd is fed GP cards
and native-COS chips in turn; every record is produced, each chip read back through the SSSE's
authenticated reads by the line itself, and a tear during CREATE FILE, a tear during WRITE KEY,
a wrong MAC and a wrong transport key are each rejected and the record made on a new card."""

from __future__ import annotations

import csv
import functools
import json
import logging
from pathlib import Path

from cardperso.card.native import NativeCard
from cardperso.card.native_fs import FORMAT as NATIVE_FORMAT
from cardperso.card.vcard import VirtualCard
from cardperso.keystore.base import SAMPLE_KCVS
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.linefile import LineOptions
from cardperso.line.runner import run_line
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from cardperso.sim.line import SimLine
from cardperso.storage.db import Database
from test_native_driver import NATIVE_3DES, NATIVE_SM4, native_store

RECORDS = 8
ROOT_KEYS = Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json"
FAULTS = "st1:tear_create@2,st1:tear_key@6,st1:bad_mac@8,st1:wrong_transport_key@10"


def test_a_mixed_hopper_makes_every_card(pcsc_lab, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.ERROR, logger="cardperso")
    make_batch(tmp_path / "batch.csv", RECORDS, seed=31)
    keys = native_store(tmp_path)
    store = SoftwareKeyStore.load(keys)
    perso = tmp_path / "batch.perso"
    prepare(
        tmp_path / "batch.csv", load_profile("ssc3-temporary"), store,
        functools.partial(SoftwareKeyStore.load, keys), perso, tmp_path / "rejects.csv",
        PrepOptions(batch_id="MIX1", created=1_700_000_000),
    )  # fmt: skip
    line = SimLine(
        1,
        tmp_path / "line",
        faults=FAULTS,
        readers=[pcsc_lab.free_slot()],
        options=LineOptions(card_timeout=5, pause_retry=0.2, max_attempts=3),
        chips=("gp", "native"),
        native_transport={"SM4": NATIVE_SM4, "3DES": NATIVE_3DES},
    )
    with line:
        summary = run_line(
            perso, line.spec, store, Database(tmp_path / "journal.db"), tmp_path / "results.csv"
        )
    assert summary.done == RECORDS and summary.failed == 0, summary
    assert summary.stations[0].rejected == 4
    # the native chip that refused its transport key: the alert names the key its driver used
    alerts = [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage()]
    assert len(alerts) == 1, alerts
    assert "check the transport key 'native-transport' loaded" in alerts[0]
    with (tmp_path / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["outcome"] for r in rows) == ["produced"] * RECORDS
    assert len({r["chip_serial"] for r in rows}) == RECORDS

    output = tmp_path / "line" / "output"
    kinds = {"gp": 0, "native": 0}
    for r in rows:
        image = output / f"{r['chip_serial']}.json"
        if json.loads(image.read_text())["format"] == NATIVE_FORMAT:
            kinds["native"] += 1
            chip = NativeCard.load(image)
            df = chip.state.mf.dfs[0]
            assert df.ended and len(df.keys) == 8
            ef05 = next(ef for ef in df.efs if ef.sfi == 5)
            assert ef05.records[6] == b"\x07\x09" + r["card_no"].encode("ascii")
            assert r["atr"] == chip.atr.hex().upper()
            assert r["card_id_code"][16:24] == r["chip_serial"], "the chip serial in the card id"
            assert ef05.records[0] == b"\x01\x10" + bytes.fromhex(r["card_id_code"])
        else:
            kinds["gp"] += 1
            card = VirtualCard.load(image)
            assert card.state.ssse.records["0507"] == b"\x07\x09" + r["card_no"].encode("ascii")
            assert card.state.ssse.records["0501"] == b"\x01\x10" + bytes.fromhex(r["card_id_code"])
        # 卡识别码 = region ‖ D156000005 ‖ the chip serial the station read ‖ FF×4, no CRC
        assert (
            r["card_id_code"][6:16] == "D156000005" and r["card_id_code"][16:24] == r["chip_serial"]
        )
        assert r["card_id_code"][24:] == "FFFFFFFF"
    assert kinds == {"gp": 6, "native": 2}, "cards 4 and 12 are the good native chips"

    rejected = [NativeCard.load(p) for p in (tmp_path / "line" / "rejects").glob("*.json")]
    assert len(rejected) == 4
    by_state = sorted(
        (len(c.state.mf.dfs), len(c.state.mf.dfs[0].keys) if c.state.mf.dfs else -1,
         c.state.mf.keys[0].fourth)
        for c in rejected
    )  # fmt: skip
    assert by_state == [
        (0, -1, 0x54),  # wrong transport key: refused once, nothing made
        (0, -1, 0x55),  # torn in CREATE FILE: the DF was never committed
        (1, 0, 0x55),  # torn in the first WRITE KEY
        (1, 0, 0x55),  # the first WRITE KEY's MAC arrived wrong (6988)
    ]


def test_sim_line_refuses_unknown_chips_and_native_chips_without_their_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cardperso", "sim", "line", "--state", str(tmp_path / "s"), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    bad = run("--chips", "gp,nfc")
    assert bad.returncode == 1 and "field 'chips': chips must name gp, native" in bad.stderr
    short = run("--chips", "native", "--native-transport-key", "0011")
    assert short.returncode == 2 and "--native-transport-key: 16 bytes" in short.stderr
    assert not (tmp_path / "s").exists(), "refused before anything started"
    assert "Traceback" not in bad.stderr + short.stderr


def _store_without_native_keys(tmp: Path) -> Path:
    doc = json.loads(ROOT_KEYS.read_text())
    for name in ("native-transport", "native-transport-3des"):
        del doc["keys"][name]
    path = tmp / "keys-no-native.json"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


def test_the_sample_store_opens_the_simulated_native_blanks(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """keys-sample carries native-transport: a line with the sample store and the simulated
    blanks' default masters makes native chips (issue 12: the demo store opens them)."""
    make_batch(tmp_path / "batch.csv", 2, seed=33)
    store = SoftwareKeyStore.load(ROOT_KEYS)
    assert store.kcv("native-transport").hex().upper() == SAMPLE_KCVS["native-transport"]
    perso = tmp_path / "batch.perso"
    prepare(
        tmp_path / "batch.csv", load_profile("ssc3-temporary"), store,
        functools.partial(SoftwareKeyStore.load, ROOT_KEYS), perso, tmp_path / "rejects.csv",
        PrepOptions(batch_id="MIX3", created=1_700_000_000),
    )  # fmt: skip
    line = SimLine(
        1, tmp_path / "line", readers=[pcsc_lab.free_slot()],
        options=LineOptions(card_timeout=5, pause_retry=0.2, max_attempts=3),
        chips=("native", "gp"),
    )  # fmt: skip
    with line:
        summary = run_line(
            perso, line.spec, store, Database(tmp_path / "journal.db"), tmp_path / "results.csv"
        )
    assert summary.done == 2 and summary.failed == 0, summary
    assert summary.stations[0].rejected == 0
    with (tmp_path / "results.csv").open(newline="") as fh:
        serials = [r["chip_serial"] for r in csv.DictReader(fh)]
    images = [tmp_path / "line" / "output" / f"{serial}.json" for serial in serials]
    formats = sorted(json.loads(p.read_text()).get("format") == NATIVE_FORMAT for p in images)
    assert formats == [False, True], "one GP card and one native chip made"


def test_native_chips_without_their_key_are_refused_untouched_and_gp_chips_made(
    pcsc_lab, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    make_batch(tmp_path / "batch.csv", 2, seed=32)
    keys = _store_without_native_keys(tmp_path)  # no native-transport key
    store = SoftwareKeyStore.load(keys)
    perso = tmp_path / "batch.perso"
    prepare(
        tmp_path / "batch.csv", load_profile("ssc3-temporary"), store,
        functools.partial(SoftwareKeyStore.load, keys), perso, tmp_path / "rejects.csv",
        PrepOptions(batch_id="MIX2", created=1_700_000_000),
    )  # fmt: skip
    line = SimLine(
        1, tmp_path / "line", readers=[pcsc_lab.free_slot()],
        options=LineOptions(card_timeout=5, pause_retry=0.2, max_attempts=3),
        chips=("native", "gp"), native_transport={"SM4": NATIVE_SM4},
    )  # fmt: skip
    with line:
        summary = run_line(
            perso, line.spec, store, Database(tmp_path / "journal.db"), tmp_path / "results.csv"
        )
    assert summary.done == 2 and summary.failed == 0 and not summary.stopped, summary
    assert summary.stations[0].rejected == 2
    for image in (tmp_path / "line" / "rejects").glob("*.json"):
        chip = NativeCard.load(image)
        assert chip.state.mf.dfs == [] and chip.state.mf.keys[0].fourth == 0x55, "untouched"
