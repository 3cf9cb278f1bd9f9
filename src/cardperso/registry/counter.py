"""One application at a service point's counter (the web console's desk): the same checks as
``registry import`` (:func:`cardperso.registry.applications._check`, which is data
preparation's :class:`~cardperso.prep.validate.Validator`, and
:func:`cardperso.registry.centre.check_centre`), for the fields typed so far or for the whole
application, and its acceptance into the registry as one more imported record.

:func:`problems` answers "what is wrong with what was typed" while the clerk types: each field
typed is checked by the whole-record rules with the fields not yet typed (or found wrong) stood
in for by values consistent with the typed ones, so each message is the one ``registry import``
gives for that field, and a required field left empty is not blamed before the form is sent
(an optional one that a typed value calls for is: a studio photo's receipt number). The photo
is checked on its own (:func:`photo_problem`, the rule of ``registry import --photo-spec``).
:func:`accept` checks the whole application as the import does and inserts it
(:func:`cardperso.registry.applications._insert`: the same row, the same ``accept``
transition, the same refusal of a second open application for a person).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cardperso.codec.numbers import luhn_check_digit, mask_id, resident_id_check_char
from cardperso.codec.photo import PhotoSpec
from cardperso.errors import DataError
from cardperso.prep.validate import Reject, Validator, check_jpeg, read_photo
from cardperso.profiles.model import Profile
from cardperso.registry.applications import ImportSummary, _check, _insert
from cardperso.registry.centre import Lists, check_centre
from cardperso.storage.db import Database

#: What the clerk types (the service point and the acceptance date are the desk's own).
TYPED: Final = (
    "name",
    "ssn",
    "gender",
    "nation",
    "birth_date",
    "birth_place",
    "region",
    "phone",
    "unit",
    "bank_code",
    "pan",
    "pan_seq",
    "application_type",
    "photo_source",
    "photo_receipt",
)
_STAND_IN_BIRTH: Final = "19800101"
_STAND_IN_REGION: Final = "110105"


def _day(text: str) -> bool:
    try:
        datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return len(text) == 8 and text.isdigit()


def _stand_in(name: str, got: Mapping[str, str], lists: Lists) -> str:
    """A value for ``name`` that the rules accept and that agrees with the values in ``got``
    (a stand-in is never stored: it only lets the other fields be checked)."""
    ssn = got.get("ssn", "")
    if name == "ssn":
        birth = got.get("birth_date", "")
        birth = birth if _day(birth) else _STAND_IN_BIRTH
        body = f"{_STAND_IN_REGION}{birth}00{'2' if got.get('gender') == '2' else '1'}"
        return body + resident_id_check_char(body)
    if name == "birth_date":
        return ssn[6:14] if len(ssn) == 18 and _day(ssn[6:14]) else _STAND_IN_BIRTH
    if name == "gender":
        return "2" if len(ssn) == 18 and ssn[16].isdigit() and int(ssn[16]) % 2 == 0 else "1"
    if name == "bank_code":
        return next(iter(lists.banks), "102")
    if name == "pan":
        return "622848000000000000" + luhn_check_digit("622848000000000000")
    return {
        "name": "张三",
        "nation": "01",
        "birth_place": _STAND_IN_REGION,
        "region": _STAND_IN_REGION,
        "pan_seq": "01",
        "application_type": "sporadic",
    }.get(name, "")


def _record(values: Mapping[str, str], point: str, today: datetime.date) -> dict[str, str]:
    rec = {k: str(values.get(k, "")) for k in TYPED}  # as typed: a stray space is refused
    rec = {k: v for k, v in rec.items() if v}
    rec["service_point"] = point
    rec["accepted_date"] = f"{today:%Y%m%d}"
    if "applicant_confirmed" in values:
        rec["applicant_confirmed"] = str(values["applicant_confirmed"])
    return rec


def problems(
    values: Mapping[str, str],
    profile: Profile,
    lists: Lists,
    *,
    point: str,
    today: datetime.date | None = None,
) -> dict[str, str]:
    """Field → reason for every typed field the import's rules refuse (the photo aside)."""
    day = today or datetime.date.today()
    typed = _record(values, point, day)
    validator = Validator(dataclasses.replace(profile, photo="optional"), "/", photo_spec=None)
    found: dict[str, str] = {}
    trial = dict(typed)
    for _ in range(2 * len(TYPED)):
        for name in TYPED:  # stand-ins for the required fields not typed (or found wrong)
            if not trial.get(name) and _stand_in(name, trial, lists):
                trial[name] = _stand_in(name, trial, lists)
        trial = {k: v for k, v in trial.items() if v}
        try:
            checked = _check(validator, trial)
            checked.update(check_centre(checked, lists))
        except Reject as rej:
            if rej.field not in typed and not _stand_in(rej.field, trial, lists):
                found[rej.field] = rej.reason  # an optional field another one calls for
                break
            if rej.field in found or trial.get(rej.field) != typed.get(rej.field, "-"):
                break  # a stand-in refused: what is typed around it is wrong, already said
            found[rej.field] = rej.reason
            trial.pop(rej.field)
            if rej.field in ("ssn", "birth_date", "gender"):  # stand in again, consistently
                for name in ("ssn", "birth_date", "gender"):
                    if name not in typed or name in found:
                        trial.pop(name, None)
            continue
        break
    return found


