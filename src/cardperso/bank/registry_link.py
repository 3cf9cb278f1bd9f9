"""The bank stage's answers into the card registry: ``account_opened`` / ``account_failed``.

:func:`registry_recorder` returns the ``registry`` callback of
:func:`cardperso.bank.personalize.personalize_batch`: each card's application (found by the
input row's ``card_no``, or else by the identity number's active card) moves through the
registry's own :func:`cardperso.registry.production.record_accounts` (one transaction per
card; an ``account_failed`` card then leads to a temporary card). Problems (a card the
registry does not know, a move its table forbids) are collected, never fatal: the card itself
is already personalized and in the account-opening file. :meth:`RegistryRecorder.on_card`
feeds back the chips the bank had no account data for (``no_account``), by chip serial.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cardperso.bank.accounts import AccountRecord
from cardperso.registry import cards as reg_cards
from cardperso.registry import production
from cardperso.storage.db import Database

__all__ = ["RegistryRecorder", "registry_recorder"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RegistryRecorder:
    db: Database
    actor: str
    opened: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    def __call__(self, rec: AccountRecord, opened: bool, reason: str) -> None:
        card_no = rec.card_no or next(
            (n for n, _state, active, _ in reg_cards.cards_of(self.db, rec.ssn) if active), ""
        )
        if not card_no:
            self.problems.append(f"line {rec.line}: no registry card for {rec.ssn_masked}")
            log.warning("%s", self.problems[-1])
            return
        ok, bad, problems = production.record_accounts(
            self.db, [(card_no, opened, reason[:200])], actor=self.actor
        )
        self.opened += ok
        self.failed += bad
        for p in problems:
            self.problems.append(f"line {rec.line}: {p}")
            log.warning("registry: %s", self.problems[-1])

    def on_card(self, serial: bytes, outcome: str, reason: str) -> None:
        """The ``on_card`` report of every card: a ``no_account`` chip (no input row for it)
        is found in the registry by its chip serial and recorded ``account_failed``, so a
        temporary card follows (issue 15: bank refusals are fed back)."""
        if outcome != "no_account" or not serial:
            return
        why = f"no account data at the bank: {reason}"[:200]
        got = production.record_answers(
            self.db,
            [production.AccountAnswer("", False, why, chip_serial=serial.hex().upper())],
            actor=self.actor,
        )
        self.failed += got.failed
        for p in got.problems:
            self.problems.append(p)
            log.warning("registry: %s", p)


def registry_recorder(db: Database, *, actor: str) -> Callable[[AccountRecord, bool, str], None]:
    return RegistryRecorder(db, actor)
