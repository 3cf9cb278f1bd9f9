"""The bank stage's files (issue 11, items 2-4 and 7-8 for the bank): outputs atomic, private
and never over an input; files of cards already made keep their rows; the bank's input read
line by line with limits, so every physical line is a row or a reject (under a memory limit
where the input is hostile)."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.errors import KeyStoreError


def _cli(args: list[str], input: str | None = None) -> Any:
    from click.testing import CliRunner

    from cardperso.cli.main import _register, cli

    _register()
    return CliRunner().invoke(cli, args, input=input)


_LIMITED_CLI = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from cardperso.cli.main import main
sys.argv = ["cardperso", *sys.argv[1:]]
main()
"""


# -- the bank stage's files: atomic, private, never over an input ---------------------------------

BANK_KEYS = Path(__file__).resolve().parents[1] / "keys-sample" / "bank-keys.json"


def _bank_store_copy(tmp_path: Path) -> Path:
    path = tmp_path / "bank-keys.json"
    path.write_bytes(BANK_KEYS.read_bytes())
    path.chmod(0o600)
    return path


def test_transport_keys_refuses_to_write_over_the_key_store(tmp_path: Path) -> None:
    """Before: ``--out`` naming the key store replaced the bank's keys with the delivery."""
    keys = _bank_store_copy(tmp_path)
    before = keys.read_bytes()
    args = ["bank", "transport-keys", "-p", "ssc3-pboc-2stage", "-k", str(keys), "--batch", "B1"]
    result = _cli([*args, "--out", str(tmp_path / "." / "bank-keys.json")])
    assert result.exit_code == 2, result.output
    assert "--out is the same file as --keys: refusing to overwrite it" in result.output
    assert keys.read_bytes() == before
    ok = _cli([*args, "--out", str(tmp_path / "delivery.json")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "delivery.json").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank-keys.json", "delivery.json"]


def _accounts_input(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.csv"
    path.write_text("chip_serial,ssn,name,pan,issue_date,expiry_date\n")
    return path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--out", "{input}"], "--out is the same file as INPUT"),
        (["--rejects", "{input}"], "--rejects is the same file as INPUT"),
        (["--out", "{dir}/x.csv", "--rejects", "{dir}/x.csv"], "--out and --rejects are the same"),
        (["--out", "{keys}"], "--out is the same file as --keys"),
        (["--out", "{dir}/missing/a.csv"], "--out: directory .* does not exist"),
    ],
)
def test_bank_personalize_refuses_an_output_that_is_an_input(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    """Before: ``bank personalize accounts.csv`` with the default ``--out accounts.csv``
    truncated the bank's own input."""
    keys = _bank_store_copy(tmp_path)
    source = _accounts_input(tmp_path)
    before = {p: p.read_bytes() for p in (keys, source)}
    names = {"input": str(source), "dir": str(tmp_path), "keys": str(keys)}
    result = _cli(
        ["bank", "personalize", str(source), "-p", "ssc3-pboc-2stage", "-k", str(keys),
         "--batch", "B1", "--reader", "no such reader", *(f.format(**names) for f in flags)]
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output
    assert {p: p.read_bytes() for p in before} == before


def test_bank_personalize_with_bad_input_leaves_no_files(tmp_path: Path) -> None:
    """An input the bank cannot read is refused before any card: no rejects file (it used to
    be committed half made) and the previous account-opening file is kept."""
    keys = _bank_store_copy(tmp_path)
    source = tmp_path / "in.csv"
    source.write_text("chip_serial,ssn,surprise\n")
    (tmp_path / "accounts.out.csv").write_text("previous run\n")
    result = _cli(
        ["bank", "personalize", str(source), "-p", "ssc3-pboc-2stage", "-k", str(keys),
         "--batch", "B1", "--reader", "no such reader", "--out", str(tmp_path / "accounts.out.csv"),
         "--rejects", str(tmp_path / "rejects.csv")]
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "unknown column(s) surprise" in result.output
    assert (tmp_path / "accounts.out.csv").read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "accounts.out.csv", "bank-keys.json", "in.csv"
    ]  # fmt: skip


def test_bank_factory_refuses_a_handover_over_its_inputs(tmp_path: Path) -> None:
    perso = tmp_path / "batch.cppf"
    perso.write_bytes(b"not a perso file, and must stay so")
    delivery = tmp_path / "delivery.json"
    delivery.write_text("{}")
    keys = _bank_store_copy(tmp_path)
    for target, role in [(perso, "PERSO_FILE"), (delivery, "--delivery"), (keys, "--keys")]:
        before = target.read_bytes()
        result = _cli(
            ["bank", "factory", str(perso), "--reader", "r", "-k", str(keys),
             "--delivery", str(delivery), "--handover", str(target)]
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert f"--handover is the same file as {role}" in result.output
        assert target.read_bytes() == before


def test_a_delivery_with_a_name_twice_is_refused() -> None:
    from cardperso.bank.twostage import TransportDelivery

    text = '{"format": "cardperso-ssd-transport/1", "kek": "kek-exchange", "kek": "other"}'
    with pytest.raises(KeyStoreError, match=r"delivery\.json: field 'kek' appears twice"):
        TransportDelivery.from_json(text, "delivery.json")


# -- files of cards already made (account-opening, handover) --------------------------------------


def test_card_rows_appear_when_the_run_ends_and_survive_an_error(tmp_path: Path) -> None:
    from cardperso.bank.accounts import CardRowsFile

    path = tmp_path / "handover.csv"
    with CardRowsFile(path, ("a", "b")) as rows:
        rows.write(("1", "2"))
        assert not path.exists()  # not under its name while the run goes on
    assert path.read_text() == "a,b\n1,2\n" and path.stat().st_mode & 0o777 == 0o600
    # an error after a card: the card exists, its row is kept
    with pytest.raises(RuntimeError), CardRowsFile(path, ("a", "b")) as rows:
        rows.write(("3", "4"))
        raise RuntimeError("reader unplugged")
    assert path.read_text() == "a,b\n3,4\n"
    # an error before any card: the previous file stays
    with pytest.raises(RuntimeError), CardRowsFile(path, ("a", "b")):
        raise RuntimeError("no key")
    assert path.read_text() == "a,b\n3,4\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["handover.csv"]


_KILLED_RUN = """
import os, signal, sys
from cardperso.bank.accounts import AccountFile
out = AccountFile(sys.argv[1])
out.add(None, bytes.fromhex("A0000001"), "opened")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_bank_run_leaves_the_previous_file_and_its_rows_aside(tmp_path: Path) -> None:
    """Before: the account-opening file was truncated at start, so a killed run left a partial
    file under the final name. Now the final name keeps the previous file, and the rows of the
    cards already made wait in the hidden temporary file beside it."""
    import subprocess
    import sys

    path = tmp_path / "accounts.csv"
    path.write_text("previous run\n")
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(path)], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == -9
    assert path.read_text() == "previous run\n"
    (part,) = [p for p in tmp_path.iterdir() if p.name != "accounts.csv"]
    assert part.name.startswith(".accounts.csv.") and part.name.endswith(".part")
    assert "A0000001" in part.read_text() and part.stat().st_mode & 0o777 == 0o600


# -- the bank's input: every physical line is a row or a reject -----------------------------------

_BANK_COLUMNS = ["chip_serial", "ssn", "name", "pan", "pan_seq", "issue_date", "expiry_date"]


def _bank_lines(count: int) -> list[str]:
    from cardperso.codec.numbers import luhn_check_digit

    lines = [",".join(_BANK_COLUMNS)]
    for i in range(count):
        body = f"621483{i:09d}"
        lines.append(
            f"A00000{i:02X},110101193501010014,张三,{body}{luhn_check_digit(body)},01,"
            "20260115,20360115"
        )
    return lines


def _read_bank(path: Path) -> Any:
    from cardperso.bank.accounts import read_accounts
    from cardperso.bank.twostage import load_two_stage
    from cardperso.prep.rejects import RejectsWriter

    pboc = load_two_stage("ssc3-pboc-2stage").bank.pboc
    assert pboc is not None
    rejects = RejectsWriter(path.with_suffix(".rejects.csv"))
    batch = read_accounts(path, pboc, 6, rejects)
    rejects.close()
    with open(path.with_suffix(".rejects.csv"), encoding="utf-8", newline="") as fh:
        return batch, {int(r["line"]): r["reason"] for r in csv.DictReader(fh)}


def test_a_stray_quote_no_longer_swallows_the_rows_after_it(tmp_path: Path) -> None:
    """Before: a field opening a quote that never closed swallowed every line after it (read 6,
    the last five rows neither opened nor rejected). Now its own line is rejected with the
    reason, and the rows after it are read."""
    lines = _bank_lines(8)
    lines[3] = lines[3].replace("张三", '"魏明涵')
    path = tmp_path / "accounts.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch, rejected = _read_bank(path)
    assert (batch.read, len(batch), batch.rejected) == (8, 7, 1)
    assert rejected == {4: "a quoted field does not close on its line"}


def test_rows_with_more_fields_or_a_field_twice_are_rejected_alone(tmp_path: Path) -> None:
    """Before: one row with more fields than the header, or a JSON row that was not JSON, failed
    the whole batch."""
    lines = _bank_lines(3)
    lines[2] += ",extra"
    path = tmp_path / "accounts.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch, rejected = _read_bank(path)
    assert (batch.read, len(batch)) == (3, 2)
    assert rejected == {3: "has more fields than the header"}
    rows = [dict(zip(_BANK_COLUMNS, line.split(","), strict=True)) for line in _bank_lines(3)[1:]]
    texts = [json.dumps(r, ensure_ascii=False) for r in rows]
    texts[0] = texts[0][:-1] + ', "pan": "6214830000000017"}'  # a second "pan" would win
    texts[1] = texts[1][:20]
    jpath = tmp_path / "accounts.jsonl"
    jpath.write_text("\n".join(texts) + "\n", encoding="utf-8")
    batch, rejected = _read_bank(jpath)
    assert (batch.read, len(batch)) == (3, 1)
    assert rejected == {1: "field 'pan' appears twice", 2: "is not valid JSON"}


def test_a_repeated_column_is_a_file_error(tmp_path: Path) -> None:
    lines = _bank_lines(2)
    lines[0] += ",pan"
    path = tmp_path / "accounts.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"column\(s\) pan appear twice"):
        _read_bank(path)


_MANGLES = st.sampled_from(["quote", "nul", "cr", "long", "latin1", "blank", "extra", "none"])


@settings(max_examples=60, deadline=None)
@given(mangles=st.lists(_MANGLES, min_size=6, max_size=6))
def test_read_is_valid_plus_rejected_over_physical_lines(mangles: list[str]) -> None:
    """Every non-blank physical line after the header is read, and is valid or rejected."""
    import tempfile

    lines = [line.encode() for line in _bank_lines(6)]
    for i, how in enumerate(mangles, 1):
        if how == "quote":
            lines[i] = lines[i].replace("张".encode(), b'"')
        elif how == "nul":
            lines[i] = lines[i][:5] + b"\x00" + lines[i][5:]
        elif how == "cr":
            lines[i] = lines[i][:8] + b"\r" + lines[i][8:]
        elif how == "long":
            lines[i] = lines[i] + b"x" * 70_000
        elif how == "latin1":
            lines[i] = lines[i].replace("张三".encode(), "Zoë".encode("latin-1"))
        elif how == "blank":
            lines[i] = b"   "
        elif how == "extra":
            lines[i] = lines[i] + b',"a\nb"'  # a quoted field that spans two lines
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "accounts.csv"
        path.write_bytes(b"\n".join(lines) + b"\n")
        physical = [x for x in path.read_bytes().split(b"\n")[1:-1] if x.strip()]
        batch, rejected = _read_bank(path)
    assert batch.read == len(physical) == len(batch) + batch.rejected
    assert len(rejected) == batch.rejected


_LIMITED_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
from pathlib import Path
from cardperso.bank.accounts import read_accounts
from cardperso.bank.twostage import load_two_stage
from cardperso.errors import DataError
try:
    batch = read_accounts(Path(sys.argv[1]), load_two_stage("ssc3-pboc-2stage").bank.pboc, 6)
except DataError as exc:
    print("error:", exc)
else:
    print("read", batch.read, "rejected", batch.rejected)
"""


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "huge-line", "deep-json"])
def test_hostile_bank_input_under_a_memory_limit(tmp_path: Path, kind: str) -> None:
    import subprocess
    import sys

    if kind == "dev-zero":
        path, expected = Path("/dev/zero"), "error: field '(file)': /dev/zero is not a regular file"
    elif kind == "fifo":
        path = tmp_path / "in.csv"
        os.mkfifo(path)
        expected = f"error: field '(file)': {path} is not a regular file"
    elif kind == "huge-line":
        path = tmp_path / "in.csv"
        with path.open("w") as fh:
            fh.write(_bank_lines(1)[0] + "\n")
            fh.write("A0000001," + "9" * 300_000_000 + "\n")
            fh.write(_bank_lines(1)[1] + "\n")
        expected = "read 2 rejected 1"
    else:
        path = tmp_path / "in.jsonl"
        path.write_text("[" * 30_000 + "]" * 30_000 + "\n")
        expected = "read 1 rejected 1"
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED_READ, str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_a_delivery_that_is_a_device_is_refused_in_one_line(tmp_path: Path) -> None:
    """``--transport /dev/zero`` used to be read without end (run under a memory limit)."""
    import subprocess
    import sys

    keys = _bank_store_copy(tmp_path)
    source = _accounts_input(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED_CLI, "bank", "personalize", str(source),
         "-p", "ssc3-pboc-2stage", "-k", str(keys), "--transport", "/dev/zero",
         "--reader", "no such reader", "--out", str(tmp_path / "out.csv"),
         "--rejects", str(tmp_path / "rejects.csv")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: delivery /dev/zero: cannot read (not a regular file)"
    ]
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "rejects.csv").exists()
