"""Accepting applications (``registry import``), auditing them and comparing them with the
population and bank databases.

An application file has the record fields of data preparation (``docs/prep.md``: CSV or JSON
Lines, the same readers, aliases and validation rules) plus ``accepted_date`` and
``application_type`` (both required here), and without the fields the registry allocates
later: ``card_no``, ``issue_date`` and ``expiry_date`` (columns with those names are ignored).
The validation is :class:`cardperso.prep.validate.Validator` itself, run with stand-ins for the
allocated fields. A ``pin`` column is never stored: PINs are seeded at preparation.
"""

from __future__ import annotations

import json
import os
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cardperso.codec.numbers import mask_id
from cardperso.codec.photo import PhotoSpec, check_photo
from cardperso.errors import DataError, UsageError
from cardperso.prep.input import InputFile, parse_chunk
from cardperso.prep.validate import Reject, Validator, date_ordinal, read_photo
from cardperso.profiles.fields import canonical
from cardperso.profiles.model import Profile
from cardperso.registry import lifecycle
from cardperso.registry.centre import (
    CENTRE_FIELDS,
    Lists,
    applications_input,
    check_centre,
    missing_confirmations,
)
from cardperso.registry.files import check_regular, csv_rows
from cardperso.registry.store import Application, move, select_apps
from cardperso.storage.db import Database

#: Fields an application must have (beyond the profile's own required fields).
REQUIRED: Final = frozenset({"accepted_date", "application_type"})
#: Fields the registry allocates: not part of an application.
ALLOCATED: Final = frozenset({"card_no", "issue_date", "expiry_date"})
#: Optional fields kept as they are (JSON column ``extra``).
EXTRA: Final = (
    "ec_balance",
    "ec_limit",
    "ec_single_limit",
    "ec_reset_threshold",
    "name_latin",
    "person_code",
)
_STAND_IN_CARD: Final = "X00000019"  # a valid card number (reference shelf), never stored
_OPEN: Final = tuple(sorted(lifecycle.PENDING | {lifecycle.READY}))
#: The PostgreSQL advisory locks (class, bucket of the identity number) held while applications
#: are inserted: the check for an open application and the insert are one step for imports and
#: desk acceptances in different processes (SQLite's writer lock does that on its own).
PERSON_LOCK: Final = 0x0CA2DE5C
#: Identity numbers are hashed (CRC-32) into this many locks: a chunk of an import takes at
#: most this many (in ascending order, as every inserter does, so none waits on another in a
#: circle), a desk acceptance one.
LOCK_BUCKETS: Final = 64


@dataclass
class ImportSummary:
    read: int = 0
    accepted: int = 0
    rejects: list[tuple[int, str, str, str]] = field(default_factory=list)  # line, field, why, ssn
    ids: list[int] = field(default_factory=list)  # the accepted applications' ids

    def id_ranges(self) -> str:
        """``3-7, 9``: the accepted ids, for the next command (``audit --reject ID``)."""
        spans: list[list[int]] = []
        for i in sorted(self.ids):
            if spans and spans[-1][1] == i - 1:
                spans[-1][1] = i
            else:
                spans.append([i, i])
        return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)

    @property
    def rejected(self) -> int:
        return len(self.rejects)


def _check(
    validator: Validator,
    raw: dict[str, Any],
    base: Path | None = None,
    photo_spec: PhotoSpec | None = None,
) -> dict[str, str]:
    """Validate one application; the stored values (strings), or :class:`Reject`. With
    ``photo_spec``, the photo (relative to ``base``) must meet it (the rule that failed)."""
    for name in REQUIRED:
        if not raw.get(name):
            raise Reject(
                name, "required field is empty" if name in raw else "required field is missing"
            )
    accepted = raw["accepted_date"]
    ordinal = date_ordinal(accepted, "accepted_date")
    if ordinal > time.time() // 86400 + 719163 + 1:  # tomorrow (UTC), as a proleptic ordinal
        raise Reject("accepted_date", "is in the future")
    keep = {k: v for k, v in raw.items() if k not in ALLOCATED and k != "pin"}
    trial = dict(keep, card_no=_STAND_IN_CARD, issue_date=accepted, pin="")
    trial["expiry_date"] = f"{int(accepted[:4]) + 10:04d}{accepted[4:]}"
    if trial["expiry_date"].endswith("0229"):
        trial["expiry_date"] = trial["expiry_date"][:-2] + "28"
    try:
        validator.check(trial)
    except Reject as rej:
        if rej.field == "birth_date" and "issue_date" in rej.reason:
            raise Reject("birth_date", "is after accepted_date") from None
        raise
    photo = str(raw.get("photo") or "")
    if photo_spec is not None and photo:
        data = read_photo(str(base / photo) if base is not None else photo)
        if isinstance(data, str):
            raise Reject("photo", data)
        try:
            check_photo(data, photo_spec)
        except DataError as exc:
            raise Reject("photo", exc.reason) from None
    return {k: str(v) for k, v in keep.items()}


