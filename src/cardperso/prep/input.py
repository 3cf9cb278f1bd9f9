"""Streaming input: CSV (UTF-8, header row) or JSON Lines, cut into chunks of records.

How this works
--------------
Physical lines end with LF (a CR just before the LF belongs to the line end); line 1 is the
CSV header. Every physical line that is not blank (only spaces, tabs and CRs) belongs to
exactly one record, and every record is prepared or rejected: ``read = prepared + rejected``
holds over the file's physical lines, whatever the input holds.

* :func:`open_input` reads the CSV header (at most :data:`MAX_LINE_BYTES`), mapping column
  names and ministry aliases to canonical names and refusing unknown, duplicate or missing
  columns without ever quoting a cell that may be personal data (a header cell is quoted only
  when it looks like a field name). A first line with a bare CR (CR-only line ends) is a
  file-level error.
* :meth:`InputFile.chunks` (main process) streams the file in pieces of whole lines. A line
  over :data:`MAX_LINE_BYTES` is never held: it is skipped while scanning and becomes a
  one-line reject. For CSV the piece is cut into records by a quote-aware scanner
  (:func:`ends_quoted`, the same rules as :mod:`csv`: a ``"`` opens a quoted field only at the
  start of a field; a quick pass of :mod:`csv` first, in C, when nothing spans lines). A line
  that ends inside a quoted field is followed to the line that closes the quotes, within
  :data:`MAX_RECORD_LINES` lines and :data:`MAX_RECORD_BYTES` bytes: those lines are one
  *multi-line record*, always rejected, naming its line range. No field of this data can hold
  a line break, so a quoted line break is never accepted; following the quotes means the lines
  inside such a field are never judged as records of their own. When nothing closes the quotes
  within that window (or before an over-long line or the end of the file), the opening line
  alone is rejected and the next line starts a new record: a stray opening quote costs one
  record. These verdicts travel with the chunk (:attr:`Chunk.notes`) and their lines are
  blanked in its data.
* Workers (:func:`parse_chunk`) take every other non-blank line as one record: a NUL byte, a
  bare CR or invalid UTF-8 rejects it; then CSV (:mod:`csv`) or JSON (a flat object: deep
  nesting is rejected, never a RecursionError) gives the record's fields.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from cardperso.errors import DataError
from cardperso.prep.validate import ROW, Reject
from cardperso.profiles.fields import INPUT_FIELDS, canonical

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_RECORD_BYTES",
    "MAX_RECORD_LINES",
    "Chunk",
    "InputFile",
    "Parsed",
    "ends_quoted",
    "open_input",
    "parse_chunk",
    "parse_columns",
]

#: The longest physical line (bytes, without its line end). A good record is a few hundred
#: bytes; a longer line is rejected on its own while it is scanned, never held in memory whole.
MAX_LINE_BYTES = 64 * 1024
#: How far a quoted field that runs over line ends is followed: closed within this window, the
#: lines are one (rejected) record; else its first line alone is rejected as never closed and
#: the next line starts a new record.
MAX_RECORD_LINES = 16
MAX_RECORD_BYTES = 64 * 1024

#: (first line, last line, reason): a record judged by the reader itself (see the docstring).
Note = tuple[int, int, str]

_BLANK = b" \t\r"
_NAME_LIKE = re.compile(r"[a-z][a-z0-9_]{0,39}|[A-Za-z]{3}[0-9]{3}")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the input that starts and ends on record boundaries: raw bytes (one line per
    physical line), the input line number of its first line, and the records the reader judged
    itself (``notes``: multi-line records and over-long lines, blank in ``data``)."""

    index: int
    fmt: str
    columns: tuple[str, ...]
    data: bytes = field(repr=False)  # personal data: never in a repr
    first_line: int = 0
    notes: tuple[Note, ...] = ()


