"""Issue 15's new inputs meet hostile files with one line, never a traceback, under a 1 GiB
memory limit: an application file with the centre's columns (a huge header, a huge line), the
bank stage's account-opening file (a huge field, a bad outcome), and bad arguments to the new
commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_integrity_registry import _limited
from test_registry import APP_COLUMNS, run_cli

CENTRE_HEADER = ",".join([*APP_COLUMNS, "service_point", "phone"])


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    run_cli("db", "upgrade", "--db", str(tmp_path / "r.db"))
    (tmp_path / "longheader.csv").write_text(CENTRE_HEADER + ",x" * 40_000 + "\n")
    (tmp_path / "longline.csv").write_text(
        CENTRE_HEADER + "\n" + "1" * 3_000_000 + "\n" + ",".join(["x"] * 15) + "\n"
    )
    (tmp_path / "bankout.csv").write_text(
        "line,chip_serial,card_id,pan,ssn,card_no,outcome,reason\n"
        + "2,A0000001,,,,,"
        + "9" * 300_000
        + ",\n"
    )
    (tmp_path / "longline.jsonl").write_text(
        '{"phone": "' + "1" * 3_000_000 + '"}\n{"phone": "13812345678", "ssn": "x"}\n'
    )
    (tmp_path / "deep.jsonl").write_text('{"phone": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    (tmp_path / "outcome.csv").write_text(
        "line,chip_serial,card_id,pan,ssn,card_no,outcome,reason\n2,A0000001,,,,,maybe,\n"
    )
    return tmp_path


RUNS = [
    (("registry", "import", "longheader.csv"), 1, "error: record 1, field 'header': the header row is longer than 65,536 bytes"),
    (("registry", "import", "longline.csv"), 1, "  line 2: "),
    (("registry", "import", "longline.jsonl"), 1, "  line 1: "),
    (("registry", "import", "deep.jsonl"), 1, "  line 1: "),
    (("registry", "accounts", "bankout.csv"), 1, "error: record 2, field 'accounts': bankout.csv: field larger than field limit"),
    (("registry", "accounts", "outcome.csv"), 1, "error: record 2, field 'outcome': needs card_no or chip_serial and outcome"),
    (("registry", "show", "9" * 40), 2, "error: no card 999999******************************9999 in the registry"),
    (("registry", "list", "--from", "2026-02-30"), 1, "error: field 'from': '2026-02-30' is not a date"),
    (("registry", "box", "receive", "NOPE", "--by", "x"), 2, "error: no box NOPE in the registry"),
    (("registry", "box", "pack", "--service-point", "SP9", "--manifest", "m.csv"), 2, "error: service point SP9 is not on the centre's list"),
    (("registry", "form", "application", "1", "--out", "/dev/null"), 2, "error: "),
    (("registry", "bank", "add", "1" * 40, "x"), 1, "error: field 'code': is 1-32 letters"),
    (("registry", "reissue", "000000019"), 2, "error: card 000000019 is not in the registry"),
]  # fmt: skip


@pytest.mark.parametrize(
    "args, code, message", RUNS, ids=lambda a: " ".join(a[:3]) if isinstance(a, tuple) else ""
)
def test_hostile_input_to_the_centre_commands_ends_in_one_line(
    hostile: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    done = _limited(hostile, *args)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == code, done.stderr
    assert message in done.stderr, done.stderr
    if message.startswith("error: "):
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
