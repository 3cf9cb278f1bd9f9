"""The line's command line: `cardperso demo` end to end (in process, on the test lab's real
pcscd + vpcd readers), two-stage factory runs, `line resume-station` on a paused station."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.cli import line as line_cli
from cardperso.cli.main import _register, cli
from cardperso.line.linefile import LineOptions
from cardperso.sim.line import SimLine
from fixtures_pcsc import PRESENCE_TIMEOUT

pytestmark = pytest.mark.pcsc


@pytest.fixture
def lab_line(pcsc_lab, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Make the demo's simulated line use the lab's readers (one pcscd per machine)."""

    def make(stations: int, state_dir: Path, *, transport_key: bytes) -> SimLine:
        free = [s for s in pcsc_lab.slots if s.card is None][:stations]
        return SimLine(
            stations,
            state_dir,
            readers=free,
            options=LineOptions(card_timeout=5, pause_retry=0.2),
            transport_key=transport_key,
        )

    monkeypatch.setattr(line_cli, "_make_sim_line", make)


def _demo_serve_hint_works(output: str, state: Path, pcsc_lab) -> None:  # type: ignore[no-untyped-def]
    """The demo's last line is a `sim serve` command that serves the cards it made (run here on
    a lab reader: the hint's --start-pcscd would restart the machine's pcscd under the lab)."""
    import shlex
    import signal
    import subprocess
    import sys

    from cardperso.devices import pcsc
    from cardperso.devices.pcsc import PcscTransport

    hint = output.strip().splitlines()[-1].split(": ", 1)[1]
    args = shlex.split(hint)
    assert args[:3] == ["cardperso", "sim", "serve"] and "--start-pcscd" in args
    cards = Path(args[args.index("--cards") + 1])
    assert cards == state.resolve() / "line" / "output"
    with (state / "results.csv").open() as fh:
        serial = next(csv.DictReader(fh))["chip_serial"]
    slot = pcsc_lab.free_slot()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardperso", "sim", "serve", "--cards", str(cards),
         "--port", str(slot.port), "--only", serial],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        pcsc.wait_for_card(slot.name, 30)
        with PcscTransport(slot.name) as t:
            t.transmit(bytes.fromhex("00A4040008A000000151000000"))
            assert serial in t.transmit(bytes.fromhex("80CA9F7F00")).hex().upper()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "skipped 14 file(s) that are not card images" in out  # 7 faces, 7 tracks
    assert "serving 1 of 7 cards; chosen with --only" in out
    pcsc.wait_for_removal(slot.name, PRESENCE_TIMEOUT)


