"""The rejects file: one row per rejected record, CSV or JSON Lines (chosen by extension).

Columns: ``line`` (the record's first input line, the header being line 1), ``field`` (a
canonical field name, ``(row)`` for the shape of the row, ``(record)`` for the record as a
whole), ``reason`` (what is wrong, in words a person can act on) and ``ssn_masked`` (the
identity number with its middle masked, when the record had one, to help find the applicant)
and ``end_line`` (the record's last input line: the same as ``line`` unless the record ran over
several lines, e.g. a quoted field with a line break, which is always rejected). Every
non-blank input line lies in one rejected range or in one prepared record.
"""

from __future__ import annotations

import csv
import json
import os
from typing import IO

from cardperso.outputs import AtomicFile

__all__ = ["REJECT_COLUMNS", "RejectsWriter"]

REJECT_COLUMNS = ("line", "field", "reason", "ssn_masked", "end_line")


class RejectsWriter:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = os.fspath(path)
        self.path = p
        self.jsonl = p.lower().endswith((".jsonl", ".ndjson", ".json"))
        self._out = AtomicFile(p)  # appears under its name only when the batch is done
        self._fh: IO[str] = self._out.fh
        self._csv = None if self.jsonl else csv.writer(self._fh, lineterminator="\n")
        if self._csv is not None:
            self._csv.writerow(REJECT_COLUMNS)
        self.count = 0

    def add(
        self, line: int, field: str, reason: str, ssn_masked: str = "", end_line: int = 0
    ) -> None:
        """One rejected record: its first input line and (when it ran over several lines) its
        last one."""
        self.count += 1
        end = max(end_line, line)
        if self._csv is not None:
            self._csv.writerow((line, field, reason, ssn_masked, end))
        else:
            row = {
                "line": line,
                "field": field,
                "reason": reason,
                "ssn_masked": ssn_masked,
                "end_line": end,
            }
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Commit the file: it appears under its final name (temporary file, fsync, rename)."""
        self._out.commit()

    def abort(self) -> None:
        """Throw the file away: a failed batch leaves no rejects file under the final name."""
        self._out.abort()
