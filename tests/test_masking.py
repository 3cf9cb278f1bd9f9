"""The one masking rule (cardperso.codec.numbers.mask_id) for identity numbers, card numbers and
PANs, and the bank's masked PANs and SSNs going through it (short input included)."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import pytest

from cardperso.bank.accounts import AccountRecord
from cardperso.bank.terminal import AppSelection, CardSession
from cardperso.codec.numbers import mask_id
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("360426199101010071", "360426********0071"),  # identity number
        ("6214830000000019", "621483******0019"),  # PAN 16
        ("6227000000000000008", "622700*********0008"),  # PAN 19
        ("36042619910101", "360426****0101"),  # 14: the shortest with 6 + 4
        ("3604261991010", "36*********10"),  # 13
        ("B7K334774", "B7*****74"),  # card number
        ("62148300", "62****00"),  # 8: the shortest with 2 + 2
        ("6214830", "*******"),  # 7
        ("1234", "****"),
        ("", ""),
    ],
)
def test_the_rule(value: str, masked: str) -> None:
    assert mask_id(value) == masked


@pytest.mark.parametrize("n", range(0, 25))
def test_short_input_never_shows_more_than_the_rule(n: int) -> None:
    value = "".join(str(i % 10) for i in range(1, n + 1))
    got = mask_id(value)
    assert len(got) == n
    shown = [i for i, c in enumerate(got) if c != "*"]
    assert len(shown) <= 10 and n - len(shown) >= min(n, 4)
    assert all(got[i] == value[i] for i in shown)
    if n < 8:
        assert shown == []


def test_the_bank_masks_pans_and_ssns_by_the_rule() -> None:
    session = CardSession(AppSelection(b"\xa0", b"", b"", "AID"), pan="621483001")
    assert session.pan_masked == "62*****01"  # was every digit shown as '*' by the bank's own rule
    rec = AccountRecord(
        line=1, chip_serial=b"", card_id=b"", ssn="360426199101010071", name_gbk=b"",
        name_latin="", pan="6214830000000019", pan_seq="00", issue_date="", expiry_date="",
        pin="", ec=(0, 0, 0, 0),
    )  # fmt: skip
    assert rec.pan_masked == "621483******0019"
    assert rec.ssn_masked == "360426********0071"


def test_prep_rejects_mask_a_short_ssn_by_the_rule(tmp_path: Path) -> None:
    """An 8-character SSN in a rejected record once came out whole (``ssn[:6] + ssn[-4:]``)."""
    keys = Path(__file__).resolve().parent.parent / "keys-sample" / "keys.json"
    store = SoftwareKeyStore.load(keys)
    make_batch(tmp_path / "batch.csv", 2, seed=1)
    lines = (tmp_path / "batch.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = "62148301" + lines[2][lines[2].index(",") :]
    (tmp_path / "batch.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepare(
        tmp_path / "batch.csv", load_profile("ssc3-pboc"), store,
        functools.partial(SoftwareKeyStore.load, keys), tmp_path / "b.perso",
        tmp_path / "rejects.csv", PrepOptions(batch_id="M1", created=1_700_000_000),
    )  # fmt: skip
    (row,) = csv.DictReader((tmp_path / "rejects.csv").open(encoding="utf-8"))
    assert (row["line"], row["field"]) == ("3", "ssn")
    assert row["ssn_masked"] == "62****01"
