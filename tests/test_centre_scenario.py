# ruff: noqa: F811 - pytest fixtures imported from test_registry are parameters here
"""Issue 15, "done when": the seeds' seven steps for a batch from two employers and three
walk-ins, on SQLite and on PostgreSQL, every partner file written and read back; a duplicate
whose original is cancelled and its account blocked; a lost card suspended, restored, lost
again and re-issued with the link kept; an account failure leading to a temporary card;
collection by the holder and by an agent. The walk-through of docs/registry.md ("A day at the
centre") names only commands this scenario runs."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import zipfile
from pathlib import Path

from cardperso.bank.accounts import read_accounts
from cardperso.bank.twostage import load_two_stage
from cardperso.codec.numbers import mask_id
from cardperso.prep.pipeline import validate_only
from cardperso.profiles.loader import load_profile
from test_centre_acceptance import CENTRE, GOOD
from test_integrity_registry import _applications
from test_registry import (  # the registry tests' fixtures and helpers
    APP_COLUMNS,
    _fake_line_results,
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    write_extracts,
)
from test_registry import run_cli as _run_cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "registry.md"
AGENT = "360426199101010071"
RAN: set[tuple[str, ...]] = set()


def cli(*args: str, code: int = 0) -> str:
    """The CLI, remembering which commands ran (for the docs' walk-through)."""
    words = [a for a in args if not a.startswith("-")][:3]
    RAN.add(tuple(words[:2]))
    RAN.add(tuple(words[:3]))
    return _run_cli(*args, code=code)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _apps_file(path: Path, recs: list[dict[str, str]], extra: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*APP_COLUMNS, *CENTRE])
        for r, e in zip(recs, extra, strict=True):
            w.writerow([*(r[c] for c in APP_COLUMNS), *(e.get(c, "") for c in CENTRE)])
    return path


def _made(url: str, archive: Path, work: Path, chips: str) -> list[dict[str, str]]:
    """The factory: unpack the batch archive, check it prepares, make its cards (results; the
    chip serials of this batch start with ``chips``, one hex digit: every chip is another)."""
    work.mkdir()
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(work)
    (csv_file,) = work.glob("*.csv")
    checked = validate_only(csv_file, load_profile("ssc3-pboc"), work / "rejects.csv")
    assert checked.rejected == 0
    rows = _fake_line_results(csv_file, work / "results.csv")
    text = (work / "results.csv").read_text(encoding="utf-8")
    (work / "results.csv").write_text(text.replace("A000000", f"{chips}000000"), encoding="utf-8")
    cli("registry", "import-results", str(work / "results.csv"), "--db", url)
    return rows


