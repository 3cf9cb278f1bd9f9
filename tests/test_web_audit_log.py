"""The audit log as a security officer reads it, over HTTP against a real `cardperso web serve`
on its SQLite database: newest first, 200 to a page with "Older" paging back to the first
entry, filtered by user and by action; every entry reachable exactly once."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx

from cardperso.storage.db import Database
from cardperso.web import audit
from cardperso.web.app import AUDIT_PAGE
from fixtures_web import login_client, make_users, start_console

ROW = re.compile(r'<tr data-id="(\d+)"><td>[^<]*</td><td>([^<]*)</td><td>[^<]*</td><td>[^<]*</td>'
                 r"<td>([^<]*)</td>")  # fmt: skip


def _rows(text: str) -> list[tuple[int, str, str]]:
    return [(int(i), u, a) for i, u, a in ROW.findall(text)]


def _walk(client: httpx.Client, first: str) -> list[tuple[int, str, str]]:
    """Every entry, following the Older links from ``first``."""
    out: list[tuple[int, str, str]] = []
    url: str | None = first
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.text[:300]
        out += _rows(r.text)
        m = re.search(r'id="audit-older" href="([^"]+)"', r.text)
        url = html.unescape(m.group(1)) if m else None
    return out


def test_the_audit_log_pages_back_and_filters(tmp_path: Path) -> None:
    db_path = tmp_path / "console.db"
    make_users(db_path)
    with Database(db_path) as db:
        for k in range(2 * AUDIT_PAGE + 57):
            audit.record(db, "resume-station" if k % 3 == 0 else "view", user=f"op{k % 2 + 1}",
                         role="operator", address="10.0.0.7", target=f"r{k} st1")  # fmt: skip
    c = start_console(db_path, tmp_path / "serve.log")
    try:
        sec = login_client(c, "sec1")
        with Database(db_path) as db:
            every = [int(i) for (i,) in db.execute("SELECT id FROM web_audit ORDER BY id DESC")]
        page = sec.get("/audit").text
        assert len(_rows(page)) == AUDIT_PAGE and 'id="audit-newest"' not in page
        got = _walk(sec, "/audit")
        # every entry made before the walk (the walk's own views come after), exactly once,
        # newest first, down to the first entry
        ids = [i for i, _u, _a in got]
        assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids))
        assert set(every) <= set(ids) and ids[-1] == min(every)
        older = sec.get(f"/audit?before={ids[AUDIT_PAGE - 1]}").text
        assert 'id="audit-newest"' in older
        # filters: one user's entries, one action's, and both
        for query, keep in (
            ("user=op1", lambda u, a: u == "op1"),
            ("action=resume-station", lambda u, a: a == "resume-station"),
            ("user=op2&action=resume-station", lambda u, a: u == "op2" and a == "resume-station"),
        ):
            rows = _walk(sec, f"/audit?{query}")
            assert rows and all(keep(u, a) for _i, u, a in rows), query
            with Database(db_path) as db:
                want = [int(i) for i, u, a in db.execute(
                    "SELECT id, user_name, action FROM web_audit ORDER BY id DESC") if keep(u, a)]  # fmt: skip
            assert [i for i, _u, _a in rows] == want, query
        r = sec.get("/audit?before=x")
        assert r.status_code == 400 and "before: an entry number" in r.text
        assert login_client(c, "op1").get("/audit").status_code == 403
    finally:
        c.stop()
