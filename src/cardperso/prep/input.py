"""Streaming input: CSV (UTF-8, header row) or JSON Lines, cut into chunks of records.

How this works
--------------
The main process never parses fields. :func:`open_input` reads the CSV header (mapping column
names and ministry aliases to canonical names, refusing unknown, duplicate or missing
columns), then :meth:`InputFile.chunks` streams the file in large byte pieces that end on a
record boundary: after a newline preceded by an even number of double quotes (so not inside a
quoted field). Workers split a piece into *records* (:func:`records_of`): a CSV record
continues over the next line while its double quotes are unbalanced (a quoted field with a
newline); a record still open after :data:`MAX_RECORD_LINES` lines or
:data:`MAX_RECORD_BYTES` bytes is cut and marked malformed. Then they decode and parse it
(:func:`parse_chunk`), so every problem is reported against the record's first input line.

Blank lines are not records and are not counted.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cardperso.errors import DataError
from cardperso.prep.validate import ROW, Reject
from cardperso.profiles.fields import INPUT_FIELDS, canonical

__all__ = [
    "MAX_RECORD_BYTES",
    "MAX_RECORD_LINES",
    "Chunk",
    "InputFile",
    "open_input",
    "parse_chunk",
]

MAX_RECORD_LINES = 16
MAX_RECORD_BYTES = 64 * 1024

#: (line number, raw record bytes, malformed-cut flag)
RawRecord = tuple[int, bytes, bool]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the input that starts and ends on record boundaries: raw bytes and the input
    line number of its first line. Workers split it into records (:func:`records_of`)."""

    index: int
    fmt: str
    columns: tuple[str, ...]
    data: bytes = field(repr=False)  # personal data: never in a repr
    first_line: int = 0


