# ruff: noqa: F811 - the fixtures imported from test_web_office are parameters here
"""The office's notification and the audit queue's pages, over HTTP against a real `cardperso
web serve` on a copy of the centre's registry (tests/fixtures_office.py). The outside check:
the archive the console sends holds the SMS upload file and the letters that `cardperso
registry notify --sms F --letters F` writes on a copy of the same database, byte for byte,
and the registry records the same messages."""

from __future__ import annotations

import html
import io
import re
import zipfile
from pathlib import Path

from cardperso.registry import lifecycle
from cardperso.storage.db import Database
from cardperso.web import office
from fixtures_office import AS_OF, Centre, _answers
from fixtures_web import Console, csrf_of, login_client
from test_registry import run_cli
from test_web_office import (  # the office tests' fixtures and helpers
    _audit_log,
    _copy,
    centre,  # noqa: F401 - fixture
    fresh,  # noqa: F401 - fixture
)


def test_notify_is_registry_notify_with_its_sms_and_letter_files(
    centre: Centre, fresh: tuple[Console, Path], tmp_path: Path
) -> None:
    console, db_path = fresh
    db = ["--db", str(db_path)]
    # the bank answers for the batch's last card: its account is opened, it may be notified
    last = centre.batch[-1]["card_no"]
    run_cli("registry", "accounts", str(_answers(tmp_path / "acc.csv", [(last, "opened", "")])),
            *db)  # fmt: skip
    client = login_client(console, "centre1")
    page = client.get("/office/files").text
    assert re.search(r'id="notify"\s*>', page), "the button is enabled"
    assert "— 1 card(s) can be made ready for collection now" in page
    before = _copy(db_path, tmp_path / "before.db")
    csrf = csrf_of(client, "/office/files")
    r = client.post("/office/notify", data={"csrf": csrf, "date": AS_OF})
    assert r.status_code == 200, r.text[:500]
    stamp = AS_OF.replace("-", "")
    assert r.headers["content-disposition"] == f'attachment; filename="notify-{stamp}.zip"'
    assert r.headers["cache-control"] == "private, no-store"
    sms, letters = tmp_path / "sms.csv", tmp_path / "letters.txt"
    out = run_cli("registry", "notify", "--date", AS_OF, "--sms", str(sms), "--letters",
                  str(letters), "--db", str(before), "--by", "web:centre1")  # fmt: skip
    assert "1 card(s) ready for collection" in out
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert z.namelist() == [f"sms-{stamp}.csv", f"letters-{stamp}.txt"]
        assert z.read(f"sms-{stamp}.csv") == sms.read_bytes()
        assert z.read(f"letters-{stamp}.txt") == letters.read_bytes()
    assert last in sms.read_text(encoding="utf-8")
    query = (
        "SELECT a.state, n.channel, n.recipient, n.status FROM reg_notifications n "
        "JOIN reg_applications a ON a.id = n.application_id WHERE n.card_no = ? ORDER BY n.id"
    )
    with Database(db_path) as web_db, Database(before) as cli_db:
        got, want = web_db.execute(query, (last,)), cli_db.execute(query, (last,))
        assert [tuple(x) for x in got] == [tuple(x) for x in want] and got
        assert {str(s) for s, *_ in got} == {lifecycle.READY}
        (detail,) = web_db.execute(
            "SELECT detail FROM reg_notifications WHERE card_no = ? AND channel = 'sms-file'",
            (last,),
        )[0]
        assert re.fullmatch(rf"sms-{stamp}\.csv: \d{{3}}\*+\d{{4}}", str(detail)), detail
    (entry,) = _audit_log(db_path, "notify")
    assert entry[:3] == ("centre1", "centre", f"notify-{stamp}.zip")
    assert "cards 1" in entry[3] and "sms-file 1" in entry[3]
    # once: nothing is left to notify, and no file
    r = client.post("/office/notify", data={"csrf": csrf})
    assert r.status_code == 400 and "no card is waiting" in html.unescape(r.text)
    assert "<title>未完成 Not done" in r.text and 'id="back" href="/office/files"' in r.text
    r = client.post("/office/notify", data={"csrf": csrf, "date": "2999-01-01"})
    assert r.status_code == 400 and "is in the future" in html.unescape(r.text)
    assert not list((tmp_path / "tmp").iterdir()), "no temporary file left"
    # other roles are refused
    for name in ("clerk1", "op1", "sec1", "admin1"):
        other = login_client(console, name)
        got_r = other.post("/office/notify", data={"csrf": csrf_of(other)})
        assert got_r.status_code == 403, name


def test_the_audit_queue_pages_past_the_oldest(
    fresh: tuple[Console, Path],
) -> None:
    """With more applications waiting than a page holds, every one can be reached: pages of
    QUEUE, oldest first, with links to the next and previous pages."""
    console, db_path = fresh
    with Database(db_path) as db:  # a long queue: the waiting applications' rows, copied
        waiting = [int(i) for (i,) in db.execute(
            "SELECT id FROM reg_applications WHERE state = 'accepted' ORDER BY id")]  # fmt: skip
        cols = [c for (c,) in db.execute("SELECT name FROM pragma_table_info('reg_applications')")
                if c != "id"]  # fmt: skip
        copies = office.QUEUE + 7 - len(waiting)
        for k in range(copies):
            db.execute(
                f"INSERT INTO reg_applications ({', '.join(cols)}) SELECT "
                + ", ".join("ssn || ?" if c == "ssn" else c for c in cols)
                + " FROM reg_applications WHERE id = ?",
                (f"#{k}", waiting[k % len(waiting)]),
            )
        ids = [int(i) for (i,) in db.execute(
            "SELECT id FROM reg_applications WHERE state = 'accepted' ORDER BY id")]  # fmt: skip
    assert len(ids) == office.QUEUE + 7
    client = login_client(console, "centre1")
    first = client.get("/office/audit").text
    shown = [int(i) for i in re.findall(r'<table class="audit-item" id="app-(\d+)">', first)]
    assert shown == ids[: office.QUEUE]
    assert f'id="queue-total">{len(ids)}<' in first and 'id="page-next"' in first
    assert 'id="page-prev"' not in first
    second = client.get("/office/audit?page=2").text
    shown = [int(i) for i in re.findall(r'<table class="audit-item" id="app-(\d+)">', second)]
    assert shown == ids[office.QUEUE :]
    assert 'id="page-prev"' in second and 'id="page-next"' not in second
    assert f"{office.QUEUE + 1}–{len(ids)}" in second
    assert client.get("/office/audit?page=9").text.count('class="audit-item"') == 7  # the last
    r = client.get("/office/audit?page=x")
    assert r.status_code == 400 and "page: a page number" in r.text