def test_a_day_at_the_centre(db_url: str, tmp_path: Path) -> None:
    db = ["--db", db_url]
    recs = _applications(tmp_path, 9)
    people = {"dup": recs[0], "u1": recs[1:3], "u2": recs[3:5], "walk": recs[5:8]}
    banks = sorted({r["bank_code"] for r in recs})
    cli("db", "upgrade", *db)
    cli("registry", "service-point", "add", "SP01", "南山街道社保服务点", "--region", "440305", *db)
    cli("registry", "service-point", "add", "SP02", "西丽街道社保服务点", *db)
    cli("registry", "unit", "add", "U1001", "深圳市甲科技有限公司", *db)
    cli("registry", "unit", "add", "U1002", "深圳市乙贸易有限公司", *db)
    for code in banks:
        cli("registry", "bank", "add", code, f"合作银行{code}", *db)
    assert len(json.loads("[" + ",".join(cli("registry", "bank", "list", "--json", *db)
                                          .splitlines()) + "]")) == len(banks)  # fmt: skip

    # last year: the "dup" person got a card (walk-in), collected it
    old = _apps_file(tmp_path / "old.csv", [dict(people["dup"], application_type="sporadic",
                     accepted_date="20250602")], [dict(GOOD, unit="")])  # fmt: skip
    cli("registry", "import", str(old), *db)
    cli("registry", "audit", *db)
    cli("registry", "compare", *db, "--population", str(tmp_path / "population.csv"),
        "--bank", str(tmp_path / "bank.csv"))  # fmt: skip
    cli("registry", "register", *db)
    cli("registry", "export-batch", *db, "--out", str(tmp_path / "B0.zip"), "--batch", "B0")
    (old_row,) = _made(db_url, tmp_path / "B0.zip", tmp_path / "f0", "B")
    original = old_row["card_no"]
    (tmp_path / "acc0.csv").write_text(f"card_no,status\n{original},opened\n", encoding="utf-8")
    cli("registry", "accounts", str(tmp_path / "acc0.csv"), *db)
    cli("registry", "notify", "--date", "2025-06-20", *db)
    cli("registry", "issue", original, "--date", "2025-06-25", *db)

    # (1) acceptance at the service points: two employers' batches and three walk-ins
    batch = [dict(r, application_type="batch", accepted_date="20260105")
             for r in [people["dup"], *people["u1"], *people["u2"]]]  # fmt: skip
    walk = [dict(r, application_type="sporadic", accepted_date="20260106") for r in people["walk"]]
    extra = [dict(GOOD, unit=u, service_point=sp) for u, sp in
             (("U1001", "SP01"), ("U1001", "SP01"), ("U1001", "SP01"), ("U1002", "SP02"),
              ("U1002", "SP02"))]  # fmt: skip
    extra += [dict(GOOD, unit="", service_point=sp, applicant_confirmed="") for sp in
              ("SP01", "SP02", "SP02")]  # fmt: skip
    extra[5]["photo_source"], extra[5]["photo_receipt"] = "id_card", ""
    out = cli("registry", "import", str(_apps_file(tmp_path / "day.csv", batch + walk, extra)), *db)
    assert "read 8, accepted 8, rejected 0 (application ids 2-9)" in out
    cli("registry", "form", "issuing", "7", "--out", str(tmp_path / "issuing7.pdf"), *db)
    # (2) audit: the walk-ins have not signed yet
    assert "waiting for confirmation 3" in cli("registry", "audit", *db)
    for app_id in ("7", "8", "9"):
        cli("registry", "confirm", app_id, "--applicant", *db)
    cli("registry", "form", "application", "7", "--out", str(tmp_path / "form7.pdf"), *db)
    form = subprocess.run(["pdftotext", str(tmp_path / "form7.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    assert people["walk"][0]["name"] in form and "授权使用居民身份证照片" in form
    assert "audited 3" in cli("registry", "audit", *db)
    # (3) comparison with the population database and the bank: requests out, answers in
    for to in ("population", "bank"):
        cli("registry", "partner", "compare-request", "--to", to, "--out",
            str(tmp_path / f"req-{to}.csv"), *db)  # fmt: skip
        assert {r["request_id"] for r in _read(tmp_path / f"req-{to}.csv")} == {
            str(i) for i in range(2, 10)
        }
    answered = [people["dup"], *people["u1"], *people["u2"], *people["walk"]]
    write_extracts(tmp_path, answered, wrong_name=4)  # U1002's second person: name differs
    out = cli("registry", "compare", *db, "--population", str(tmp_path / "population.csv"),
              "--bank", str(tmp_path / "bank.csv"))  # fmt: skip
    assert "compared 7, returned 1" in out
    cli("registry", "partner", "returned", "--out-dir", str(tmp_path), *db)
    (back,) = _read(tmp_path / "returned-U1002.csv")
    assert (back["application_id"], back["fields"]) == ("6", "name")
    # (4) pre-judgment and registration: the duplicate's original is cancelled, blocked
    out = cli("registry", "register", *db)
    assert f"replaces {original} (cancelled)" in out and "registered 7" in out
    # (5) printing and packaging: walk-ins to the same-day line, the employers' batch
    cli("registry", "export-batch", *db, "--sporadic", "--out", str(tmp_path / "S1.zip"),
        "--batch", "S1")  # fmt: skip
    cli("registry", "export-batch", *db, "--out", str(tmp_path / "B1.zip"), "--batch", "B1")
    made = _made(db_url, tmp_path / "S1.zip", tmp_path / "fs", "C") + _made(
        db_url, tmp_path / "B1.zip", tmp_path / "fb", "D"
    )
    cards = {r["ssn"]: r["card_no"] for r in made}
    cli("registry", "report", "return-file", "--batch", "B1", "--out", str(tmp_path / "ret.csv"),
        *db)  # fmt: skip
    assert {r["outcome"] for r in _read(tmp_path / "ret.csv")} == {"produced"}
    # (6) the bank opens the accounts: its data out, its answers in (twice: idempotent)
    cli("registry", "partner", "account-opening", "--out", str(tmp_path / "open.csv"), *db)
    two = load_two_stage("ssc3-pboc-2stage")
    assert two.bank.pboc is not None
    opening = read_accounts(tmp_path / "open.csv", two.bank.pboc, two.bank.pin.length)
    assert (opening.read, opening.rejected) == (7, 0)
    failing = cards[people["u1"][1]["ssn"]]
    answers = tmp_path / "answers.csv"
    answers.write_text("card_no,status,reason\n" + "".join(
        f"{n},{'failed,id card expired' if n == failing else 'opened,'}\n" for n in cards.values()
    ), encoding="utf-8")  # fmt: skip
    assert "accounts opened 6, failed 1" in cli("registry", "accounts", str(answers), *db)
    again = cli("registry", "accounts", str(answers), *db)
    assert "accounts opened 0, failed 0, 7 already recorded" in again
    cli("registry", "export-batch", *db, "--temporary", "--out", str(tmp_path / "T1.zip"),
        "--batch", "T1")  # fmt: skip
    with zipfile.ZipFile(tmp_path / "T1.zip") as zf:
        zf.extractall(tmp_path / "ft")
    checked = validate_only(tmp_path / "ft" / "T1.csv", load_profile("ssc3-temporary"),
                            tmp_path / "ft" / "rej.csv")  # fmt: skip
    assert checked.prepared == 1
    _fake_line_results(tmp_path / "ft" / "T1.csv", tmp_path / "ft" / "results.csv")
    cli("registry", "import-results", str(tmp_path / "ft" / "results.csv"), *db)
    shown = json.loads(cli("registry", "show", failing, "--json", *db))
    assert shown["card"]["kind"] == "temporary" and len(shown["card"]["old_chips"]) == 1
    # (7) notification, boxes to the service points, collection
    out = cli("registry", "notify", "--date", "2026-01-23", "--sms", str(tmp_path / "sms.csv"),
              "--letters", str(tmp_path / "letters.txt"), *db)  # fmt: skip
    assert "7 card(s) ready for collection" in out
    assert len(_read(tmp_path / "sms.csv")) == 7
    letters = (tmp_path / "letters.txt").read_text(encoding="utf-8").split("\f")
    assert len(letters) == 7 + 4  # every holder, and the unit of each employer's card
    assert sum("深圳市甲科技有限公司（U1001）" in page for page in letters) == 3
    for point in ("SP01", "SP02"):
        cli("registry", "box", "pack", "--service-point", point, "--manifest",
            str(tmp_path / f"box-{point}.csv"), "--box", f"BOX-{point}", *db)  # fmt: skip
        cli("registry", "box", "receive", f"BOX-{point}", "--by", "站长", "--date", "2026-01-26",
            *db)  # fmt: skip
    assert {r["card_no"] for p in ("SP01", "SP02") for r in _read(tmp_path / f"box-{p}.csv")} == (
        set(cards.values())
    )
    cli("registry", "box", "list", *db)
    waiting = cli("registry", "report", "waiting", "--as-of", "2026-01-26", *db)
    assert "as of 2026-01-26: 7 card(s) waiting" in waiting
    by_holder = cards[people["walk"][0]["ssn"]]
    by_agent = cards[people["u1"][0]["ssn"]]
    cli("registry", "issue", by_holder, "--date", "2026-01-27", *db)
    out = cli("registry", "issue", by_agent, "--date", "2026-01-27", "--agent-id", AGENT, "--to",
              "李四", *db)  # fmt: skip
    assert f"by agent {mask_id(AGENT)}" in out
    cli("registry", "issue", failing, "--date", "2026-01-28", *db)  # the temporary card
    # the walk-in loses the card: suspended, found, lost again, re-issued
    cli("registry", "suspend", by_holder, *db)
    cli("registry", "restore", by_holder, *db)
    cli("registry", "suspend", by_holder, "--reason", "lost again", *db)
    out = cli("registry", "reissue", by_holder, "--date", "2026-02-02", "--service-point", "SP02",
              *db)  # fmt: skip
    new_id = out.split("application ")[1].split()[0]
    assert f"next: registry confirm {new_id}, then audit" in out
    assert "waiting for the confirmation of: staff, applicant" in cli("registry", "audit", *db)
    cli("registry", "confirm", new_id, "--staff", "王工号0012", "--applicant", *db)
    cli("registry", "audit", *db)
    again = json.loads(cli("registry", "show", new_id, "--json", *db))
    assert (again["service_point"], again["phone"], again["replaces"]) == (
        "SP02",
        "138****5678",
        by_holder,
    )
    write_extracts(tmp_path, [people["walk"][0]])
    cli("registry", "compare", *db, "--population", str(tmp_path / "population.csv"),
        "--bank", str(tmp_path / "bank.csv"))  # fmt: skip
    assert f"replaces lost card {by_holder}" in cli("registry", "register", *db)
    lost_card = json.loads(cli("registry", "show", by_holder, "--json", *db))
    assert lost_card["card"]["replaced_by"] and lost_card["state"] == "cancelled"
    # the bank's block / unblock requests: the duplicate's original and the lost card
    cli("registry", "report", "bank-requests", "--out", str(tmp_path / "requests.csv"), *db)
    got = [(r["request"], r["card_no"]) for r in _read(tmp_path / "requests.csv")]
    assert got == [("block", original), ("block", by_holder), ("unblock", by_holder),
                   ("block", by_holder)]  # fmt: skip
    # reports
    cli("registry", "report", "breakdown", "--by", "unit", "--as-of", "2026-02-02", "--out",
        str(tmp_path / "by-unit.csv"), *db)  # fmt: skip
    units = {r["group"]: r for r in _read(tmp_path / "by-unit.csv")}
    assert units["U1001"]["applications"] == "3" and units["U1002"]["stopped"] == "1"
    cli("registry", "overdue", "--as-of", "2026-02-02", *db)
    cli("registry", "stats", *db)
    cli("registry", "list", "--state", "issued", *db)
    cli("registry", "history", by_agent, *db)
    assert lost_card["cards_of_person"][0]["card_no"] == by_holder

    # the walk-through in docs/registry.md names only commands run here
    block = DOCS.read_text(encoding="utf-8").split("## A day at the centre", 1)[1]
    block = block.split("```sh", 1)[1].split("```", 1)[0]
    named = set()
    for line in block.splitlines():
        m = re.match(r"\s*cardperso ((?:[a-z-]+ ?){1,3})", line)
        if m:
            words = tuple(w for w in m.group(1).split() if not w.startswith("-"))
            named.add(
                words[:3]
                if words[:2]
                in {
                    ("registry", "report"),
                    ("registry", "form"),
                    ("registry", "partner"),
                    ("registry", "box"),
                }
                or len(words) < 3
                else words[:2]
            )
    assert named, "the walk-through lists commands"
    assert named <= RAN, sorted(named - RAN)
