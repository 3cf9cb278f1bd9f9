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


def test_card_session_repr_hides_the_records_and_the_pan() -> None:
    from cardperso.bank.terminal import AppSelection, CardSession

    pan = "6228480000000000017"
    record = bytes.fromhex("70 12 57 10") + bytes.fromhex(pan[:16])  # tag 57, track 2 equivalent
    sel = AppSelection(b"\xa0\x00\x00\x03\x33\x01\x01\x01", b"", b"", "PPSE")
    shown = repr(CardSession(sel, records={0x0101: record}, pan=pan))
    assert pan not in shown and pan[:16] not in shown.replace(" ", ""), shown
    assert record.hex() not in shown.lower() and repr(record)[2:-1] not in shown, shown


def test_magstripe_tracks_repr_hides_the_pan_and_the_name() -> None:
    from cardperso.codec.magstripe import tracks

    pan = "6228480000000000017"
    shown = repr(tracks(pan, "ZHANG/SANFENG", "3012")) + str(tracks(pan, "ZHANG/SANFENG", "3012"))
    assert pan not in shown and "SANFENG" not in shown, shown


def test_demo_factory_card_repr_hides_identity_number_and_name() -> None:
    from pathlib import Path

    from cardperso.sim.bank_demo import FactoryCard

    ssn = "11010119900307663X"  # GB 11643 example form (synthetic)
    shown = repr(FactoryCard(Path("card.json"), b"\x01" * 8, b"\x02" * 16, ssn, "张三丰"))
    assert ssn not in shown and "张三丰" not in shown, shown
