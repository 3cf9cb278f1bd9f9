"""The per-card results file of a run: record → chip serial → ATR → card id code → outcome."""

from __future__ import annotations

import csv
from pathlib import Path

from cardperso.line.journal import Journal
from cardperso.outputs import atomic_output

RESULT_COLUMNS = (
    "record",
    "card_no",
    "ssn_masked",
    "outcome",
    "attempts",
    "station",
    "chip_serial",
    "atr",
    "card_id_code",
    "pan_masked",
    "reject_reason",
)


def write_results(journal: Journal, path: Path) -> None:
    """The per-card result file: record → chip serial → ATR → card id code → outcome → reason."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as fh:  # never a partial results file under the final name
        w = csv.writer(fh)
        w.writerow(RESULT_COLUMNS)
        for r in journal.results():
            outcome = {"done": "produced", "failed": "rejected"}.get(
                str(r["state"]), str(r["state"])
            )
            w.writerow(
                [
                    r["record_index"],
                    r["card_no"],
                    r["ssn_masked"],
                    outcome,
                    r["attempts"],
                    r["station"] or "",
                    r["chip_serial"] or "",
                    r["atr"] or "",
                    r["card_id_code"] or "",
                    r["pan_masked"] or "",
                    r["reason"] or "",
                ]
            )
