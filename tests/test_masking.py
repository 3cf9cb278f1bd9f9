"""The one masking rule (cardperso.codec.numbers.mask_id) for identity numbers, card numbers and
PANs, and the bank's masked PANs and SSNs going through it (short input included)."""

from __future__ import annotations

import pytest

from cardperso.bank.accounts import AccountRecord
from cardperso.bank.terminal import AppSelection, CardSession
from cardperso.codec.numbers import mask_id


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
