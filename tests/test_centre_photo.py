# ruff: noqa: F811 - pytest fixtures imported from test_registry are parameters here
"""Issue 15, photo quality: the card photo specification (358x441 px, 24-bit colour, JPEG,
9-40 KiB) checked on the bytes, the rule that failed named; at registry import and audit
(SQLite and PostgreSQL); hostile photos under a memory limit."""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cardperso.codec.photo import check_photo, frame
from cardperso.errors import DataError
from test_integrity_registry import _applications, _limited
from test_registry import (  # the registry tests' fixtures and helpers
    APP_COLUMNS,
    db_url,  # noqa: F401 - fixture
    pg_url,  # noqa: F401 - fixture
    run_cli,
    spec_photo,
)


def _jpeg(w: int, h: int, mode: str = "RGB", quality: int = 70, noise: float = 0.0) -> bytes:
    img = Image.new(mode, (w, h), 200 if mode == "L" else (200, 210, 220))
    if noise:
        rnd = Image.frombytes("L", (w, h), random.Random(1).randbytes(w * h)).convert(mode)
        img = Image.blend(img, rnd, noise)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_a_photo_that_meets_the_specification() -> None:
    info = check_photo(spec_photo(random.Random(3)))
    assert (info.width, info.height, info.components, info.precision) == (358, 441, 3, 8)
    assert 9 * 1024 <= info.size <= 40 * 1024


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_jpeg(1, 1), "pixel size: is 1x1 px, the specification asks 358x441"),
        (_jpeg(4000, 5000), "pixel size: is 4000x5000 px, the specification asks 358x441"),
        (_jpeg(441, 358), "pixel size: is 441x358 px, the specification asks 358x441"),
        (_jpeg(358, 441, "L", noise=0.3), "colour: is grayscale, the specification asks 24-bit"),
        (_jpeg(358, 441, "CMYK", noise=0.3), "colour: is CMYK, the specification asks 24-bit"),
        (_jpeg(358, 441), "file size: is "),  # a flat image: far under 9 KiB
        (_jpeg(358, 441, quality=95, noise=0.5), "file size: is "),  # over 40 KiB
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "format: is a PNG image, not a JPEG"),
        (b"GIF89a" + b"\x00" * 64, "format: is a GIF image, not a JPEG"),
        (b"hello", "format: is not an image this check knows, not a JPEG"),
        (spec_photo(random.Random(1))[:100], "format: the JPEG is damaged"),  # cut before its frame
    ],
)
def test_a_photo_is_refused_with_the_rule_that_failed(data: bytes, reason: str) -> None:
    with pytest.raises(DataError, match="^field 'photo': " + reason.replace("(", r"\(")) as exc:
        check_photo(data)
    assert exc.value.field == "photo"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    try:
        frame(b"\xff\xd8" + data)
    except DataError as exc:
        assert exc.field == "photo" and exc.reason.startswith("format: ")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_jpeg_never_crashes_the_check(data: st.DataObject) -> None:
    good = bytearray(spec_photo(random.Random(0))[:2000])
    for _ in range(data.draw(st.integers(1, 8))):
        good[data.draw(st.integers(0, len(good) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(good)))
    try:
        check_photo(bytes(good[:cut]))
    except DataError as exc:
        assert exc.field == "photo"


def _apps_with_photos(directory: Path, photos: list[bytes]) -> list[dict[str, str]]:
    recs = _applications(directory, len(photos))
    with (directory / "apps.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(APP_COLUMNS)
        for i, (r, data) in enumerate(zip(recs, photos, strict=True)):
            (directory / "photos" / f"q{i}.jpg").write_bytes(data)
            w.writerow([dict(r, photo=f"photos/q{i}.jpg")[c] for c in APP_COLUMNS])
    return recs


def test_registry_import_and_audit_apply_the_specification(db_url: str, tmp_path: Path) -> None:
    photos = [
        spec_photo(random.Random(5)),
        _jpeg(1, 1),
        _jpeg(4000, 5000),
        spec_photo(random.Random(6)),
    ]
    _apps_with_photos(tmp_path, photos)
    db = ["--db", db_url]
    run_cli("db", "upgrade", *db)
    out = run_cli("registry", "import", str(tmp_path / "apps.csv"), *db, code=1)
    assert "read 4, accepted 2, rejected 2" in out
    assert "line 3: photo: pixel size: is 1x1 px, the specification asks 358x441" in out
    # the 4000x5000 photo is over the size limit of the safe photo reader before anything else
    assert "line 4: photo: is " in out and "over the 102,400-byte limit" in out
    # the photo of application 2 (line 5) is replaced by a grayscale one before the audit
    (tmp_path / "photos" / "q3.jpg").write_bytes(_jpeg(358, 441, "L", noise=0.3))
    out = run_cli("registry", "audit", *db)
    assert "application 2" in out and "rejected: photo: colour: is grayscale" in out
    assert "audited 1, rejected 1" in out


def test_the_specification_can_be_left_out(db_url: str, tmp_path: Path) -> None:
    _apps_with_photos(tmp_path, [_jpeg(1, 1)])
    db = ["--db", db_url]
    run_cli("db", "upgrade", *db)
    out = run_cli("registry", "import", str(tmp_path / "apps.csv"), "--no-photo-spec", *db)
    assert "accepted 1" in out
    assert "audited 1" in run_cli("registry", "audit", "--no-photo-spec", *db)


def test_a_huge_or_endless_photo_is_one_line_under_a_memory_limit(tmp_path: Path) -> None:
    _apps_with_photos(tmp_path, [spec_photo(random.Random(1)), spec_photo(random.Random(2))])
    huge = tmp_path / "photos" / "q0.jpg"
    with huge.open("r+b") as fh:  # a sparse 4 GiB "photo"
        fh.truncate(4 * 1024**3)
    (tmp_path / "photos" / "q1.jpg").unlink()
    os.symlink("/dev/zero", tmp_path / "photos" / "q1.jpg")
    run_cli("db", "upgrade", "--db", str(tmp_path / "r.db"))
    got = _limited(tmp_path, "registry", "import", "apps.csv")
    assert got.returncode == 1, got.stderr
    assert "Traceback" not in got.stderr + got.stdout
    assert "line 2: photo: is 4,294,967,296 bytes, over the 102,400-byte limit" in got.stderr
    assert "line 3: photo: " in got.stderr
