"""The bank's input files, row by row, with limits: every physical line is a row or a reject.

How this works
--------------
The bank's inputs (the account data, the factory's handover file) hold one row per physical line:
no field spans lines. So a line is read on its own, at most :data:`MAX_LINE_BYTES` bytes of it
held (a longer line is skipped to its end and rejected with its size), and each line becomes
either a row (a ``dict`` of column to text) or a :class:`~cardperso.errors.DataError` naming the
reason: a NUL byte, text that is not UTF-8, a carriage return inside the line, a quote that does
not close on its line, more fields than the header, JSON that does not parse, is nested too
deeply, is not an object or names a field twice. A stray quote can no longer swallow the lines
after it: ``read = valid + rejected`` holds over the file's physical lines (blank lines are not
rows). Only a regular file is read (a FIFO or a device would block or never end).

File-level problems (the header: unknown or repeated column names, a header that is not text)
raise :class:`~cardperso.errors.DataError` before any row.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from cardperso.errors import DataError

__all__ = ["MAX_LINE_BYTES", "Row", "csv_rows", "jsonl_rows", "rows"]

#: The longest line read (bytes, line end included): a row of the bank's input is far shorter.
MAX_LINE_BYTES: Final = 64 * 1024

#: One physical line: its number (the first line is 1) and its row or the reason it is refused.
Row = tuple[int, dict[str, str] | DataError]


def _lines(path: Path) -> Iterator[tuple[int, str | DataError]]:
    """Each physical line of ``path`` as text without its line end, or the reason it is not."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror})", field="(file)") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{path} is not a regular file", field="(file)")
    with os.fdopen(fd, "rb") as fh:
        n = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            n += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                size = len(raw)
                while raw and not raw.endswith(b"\n"):  # skip the rest, never holding it
                    raw = fh.readline(MAX_LINE_BYTES)
                    size += len(raw)
                yield (
                    n,
                    DataError(
                        f"the line is {size:,} bytes, over the limit of {MAX_LINE_BYTES:,}",
                        field="(row)",
                    ),
                )
                continue
            yield n, _text(raw)


def _text(raw: bytes) -> str | DataError:
    if b"\x00" in raw:
        return DataError("the line contains a NUL byte", field="(row)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return DataError("the line is not valid UTF-8", field="(row)")
    text = text.removesuffix("\n").removesuffix("\r")
    if "\r" in text:
        return DataError("a carriage return inside the line (CR line endings?)", field="(row)")
    return text


def _cells(text: str) -> list[str] | None:
    """The cells of one CSV line, or ``None`` when a quote does not close on the line."""
    try:
        return next(csv.reader([text], strict=True), [])
    except csv.Error:
        return None


def csv_rows(path: Path, known: frozenset[str] | set[str] | None = None) -> Iterator[Row]:
    """CSV with a header row (a UTF-8 BOM is allowed); cells stripped of spaces."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        return
    _, header_text = first
    if isinstance(header_text, DataError):
        raise DataError(header_text.reason, field="(header)", record=1)
    header = _cells(header_text.removeprefix("\ufeff"))
    if header is None:
        raise DataError("a quote does not close on the header line", field="(header)", record=1)
    header = [h.strip() for h in header]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise DataError(f"column(s) {', '.join(twice)} appear twice", field="(header)", record=1)
    if known is not None:
        unknown = set(header) - set(known)
        if unknown:
            raise DataError(f"unknown column(s) {', '.join(sorted(unknown))}", field="(header)")
    for n, text in lines:
        if isinstance(text, DataError):
            yield n, text
            continue
        if not text.strip():
            continue
        cells = _cells(text)
        if cells is None:
            yield n, DataError("a quoted field does not close on its line", field="(row)")
        elif len(cells) > len(header):
            yield n, DataError("has more fields than the header", field="(row)")
        else:
            yield n, {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}


class _Twice(Exception):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _Twice(name)
        out[name] = value
    return out


def _json_row(text: str) -> dict[str, str] | DataError:
    try:
        doc = json.loads(text, object_pairs_hook=_unique)
    except json.JSONDecodeError:
        return DataError("is not valid JSON", field="(row)")
    except RecursionError:
        return DataError("is nested too deeply", field="(row)")
    except _Twice as twice:
        return DataError(f"field {twice.args[0]!r} appears twice", field="(row)")
    if not isinstance(doc, dict):
        return DataError("is not a JSON object", field="(row)")
    return {str(k): "" if v is None else str(v) for k, v in doc.items()}


def jsonl_rows(path: Path) -> Iterator[Row]:
    """JSON Lines: one object per line."""
    for n, text in _lines(path):
        if isinstance(text, DataError):
            yield n, text
        elif text.strip():
            yield n, _json_row(text)


def rows(path: Path, known: frozenset[str] | set[str] | None = None) -> Iterator[Row]:
    """JSON Lines for ``.jsonl`` / ``.ndjson``, else CSV with a header row."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return jsonl_rows(path)
    return csv_rows(path, known)
