"""Issue 11, the input side of batch preparation: every physical line of the input is in exactly
one record, prepared or rejected (stray quotes, multi-line fields, CR/LF mixes, NULs, huge and
deeply nested lines); photos are read safely; header errors never show personal data.

Hostile inputs run through the real command line in a subprocess under an address-space limit
(``resource.setrlimit(RLIMIT_AS)``), so a regression fails the test instead of taking the
machine down; the outcome is the exit code and the one-line message or the rejects file."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.errors import DataError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.container import iter_sealed
from cardperso.prep.input import MAX_LINE_BYTES, open_input
from cardperso.prep.pipeline import PrepOptions, prepare, validate_only
from cardperso.prep.synth import COLUMNS, make_batch
from cardperso.prep.validate import PHOTO_MAX_BYTES, check_jpeg, read_photo, read_photos
from cardperso.profiles.loader import load_profile

PROFILE = load_profile("ssc3-pboc")
ROOT = Path(__file__).resolve().parents[1]
SAMPLE_KEYS = ROOT / "keys-sample" / "keys.json"
MEMORY_LIMIT = 1 << 30  # 1 GiB of address space for the hostile-input runs

_RUN = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from cardperso.cli.main import main
sys.argv = ["cardperso", *sys.argv[1:]]
main()
"""


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``cardperso ARGS`` in a subprocess limited to :data:`MEMORY_LIMIT` of address space (the
    timeout only stops a hang, e.g. on a FIFO; no verdict depends on time)."""
    env = {k: v for k, v in os.environ.items() if k != "CARDPERSO_DEBUG"}
    return subprocess.run(
        [sys.executable, "-c", _RUN.format(limit=MEMORY_LIMIT), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def prep_cli(tmp: Path, name: str = "batch.csv") -> subprocess.CompletedProcess[str]:
    return cli(
        "prep",
        tmp / name,
        "-p",
        "ssc3-pboc",
        "-k",
        SAMPLE_KEYS,
        "-o",
        tmp / "out.cppf",
        "-r",
        tmp / "rejects.csv",
        "--created",
        "2026-01-15T00:00:00Z",
        cwd=tmp,
    )


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line of a failed command (no traceback)."""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def batch_lines(tmp: Path, count: int, fmt: str = "csv") -> list[bytes]:
    """A valid synthetic batch (with its photos) as lines without line ends; CSV: header first."""
    path = tmp / f"good.{fmt}"
    make_batch(path, count, photos=4)
    return path.read_bytes().split(b"\n")[:-1]