def _detect(path: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("csv", "jsonl"):
            raise DataError(f"unknown input format {fmt!r} (csv or jsonl)", field="format")
        return fmt
    low = path.lower()
    if low.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def ends_quoted(line: bytes, quoted: bool = False) -> bool:
    """Whether a CSV *line* ends inside a quoted field, when it starts inside one (*quoted*)
    or at the start of a record. As :mod:`csv` reads it: ``"`` opens a quoted field only at
    the start of a field (line start or after a comma), ``""`` inside is a literal quote, and
    any other ``"`` closes the field (a ``"`` inside an unquoted field is a plain character).

    Pairs ``""`` are dropped first (in C): whatever the state, a pair changes nothing (inside a
    quoted field it is a literal quote; at the start of a field an empty quoted field; inside
    an unquoted field two plain characters), so the loop runs once per quoted field, not once
    per quote: then every ``"`` inside a quoted field closes it, and outside one only ``"`` at
    the start of the line or after a comma opens one."""
    if b'""' in line:
        line = line.replace(b'""', b"")
    find = line.find
    pos = 0
    if not quoted and line[:1] == b'"':
        quoted, pos = True, 1
    while True:
        if quoted:
            q = find(b'"', pos)
            if q < 0:
                return True
            quoted, pos = False, q + 1
        else:
            q = find(b',"', pos)
            if q < 0:
                return False
            quoted, pos = True, q + 2


def _too_long(size: int) -> str:
    return f"is {size:,} bytes long, over the limit of {MAX_LINE_BYTES:,} bytes for one line"


def _blank_long(data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """*data* (whole lines, each ending with LF) with every line over the limit emptied, and
    those lines as (index, size)."""
    if len(data) <= MAX_LINE_BYTES + 1:
        return data, []
    lines = data.split(b"\n")
    longs = [(i, len(x)) for i, x in enumerate(lines) if len(x) > MAX_LINE_BYTES]
    if not longs:
        return data, []
    for i, _size in longs:
        lines[i] = b""
    return b"\n".join(lines), longs


def _whole_lines(fh: IO[bytes], block: int) -> Iterator[tuple[bytes, list[tuple[int, int]]]]:
    """Pieces of whole physical lines (each ending with LF, one added at the end of the file)
    and their over-long lines (emptied, as index and size). Memory stays within a few blocks:
    an over-long line is skipped block by block while its length is counted."""
    buf = b""
    while True:
        got = fh.read(block)
        if not got:
            if buf:
                yield _blank_long(buf + b"\n")
            return
        buf += got
        cut = buf.rfind(b"\n") + 1
        if cut:
            yield _blank_long(buf[:cut])
            buf = buf[cut:]
        if len(buf) > MAX_LINE_BYTES:
            size = len(buf)
            buf = b""
            while True:
                got = fh.read(block)
                if not got:
                    break
                nl = got.find(b"\n")
                if nl < 0:
                    size += len(got)
                    continue
                size += nl
                buf = got[nl + 1 :]
                break
            yield b"\n", [(0, size)]


def _last_line(data: bytes) -> bytes:
    return data[:-1].rsplit(b"\n", 1)[-1] if data.endswith(b"\n") else data.rsplit(b"\n", 1)[-1]


def _one_line_records(data: bytes) -> bool:
    """True when no record of *data* runs over a line end: a quick check by :mod:`csv` (in C;
    quoted fields are common), False when in doubt (then :func:`ends_quoted` decides line by
    line). A row that :mod:`csv` reads from one line closes on it, except the last one (which
    may end inside a quoted field at the end of the input)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape")))
    before = 0
    try:
        for _row in reader:
            if reader.line_num != before + 1:
                return False
            before += 1
    except csv.Error:
        return False
    return not ends_quoted(_last_line(data))


def _span_reason(first: int, last: int, why: str) -> str:
    if first == last:
        return why
    return f"record spans lines {first}-{last}: {why}"


class _Segmenter:
    """Finds the CSV records that run over line ends (see the module docstring); keeps the
    lines of a record still open at the end of a piece for the next one."""

    def __init__(self) -> None:
        self.carry = b""
        self.carry_lines = 0

    def piece(
        self, data: bytes, first: int, notes: list[Note], longs: set[int], eof: bool
    ) -> tuple[bytes, int]:
        """Judge the multi-line records of *data* (lines from *first*; *longs* the indexes of
        over-long lines) into *notes*; returns the data left for the workers (spans blanked,
        an open record's lines removed from the end and kept) and its first line."""
        if self.carry:
            data = self.carry + data
            first -= self.carry_lines
            longs = {i + self.carry_lines for i in longs}
            self.carry, self.carry_lines = b"", 0
        if b'"' not in data or _one_line_records(data):
            return data, first
        lines = data.split(b"\n")
        lines.pop()  # the data ends with LF
        n = len(lines)
        i = 0
        while i < n:
            raw = lines[i]
            if i in longs or b'"' not in raw or not ends_quoted(raw):
                i += 1
                continue
            # line i ends inside a quoted field: look for the line that closes it
            size, j, why = len(raw), i + 1, ""
            while j < n:
                size += len(lines[j]) + 1
                if j in longs:
                    why = f"line {first + j} is over-long"
                elif j - i + 1 > MAX_RECORD_LINES or size > MAX_RECORD_BYTES:
                    why = f"not within {MAX_RECORD_LINES} lines or {MAX_RECORD_BYTES:,} bytes"
                elif not ends_quoted(lines[j], True):
                    reason = "a quoted field runs over a line end (fields cannot hold line breaks)"
                    notes.append((first + i, first + j, _span_reason(first + i, first + j, reason)))
                    lines[i : j + 1] = [b""] * (j + 1 - i)
                    i = j + 1
                    break
                else:
                    j += 1
                    continue
                break
            else:
                if not eof:  # the window runs past this piece: judge it with the next one
                    self.carry = b"\n".join(lines[i:]) + b"\n"
                    self.carry_lines = n - i
                    del lines[i:]
                    break
                why = "before the end of the file"
            if why:
                # never closed: this line alone is rejected, the next one starts a new record
                notes.append((first + i, first + i, f"a quoted field is never closed ({why})"))
                lines[i] = b""
                i += 1
        if not lines:
            return b"", first
        return b"\n".join(lines) + b"\n", first


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
        block = max(4096, 160 * size)
        index = 0
        line = self.header_line + 1
        seg = _Segmenter() if fmt == "csv" else None
        with _open_regular(self.path) as fh:
            fh.seek(self._start)
            pieces = _whole_lines(fh, block)
            got = next(pieces, None)
            while got is not None:
                data, longs = got
                got = next(pieces, None)
                nlines = data.count(b"\n")
                notes: list[Note] = [(line + i, line + i, _too_long(n)) for i, n in longs]
                first = line
                if seg is not None:
                    data, first = seg.piece(data, line, notes, {i for i, _ in longs}, got is None)
                line += nlines
                if data or notes:
                    notes.sort()
                    yield Chunk(index, fmt, columns, data, first, tuple(notes))
                    index += 1


def _looks_like_a_name(cell: str) -> bool:
    """A header cell or JSON key that may be quoted in a message: a lower-case identifier or a
    data-dictionary code, with at most 3 digits. Anything else may be personal data (a header
    row that is really a record, a header run into the first record, a JSON key that is a
    value) and is described, never shown."""
    return _NAME_LIKE.fullmatch(cell) is not None and sum(map(str.isdigit, cell)) <= 3


def _describe(cell: str) -> str:
    text = cell.strip()
    if _looks_like_a_name(text):
        return repr(text)
    return f"(a cell of {len(text)} characters, not shown: it may hold personal data)"


def _first_line(fh: IO[bytes], kind: str) -> bytes:
    """The first line (at most :data:`MAX_LINE_BYTES`); a bare CR in it is a file-level error:
    the file has CR-only line ends, which this reader does not take."""
    first = fh.readline(MAX_LINE_BYTES + 1)
    body = first[:-1] if first.endswith(b"\n") else first
    if body.endswith(b"\r"):
        body = body[:-1]
    if b"\r" in body:
        raise DataError(
            "line 1 holds a carriage return (CR) that does not end a line: the file seems to "
            "use CR-only line ends; save it with LF or CR LF line ends",
            field="header" if kind == "csv" else "input",
            record=1,
        )
    if kind == "csv" and len(body) > MAX_LINE_BYTES:
        raise DataError(
            f"the header row is longer than {MAX_LINE_BYTES:,} bytes", field="header", record=1
        )
    return first


def _open_regular(path: str) -> IO[bytes]:
    """*path* opened for reading when it is a regular file: a FIFO is never waited on
    (``O_NONBLOCK``) and a device such as ``/dev/zero`` never read (endless input)."""
    fd = -1
    try:
        mode = os.stat(path).st_mode  # a special file is refused before it is opened
        if stat.S_ISREG(mode):
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            mode = os.fstat(fd).st_mode
    except OSError as exc:
        raise DataError(f"cannot open input {path}: {exc.strerror}", field="input") from None
    if not stat.S_ISREG(mode):
        if fd >= 0:
            os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
        raise DataError(f"input {path} is {kind}, not a regular file", field="input")
    return os.fdopen(fd, "rb")


def open_input(
    path: str | os.PathLike[str], fmt: str | None = None, *, required: frozenset[str] = frozenset()
) -> InputFile:
    """Open *path*, read and check the CSV header (file-level errors are :class:`DataError`)."""
    p = os.fspath(path)
    kind = _detect(p, fmt)
    with _open_regular(p) as fh:
        if kind == "jsonl":
            head = fh.read(3)
            start = 3 if head == b"\xef\xbb\xbf" else 0
            fh.seek(start)
            _first_line(fh, kind)
            return InputFile(p, kind, (), start)
        first = _first_line(fh, kind)
        start = fh.tell()
    if not first.strip():
        raise DataError("the CSV file has no header row", field="header", record=1)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("the header row is not valid UTF-8", field="header", record=1) from None
    try:
        names = next(csv.reader([text.rstrip("\r\n")]))
    except csv.Error:
        raise DataError("the header row is not valid CSV", field="header", record=1) from None
    canons = [canonical(name) for name in names]
    if not any(canons):
        raise DataError(
            f"line 1 is not a header row: none of its {len(names)} cells names an input field "
            f"(the first line names the columns: {', '.join(INPUT_FIELDS)}, or the AAC002... "
            "aliases)",
            field="header",
            record=1,
        )
    columns: list[str] = []
    for i, (name, canon) in enumerate(zip(names, canons)):
        if canon is None:
            raise DataError(
                f"column {i + 1} {_describe(name)} is not an input field "
                f"(known: {', '.join(INPUT_FIELDS)}, or AAC002... aliases)",
                field="header",
                record=1,
            )
        if canon in columns:
            raise DataError(
                f"column {canon!r} appears twice (columns {columns.index(canon) + 1} and {i + 1})",
                field="header",
                record=1,
            )
        columns.append(canon)
    missing = sorted(required - set(columns))
    if missing:
        raise DataError(
            f"required column(s) missing: {', '.join(missing)}", field="header", record=1
        )
    return InputFile(p, kind, tuple(columns), start)


# -- workers: records -----------------------------------------------------------------------


def records_of(chunk: Chunk) -> Iterator[tuple[int, bytes | Reject]]:
    """(first line, raw line) for each one-line record of *chunk* and (first line, Reject) for
    each record the reader judged (:attr:`Chunk.notes`), in line order; blank lines are not
    records. The raw line has no line end."""
    notes = iter(chunk.notes)
    note = next(notes, None)
    line_no = chunk.first_line - 1
    lines = chunk.data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    for raw in lines:
        line_no += 1
        while note is not None and note[0] <= line_no:
            yield note[0], Reject(ROW, note[2], note[1])
            note = next(notes, None)
        if not raw.strip(_BLANK):
            continue
        yield line_no, raw[:-1] if raw.endswith(b"\r") else raw
    while note is not None:
        yield note[0], Reject(ROW, note[2], note[1])
        note = next(notes, None)


def _check_line(raw: bytes) -> str:
    """Decode one record's line; :class:`Reject` for bytes no field may hold."""
    if b"\x00" in raw:
        raise Reject(ROW, f"holds a NUL byte (byte {raw.index(0) + 1} of the line)")
    if b"\r" in raw:
        raise Reject(
            ROW,
            "holds a carriage return (CR) that does not end the line "
            "(line ends must be LF or CR LF)",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Reject(ROW, f"is not valid UTF-8 (byte {exc.start + 1} of the record)") from None


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as the parser read it: its (key, value) pairs in order, a key given twice
    kept twice (a ``dict`` would keep the last value silently)."""

    __slots__ = ()


def _json_record(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text, object_pairs_hook=_Pairs)
    except RecursionError:
        raise Reject(ROW, "is nested too deeply (a record is one flat JSON object)") from None
    except ValueError as exc:
        raise Reject(ROW, f"is not valid JSON ({exc.args[0].split(':')[0]})") from None
    if not isinstance(obj, _Pairs):
        raise Reject(ROW, "is not a JSON object")
    out: dict[str, Any] = {}
    keys: set[str] = set()
    for key, value in obj:
        if key in keys:  # the same key again: which value is meant? (never shown)
            canon = canonical(key)
            raise Reject(canon if canon is not None else ROW, "key given twice")
        keys.add(key)
        canon = canonical(key) if isinstance(key, str) else None
        if canon is None:
            if _looks_like_a_name(key):
                raise Reject(key, "unknown field")
            raise Reject(
                ROW,
                f"has a key that is not an input field ({len(key)} characters, not shown: "
                "it may hold personal data)",
            )
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


def _fast_csv_rows(chunk: Chunk) -> list[tuple[int, list[str] | Reject]] | None:
    """The common case in one pass of :mod:`csv` over the whole piece: valid UTF-8, no NULs or
    bare CRs, no records judged by the reader, every record on one line. None when the piece
    needs the record-by-record path (which gives the same results, more slowly)."""
    data = chunk.data
    if chunk.notes or b"\x00" in data:
        return None
    quoted = b'"' in data
    if quoted and ends_quoted(_last_line(data)):
        return None
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    columns = chunk.columns
    ncol = len(columns)
    line = chunk.first_line
    out: list[tuple[int, list[str] | Reject]] = []
    if not quoted:  # no quotes: csv's fields are the text between commas, line by line
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        rows = text.split("\n")
        if rows and not rows[-1]:
            rows.pop()  # the piece ends with LF
        for raw in rows:
            row = raw.split(",")
            if len(row) == 1 and not row[0].strip(" \t"):
                pass  # blank: not a record
            elif len(row) == ncol:
                out.append((line, row))
            else:
                out.append((line, Reject(ROW, f"has {len(row)} fields, the header has {ncol}")))
            line += 1
        return out
    reader = csv.reader(io.StringIO(text))
    before = 0
    try:
        for row in reader:
            after = reader.line_num
            if after - before != 1:
                return None
            before = after
            if not row or (len(row) == 1 and not row[0].strip(" \t")):
                if quoted:
                    return None  # blank, or a record of one empty quoted field ("")?
            elif len(row) == ncol:
                out.append((line, row))
            else:
                out.append((line, Reject(ROW, f"has {len(row)} fields, the header has {ncol}")))
            line += 1
    except csv.Error:
        return None
    return out


def _fast_csv(chunk: Chunk) -> list[tuple[int, dict[str, Any] | Reject]] | None:
    """:func:`_fast_csv_rows` with each row as a record ``dict``."""
    rows = _fast_csv_rows(chunk)
    if rows is None:
        return None
    columns = chunk.columns
    return [(line, r if isinstance(r, Reject) else dict(zip(columns, r))) for line, r in rows]


def parse_chunk(chunk: Chunk) -> Iterator[tuple[int, dict[str, Any] | Reject]]:
    """Yield (line, record dict) or (line, Reject) for every record of *chunk*, in order."""
    columns = chunk.columns
    ncol = len(columns)
    if chunk.fmt == "jsonl":
        for line, raw in records_of(chunk):
            if isinstance(raw, Reject):
                yield line, raw
                continue
            try:
                yield line, _json_record(_check_line(raw))
            except Reject as rej:
                yield line, rej
        return
    fast = _fast_csv(chunk)
    if fast is not None:
        yield from fast
        return
    # (line, text or a verdict) in order; the texts are parsed together below
    items: list[tuple[int, str | Reject]] = []
    for line, raw in records_of(chunk):
        if isinstance(raw, Reject):
            items.append((line, raw))
        elif b'"' in raw and ends_quoted(raw):
            # only in a chunk not cut by InputFile.chunks (which judges these itself)
            items.append((line, Reject(ROW, "a quoted field is never closed on this line")))
        else:
            try:
                items.append((line, _check_line(raw)))
            except Reject as rej:
                items.append((line, rej))
    texts = [t for _line, t in items if isinstance(t, str)]
    try:
        rows = list(csv.reader(texts))
        if len(rows) != len(texts):
            raise csv.Error("record count changed")
    except csv.Error:
        rows = []
        for t in texts:
            try:
                rows.append(next(csv.reader([t])))
            except (csv.Error, StopIteration) as exc:
                rows.append([f"\x00csv-error:{exc}"])
    parsed = iter(rows)
    for line, item in items:
        if isinstance(item, Reject):
            yield line, item
            continue
        row = next(parsed)
        if len(row) != ncol:
            if len(row) == 1 and row[0].startswith("\x00csv-error:"):
                yield line, Reject(ROW, f"malformed CSV: {row[0][11:]}")
            else:
                yield line, Reject(ROW, f"has {len(row)} fields, the header has {ncol}")
            continue
        yield line, dict(zip(columns, row))


@dataclass(slots=True)
class Parsed:
    """The records of a chunk as columns (see :func:`parse_columns`)."""

    read: int  # records in the chunk (good ones and rejected ones)
    lines: list[int]  # input line of each parsed record
    columns: dict[str, Sequence[str]]  # one column per field, "" where a record has none
    rejects: list[tuple[int, str, str, str, int]]  # records rejected by the reader
    _rows: list[list[str]] | None = None
    _dicts: list[dict[str, Any]] | None = None
    _names: tuple[str, ...] = ()

    def record(self, i: int) -> dict[str, Any]:
        """Record *i* as the validator's ``dict`` (for the per-record path)."""
        if self._rows is not None:
            return dict(zip(self._names, self._rows[i]))
        assert self._dicts is not None
        return dict(self._dicts[i])


def parse_columns(chunk: Chunk) -> Parsed:
    """The records of *chunk* as columns, with the same verdicts as :func:`parse_chunk` (the
    one-pass CSV path when it applies, else :func:`parse_chunk` record by record)."""
    rows = _fast_csv_rows(chunk) if chunk.fmt == "csv" else None
    rejects: list[tuple[int, str, str, str, int]] = []
    lines: list[int] = []
    if rows is not None:
        good: list[list[str]] = []
        for line, r in rows:
            if isinstance(r, Reject):
                rejects.append((line, r.field, r.reason, "", r.end_line))
            else:
                lines.append(line)
                good.append(r)
        names = chunk.columns
        cols: dict[str, Sequence[str]] = (
            dict(zip(names, zip(*good))) if good else {f: () for f in names}
        )
        return Parsed(len(rows), lines, cols, rejects, good, None, names)
    dicts: list[dict[str, Any]] = []
    read = 0
    for line, rec in parse_chunk(chunk):
        read += 1
        if isinstance(rec, Reject):
            rejects.append((line, rec.field, rec.reason, "", rec.end_line))
        else:
            lines.append(line)
            dicts.append(rec)
    names = tuple(sorted({k for d in dicts for k in d}))
    cols = {f: [d.get(f) or "" for d in dicts] for f in names}
    return Parsed(read, lines, cols, rejects, None, dicts, names)
