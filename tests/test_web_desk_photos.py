"""Where the desk keeps photos, and that they do not pile up: `web serve --photos DIR` (refused
unless it is a private directory), a photo uploaded for a form that is abandoned removed after
`--photo-ttl`, one of an accepted application kept; against a real `web serve` process and
its SQLite database."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from cardperso.storage.db import Database
from cardperso.web import photos
from fixtures_desk import PEOPLE, accept, app_id_of, form_of, good_photo, make_desk
from fixtures_web import csrf_of, login_client, start_console
from test_registry import db_url, pg_url  # noqa: F401 - fixtures


def _serve(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardperso", "web", "serve", "--db", str(db), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_photos_must_be_a_private_directory(tmp_path: Path) -> None:
    make_desk(tmp_path / "desk.db")
    missing = _serve(tmp_path / "desk.db", "--photos", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "--photos" in missing.stderr and "no such directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    r = _serve(tmp_path / "desk.db", "--photos", str(shared))
    assert r.returncode == 2 and "mode 0755 lets others in" in r.stderr, r.stderr
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = _serve(tmp_path / "desk.db", "--photos", str(afile))
    assert r.returncode == 2 and "not a directory" in r.stderr


def test_an_abandoned_upload_is_removed_and_an_accepted_one_kept(tmp_path: Path) -> None:
    make_desk(tmp_path / "desk.db")
    kept = tmp_path / "photos"
    kept.mkdir(mode=0o700)
    c = start_console(tmp_path / "desk.db", tmp_path / "serve.log", "--photos", str(kept),
                      "--photo-ttl", "2")  # fmt: skip
    try:
        clerk = login_client(c, "clerk1")
        csrf = csrf_of(clerk, "/desk/accept")
        # a photo checked for a form that is then abandoned (the applicant walked away)
        left = clerk.post("/desk/photo-check", data={"csrf": csrf},
                          files={"photo": ("p.jpg", good_photo(21), "image/jpeg")}).json()  # fmt: skip
        assert left["problem"] == "" and (kept / f"{left['ref']}.jpg").is_file()
        assert not (tmp_path / "desk-photos").exists(), "--photos, not beside the database"
        # another applicant's application, accepted with its photo
        photo = good_photo(22)
        app_id = app_id_of(accept(clerk, form_of(PEOPLE[1]), photo))
        mine = kept / f"{hashlib.sha256(photo).hexdigest()}.jpg"
        assert mine.is_file()
        time.sleep(2.5)
        assert clerk.get("/desk").status_code == 200  # any desk request sweeps
        assert not (kept / f"{left['ref']}.jpg").exists(), "the abandoned upload is removed"
        assert mine.is_file(), "the accepted application's photo stays"
        assert clerk.get(f"/desk/photo?id={app_id}").content == photo
        with Database(tmp_path / "desk.db") as db:
            assert db.execute("SELECT COUNT(*) FROM web_pending_photos")[0][0] == 0
            (source,) = db.execute("SELECT source FROM reg_applications WHERE id = ?", (app_id,))[0]
        assert source == "desk SP01 user=clerk1:1"
        # a form sent back with a mistake keeps its photo by reference while it is in use
        again = clerk.post("/desk/photo-check", data={"csrf": csrf},
                           files={"photo": ("p.jpg", good_photo(23), "image/jpeg")}).json()  # fmt: skip
        for _ in range(6):  # a use every 0.5 s: 1.5 s to spare for a slow request under load
            time.sleep(0.5)
            bad = dict(form_of(PEOPLE[2]), csrf=csrf, photo_ref=again["ref"], phone="1")
            assert clerk.post("/desk/accept", data=bad).status_code == 400
        assert (kept / f"{again['ref']}.jpg").is_file(), "in use for 3 s: not swept at 2"
    finally:
        c.stop()
    # an upload pending when the console stopped is removed when it starts again
    assert (kept / f"{again['ref']}.jpg").is_file()
    time.sleep(2.5)
    c = start_console(tmp_path / "desk.db", tmp_path / "serve2.log", "--photos", str(kept),
                      "--photo-ttl", "2")  # fmt: skip
    try:
        assert not (kept / f"{again['ref']}.jpg").exists()
        assert sorted(os.listdir(kept)) == [mine.name]
    finally:
        c.stop()


def test_the_sweep_spares_a_photo_an_application_names(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A pending photo that is also an accepted application's (the same file uploaded again
    for another form, which is then abandoned) is forgotten as pending but not removed; on
    SQLite and on PostgreSQL (the upsert and DELETE ... RETURNING of both)."""
    make_desk(db_url)  # type: ignore[arg-type]
    folder = tmp_path / "p"
    folder.mkdir(mode=0o700)
    with Database(db_url) as db:
        ref, path, fresh = photos.keep(db, folder, good_photo(31))
        assert fresh and path.name == f"{ref}.jpg" and oct(path.stat().st_mode & 0o777) == "0o600"
        db.execute(
            "INSERT INTO reg_applications (ssn, name, gender, nation, birth_date, birth_place, "
            "region, photo, application_type, accepted_date, state, state_at, source, "
            "created_at) VALUES ('x', 'x', '1', '01', '19800101', '110105', '110105', ?, "
            "'sporadic', '20261204', 'accepted', 0, 'test', 0)",
            (str(path),),
        )
        _other, other_path, _ = photos.keep(db, folder, good_photo(32))
        photos.keep(db, folder, good_photo(32))  # chosen again: still one pending row
        assert db.execute("SELECT COUNT(*) FROM web_pending_photos")[0][0] == 2
        assert photos.sweep(db, ttl=60) == 0, "nothing is old yet"
        assert photos.sweep(db, ttl=60, now=time.time() + 61) == 1
        assert path.is_file() and not other_path.exists()
        assert db.execute("SELECT COUNT(*) FROM web_pending_photos")[0][0] == 0