def test_demo_prepares_and_makes_every_good_card(lab_line: None, pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _register()
    state = tmp_path / "demo"
    result = CliRunner().invoke(
        cli, ["demo", "--count", "7", "--stations", "2", "--state", str(state)]
    )
    assert result.exit_code == 0, result.output
    assert "read 8 = 7 prepared + 1 rejected" in result.output
    with (state / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7 and {r["outcome"] for r in rows} == {"produced"}
    assert len(list((state / "line" / "output").glob("*.png"))) == 7
    _demo_serve_hint_works(result.output, state, pcsc_lab)
    # a second demo into the same directory is refused with a clear message, exit code 2
    again = CliRunner().invoke(cli, ["demo", "--count", "2", "--state", str(state)])
    assert again.exit_code == 2 and "previous demo" in again.output


def test_two_stage_factory_batch_runs_on_the_line(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`cardperso run --bank-delivery`: the line makes the SSSE part and creates the bank's
    security domain on each card (the factory never holds a bank key)."""
    from cardperso.card.vcard import VirtualCard
    from cardperso.sim import bank_demo as demo

    _register()
    perso, _delivery, fstore = demo.factory_batch(tmp_path, 2)
    fstore.save(tmp_path / "factory-keys.json")
    readers = [s for s in pcsc_lab.slots if s.card is None][:2]
    line = SimLine(
        2, tmp_path / "line", readers=readers, options=LineOptions(card_timeout=5, pause_retry=0.2)
    )
    args = ["run", str(perso), "--line", str(tmp_path / "line" / "line.yaml"), "--keys",
            str(tmp_path / "factory-keys.json"), "--db", str(tmp_path / "j.db")]  # fmt: skip
    with line:
        refused = CliRunner().invoke(cli, args)
        assert refused.exit_code == 2 and "--bank-delivery" in refused.output
        result = CliRunner().invoke(
            cli, [*args, "--bank-delivery", str(tmp_path / "delivery.json")]
        )
    assert result.exit_code == 0, result.output
    images = [
        p
        for p in (tmp_path / "line" / "output").glob("*.json")
        if not p.name.endswith(".tracks.json")
    ]
    assert len(images) == 2
    for image in images:
        state = VirtualCard.load(image).state
        assert state.ssds, "each card carries the bank's security domain"


def test_resume_station_wakes_a_paused_station(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A sticky ribbon fault pauses the station; with retries far apart only the operator's
    `line resume-station` (after clearing the printer) lets the run finish."""
    import functools
    import threading

    from cardperso.keystore.software import SoftwareKeyStore
    from cardperso.line.runner import LineRun
    from cardperso.prep.pipeline import PrepOptions, prepare
    from cardperso.prep.synth import make_batch
    from cardperso.profiles.loader import load_profile
    from cardperso.storage.db import Database

    _register()
    keys = Path(__file__).resolve().parent.parent / "keys-sample" / "keys.json"
    make_batch(tmp_path / "b.csv", 2, seed=9)
    prepare(
        tmp_path / "b.csv", load_profile("ssc3-pboc"), SoftwareKeyStore.load(keys),
        functools.partial(SoftwareKeyStore.load, keys), tmp_path / "b.perso", tmp_path / "r.csv",
        PrepOptions(batch_id="RS", created=1),
    )  # fmt: skip
    readers = [s for s in pcsc_lab.slots if s.card is None][:1]
    line = SimLine(1, tmp_path / "line", faults="st1:ribbon_out@1!", readers=readers,  # type: ignore[arg-type]
                   options=LineOptions(card_timeout=5, pause_retry=600))  # fmt: skip
    db_path = tmp_path / "j.db"
    with line:
        run = LineRun(
            tmp_path / "b.perso", line.spec, SoftwareKeyStore.load(keys), Database(db_path)
        )
        done = threading.Event()
        worker = threading.Thread(
            target=lambda: (run.run(tmp_path / "res.csv"), done.set()), daemon=True
        )
        worker.start()
        for _ in range(300):  # wait until the station reports the pause
            if run.stations[0].status.state == "paused":
                break
            done.wait(0.1)
        assert run.stations[0].status.state == "paused"
        assert "replace the ribbon" in run.stations[0].status.message
        line.stations[0].clear_faults()  # the operator replaces the ribbon ...
        out = CliRunner().invoke(
            cli,
            ["line", "resume-station", "st1", "--run", run.journal.run_id, "--db", str(db_path)],
        )  # ... and resumes the station
        assert out.exit_code == 0, out.output
        assert done.wait(120), "the resumed station finishes the run"
    assert run.journal.counts()["done"] == 2


def test_demo_with_fresh_issuer_keys_and_the_vendors_transport_key(  # type: ignore[no-untyped-def]
    lab_line: None, tmp_path: Path
) -> None:
    """`keys generate` (random issuer keys) plus the card vendor's transport key imported by
    ceremony: the demo's simulated blanks carry that key, and every good card is made (before:
    the blanks were opened with the fresh `gp-kmc` and none could be)."""
    from cardperso.crypto import random_bytes
    from test_integrity_line import _fresh_store_with_transport_key

    keys = _fresh_store_with_transport_key(tmp_path, random_bytes(16))
    state = tmp_path / "demo"
    result = CliRunner().invoke(
        cli, ["demo", "--count", "3", "--stations", "1", "--state", str(state), "--keys", str(keys)]
    )
    assert result.exit_code == 0, result.output
    with (state / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["outcome"] for r in rows] == ["produced"] * 3
    assert not list((state / "line" / "rejects").iterdir()), "no blank was spent"
