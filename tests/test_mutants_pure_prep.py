"""prep behaviour that the mutation run over cardperso.prep (a sample of 250, issue 18) found
unasserted by the fast in-process tests: the input reader's file-level refusals with their exact
field and record, the header-length edge, per-line rejects, and the template helpers that only
long records reach."""

from __future__ import annotations

import csv
import os
import pickle
import types
from collections import Counter
from pathlib import Path

import pytest

from cardperso.errors import DataError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep import container
from cardperso.prep.input import MAX_LINE_BYTES, open_input
from cardperso.prep.pipeline import PrepOptions, prepare, validate_only
from cardperso.prep.synth import COLUMNS, make_batch, records
from cardperso.prep.validate import ROW, Reject
from cardperso.profiles.loader import load_profile

PROFILE = load_profile("ssc3-pboc")


def _file_error(path: Path) -> tuple[str | None, int | None, str]:
    with pytest.raises(DataError) as exc:
        open_input(path)
    return exc.value.field, exc.value.record, exc.value.reason


def test_header_refusals_name_the_header_and_line_1(tmp_path: Path) -> None:
    cr = tmp_path / "cr.csv"
    cr.write_bytes(b"ssn,name\rx,y\r")
    assert _file_error(cr) == (
        "header",
        1,
        "line 1 holds a carriage return (CR) that does not end a line: the file seems to use "
        "CR-only line ends; save it with LF or CR LF line ends",
    )
    long = tmp_path / "long.csv"
    long.write_bytes(b"a" * (MAX_LINE_BYTES + 1) + b"\n")
    assert _file_error(long) == (
        "header",
        1,
        f"the header row is longer than {MAX_LINE_BYTES:,} bytes",
    )
    edge = tmp_path / "edge.csv"
    edge.write_bytes(b"a" * MAX_LINE_BYTES + b"\n")
    field, _, reason = _file_error(edge)  # refused, but as an unknown column, not for length
    assert "longer than" not in reason
    assert field == "header"


def test_input_that_is_not_a_regular_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    assert _file_error(missing) == (
        "input",
        None,
        f"cannot open input {missing}: No such file or directory",
    )
    assert _file_error(tmp_path) == (
        "input",
        None,
        f"input {tmp_path} is a directory, not a regular file",
    )
    os.fstat(1)  # the refusal closed no descriptor it did not open
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    assert _file_error(fifo) == (
        "input",
        None,
        f"input {fifo} is a FIFO, device or socket, not a regular file",
    )


def _rejects(tmp_path: Path, name: str, data: bytes) -> list[tuple[int, str, str]]:
    (tmp_path / name).write_bytes(data)
    validate_only(tmp_path / name, PROFILE, tmp_path / "rejects.csv")
    with open(tmp_path / "rejects.csv", encoding="utf-8") as fh:
        return [(int(r["line"]), r["field"], r["reason"]) for r in csv.DictReader(fh)]


def test_nul_byte_and_nested_json_rejects(tmp_path: Path) -> None:
    (good,) = records(1)
    row = ",".join(good[c] for c in COLUMNS).encode()
    bad = row[:3] + b"\x00" + row[4:]
    rejected = _rejects(tmp_path, "nul.csv", ",".join(COLUMNS).encode() + b"\n" + bad + b"\n")
    assert [(line, reason) for line, _, reason in rejected] == [
        (2, "holds a NUL byte (byte 4 of the line)")
    ]
    deep = b"[" * 30000 + b"]" * 30000  # under the line limit, over the parser's depth
    assert _rejects(tmp_path, "deep.jsonl", deep + b"\n") == [
        (1, ROW, "is nested too deeply (a record is one flat JSON object)")
    ]