def import_applications(
    db: Database,
    path: str | os.PathLike[str],
    profile: Profile,
    *,
    actor: str,
    chunk_size: int = 2000,
    photo_spec: PhotoSpec | None = None,
) -> ImportSummary:
    """Accept the valid applications of ``path`` (state ``accepted``); the summary lists the
    rejected records (line, field, reason, masked identity number). An identity number with an
    application still open (not issued, returned, rejected or cancelled) is refused, as is a
    second application in the same file."""
    check_regular(path, "applications")  # a FIFO or /dev/zero is not an application file
    validator = Validator(profile, Path(path).parent, photo_spec=photo_spec)
    base = Path(path).resolve().parent
    summary = ImportSummary()
    with applications_input(path, frozenset({"ssn", *REQUIRED})) as (inp, centre_of):
        _read_all(db, inp, centre_of, validator, base, summary, photo_spec, chunk_size, actor, path)
    return summary


def _read_all(
    db: Database,
    inp: InputFile,
    centre_of: dict[int, dict[str, str]],
    validator: Validator,
    base: Path,
    summary: ImportSummary,
    photo_spec: PhotoSpec | None,
    chunk_size: int,
    actor: str,
    path: str | os.PathLike[str],
) -> None:
    lists = Lists.load(db)
    seen: dict[str, int] = {}
    seen_pan: dict[str, int] = {}
    for chunk in inp.chunks(chunk_size):
        good: list[tuple[int, dict[str, str]]] = []
        for line, rec in parse_chunk(chunk):
            summary.read += 1
            if isinstance(rec, Reject):
                summary.rejects.append((line, rec.field, rec.reason, ""))
                continue
            rec.update(centre_of.get(line, {}))
            ssn = str(rec.get("ssn", ""))
            try:
                values = _check(validator, rec, base, photo_spec)
                values.update(check_centre(values, lists))
            except Reject as rej:
                summary.rejects.append((line, rej.field, rej.reason, mask_id(ssn)))
                continue
            if ssn in seen:
                summary.rejects.append(
                    (line, "ssn", f"duplicate of line {seen[ssn]}", mask_id(ssn))
                )
                continue
            pan = values.get("pan", "")
            if pan and pan in seen_pan:
                summary.rejects.append(
                    (line, "pan", f"same bank card number as line {seen_pan[pan]}", mask_id(ssn))
                )
                continue
            seen[ssn] = line
            if pan:
                seen_pan[pan] = line
            good.append((line, values))
        if good:
            _insert(db, good, base, summary, actor=actor, source=str(path))


def lock_people(db: Database, ssns: Iterator[str] | list[str]) -> None:
    """On PostgreSQL, wait for (then hold until the transaction ends) the advisory locks of
    these people's identity numbers; nothing on SQLite, whose writer lock serializes inserts."""
    if db.dialect != "postgres":
        return
    for bucket in sorted({zlib.crc32(s.encode()) % LOCK_BUCKETS for s in ssns}):
        db.execute(
            "SELECT pg_advisory_xact_lock(CAST(? AS integer), CAST(? AS integer))",
            (PERSON_LOCK, bucket),
        )