def _detect(path: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("csv", "jsonl"):
            raise DataError(f"unknown input format {fmt!r} (csv or jsonl)", field="format")
        return fmt
    low = path.lower()
    if low.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def _even_boundary(piece: bytes) -> int:
    """Length of the longest prefix of *piece* (a run of whole lines starting on a record
    boundary) that ends on a record boundary: after a newline with an even number of double
    quotes before it. 0 when the first record never closes inside *piece*."""
    total = piece.count(b'"')
    if total % 2 == 0:
        return len(piece)
    end = len(piece)
    suffix = 0
    while end > 0:
        start = piece.rfind(b"\n", 0, end - 1) + 1
        suffix += piece.count(b'"', start, end)
        if start == 0:
            return 0
        if (total - suffix) % 2 == 0:
            return start
        end = start
    return 0


class InputFile:
    """An opened input (see the module docstring)."""

    def __init__(self, path: str, fmt: str, columns: tuple[str, ...], data_start: int) -> None:
        self.path = path
        self.fmt = fmt
        self.columns = columns
        self._start = data_start
        self.header_line = 1 if fmt == "csv" else 0

    def chunks(self, size: int = 1000) -> Iterator[Chunk]:
        """Yield pieces of about *size* records (estimated at 160 bytes each), in input order."""
        fmt, columns = self.fmt, self.columns
        target = max(4096, 160 * size)
        index = 0
        line = self.header_line + 1
        buf = b""
        with open(self.path, "rb") as fh:
            fh.seek(self._start)
            while True:
                block = fh.read(target)
                buf += block
                if not block:
                    if buf:
                        yield Chunk(index, fmt, columns, buf, line)
                    return
                cut = buf.rfind(b"\n") + 1
                if cut == 0 or len(buf) < target // 2:
                    continue
                piece = buf[:cut]
                if fmt == "csv" and b'"' in piece:
                    even = _even_boundary(piece)
                    if even:
                        piece = piece[:even]
                    elif len(buf) < 2 * target:
                        continue  # a long quoted record: read more before giving up on it
                yield Chunk(index, fmt, columns, piece, line)
                index += 1
                line += piece.count(b"\n")
                buf = buf[len(piece) :]


def records_of(chunk: Chunk) -> Iterator[RawRecord]:
    """(line number, raw bytes, cut) for each record of *chunk*; blank lines are skipped. A CSV
    record continues over the next line while its quotes are unbalanced, up to
    :data:`MAX_RECORD_LINES` lines / :data:`MAX_RECORD_BYTES` bytes (then it is cut)."""
    lines = chunk.data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    csv_fmt = chunk.fmt == "csv"
    line_no = chunk.first_line - 1
    pending: list[bytes] = []
    pending_start = pending_size = 0
    for raw in lines:
        line_no += 1
        if pending:
            pending.append(raw)
            pending_size += len(raw)
            joined = b"\n".join(pending)
            if joined.count(b'"') % 2 == 0:
                yield (pending_start, joined, False)
                pending = []
            elif len(pending) >= MAX_RECORD_LINES or pending_size > MAX_RECORD_BYTES:
                yield (pending_start, joined, True)
                pending = []
        elif csv_fmt and b'"' in raw and raw.count(b'"') % 2:
            pending, pending_start, pending_size = [raw], line_no, len(raw)
        elif raw.strip():
            yield (line_no, raw, False)
    if pending:
        yield (pending_start, b"\n".join(pending), True)


def open_input(
    path: str | os.PathLike[str], fmt: str | None = None, *, required: frozenset[str] = frozenset()
) -> InputFile:
    """Open *path*, read and check the CSV header (file-level errors are :class:`DataError`)."""
    p = os.fspath(path)
    kind = _detect(p, fmt)
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot open input {p}: {exc.strerror}", field="input") from None
    with fh:
        if kind == "jsonl":
            head = fh.read(3)
            start = 3 if head == b"\xef\xbb\xbf" else 0
            return InputFile(p, kind, (), start)
        first = fh.readline()
        start = fh.tell()
    if not first.strip():
        raise DataError("the CSV file has no header row", field="header", record=1)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("the header row is not valid UTF-8", field="header", record=1) from None
    names = next(csv.reader([text.rstrip("\r\n")]))
    columns: list[str] = []
    for i, name in enumerate(names):
        canon = canonical(name)
        if canon is None:
            raise DataError(
                f"column {i + 1} {name.strip()!r} is not an input field "
                f"(known: {', '.join(INPUT_FIELDS)}, or AAC002... aliases)",
                field="header",
                record=1,
            )
        if canon in columns:
            raise DataError(f"column {canon!r} appears twice", field="header", record=1)
        columns.append(canon)
    missing = sorted(required - set(columns))
    if missing:
        raise DataError(
            f"required column(s) missing: {', '.join(missing)}", field="header", record=1
        )
    return InputFile(p, kind, tuple(columns), start)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Reject(ROW, f"is not valid UTF-8 (byte {exc.start + 1} of the record)") from None


def _json_record(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise Reject(ROW, f"is not valid JSON ({exc.args[0].split(':')[0]})") from None
    if not isinstance(obj, dict):
        raise Reject(ROW, "is not a JSON object")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        canon = canonical(key) if isinstance(key, str) else None
        if canon is None:
            raise Reject(str(key)[:40], "unknown field")
        if canon in out:
            raise Reject(canon, "given twice (name and alias)")
        if value is None:
            out[canon] = ""
        elif isinstance(value, str):
            out[canon] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            out[canon] = str(value)
        else:
            raise Reject(canon, "must be a string or a whole number")
    return out


def _fast_csv(chunk: Chunk) -> list[tuple[int, dict[str, Any] | Reject]] | None:
    """The common case in one pass of :mod:`csv` over the whole piece: valid UTF-8, no double
    quotes (one line = one record). None when the piece needs the record-by-record path
    (which gives the same results, more slowly)."""
    data = chunk.data
    if b'"' in data:
        return None  # quoted fields: the record path decides where records end
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    columns = chunk.columns
    ncol = len(columns)
    first = chunk.first_line
    out: list[tuple[int, dict[str, Any] | Reject]] = []
    reader = csv.reader(io.StringIO(text))
    before = 0
    try:
        for row in reader:
            after = reader.line_num
            if after - before > MAX_RECORD_LINES:
                return None
            line = first + before
            before = after
            if len(row) == ncol:
                out.append((line, dict(zip(columns, row))))
            elif not row or (len(row) == 1 and not row[0].strip()):
                continue
            else:
                out.append((line, Reject(ROW, f"has {len(row)} fields, the header has {ncol}")))
    except csv.Error:
        return None
    return out


def parse_chunk(chunk: Chunk) -> Iterator[tuple[int, dict[str, Any] | Reject]]:
    """Yield (line, record dict) or (line, Reject) for every record of *chunk*, in order."""
    columns = chunk.columns
    ncol = len(columns)
    if chunk.fmt == "jsonl":
        for line, raw, _cut in records_of(chunk):
            try:
                yield line, _json_record(_decode(raw))
            except Reject as rej:
                yield line, rej
        return
    fast = _fast_csv(chunk)
    if fast is not None:
        yield from fast
        return
    texts: list[str] = []
    lines: list[int] = []
    for line, raw, cut in records_of(chunk):
        if cut:
            yield line, Reject(ROW, "malformed CSV: a quoted field is never closed")
            continue
        try:
            texts.append(_decode(raw))
        except Reject as rej:
            yield line, rej
            continue
        lines.append(line)
    try:
        rows = list(csv.reader(texts))
        if len(rows) != len(texts):
            raise csv.Error("record count changed")
    except csv.Error:
        rows = []
        for t in texts:
            try:
                rows.append(next(csv.reader(io.StringIO(t))))
            except (csv.Error, StopIteration) as exc:
                rows.append([f"\x00csv-error:{exc}"])
    for line, row in zip(lines, rows):
        if len(row) != ncol:
            if len(row) == 1 and row[0].startswith("\x00csv-error:"):
                yield line, Reject(ROW, f"malformed CSV: {row[0][11:]}")
            else:
                yield line, Reject(ROW, f"has {len(row)} fields, the header has {ncol}")
            continue
        yield line, dict(zip(columns, row))
