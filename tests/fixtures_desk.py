"""The service-point desk for tests: a console database with two service points (a clerk at
each), an insured unit and the cooperative banks, applicants, photos that meet the card photo
specification and one that does not, and the registry's later steps (audit, comparison,
registration, production, accounts, notification) run by the CLI so that a card reaches the
desk for collection.

Imported by tests/test_web_desk.py and tests/test_web_browser_desk.py."""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cardperso.prep.synth import records
from cardperso.registry import centre
from cardperso.storage.db import Database
from cardperso.web import users
from centre_photos import spec_photo
from fixtures_web import Console, csrf_of, make_users, start_console
from test_registry import _fake_line_results, run_cli

#: The second service point's clerk (the first, clerk1, works at SP01).
CLERK2, CLERK2_PASSWORD = "clerk2", "clerk2-Secret-6620"
#: Applicants (the prep generator's valid records) and the cooperative banks they chose.
PEOPLE = [
    {k: r[k] for k in ("ssn", "name", "gender", "nation", "birth_date", "birth_place",
                       "region", "bank_code", "pan", "pan_seq")}
    for r in records(12, seed=21, photos=0)
]  # fmt: skip
BANKS = sorted({p["bank_code"] for p in PEOPLE})
#: GB 11643-1999's own example of a citizen identity number (its annex: 11010519491231002X).
STANDARD_ID = "11010519491231002X"


def make_desk(db_path: Path) -> None:
    """Users of every role (clerk1 at SP01), a second service point with clerk2, a unit and the
    banks."""
    make_users(db_path)
    with Database(db_path) as db:
        centre.add_party(db, "service_point", "SP02", "西城区社保服务网点")
        centre.add_party(db, "unit", "U1001", "北京市甲科技有限公司")
        for code in BANKS:
            centre.add_party(db, "bank", code, f"合作银行{code}")
        users.add(db, CLERK2, users.CLERK, CLERK2_PASSWORD, "SP02")


@pytest.fixture(scope="module")
def desk_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A console (its own process and SQLite database) for the desk tests of one module."""
    base = tmp_path_factory.mktemp("desk")
    make_desk(base / "desk.db")
    c = start_console(base / "desk.db", base / "serve.log")
    try:
        yield c
    finally:
        c.stop()


def good_photo(seed: int = 1) -> bytes:
    return spec_photo(random.Random(seed))


def small_photo() -> bytes:
    """A whole JPEG of 120 x 150 pixels: not the specification's 358 x 441."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (120, 150), (200, 210, 220)).save(out, "JPEG", quality=70)
    return out.getvalue()


def form_of(person: dict[str, str], **over: str) -> dict[str, str]:
    """The accept form's fields for ``person`` (an ID-card photo, a phone)."""
    values = dict(person, phone="13912345678", application_type="sporadic",
                  photo_source="id_card", photo_receipt="", unit="")  # fmt: skip
    values.update(over)
    return values


def accept(client: httpx.Client, values: dict[str, str], photo: bytes | None) -> httpx.Response:
    files = {"photo": ("photo.jpg", photo, "image/jpeg")} if photo is not None else None
    data = dict(values, csrf=csrf_of(client, "/desk/accept"))
    return client.post("/desk/accept", data=data, files=files)  # type: ignore[arg-type]


def app_id_of(response: httpx.Response) -> int:
    m = re.fullmatch(r"/desk/app\?id=(\d+)", response.headers.get("location", ""))
    assert m, (response.status_code, response.text[:2000])
    return int(m.group(1))


def to_ready(url: str, people: list[dict[str, str]], work: Path) -> list[dict[str, str]]:
    """The centre's steps after acceptance, by the CLI: audit, comparison (extracts that agree
    with ``people``), registration, export, the line's results, accounts opened, notification.
    The rows of the exported batch (card numbers)."""
    work.mkdir(parents=True, exist_ok=True)
    db = ["--db", url]
    with (work / "population.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ssn", "name", "gender", "birth_date"])
        w.writerows([p["ssn"], p["name"], p["gender"], p["birth_date"]] for p in people)
    with (work / "bank.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ssn", "bank_code", "account"])
        w.writerows([p["ssn"], p["bank_code"], p["pan"]] for p in people)
    run_cli("registry", "audit", *db)
    run_cli("registry", "compare", *db, "--population", str(work / "population.csv"),
            "--bank", str(work / "bank.csv"))  # fmt: skip
    run_cli("registry", "register", *db)
    run_cli("registry", "export-batch", *db, "--out", str(work / "B1.csv"), "--batch", "B1")
    rows = _fake_line_results(work / "B1.csv", work / "results.csv")
    run_cli("registry", "import-results", str(work / "results.csv"), *db)
    with (work / "acc.csv").open("w", encoding="utf-8") as fh:
        fh.write("card_no,status\n" + "".join(f"{r['card_no']},opened\n" for r in rows))
    run_cli("registry", "accounts", str(work / "acc.csv"), *db)
    run_cli("registry", "notify", *db)
    return rows