def test_missing_columns_name_the_header(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(",".join(c for c in COLUMNS if c not in ("pan", "photo")) + "\n")
    with pytest.raises(DataError) as exc:
        validate_only(path, PROFILE, None)
    assert (exc.value.field, exc.value.record, exc.value.reason) == (
        "header",
        1,
        "required column(s) missing: pan, photo",
    )


def test_template_helpers_for_long_records() -> None:
    """DGI 0302 over 127 bytes takes the 2-byte BER length inside its 70 template (81 xx), and
    a variable-length source that does not fit its card record is refused naming the field."""
    from cardperso.codec.dgi import parse_dgis
    from cardperso.prep.build import _fit_slot, pboc_dgis
    from cardperso.profiles.loader import load_profile

    profile = load_profile("ssc3-pboc")
    values = {
        "pan": "6228480000000000000",
        "pan_seq": "01",
        "expiry_date": "20360115",
        "issue_date": "20260115",
        "name_latin": "A" * 26,
        "name_head": "阿" * 25,
        "ssn": "360426199101010071",
        "ec": (0, 15000, 1000, 1500),
    }
    values["name_head"] = values["name_head"].encode("gbk")  # 50 bytes
    blob = pboc_dgis(profile, values, bytes(48), bytes(9), bytes(8))
    r0302 = dict(parse_dgis(blob))[0x0302]
    assert r0302[:2].hex() == "7081" and r0302[2] >= 0x80 and len(r0302) == 3 + r0302[2]
    short = pboc_dgis(
        profile, values | {"name_latin": "", "name_head": b"AB"}, bytes(48), bytes(9), bytes(8)
    )
    assert dict(parse_dgis(short))[0x0302][:1] == b"\x70"
    fit = _fit_slot("photo", "b", 2)
    cards = types.SimpleNamespace(n=2, text={"photo": ["0102", "zz"]})
    mat, bad = fit(cards)  # type: ignore[arg-type]
    assert mat[0].tobytes() == bytes.fromhex("0102")
    assert [(i, f) for i, f, _r in bad] == [(1, "photo")]
    assert bad[0][2].startswith("does not fit its card record: ")


def test_frame_carries_length_line_body_and_mac() -> None:
    key = bytes(range(32))
    framed = container.frame(key, 7, b"body")
    assert framed[-len(container.record_mac(key, 7, b"body")) :] == container.record_mac(
        key, 7, b"body"
    )
    assert b"body" in framed
    assert container.frame(key, 8, b"body") != framed


def test_a_line_over_the_limit_is_rejected_with_its_size(tmp_path: Path) -> None:
    (good,) = records(1)
    row = ",".join(good[c] for c in COLUMNS).encode()
    header = ",".join(COLUMNS).encode()
    long = b"x" * (MAX_LINE_BYTES + 10)
    rejected = _rejects(tmp_path, "long.csv", header + b"\n" + long + b"\n" + row + b"\n")
    assert rejected[:1] == [
        (
            2,
            ROW,
            f"is {MAX_LINE_BYTES + 10:,} bytes long, over the limit of {MAX_LINE_BYTES:,} "
            "bytes for one line",
        )
    ]
    assert [line for line, _, _ in rejected[1:]] in ([], [3])  # line 3 is read on its own


def test_a_column_given_twice_names_both_columns(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(",".join(COLUMNS) + ",ssn\n")
    assert _file_error(path) == ("header", 1, "column 'ssn' appears twice (columns 1 and 22)")


def test_a_reject_survives_the_trip_to_and_from_a_worker() -> None:
    """Workers send rejects back pickled: field and reason must come through."""
    back = pickle.loads(pickle.dumps(Reject("pan", "is not a valid PAN")))
    assert (back.field, back.reason) == ("pan", "is not a valid PAN")


def _opts(**kw: object) -> PrepOptions:
    return PrepOptions(batch_id="B1", created=1767225600, **kw)  # type: ignore[arg-type]


def test_prepare_writes_the_same_rejects_as_validate(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    make_batch(tmp_path / "batch.csv", 20, photos=2, errors=6)
    validate_only(tmp_path / "batch.csv", PROFILE, tmp_path / "v.csv")
    summary = prepare(
        tmp_path / "batch.csv",
        PROFILE,
        sample_keystore,
        lambda: sample_keystore,
        tmp_path / "out.cppf",
        tmp_path / "p.csv",
        _opts(),
    )
    expected = (tmp_path / "v.csv").read_text(encoding="utf-8")
    assert (tmp_path / "p.csv").read_text(encoding="utf-8") == expected
    with open(tmp_path / "p.csv", encoding="utf-8") as fh:
        fields = Counter(r["field"] for r in csv.DictReader(fh))
    assert summary.rejected == 6 and dict(summary.reasons) == dict(fields)


def test_prepare_refuses_missing_columns_naming_the_header(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    path = tmp_path / "b.csv"
    path.write_text(",".join(c for c in COLUMNS if c not in ("pan", "photo")) + "\n")
    with pytest.raises(DataError) as exc:
        prepare(
            path,
            PROFILE,
            sample_keystore,
            lambda: sample_keystore,
            tmp_path / "out.cppf",
            tmp_path / "p.csv",
            _opts(),
        )
    assert (exc.value.field, exc.value.record, exc.value.reason) == (
        "header",
        1,
        "required column(s) missing: pan, photo",
    )
