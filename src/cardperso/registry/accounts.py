"""The bank's answers (``registry accounts``): account opened or failed, or no account data for
a chip (the bank stage's ``no_account``), recorded idempotently.

A card's answer moves it ``personalized → account_opened`` or ``→ account_failed`` (then a
temporary card follows). An answer the registry already has is counted "already recorded";
one that contradicts the recorded answer, names a card the registry does not know or a PAN on
another active card is a problem and changes nothing. The bank stage's account-opening file
(``cardperso bank personalize --out``) is read as it is: ``no_account`` rows are found by
their chip serial.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from cardperso.codec.csvcells import unsafe_cell
from cardperso.errors import DataError, UsageError
from cardperso.registry.files import csv_records
from cardperso.registry.store import is_integrity_error, move
from cardperso.storage.db import Database


@dataclass(frozen=True, slots=True)
class AccountAnswer:
    """One answer of the bank: the card (by number, or by chip serial when the bank only knew
    the chip: ``no_account``), opened or not, why, and the account's PAN when the bank says."""

    card_no: str
    ok: bool
    reason: str = ""
    pan: str = field(default="", repr=False)
    chip_serial: str = ""
    line: int = 0
    pending: bool = False  # the bank stage could not finish the card (card_error): no answer


@dataclass
class AccountsRecorded:
    opened: int = 0
    failed: int = 0
    already: int = 0
    unfinished: int = 0
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (
            f"accounts opened {self.opened}, failed {self.failed}, {self.already} already recorded"
        )
        if self.unfinished:
            text += f", {self.unfinished} not finished at the bank (card_error: present again)"
        return text + (f", {len(self.problems)} problem(s)" if self.problems else "")


_ACCOUNT_EVENTS: Final = ("account_open", "account_fail")


def record_answers(
    db: Database, answers: Iterable[AccountAnswer], *, actor: str
) -> AccountsRecorded:
    """Record the bank's answers: ``account_opened`` or ``account_failed`` (a temporary card
    follows). Idempotent: an answer the registry already has is counted as already recorded;
    an answer that contradicts the one recorded, a card the registry does not know and a PAN on
    another person's active card are problems, and change nothing."""
    out = AccountsRecorded()
    for a in answers:
        where = f"line {a.line}: " if a.line else ""
        if a.pending:
            out.unfinished += 1
            continue
        if a.card_no:
            rows = db.execute(
                "SELECT card_no, application_id FROM reg_cards WHERE card_no = ?", (a.card_no,)
            )
            who = f"card {a.card_no}"
        else:
            rows = db.execute(
                "SELECT card_no, application_id FROM reg_cards WHERE chip_serial = ? "
                "ORDER BY registered_at DESC",
                (a.chip_serial,),
            )
            who = f"chip {a.chip_serial}"
        if not rows or not (a.card_no or a.chip_serial):
            out.problems.append(f"{where}{who}: not in the registry")
            continue
        card_no, app_id = str(rows[0][0]), int(rows[0][1])
        try:
            with db.transaction():
                problem = _record_answer(db, card_no, app_id, a, out, actor=actor)
        except UsageError as exc:
            problem = str(exc)
        except Exception as exc:
            if not is_integrity_error(exc):
                raise
            problem = "the bank's card number was just given to another active card"
        if problem:
            out.problems.append(f"{where}card {card_no}: {problem}")
    return out


def _record_answer(
    db: Database, card_no: str, app_id: int, a: AccountAnswer, out: AccountsRecorded, *, actor: str
) -> str:
    current = db.execute(
        "SELECT card_no FROM reg_applications WHERE id = ?" + db.for_update, (app_id,)
    )[0][0]
    if current != card_no:
        return f"was replaced by card {current}"
    marks = ", ".join("?" for _ in _ACCOUNT_EVENTS)
    last = db.execute(
        f"SELECT event FROM reg_transitions WHERE card_no = ? AND event IN ({marks}) "
        "ORDER BY id DESC",
        (card_no, *_ACCOUNT_EVENTS),
    )
    event = "account_open" if a.ok else "account_fail"
    if last:
        if last[0][0] == event:
            out.already += 1
            return ""
        said = "opened" if last[0][0] == "account_open" else "failed"
        return f"the bank answered {said} before; this answer is not recorded"
    (pan,) = db.execute("SELECT pan FROM reg_cards WHERE card_no = ?", (card_no,))[0]
    if a.ok and a.pan:
        if pan and a.pan != pan:
            return "the bank's card number differs from the registry's"
        clash = db.execute(
            "SELECT card_no FROM reg_cards WHERE active = 1 AND pan = ? AND card_no <> ?",
            (a.pan, card_no),
        )
        if clash:
            return f"the bank's card number is on another active card {clash[0][0]}"
        if not pan:
            db.execute("UPDATE reg_cards SET pan = ? WHERE card_no = ?", (a.pan, card_no))
    if a.ok:
        move(db, app_id, event, actor=actor)
        out.opened += 1
    else:
        move(db, app_id, event, actor=actor, detail=a.reason, reason=a.reason)
        out.failed += 1
    return ""


def record_accounts(
    db: Database, answers: Iterable[tuple[str, bool, str]], *, actor: str
) -> tuple[int, int, list[str]]:
    """The bank's answers (card number, opened?, reason): (opened, failed, problems); an answer
    already recorded is neither (see :func:`record_answers`)."""
    got = record_answers(db, (AccountAnswer(n, ok, why) for n, ok, why in answers), actor=actor)
    return got.opened, got.failed, got.problems


#: The bank stage's outcomes (``cardperso bank personalize --out``, docs/bank.md).
_OUTCOMES: Final = {"account_opened": True, "account_failed": False, "no_account": False}


def read_accounts_file(path: str | os.PathLike[str]) -> list[AccountAnswer]:
    """The bank's answers: CSV ``card_no,status,reason[,pan]`` (status ``opened`` or
    ``failed``), or the bank stage's account-opening file (``outcome`` account_opened,
    account_failed or no_account, found by ``chip_serial`` when it has no card number;
    ``card_error`` rows are not answers yet)."""
    rows = list(csv_records(path, "accounts", frozenset({"card_no"})))
    out = []
    for n, raw in rows:
        row = {k: unsafe_cell(v).strip() for k, v in raw.items()}
        if "outcome" in row:
            outcome = row["outcome"].lower()
            if outcome == "card_error":
                out.append(AccountAnswer(row["card_no"], False, line=n, pending=True))
                continue
            if outcome not in _OUTCOMES or not (row["card_no"] or row.get("chip_serial")):
                raise DataError(
                    "needs card_no or chip_serial and outcome account_opened|account_failed|"
                    "no_account",
                    field="outcome",
                    record=n,
                )
            reason = row.get("reason", "")
            if outcome == "no_account":
                reason = "no account data at the bank" + (f": {reason}" if reason else "")
            out.append(
                AccountAnswer(
                    row["card_no"],
                    _OUTCOMES[outcome],
                    reason,
                    row.get("pan", ""),
                    row.get("chip_serial", ""),
                    n,
                )
            )
            continue
        status = row.get("status", "").lower()
        if status not in ("opened", "failed") or not row["card_no"]:
            raise DataError("needs card_no and status opened|failed", field="status", record=n)
        out.append(
            AccountAnswer(
                row["card_no"],
                status == "opened",
                row.get("reason", ""),
                row.get("pan", ""),
                line=n,
            )
        )
    return out
