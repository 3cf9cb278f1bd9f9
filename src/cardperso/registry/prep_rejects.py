"""Data preparation's rejects flow back to the registry (``registry import-rejects``).

A batch exported by ``registry export-batch`` moves its applications to ``in_production``. When
``cardperso prep`` rejects some of its records (a duplicate PAN, a photo gone missing…), those
cards will never reach the line; without this module they would stay ``in_production`` for
ever. The rejects file (``line, field, reason, ssn_masked`` and, for a record spanning lines,
``end_line``; CSV or JSON Lines) names lines of the exported file, and the registry knows which
application it wrote on which lines (``reg_batch_records``, filled at export).

Each rejected application moves ``in_production → prep_rejected`` with the reason (transition
log and the application's ``reason``), and the batch record keeps the reject, so importing the
same file again reports "already recorded" and changes nothing. The masked identity number of a
reject must match the application on that line: the rejects of another batch are refused, not
applied to the wrong people. From ``prep_rejected`` the centre requeues the card
(:func:`requeue`, once the cause is fixed outside the application) or cancels it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cardperso.codec.csvcells import unsafe_cell
from cardperso.codec.numbers import mask_id
from cardperso.errors import DataError, UsageError
from cardperso.registry import lifecycle
from cardperso.registry.files import csv_records, open_text
from cardperso.registry.store import app_by_card, move
from cardperso.storage.db import Database

#: The longest JSON Lines row of a rejects file (characters).
MAX_ROW: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class PrepReject:
    line: int
    end_line: int
    field: str
    reason: str
    ssn_masked: str


def _int(value: Any, row: int, name: str) -> int:
    text = str(value if value is not None else "").strip()
    if not text.isdigit() or len(text) > 12 or int(text) < 1:
        raise DataError("is not a line number", record=row, field=name)
    return int(text)


def _reject(raw: dict[str, Any], row: int) -> PrepReject:
    line = _int(raw.get("line"), row, "line")
    end = raw.get("end_line")
    end_line = _int(end, row, "end_line") if end not in (None, "") else line
    if end_line < line:
        raise DataError("is before line", record=row, field="end_line")
    return PrepReject(
        line,
        end_line,
        unsafe_cell(str(raw.get("field") or "")),
        unsafe_cell(str(raw.get("reason") or "")),
        unsafe_cell(str(raw.get("ssn_masked") or "")),
    )


def read_prep_rejects(path: str | os.PathLike[str]) -> list[PrepReject]:
    """Read a prep rejects file (CSV with a header, or JSON Lines by extension)."""
    p = Path(path)
    if not p.name.lower().endswith((".jsonl", ".ndjson", ".json")):
        need = frozenset({"line", "field", "reason"})
        return [_reject(row, n) for n, row in csv_records(p, "rejects", need)]
    out: list[PrepReject] = []
    with open_text(p, "rejects") as fh:
        n = 0
        while True:
            try:
                text = fh.readline(MAX_ROW + 1)
            except UnicodeDecodeError:
                raise DataError(f"{p.name} is not UTF-8 text", field="rejects") from None
            if not text:
                return out
            n += 1
            if len(text) > MAX_ROW:
                raise DataError("row is too long", record=n, field="(row)")
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
            except (ValueError, RecursionError):
                raise DataError("is not a JSON object", record=n, field="(row)") from None
            if not isinstance(raw, dict):
                raise DataError("is not a JSON object", record=n, field="(row)")
            out.append(_reject(raw, n))


@dataclass
class RejectsAbsorbed:
    recorded: int = 0
    already: int = 0
    moved: list[tuple[int, str, str, str]] = field(default_factory=list)  # line, card, ssn, why
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"{self.recorded} prep-rejected, {self.already} already recorded"
        return text + (f", {len(self.problems)} problem(s)" if self.problems else "")


def import_prep_rejects(
    db: Database, batch_no: str, rejects: list[PrepReject], *, actor: str
) -> RejectsAbsorbed:
    """Move the applications that data preparation rejected to ``prep_rejected``; idempotent."""
    if not db.execute("SELECT 1 FROM reg_batches WHERE batch_no = ?", (batch_no,)):
        raise UsageError(f"no batch {batch_no} in the registry")
    out = RejectsAbsorbed()
    for rej in rejects:
        # every exported record whose lines meet the reject's lines
        spans = db.execute(
            "SELECT line FROM reg_batch_records WHERE batch_no = ? AND line <= ? "
            "AND end_line >= ? ORDER BY line",
            (batch_no, rej.end_line, rej.line),
        )
        if not spans:
            out.problems.append(
                f"line {rej.line}: no record of batch {batch_no} is on this line"
                + (" (the header)" if rej.line == 1 else "")
            )
            continue
        for (line,) in spans:
            with db.transaction():
                problem = _record_one(db, batch_no, int(line), rej, out, actor=actor)
            if problem:
                out.problems.append(f"line {line}: {problem}")
    return out


def _record_one(
    db: Database, batch_no: str, line: int, rej: PrepReject, out: RejectsAbsorbed, *, actor: str
) -> str:
    app_id, card_no, done = db.execute(
        "SELECT application_id, card_no, prep_reject FROM reg_batch_records "
        "WHERE batch_no = ? AND line = ?" + db.for_update,
        (batch_no, line),
    )[0]
    if done is not None:
        out.already += 1
        return ""
    state, ssn = db.execute(
        "SELECT state, ssn FROM reg_applications WHERE id = ?" + db.for_update, (int(app_id),)
    )[0]
    masked = mask_id(str(ssn))
    if line == rej.line and rej.ssn_masked and rej.ssn_masked != masked:
        return (
            f"card {card_no}: the reject's identity number {rej.ssn_masked} is not the "
            f"exported record's {masked} (the rejects of another batch?)"
        )
    card_batch = db.execute("SELECT batch_no FROM reg_cards WHERE card_no = ?", (card_no,))
    if state != lifecycle.IN_PRODUCTION or not card_batch or card_batch[0][0] != batch_no:
        return f"card {card_no} is {state}, not in production in batch {batch_no}"
    where = f"line {rej.line}" + (f"-{rej.end_line}" if rej.end_line != rej.line else "")
    why = f"{rej.field}: {rej.reason}" if rej.field else rej.reason
    move(
        db,
        int(app_id),
        "prep_reject",
        actor=actor,
        detail=f"batch {batch_no} {where}: {why}",
        reason=f"rejected at data preparation: {why}",
    )
    db.execute(
        "UPDATE reg_batch_records SET prep_reject = ? WHERE batch_no = ? AND line = ?",
        (why, batch_no, line),
    )
    out.recorded += 1
    out.moved.append((line, str(card_no), masked, why))
    return ""


def requeue(db: Database, card_no: str, *, reason: str, actor: str) -> str:
    """Put a prep-rejected card back in the queue of a later batch (``registered``, or
    ``account_failed`` for a temporary card); the new state."""
    app = app_by_card(db, card_no)
    if app.card_no != card_no:
        raise UsageError(f"card {card_no} was replaced by {app.card_no or 'another card'}")
    kind = db.execute("SELECT kind FROM reg_cards WHERE card_no = ?", (card_no,))[0][0]
    event = "requeue_temporary" if kind == "temporary" else "requeue"
    with db.transaction():
        return move(db, app.id, event, actor=actor, detail=reason, reason=None)