def _insert(
    db: Database,
    good: list[tuple[int, dict[str, str]]],
    base: Path,
    summary: ImportSummary,
    *,
    actor: str,
    source: str,
) -> None:
    now = time.time()
    with db.transaction():
        lock_people(db, [v["ssn"] for _, v in good])  # another importer's insert is seen
        marks = ", ".join("?" for _ in good)
        states = ", ".join("?" for _ in _OPEN)
        open_ = {
            str(s): int(i)
            for s, i in db.execute(
                f"SELECT ssn, id FROM reg_applications WHERE ssn IN ({marks}) "
                f"AND state IN ({states})",
                (*(v["ssn"] for _, v in good), *_OPEN),
            )
        }
        taken = pans_taken(db, [(v["ssn"], v.get("pan", "")) for _, v in good])
        before = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM reg_applications")[0][0])
        rows = []
        for line, v in good:
            if v["ssn"] in open_:
                summary.rejects.append(
                    (
                        line,
                        "ssn",
                        f"has an open application in the registry (id {open_[v['ssn']]})",
                        mask_id(v["ssn"]),
                    )
                )
                continue
            if v.get("pan") and v["pan"] in taken:
                summary.rejects.append((line, "pan", taken[v["pan"]], mask_id(v["ssn"])))
                continue
            photo = v.get("photo", "")
            if photo and not os.path.isabs(photo):
                photo = str(base / photo)
            extra = {k: v[k] for k in EXTRA if v.get(k)}
            rows.append(
                (
                    v["ssn"],
                    v["name"],
                    v["gender"],
                    v["nation"],
                    v["birth_date"],
                    v["birth_place"],
                    v["region"],
                    photo or None,
                    v.get("bank_code") or None,
                    v.get("pan") or None,
                    v.get("pan_seq") or None,
                    json.dumps(extra, sort_keys=True) if extra else None,
                    v["application_type"],
                    v["accepted_date"],
                    lifecycle.ACCEPTED,
                    now,
                    f"{source}:{line}",
                    now,
                    *(v.get(c) or None for c in CENTRE_FIELDS),
                )
            )
        db.executemany(
            "INSERT INTO reg_applications (ssn, name, gender, nation, birth_date, birth_place, "
            "region, photo, bank_code, pan, pan_seq, extra, application_type, accepted_date, "
            f"state, state_at, source, created_at, {', '.join(CENTRE_FIELDS)}) VALUES "
            f"({', '.join('?' for _ in range(18 + len(CENTRE_FIELDS)))})",
            rows,
        )
        # one "accept" transition per new application: those above the previous highest id
        # that have none yet (a concurrent import's rows carry their own, committed together)
        db.execute(
            "INSERT INTO reg_transitions (application_id, from_state, to_state, event, actor, at, "
            "detail) SELECT a.id, NULL, ?, 'accept', ?, ?, a.source FROM reg_applications a "
            "WHERE a.id > ? AND NOT EXISTS "
            "(SELECT 1 FROM reg_transitions t WHERE t.application_id = a.id)",
            (lifecycle.ACCEPTED, actor, now, before),
        )
        summary.accepted += len(rows)
        if rows:
            sources = [r[16] for r in rows]
            marks = ", ".join("?" for _ in sources)
            summary.ids.extend(
                int(i)
                for (i,) in db.execute(
                    f"SELECT id FROM reg_applications WHERE id > ? AND source IN ({marks})",
                    (before, *sources),
                )
            )


def pans_taken(db: Database, wanted: list[tuple[str, str]]) -> dict[str, str]:
    """Of the (identity number, PAN) pairs, the PANs another person already holds, on an active
    card or an open application, with why (card number or application id; never the PAN)."""
    mine = {pan: ssn for ssn, pan in wanted if pan}
    if not mine:
        return {}
    out: dict[str, str] = {}
    marks = ", ".join("?" for _ in mine)
    for pan, ssn, card_no in db.execute(
        f"SELECT pan, ssn, card_no FROM reg_cards WHERE active = 1 AND pan IN ({marks})",
        tuple(mine),
    ):
        if mine.get(str(pan)) != str(ssn):
            out[str(pan)] = f"is the bank card number of another person's active card {card_no}"
    states = ", ".join("?" for _ in _OPEN)
    for pan, ssn, app_id in db.execute(
        f"SELECT pan, ssn, id FROM reg_applications WHERE pan IN ({marks}) "
        f"AND state IN ({states}) ORDER BY id",
        (*mine, *_OPEN),
    ):
        if mine.get(str(pan)) != str(ssn) and str(pan) not in out:
            out[str(pan)] = f"is the bank card number of another person's application {app_id}"
    return out


# -- audit ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one application in a step (no personal data beyond a masked id)."""

    app_id: int
    ssn_masked: str
    state: str
    reason: str = ""
    card_no: str = ""


def _as_record(app: Application) -> dict[str, str]:
    rec = {
        "ssn": app.ssn,
        "name": app.name,
        "gender": app.gender,
        "nation": app.nation,
        "birth_date": app.birth_date,
        "birth_place": app.birth_place,
        "region": app.region,
        "photo": app.photo,
        "bank_code": app.bank_code,
        "pan": app.pan,
        "pan_seq": app.pan_seq,
        "application_type": app.application_type,
        "accepted_date": app.accepted_date,
    }
    rec.update(app.extra)
    return {k: v for k, v in rec.items() if v}


