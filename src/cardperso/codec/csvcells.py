"""Spreadsheet-safe CSV cells (CSV or formula injection, the OWASP rule).

A spreadsheet that opens a CSV file runs a cell starting with ``=``, ``+``, ``-`` or ``@`` as a
formula (``=HYPERLINK("http://…","张三")``, ``=cmd|' /C calc'!A0``), and a leading tab or
carriage return can hide such a start. A cell that begins with one of these characters, or with
their full-width forms (which the Chinese and Japanese input methods of office suites turn into
the ASCII ones), gets a leading single quote: the spreadsheet shows the text as it is, and a
person can still read it.

Which files get this treatment is a decision per file, made where the file is written:

* files **for people**, opened in a spreadsheet (rejects lists, the registry's return file and
  reports): :func:`safe_cell` / :func:`safe_row` on every cell;
* files **for programs** (data preparation's input exported by the registry, the line's result
  file read back by ``registry import-results``, bank files with signed amounts): written raw.
  A quote there would change the data (a name printed on a card, a negative amount).

The database always keeps the raw value; only the copy in a file for people is changed.
:func:`unsafe_cell` undoes the quote for a program that reads a file written for people (the
registry reading a prep rejects file back).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

#: Characters that make a spreadsheet read a cell as a formula (OWASP), and full-width forms.
FORMULA_START: Final = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
QUOTE: Final = "'"


def safe_cell(value: object) -> str:
    """``value`` as text, with a leading ``'`` when a spreadsheet would read it as a formula.

    >>> safe_cell('=HYPERLINK("http://x","y")')
    '\\'=HYPERLINK("http://x","y")'
    >>> safe_cell("张三"), safe_cell(12), safe_cell(None)
    ('张三', '12', '')
    """
    text = "" if value is None else str(value)
    return QUOTE + text if _needs_quote(text) else text


def _needs_quote(text: str) -> bool:
    # quotes already in front count too, so that unsafe_cell(safe_cell(x)) == x for every x
    return text.lstrip(QUOTE)[:1] in FORMULA_START


def safe_row(values: Iterable[object]) -> list[str]:
    """:func:`safe_cell` on every cell of a row."""
    return [safe_cell(v) for v in values]


def unsafe_cell(text: str) -> str:
    """The raw value of a cell written by :func:`safe_cell` (the quote removed again)."""
    return text[1:] if text[:1] == QUOTE and _needs_quote(text[1:]) else text
