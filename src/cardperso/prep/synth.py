"""Realistic synthetic batches for tests, examples and benchmarks (no real person's data).

Every record is valid for the reference profile: identity numbers with real birth dates, the
gender digit and their check character; card numbers with their check character; PANs
(UnionPay-style BINs, 16 and 19 digits) with their Luhn digit; Chinese names including long
ones (minority names over 30 GBK bytes that need the EF06 name extension); photos are
synthetic JPEGs made with Pillow that meet the card photo specification, made once per batch
as a pool the records share, so a million-record batch stays small on disk. Identity numbers,
card numbers and PANs are unique by construction (derived from the record index), the rest
comes from a seeded ``random.Random``: the same arguments give the same files.

``errors=N`` appends N records that each break one validation rule (for demonstrations).
"""

from __future__ import annotations

import csv
import datetime
import io
import os
import random
from collections.abc import Iterator
from pathlib import Path

from cardperso.codec.numbers import card_number_check_char, luhn_check_digit, resident_id_check_char
from cardperso.errors import UsageError
from cardperso.outputs import atomic_output
from cardperso.profiles.fields import INPUT_FIELDS

__all__ = ["COLUMNS", "make_batch", "make_photo", "records"]

#: The columns the generator writes: every input field but the optional Latin name and
#: person code (``profiles.fields.INPUT_FIELDS`` is the one list of input fields).
COLUMNS = tuple(f for f in INPUT_FIELDS if f not in ("name_latin", "person_code"))

_REGIONS = (
    "110101", "110105", "120103", "130102", "210102", "310104", "310115", "320102",
    "330106", "340102", "350102", "360426", "370102", "410105", "420102", "430102",
    "440305", "440106", "500103", "510107",
)  # fmt: skip
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_COMPOUND = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "令狐", "慕容")
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鑫宇浩然子轩梓涵一诺欣怡思远博文雨桐佳琪晨曦"
_LONG_NAMES = (
    "阿卜杜热合曼·买买提明·艾则孜",
    "古丽娜尔·阿不都热依木·吐尔逊",
    "穆罕默德·阿不都克里木·热合曼",
    "扎西多吉·次仁旺堆·格桑平措",
    "努尔比亚·艾合买提·买买提依明",
    "阿依古丽·吾斯曼·阿不都拉",
)
_NATIONS = ("01",) * 12 + ("02", "03", "04", "05", "06", "08", "10", "11")
_BANKS = ("102", "103", "104", "105", "301", "403")
_BIRTH_START = datetime.date(1935, 1, 1).toordinal()
_BIRTH_DAYS = datetime.date(2008, 12, 31).toordinal() - _BIRTH_START


def _ten_years(d: datetime.date) -> datetime.date:
    try:
        return d.replace(year=d.year + 10)
    except ValueError:  # 29 February
        return d.replace(year=d.year + 10, day=28)


def make_photo(rng: random.Random, width: int = 358, height: int = 441) -> bytes:
    """A synthetic portrait JPEG that meets the card photo specification
    (:mod:`cardperso.codec.photo`: 358 x 441 px, 24-bit colour, quality 70, 350 dpi, 9-40 KiB):
    a head and shoulders on a light background, with a little noise so that the encoded file
    lands inside the size window (about 18 KiB). A few milliseconds each: a batch makes a pool
    of them once and its records share it."""
    from PIL import Image, ImageDraw

    bg = (rng.randint(235, 255), rng.randint(235, 255), rng.randint(240, 255))
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    skin = (rng.randint(200, 240), rng.randint(160, 200), rng.randint(130, 170))
    draw.ellipse((width * 0.25, height * 0.12, width * 0.75, height * 0.6), fill=skin)
    shirt = (rng.randint(0, 120), rng.randint(0, 120), rng.randint(0, 160))
    draw.rectangle((width * 0.1, height * 0.66, width * 0.9, height), fill=shirt)
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    out = io.BytesIO()
    Image.blend(img, noise, 0.08).save(out, "JPEG", quality=70, dpi=(350, 350))
    return out.getvalue()


def _name(rng: random.Random, i: int) -> str:
    if i % 53 == 17:
        return _LONG_NAMES[(i // 53) % len(_LONG_NAMES)]
    surname = rng.choice(_COMPOUND) if i % 29 == 3 else rng.choice(_SURNAMES)
    return surname + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))


