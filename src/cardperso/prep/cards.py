"""The typed chunk: a chunk of records as columns, validated with array masks.

How this works
--------------
:func:`to_columns` turns the records a worker parsed (:func:`cardperso.prep.input.parse_chunk`)
into one column (a list of strings) per input field. :class:`ColumnChecker` then runs every
validation rule of :class:`cardperso.prep.validate.Validator` over whole columns: fixed-width
fields become ``uint8`` matrices, and identity-number and card-number check characters, Luhn,
regions, genders, nations and the EC amounts are array operations; dates go through the
validator's own date cache, names through one GBK encoding of the whole column, photos through
the validator's per-path cache (read in threads). A record passes only when every mask holds.

A record that fails any mask goes, alone, to :meth:`Validator.check`, the per-record rules that
name the precise field and reason (so the reject messages are exactly the validator's: there
is one rule text, not two). The masks are at least as strict as the rules: the rare record a
mask refuses and the validator accepts is still prepared, from the same columns.

The result is :class:`Cards`: the good records of the chunk as typed columns, in input order,
with the values the chip data needs (GBK name parts, card identification code, EC amounts,
PINs) derived for all of them at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cardperso.codec.columns import U8, Var, bcd, fixed_text, text_var
from cardperso.codec.fields import split_gbk
from cardperso.codec.numbers import mask_id
from cardperso.errors import DataError
from cardperso.prep.validate import _DATE_CACHE, _PROVINCES, Reject, Validator, date_ordinal

__all__ = ["Cards", "ColumnChecker", "Columns", "cards_of", "to_columns"]

Bools = NDArray[np.bool_]
Ints = NDArray[np.int64]

#: One column per input field (the field's text in each record, "" when absent).
Columns = dict[str, Sequence[str]]

#: (line, field, reason, masked identity number, end line) - one rejected record.
RejectRow = tuple[int, str, str, str, int]

_FIXED = {
    "ssn": 18,
    "gender": 1,
    "nation": 2,
    "birth_date": 8,
    "birth_place": 6,
    "region": 6,
    "card_no": 9,
    "issue_date": 8,
    "expiry_date": 8,
    "pan_seq": 2,
}
# ISO 7064 MOD 11-2 (GB 11643): weight of digit i is 2^(17-i) mod 11
_RIC_W = np.array([pow(2, 17 - i, 11) for i in range(17)], np.int64)
_RIC_CHECK = np.frombuffer(b"10X98765432", np.uint8)
# GB 11714 card number: weights of the 8 body characters, values 0-35 (0-9, A-Z)
_CARD_W = np.array((3, 7, 9, 10, 5, 8, 4, 2), np.int64)
_CARD_VAL = np.full(256, -1, np.int64)
_CARD_VAL[48:58] = np.arange(10)
_CARD_VAL[65:91] = np.arange(10, 36)
_CARD_CHECK = np.frombuffer(b"?123456789X0", np.uint8)  # index r = 11 - total % 11 (1..11)
_PROVINCE_OK = np.zeros(100, np.bool_)
_PROVINCE_OK[[int(p) for p in _PROVINCES]] = True
_NATION_OK = np.zeros(100, np.bool_)
_NATION_OK[[*range(1, 57), 97, 98]] = True
_LUHN_DOUBLE = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], np.int64)
_NAME_BAD = re.compile('[\x00-\x1f\x7f"]')  # control characters (Validator) and "
_LATIN = re.compile(r"[A-Za-z /.\-]{2,26}")
_PERSON = re.compile(r"[0-9A-Z]{12}")
_APP_TYPES = frozenset(("", "batch", "sporadic"))
# the positions mask_id shows of an 18-character identity number (the one masking rule)
_SHOWN = np.array([c != "*" for c in mask_id("ABCDEFGHIJKLMNOPQR")], np.bool_)


def to_columns(records: Sequence[dict[str, str]], names: Sequence[str]) -> Columns:
    """One column per field of *names* from per-record dicts (JSON Lines records)."""
    return {f: [r.get(f) or "" for r in records] for f in names}


def cards_of(validator: Validator, records: Sequence[dict[str, str]]) -> Cards:
    """Records given as ``dict`` (one card or a few) as a validated :class:`Cards`; a record
    the rules refuse is a :class:`Reject`, as :meth:`Validator.check` raises it."""
    names = sorted({k for r in records for k in r})
    cols: Columns = to_columns(records, names)
    cards, bad = ColumnChecker(validator).check(
        cols, list(range(1, len(records) + 1)), lambda i: dict(records[i])
    )
    if bad:
        raise Reject(bad[0][1], bad[0][2])
    return cards


def _digits(mat: U8) -> Bools:
    out: Bools = np.asarray(((mat >= 48) & (mat <= 57)).all(axis=1), np.bool_)
    return out


def _num2(mat: U8) -> Ints:
    out: Ints = (mat[:, 0].astype(np.int64) - 48) * 10 + (mat[:, 1].astype(np.int64) - 48)
    return out


@dataclass(slots=True)
class Cards:
    """The good records of one chunk as typed columns (row *i* is the *i*-th good record)."""

    n: int
    lines: Ints  # input line of each record
    text: Columns  # the input fields as given (face data, variable fields)
    fixed: dict[str, U8]  # the fixed-width fields as ASCII matrices (_FIXED)
    name_gbk: Var  # the whole name in GBK
    name_head: U8  # n x 30: EF06 tag 09, 00 padded
    name_ext: U8  # n x 20: EF06 tag 4E, 00 padded
    person_code: U8  # n x 12 (default twelve 0)
    card_id: U8  # n x 16: region BCD ‖ prefix ‖ tail
    ec: Ints  # n x 4: balance, limit, single limit, reset threshold (fen)
    pins: Sequence[str]  # the input PIN, or "" when the PIN is seeded
    latin: Sequence[str]  # the pinyin name for 5F20 and track 1 (upper case, or the default)
    masked: U8  # n x 18: the masked identity number (mask_id)


class ColumnChecker:
    """Every rule of a :class:`Validator`, over columns (see the module docstring)."""

    def __init__(self, validator: Validator) -> None:
        self.v = validator
        p = validator.profile
        self.profile = p
        self.pboc = p.pboc
        self.required = validator._required_order
        self.fixed_fields = [f for f in _FIXED if f != "pan_seq" or self.pboc is not None]
        self.pin_len = p.pin.length
        self.seeded = p.pin.source == "seeded"
        self.latin_default = self.pboc.latin_name_default if self.pboc is not None else ""
        self.photo = p.photo != "absent"
        #: CPU seconds spent on the photos (read and checked, or found in the cache) so far:
        #: the benchmark's per-stage table (bench_prep.py --breakdown)
        self.photo_seconds = 0.0
        self.cid_tail = np.frombuffer(validator._cid_prefix + validator._cid_tail, np.uint8)

    # -- masks -----------------------------------------------------------------------------

    def _ordinals(self, col: Sequence[str], field: str) -> Ints:
        """Each date's ordinal through the validator's own cache and rule; -1 when not a date."""
        got = list(map(_DATE_CACHE.get, col))
        for i, o in enumerate(got):
            if o is None:
                try:
                    got[i] = date_ordinal(col[i], field)
                except Reject:
                    got[i] = -1
        return np.array(got, np.int64)

    def _amounts(self, col: Sequence[str], default: int) -> tuple[Ints, Bools]:
        joined = "".join(col)
        lens = np.fromiter(map(len, col), np.int64, len(col))
        if (not joined or (joined.isdigit() and joined.isascii())) and (lens <= 12).all():
            vals = np.array([int(s) if s else default for s in col], np.int64)
            return vals, np.ones(len(col), np.bool_)
        ok = [not s or (s.isdigit() and s.isascii() and len(s) <= 12) for s in col]
        vals = np.array([int(s) if s and g else default for s, g in zip(col, ok)], np.int64)
        return vals, np.array(ok, np.bool_)

    def _names(self, names: Sequence[str]) -> tuple[Bools, Var, U8, U8]:
        n = len(names)
        ok = np.ones(n, np.bool_)
        try:
            gbk = text_var(names, "gbk")
        except UnicodeEncodeError:
            raw = []
            for i, s in enumerate(names):
                try:
                    raw.append(s.encode("gbk"))
                except UnicodeEncodeError:
                    raw.append(b"")
                    ok[i] = False
            gbk = Var(np.frombuffer(b"".join(raw), np.uint8), np.array(list(map(len, raw))))
        joined = "\n".join(names)
        if joined.count("\n") != n - 1 or _NAME_BAD.search(joined.replace("\n", "")):
            ok &= np.array([_NAME_BAD.search(s) is None for s in names], np.bool_)
        ok &= np.fromiter(map(str.__eq__, names, map(str.strip, names)), np.bool_, n)
        lens = gbk.lengths
        ok &= lens <= 50
        head = np.zeros((n, 30), np.uint8)
        ext = np.zeros((n, 20), np.uint8)
        short = np.minimum(lens, 30)
        sel = np.arange(30) < short[:, None]
        starts = gbk.starts
        src = (starts[:, None] + np.arange(30))[sel]
        head[sel] = gbk.data[src] if len(src) else 0
        for i in np.flatnonzero((lens > 30) & ok).tolist():
            try:
                h, e = split_gbk(names[i], 30, 20, "name")
            except DataError:
                ok[i] = False
                continue
            head[i] = np.frombuffer(h.ljust(30, b"\0"), np.uint8)
            ext[i] = np.frombuffer(e.ljust(20, b"\0"), np.uint8)
        return ok, gbk, head, ext

    def _photos(self, col: Sequence[str]) -> Bools:
        verdicts = self.v.photo_verdicts(set(col) - {""})
        return np.array([not s or not verdicts[s] for s in col], np.bool_)

    def _pan(self, col: Sequence[str]) -> Bools:
        n = len(col)
        lens = np.fromiter(map(len, col), np.int64, n)
        ok = (lens >= 16) & (lens <= 19)
        mat, ascii_ok = fixed_text(
            [s.rjust(19, "0") if 16 <= len(s) <= 19 else "" for s in col], 19
        )
        ok &= ascii_ok & _digits(mat)
        d = (mat.astype(np.int64) - 48)[:, ::-1]  # from the right: check digit first
        d = np.clip(d, 0, 9)
        total = d[:, 0::2].sum(axis=1) + _LUHN_DOUBLE[d[:, 1::2]].sum(axis=1)
        ok &= total % 10 == 0
        return ok

    def check(
        self, cols: Columns, lines: Sequence[int], records: Any
    ) -> tuple[Cards, list[RejectRow]]:
        """Validate the chunk's records (*cols*, one entry per record, input *lines*) and
        return the good ones as :class:`Cards` and the rejects. *records(i)* gives record *i*
        as the validator's ``dict`` (for the precise reason of a record a mask refused)."""
        n = len(lines)
        get = cols.get
        empty = [""] * n
        ok = np.ones(n, np.bool_)
        for f in self.required:
            col = get(f, empty)
            if not all(col):
                ok &= np.array([bool(s) for s in col], np.bool_)
        fixed: dict[str, U8] = {}
        extract = np.ones(n, np.bool_)  # the columns hold the record's values
        for f in self.fixed_fields:
            mat, good = fixed_text(get(f, empty), _FIXED[f])
            fixed[f] = mat
            extract &= good
        ok &= extract
        ssn = fixed["ssn"]
        ok &= _digits(ssn[:, :17]) & _PROVINCE_OK[_num2(ssn[:, :2]) % 100]
        s = ((ssn[:, :17].astype(np.int64) - 48) * _RIC_W).sum(axis=1) % 11
        ok &= _RIC_CHECK[s] == ssn[:, 17]
        birth = self._ordinals(get("birth_date", empty), "birth_date")
        ok &= (birth > 0) & (birth <= self.v._today)
        ok &= (ssn[:, 6:14] == fixed["birth_date"]).all(axis=1)
        g = fixed["gender"][:, 0]
        ok &= ((g == 49) | (g == 50)) & ((ssn[:, 16] & 1) == (g == 49))
        nat = fixed["nation"]
        ok &= _digits(nat) & _NATION_OK[_num2(nat) % 100]
        for f in ("birth_place", "region"):
            m = fixed[f]
            ok &= _digits(m) & _PROVINCE_OK[_num2(m) % 100]
        cn = fixed["card_no"]
        vals = _CARD_VAL[cn]
        ok &= (vals >= 0).all(axis=1)
        total = (np.clip(vals[:, :8], 0, 35) * _CARD_W).sum(axis=1)
        ok &= _CARD_CHECK[11 - total % 11] == cn[:, 8]
        issue = self._ordinals(get("issue_date", empty), "issue_date")
        expiry = self._ordinals(get("expiry_date", empty), "expiry_date")
        ok &= (issue > 0) & (expiry > issue) & (birth <= issue)
        acc = get("accepted_date")
        if acc is not None and any(acc):
            ordinals = self._ordinals(acc, "accepted_date")
            given = np.array([bool(a) for a in acc], np.bool_)
            ok &= ~given | ((ordinals > 0) & (ordinals <= issue))
        app = get("application_type")
        if app is not None and not _APP_TYPES.issuperset(app):
            ok &= np.array([a in _APP_TYPES for a in app], np.bool_)
        names = get("name", empty)
        name_ok, gbk, head, ext = self._names(names)
        ok &= name_ok
        latin_in = get("name_latin", empty)
        if any(latin_in):
            ok &= np.array([not x or _LATIN.fullmatch(x) is not None for x in latin_in], np.bool_)
        pc_in = get("person_code", empty)
        if any(pc_in):
            pc_ok = np.array([not x or _PERSON.fullmatch(x) is not None for x in pc_in], np.bool_)
            ok &= pc_ok
            pcs = [x if x and good else "000000000000" for x, good in zip(pc_in, pc_ok)]
            person = fixed_text(pcs, 12)[0]
        else:
            person = np.full((n, 12), 48, np.uint8)
        if self.photo:
            t0 = time.process_time()
            ok &= self._photos(get("photo", empty))
            self.photo_seconds += time.process_time() - t0
        pins_in = get("pin", empty)
        if any(pins_in):
            plen = self.pin_len
            ok &= np.array(
                [not p or (len(p) == plen and p.isdigit() and p.isascii()) for p in pins_in],
                np.bool_,
            )
        ec = np.zeros((n, 4), np.int64)
        if self.pboc is not None:
            bank = get("bank_code", empty)
            ok &= np.array(
                [b.isdigit() and b.isascii() and 3 <= len(b) <= 12 for b in bank], np.bool_
            )
            ok &= self._pan(get("pan", empty))
            ok &= _digits(fixed["pan_seq"])
            e = self.pboc.ec
            defaults = (
                e.default_balance,
                e.default_limit,
                e.default_single_limit,
                e.default_reset_threshold,
            )
            fields = ("ec_balance", "ec_limit", "ec_single_limit", "ec_reset_threshold")
            for j, (f, d) in enumerate(zip(fields, defaults)):
                ec[:, j], good = self._amounts(get(f, empty), d)
                ok &= good
            bal, lim, single, reset = ec.T
            ok &= (lim <= e.max_balance_limit) & (bal <= lim) & (single <= lim)
            ok &= (single <= e.max_single_limit) & (reset <= lim) & (reset <= e.max_reset_threshold)
        rejects: list[RejectRow] = []
        for i in np.flatnonzero(~ok).tolist():
            rec = records(i)
            try:
                self.v.check(rec)
            except Reject as rej:
                rejects.append((lines[i], rej.field, rej.reason, _mask(rec.get("ssn")), 0))
                continue
            except Exception as exc:
                reason = f"internal error: {type(exc).__name__}"
                rejects.append((lines[i], "(record)", reason, "", 0))
                continue
            if extract[i]:
                ok[i] = True  # the mask was stricter than the rule
            else:  # accepted by the rules but not encodable (e.g. non-ASCII digits)
                rejects.append(
                    (
                        lines[i],
                        "(record)",
                        "cannot be encoded (ValueError)",
                        _mask(rec.get("ssn")),
                        0,
                    )
                )
        keep = np.flatnonzero(ok)
        cards = self._cards(keep, np.asarray(lines), cols, fixed, gbk, head, ext, person, ec)
        return cards, rejects

    def _cards(
        self,
        keep: Ints,
        lines: Ints,
        cols: Columns,
        fixed: dict[str, U8],
        gbk: Var,
        head: U8,
        ext: U8,
        person: U8,
        ec: Ints,
    ) -> Cards:
        n = len(keep)
        if n == len(lines):
            text, fx, name_gbk = cols, fixed, gbk
        else:
            idx = keep.tolist()
            text = {f: [col[i] for i in idx] for f, col in cols.items()}
            fx = {f: m[keep] for f, m in fixed.items()}
            sel = np.zeros(len(gbk.lengths), np.bool_)
            sel[keep] = True
            name_gbk = Var(gbk.data[np.repeat(sel, gbk.lengths)], gbk.lengths[keep])
        text = dict(text)
        for f in self.v.allowed:
            if f not in text:
                text[f] = [""] * n
        card_id = np.empty((n, 16), np.uint8)
        card_id[:, :3] = bcd(fx["region"], 3, "F")
        card_id[:, 3:] = self.cid_tail
        empty = [""] * n
        pins = empty if self.seeded else text.get("pin", empty)
        latin_default = self.latin_default
        latin = [(x or latin_default).upper() for x in text.get("name_latin", empty)]
        masked = np.where(_SHOWN, fx["ssn"], np.uint8(42))
        return Cards(
            n,
            lines[keep],
            text,
            fx,
            name_gbk,
            head[keep],
            ext[keep],
            person[keep],
            card_id,
            ec[keep],
            pins,
            latin,
            masked,
        )


def _mask(ssn: Any) -> str:
    """The one masking rule (:func:`cardperso.codec.numbers.mask_id`); no SSN, no mask."""
    return mask_id(ssn) if isinstance(ssn, str) else ""
