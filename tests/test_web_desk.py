"""The service-point desk over HTTP, against a real `cardperso web serve` process and its
SQLite database (one test on PostgreSQL): who may use each desk route, CSRF on every desk
form, the checks as typed (the same messages as `registry import`), acceptance with the photo
and its rule, the two PDF forms (read back with poppler's pdftotext) and both signatures, the
lookup with the time target, collection by an agent, loss, restore and re-issue, the 256 KiB
upload limit, and a clerk refused on another service point's applicant however asked."""

from __future__ import annotations

import csv
import datetime
import hashlib
import html
import os
import re
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

import fixtures_desk
from cardperso.codec.numbers import mask_id
from cardperso.registry import applications, lifecycle
from cardperso.registry.calendar import Calendar, deadline
from cardperso.storage.db import Database
from cardperso.web import desk
from cardperso.web.app import ACCESS, ROUTES
from cardperso.web.users import CLERK
from fixtures_desk import (
    CLERK2,
    CLERK2_PASSWORD,
    PEOPLE,
    STANDARD_ID,
    accept,
    app_id_of,
    form_of,
    good_photo,
    make_desk,
    small_photo,
    to_ready,
)
from fixtures_web import PASSWORDS, Console, csrf_of, login_client, start_console
from test_registry import pg_url, run_cli  # noqa: F401 - fixture

desk_console = fixtures_desk.desk_console  # the module's fixture, used by name
DESK_ROUTES = [
    (method, route.path)
    for route in desk.ROUTES
    for method in sorted(getattr(route, "methods", None) or {"GET"})
    if method != "HEAD"
]


def _clerk(console: Console, name: str = "clerk1") -> httpx.Client:
    return login_client(console, name, CLERK2_PASSWORD if name == CLERK2 else None)


def _accepted(console: Console, person: dict[str, str], clerk: str = "clerk1") -> int:
    client = _clerk(console, clerk)
    return app_id_of(accept(client, form_of(person), good_photo()))


# -- who may use the desk --------------------------------------------------------------------


def test_the_desk_routes_are_in_the_app_and_for_clerks_only() -> None:
    paths = {getattr(r, "path", "") for r in ROUTES}
    assert {p for _m, p in DESK_ROUTES} <= paths  # the route-walking tests walk them too
    assert all(ACCESS[p] == frozenset({CLERK}) for _m, p in DESK_ROUTES)
    assert ("POST", "/desk/accept") in DESK_ROUTES and ("GET", "/desk/accept") in DESK_ROUTES
    assert set(desk.STATE_TITLES) == set(lifecycle.STATES), "a state without its counter word"


def test_logged_out_wrong_role_and_no_csrf_are_refused_on_every_desk_route(
    desk_console: Console,
) -> None:
    anon = httpx.Client(base_url=desk_console.url, follow_redirects=False)
    for method, path in DESK_ROUTES:
        r = anon.request(method, path, data={"csrf": "x"} if method == "POST" else None)
        want = (303, "/login") if method == "GET" else (401, None)
        assert (r.status_code, r.headers.get("location")) == want, (method, path)
    for name in ("admin1", "op1", "sec1", "centre1"):
        client = login_client(desk_console, name)
        csrf = csrf_of(client)
        for method, path in DESK_ROUTES:
            r = client.request(method, path, data={"csrf": csrf} if method == "POST" else None)
            assert r.status_code == 403 and "Your role may not use this page" in r.text, (
                name, method, path)  # fmt: skip
    clerk = _clerk(desk_console)
    app_id = _accepted(desk_console, PEOPLE[0])
    for method, path in DESK_ROUTES:
        if method != "POST":
            continue
        for data in ({}, {"csrf": "forged"}):
            r = clerk.post(path, data=dict(data, id=str(app_id), who="staff"))
            assert r.status_code == 403 and "CSRF" in r.text, (path, data)
    page = clerk.get(f"/desk/app?id={app_id}").text
    assert "（未签字）" in page, "a form without its token changed nothing"


# -- the checks as typed -----------------------------------------------------------------------


