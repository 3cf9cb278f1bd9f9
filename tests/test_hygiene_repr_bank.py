"""Secrets hygiene of the bank side's objects: their ``repr`` shows no PIN seed, no clear
card records, no whole PAN and no cardholder name (same check as test_hygiene_repr)."""

from __future__ import annotations

from typing import Any

from cardperso.bank.personalize import BankPlan
from cardperso.crypto import random_bytes

SEED = random_bytes(16)


def test_bank_plan_repr_hides_the_pin_seed() -> None:
    two: Any = None  # the plan's profile part plays no role in the repr check
    shown = repr(BankPlan(two, "batch-1", pin_seed=SEED))
    assert SEED.hex() not in shown.lower() and repr(SEED)[2:-1] not in shown, shown
