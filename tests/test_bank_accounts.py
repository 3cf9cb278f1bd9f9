"""The bank's input: CSV and JSON Lines, file-level errors, and arbitrary rows are either
accepted or rejected with a field and a reason (never a crash)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.bank.accounts import AccountFile, Handover, read_accounts, ssn_digester
from cardperso.bank.twostage import load_two_stage
from cardperso.errors import DataError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.rejects import RejectsWriter

TWO = load_two_stage("ssc3-pboc-2stage")
PBOC = TWO.bank.pboc
assert PBOC is not None
GOOD = {
    "chip_serial": "A0000001",
    "ssn": "110101193501010014",
    "name": "张三",
    "pan": "6214830000000009",
    "pan_seq": "01",
    "issue_date": "20260115",
    "expiry_date": "20360115",
}


def test_json_lines_input(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    rows = [GOOD, {**GOOD, "chip_serial": "", "card_id": "110101D156000005A0000002AABBCCDD",
                   "pan": "6214830000000017", "ssn": "110105193501010060"}]  # fmt: skip
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    batch = read_accounts(path, PBOC, 6)
    assert (batch.read, batch.rejected) == (2, 0)
    rec = batch.match(bytes.fromhex("A0000002"))
    assert rec is not None and rec.card_id.hex().upper().startswith("110101D156")
    assert rec.ec == (0, 15000, 1000, 1500)  # the bank profile's defaults
    assert "110105193501010060" not in repr(rec) and "6214830000000017" not in repr(rec)


def test_unknown_column_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("chip_serial,ssn,shoe_size\nA0000001,110101193501010014,42\n")
    with pytest.raises(DataError, match="shoe_size"):
        read_accounts(path, PBOC, 6)


def test_ssn_rows_match_through_the_handover_digest(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "ssn,name,pan,issue_date,expiry_date\n"
        "110101193501010014,李四,6214830000000009,20260115,20360115\n",
        encoding="utf-8",
    )
    batch = read_accounts(path, PBOC, 6)
    serial = bytes.fromhex("0BADCAFE")
    assert batch.match(serial) is None
    store = SoftwareKeyStore.load(Path(__file__).parents[1] / "keys-sample" / "bank-keys.json")
    digest = ssn_digester(store, "kek-exchange")
    # the handover digest, MAC algorithm 3 (padding 2) under kek-exchange of SHA-256("cardperso
    # ssn " || ssn), computed by hand with OpenSSL 3.0.19: openssl dgst -sha256 -binary; then
    # enc -des-ede-cbc -K K1K1 -iv 0 -nopad (last block), enc -d -des-ede-ecb -K K2K2,
    # enc -des-ede-ecb -K K1K1 (K1 8A62D01083C8AEBA, K2 32E0EF68EA4383F7, bank-keys.json)
    expected = "FE5CFA81F251E70E"
    assert digest("110101193501010014") == expected
    assert digest("110101193501010022") != expected
    rec = batch.match(serial, Handover({serial: digest("110101193501010014")}, digest))
    assert rec is not None and rec.pan_seq == "01"
    other = ssn_digester(store, "transport-kek")  # another key: no match
    assert batch.match(serial, Handover({serial: other("110101193501010014")}, digest)) is None


def test_account_file_is_private(tmp_path: Path) -> None:
    with AccountFile(tmp_path / "a.csv") as out:
        out.add(None, b"\x01\x02\x03\x04", "no_account", "x")
    assert (tmp_path / "a.csv").stat().st_mode & 0o077 == 0


_text = st.text(alphabet=string.digits + 'ABCDEFX张²٣ ,"\n', max_size=24)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.dictionaries(
        st.sampled_from([*sorted(GOOD), "ec_balance", "ec_limit", "pin", "card_id", "card_no"]),
        _text,
        max_size=4,
    )
)
def test_arbitrary_rows_are_accepted_or_rejected(tmp_path: Path, changes: dict[str, str]) -> None:
    row = {**GOOD, **changes}
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    rejects = RejectsWriter(tmp_path / "rej.csv")
    batch = read_accounts(path, PBOC, 6, rejects)
    rejects.close()
    assert batch.read == 1 and batch.rejected + len(batch) == 1
    assert rejects.count == batch.rejected


@pytest.mark.parametrize(
    ("field", "value"),
    [("ec_balance", "²"), ("pin", "²²²²²²"), ("pan_seq", "٠١"), ("ec_limit", "1e3")],
)
def test_only_ascii_digits(field: str, value: str) -> None:
    from cardperso.bank.accounts import validate

    with pytest.raises(DataError) as err:
        validate({**GOOD, field: value}, 2, PBOC, 6)
    assert err.value.field == field