def _import_reject(tmp_path: Path, console: Console, values: dict[str, str]) -> tuple[str, str]:
    """What `registry import` says of one record with ``values`` (field, reason)."""
    rec = dict(values, accepted_date=f"{datetime.date.today():%Y%m%d}", service_point="SP01",
               photo=str(tmp_path / "p.jpg"))  # fmt: skip
    (tmp_path / "p.jpg").write_bytes(good_photo())
    path = tmp_path / "one.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rec))
        w.writeheader()
        w.writerow(rec)
    rejects = tmp_path / "rejects.csv"
    run_cli("registry", "import", str(path), "--rejects", str(rejects), "--db",
            str(console.db_path), code=1)  # fmt: skip
    with rejects.open(encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    return row["field"], row["reason"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ssn", STANDARD_ID[:-1] + "3"),  # GB 11643-1999's example with a wrong check character
        ("ssn", STANDARD_ID[:17]),  # one character short
        ("nation", "60"),
        ("region", "990101"),
        ("pan", "6228480000000000001"),  # the Luhn digit is wrong
        ("bank_code", "999"),  # not one of the centre's banks
        ("phone", "12345"),
        ("name", "张\x01三"),
    ],
)
def test_each_field_is_checked_as_typed_with_the_message_of_registry_import(
    desk_console: Console, tmp_path: Path, field: str, value: str
) -> None:
    person = dict(PEOPLE[1])
    if field == "ssn":  # the standard's example person, then the mistake
        person.update(ssn=STANDARD_ID, birth_date="19491231", gender="2")
    values = form_of(person, **{field: value})
    client = _clerk(desk_console)
    csrf = csrf_of(client, "/desk/accept")
    # typing one field: only what was typed so far is sent, the rest is empty
    r = client.post("/desk/check", data={"csrf": csrf, field: value, "field": field})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    live = r.json()["problems"]
    assert _import_reject(tmp_path, desk_console, values) == (field, live[field])
    # the whole form: the same message for that field, and no other field blamed
    whole = client.post("/desk/check", data=dict(values, csrf=csrf)).json()["problems"]
    assert whole == {field: live[field]}


def test_fields_that_disagree_are_named_and_a_good_form_has_no_problem(
    desk_console: Console,
) -> None:
    client = _clerk(desk_console)
    csrf = csrf_of(client, "/desk/accept")
    got = client.post("/desk/check", data={"csrf": csrf, "ssn": STANDARD_ID, "gender": "1",
                                           "birth_date": "19500101"}).json()  # fmt: skip
    assert got["problems"] == {
        "gender": "does not match the gender digit of ssn (odd = male)",
        "birth_date": "does not match the birth date in ssn",
    }
    ok = client.post("/desk/check", data=dict(form_of(PEOPLE[2]), csrf=csrf)).json()
    assert ok["problems"] == {}
    receipt = client.post("/desk/check", data={"csrf": csrf, "photo_source": "studio"}).json()
    assert receipt["problems"] == {
        "photo_receipt": "a studio photo needs the studio's receipt number (4-32 letters or digits)"
    }


# -- accepting, forms, signatures ------------------------------------------------------------