def records(
    count: int, *, seed: int = 1, photos: int = 64, issue: datetime.date | None = None
) -> Iterator[dict[str, str]]:
    """Valid records (see the module docstring); photo paths are ``photos/pNNNN.jpg``."""
    rng = random.Random(seed)
    issue = issue or datetime.date(2026, 1, 15)
    nreg = len(_REGIONS)
    for i in range(count):
        region = _REGIONS[i % nreg]
        k = i // nreg
        birth = datetime.date.fromordinal(_BIRTH_START + (k * 7919) % _BIRTH_DAYS)
        seq = (k // _BIRTH_DAYS) % 100
        male = rng.random() < 0.5
        digit = rng.choice("13579" if male else "02468")
        body17 = f"{region}{birth:%Y%m%d}{seq:02d}{digit}"
        ssn = body17 + resident_id_check_char(body17)
        card_body = _base36(i + 36**6, 8)
        card_no = card_body + card_number_check_char(card_body)
        pan_body = f"622848{i:09d}" if i % 5 == 4 else f"62284800{i:010d}"  # one issuer (ODA)
        pan = pan_body + luhn_check_digit(pan_body)
        iss = issue - datetime.timedelta(days=rng.randint(0, 60))
        limit = rng.choice((15000, 50000, 100000))
        ec_given = i % 3 == 0
        yield {
            "ssn": ssn,
            "name": _name(rng, i),
            "gender": "1" if male else "2",
            "nation": rng.choice(_NATIONS),
            "birth_date": f"{birth:%Y%m%d}",
            "birth_place": region if rng.random() < 0.7 else rng.choice(_REGIONS),
            "region": region,
            "card_no": card_no,
            "issue_date": f"{iss:%Y%m%d}",
            "expiry_date": f"{_ten_years(iss):%Y%m%d}",
            "photo": f"photos/p{i % max(photos, 1):04d}.jpg",
            "bank_code": rng.choice(_BANKS),
            "pan": pan,
            "pan_seq": "01",
            "pin": "",
            "ec_balance": "0" if ec_given else "",
            "ec_limit": str(limit) if ec_given else "",
            "ec_single_limit": "1000" if ec_given else "",
            "ec_reset_threshold": "1500" if ec_given else "",
            "application_type": "sporadic" if i % 17 == 0 else "batch",
            "accepted_date": f"{iss - datetime.timedelta(days=rng.randint(5, 25)):%Y%m%d}",
        }


def _base36(n: int, width: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(digits[r])
    return "".join(reversed(out)).rjust(width, "0")[-width:]


def _bad_records(good: list[dict[str, str]]) -> Iterator[tuple[str, dict[str, str]]]:
    """Records that each break one rule (rule, record), derived from valid ones."""
    base = good
    if not base:
        raise UsageError("invalid records are derived from valid ones: --count must be at least 1")

    def at(i: int) -> dict[str, str]:  # small batches reuse their records
        return base[i % len(base)]

    def var(i: int, **changes: str) -> dict[str, str]:
        rec = dict(at(i))
        rec.update(changes)
        return rec

    ssn = base[0]["ssn"]
    wrong_check = ssn[:17] + ("0" if ssn[17] != "0" else "1")
    yield "ssn check character", var(0, ssn=wrong_check)
    yield "duplicate card number", var(1, card_no=at(2)["card_no"], ssn=_bump(at(1)["ssn"]))
    yield "expiry before issue", var(3, expiry_date=at(3)["issue_date"])
    yield "name not GBK", var(4, name="王\U0001f600")
    pan = at(5)["pan"]
    yield "PAN Luhn", var(5, pan=pan[:-1] + str((int(pan[-1]) + 1) % 10))
    yield "gender mismatch", var(6, gender="2" if at(6)["gender"] == "1" else "1")
    yield "EC balance over limit", var(7, ec_balance="20000", ec_limit="15000")
    yield "missing photo", var(8, photo="photos/missing.jpg")


def _bump(ssn: str) -> str:
    """Another valid identity number near *ssn* (next sequence number of the same gender)."""
    seq = int(ssn[14:17])
    body17 = ssn[:14] + f"{(seq + 100) % 1000:03d}"
    return body17 + resident_id_check_char(body17)


def make_batch(
    out: str | os.PathLike[str],
    count: int,
    *,
    seed: int = 1,
    photos: int | None = None,
    errors: int = 0,
    fmt: str | None = None,
) -> dict[str, int]:
    """Write a batch file (CSV, or JSON Lines for ``.jsonl``) and its ``photos/`` directory
    beside it; returns counts {"records", "photos", "bad"}."""
    import json

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    nphotos = max(1, min(count, 64) if photos is None else photos)
    pdir = path.parent / "photos"
    pdir.mkdir(exist_ok=True)
    prng = random.Random(seed + 7)
    for j in range(nphotos):
        target = pdir / f"p{j:04d}.jpg"
        data = make_photo(prng)
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
    kind = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    head: list[dict[str, str]] = []
    bad = 0
    with atomic_output(path, mode=0o644) as fh:  # synthetic data; whole file or none
        writer = csv.writer(fh, lineterminator="\n") if kind == "csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)

        def emit(rec: dict[str, str]) -> None:
            if writer is not None:
                writer.writerow([rec[c] for c in COLUMNS])
            else:
                fh.write(json.dumps({k: v for k, v in rec.items() if v}, ensure_ascii=False))
                fh.write("\n")

        for rec in records(count, seed=seed, photos=nphotos):
            if len(head) < 16:
                head.append(rec)
            emit(rec)
        if errors and head:
            for n, (_rule, rec) in enumerate(_bad_records(head)):
                if n >= errors:
                    break
                emit(rec)
                bad += 1
    return {"records": count + bad, "photos": nphotos, "bad": bad}
