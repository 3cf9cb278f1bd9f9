"""The line's command line: `cardperso demo` end to end (in process, on the test lab's real
pcscd + vpcd readers), `run --resume`, `line resume-station`."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.cli import line as line_cli
from cardperso.cli.main import _register, cli
from cardperso.line.linefile import LineOptions
from cardperso.line.simulated import SimLine

pytestmark = pytest.mark.pcsc


@pytest.fixture
def lab_line(pcsc_lab, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Make the demo's simulated line use the lab's readers (one pcscd per machine)."""

    def make(stations: int, state_dir: Path) -> SimLine:
        free = [s for s in pcsc_lab.slots if s.card is None][:stations]
        return SimLine(
            stations, state_dir, readers=free, options=LineOptions(card_timeout=5, pause_retry=0.2)
        )

    monkeypatch.setattr(line_cli, "_make_sim_line", make)


def test_demo_prepares_and_makes_every_good_card(lab_line: None, tmp_path: Path) -> None:
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
    # a second demo into the same directory is refused with a clear message, exit code 2
    again = CliRunner().invoke(cli, ["demo", "--count", "2", "--state", str(state)])
    assert again.exit_code == 2 and "previous demo" in again.output


def test_two_stage_factory_batch_runs_on_the_line(pcsc_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`cardperso run --bank-delivery`: the line makes the SSSE part and creates the bank's
    security domain on each card (the factory never holds a bank key)."""
    from cardperso.bank import demo
    from cardperso.card.vcard import VirtualCard

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