def _pdf_text(data: bytes, tmp_path: Path) -> str:
    (tmp_path / "f.pdf").write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(tmp_path / "f.pdf"), "-"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def test_accept_print_both_forms_and_record_both_signatures(
    desk_console: Console, tmp_path: Path
) -> None:
    person = PEOPLE[3]
    client = _clerk(desk_console)
    r = accept(client, form_of(person, ssn=person["ssn"][:-1] + "0"), good_photo())
    assert r.status_code == 400 and "申请未受理" in r.text and "check character" in r.text
    assert person["name"] in r.text, "the form comes back with what was typed"
    app_id = app_id_of(accept(client, form_of(person), good_photo()))
    page = client.get(f"/desk/app?id={app_id}").text
    assert '<span id="state">accepted</span>' in page and mask_id(person["ssn"]) in page
    assert person["ssn"] not in page
    assert "meets the card photo specification" in page
    photo = client.get(f"/desk/photo?id={app_id}")
    assert photo.headers["content-type"] == "image/jpeg" and photo.content == good_photo()
    issuing = client.get(f"/desk/form?id={app_id}&kind=issuing")
    assert issuing.headers["content-type"] == "application/pdf"
    text = _pdf_text(issuing.content, tmp_path)
    assert "社会保障卡发卡服务确认单" in text and person["name"] in text
    assert f"合作银行{person['bank_code']}" in text
    form = _pdf_text(client.get(f"/desk/form?id={app_id}&kind=application").content, tmp_path)
    assert "社会保障卡申领登记表" in form and person["ssn"] in form and "（未签字）" in form
    csrf = csrf_of(client, f"/desk/app?id={app_id}")
    for who in ("staff", "applicant"):
        r = client.post("/desk/confirm", data={"csrf": csrf, "id": str(app_id), "who": who})
        assert r.status_code == 303
    page = client.get(f"/desk/app?id={app_id}").text
    assert 'id="confirmed"' in page and "经办 staff: clerk1" in page
    form = _pdf_text(client.get(f"/desk/form?id={app_id}&kind=application").content, tmp_path)
    assert "经办人员确认：clerk1" in form and "申领人确认：已签字" in form
    out = run_cli("registry", "show", str(app_id), "--json", "--db", str(desk_console.db_path))
    assert '"service_point": "SP01"' in out and '"staff_confirmed": "clerk1"' in out
    # a second application for the same person is refused while this one is open
    again = accept(client, form_of(person), good_photo())
    assert (
        again.status_code == 400
        and f"has an open application in the registry (id {app_id})" in again.text
    )


def test_a_photo_is_shown_with_the_rule_it_fails(desk_console: Console) -> None:
    client = _clerk(desk_console)
    csrf = csrf_of(client, "/desk/accept")
    files = {"photo": ("small.jpg", small_photo(), "image/jpeg")}
    got = client.post("/desk/photo-check", data={"csrf": csrf}, files=files).json()
    assert got["problem"].startswith("pixel size") and got["ref"] == ""
    kept = Path(desk_console.db_path).parent / "desk-photos"
    assert hashlib.sha256(small_photo()).hexdigest() + ".jpg" not in os.listdir(kept)
    r = accept(client, form_of(PEOPLE[4]), small_photo())
    assert r.status_code == 400
    assert f'id="problem-photo">{got["problem"]}' in html.unescape(r.text)
    assert 'src="data:image/jpeg;base64,' in r.text, "the photo is shown beside its rule"
    # the good photo, chosen before and kept by its reference, is accepted without a new upload
    good = client.post("/desk/photo-check", data={"csrf": csrf},
                       files={"photo": ("p.jpg", good_photo(7), "image/jpeg")}).json()  # fmt: skip
    assert good["problem"] == "" and re.fullmatch(r"[0-9a-f]{64}", good["ref"])
    assert stat.S_IMODE(os.stat(kept / f"{good['ref']}.jpg").st_mode) == 0o600
    data = dict(form_of(PEOPLE[4]), csrf=csrf, photo_ref=good["ref"])
    assert client.post("/desk/accept", data=data).status_code == 303


def test_the_photo_routes_admit_256_kib_and_the_others_64(desk_console: Console) -> None:
    client = _clerk(desk_console)
    csrf = csrf_of(client, "/desk/accept")
    big = good_photo() + b"\x00" * (150 * 1024)  # over the photo rule's 100 KiB
    got = client.post("/desk/photo-check", data={"csrf": csrf},
                      files={"photo": ("big.jpg", big, "image/jpeg")})  # fmt: skip
    assert got.status_code == 200
    assert "over the 102,400-byte limit for a photo" in got.json()["problem"]
    huge = b"\xff" * (desk.UPLOAD_LIMIT + 1)
    r = client.post("/desk/photo-check", data={"csrf": csrf},
                    files={"photo": ("huge.jpg", huge, "image/jpeg")})  # fmt: skip
    assert r.status_code == 413
    r = client.post("/desk/check", data={"csrf": csrf, "name": "x" * (70 * 1024)})
    assert r.status_code == 413


# -- one service point's clerk on another's applicant ------------------------------------------