def audit(
    db: Database,
    profile: Profile,
    *,
    actor: str,
    photo_spec: PhotoSpec | None = None,
    only: int | None = None,
) -> list[Outcome]:
    """Check every accepted application again (the data as stored, its photo as it is now):
    ``audited``, or ``rejected`` with the field and reason. An application accepted at a
    service point waits (stays ``accepted``) until the staff and the applicant both confirmed
    its registration form (:func:`confirm`). ``only``: this one application (the web
    console's audit, one application at a time; not an accepted one: nothing)."""
    validator = Validator(profile, "/", photo_spec=photo_spec)
    out: list[Outcome] = []
    signed = {
        int(i): missing_confirmations(staff or "", applicant or "")
        for i, staff, applicant in db.execute(
            "SELECT id, staff_confirmed, applicant_confirmed FROM reg_applications "
            "WHERE state = ? AND service_point IS NOT NULL",
            (lifecycle.ACCEPTED,),
        )
    }
    where = "state = ?"
    params: list[object] = [lifecycle.ACCEPTED]
    if only is not None:
        where, params = "state = ? AND id = ?", [lifecycle.ACCEPTED, only]
    for app in select_apps(db, where, tuple(params)):
        if signed.get(app.id):  # the form is not signed by both parties yet: wait
            why = f"waiting for the confirmation of: {', '.join(signed[app.id])}"
            out.append(Outcome(app.id, app.ssn_masked, lifecycle.ACCEPTED, why))
            continue
        try:
            _check(validator, _as_record(app), None, photo_spec)
        except Reject as rej:
            reason = f"{rej.field}: {rej.reason}"
            with db.transaction():
                state = move(db, app.id, "reject", actor=actor, detail=reason, reason=reason)
            out.append(Outcome(app.id, app.ssn_masked, state, reason))
            continue
        with db.transaction():
            state = move(db, app.id, "audit", actor=actor)
        out.append(Outcome(app.id, app.ssn_masked, state))
    return out


def confirm(
    db: Database, app_id: int, *, staff: str = "", applicant: bool = False, actor: str
) -> list[str]:
    """Record the staff member's and/or the applicant's signature on the registration form of
    an accepted application; the confirmations still missing (empty when both are there)."""
    values = {"staff_confirmed": staff} if staff else {}
    if applicant:
        values["applicant_confirmed"] = "yes"
    if not values:
        raise UsageError("give --staff NAME and/or --applicant")
    checked = check_centre(values, Lists({}, {}, {}))
    with db.transaction():
        detail = ", ".join(k.removesuffix("_confirmed") for k in checked)
        move(db, app_id, "confirm", actor=actor, detail=f"signed by {detail}", **checked)
        staff_now, applicant_now = db.execute(
            "SELECT staff_confirmed, applicant_confirmed FROM reg_applications WHERE id = ?",
            (app_id,),
        )[0]
    return missing_confirmations(staff_now or "", applicant_now or "")


def reject(db: Database, app_id: int, reason: str, *, actor: str) -> str:
    """An auditor's decision: reject an accepted application with a reason."""
    with db.transaction():
        return move(db, app_id, "reject", actor=actor, detail=reason, reason=reason)


# -- comparison -------------------------------------------------------------------------------


def _reference(
    path: str | os.PathLike[str], wanted: set[str], what: str
) -> dict[str, dict[str, str]]:
    """The rows of a reference extract (CSV with a header; prep field names or aliases, plus
    ``account`` as an alias of ``pan`` in bank extracts) whose ``ssn`` is in ``wanted``."""
    out: dict[str, dict[str, str]] = {}
    rows = csv_rows(path, what)
    first = next(rows, None)
    if not first or not first[1]:
        raise DataError(f"{what} extract {path} has no header row", field=what)
    names = [
        "pan" if h.strip().lower() in ("account", "bank_card_no") else canonical(h) or h
        for h in first[1]
    ]
    if "ssn" not in names:
        raise DataError(f"{what} extract {path} has no ssn (AAC002) column", field=what)
    for line, row in rows:
        rec = dict(zip(names, (c.strip() for c in row)))
        if rec.get("ssn") in wanted:
            if "result" in rec:  # an answer: the partner compared
                rec["result"] = rec["result"].lower()
                if rec["result"] not in RESULTS:
                    raise DataError(
                        f"is {_short(rec['result'])}, not match, mismatch or not_found",
                        record=line,
                        field="result",
                    )
            out[rec["ssn"]] = rec
    return out