def rejects_of(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def assert_every_line_accounted(src: Path, rejects: Path, perso: Path, header: bool) -> None:
    """Every physical non-blank line (LF-separated; the CSV header excluded) lies in exactly one
    record: a rejected range of the rejects file or a prepared record of the perso file; and
    every record starts on a non-blank line."""
    lines = src.read_bytes().split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    nonblank = {i + 1 for i, x in enumerate(lines) if x.strip(b" \t\r")} - (
        {1} if header else set()
    )
    seen: Counter[int] = Counter()
    starts = []
    for r in rejects_of(rejects):
        first, last = int(r["line"]), int(r["end_line"])
        assert first <= last
        starts.append(first)
        seen.update(range(first, last + 1))
    prepared = [line for line, _body in iter_sealed(perso)]
    starts += prepared
    seen.update(prepared)
    assert set(starts) <= nonblank, "a record starts on a blank line"
    missing = sorted(nonblank - set(seen))
    twice = sorted(k for k, n in seen.items() if n > 1)
    assert not missing and not twice, (missing[:10], twice[:10])


def totals(stdout: str) -> str:
    (line,) = [x for x in stdout.splitlines() if x.startswith("prep: read ")]
    return line.split(" (")[0]


# -- item 2: stray quotes, multi-line records --------------------------------------------------


def test_stray_quote_inside_a_field_rejects_that_record_only(tmp_path: Path) -> None:
    """魏"明涵 on line 12 of a 100-record file: that record is rejected, the 99 others are
    prepared (it used to swallow lines 12-26: "read 85, prepared 84, rejected 1")."""
    lines = batch_lines(tmp_path, 100)
    cells = lines[11].decode().split(",")
    cells[COLUMNS.index("name")] = '魏"明涵'
    lines[11] = ",".join(cells).encode()
    (tmp_path / "batch.csv").write_bytes(b"\n".join(lines) + b"\n")
    res = prep_cli(tmp_path)
    assert res.returncode == 1, res.stderr
    assert totals(res.stdout) == "prep: read 100, prepared 99, rejected 1"
    rej = rejects_of(tmp_path / "rejects.csv")
    assert [(r["line"], r["field"], r["reason"], r["end_line"]) for r in rej] == [
        ("12", "name", 'contains a double quote (")', "12")
    ]
    assert_every_line_accounted(
        tmp_path / "batch.csv", tmp_path / "rejects.csv", tmp_path / "out.cppf", header=True
    )


def test_unclosed_quote_rejects_its_line_and_the_next_lines_are_records(tmp_path: Path) -> None:
    """A field that opens a quote and never closes it (no other quote in the file): the line is
    rejected alone, with its reason; every following record is prepared."""
    lines = batch_lines(tmp_path, 100)
    cells = lines[11].decode().split(",")
    cells[COLUMNS.index("name")] = '"魏明涵'
    lines[11] = ",".join(cells).encode()
    (tmp_path / "batch.csv").write_bytes(b"\n".join(lines) + b"\n")
    res = prep_cli(tmp_path)
    assert totals(res.stdout) == "prep: read 100, prepared 99, rejected 1", res.stderr
    rej = rejects_of(tmp_path / "rejects.csv")
    assert [(r["line"], r["field"], r["reason"], r["end_line"]) for r in rej] == [
        (
            "12",
            "(row)",
            "a quoted field is never closed (not within 16 lines or 65,536 bytes)",
            "12",
        )
    ]


def test_quoted_line_break_is_one_rejected_record_with_its_range(tmp_path: Path) -> None:
    """A quoted field over lines 12-14 (a line inside it looks like a whole record): one
    rejected record naming lines 12-14, never a record made of the inner line."""
    lines = batch_lines(tmp_path, 20)
    cells = lines[11].decode().split(",")
    inner = lines[12]
    cells[COLUMNS.index("name")] = '"魏明涵\n' + inner.decode() + '\n"'
    lines[11] = ",".join(cells).encode()
    del lines[12]  # the inner line is now only inside the quoted field
    (tmp_path / "batch.csv").write_bytes(b"\n".join(lines) + b"\n")
    res = prep_cli(tmp_path)
    assert totals(res.stdout) == "prep: read 19, prepared 18, rejected 1", res.stderr
    (r,) = rejects_of(tmp_path / "rejects.csv")
    assert (r["line"], r["end_line"], r["field"]) == ("12", "14", "(row)")
    assert r["reason"] == (
        "record spans lines 12-14: a quoted field runs over a line end "
        "(fields cannot hold line breaks)"
    )
    assert_every_line_accounted(
        tmp_path / "batch.csv", tmp_path / "rejects.csv", tmp_path / "out.cppf", header=True
    )


def test_multiline_quoted_field_over_64k_loses_nothing(tmp_path: Path) -> None:
    """A quoted field of 80 lines of 1,000 bytes (over 64 KB) after line 10: every physical
    line is accounted for, and the good records after it are prepared."""
    lines = batch_lines(tmp_path, 30)
    cells = lines[9].decode().split(",")
    cells[COLUMNS.index("name")] = '"' + "\n".join(["x" * 1000] * 80) + '"'
    lines[9] = ",".join(cells).encode()
    path = tmp_path / "batch.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = prep_cli(tmp_path)
    assert res.returncode == 1, res.stderr
    assert totals(res.stdout) == "prep: read 109, prepared 29, rejected 80"
    rej = rejects_of(tmp_path / "rejects.csv")
    assert rej[0]["line"] == "10" and rej[0]["reason"].startswith("a quoted field is never closed")
    assert_every_line_accounted(path, tmp_path / "rejects.csv", tmp_path / "out.cppf", header=True)


# -- item 8: record size, nesting, line ends ---------------------------------------------------


def test_300_mb_line_is_one_reject_under_a_memory_limit(tmp_path: Path) -> None:
    """A 300 MB line between good records: one per-record reject found by scanning (the
    process has 1 GiB of address space; it used to take 2.2 GB)."""
    lines = batch_lines(tmp_path, 10)
    path = tmp_path / "batch.csv"
    with open(path, "wb") as fh:
        fh.write(b"\n".join(lines[:6]) + b"\n")
        block = b"9" * (1 << 20)
        for _ in range(300):
            fh.write(block)
        fh.write(b"\n" + b"\n".join(lines[6:]) + b"\n")
    res = prep_cli(tmp_path)
    assert res.returncode == 1, res.stderr
    assert totals(res.stdout) == "prep: read 11, prepared 10, rejected 1"
    (r,) = rejects_of(tmp_path / "rejects.csv")
    assert (r["line"], r["field"]) == ("7", "(row)")
    assert r["reason"] == "is 314,572,800 bytes long, over the limit of 65,536 bytes for one line"


def test_deeply_nested_jsonl_line_is_one_reject(tmp_path: Path) -> None:
    """A JSON Lines record nested 5,000 deep: that record is rejected (it used to stop the batch
    with a RecursionError); the others are prepared."""
    lines = batch_lines(tmp_path, 5, "jsonl")
    nested = b'{"ssn": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    (tmp_path / "batch.jsonl").write_bytes(b"\n".join([*lines[:2], nested, *lines[2:]]) + b"\n")
    res = prep_cli(tmp_path, "batch.jsonl")
    assert res.returncode == 1, res.stderr
    assert totals(res.stdout) == "prep: read 6, prepared 5, rejected 1"
    (r,) = rejects_of(tmp_path / "rejects.csv")
    assert (r["line"], r["field"], r["reason"]) == (
        "3",
        "(row)",
        "is nested too deeply (a record is one flat JSON object)",
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cr_only_line_ends_are_one_line_error(tmp_path: Path, fmt: str) -> None:
    """A file with CR-only line ends (classic Mac): exit 1 and one line naming the problem (it
    used to be a _csv.Error traceback); nothing is written."""
    lines = batch_lines(tmp_path, 3, fmt)
    (tmp_path / f"batch.{fmt}").write_bytes(b"\r".join(lines) + b"\r")
    res = prep_cli(tmp_path, f"batch.{fmt}")
    assert res.returncode == 1
    assert (
        "holds a carriage return (CR) that does not end a line: the file seems to use "
        "CR-only line ends; save it with LF or CR LF line ends" in one_error_line(res)
    )
    assert not (tmp_path / "out.cppf").exists() and not (tmp_path / "rejects.csv").exists()


def test_crlf_and_bare_cr_and_nul_inside_a_line(tmp_path: Path) -> None:
    """CR LF line ends are fine; a bare CR or a NUL inside a data line rejects that record."""
    lines = batch_lines(tmp_path, 6)
    lines[2] = lines[2].replace(b",", b"\r,", 1)
    lines[4] = lines[4].replace(b",", b",\x00", 1)
    (tmp_path / "in.csv").write_bytes(b"\r\n".join(lines) + b"\r\n")
    summary = validate_only(tmp_path / "in.csv", PROFILE, tmp_path / "rejects.csv")
    assert (summary.read, summary.prepared, summary.rejected) == (6, 4, 2)
    rej = [(r["line"], r["field"], r["reason"]) for r in rejects_of(tmp_path / "rejects.csv")]
    assert rej == [
        (
            "3",
            "(row)",
            "holds a carriage return (CR) that does not end the line (line ends must be LF or CR LF)",
        ),
        ("5", "(row)", "holds a NUL byte (byte 20 of the line)"),
    ]


# -- item 10: header errors never show personal data -------------------------------------------


def test_missing_header_row_does_not_show_the_identity_number(tmp_path: Path) -> None:
    """A CSV without its header row: one line naming the problem; neither the first record's
    identity number nor any other cell is in the message (it used to print the full number)."""
    lines = batch_lines(tmp_path, 3)
    (tmp_path / "batch.csv").write_bytes(b"\n".join(lines[1:]) + b"\n")
    res = prep_cli(tmp_path)
    assert res.returncode == 1
    message = one_error_line(res)
    assert message.startswith(
        "error: record 1, field 'header': line 1 is not a header row: none of its 21 cells "
        "names an input field"
    )
    for cell in lines[1].decode().split(","):
        if len(cell) > 2:
            assert cell not in message


def test_header_cells_are_quoted_only_when_they_look_like_field_names(tmp_path: Path) -> None:
    header = ",".join(COLUMNS)
    (tmp_path / "a.csv").write_text(header + ",110101199003077777\n", encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"column 22 \(a cell of 18 characters, not shown: it may "
        r"hold personal data\) is not an input field",
    ) as err:
        open_input(tmp_path / "a.csv")
    assert "1101011990" not in str(err.value)
    (tmp_path / "b.csv").write_text(header + ",张三\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"column 22 \(a cell of 2 characters") as err:
        open_input(tmp_path / "b.csv")
    assert "张" not in str(err.value)
    # the header run into the first record (its line end lost): the cell is not shown
    (tmp_path / "e.csv").write_text(header + "110101199003077777\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"column 21 \(a cell of 31 characters") as err:
        open_input(tmp_path / "e.csv")
    assert "1101011990" not in str(err.value)
    (tmp_path / "c.csv").write_text(header + ",shoe_size\n", encoding="utf-8")
    with pytest.raises(DataError, match="column 22 'shoe_size' is not an input field"):
        open_input(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_text(header + ",aac002\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"column 'ssn' appears twice \(columns 1 and 22\)"):
        open_input(tmp_path / "d.csv")


def test_jsonl_key_that_is_data_is_not_shown(tmp_path: Path) -> None:
    """An unknown JSON key that may be personal data is described in the rejects file, not
    copied into it; a name-like key is named."""
    lines = batch_lines(tmp_path, 2, "jsonl")
    rec = json.loads(lines[0])
    bad = dict(rec, **{"110101199003077777": "x"})
    typo = dict(json.loads(lines[1]), shoe_size="42")
    text = json.dumps(bad, ensure_ascii=False) + "\n" + json.dumps(typo, ensure_ascii=False) + "\n"
    (tmp_path / "in.jsonl").write_text(text, encoding="utf-8")
    validate_only(tmp_path / "in.jsonl", PROFILE, tmp_path / "rejects.csv")
    raw = (tmp_path / "rejects.csv").read_text(encoding="utf-8")
    assert "110101199003077777" not in raw
    rej = [(r["line"], r["field"], r["reason"]) for r in rejects_of(tmp_path / "rejects.csv")]
    assert rej == [
        (
            "1",
            "(row)",
            "has a key that is not an input field (18 characters, not shown: it may hold personal "
            "data)",
        ),
        ("2", "shoe_size", "unknown field"),
    ]


# -- item 7: photos ------------------------------------------------------------------------------


def test_photo_reading_refuses_special_and_huge_files(tmp_path: Path) -> None:
    """Only regular files up to the photo size limit are read: a device, a FIFO (no hang), a
    symbolic link to a device and a 1 GiB file are refused with their reason."""
    os.mkfifo(tmp_path / "fifo.jpg")
    with open(tmp_path / "huge.jpg", "wb") as fh:
        fh.truncate(1 << 30)  # sparse: 1 GiB long, nothing on disk
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    assert read_photo("/dev/zero") == "is a character device, not a regular file"
    assert read_photo(str(tmp_path / "zero.jpg")) == "is a character device, not a regular file"
    assert read_photo(str(tmp_path / "fifo.jpg")) == "is a FIFO (named pipe), not a regular file"
    assert read_photo(str(tmp_path / "huge.jpg")) == (
        "is 1,073,741,824 bytes, over the 102,400-byte limit for a photo "
        "(the specification's photo is a 358 x 441 JPEG of 14-40 KB)"
    )


def test_photo_size_limit_is_exact(tmp_path: Path) -> None:
    """A good JPEG padded to the limit is read (a whole JPEG: the format rule passes it, the
    card specification's file size rule does not); one byte more is refused unread."""
    make_batch(tmp_path / "b.csv", 1, photos=1)
    jpeg = (tmp_path / "photos" / "p0000.jpg").read_bytes()
    (tmp_path / "max.jpg").write_bytes(jpeg + bytes(PHOTO_MAX_BYTES - len(jpeg)))
    (tmp_path / "over.jpg").write_bytes(jpeg + bytes(PHOTO_MAX_BYTES + 1 - len(jpeg)))
    got = read_photo(str(tmp_path / "max.jpg"))
    assert isinstance(got, bytes) and len(got) == PHOTO_MAX_BYTES
    assert check_jpeg(got, None) == ""
    assert check_jpeg(got) == "file size: is 102,400 bytes, the specification asks 9-40 KiB"
    assert str(read_photo(str(tmp_path / "over.jpg"))).startswith(
        "is 102,401 bytes, over the 102,400"
    )


def test_photo_read_whole_whatever_fstat_says(tmp_path: Path) -> None:
    """A photo is read with one system call of its fstat size plus one byte; a file whose
    size fstat does not tell (procfs reports 0 for files with content) is still read whole,
    byte for byte, and an empty file is read as empty (the format rule refuses it)."""
    cmdline = Path("/proc/self/cmdline")
    assert os.stat(cmdline).st_size == 0
    got = read_photo(str(cmdline))
    assert isinstance(got, bytes) and got == cmdline.read_bytes() and got
    make_batch(tmp_path / "b.csv", 1, photos=1)
    jpeg = (tmp_path / "photos" / "p0000.jpg").read_bytes()
    assert read_photo(str(tmp_path / "photos" / "p0000.jpg")) == jpeg
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert read_photo(str(tmp_path / "empty.jpg")) == b""
    assert check_jpeg(b"", None).startswith("format")


def test_photos_read_ahead_in_batches_are_read_photo_one_by_one(tmp_path: Path) -> None:
    """read_photos (a chunk's new photos opened 64 at a time, the kernel asked to read them
    ahead, then read) gives what read_photo gives path by path, in order, over batch
    boundaries and with every kind of bad path among good ones; no descriptor stays open,
    also when the reader stops half-way through a batch."""
    make_batch(tmp_path / "b.csv", 1, photos=3)
    os.mkfifo(tmp_path / "fifo.jpg")
    with open(tmp_path / "huge.jpg", "wb") as fh:
        fh.truncate(1 << 30)
    (tmp_path / "empty.jpg").write_bytes(b"")
    kinds = [
        *(str(tmp_path / "photos" / f"p000{i}.jpg") for i in range(3)),
        str(tmp_path / "missing.jpg"),
        str(tmp_path / "fifo.jpg"),
        "/dev/zero",
        str(tmp_path / "photos"),
        str(tmp_path / "huge.jpg"),
        str(tmp_path / "empty.jpg"),
        "bad\x00path",
    ]
    paths = [kinds[(7 * i) % len(kinds)] for i in range(150)]  # 3 batches of up to 64
    fds = len(os.listdir("/proc/self/fd"))
    assert list(read_photos(paths)) == [read_photo(p) for p in paths]
    assert sum(isinstance(x, bytes) and len(x) > 100 for x in read_photos(paths)) == 45
    reader = read_photos(paths)
    for _ in range(70):  # into the second batch, then stop
        next(reader)
    reader.close()
    assert len(os.listdir("/proc/self/fd")) == fds


def test_photos_read_ahead_with_few_file_descriptors(tmp_path: Path) -> None:
    """A process allowed only a few more file descriptors than it holds (RLIMIT_NOFILE) still
    reads every photo of a chunk: the batch is read in smaller pieces, no photo is refused
    "Too many open files" for the descriptors the read-ahead itself holds. When not one is
    left, the photo's reason says so (the old one-by-one behaviour)."""
    make_batch(tmp_path / "b.csv", 1, photos=3)
    script = textwrap.dedent(
        f"""
        import os, resource
        from cardperso.prep.validate import read_photos
        paths = [{str(tmp_path / "photos")!r} + f"/p000{{i % 3}}.jpg" for i in range(150)]
        held = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (held + 5, resource.getrlimit(
            resource.RLIMIT_NOFILE)[1]))
        got = list(read_photos(paths))
        print(sum(isinstance(x, bytes) and len(x) > 100 for x in got), len(got))
        spare = []
        while True:  # take every descriptor left
            try:
                spare.append(os.open("/dev/null", os.O_RDONLY))
            except OSError:
                break
        print(list(read_photos(paths[:2])))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out[0] == "150 150"
    assert out[1] == str(["cannot be read (Too many open files)"] * 2)


def test_hostile_photo_paths_are_per_record_rejects(tmp_path: Path) -> None:
    """Photo paths /dev/zero, a FIFO and a 1 GiB file in a batch, under a 1 GiB memory limit:
    three records rejected with field photo, the others prepared (it used to read /dev/zero
    until the kernel killed the process, and to hang on the FIFO)."""
    os.mkfifo(tmp_path / "fifo.jpg")
    with open(tmp_path / "huge.jpg", "wb") as fh:
        fh.truncate(1 << 30)
    lines = batch_lines(tmp_path, 6)
    photo = COLUMNS.index("photo")
    for i, path in ((2, "/dev/zero"), (3, "fifo.jpg"), (5, "huge.jpg")):
        cells = lines[i].decode().split(",")
        cells[photo] = path
        lines[i] = ",".join(cells).encode()
    (tmp_path / "batch.csv").write_bytes(b"\n".join(lines) + b"\n")
    res = prep_cli(tmp_path)
    assert res.returncode == 1, res.stderr
    assert totals(res.stdout) == "prep: read 6, prepared 3, rejected 3"
    rej = [(r["line"], r["field"], r["reason"]) for r in rejects_of(tmp_path / "rejects.csv")]
    assert rej == [
        ("3", "photo", "is a character device, not a regular file"),
        ("4", "photo", "is a FIFO (named pipe), not a regular file"),
        ("6", "photo", read_photo(str(tmp_path / "huge.jpg"))),
    ]
    assert rej[2][2].startswith("is 1,073,741,824 bytes, over the 102,400-byte limit")


# -- the property: read = prepared + rejected over physical lines ------------------------------

_INSERTS = {
    "quote": b'"',
    "cr": b"\r",
    "lf": b"\n",
    "crlf": b"\r\n",
    "nul": b"\x00",
    "bad-utf8": b"\xff\xc3(",
    "blank": b"\n \t\n\r\n",
    "quoted-lf": b'"\n"',
    "comma-quote": b',"',
    "escaped-quote": b'""',
    "unicode-breaks": "\x85\u2028".encode(),
}
_MANGLE = st.tuples(
    st.sampled_from([*_INSERTS, "huge", "long", "delete", "dup"]),
    st.integers(min_value=0, max_value=1 << 20),
    st.integers(min_value=0, max_value=1 << 20),
)


def mangle(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    for kind, a, b in ops:
        at = a % (len(data) + 1)
        if kind in _INSERTS:
            data = data[:at] + _INSERTS[kind] + data[at:]
        elif kind == "huge":  # over the line limit
            data = data[:at] + b"x" * (MAX_LINE_BYTES + 1 + b % 3000) + data[at:]
        elif kind == "long":  # a long field, under or over the limit
            data = data[:at] + b"y" * (b % (MAX_LINE_BYTES + 3000)) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + b % 40 :]
        else:  # duplicate the line at *at*
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            end = len(data) if end < 0 else end + 1
            data = data[:end] + data[start:end] + data[end:]
    return data


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mangled")
    make_batch(d / "good.csv", 6, photos=2, errors=2)
    make_batch(d / "good.jsonl", 6, photos=2, errors=2)
    return d


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fmt=st.sampled_from(["csv", "jsonl"]),
    ops=st.lists(_MANGLE, min_size=1, max_size=6),
    chunk_size=st.sampled_from([1, 1000]),
    header_too=st.booleans(),
)
def test_mangled_input_every_physical_line_in_exactly_one_record(
    base: Path, fmt: str, ops: list[tuple[str, int, int]], chunk_size: int, header_too: bool
) -> None:
    """Randomly mangled CSV and JSON Lines (stray quotes, CR/LF/CRLF mixes, NULs, invalid UTF-8,
    huge fields, blank lines, quoted line breaks) through validate and prep: every physical
    non-blank line is in exactly one record, prepared or rejected, never both, never neither;
    validate and prep agree on the totals. Or, when the mangling reached the CSV header or the
    first line has a bare CR, one file-level error about line 1 that shows no personal data,
    and nothing written."""
    good = (base / f"good.{fmt}").read_bytes()
    head = good.index(b"\n") + 1 if fmt == "csv" and not header_too else 0
    src = base / f"in.{fmt}"
    src.write_bytes(good[:head] + mangle(good[head:], ops))
    out, rejects = base / "out.cppf", base / "rejects.csv"
    for stale in (out, rejects):
        stale.unlink(missing_ok=True)
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    options = PrepOptions(batch_id="B1", created=1767225600, chunk_size=chunk_size)
    try:
        summary = prepare(src, PROFILE, store, lambda: store, out, rejects, options)
    except DataError as exc:
        assert exc.record == 1 and (fmt == "csv" or "CR-only line ends" in exc.reason)
        assert not re.search(r"[0-9]{6}", str(exc)), "a message shows an identity number?"
        assert not out.exists() and not rejects.exists()
        return
    assert summary.read == summary.prepared + summary.rejected
    assert_every_line_accounted(src, rejects, out, header=fmt == "csv")
    checked = validate_only(src, PROFILE, None, chunk_size=chunk_size)
    assert (checked.read, checked.prepared, checked.rejected) == (
        summary.read,
        summary.prepared,
        summary.rejected,
    )


_VALIDATE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from cardperso.errors import DataError
from cardperso.prep.pipeline import validate_only
from cardperso.profiles.loader import load_profile
try:
    validate_only(sys.argv[1], load_profile("ssc3-pboc"), None)
except DataError as exc:
    print(exc)
"""


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_input_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    """The library refuses a JSON Lines input that is a FIFO (it used to wait for a writer) or
    /dev/zero (an endless line), under the memory limit (the command line checks its INPUT
    argument too)."""
    path = tmp_path / "batch.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    res = subprocess.run(
        [sys.executable, "-c", _VALIDATE.format(limit=MEMORY_LIMIT), str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == (
        f"field 'input': input {path} is a FIFO, device or socket, not a regular file"
    )


@settings(max_examples=500, deadline=None)
@given(
    line=st.text(alphabet='a,"x ', max_size=40),
    quoted=st.booleans(),
)
def test_quote_scanner_agrees_with_csv(line: str, quoted: bool) -> None:
    """ends_quoted (which cuts the input into records) reads quotes exactly as :mod:`csv` does:
    a line ends inside a quoted field exactly when csv carries its field on to the next line."""
    from cardperso.prep.input import ends_quoted

    text = ('"' + line) if quoted else line  # a record that starts inside a quoted field
    rows = list(csv.reader([text + "\n", "END\n"]))
    carried = len(rows) == 1
    assert ends_quoted(line.encode(), quoted) == carried
