"""A centre's registry for the office pages' tests, made with the `cardperso registry` commands
themselves (in process, like the registry's tests): 12 applications from two insured units and
walk-ins at two service points; 8 audited and compared (2 returned: one name differs at the
population database, one has no account at the bank), 6 registered, exported as batch B1,
made, their accounts opened (one failed, one not answered yet), notified and 2 issued; then 4 more accepted and
waiting for their audit: one unsigned by the applicant, one whose photo was spoiled after it
was accepted. One lost card has a block request waiting for the bank.

Imported by tests/test_web_office.py and tests/test_web_browser_office.py."""

from __future__ import annotations

import csv
import datetime
import io
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from centre_photos import spec_photo
from fixtures_web import make_users
from test_centre_acceptance import GOOD, write_centre_apps
from test_centre_fixes import _answers
from test_integrity_registry import _applications
from test_registry import _fake_line_results, run_cli, write_extracts

#: The day the tests judge the time targets on: today (the synthetic records were accepted
#: 5 to 85 days before it; notification and collection are today, never in the future).
AS_OF = datetime.date.today().isoformat()


@dataclass
class Centre:
    directory: Path  # the applications' files and photos
    url: str  # the database (a SQLite file or a postgresql:// URL)
    recs: list[dict[str, str]]
    queue: list[int]  # the application ids waiting for their audit
    unsigned: int  # waiting for the applicant's signature
    spoiled: int  # its photo no longer meets the specification
    batch: list[dict[str, str]]  # the exported batch B1


def _extras(units: list[str], points: list[str]) -> list[dict[str, str]]:
    return [dict(GOOD, unit=u, service_point=p) for u, p in zip(units, points, strict=True)]


def build_centre(directory: Path, url: str | None = None) -> Centre:
    """The centre's registry in ``directory`` (its files, photos and SQLite database), or on
    the PostgreSQL database ``url``."""
    directory.mkdir(parents=True, exist_ok=True)
    db_path = directory / "centre.db"
    url = url or str(db_path)
    make_users(url)  # type: ignore[arg-type]  # the registry's and the console's tables, one user per role, SP01
    db = ["--db", url]
    run_cli("registry", "service-point", "add", "SP02", "西丽街道社保服务点", *db)
    run_cli("registry", "unit", "add", "U1001", "深圳市甲科技有限公司", *db)
    run_cli("registry", "unit", "add", "U1002", "深圳市乙贸易有限公司", *db)
    recs = _applications(directory, 12)
    today = datetime.date.today()
    for i, days in enumerate((40, 35, 9, 20, 45, 12, 60, 25, 2, 10, 38, 7)):  # calendar days ago
        recs[i] = dict(recs[i], accepted_date=f"{today - datetime.timedelta(days=days):%Y%m%d}")
    # application 10 has its own photo file, spoiled once accepted
    (directory / "photos" / "own.jpg").write_bytes(spec_photo(random.Random(99)))
    recs[9] = dict(recs[9], photo="photos/own.jpg")
    first = recs[:8]
    units = ["U1001", "U1001", "U1001", "U1002", "U1002", "", "", "U1002"]
    points = ["SP01", "SP01", "SP02", "SP02", "SP01", "SP01", "SP02", "SP02"]
    run_cli("registry", "import", str(write_centre_apps(directory, first, _extras(units, points))),
            *db)  # fmt: skip
    run_cli("registry", "audit", *db)
    write_extracts(directory, first, wrong_name=1, no_bank=3)
    out = run_cli("registry", "compare", *db, "--population", str(directory / "population.csv"),
                  "--bank", str(directory / "bank.csv"))  # fmt: skip
    assert "compared 6, returned 2" in out, out
    run_cli("registry", "register", *db)
    batch_csv = directory / "B1.csv"
    run_cli("registry", "export-batch", *db, "--out", str(batch_csv), "--batch", "B1")
    with batch_csv.open(encoding="utf-8", newline="") as fh:
        batch = list(csv.DictReader(fh))
    _fake_line_results(batch_csv, directory / "B1.results.csv")
    run_cli("registry", "import-results", str(directory / "B1.results.csv"), *db)
    answers = [(r["card_no"], "opened", "") for r in batch[1:-1]]  # the last: not answered yet
    answers.append((batch[0]["card_no"], "failed", "no such customer"))
    run_cli("registry", "accounts", str(_answers(directory / "acc.csv", answers)), *db)
    run_cli("registry", "notify", *db, "--date", AS_OF)
    for r in batch[1:3]:
        run_cli("registry", "issue", r["card_no"], "--date", AS_OF, *db)
    run_cli("registry", "suspend", batch[1]["card_no"], *db)  # lost: a block request waits
    # four more, waiting for their audit
    rest = recs[8:12]
    extra = _extras(["U1001", "", "U1002", "U1001"], ["SP01", "SP02", "SP01", "SP02"])
    extra[2] = dict(extra[2], applicant_confirmed="no")
    out = run_cli("registry", "import", str(write_centre_apps(directory, rest, extra)), *db)
    assert "accepted 4" in out, out
    grey = io.BytesIO()
    Image.new("L", (358, 441), 200).save(grey, "JPEG", quality=70)
    (directory / "photos" / "own.jpg").write_bytes(grey.getvalue())  # no longer to the spec
    return Centre(directory, url, recs, [9, 10, 11, 12], unsigned=11, spoiled=10, batch=batch)
