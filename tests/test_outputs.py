"""Atomic, private outputs and the refusal to write over an input (issue 11, items 3, 4, 12)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cardperso.errors import UsageError
from cardperso.outputs import atomic_output, atomic_write_bytes, check_paths


def test_atomic_output_appears_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.perso"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError), atomic_output(target, binary=True) as fh:
        fh.write(b"half a file")
        raise RuntimeError("killed half-way")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.perso"]  # no temporary left


def test_atomic_output_is_private_by_default(tmp_path: Path) -> None:
    target = tmp_path / "rejects.csv"
    with atomic_output(target) as fh:
        fh.write("line,field,reason\r\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == b"line,field,reason\r\n"
    atomic_write_bytes(tmp_path / "shared.bin", b"x", mode=0o644)
    assert stat.S_IMODE((tmp_path / "shared.bin").stat().st_mode) == 0o644


def test_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    batch = tmp_path / "b.csv"
    batch.write_text("ssn\n")
    with pytest.raises(UsageError, match=r"--out is the same file as INPUT"):
        check_paths({"--out": tmp_path / "." / "b.csv"}, {"INPUT": batch})
    link = tmp_path / "hard.csv"
    os.link(batch, link)
    with pytest.raises(UsageError, match=r"--rejects is the same file as INPUT"):
        check_paths({"--out": tmp_path / "o", "--rejects": link}, {"INPUT": batch})
    with pytest.raises(UsageError, match=r"--out and --rejects are the same file"):
        check_paths({"--out": tmp_path / "x", "--rejects": tmp_path / "x"}, {"INPUT": batch})
    check_paths({"--out": tmp_path / "o", "--rejects": None}, {"INPUT": batch, "--keys": None})


def test_atomic_file_abort_keeps_previous_and_commit_replaces(tmp_path: Path) -> None:
    from cardperso.outputs import AtomicFile

    target = tmp_path / "batch.perso"
    target.write_bytes(b"good old file")
    out = AtomicFile(target, binary=True)
    out.fh.write(b"partial")
    assert target.read_bytes() == b"good old file"  # nothing under the final name yet
    out.abort()
    out.abort()  # idempotent
    assert target.read_bytes() == b"good old file"
    assert [p.name for p in tmp_path.iterdir()] == ["batch.perso"]
    out = AtomicFile(target, binary=True)
    out.fh.write(b"new")
    out.commit()
    out.abort()  # after a commit: nothing to throw away
    assert target.read_bytes() == b"new"


def test_write_behind_hands_each_step_to_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large output starts its writeback as it grows (sync_file_range(2), Linux), so that
    the commit's fsync does not write all of it while the batch's processes sit idle. The
    call goes to the real kernel: a flag it does not know is refused (EINVAL), so the binding's
    argument types are checked too; the bytes committed are the bytes written."""
    from cardperso import outputs

    monkeypatch.setattr(outputs, "WRITE_BEHIND_STEP", 1 << 20)
    out = outputs.AtomicFile(tmp_path / "big.cppf", binary=True)
    block = os.urandom(1 << 19)
    out.fh.write(block)
    out.fh.flush()
    assert out.write_behind(1 << 19) is False  # below the step: nothing asked
    out.fh.write(block * 3)
    out.fh.flush()
    assert out.write_behind(1 << 21) is True  # the first 2 MB handed over
    assert out.write_behind(1 << 21) is False  # nothing new
    fn = outputs._sync_file_range()
    assert fn is not None
    assert fn(out.fh.fileno(), 0, 1 << 20, 0x80) == -1  # an unknown flag: EINVAL
    out.commit()
    assert (tmp_path / "big.cppf").read_bytes() == block * 4
