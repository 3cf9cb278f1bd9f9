"""Issue 15, photo quality at data preparation: every photo of a batch meets the card photo
specification (358x441 px, 24-bit colour, JPEG, 9-40 KiB; ``cardperso.codec.photo``) or its
record is rejected with field ``photo`` and the rule that failed; a profile with
``photo_spec: none`` asks only a whole JPEG. The synthetic photos meet the specification. A
JSON Lines record that gives a key twice is rejected. The prep runs go through the CLI under a
memory limit (test_integrity_input.cli)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from cardperso.codec.photo import check_photo
from cardperso.errors import ProfileError
from cardperso.prep.synth import COLUMNS, make_batch, make_photo
from cardperso.prep.validate import PHOTO_MAX_BYTES
from cardperso.profiles.loader import load_profile
from test_integrity_input import (
    ROOT,
    SAMPLE_KEYS,
    assert_every_line_accounted,
    batch_lines,
    cli,
    prep_cli,
    rejects_of,
    totals,
)


def _jpeg(w: int, h: int, mode: str = "RGB", quality: int = 70, noise: float = 0.0) -> bytes:
    img = Image.new(mode, (w, h), 200 if mode == "L" else (200, 210, 220))
    if noise:
        rnd = Image.frombytes("L", (w, h), random.Random(1).randbytes(w * h)).convert(mode)
        img = Image.blend(img, rnd, noise)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def _png(w: int, h: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), (200, 210, 220)).save(out, "PNG")
    return out.getvalue()


def _batch_with_photos(tmp: Path, photos: dict[int, bytes], count: int) -> None:
    """A valid CSV batch of ``count`` records (photos from the synthetic pool) whose record
    ``i`` (0-based) uses the photo bytes ``photos[i]`` instead."""
    lines = batch_lines(tmp, count)
    col = COLUMNS.index("photo")
    for i, data in photos.items():
        (tmp / f"bad{i}.jpg").write_bytes(data)
        cells = lines[i + 1].decode().split(",")  # the synthetic records hold no commas
        cells[col] = f"bad{i}.jpg"
        lines[i + 1] = ",".join(cells).encode()
    (tmp / "batch.csv").write_bytes(b"\n".join(lines) + b"\n")


def test_the_synthetic_photos_meet_the_specification(tmp_path: Path) -> None:
    for seed in range(20):
        info = check_photo(make_photo(random.Random(seed)))
        assert (info.width, info.height, info.components) == (358, 441, 3)
    # a batch makes its pool of photos once: 1000 records share 64 photo files
    got = make_batch(tmp_path / "b.csv", 1000)
    files = sorted((tmp_path / "photos").iterdir())
    assert got["photos"] == len(files) == 64
    assert len({f.read_bytes() for f in files}) == 64  # distinct photos
    for f in files:
        check_photo(f.read_bytes())


def test_photos_off_the_specification_are_rejected_with_the_rule(tmp_path: Path) -> None:
    grey_huge = _jpeg(4000, 5000, "L")
    assert len(grey_huge) <= PHOTO_MAX_BYTES  # read, then judged by its pixel size
    big = _jpeg(358, 441, quality=85, noise=0.25)
    assert 50 * 1024 <= len(big) <= 70 * 1024  # about 60 KiB
    bad = {
        1: _jpeg(1, 1),
        2: grey_huge,
        3: _jpeg(4000, 5000),  # in colour: over the reader's size limit, never read
        4: _jpeg(358, 441, "L", noise=0.3),
        5: _png(358, 441),  # a PNG named .jpg
        6: big,
        7: make_photo(random.Random(9))[:-2],  # no EOI: cut short
    }
    _batch_with_photos(tmp_path, bad, 9)
    res = prep_cli(tmp_path)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert totals(res.stdout) == "prep: read 9, prepared 2, rejected 7"
    rej = [(r["line"], r["field"], r["reason"]) for r in rejects_of(tmp_path / "rejects.csv")]
    assert rej == [
        ("3", "photo", "pixel size: is 1x1 px, the specification asks 358x441"),
        ("4", "photo", "pixel size: is 4000x5000 px, the specification asks 358x441"),
        (
            "5",
            "photo",
            f"is {len(bad[3]):,} bytes, over the 102,400-byte limit for a photo "
            "(the specification's photo is a 358 x 441 JPEG of 14-40 KB)",
        ),
        ("6", "photo", "colour: is grayscale, the specification asks 24-bit colour (RGB)"),
        ("7", "photo", "format: is a PNG image, not a JPEG"),
        ("8", "photo", f"file size: is {len(big):,} bytes, the specification asks 9-40 KiB"),
        ("9", "photo", "format: the JPEG is truncated (no EOI marker)"),
    ]
    assert_every_line_accounted(
        tmp_path / "batch.csv", tmp_path / "rejects.csv", tmp_path / "out.cppf", header=True
    )


def test_a_profile_without_the_specification_accepts_any_whole_jpeg(tmp_path: Path) -> None:
    text = (ROOT / "profiles" / "ssc3-pboc.yaml").read_text(encoding="utf-8")
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "ssc3-pboc.yaml").write_text(text + "photo_spec: none\n", "utf-8")
    _batch_with_photos(tmp_path, {0: _jpeg(1, 1), 1: _png(358, 441)}, 3)
    args = ["-k", SAMPLE_KEYS, "-o", tmp_path / "out.cppf", "-r", tmp_path / "rejects.csv"]
    args += ["--created", "2026-01-15T00:00:00Z"]
    res = cli(
        "prep", "batch.csv", "-p", tmp_path / "profile" / "ssc3-pboc.yaml", *args, cwd=tmp_path
    )
    assert res.returncode == 1, res.stderr
    assert totals(res.stdout) == "prep: read 3, prepared 2, rejected 1"  # the 1x1 JPEG passes
    rej = [(r["line"], r["field"], r["reason"]) for r in rejects_of(tmp_path / "rejects.csv")]
    assert rej == [("3", "photo", "format: is a PNG image, not a JPEG")]
    # the shipped profile (photo_spec absent: card) rejects the same 1x1 photo
    res = cli("prep", "batch.csv", "-p", "ssc3-pboc", *args, cwd=tmp_path)
    assert totals(res.stdout) == "prep: read 3, prepared 1, rejected 2"


def test_a_jsonl_key_given_twice_rejects_the_record(tmp_path: Path) -> None:
    """``{"ssn": A, "ssn": B}``: which one is meant? The record is rejected naming the key,
    never either value; the other records are prepared."""
    lines = batch_lines(tmp_path, 3, "jsonl")
    first = json.loads(lines[0])
    other = "11010519491231002X"
    twice = lines[1].decode()[:-1] + f', "ssn": "{other}"}}'
    name_twice = lines[2].decode()[:-1] + ', "name": "王五"}'
    (tmp_path / "batch.jsonl").write_text(
        "\n".join([lines[0].decode(), twice, name_twice]) + "\n", "utf-8"
    )
    res = prep_cli(tmp_path, "batch.jsonl")
    assert res.returncode == 1, res.stderr
    assert totals(res.stdout) == "prep: read 3, prepared 1, rejected 2"
    rej = rejects_of(tmp_path / "rejects.csv")
    assert [(r["line"], r["field"], r["reason"]) for r in rej] == [
        ("2", "ssn", "key given twice"),
        ("3", "name", "key given twice"),
    ]
    shown = (tmp_path / "rejects.csv").read_text("utf-8") + res.stdout + res.stderr
    ssn2 = json.loads(lines[1])["ssn"]
    assert other not in shown and ssn2 not in shown and "王五" not in shown
    assert first["ssn"] not in shown
    assert_every_line_accounted(
        tmp_path / "batch.jsonl", tmp_path / "rejects.csv", tmp_path / "out.cppf", header=False
    )


def test_an_unknown_photo_spec_is_a_profile_error(tmp_path: Path) -> None:
    text = (ROOT / "profiles" / "ssc3-pboc.yaml").read_text(encoding="utf-8")
    path = tmp_path / "ssc3-pboc.yaml"
    path.write_text(text + "photo_spec: passport\n", "utf-8")
    with pytest.raises(
        ProfileError, match=r"field 'photo_spec': 'passport' is not one of card, none"
    ):
        load_profile(path)
    path.write_text(text + "photo_spec: none\n", "utf-8")
    assert load_profile(path).photo_spec == "none"
    assert load_profile("ssc3-pboc").photo_spec == "card"
