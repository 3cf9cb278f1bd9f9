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