def test_a_clerk_is_refused_on_another_service_points_applicant(desk_console: Console) -> None:
    person = PEOPLE[5]
    app_id = _accepted(desk_console, person)  # at SP01
    other = _clerk(desk_console, CLERK2)  # SP02
    csrf = csrf_of(other, "/desk")
    refusals = [
        other.post("/desk/lookup", data={"csrf": csrf, "ssn": person["ssn"]}),
        other.get(f"/desk/app?id={app_id}"),
        other.get(f"/desk/photo?id={app_id}"),
        other.get(f"/desk/form?id={app_id}&kind=application"),
        other.post("/desk/confirm", data={"csrf": csrf, "id": str(app_id), "who": "applicant"}),
    ]
    for r in refusals:
        assert r.status_code == 403 and "another service point" in r.text, r.request.url
        assert person["name"] not in r.text and mask_id(person["ssn"]) not in r.text
    assert "（未签字）" in _clerk(desk_console).get(f"/desk/app?id={app_id}").text
    assert str(app_id) not in re.sub(r"<[^>]+>", "", other.get("/desk").text).split("Recent")[-1]
    with Database(desk_console.db_path) as db:
        rows = db.execute(
            "SELECT action, target FROM web_audit WHERE user_name = ? AND outcome = ?",
            (CLERK2, "refused: another service point"),
        )
    assert len(rows) == len(refusals)
    assert all(person["ssn"] not in str(t) for _a, t in rows)
    # the clerk's own point finds the applicant
    mine = _clerk(desk_console)
    r = mine.post("/desk/lookup", data={"csrf": csrf_of(mine, "/desk"), "ssn": person["ssn"]})
    assert r.status_code == 200 and f'href="/desk/app?id={app_id}"' in r.text
    # that application is rejected; the person applies again at the other point: each clerk
    # finds only their own point's application
    with Database(desk_console.db_path) as db:
        applications.reject(db, app_id, "photo: not the applicant", actor="test")
    new_id = _accepted(desk_console, person, CLERK2)
    for client, shown, hidden in ((mine, app_id, new_id), (other, new_id, app_id)):
        r = client.post("/desk/lookup", data={"csrf": csrf_of(client, "/desk"),
                                              "ssn": person["ssn"]})  # fmt: skip
        found = r.text.split('id="found"')[1].split("</table>")[0]
        assert f'?id={shown}"' in found and f'?id={hidden}"' not in found


# -- lookup, collection, loss ------------------------------------------------------------------


