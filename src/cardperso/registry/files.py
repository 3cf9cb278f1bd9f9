"""Reading the files the registry is handed (line results, bank answers, population and bank
extracts, prep rejects, the calendar), with limits: hostile input ends in one line naming the
file, the row and the reason (:class:`~cardperso.errors.DataError`), never a traceback and never
an unbounded read.

* only regular files are read (``/dev/zero``, a FIFO or a directory is refused before a byte is
  read), and only up to :data:`MAX_BYTES`;
* a CSV field may be up to :data:`MAX_FIELD` characters (the ``csv`` module's own limit);
  a longer field names its line; text that is not UTF-8 names the file.
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TextIO

from cardperso.errors import DataError

#: The largest file the registry reads: far above a batch's results (about 300 bytes a card).
MAX_BYTES: Final = 256 * 1024 * 1024
#: The largest CSV field (characters): the csv module's default limit.
MAX_FIELD: Final = 128 * 1024


def open_text(path: str | os.PathLike[str], what: str, *, limit: int = MAX_BYTES) -> TextIO:
    """``path`` opened as UTF-8 text (a byte-order mark is skipped) after the checks above."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError as exc:
        raise DataError(f"cannot read {p.name}: {exc.strerror}", field=what) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{p.name} is not a regular file", field=what)
        if st.st_size > limit:
            raise DataError(f"{p.name} is {st.st_size} bytes, more than {limit}", field=what)
        os.set_blocking(fd, True)
        return open(fd, encoding="utf-8-sig", newline="")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path: str | os.PathLike[str], what: str, *, limit: int = MAX_BYTES) -> None:
    """The checks of :func:`open_text` alone, for a file another reader opens."""
    open_text(path, what, limit=limit).close()


def csv_rows(path: str | os.PathLike[str], what: str) -> Iterator[tuple[int, list[str]]]:
    """Every row of a CSV file with its (first) physical line number, the header included."""
    name = Path(path).name
    with open_text(path, what) as fh:
        reader = csv.reader(fh)
        line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataError(f"{name}: {exc}", record=reader.line_num, field=what) from None
            except UnicodeDecodeError:  # decoded a block at a time: no line to name
                raise DataError(f"{name} is not UTF-8 text", field=what) from None
            yield line, row
            line = reader.line_num + 1


def csv_records(
    path: str | os.PathLike[str], what: str, need: frozenset[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV file with a header as ``{column: value}`` (missing cells are empty);
    refuses a header without the columns in ``need``."""
    rows = csv_rows(path, what)
    first = next(rows, None)
    header = [h.strip() for h in first[1]] if first else []
    missing = need - set(header)
    if missing:
        raise DataError(
            f"{Path(path).name} is not a {what} file (missing {', '.join(sorted(missing))})",
            field=what,
        )
    for line, row in rows:
        yield line, {h: (row[i] if i < len(row) else "") for i, h in enumerate(header)}


def read_text(path: str | os.PathLike[str], what: str, *, limit: int) -> str:
    """A whole small text file (a calendar), with the same checks."""
    with open_text(path, what, limit=limit) as fh:
        try:
            return fh.read()
        except UnicodeDecodeError:
            raise DataError(f"{Path(path).name} is not UTF-8 text", field=what) from None
