"""The production line through real pcscd + vpcd readers and printers on ptys.

Every record ends up produced or rejected (never both, never neither), faulted cards go to the
reject box and their records are made again, printer faults pause and resume a station."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import pytest

from cardperso.card.vcard import VirtualCard
from cardperso.errors import DataError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.linefile import LineOptions, load_line
from cardperso.line.runner import run_line
from cardperso.prep.container import iter_records
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from cardperso.sim.line import SimLine, parse_faults
from cardperso.storage.db import Database

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_KEYS = ROOT / "keys-sample" / "keys.json"

pytestmark = pytest.mark.pcsc


def _prepare(tmp: Path, count: int) -> Path:
    make_batch(tmp / "batch.csv", count, seed=11)
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    out = tmp / "batch.perso"
    summary = prepare(
        tmp / "batch.csv", load_profile("ssc3-pboc"), store,
        functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), out, tmp / "rejects.csv",
        PrepOptions(batch_id=f"L{count}", created=1_700_000_000),
    )  # fmt: skip
    assert summary.prepared == count
    return out


def _results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_fault_spec_parsing() -> None:
    assert [
        (f.station, f.kind, f.card, f.sticky) for f in parse_faults("st1:mute@2, st2:jam@3!")
    ] == [
        ("st1", "mute", 2, False),
        ("st2", "jam", 3, True),
    ]
    with pytest.raises(DataError, match="unknown fault"):
        parse_faults("st1:melt@1")


def test_two_stations_make_every_card_with_faults(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    perso = _prepare(tmp_path, 6)
    readers = [pcsc_lab.free_slot() for _ in range(1)]
    readers.append(next(s for s in pcsc_lab.slots if s.card is None and s is not readers[0]))
    faults = "st1:mute@1,st2:ribbon_out@1,st1:mag_write_error@3"
    line = SimLine(
        2,
        tmp_path / "line",
        faults=faults,
        readers=readers,  # type: ignore[arg-type]
        options=LineOptions(card_timeout=5, pause_retry=0.2, max_attempts=3),
    )
    with line:
        spec = load_line(tmp_path / "line" / "line.yaml")
        assert [s.reader for s in spec.stations] == [r.name for r in readers]
        summary = run_line(
            perso,
            line.spec,
            SoftwareKeyStore.load(SAMPLE_KEYS),
            Database(tmp_path / "journal.db"),
            tmp_path / "results.csv",
        )
    assert summary.done == 6 and summary.failed == 0, summary
    rows = _results(tmp_path / "results.csv")
    assert sorted(int(r["record"]) for r in rows) == sorted(line for line, _ in iter_records(perso))
    assert all(r["outcome"] == "produced" and len(r["chip_serial"]) == 8 for r in rows)
    assert len({r["chip_serial"] for r in rows}) == 6, "each record is paired with its own chip"
    output = tmp_path / "line" / "output"
    assert len(list(output.glob("*.json"))) - len(list(output.glob("*.tracks.json"))) == 6
    assert len(list(output.glob("*.png"))) == 6
    rejects = list((tmp_path / "line" / "rejects").glob("*.json"))
    assert len(rejects) == 2  # the mute card and the card whose stripe failed
    # each produced card is the chip the journal paired with its record: same serial, secured,
    # both applications personalized, and EF05 record 7 holds that record's card number
    for r in rows:
        card = VirtualCard.load(output / f"{r['chip_serial']}.json")
        assert card.serial.hex().upper() == r["chip_serial"]
        assert card.state.lifecycle == "SECURED"
        assert {a.lifecycle for a in card.state.apps.values()} == {"PERSONALIZED"}
        assert card.state.ssse.records["0507"] == b"\x07\x09" + r["card_no"].encode("ascii")


def test_wrong_keys_stop_the_line_without_retrying_authentication(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cardperso.crypto import kcv, random_bytes

    perso = _prepare(tmp_path, 5)
    doc = json.loads(SAMPLE_KEYS.read_text())
    wrong = random_bytes(16)
    # the blanks are opened with the card vendor's transport key: a wrong one fails them all
    doc["keys"]["gp-transport"].update(
        value=wrong.hex().upper(), kcv=kcv("3DES", wrong).hex().upper()
    )
    (tmp_path / "wrong.json").write_text(json.dumps(doc))
    readers = [s for s in pcsc_lab.slots if s.card is None][:1]
    line = SimLine(
        1,
        tmp_path / "line",
        readers=readers,  # type: ignore[arg-type]
        options=LineOptions(card_timeout=5, pause_retry=0.2, stop_after_auth_failures=2),
    )
    with line:
        summary = run_line(
            perso,
            line.spec,
            SoftwareKeyStore.load(tmp_path / "wrong.json"),
            Database(tmp_path / "journal.db"),
            tmp_path / "results.csv",
        )
    assert "authentication failures in a row" in summary.stopped
    assert summary.done == 0 and summary.stations[0].rejected == 2
    rows = _results(tmp_path / "results.csv")
    assert len(rows) == 5, "no record lost: the others stay queued for a run with the right keys"
    assert sum(r["outcome"] == "queued" for r in rows) == 5
    rejected = list((tmp_path / "line" / "rejects").glob("*.json"))
    assert len(rejected) == 2
    for image in rejected:  # no card saw a second authentication attempt
        card = VirtualCard.load(image)
        assert card.state.isd.auth_failures <= 1 and not card.state.isd.blocked