def test_lookup_collection_by_an_agent_loss_restore_and_reissue(
    desk_console: Console, tmp_path: Path
) -> None:
    people = PEOPLE[6:8]
    client = _clerk(desk_console)
    ids = [_accepted(desk_console, p) for p in people]
    csrf = csrf_of(client, "/desk")
    looked = client.post("/desk/lookup", data={"csrf": csrf, "ssn": people[0]["ssn"]}).text
    assert "已受理" in looked  # the counter's word for the state, beside the registry's
    mistyped = client.post("/desk/lookup", data={"csrf": csrf, "ssn": STANDARD_ID[:-1] + "3"})
    assert "ssn: check character does not match (ISO 7064 MOD 11-2)" in mistyped.text
    due = deadline(Calendar(), datetime.date.today(), "sporadic", datetime.date.today())
    assert f"{due.deadline.isoformat()} (剩余 5 工作日" in looked  # 5 working days, sporadic
    for app_id in ids:
        for who in ("staff", "applicant"):
            client.post("/desk/confirm", data={"csrf": csrf, "id": str(app_id), "who": who})
    with Database(desk_console.db_path) as db:  # other tests' applications: out of the way
        db.execute("UPDATE reg_applications SET state = 'cancelled' WHERE id NOT IN (?, ?)",
                   tuple(ids))  # fmt: skip
    rows = to_ready(str(desk_console.db_path), people, tmp_path)
    card = {r["ssn"]: r["card_no"] for r in rows}[people[0]["ssn"]]
    page = client.get(f"/desk/app?id={ids[0]}").text
    assert lifecycle.READY in page and 'id="collect"' in page
    # the cards travel in a box: collected only once the service point received it
    db = ["--db", str(desk_console.db_path)]
    out = run_cli("registry", "box", "pack", "--service-point", "SP01", "--manifest",
                  str(tmp_path / "box.csv"), *db)  # fmt: skip
    box = re.search(r"box (\S+): 2 card\(s\)", out).group(1)  # type: ignore[union-attr]
    home = client.get("/desk").text
    assert f'id="receive-{box}"' in home and card in home.split('id="waiting"')[1]
    r = client.post("/desk/collect", data={"csrf": csrf, "card_no": card})
    assert r.status_code == 400 and "not yet received" in r.text
    other = _clerk(desk_console, CLERK2)
    r = other.post("/desk/box-receive", data={"csrf": csrf_of(other, "/desk"), "box_no": box})
    assert r.status_code == 403 and "another service point" in r.text
    r = client.post("/desk/box-receive", data={"csrf": csrf, "box_no": box})
    assert r.status_code == 303 and f'id="receive-{box}"' not in client.get("/desk").text
    assert f"received {datetime.date.today():%Y%m%d} by clerk1" in run_cli(
        "registry", "box", "list", *db)  # fmt: skip
    agent = STANDARD_ID
    r = client.post("/desk/collect", data={"csrf": csrf, "card_no": card, "agent_id": agent})
    assert r.status_code == 400 and "agent's name" in html.unescape(r.text)
    r = client.post("/desk/collect", data={"csrf": csrf, "card_no": card, "agent_id": agent,
                                           "to": "李四"})  # fmt: skip
    assert r.status_code == 303
    page = client.get(f"/desk/app?id={ids[0]}").text
    assert '<span id="state">issued</span>' in page and f"agent {mask_id(agent)}" in page
    assert agent not in page
    for action, state in (("suspend", "suspended"), ("restore", "issued"),
                          ("suspend", "suspended")):  # fmt: skip
        r = client.post(f"/desk/{action}", data={"csrf": csrf, "card_no": card})
        assert r.status_code == 303, r.text
        assert f'<span id="state">{state}</span>' in client.get(f"/desk/app?id={ids[0]}").text
    r = client.post("/desk/reissue", data={"csrf": csrf, "card_no": card})
    new_id = app_id_of(r)
    page = client.get(f"/desk/app?id={new_id}").text
    assert '<span id="state">accepted</span>' in page and card in page and "（未签字）" in page
    out = run_cli("registry", "show", str(new_id), "--json", "--db", str(desk_console.db_path))
    assert f'"replaces": "{card}"' in out and '"service_point": "SP01"' in out
    # the other point's clerk may not touch this card
    r = other.post("/desk/restore", data={"csrf": csrf_of(other, "/desk"), "card_no": card})
    assert r.status_code == 403
    log = desk_console.log()
    assert all(p["ssn"] not in log for p in people) and agent not in log
    # every action is in the audit log, by the clerk, with no identity number
    with Database(desk_console.db_path) as audit_db:
        done = {str(a) for (a,) in audit_db.execute(
            "SELECT action FROM web_audit WHERE user_name = 'clerk1'")}  # fmt: skip
        targets = [str(t) for (t,) in audit_db.execute("SELECT target FROM web_audit")]
    assert {"view", "lookup", "accept", "confirm", "box-receive", "collect", "suspend",
            "restore", "reissue"} <= done  # fmt: skip
    assert not [t for t in targets for p in PEOPLE if p["ssn"] in t or mask_id(p["ssn"]) in t]


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_desk_on_postgresql(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Several offices on one PostgreSQL database: the photos in CARDPERSO_PHOTOS, a clerk at
    each point, each refused on the other's applicant."""
    run_cli("db", "upgrade", "--db", pg_url)
    make_desk(pg_url)  # type: ignore[arg-type]
    monkeypatch.setenv(desk.PHOTOS_ENV, str(tmp_path / "photos"))
    c = start_console(pg_url, tmp_path / "serve.log")
    try:
        person = PEOPLE[9]
        app_id = _accepted(c, person)
        assert (tmp_path / "photos").is_dir() and list((tmp_path / "photos").glob("*.jpg"))
        assert oct(os.stat(tmp_path / "photos").st_mode & 0o777) == "0o700"
        page = _clerk(c).get(f"/desk/app?id={app_id}").text
        assert '<span id="state">accepted</span>' in page
        other = _clerk(c, CLERK2)
        r = other.post("/desk/lookup", data={"csrf": csrf_of(other, "/desk"), "ssn": person["ssn"]})
        assert r.status_code == 403
        assert PASSWORDS["clerk1"] not in c.log()
    finally:
        c.stop()