def photo_problem(path: str | os.PathLike[str], spec: PhotoSpec | None) -> str:
    """Why the photo at ``path`` cannot be used ("" when it can): the rule that failed, in the
    words of ``registry import`` (the file's size, then the JPEG's format, pixel size, colour
    and file size of the card photo specification)."""
    data = read_photo(os.fspath(path))
    if isinstance(data, str):
        return data
    return check_jpeg(data, spec)


@dataclasses.dataclass(frozen=True, slots=True)
class Accepted:
    app_id: int
    ssn_masked: str


def accept(
    db: Database,
    values: Mapping[str, str],
    profile: Profile,
    *,
    point: str,
    photo: Path | None,
    photo_spec: PhotoSpec | None,
    actor: str,
    today: datetime.date | None = None,
) -> Accepted:
    """Accept one application typed at service point ``point`` (accepted today): checked as
    ``registry import`` checks a record (:class:`Reject` with the field and reason), inserted
    as the import inserts one (state ``accepted``, its ``accept`` transition); refused when
    the person has an open application already (:class:`Reject` on ``ssn``), also when two
    consoles on one PostgreSQL database accept the same person at the same moment."""
    day = today or datetime.date.today()
    rec = _record(values, point, day)
    if photo is not None:
        rec["photo"] = str(photo)
    lists = Lists.load(db)
    validator = Validator(profile, "/", photo_spec=photo_spec)
    checked = _check(validator, rec, None, photo_spec)
    checked.update(check_centre(checked, lists))
    summary = ImportSummary(read=1)
    base = photo.parent if photo is not None else Path("/")
    # the source names the counter and the clerk (no personal data): "desk SP01 user=NAME:1"
    source = f"desk {point} user={actor.removeprefix('web:')}"
    with db.transaction():
        # one person at two counters (or a counter and an import) at once: one after the
        # other (_insert holds the person's advisory lock on PostgreSQL until this commits)
        _insert(db, [(1, checked)], base, summary, actor=actor, source=source)
        if summary.rejects:
            _line, field, reason, _ssn = summary.rejects[0]
            raise Reject(field, reason)
        found = db.execute(  # the person's one open application: the row just inserted
            "SELECT MAX(id) FROM reg_applications WHERE ssn = ? AND source = ?",
            (checked["ssn"], f"{source}:1"),
        )
    if not found or found[0][0] is None:
        raise DataError("was not stored (try again)", field="application")
    return Accepted(int(found[0][0]), mask_id(rec.get("ssn", "")))