def _short(text: str) -> str:
    return repr(text[:20]) + ("…" if len(text) > 20 else "")


_POPULATION_FIELDS: Final = ("name", "gender", "birth_date")
_BANK_FIELDS: Final = ("bank_code", "pan")


#: The results of a partner's comparison answer (``request_id, ssn, result, fields``).
RESULTS: Final = frozenset({"match", "mismatch", "not_found"})


def _answer_fields(rec: dict[str, str], allowed: tuple[str, ...]) -> list[str]:
    names = [canonical(f) or f for f in re.split(r"[;,| ]+", rec.get("fields", "")) if f]
    return [n for n in names if n in allowed] or list(allowed)  # none named: say all


def mismatches(
    app: Application, person: dict[str, str] | None, bank: dict[str, str] | None
) -> list[str]:
    """Why ``app`` does not agree with the reference data (empty when it does). A reference
    row is either an extract (the partner's values, compared here) or an answer (``result``
    match / mismatch with the ``fields`` that differ / not_found: the partner compared)."""
    reasons: list[str] = []
    if person is None or person.get("result") == "not_found":
        reasons.append("identity number not found in the population database")
    elif "result" in person:
        if person["result"] == "mismatch":
            reasons += [
                f"{name} differs from the population database"
                for name in _answer_fields(person, _POPULATION_FIELDS)
            ]
    else:
        for name in _POPULATION_FIELDS:
            theirs = person.get(name)
            if theirs is not None and theirs != getattr(app, name):
                reasons.append(f"{name} differs from the population database")
    if app.bank_code or app.pan:
        if bank is None or bank.get("result") == "not_found":
            reasons.append("no account request for this identity number at the bank")
        else:
            if "result" in bank:
                differ = _answer_fields(bank, _BANK_FIELDS) if bank["result"] == "mismatch" else []
            else:
                differ = [n for n in _BANK_FIELDS if bank.get(n) not in (None, getattr(app, n))]
            for name in differ:
                what = "bank card number" if name == "pan" else "bank"
                reasons.append(f"{what} differs from the bank's data")
    return reasons


def compare(
    db: Database,
    population: str | os.PathLike[str],
    bank: str | os.PathLike[str] | None,
    *,
    actor: str,
) -> list[Outcome]:
    """Compare every audited application with the population extract (identity number, name,
    gender, birth date) and the bank extract (chosen bank, bank card number): ``compared``, or
    ``returned`` to the insured unit with the reasons."""
    apps = select_apps(db, "state = ?", (lifecycle.AUDITED,))
    wanted = {a.ssn for a in apps}
    people = _reference(population, wanted, "population")
    accounts = _reference(bank, wanted, "bank") if bank else {}
    out: list[Outcome] = []
    for app in apps:
        reasons = mismatches(app, people.get(app.ssn), accounts.get(app.ssn) if bank else {})
        clash = _pan_clash(db, app) if app.pan else ""
        if clash:  # oldest first: an earlier one compared in this run is seen here
            reasons.append(f"bank card number: {clash}")
        with db.transaction():
            if reasons:
                reason = "; ".join(reasons)
                state = move(db, app.id, "compare_fail", actor=actor, detail=reason, reason=reason)
            else:
                state = move(db, app.id, "compare_ok", actor=actor)
        out.append(Outcome(app.id, app.ssn_masked, state, "; ".join(reasons)))
    return out


def _pan_clash(db: Database, app: Application) -> str:
    """Why ``app``'s PAN cannot be its own (another person's active card or open application
    already has it); empty when it can."""
    rows = db.execute(
        "SELECT card_no FROM reg_cards WHERE active = 1 AND pan = ? AND ssn <> ?",
        (app.pan, app.ssn),
    )
    if rows:
        return f"is on another person's active card {rows[0][0]}"
    states = ", ".join("?" for _ in _OPEN)
    rows = db.execute(
        f"SELECT id FROM reg_applications WHERE pan = ? AND ssn <> ? AND id < ? "
        f"AND state IN ({states}) AND state <> ? ORDER BY id",
        (app.pan, app.ssn, app.id, *_OPEN, lifecycle.ACCEPTED),
    )
    return f"another person's application {rows[0][0]} has the same one" if rows else ""


def iter_outcomes(outcomes: list[Outcome], state: str) -> Iterator[Outcome]:
    return (o for o in outcomes if o.state == state)
